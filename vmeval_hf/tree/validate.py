"""Validate a whole question tree: every question folder, the dataset manifest, the other data folders.

Validation collects *every* problem before reporting; nothing in the tree is written (only the
cache of frame verdicts, :mod:`vmeval_hf.tree.verdicts`, and the check's own records, in a
temporary folder: :mod:`vmeval_hf.tree.records`). A big tree is checked in two forked worker
processes (:func:`check_tree`), as the build compiles it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from .._shared.forked import plan_workers, run_forked_as_done
from ..config import default_cache_dir
from .checker import Checker
from .datafolders import data_folder_problems
from .model import Listed, Problem, Question, ValidationReport, resolve_questions_dir
from .records import Records, StoredManifest, store_manifest, tree_records
from .verdicts import Verdicts


def tree_problems(report: ValidationReport, records: Records, manifest: StoredManifest | None = None, *,
                  check_manifest_file: bool = True, check_data_folders: bool = True) -> None:
    """Add the checks beyond the question folders, once ``records`` hold every folder and valid
    question (:meth:`Records.order` done): manifest sync (``manifest``: the dataset manifest
    stored into ``records`` already, if it was, :func:`~.records.store_manifest`) and the
    other data folders."""
    qdir = report.questions_dir
    if check_manifest_file and qdir.is_dir():
        if manifest is None:  # not read beside the checks (or the folder appeared meanwhile)
            manifest = store_manifest(qdir, records.manifest_file)
        report.problems.extend(records.manifest_problems(manifest))
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
    """What checking a run of question folders in a worker gives back (picklable, small)."""

    problems: list[Problem]
    valid: list[tuple[int, str | None]]  # the position and difficulty of each valid question
    questions: list[Question]
    frames: tuple[int, int]  # checked, cached


def _check_folders(checker: Checker, ddir: str, domain: str, first: int, names: list[str]) -> _Findings:
    """In a worker: the question folders ``names`` in ``ddir`` (of ``domain``; the first at tree
    position ``first``), by a fresh checker with ``checker``'s settings."""
    mine = Checker(checker.qdir, checker.decode_images, verdicts=checker.verdicts,
                   keep_questions=checker.keep_questions)
    mine.check_questions(names, domain, ddir)
    r = mine.report
    return _Findings(r.problems, _positions(mine.listed, names, first), r.question_list,
                     (r.frames_checked, r.frames_cached))


def _positions(rows: list[Listed], names: list[str], first: int) -> list[tuple[int, str | None]]:
    """The tree position and difficulty of each of ``rows``, valid questions among the folders
    ``names`` (in that order; the first at ``first``)."""
    found, i = [], 0
    for row in rows:
        while names[i] != row.id:
            i += 1
        found.append((first + i, row.difficulty))
    return found


#: a worker's job: about this share of the tree (so the workers finish together), at least this
#: many folders (a fork costs a few milliseconds), and at most this many (what a job holds and
#: sends back grows with it: a share of a big tree would make every process grow with the tree)
_JOBS_PER_WORKER = 8
_MIN_PER_JOB = 50
_MAX_PER_JOB = 2000


class _Domain(NamedTuple):
    """A domain as listed: its folder, name, listing problems, and where its folders are in tree order."""

    ddir: str
    domain: str
    problems: list[Problem]
    first: int
    count: int


def _list_domains(checker: Checker, records: Records) -> tuple[list[_Domain], dict[str, int]]:
    """List every domain's question folders into ``records``, in tree order; each domain as
    listed, and how many entries each folder holds (for :func:`plan_workers`). The listing
    problems are taken out of the report, to go back in before each domain's questions."""
    report = checker.report
    listed: list[tuple[str, str, list[Problem]]] = []
    sizes: dict[str, int] = {}
    for ddir, domain in checker.domains():
        start = len(report.problems)
        sizes[domain] = records.add_domain(domain, partial(_list_folders, checker, ddir, domain)) or 0
        listed.append((ddir, domain, report.problems[start:]))
        del report.problems[start:]
    spans = records.order()
    return [_Domain(*d, *span) for d, span in zip(listed, spans)], sizes


def _list_folders(checker: Checker, ddir: str, domain: str, found: Callable[[str], None]) -> int | None:
    """:meth:`Checker.question_names`; each folder also into ``report.folders`` if the checker
    keeps every question (the caller holds the tree in memory then: this is less)."""
    if not checker.keep_questions:
        return checker.question_names(ddir, domain, found)
    folders, dname = checker.report.folders, os.path.basename(ddir)

    def found_too(name: str) -> None:
        folders[name] = f"{dname}/{name}"
        found(name)

    return checker.question_names(ddir, domain, found_too)


def _jobs(checker: Checker, records: Records, domains: list[_Domain], per_job: int,
          manifest: Callable[[], StoredManifest] | None) -> Iterator[tuple[str, Callable[[], Any]]]:
    """The jobs, made one at a time as a worker is free for each: reading the manifest (first:
    it runs beside the folder checks), then each domain's folders in runs of ``per_job``."""
    if manifest is not None:
        yield "the dataset manifest", manifest
    for d in domains:
        for start in range(d.first, d.first + d.count, per_job):
            names = records.names(start, min(per_job, d.first + d.count - start))
            yield f"questions of {d.domain!r}", partial(_check_folders, checker, d.ddir, d.domain, start, names)


def check_tree(checker: Checker, records: Records, workers: int | None = None, *, read_manifest: bool = False
               ) -> tuple[ValidationReport, StoredManifest | None]:
    """Run ``checker`` over its whole tree, keeping what the tree-wide checks need in ``records``
    (on disk): in forked workers when :func:`~vmeval_hf._shared.forked.plan_workers` says it
    pays, else here; the report, and (``read_manifest``) the dataset manifest, read into
    ``records`` by a worker beside the folder checks (else None: read it when needed).

    The folders are listed here, into ``records``; the workers check runs of them of about
    equal size and at most :data:`_MAX_PER_JOB` (so the cores stay busy to the end, and nothing
    grows with the tree), each made only when a worker is free for it. Problems are reported in
    tree order, as one process finds them. ``workers``: processes to check in (default: 2 for
    trees of 400+ questions on 2+ cores).
    """
    report = checker.report
    domains, sizes = _list_domains(checker, records)
    n = plan_workers(workers, sizes)
    per_job = min(_MAX_PER_JOB, max(_MIN_PER_JOB, -(-sum(sizes.values()) // (n * _JOBS_PER_WORKER))))
    reader = partial(store_manifest, checker.qdir, records.manifest_file) if read_manifest else None
    jobs = _jobs(checker, records, domains, per_job, reader)
    done = run_forked_as_done(jobs, n) if n > 1 else ((i, job()) for i, (_, job) in enumerate(jobs))
    manifest: StoredManifest | None = None
    problems: dict[int, list[Problem]] = {}  # by job, put in tree order once every job is in
    with contextlib.closing(done):
        for index, found in done:
            if isinstance(found, StoredManifest):
                manifest = found
                continue
            records.mark_valid(found.valid)
            report.question_list.extend(found.questions)
            report.frames_checked += found.frames[0]
            report.frames_cached += found.frames[1]
            problems[index] = found.problems
    index = 1 if reader is not None else 0
    for d in domains:  # in tree order, as one process finds them
        report.problems.extend(d.problems)
        for _ in range(d.first, d.first + d.count, per_job):
            report.problems.extend(problems.pop(index))
            index += 1
    checker.conclude(records.valid_count(), records.repeated())
    return report, manifest


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
    ``keep_questions``: keep every valid question in ``report.question_list``, and every question
    folder in ``report.folders`` (False: counts and problems only, so memory does not grow with
    the tree: what the tree-wide checks need is kept on disk, :mod:`.records`, in a temporary
    folder). ``workers``: as for :func:`check_tree`.

    Raises :class:`~vmeval_hf.errors.LocalFileError` only if those records cannot be written.
    """
    qdir = resolve_questions_dir(data_dir, questions_dir)
    verdicts = frame_verdicts(frame_cache) if decode_images else Verdicts(None)
    checker = Checker(qdir, decode_images=decode_images, verdicts=verdicts, keep_questions=keep_questions)
    with tree_records() as records:
        report, manifest = check_tree(checker, records, workers,
                                      read_manifest=check_manifest_file and qdir.is_dir())
        tree_problems(report, records, manifest, check_manifest_file=check_manifest_file,
                      check_data_folders=check_data_folders)
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
