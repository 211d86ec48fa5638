"""What a results release is made of: the evaluation layouts, the naming rules, the column schema,
:class:`Evaluation` (one evaluation file, read and checked) and :class:`ResultsReport`.

The two upstream layouts of ``data/evaluations/`` (both read; they may be mixed)::

    evaluations/<evaluator-folder>/<experiment>/<model>/<domain>_task/<task_id>/<EvaluatorName>.json
    evaluations/<experiment>/<model>/<domain>_task/<task_id>/<EvaluatorName>.json

and the outputs the evaluations score::

    outputs/<experiment>/<model>/<domain>_task/<task_id>/[<run_id>/]video/<file>.mp4
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._shared.labels import next_after, validate_label
from ..errors import ConfigError, ValidationError
from ..release.release_manifest import FileEntry
from ..tree.model import Findings, Problem
from ..versions import RESULTS_KIND, is_results
from .questions import QuestionRef

EVALUATIONS, OUTPUTS = "evaluations", "outputs"
#: what ``kind`` says in a results release manifest and a results log entry
KIND = RESULTS_KIND
#: a score of 4 or 5 counts as a success (upstream's binary grading)
SUCCESS_MIN_SCORE = 4
MIN_SCORE, MAX_SCORE = 1, 5
STATUSES = ("completed", "skipped", "failed")
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi")
#: an evaluation file is a few KB; anything this big is not one (and is never read whole)
MAX_EVALUATION_BYTES = 16 * 2**20
#: the card's configs are named as the evaluation files are, and ``default`` holds them all
RESERVED_NAMES = frozenset({"default"})

# Experiment, model, evaluator folder and evaluator names: they become S3 keys, Hub config
# names, version labels and Parquet paths, so they are plain ASCII with no path tricks.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z", re.ASCII)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an experiment, model or evaluator, or None if it can."""
    if not _NAME_RE.match(name) or ".." in name:
        return (f"{name!r} is not a plain name: use ASCII letters, digits, '.', '_' and '-' (starting with a "
                "letter or digit, no '..', at most 128 characters)")
    return None


# (name, kind, nullable): kind is a ``datasets`` Value dtype, so the same tuple gives the Arrow
# schema, the shards' features and the card's ``dataset_info`` (see vmeval_hf.release.schema).
COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("model", "string", False),
    ("domain", "string", False),
    ("task_id", "string", False),
    ("evaluator", "string", False),
    ("evaluator_folder", "string", True),
    ("score", "int64", True),
    ("success", "bool", True),
    ("status", "string", False),
    ("explanation", "string", True),
    ("error", "string", True),
    ("evaluation_type", "string", True),
    ("annotator", "string", True),
    ("timestamp", "string", True),
    ("question_version", "string", False),
    ("question_content_sha256", "string", False),
    ("video_key", "string", True),
    ("video_sha256", "string", True),
    ("video", "binary", True),
    ("evaluation", "string", False),
    ("source_path", "string", False),
)


@dataclass(frozen=True)
class VideoRef:
    """An output video an evaluation scores: its path relative to the data tree, size and sha256."""

    path: str  # outputs/<experiment>/<model>/<domain>_task/<task_id>/[<run>/]video/<name>
    file: Path
    size: int
    sha256: str

    @property
    def key(self) -> str:
        """Its key under the S3 prefix a results version is mirrored to."""
        return f"data/{self.path}"


@dataclass(frozen=True)
class Evaluation:
    """One evaluation file, read and checked: one row of the results dataset."""

    model: str
    domain: str
    task_id: str
    evaluator: str  # the file name's stem: GPT4OEvaluator, human-eval, ...
    evaluator_folder: str | None  # gpt4o-eval, human-eval, ...; None in the layout without one
    status: str  # completed | skipped | failed
    score: int | None  # 1-5 when completed; None otherwise
    explanation: str | None  # GPT-4o's explanation, or a human annotator's comments
    error: str | None
    evaluation_type: str | None
    annotator: str | None
    timestamp: str | None
    source_path: str  # relative to the data tree: evaluations/...
    size: int
    sha256: str
    text: str  # the file's text, kept whole in the ``evaluation`` column
    video: VideoRef | None = None

    @property
    def success(self) -> bool | None:
        return None if self.score is None else self.score >= SUCCESS_MIN_SCORE

    @property
    def question(self) -> str:
        """The question folder it scores, as a question release's sources name it."""
        return f"{self.domain}_task/{self.task_id}"

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What may be evaluated once: (model, domain, task_id, evaluator)."""
        return (self.model, self.domain, self.task_id, self.evaluator)


@dataclass
class ResultsReport(Findings):
    """Every problem found in one experiment's evaluations, and the evaluations that are valid."""

    experiment: str
    questions: QuestionRef  # the question version the evaluations were checked against
    problems: list[Problem] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)
    #: the folders holding the experiment, relative to the data tree (what its S3 mirror takes)
    folders: list[str] = field(default_factory=list)

    def sources(self) -> list[FileEntry]:
        """Every evaluation file, every video they score, and the question release they refer to,
        sorted by path (relative to the data tree)."""
        found: dict[str, FileEntry] = {self.questions.source["path"]: self.questions.source}
        for e in self.evaluations:
            found[e.source_path] = {"path": e.source_path, "size": e.size, "sha256": e.sha256}
            if e.video is not None:
                found[e.video.path] = {"path": e.video.path, "size": e.video.size, "sha256": e.video.sha256}
        return [found[p] for p in sorted(found)]

    def raise_for_errors(self) -> None:
        if self.errors:
            first = self.errors[0]
            more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
            raise ValidationError(
                f"{first.path}: {first.message}{more}; run `vmeval-hf results validate --experiment "
                f"{self.experiment}` to list every problem", problems=self.problems, path=first.path)


# -- version labels: <experiment>-<MAJOR.MINOR>, one sequence per experiment ---------------------


def next_results_version(entries: list[Mapping[str, Any]], experiment: str) -> str:
    """``<experiment>-1.0`` for an experiment never logged, else the next minor after its highest."""
    prefix = f"{experiment}-"
    mine = [e["version"][len(prefix):] for e in entries
            if is_results(e) and e.get("experiment") == experiment and str(e["version"]).startswith(prefix)]
    return f"{prefix}{next_after(mine)}"


def check_results_label(version: str, experiment: str) -> str:
    """``version`` if it can label a results version of ``experiment``: ``<experiment>-<anything>``,
    so results labels never collide with question versions (one version log, one tag namespace)."""
    validate_label(version)
    if not version.startswith(f"{experiment}-") or len(version) == len(experiment) + 1:
        raise ConfigError(f"results version {version!r} must start with the experiment name: use "
                          f"{experiment}-{version} (e.g. {experiment}-1.0)")
    return version
