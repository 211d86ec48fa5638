"""``list_experiments``: every experiment of a data tree, local and archived, from the files on disk
and the archive records of the version log (no S3 request)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..tree.model import Problem
from ..versions import VersionLog
from .model import EVALUATIONS, OUTPUTS, Walked, summarize, walk
from .records import archive_records


@dataclass
class ExperimentInfo:
    """One experiment: what is local (``local``: models, domains, tasks, tasks with a video,
    evaluations per evaluator, files, bytes; None when nothing is) and where each archive of it
    lives (``archives``: the records, oldest first)."""

    name: str
    local: dict[str, Any] | None = None
    archives: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.local and self.archives:
            return "local+archived"
        return "local" if self.local else "archived"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "local": self.local,
                "archives": [{k: r.get(k) for k in ("date", "s3_uri", "models", "files", "bytes", "version",
                                                    "listing_sha256", "summary", "timestamp")}
                             for r in self.archives],
                "warnings": [p.as_dict() for p in self.warnings]}


def list_experiments(data_dir: str | Path = "data") -> list[ExperimentInfo]:
    """Every experiment of the data tree ``data_dir``, by name: what its local files hold (with a
    warning naming each task or run folder without a video and each evaluation of a task without
    output) and the archive records that say which S3 prefix holds it."""
    data = Path(data_dir)
    walked = walk(data, EVALUATIONS, walk(data, OUTPUTS, Walked()))
    found: dict[str, ExperimentInfo] = {}
    for name, summary in summarize(data, walked.files).items():
        found[name] = ExperimentInfo(name, summary.as_dict(), warnings=summary.problems(data, name))
    for record in archive_records(VersionLog(data_dir=data)):
        name = str(record.get("experiment"))
        found.setdefault(name, ExperimentInfo(name)).archives.append(record)
    for problem in walked.problems:  # links out of the tree, special files: whose they are, by path
        parts = Path(problem.path).relative_to(data).parts if Path(problem.path).is_relative_to(data) else ()
        owner = parts[1] if len(parts) > 1 and parts[0] == OUTPUTS else None
        if owner in found:
            found[owner].warnings.append(problem)
    return [found[k] for k in sorted(found)]
