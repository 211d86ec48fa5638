"""The dataset manifest ``data/questions/vmeval_dataset.json``: its document, and its differences from the folders.

Fields the original tools wrote (``name``, ``description``, ``created_at``,
``total_pairs``, ``pairs``) are kept; ``version``, ``statistics`` and
``questions`` follow DATA_MANAGEMENT.md. Writing is deterministic: sorted, and
no wall-clock field unless one is given (or already present in the file).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any, Literal, NamedTuple

from .._shared.jsonstream import JsonStream, JsonStreamError
from .model import DATASET_MANIFEST, Folders, Listed, Problem, Question, folded


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


class _Absent:
    """A field an entry does not give: not compared (``repr``: ``<absent>``)."""

    def __repr__(self) -> str:
        return "<absent>"


#: an entry's field that the manifest does not give (the seed's ``pairs`` give no path)
ABSENT: Any = _Absent()
#: an entry's path that is what it should be, ``<domain>_task/<id>`` (not kept: it is built again)
_USUAL_PATH: Any = _Absent()


class ManifestEntry(NamedTuple):
    """What :func:`manifest_problems` compares of one listed question: its id (as ``str()`` of
    what is listed), and its domain, difficulty and path as listed (any JSON value), or
    :data:`ABSENT`. A tuple, with the repeated domain and difficulty strings shared: the manifest
    lists every question, so this is what the check holds per question, not the entry."""

    id: str
    domain: Any
    difficulty: Any
    stored_path: Any

    @property
    def path(self) -> Any:
        if self.stored_path is _USUAL_PATH:
            return f"{self.domain}_task/{self.id}"
        return self.stored_path


class _Rows:
    """Builds :class:`ManifestEntry` rows from parsed entries, sharing equal domain and
    difficulty strings, and each id with the folder name of that id, if ``folders`` is given."""

    def __init__(self, folders: Folders | None = None) -> None:
        self._strings: dict[str, str] = {}
        self._folders = folders

    def _id(self, qid: Any) -> str:
        return self._folders.shared(str(qid)) if self._folders is not None else str(qid)

    def _shared(self, value: Any) -> Any:
        return self._strings.setdefault(value, value) if type(value) is str else value

    def question(self, e: dict[str, Any]) -> ManifestEntry:
        """A ``questions`` entry: what it does not give is not compared."""
        qid, domain = e.get("id"), self._shared(e["domain"]) if "domain" in e else ABSENT
        path = e["path"] if "path" in e else ABSENT
        if type(qid) is str and type(domain) is str and path == f"{domain}_task/{qid}":
            path = _USUAL_PATH
        return ManifestEntry(self._id(qid), domain, self._shared(e["difficulty"]) if "difficulty" in e else ABSENT,
                             path)

    def pair(self, p: dict[str, Any]) -> ManifestEntry:
        """A seed ``pairs`` entry: no path; a missing domain or difficulty is compared as None."""
        return ManifestEntry(self._id(p.get("id")), self._shared(p.get("domain")), self._shared(p.get("difficulty")),
                             ABSENT)


@dataclass
class ManifestEntries:
    """What :func:`manifest_problems` needs of ``vmeval_dataset.json``: its question entries
    (``None`` if the file is absent or unreadable, with the problem that says so), and its
    ``total_pairs``. Read apart from the comparison so the build can read it while the last
    worker runs."""

    path: Path
    entries: list[ManifestEntry] | None
    total: Any = None
    problems: list[Problem] = field(default_factory=list)


class _Document(NamedTuple):
    """What one pass over the manifest found: the last ``questions`` member (None: absent or
    null; False: not a list of objects), the last ``pairs`` member's objects (None: dropped
    while reading, since a ``questions`` list came before or after it), ``total_pairs``."""

    questions: list[ManifestEntry] | None | Literal[False]
    pairs: list[ManifestEntry] | None
    total: Any


def _questions(stream: JsonStream, rows: _Rows) -> list[ManifestEntry] | None | Literal[False]:
    """The ``questions`` member's entries (None: null; False: not a list of objects)."""
    if stream.skip_ws() != "[":
        return None if stream.value() is None else False
    found: list[ManifestEntry] | None = []
    for _ in stream.items():
        e = stream.value()
        if found is not None:
            if isinstance(e, dict):
                found.append(rows.question(e))
            else:
                found = None  # read on to the end: invalid JSON would be the error to report
    return found if found is not None else False


def _pairs(stream: JsonStream, rows: _Rows | None) -> list[ManifestEntry] | None:
    """The ``pairs`` member's objects (``rows`` None: only read through; None). Not a list: no
    entries (as before for an object or a string; other values were a crash)."""
    if stream.skip_ws() != "[":
        stream.value()
        return [] if rows is not None else None
    found: list[ManifestEntry] = []
    for _ in stream.items():
        p = stream.value()
        if rows is not None and isinstance(p, dict):
            found.append(rows.pair(p))
    return found if rows is not None else None


def _read_document(stream: JsonStream, keep_pairs: bool, folders: Folders | None) -> _Document | None:
    """One pass over the manifest (None: valid JSON, but not an object). The entries are read one
    at a time, keeping a :class:`ManifestEntry` each; ``pairs`` (every question's full metadata)
    only while no ``questions`` list is seen, unless ``keep_pairs``.

    As ``json.loads`` would give it: a repeated key's last value counts, and ``questions`` (if
    not null) counts over ``pairs`` wherever each comes in the object."""
    if stream.start() != "{":  # not an object, but it must be JSON: that error comes first
        if stream.skip_ws() == "[":
            for _ in stream.items():
                stream.value()
        else:
            stream.value()
        stream.end()
        return None
    rows = _Rows(folders)
    questions: list[ManifestEntry] | None | Literal[False] = None
    pairs: list[ManifestEntry] | None = []
    total = None
    for key in stream.members():
        if key == "questions":
            if stream.skip_ws() == "[" and not keep_pairs:
                pairs = None  # this list counts (unless a later null one: then read again)
            questions = _questions(stream, rows)
        elif key == "pairs":
            pairs = _pairs(stream, rows) if keep_pairs or questions is None else _pairs(stream, None)
        else:
            value = stream.value()
            if key == "total_pairs":
                total = value
    stream.end()
    return _Document(questions, pairs, total)


def read_manifest_entries(questions_dir: Path, folders: Folders | None = None) -> ManifestEntries:
    """The question entries of ``vmeval_dataset.json`` (each a :class:`ManifestEntry`), read a
    chunk at a time: the file holds every question's metadata, 100 MB at 100,000 questions, and
    none of it is kept (:class:`~vmeval_hf._shared.jsonstream.JsonStream`). Problems, and the
    wording of a JSON error, are those of parsing the whole text.

    ``folders``: the tree's folders, if listed already: an entry's id is then the string they
    hold for it, not a copy."""
    path = questions_dir / DATASET_MANIFEST
    if not path.exists():
        return ManifestEntries(path, None, problems=[Problem(
            str(path), "manifest_missing", "no master manifest; run `vmeval-hf manifest` to write it", "warning")])
    try:
        with path.open("rb") as f:
            doc = _read_document(JsonStream(f), False, folders)
        if doc is not None and doc.questions is None and doc.pairs is None:
            # a "questions" list was dropped for a later null one: read the pairs again
            with path.open("rb") as f:
                doc = _read_document(JsonStream(f), True, folders)
    except (OSError, JsonStreamError, RecursionError) as exc:
        return ManifestEntries(path, None, problems=[Problem(
            str(path), "manifest_invalid", f"cannot read the manifest ({exc}); run `vmeval-hf manifest` to rewrite it")])
    if doc is None:
        return ManifestEntries(path, None, problems=[Problem(
            str(path), "manifest_invalid", "manifest is not a JSON object; run `vmeval-hf manifest`")])
    listed = doc.questions if doc.questions is not None else doc.pairs
    if listed is None or listed is False:
        return ManifestEntries(path, None, problems=[Problem(
            str(path), "manifest_invalid", "manifest `questions` is not a list of objects; run `vmeval-hf manifest`")])
    return ManifestEntries(path, listed, doc.total)


def _last_of_runs(rows: list[Any]) -> Iterator[Any]:
    """``rows`` sorted by id: the last of each run of equal ids (as a dict by id would keep it)."""
    for i, row in enumerate(rows):
        if i + 1 == len(rows) or rows[i + 1].id != row.id:
            yield row


def manifest_problems(questions_dir: Path, questions: list[Listed], folders: Collection[str],
                      read: ManifestEntries | None = None) -> list[Problem]:
    """Differences between ``vmeval_dataset.json`` and the folders (errors), or a warning if it is absent.

    ``questions``: the valid questions; ``folders``: the id of every question folder, valid or not;
    ``read``: the manifest as :func:`read_manifest_entries` gave it (read now if not given).

    Both sides are sorted by id and walked together (no dict per question): the problems come
    in id order within each kind, listed entries first, then folders, then fields.
    """
    if read is None:
        read = read_manifest_entries(questions_dir, folders if isinstance(folders, Folders) else None)
    if read.entries is None:
        return list(read.problems)
    where, listed, total = str(read.path), read.entries, read.total
    if not isinstance(folders, (AbstractSet, Mapping)):
        folders = set(folders)
    problems = []
    fix = "run `vmeval-hf manifest` to rewrite it from the folders"
    # A repeated entry would hide from every check below (only its last one is compared).
    seen: set[str] = set()
    for e in listed:
        key = folded(e.id)
        if key in seen:
            problems.append(Problem(where, "manifest_duplicate_id", f"lists {e.id} more than once; {fix}",
                                    question=e.id))
        seen.add(key)
    del seen
    by_id = attrgetter("id")
    in_file = _last_of_runs(sorted(listed, key=by_id))
    on_disk = _last_of_runs(sorted(questions, key=by_id))
    lists_missing, missing, differs = [], [], []
    e, q = next(in_file, None), next(on_disk, None)
    while e is not None or q is not None:
        if q is None or (e is not None and e.id < q.id):  # listed, not a valid question
            if e.id not in folders:
                lists_missing.append(Problem(where, "manifest_lists_missing",
                                             f"lists {e.id} but no folder holds it; {fix}", question=e.id))
            e = next(in_file, None)
        elif e is None or q.id < e.id:  # a valid question, not listed
            missing.append(Problem(where, "manifest_missing_question", f"does not list {q.source_path}; {fix}",
                                   question=q.source_path))
            q = next(on_disk, None)
        else:
            for key, listed_as, is_ in (("domain", e.domain, q.domain), ("difficulty", e.difficulty, q.difficulty),
                                        ("path", e.path, q.source_path)):
                if listed_as is not ABSENT and listed_as != is_:
                    differs.append(Problem(
                        where, "manifest_field_differs",
                        f"{q.id}: {key} is {listed_as!r} in the manifest but {is_!r} in the folder; {fix}",
                        question=q.source_path))
            e, q = next(in_file, None), next(on_disk, None)
    problems += lists_missing + missing + differs
    if total is not None and total != len(listed):
        problems.append(Problem(where, "manifest_count_differs",
                                f"total_pairs is {total} but {len(listed)} questions are listed; {fix}"))
    return problems
