"""What a question tree is made of: the file names, limits, :class:`Question`, :class:`Problem`
and :class:`ValidationReport`, and the naming rules (``<domain>_task/<domain>_NNNN``).

The checks live in :mod:`.checker`; :mod:`.validate` runs them over a whole tree.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from ..errors import ValidationError
from .png import MAX_PIXELS

QUESTIONS = "questions"
#: the dataset manifest, ``data/questions/vmeval_dataset.json``
DATASET_MANIFEST = "vmeval_dataset.json"
FIRST, FINAL, PROMPT, METADATA = "first_frame.png", "final_frame.png", "prompt.txt", "question_metadata.json"
GOAL, VIDEO = "goal.txt", "ground_truth.mp4"
KNOWN_FILES = {FIRST, FINAL, PROMPT, METADATA, GOAL, VIDEO}

# \Z, not $: $ also matches before a trailing newline, so "chess_task\n" would pass.
DOMAIN_DIR_RE = re.compile(r"^([a-z0-9_]+)_task\Z", re.ASCII)
MAX_PROMPT_BYTES = 64 * 1024
MAX_METADATA_BYTES = 1024 * 1024
MAX_IMAGE_PIXELS = MAX_PIXELS
MAX_PNG_BYTES = 64 * 1024 * 1024
#: a ground_truth.mp4 over this is refused: the build holds about three times a video in memory while
#: writing its row group (see :class:`~vmeval_hf.release.shards.DomainWriter`), and a Parquet row group
#: holds at most 2 GiB in one column
MAX_VIDEO_BYTES = 256 * 2**20

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One finding: ``path`` (as the user would type it), a stable ``code``, a message saying what to do."""

    path: str
    code: str
    message: str
    severity: Severity = "error"
    question: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "code": self.code, "message": self.message, "severity": self.severity}


@dataclass(frozen=True)
class Question:
    """One question folder, read and checked."""

    id: str
    domain: str
    prompt: str
    source_path: str  # "chess_task/chess_0000", relative to data/questions
    folder: Path
    first_frame: Path
    final_frame: Path | None = None
    difficulty: str | None = None
    task_category: str | None = None
    goal: str | None = None
    ground_truth_video: Path | None = None
    metadata_text: str | None = None
    metadata: dict[str, Any] | None = field(default=None, repr=False, compare=False)


class Listed(NamedTuple):
    """What tree-wide checks need of a question: about a hundred bytes, where a Question is
    kilobytes (the parent of the workers holds one per question of the tree). The domain and
    difficulty strings are shared (:func:`listing`), and the path is not held: it is
    ``<domain>_task/<id>``, as :class:`~vmeval_hf.tree.checker.Checker` names every question."""

    id: str
    domain: str
    difficulty: str | None

    @property
    def source_path(self) -> str:
        return f"{self.domain}_task/{self.id}"


def listing(q: Question) -> Listed:
    # interned: every listing of a worker's run shares one string per value, and so does its pickle
    difficulty = sys.intern(q.difficulty) if type(q.difficulty) is str else q.difficulty
    return Listed(q.id, sys.intern(q.domain), difficulty)


def folded(qid: str) -> str:
    """``qid.casefold()``, the key under which two ids are the same; ``qid`` itself where that
    is equal (lowercase ASCII: every id the folder names allow), so that a set of the keys of a
    whole tree holds no new string per question."""
    return qid if qid.isascii() and qid.islower() else qid.casefold()


class Findings:
    """A report's ``problems`` sorted out: errors, warnings, and whether it is ``ok`` (no error).
    (Shared with the results dataset's report, :class:`vmeval_hf.results.model.ResultsReport`.)"""

    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def grouped(self) -> dict[str, list[Problem]]:
        """Problems grouped by question (or by path for problems outside a question)."""
        groups: dict[str, list[Problem]] = defaultdict(list)
        for p in self.problems:
            groups[p.question or p.path].append(p)
        return dict(groups)


class Folders(MutableMapping[str, str]):
    """Every question folder by name: name -> ``<domain>_task/<name>`` (a mapping, as a dict of
    them would be). The path is built when asked for, not held: the tree has one folder per
    question, and a string each would be a copy of every name again. :meth:`shared` gives the
    name string held here, so that other per-question records can share it."""

    def __init__(self, folders: Mapping[str, str] | None = None) -> None:
        self._names: dict[str, str] = {}  # name -> the same string
        self._other: dict[str, str] = {}  # a path that is not the usual one (not from a Checker)
        if folders:
            self.update(folders)

    @staticmethod
    def _usual(name: str) -> str:
        return f"{name.rpartition('_')[0]}_task/{name}"

    def __getitem__(self, name: str) -> str:
        if name not in self._names:
            raise KeyError(name)
        other = self._other.get(name)
        return other if other is not None else self._usual(name)

    def __setitem__(self, name: str, path: str) -> None:
        self._names[name] = name
        if path == self._usual(name):
            self._other.pop(name, None)
        else:
            self._other[name] = path

    def __delitem__(self, name: str) -> None:
        del self._names[name]
        self._other.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def shared(self, name: str) -> str:
        """The string held for ``name`` if it is a folder (else ``name``)."""
        return self._names.get(name, name)

    def __repr__(self) -> str:
        return f"Folders({dict(self)!r})"


@dataclass
class ValidationReport(Findings):
    questions_dir: Path
    problems: list[Problem] = field(default_factory=list)
    question_list: list[Question] = field(default_factory=list)
    #: every folder with a valid question name, valid content or not: id -> "domain_task/id"
    folders: Folders = field(default_factory=Folders)
    #: how many valid questions there are (also when ``question_list`` is not kept)
    valid: int = 0
    #: frames whose image data was checked, and frames passed by the cache of earlier verdicts
    frames_checked: int = 0
    frames_cached: int = 0

    @property
    def questions(self) -> int:
        return self.valid

    def raise_for_errors(self) -> None:
        if self.errors:
            first = self.errors[0]
            more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
            raise ValidationError(
                f"{first.path}: {first.message}{more}; run `vmeval-hf validate` to list every problem",
                problems=self.problems,
                path=first.path,
            )


def resolve_questions_dir(data_dir: str | Path | None = None, questions_dir: str | Path | None = None) -> Path:
    """``questions_dir`` if given, else ``<data_dir>/questions`` (``data_dir`` defaults to ``data``)."""
    if questions_dir is not None:
        return Path(questions_dir)
    return Path(data_dir if data_dir is not None else "data") / QUESTIONS


def question_name_re(domain: str) -> re.Pattern[str]:
    """A question folder's name: ``<domain>_NNNN``, 4+ ASCII digits."""
    return re.compile(rf"^{re.escape(domain)}_[0-9]{{4,}}\Z", re.ASCII)


def id_sort_key(qid: str) -> tuple[str, int, str]:
    """Natural order: ``chess_9999`` before ``chess_10000``."""
    prefix, _, num = qid.rpartition("_")
    return (prefix, int(num) if num.isdigit() else -1, qid)


