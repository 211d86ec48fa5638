"""Validate a whole question tree: every question folder, the dataset manifest, the other data folders.

Validation collects *every* problem before reporting; nothing here writes.
"""

from __future__ import annotations

from pathlib import Path

from .checker import Checker
from .datafolders import data_folder_problems
from .dataset_manifest import ManifestEntries, manifest_problems
from .model import Listed, Question, ValidationReport, listing, resolve_questions_dir


def tree_problems(report: ValidationReport, *, check_manifest_file: bool = True,
                  check_data_folders: bool = True, listed: list[Listed] | None = None,
                  manifest: ManifestEntries | None = None) -> None:
    """Add the checks beyond the question folders: manifest sync and the other data folders.

    ``listed`` as for :meth:`Checker.finish`; ``manifest``: the manifest, if read already
    (:func:`~vmeval_hf.tree.dataset_manifest.read_manifest_entries`).
    """
    qdir = report.questions_dir
    if check_manifest_file and qdir.is_dir():
        rows = listed if listed is not None else [listing(q) for q in report.question_list]
        report.problems.extend(manifest_problems(qdir, rows, report.folders, manifest))
    if check_data_folders:
        report.problems.extend(data_folder_problems(qdir.parent))


def validate_tree(data_dir: str | Path | None = None, *, questions_dir: str | Path | None = None,
                  check_manifest_file: bool = True, check_data_folders: bool = True,
                  decode_images: bool = True) -> ValidationReport:
    """Check the whole tree and return every problem found (never raises for bad input).

    ``data_dir``: the data tree (default ``data``), or ``questions_dir``: its questions folder.
    ``check_manifest_file``: compare ``vmeval_dataset.json`` with the folders;
    ``check_data_folders``: check ``outputs/`` and ``evaluations/`` too.
    ``decode_images``: decode every frame's pixels; ``False`` checks PNG structure and CRCs only (see :mod:`vmeval_hf.tree.png`),
    about a hundred times cheaper than decoding every frame's pixels.
    """
    qdir = resolve_questions_dir(data_dir, questions_dir)
    report = Checker(qdir, decode_images=decode_images).run()
    tree_problems(report, check_manifest_file=check_manifest_file, check_data_folders=check_data_folders)
    return report


def scan_questions(data_dir: str | Path | None = None, *, questions_dir: str | Path | None = None,
                   decode_images: bool = True) -> list[Question]:
    """Validate, then return the questions sorted by domain and natural id order.

    ``data_dir`` / ``questions_dir`` / ``decode_images``: as for :func:`validate_tree`.

    Raises :class:`ValidationError` (with every problem attached) if the tree has errors.
    """
    report = validate_tree(data_dir, questions_dir=questions_dir, decode_images=decode_images)
    report.raise_for_errors()
    return report.question_list
