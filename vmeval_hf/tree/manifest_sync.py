"""Write ``vmeval_dataset.json`` from the folders, or check that it is in sync with them.

Both validate the folders first (:mod:`.validate`); the document itself is :mod:`.dataset_manifest`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._shared.fs import atomic_write_json
from .dataset_manifest import manifest_document, manifest_problems, read_existing
from .model import DATASET_MANIFEST, Problem, listing, resolve_questions_dir
from .validate import validate_tree


def write_manifest(data_dir: str | Path | None = None, *, questions_dir: str | Path | None = None,
                   created_at: str | None = None, version: str | None = None,
                   generation_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate the folders and write ``vmeval_dataset.json`` from them (atomically).

    ``data_dir`` (default ``data``) or ``questions_dir``: where the folders are. ``created_at``,
    ``version``, ``generation_info``: optional fields of the document (kept from the existing
    file when not given; no wall-clock field is added).

    Raises :class:`ValidationError` if the folders have errors (the manifest is not
    checked against itself here: it is being replaced).
    """
    qdir = resolve_questions_dir(data_dir, questions_dir)
    report = validate_tree(questions_dir=qdir, check_manifest_file=False, check_data_folders=False)
    report.raise_for_errors()
    path = qdir / DATASET_MANIFEST
    doc = manifest_document(report.question_list, previous=read_existing(path), created_at=created_at,
                            version=version, generation_info=generation_info)
    atomic_write_json(path, doc)
    return {"path": str(path), "total_questions": doc["total_pairs"], "domains": doc["statistics"]["domains"]}



def check_manifest(data_dir: str | Path | None = None, *,
                   questions_dir: str | Path | None = None) -> list[Problem]:
    """Problems that make ``vmeval_dataset.json`` out of sync with the folders (empty list = in sync).

    ``data_dir`` (default ``data``) or ``questions_dir``: where the folders are.
    """
    qdir = resolve_questions_dir(data_dir, questions_dir)
    report = validate_tree(questions_dir=qdir, check_manifest_file=False, check_data_folders=False)
    problems = manifest_problems(qdir, [listing(q) for q in report.question_list], report.folders)
    if (qdir / DATASET_MANIFEST).exists():
        return problems
    return [Problem(p.path, p.code, p.message, "error", p.question) for p in problems]
