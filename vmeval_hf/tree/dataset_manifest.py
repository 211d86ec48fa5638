"""The dataset manifest ``data/questions/vmeval_dataset.json``: its document, and its differences from the folders.

Fields the original tools wrote (``name``, ``description``, ``created_at``,
``total_pairs``, ``pairs``) are kept; ``version``, ``statistics`` and
``questions`` follow DATA_MANAGEMENT.md. Writing is deterministic: sorted, and
no wall-clock field unless one is given (or already present in the file).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .model import DATASET_MANIFEST, Listed, Problem, Question


def _pair(q: Question) -> dict[str, Any]:
    if q.metadata is not None:
        return dict(q.metadata)
    pair: dict[str, Any] = {
        "id": q.id, "domain": q.domain, "prompt": q.prompt,
        "first_image_path": f"{q.source_path}/first_frame.png",
        "final_image_path": f"{q.source_path}/final_frame.png" if q.final_frame else None,
    }
    return pair


def _entry(q: Question | Listed) -> dict[str, Any]:
    return {"id": q.id, "domain": q.domain, "difficulty": q.difficulty, "path": q.source_path}


def manifest_document(questions: list[Question], *, previous: dict[str, Any] | None = None,
                      created_at: str | None = None, version: str | None = None,
                      generation_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest for ``questions``; optional fields come from the arguments or ``previous``."""
    previous = previous or {}
    n = len(questions)
    doc: dict[str, Any] = {
        "name": "vmeval_dataset",
        "description": f"VMEvalKit video reasoning evaluation dataset ({n} task pairs)",
        "total_pairs": n,
        "statistics": {
            "total_questions": n,
            "domains": dict(sorted(Counter(q.domain for q in questions).items())),
            "difficulties": dict(sorted(Counter(q.difficulty or "unlabelled" for q in questions).items())),
        },
        "questions": [_entry(q) for q in questions],
        "pairs": [_pair(q) for q in questions],
    }
    for key, value in (("created_at", created_at), ("version", version), ("generation_info", generation_info)):
        chosen = value if value is not None else previous.get(key)
        if chosen is not None:
            doc[key] = chosen
    return doc


def read_existing(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class ManifestEntries:
    """What :func:`manifest_problems` needs of ``vmeval_dataset.json``: its question entries
    (``None`` if the file is absent or unreadable, with the problem that says so), and its
    ``total_pairs``. Read apart from the comparison so the build can read it while the last
    worker runs."""

    path: Path
    entries: list[dict[str, Any]] | None
    total: Any = None
    problems: list[Problem] = field(default_factory=list)


def read_manifest_entries(questions_dir: Path) -> ManifestEntries:
    path = questions_dir / DATASET_MANIFEST
    if not path.exists():
        return ManifestEntries(path, None, problems=[Problem(
            str(path), "manifest_missing", "no master manifest; run `vmeval-hf manifest` to write it", "warning")])
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        return ManifestEntries(path, None, problems=[Problem(
            str(path), "manifest_invalid", f"cannot read the manifest ({exc}); run `vmeval-hf manifest` to rewrite it")])
    if not isinstance(doc, dict):
        return ManifestEntries(path, None, problems=[Problem(
            str(path), "manifest_invalid", "manifest is not a JSON object; run `vmeval-hf manifest`")])
    listed = doc.get("questions")
    if listed is None:  # the seed's format: only "pairs" with full metadata
        listed = [{"id": p.get("id"), "domain": p.get("domain"), "difficulty": p.get("difficulty")}
                  for p in doc.get("pairs", []) if isinstance(p, dict)]
    if not isinstance(listed, list) or not all(isinstance(e, dict) for e in listed):
        return ManifestEntries(path, None, problems=[Problem(
            str(path), "manifest_invalid", "manifest `questions` is not a list of objects; run `vmeval-hf manifest`")])
    # the rest (every question's full metadata under "pairs") is not kept
    return ManifestEntries(path, listed, doc.get("total_pairs"))


def manifest_problems(questions_dir: Path, questions: list[Listed], folders: Collection[str],
                      read: ManifestEntries | None = None) -> list[Problem]:
    """Differences between ``vmeval_dataset.json`` and the folders (errors), or a warning if it is absent.

    ``questions``: the valid questions; ``folders``: the id of every question folder, valid or not;
    ``read``: the manifest as :func:`read_manifest_entries` gave it (read now if not given).
    """
    read = read if read is not None else read_manifest_entries(questions_dir)
    if read.entries is None:
        return list(read.problems)
    path, listed, total = read.path, read.entries, read.total
    on_disk = {q.id: _entry(q) for q in questions}
    in_file = {str(e.get("id")): e for e in listed}
    problems = []
    fix = "run `vmeval-hf manifest` to rewrite it from the folders"
    # A repeated entry would collapse in `in_file` and hide from every check below.
    seen: set[str] = set()
    for e in listed:
        key = str(e.get("id")).casefold()
        if key in seen:
            problems.append(Problem(str(path), "manifest_duplicate_id",
                                    f"lists {e.get('id')} more than once; {fix}", question=str(e.get("id"))))
        seen.add(key)
    for qid in sorted(set(in_file) - set(folders)):
        problems.append(Problem(str(path), "manifest_lists_missing",
                                f"lists {qid} but no folder holds it; {fix}", question=qid))
    for qid in sorted(set(on_disk) - set(in_file)):
        problems.append(Problem(str(path), "manifest_missing_question",
                                f"does not list {on_disk[qid]['path']}; {fix}", question=on_disk[qid]["path"]))
    for qid in sorted(set(on_disk) & set(in_file)):
        for key in ("domain", "difficulty", "path"):
            if key in in_file[qid] and in_file[qid][key] != on_disk[qid][key]:
                problems.append(Problem(
                    str(path), "manifest_field_differs",
                    f"{qid}: {key} is {in_file[qid][key]!r} in the manifest but {on_disk[qid][key]!r} "
                    f"in the folder; {fix}", question=on_disk[qid]["path"]))
    if total is not None and total != len(listed):
        problems.append(Problem(str(path), "manifest_count_differs",
                                f"total_pairs is {total} but {len(listed)} questions are listed; {fix}"))
    return problems
