"""Validate a whole question tree: every question folder, the dataset manifest, the other data folders.

Validation collects *every* problem before reporting; nothing here writes (but the cache of
frame verdicts, :mod:`vmeval_hf.tree.verdicts`). A big tree is checked in two forked worker
processes (:func:`check_tree`), as the build compiles it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from .._shared.forked import folder_count, plan_workers, run_forked
from ..config import default_cache_dir
from .checker import Checker
from .datafolders import data_folder_problems
from .dataset_manifest import ManifestEntries, manifest_problems, read_manifest_entries
from .model import Listed, Problem, Question, ValidationReport, listing, resolve_questions_dir
from .verdicts import Verdicts


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


def frame_verdicts(frame_cache: bool | str | Path) -> Verdicts:
    """The cache of frame verdicts that ``frame_cache`` names: True, the default folder
    (:func:`~vmeval_hf.config.default_cache_dir`); a path, that folder; False, none."""
    if frame_cache is True:
        return Verdicts(default_cache_dir())
    return Verdicts(frame_cache or None)


@dataclass
class _Findings:
    """What checking a run of question folders in a worker gives back (picklable)."""

    problems: list[Problem]
    listed: list[Listed]
    questions: list[Question]
    frames: tuple[int, int]  # checked, cached


def _check_folders(checker: Checker, ddir: str, domain: str, names: list[str]) -> _Findings:
    """In a worker: the question folders ``names`` in ``ddir`` (of ``domain``), by a fresh checker
    with ``checker``'s settings."""
    mine = Checker(checker.qdir, checker.decode_images, verdicts=checker.verdicts,
                   keep_questions=checker.keep_questions)
    mine.check_questions(names, domain, ddir)
    r = mine.report
    return _Findings(r.problems, mine.listed, r.question_list, (r.frames_checked, r.frames_cached))


def _taken(results: list[Any]) -> Iterator[Any]:
    """Each of ``results`` in turn, dropped from the list as it is taken: what is not kept of
    it (its listings with their unpickled ids) is freed before the next one is read."""
    for i, found in enumerate(results):
        results[i] = None
        yield found


def _with_ids_of(rows: list[Listed], names: list[str]) -> list[Listed]:
    """A worker's listings of the folders ``names`` (a subset, in that order), with each id the
    string of ``names``, which ``report.folders`` holds too: as unpickled, each is a new string,
    a copy per question of the tree."""
    shared, i = [], 0
    for row in rows:
        while i < len(names) and names[i] != row.id:
            i += 1
        shared.append(Listed(names[i], row.domain, row.difficulty) if i < len(names) else row)
    return shared


#: a worker's job: about this share of the tree (so the workers finish together), and at least
#: this many folders (a fork costs a few milliseconds)
_JOBS_PER_WORKER = 8
_MIN_PER_JOB = 50


def check_tree(checker: Checker, workers: int | None = None, *, read_manifest: bool = False
               ) -> tuple[ValidationReport, list[Listed], ManifestEntries | None]:
    """Run ``checker`` over its whole tree: in forked workers when
    :func:`~vmeval_hf._shared.forked.plan_workers` says it pays, else here; the report, every
    valid question's listing, and (``read_manifest``) the dataset manifest, read here while the
    last workers run (else None: read it when needed). The folders are listed here; the workers
    check runs of them of about equal size, so the cores stay busy to the end.

    ``workers``: processes to check in (default: 2 for trees of 400+ questions on 2+ cores).
    """
    domains = checker.domains()
    sizes = {domain: folder_count(ddir) for ddir, domain in domains}
    n = plan_workers(workers, sizes)
    if n == 1:
        return checker.run(domains), checker.listed, None
    report = checker.report
    per_job = max(_MIN_PER_JOB, -(-sum(sizes.values()) // (n * _JOBS_PER_WORKER)))
    # domain folder, domain, listing problems, runs of folder names (the names are the strings
    # report.folders holds: the plan adds no string per question, full paths would)
    plan: list[tuple[str, str, list[Problem], list[list[str]]]] = []
    for ddir, domain in domains:
        start = len(report.problems)
        names = checker.question_folders(ddir, domain, names=True)
        plan.append((ddir, domain, report.problems[start:], [names[i:i + per_job] for i in range(0, len(names), per_job)]))
        del report.problems[start:]
    manifest: list[ManifestEntries] = []

    def while_idle(_: object) -> None:  # every job has started: this process has time until they end
        if read_manifest and not manifest:
            manifest.append(read_manifest_entries(checker.qdir, report.folders))  # every folder is listed

    found = _taken(run_forked([(f"questions of {domain!r}", partial(_check_folders, checker, ddir, domain, run))
                               for ddir, domain, _, runs in plan for run in runs], n, on_idle=while_idle))
    listed: list[Listed] = []
    for _, _, listing_problems, runs in plan:  # in tree order, as one process finds them
        report.problems.extend(listing_problems)
        for f, run in ((next(found), run) for run in runs):
            report.problems.extend(f.problems)
            report.question_list.extend(f.questions)
            report.frames_checked += f.frames[0]
            report.frames_cached += f.frames[1]
            listed.extend(_with_ids_of(f.listed, run))
    checker.finish(listed)
    return report, listed, manifest[0] if manifest else None


def validate_tree(data_dir: str | Path | None = None, *, questions_dir: str | Path | None = None,
                  check_manifest_file: bool = True, check_data_folders: bool = True,
                  decode_images: bool = True, frame_cache: bool | str | Path = True,
                  keep_questions: bool = True, workers: int | None = None) -> ValidationReport:
    """Check the whole tree and return every problem found (never raises for bad input).

    ``data_dir``: the data tree (default ``data``), or ``questions_dir``: its questions folder.
    ``check_manifest_file``: compare ``vmeval_dataset.json`` with the folders;
    ``check_data_folders``: check ``outputs/`` and ``evaluations/`` too.
    ``decode_images``: check every frame's image data as a decode would
    (:func:`~vmeval_hf.tree.png.pixel_problem`); ``False`` checks PNG chunks and CRCs only.
    ``frame_cache``: skip frames that passed before (:func:`frame_verdicts`; False checks every frame).
    ``keep_questions``: keep every valid question in ``report.question_list`` (False: counts and
    problems only, so memory does not grow with the tree). ``workers``: as for :func:`check_tree`.
    """
    qdir = resolve_questions_dir(data_dir, questions_dir)
    verdicts = frame_verdicts(frame_cache) if decode_images else Verdicts(None)
    checker = Checker(qdir, decode_images=decode_images, verdicts=verdicts, keep_questions=keep_questions)
    report, listed, manifest = check_tree(checker, workers, read_manifest=check_manifest_file)
    tree_problems(report, check_manifest_file=check_manifest_file, check_data_folders=check_data_folders,
                  listed=listed, manifest=manifest)
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
