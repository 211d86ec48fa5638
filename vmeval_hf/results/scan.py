"""Read and check one experiment's evaluations, in both upstream layouts, and the videos they score.

:func:`scan_experiment` walks ``evaluations/<experiment>/`` and every
``evaluations/<evaluator-folder>/<experiment>/`` (see :mod:`vmeval_hf.results.model`), checks each
``<model>/<domain>_task/<task_id>/<EvaluatorName>.json`` and collects *every* problem before
reporting, each with its path and a stable code:

errors (stop ``results build`` and ``publish``): ``evaluation_invalid_json``,
``evaluation_bad_shape``, ``bad_score``, ``score_out_of_range``, ``missing_score``, ``bad_status``,
``duplicate_evaluation``, ``unknown_question``, ``metadata_mismatch`` (task id), ``bad_name``,
``path_escape``, ``evaluation_too_large``, ``unreadable``, ``no_evaluations``;

warnings (reported, not stopping): ``missing_video``, ``multiple_videos``, ``score_ignored``,
``metadata_mismatch`` (model name), ``ignored_file``, ``linked_folder``, ``not_a_file``.

The walk takes what the S3 mirror takes (hidden names and ``__pycache__`` are skipped, a link
to a file inside the walked folder is read, a linked folder is not followed) and refuses what it
refuses (a link out of the folder), so a build that passes here mirrors as it was read.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

from .._shared.fs import sha256_bytes, sha256_file
from ..config import Settings
from ..errors import ConfigError
from ..s3.layout import SKIPPED_NAMES
from ..tree.datafolders import entry_kind
from ..tree.model import DOMAIN_DIR_RE, Problem, id_sort_key, question_name_re
from .model import (
    EVALUATIONS,
    MAX_EVALUATION_BYTES,
    MAX_SCORE,
    MIN_SCORE,
    OUTPUTS,
    RESERVED_NAMES,
    STATUSES,
    VIDEO_SUFFIXES,
    Evaluation,
    ResultsReport,
    VideoRef,
    name_problem,
)
from .questions import QuestionRef, question_ref

#: (path, parts relative to the walked folder) of one file
_File = tuple[Path, tuple[str, ...]]


def validate_results(data_dir: str | Path = "data", *, experiment: str, settings: Settings,
                     questions_version: str | None = None) -> ResultsReport:
    """Check every evaluation file of ``experiment`` in the data tree ``data_dir`` (its
    ``evaluations/`` and ``outputs/``) and return every problem found (never raises for bad
    evaluation files).

    ``questions_version``: the question version the evaluations were made on (default: the
    latest logged one); each evaluation must score a question of it. ``settings`` reach the
    Hub and S3 copies of that version's release manifest when it is not built locally.
    """
    check_experiment(experiment)
    ref = question_ref(data_dir, questions_version, settings=settings)
    return scan_experiment(data_dir, experiment, ref)


def check_experiment(experiment: str) -> str:
    """``experiment`` if it can name an experiment (it names folders, labels and S3 prefixes)."""
    why = name_problem(experiment) if isinstance(experiment, str) else "an experiment name is text"
    if why:
        raise ConfigError(f"--experiment: {why}")
    return experiment


def scan_experiment(data_dir: str | Path, experiment: str, questions: QuestionRef) -> ResultsReport:
    """Every evaluation of ``experiment`` in the data tree at ``data_dir``, checked against the
    question version ``questions``, with the video each one scores."""
    data = Path(data_dir)
    report = ResultsReport(experiment, questions)
    found = _evaluation_files(data, experiment, report)
    if not found:
        report.problems.append(Problem(
            str(data / EVALUATIONS), "no_evaluations",
            f"no evaluation files of experiment {experiment!r}: expected evaluations/[<evaluator-folder>/]"
            f"{experiment}/<model>/<domain>_task/<task_id>/<Evaluator>.json; check --experiment and --data-dir"))
        return report
    videos = _videos(data, experiment, report)
    if (data / OUTPUTS / experiment).is_dir():
        report.folders.append(f"{OUTPUTS}/{experiment}")
    seen: dict[tuple[str, str, str, str], str] = {}
    for folder, path, rel in found:
        evaluation = _read(data, folder, path, rel, report.problems)
        if evaluation is None or not _fits(evaluation, path, questions, seen, report.problems):
            continue
        video = _video_for(data, experiment, evaluation, videos, report.problems)
        report.evaluations.append(replace(evaluation, video=video))
    report.evaluations.sort(key=lambda e: (e.evaluator, e.model, e.domain, id_sort_key(e.task_id)))
    report.problems = list(dict.fromkeys(report.problems))  # a folder's problem, once for all its files
    return report


# -- walking -----------------------------------------------------------------------------------


def _walk(root: Path, problems: list[Problem]) -> list[_File]:
    """Every regular file under ``root``, sorted by its parts, as the S3 mirror walks it."""
    root_real = os.path.realpath(root)
    out: list[_File] = []
    stack: list[tuple[str, tuple[str, ...]]] = [(str(root), ())]
    while stack:
        folder, rel = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            problems.append(Problem(folder, "unreadable", f"cannot list this folder ({exc.strerror or exc}); "
                                    "fix its permissions"))
            continue
        for entry in entries:
            if entry.name.startswith(".") or entry.name in SKIPPED_NAMES:
                continue
            kind = _entry_kind(entry, root_real, problems)
            if kind == "dir":
                stack.append((entry.path, (*rel, entry.name)))
            elif kind == "file":
                out.append((Path(entry.path), (*rel, entry.name)))
    return sorted(out, key=lambda f: f[1])


def _entry_kind(entry: os.DirEntry[str], root_real: str, problems: list[Problem]) -> str | None:
    """"dir", "file", or None (skipped, with a problem saying why)."""
    kind, real = entry_kind(entry, root_real)
    if kind == "escape":
        problems.append(Problem(entry.path, "path_escape", f"a link to {real}, outside {root_real}: the S3 "
                                "mirror never reads outside the folder; copy the file in instead"))
    elif kind == "linked_folder":
        problems.append(Problem(entry.path, "linked_folder", "a link to a folder: not followed (the S3 mirror "
                                "does not follow it either); copy the folder in", "warning"))
    elif kind == "special":
        problems.append(Problem(entry.path, "not_a_file", "not a regular file (FIFO, socket, device or broken link); "
                                "skipped: remove it or replace it with a regular file", "warning"))
    return kind if kind in ("dir", "file") else None


def _roots(data: Path, experiment: str) -> list[tuple[str | None, Path]]:
    """The folders that may hold the experiment: ``evaluations/<experiment>`` and every
    ``evaluations/<evaluator-folder>/<experiment>`` (an evaluator folder is never named like the
    experiment: ``evaluations/X/X/`` is experiment X's model X)."""
    top = data / EVALUATIONS
    roots: list[tuple[str | None, Path]] = []
    if not top.is_dir():
        return roots
    flat = top / experiment
    if flat.is_dir() and not flat.is_symlink():
        roots.append((None, flat))
    for child in sorted(top.iterdir()):
        nested = child / experiment
        if child.name == experiment or child.name.startswith(".") or child.is_symlink():
            continue
        if child.is_dir() and nested.is_dir() and not nested.is_symlink():
            roots.append((child.name, nested))
    return roots


def _evaluation_files(data: Path, experiment: str, report: ResultsReport
                      ) -> list[tuple[str | None, Path, tuple[str, ...]]]:
    """``(evaluator folder, path, (model, domain_task, task_id, file))`` of every evaluation file.

    A folder counts as the experiment's when it holds at least one file at evaluation depth (so
    ``evaluations/<other-experiment>/<model named like this experiment>/`` is left alone); in it,
    a JSON file elsewhere but at the top (upstream's ``*_summary.json``) is an ``ignored_file``.
    """
    out = []
    for folder, root in _roots(data, experiment):
        found: list[Problem] = []
        files = _walk(root, found)
        hits = [(folder, p, rel) for p, rel in files
                if len(rel) == 4 and DOMAIN_DIR_RE.match(rel[1]) and rel[3].endswith(".json")]
        if not hits:
            continue
        report.folders.append(root.relative_to(data).as_posix())
        report.problems.extend(found)
        out += hits
        report.problems.extend(
            Problem(str(p), "ignored_file", "not at <model>/<domain>_task/<task_id>/<Evaluator>.json in the "
                    "experiment folder: not part of the results", "warning")
            for p, rel in files if rel[-1].endswith(".json") and len(rel) > 1
            and not (len(rel) == 4 and DOMAIN_DIR_RE.match(rel[1])))
    return out


# -- one evaluation file -----------------------------------------------------------------------


def _names_ok(data: Path, folder: str | None, path: Path, rel: tuple[str, ...], problems: list[Problem]) -> bool:
    """The evaluator folder, model, task folder and evaluator names of one file; one problem per name."""
    model, domain_dir, task_id, name = rel
    domain = DOMAIN_DIR_RE.match(domain_dir).group(1)  # type: ignore[union-attr]
    evaluator = name[: -len(".json")]
    checks = [(data / EVALUATIONS / folder if folder else None, folder and name_problem(folder)),
              (path.parents[2], name_problem(model)),
              (path.parent, None if question_name_re(domain).match(task_id) else
               f"{task_id!r} is not a question id of domain {domain!r} (<domain>_NNNN)"),
              (path, name_problem(evaluator) or (f"{evaluator!r} names the config of every evaluator"
                                                 if evaluator in RESERVED_NAMES else None))]
    ok = True
    for where, why in checks:
        if why:
            ok = False
            problems.append(Problem(str(where), "bad_name", f"{why}; rename it"))
    return ok


def _read(data: Path, folder: str | None, path: Path, rel: tuple[str, ...],
          problems: list[Problem]) -> Evaluation | None:
    """The evaluation in ``path``, or None with its problems added."""
    if not _names_ok(data, folder, path, rel, problems):
        return None
    try:
        size = path.stat().st_size
        if size > MAX_EVALUATION_BYTES:
            problems.append(Problem(str(path), "evaluation_too_large", f"{size} bytes: an evaluation file is a "
                                    "few KB; this is not one (move it out of the experiment folder)"))
            return None
        raw = path.read_bytes()
    except OSError as exc:
        problems.append(Problem(str(path), "unreadable", f"cannot read it ({exc.strerror or exc}); fix its "
                                "permissions"))
        return None
    doc = _parse(raw, path, problems)
    if doc is None:
        return None
    model, domain_dir, task_id, name = rel
    fields = _result_fields(doc["result"], path, problems)
    if fields is None:
        return None
    meta = doc.get("metadata") or {}
    return Evaluation(
        model=model, domain=domain_dir[: -len("_task")], task_id=task_id, evaluator=name[: -len(".json")],
        evaluator_folder=folder, annotator=_text(meta.get("annotator")), timestamp=_text(meta.get("timestamp")),
        source_path=path.relative_to(data).as_posix(), size=len(raw), sha256=sha256_bytes(raw),
        text=raw.decode("utf-8"), **fields)


def _parse(raw: bytes, path: Path, problems: list[Problem]) -> dict[str, Any] | None:
    """The document, if it is ``{"metadata": {...}, "result": {...}}``; else None with a problem."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        problems.append(Problem(str(path), "evaluation_invalid_json", f"not valid UTF-8 JSON ({exc}); fix or "
                                "remove the file"))
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("result"), dict) \
            or not isinstance(doc.get("metadata", {}), dict):
        problems.append(Problem(str(path), "evaluation_bad_shape", 'not {"metadata": {...}, "result": {...}}: '
                                "fix or remove the file"))
        return None
    return doc


def _result_fields(result: dict[str, Any], path: Path, problems: list[Problem]) -> dict[str, Any] | None:
    """Status, score and texts of a ``result``; None if it is not a valid result (problem added).

    A result without ``status`` (a human evaluation) is ``completed`` unless it carries an
    ``error`` and no score (then ``failed``)."""
    raw_score = result.get("solution_correctness_score")
    status = result.get("status")
    if status is None:
        status = "failed" if raw_score is None and result.get("error") is not None else "completed"
    if status not in STATUSES:
        problems.append(Problem(str(path), "bad_status", f"status {status!r} is none of {', '.join(STATUSES)}; "
                                "fix the file"))
        return None
    score = None
    if raw_score is not None:
        score = _score(raw_score, path, problems)
        if score is None:
            return None
    elif status == "completed":
        problems.append(Problem(str(path), "missing_score", "status completed but no solution_correctness_score; "
                                "add the score, or mark the evaluation skipped or failed"))
        return None
    if score is not None and status != "completed":
        problems.append(Problem(str(path), "score_ignored", f"a score with status {status}: not counted", "warning"))
        score = None
    explanation = result.get("explanation")
    return {"status": status, "score": score,
            "explanation": _text(explanation if explanation is not None else result.get("comments")),
            "error": _text(result.get("error")), "evaluation_type": _text(result.get("evaluation_type"))}


def _score(value: Any, path: Path, problems: list[Problem]) -> int | None:
    """A score of 1-5 (4.0 is 4); None with a problem otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or (
            isinstance(value, float) and not value.is_integer()):
        problems.append(Problem(str(path), "bad_score", f"solution_correctness_score {value!r} is not a whole "
                                f"number; scores are {MIN_SCORE}-{MAX_SCORE}"))
        return None
    if not MIN_SCORE <= value <= MAX_SCORE:
        problems.append(Problem(str(path), "score_out_of_range", f"solution_correctness_score {value!r} is "
                                f"outside {MIN_SCORE}-{MAX_SCORE}; fix the file"))
        return None
    return int(value)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _fits(e: Evaluation, path: Path, questions: QuestionRef, seen: dict[tuple[str, str, str, str], str],
          problems: list[Problem]) -> bool:
    """Whether ``e`` is the first of its (model, question, evaluator), scores a question of the
    referenced version and is filed where its metadata says; problems added otherwise."""
    meta = json.loads(e.text).get("metadata") or {}
    ok = True
    if e.key in seen:
        problems.append(Problem(str(path), "duplicate_evaluation", f"a second {e.evaluator} evaluation of "
                                f"{e.model} on {e.task_id} (the first: {seen[e.key]}); keep one of them"))
        ok = False
    if e.question not in questions.folders:
        problems.append(Problem(str(path), "unknown_question", f"question {e.question} is not in question "
                                f"version {questions.version}; pass the --questions-version the run was made on"))
        ok = False
    if meta.get("task_id") not in (None, e.task_id):
        problems.append(Problem(str(path), "metadata_mismatch", f"metadata.task_id is {meta['task_id']!r} but "
                                f"the file is in folder {e.task_id}; move the file or fix it"))
        ok = False
    if meta.get("model_name") not in (None, e.model):
        problems.append(Problem(str(path), "metadata_mismatch", f"metadata.model_name is {meta['model_name']!r}, "
                                f"the folder says {e.model}; the folder name is used", "warning"))
    seen.setdefault(e.key, e.source_path)
    return ok


# -- videos ------------------------------------------------------------------------------------


def _videos(data: Path, experiment: str, report: ResultsReport) -> dict[tuple[str, str, str], list[_File]]:
    """Every output video of the experiment by (model, domain, task_id):
    ``outputs/<experiment>/<model>/<domain>_task/<task_id>/[<run_id>/]video/<file>``."""
    root = data / OUTPUTS / experiment
    out: dict[tuple[str, str, str], list[_File]] = defaultdict(list)
    if not root.is_dir():
        return out
    for path, rel in _walk(root, report.problems):
        if len(rel) in (5, 6) and rel[-2] == "video" and DOMAIN_DIR_RE.match(rel[1]) \
                and path.suffix.lower() in VIDEO_SUFFIXES:
            out[(rel[0], rel[1][: -len("_task")], rel[2])].append((path, rel))
    return out


def _video_for(data: Path, experiment: str, e: Evaluation, videos: dict[tuple[str, str, str], list[_File]],
               problems: list[Problem]) -> VideoRef | None:
    """The video ``e`` scores: the last by path when a task has several runs (upstream's run ids
    end in their time stamp); a completed evaluation without one is a warning."""
    found = videos.get((e.model, e.domain, e.task_id), [])
    where = data / OUTPUTS / experiment / e.model / f"{e.domain}_task" / e.task_id
    if not found:
        if e.status == "completed":
            problems.append(Problem(str(where), "missing_video", f"no output video for {e.model} on "
                                        f"{e.task_id} (expected [<run_id>/]video/<file>.mp4 here)", "warning"))
        return None
    path, _ = found[-1]
    if len(found) > 1:
        problems.append(Problem(str(where), "multiple_videos", f"{len(found)} videos; the last by path is "
                                    f"used: {path.relative_to(where).as_posix()}", "warning"))
    return VideoRef(path.relative_to(data).as_posix(), path, path.stat().st_size, sha256_file(path))
