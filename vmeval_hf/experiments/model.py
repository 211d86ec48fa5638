"""Where an experiment's files live in a data tree, in both upstream layouts, and what they hold.

::

    outputs/<experiment>/<model>/<domain>_task/<task_id>/[<run_id>/]{video/<file>.mp4|.webm, question/..., metadata.json}
    evaluations/[<evaluator-folder>/]<experiment>/<model>/<domain>_task/<task_id>/<EvaluatorName>.json

An evaluation folder belongs to an experiment when it holds a file at evaluation depth:
``evaluations/X/`` is experiment X's (flat layout) when ``X/<model>/<domain>_task/<task>/<E>.json``
exists; ``evaluations/F/X/`` is experiment X's (evaluator folder F) when
``F/X/<model>/<domain>_task/<task>/<E>.json`` exists. Every file under such a folder is the
experiment's (upstream's ``*_summary.json`` too).

The walk (:func:`walk`) takes what the S3 mirror takes: hidden names and ``__pycache__`` are
skipped, a link to a file inside the walked folder is read, a linked folder is not followed, and a
link out of it or a special file (FIFO, socket, device) is never opened: it is a warning here and
the archive's snapshot refuses it.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..s3.layout import SKIPPED_NAMES
from ..tree.datafolders import entry_kind
from ..tree.model import DOMAIN_DIR_RE, Problem

OUTPUTS, EVALUATIONS = "outputs", "evaluations"
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z", re.ASCII)

#: parts of a path relative to the data tree, e.g. ("outputs", "exp1", "model-a", ...)
Parts = tuple[str, ...]


def check_name(what: str, name: str) -> str:
    """``name`` if it can name an experiment, model or domain (it becomes an S3 key and a folder)."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise ConfigError(f"{what} {name!r} is not a plain name: ASCII letters, digits, '.', '_' and '-', "
                          "starting with a letter or digit, no '..'")
    return name


@dataclass(frozen=True)
class Place:
    """What one file of an experiment is."""

    experiment: str
    kind: str                  # "output" or "evaluation"
    model: str | None = None
    domain: str | None = None  # "chess", from the "chess_task" folder
    task: str | None = None
    evaluator: str | None = None  # an evaluation file at task level: its name without ".json"
    run: str | None = None     # outputs: the run folder, when the task has one
    video: bool = False


def _task(parts: Parts, at: int) -> tuple[str | None, str | None, str | None]:
    """(model, domain, task) when ``parts[at]`` is ``<domain>_task`` (model before it, task after)."""
    if len(parts) > at + 1 and (m := DOMAIN_DIR_RE.match(parts[at])):
        return parts[at - 1], m.group(1), parts[at + 1]
    return (parts[at - 1] if len(parts) > at else None), None, None


def output_place(parts: Parts) -> Place:
    """``outputs/<experiment>/...``."""
    model, domain, task = _task(parts, 3)
    rest = parts[5:] if task else ()
    run = rest[0] if len(rest) > 1 and rest[0] not in ("video", "question") else None
    inner = rest[1:] if run else rest
    video = len(inner) == 2 and inner[0] == "video" and Path(inner[1]).suffix.lower() in VIDEO_SUFFIXES
    return Place(parts[1], "output", model, domain, task, run=run, video=video)


def evaluation_place(parts: Parts, flat: set[str], nested: set[tuple[str, str]]) -> Place | None:
    """``evaluations/...``: which experiment's, by the experiment folders found (:func:`evaluation_roots`)."""
    if parts[1] in flat:
        base = 2
    elif len(parts) > 2 and (parts[1], parts[2]) in nested:
        base = 3
    else:
        return None
    model, domain, task = _task(parts, base + 1)
    evaluator = parts[-1][: -len(".json")] if task and len(parts) == base + 4 and parts[-1].endswith(".json") \
        else None
    return Place(parts[base - 1], "evaluation", model, domain, task, evaluator=evaluator)


def evaluation_roots(files: Iterable[Parts]) -> tuple[set[str], set[tuple[str, str]]]:
    """The experiment folders under ``evaluations/``: flat ``X`` and (evaluator folder, experiment)
    pairs, each holding at least one file at evaluation depth."""
    flat, nested = set(), set()
    for parts in files:
        if len(parts) == 6 and DOMAIN_DIR_RE.match(parts[3]) and parts[5].endswith(".json"):
            flat.add(parts[1])
        if len(parts) == 7 and DOMAIN_DIR_RE.match(parts[4]) and parts[6].endswith(".json"):
            nested.add((parts[1], parts[2]))
    nested = {(f, x) for f, x in nested if f not in flat and f != x}  # X/X/...: experiment X's model X
    return flat, nested


# -- walking -----------------------------------------------------------------------------------


@dataclass
class Walked:
    files: list[tuple[Parts, int]] = field(default_factory=list)  # (parts under the data tree, size)
    problems: list[Problem] = field(default_factory=list)


def walk(data: Path, top: str, out: Walked | None = None) -> Walked:
    """Every regular file under ``data/<top>`` (see the module docstring for what is skipped)."""
    out = out or Walked()
    root = data / top
    if not root.is_dir() or root.is_symlink():
        return out
    root_real = os.path.realpath(root)
    stack: list[tuple[str, Parts]] = [(str(root), (top,))]
    while stack:
        folder, rel = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            out.problems.append(Problem(folder, "unreadable", f"cannot list it ({exc.strerror or exc})", "warning"))
            continue
        for entry in entries:
            if entry.name.startswith(".") or entry.name in SKIPPED_NAMES:
                continue
            kind = _kind(entry, root_real, out.problems)
            if kind == "dir":
                stack.append((entry.path, (*rel, entry.name)))
            elif kind == "file":
                out.files.append(((*rel, entry.name), entry.stat().st_size))
    out.files.sort()
    return out


def _kind(entry: os.DirEntry[str], root_real: str, problems: list[Problem]) -> str | None:
    kind, real = entry_kind(entry, root_real)
    if kind == "escape":
        problems.append(Problem(entry.path, "path_escape", f"a link to {real}, outside {root_real}: never "
                                "followed (the snapshot refuses it); copy the file in instead", "warning"))
    elif kind == "linked_folder":
        problems.append(Problem(entry.path, "linked_folder", "a link to a folder: not followed", "warning"))
    elif kind == "special":
        problems.append(Problem(entry.path, "not_a_file", "not a regular file (FIFO, socket, device or broken "
                                "link): never opened", "warning"))
    return kind if kind in ("dir", "file") else None


# -- what an experiment holds ------------------------------------------------------------------


@dataclass
class Summary:
    """What the files of one experiment hold (counted from their paths alone)."""

    models: set[str] = field(default_factory=set)
    domains: set[str] = field(default_factory=set)
    tasks: set[tuple[str, str, str]] = field(default_factory=set)        # (model, domain, task) with outputs
    with_video: set[tuple[str, str, str]] = field(default_factory=set)
    evaluations: Counter[str] = field(default_factory=Counter)           # evaluator -> evaluation files
    evaluated: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)  # task -> its evaluation files
    runs: dict[tuple[str, str, str, str], bool] = field(default_factory=dict)      # run folder -> has a video
    files: int = 0
    bytes: int = 0

    def add(self, place: Place, path: str, size: int) -> None:
        self.files += 1
        self.bytes += size
        if place.model:
            self.models.add(place.model)
        if place.domain:
            self.domains.add(place.domain)
        if not (place.model and place.domain and place.task):
            return
        task = (place.model, place.domain, place.task)
        if place.kind == "output":
            self.tasks.add(task)
            if place.video:
                self.with_video.add(task)
            if place.run:
                self.runs[(*task, place.run)] = self.runs.get((*task, place.run), False) or place.video
        elif place.evaluator:
            self.evaluations[place.evaluator] += 1
            self.evaluated.setdefault(task, []).append(path)

    def as_dict(self) -> dict[str, Any]:
        return {"models": sorted(self.models), "domains": sorted(self.domains), "tasks": len(self.tasks),
                "tasks_with_video": len(self.with_video), "evaluations": dict(sorted(self.evaluations.items())),
                "files": self.files, "bytes": self.bytes}

    def problems(self, data: Path, experiment: str) -> list[Problem]:
        """Warnings naming the path: a task or run folder without a video, an evaluation whose task
        has no output."""
        out = []
        with_runs = {run[:3] for run in self.runs}
        for m, d, t in sorted(self.tasks - self.with_video - with_runs):
            folder = data / OUTPUTS / experiment / m / f"{d}_task" / t
            out.append(Problem(str(folder), "missing_video", "no video/<file> in this task folder", "warning"))
        for (m, d, t, r), has in sorted(self.runs.items()):
            if not has:
                folder = data / OUTPUTS / experiment / m / f"{d}_task" / t / r
                out.append(Problem(str(folder), "missing_video", "a run folder without video/<file>", "warning"))
        for task, paths in sorted(self.evaluated.items()):
            if task not in self.tasks:
                out += [Problem(str(data / p), "orphan_evaluation", f"an evaluation of {task[0]} on {task[2]}, "
                                "whose task has no output folder", "warning") for p in paths]
        return out


def summarize(data: Path, files: list[tuple[Parts, int]]) -> dict[str, Summary]:
    """Every experiment the files (paths under the data tree) belong to, with what it holds."""
    flat, nested = evaluation_roots([p for p, _ in files if p[0] == EVALUATIONS])
    out: dict[str, Summary] = {}
    for parts, size in files:
        if len(parts) < 3:
            continue
        place = output_place(parts) if parts[0] == OUTPUTS else evaluation_place(parts, flat, nested)
        if place is not None:
            out.setdefault(place.experiment, Summary()).add(place, "/".join(parts), size)
    return out


def experiment_folders(data: Path, experiment: str, models: list[str] | None = None) -> list[str]:
    """The folders (relative to ``data``) that hold ``experiment`` (only ``models`` of it when given):
    ``outputs/<experiment>`` and its evaluation folders in either layout."""
    evaluations = walk(data, EVALUATIONS)
    flat, nested = evaluation_roots([p for p, _ in evaluations.files])
    roots = [f"{OUTPUTS}/{experiment}"]
    roots += [f"{EVALUATIONS}/{experiment}"] if experiment in flat else []
    roots += [f"{EVALUATIONS}/{f}/{x}" for f, x in sorted(nested) if x == experiment]
    found = [f"{r}/{m}" for r in roots for m in models] if models else roots
    return [f for f in found if (data / f).is_dir() and not (data / f).is_symlink()]
