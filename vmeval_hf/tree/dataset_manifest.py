"""The dataset manifest ``data/questions/vmeval_dataset.json``: its document, and its differences from the folders.

Fields the original tools wrote (``name``, ``description``, ``created_at``,
``total_pairs``, ``pairs``) are kept; ``version``, ``statistics`` and
``questions`` follow DATA_MANAGEMENT.md. Writing is deterministic: sorted, and
no wall-clock field unless one is given (or already present in the file).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

from .._shared.jsonstream import JsonStream, JsonStreamError
from .._shared.ordered import outer_join
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
USUAL_PATH: Any = _Absent()


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
        if self.stored_path is USUAL_PATH:
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
            path = USUAL_PATH
        return ManifestEntry(self._id(qid), domain, self._shared(e["difficulty"]) if "difficulty" in e else ABSENT,
                             path)

    def pair(self, p: dict[str, Any]) -> ManifestEntry:
        """A seed ``pairs`` entry: no path; a missing domain or difficulty is compared as None."""
        return ManifestEntry(self._id(p.get("id")), self._shared(p.get("domain")), self._shared(p.get("difficulty")),
                             ABSENT)


class EntryRun(Protocol):
    """Where the entries of one ``questions`` or ``pairs`` list go as they are read: a list here,
    a table on disk for a whole-tree check (:mod:`vmeval_hf.tree.records`)."""

    def append(self, entry: ManifestEntry, /) -> None: ...


#: makes the run for the next list read
NewRun = Callable[[], EntryRun]


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

    questions: EntryRun | None | Literal[False]
    pairs: EntryRun | None
    total: Any


def _questions(stream: JsonStream, rows: _Rows, new_run: NewRun) -> EntryRun | None | Literal[False]:
    """The ``questions`` member's entries (None: null; False: not a list of objects)."""
    if stream.skip_ws() != "[":
        return None if stream.value() is None else False
    found: EntryRun | None = new_run()
    for _ in stream.items():
        e = stream.value()
        if found is not None:
            if isinstance(e, dict):
                found.append(rows.question(e))
            else:
                found = None  # read on to the end: invalid JSON would be the error to report
    return found if found is not None else False


def _pairs(stream: JsonStream, rows: _Rows | None, new_run: NewRun) -> EntryRun | None:
    """The ``pairs`` member's objects (``rows`` None: only read through; None). Not a list: no
    entries (as before for an object or a string; other values were a crash)."""
    if stream.skip_ws() != "[":
        stream.value()
        return new_run() if rows is not None else None
    found = new_run()
    for _ in stream.items():
        p = stream.value()
        if rows is not None and isinstance(p, dict):
            found.append(rows.pair(p))
    return found if rows is not None else None


def _read_document(stream: JsonStream, keep_pairs: bool, folders: Folders | None, new_run: NewRun,
                   lazy: bool = False) -> _Document | None:
    """One pass over the manifest (None: valid JSON, but not an object). The entries are read one
    at a time, keeping a :class:`ManifestEntry` each; ``pairs`` (every question's full metadata)
    only while no ``questions`` list is seen, unless ``keep_pairs``; never if ``lazy`` (then
    ``pairs`` is None: read again for them if ``questions`` is None).

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
    questions: EntryRun | None | Literal[False] = None
    pairs: EntryRun | None = None if lazy else new_run()
    total = None
    for key in stream.members():
        if key == "questions":
            if stream.skip_ws() == "[" and not keep_pairs:
                pairs = None  # this list counts (unless a later null one: then read again)
            questions = _questions(stream, rows, new_run)
        elif key == "pairs":
            wanted = keep_pairs or (questions is None and not lazy)
            pairs = _pairs(stream, rows if wanted else None, new_run)
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
    path, listed, total, problems = read_listed(questions_dir, list, folders)
    return ManifestEntries(path, listed, total, problems)  # type: ignore[arg-type]  (runs of list are lists)


def read_listed(questions_dir: Path, new_run: NewRun, folders: Folders | None = None, *,
                lazy_pairs: bool = False) -> tuple[Path, EntryRun | None, Any, list[Problem]]:
    """:func:`read_manifest_entries` into runs that ``new_run`` makes: the manifest's path, the
    run that counts (None if none does: the problems say why), ``total_pairs``, the problems.

    ``lazy_pairs``: read the ``pairs`` entries only if no ``questions`` list counts, in a second
    pass over the file: for runs that cost more to fill than parsing costs (on disk). A manifest
    that ``vmeval-hf manifest`` wrote has both lists, ``pairs`` first: its ``pairs`` are then
    never kept, where otherwise they are kept until ``questions`` comes."""
    path = questions_dir / DATASET_MANIFEST
    if not path.exists():
        return path, None, None, [Problem(
            str(path), "manifest_missing", "no master manifest; run `vmeval-hf manifest` to write it", "warning")]
    try:
        with path.open("rb") as f:
            doc = _read_document(JsonStream(f), False, folders, new_run, lazy_pairs)
        if doc is not None and doc.questions is None and doc.pairs is None:
            # a "questions" list was dropped for a later null one (or lazy_pairs): read the pairs again
            with path.open("rb") as f:
                doc = _read_document(JsonStream(f), True, folders, new_run)
    except (OSError, JsonStreamError, RecursionError) as exc:
        return path, None, None, [Problem(
            str(path), "manifest_invalid", f"cannot read the manifest ({exc}); run `vmeval-hf manifest` to rewrite it")]
    if doc is None:
        return path, None, None, [Problem(
            str(path), "manifest_invalid", "manifest is not a JSON object; run `vmeval-hf manifest`")]
    listed = doc.questions if doc.questions is not None else doc.pairs
    if listed is None or listed is False:
        return path, None, None, [Problem(
            str(path), "manifest_invalid", "manifest `questions` is not a list of objects; run `vmeval-hf manifest`")]
    return path, listed, doc.total, []


def _last_of_runs(rows: Iterable[Any]) -> Iterator[Any]:
    """``rows`` sorted by id: the last of each run of equal ids (as a dict by id would keep it)."""
    last = None
    for row in rows:
        if last is not None and row.id != last.id:
            yield last
        last = row
    if last is not None:
        yield last


def _repeated(entries: Iterable[ManifestEntry]) -> Iterator[str]:
    """The id of each entry whose id (case aside) an earlier one has, in file order."""
    seen: set[str] = set()
    for e in entries:
        key = folded(e.id)
        if key in seen:
            yield e.id
        seen.add(key)


def manifest_problems(questions_dir: Path, questions: list[Listed], folders: Collection[str],
                      read: ManifestEntries | None = None) -> list[Problem]:
    """Differences between ``vmeval_dataset.json`` and the folders (errors), or a warning if it is absent.

    ``questions``: the valid questions; ``folders``: the id of every question folder, valid or not;
    ``read``: the manifest as :func:`read_manifest_entries` gave it (read now if not given).
    As :func:`sync_problems` words and orders them.
    """
    if read is None:
        read = read_manifest_entries(questions_dir, folders if isinstance(folders, Folders) else None)
    if read.entries is None:
        return list(read.problems)
    if not isinstance(folders, (AbstractSet, Mapping)):
        folders = set(folders)
    by_id = attrgetter("id")
    return sync_problems(str(read.path), _repeated(read.entries), sorted(read.entries, key=by_id),
                         sorted(questions, key=by_id), folders.__contains__, len(read.entries), read.total)


def sync_problems(where: str, repeated: Iterable[str], listed: Iterable[ManifestEntry], questions: Iterable[Listed],
                  is_folder: Callable[[str], bool], count: int, total: Any) -> list[Problem]:
    """The differences between the manifest ``where`` and the folders, from streams: ``repeated``,
    the ids the manifest lists more than once (each time after the first, in file order);
    ``listed``, its entries sorted by id (stably: of equal ids, the last counts); ``questions``,
    the valid questions sorted by id; ``is_folder``: whether an id is a question folder's, valid
    or not; ``count``: how many entries it lists, ``total``: its ``total_pairs``.

    Both sides are walked together, so nothing per question is held here (a caller that holds
    them sorts lists; a whole-tree check reads them back from disk in order). The problems come
    in id order within each kind: repeated entries first, then listed entries without a folder,
    then folders not listed, then fields that differ, then the count.
    """
    fix = "run `vmeval-hf manifest` to rewrite it from the folders"
    # A repeated entry would hide from every check below (only its last one is compared).
    problems = [Problem(where, "manifest_duplicate_id", f"lists {qid} more than once; {fix}", question=qid)
                for qid in repeated]
    in_file, on_disk = _last_of_runs(listed), _last_of_runs(questions)
    lists_missing, missing, differs = [], [], []
    for e, q in outer_join(in_file, on_disk, attrgetter("id"), attrgetter("id")):
        if q is None:  # listed, not a valid question
            assert e is not None
            if not is_folder(e.id):
                lists_missing.append(Problem(where, "manifest_lists_missing",
                                             f"lists {e.id} but no folder holds it; {fix}", question=e.id))
        elif e is None:  # a valid question, not listed
            missing.append(Problem(where, "manifest_missing_question", f"does not list {q.source_path}; {fix}",
                                   question=q.source_path))
        else:
            for key, listed_as, is_ in (("domain", e.domain, q.domain), ("difficulty", e.difficulty, q.difficulty),
                                        ("path", e.path, q.source_path)):
                if listed_as is not ABSENT and listed_as != is_:
                    differs.append(Problem(
                        where, "manifest_field_differs",
                        f"{q.id}: {key} is {listed_as!r} in the manifest but {is_!r} in the folder; {fix}",
                        question=q.source_path))
    problems += lists_missing + missing + differs
    if total is not None and total != count:
        problems.append(Problem(where, "manifest_count_differs",
                                f"total_pairs is {total} but {count} questions are listed; {fix}"))
    return problems
