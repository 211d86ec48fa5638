"""The per-question records of a whole-tree check, kept on disk: :class:`Records`.

Validating a tree compares every question folder with the dataset manifest's entry for it and
looks for ids used twice. Held in memory, a record per folder, per valid question and per
manifest entry grew ``vmeval-hf validate`` by about 470 bytes a question (40 MB more at 100,000
questions than at 10,000); here they go to SQLite databases in a temporary folder instead, and
the comparisons read them back as streams sorted by id (:func:`~.dataset_manifest.sync_problems`),
so memory stays that of SQLite's page caches however big the tree.

Two databases: the tree's folders (written by this process: the folder listing, then which
folders hold a valid question), and the manifest's entries (written by whichever process reads
the manifest, a worker while the others check folders: :func:`store_manifest`).

Strings that are compared are stored as their UTF-8 bytes (``surrogatepass``: the manifest's
JSON may hold any code point), so SQLite's order is Python's; a manifest's value that is not a
string or null (a number, a list) is stored as its ``repr``: it is only ever shown, never equal
to what a folder gives.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from .._shared.scratch import as_blob as _text
from .._shared.scratch import connect as _connect
from .._shared.scratch import of_blob as _str
from .._shared.scratch import scratch_store
from .dataset_manifest import ABSENT, USUAL_PATH, ManifestEntry, read_listed, sync_problems
from .model import Listed, Problem, folded

#: rows written at a time
_BATCH = 1000
# the only integers among the stored values: ABSENT, and a path that is the usual one (not
# stored: ManifestEntry builds it again)
_ABSENT_CELL, _USUAL_CELL = 0, 1


class _Shown:
    """A manifest's value that is neither a string nor null, read back: its ``repr`` as listed;
    equal to nothing a folder gives (a domain, a difficulty, a path: strings or None)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _cell(value: Any) -> Any:
    """A manifest's value (or a folder's difficulty) as stored."""
    if type(value) is str:
        return _text(value)
    if value is None:
        return None
    if value is ABSENT:
        return _ABSENT_CELL
    if value is USUAL_PATH:
        return _USUAL_CELL
    return repr(value)


def _value(cell: Any) -> Any:
    """A stored value, read back (:func:`_cell` reversed, but for a :class:`_Shown`)."""
    if type(cell) is bytes:
        return _str(cell)
    if cell is None:
        return None
    if type(cell) is int:
        return ABSENT if cell == _ABSENT_CELL else USUAL_PATH
    return _Shown(cell)


class StoredManifest(NamedTuple):
    """What :func:`store_manifest` read (small: it crosses from a worker): the manifest's path,
    how many entries it lists (None if it lists none: absent or unreadable, the problems say
    why), its ``total_pairs``, and the problems."""

    path: Path
    count: int | None
    total: Any
    problems: list[Problem]


class _Run:
    """One ``questions`` or ``pairs`` list of the manifest, as it is read: its entries are
    written a batch at a time (:class:`~.dataset_manifest.EntryRun`)."""

    def __init__(self, writer: _ManifestWriter, number: int) -> None:
        self.writer, self.number = writer, number

    def append(self, entry: ManifestEntry) -> None:
        self.writer.add(self.number, entry)


class _ManifestWriter:
    """The manifest's entries, into the database at ``path``: every list read (a repeated key
    is read again), then only the one that counts is kept, indexed by id and by folded id."""

    def __init__(self, path: Path) -> None:
        self.conn = _connect(path)
        self.conn.execute("CREATE TABLE entries (seq INTEGER PRIMARY KEY, run INTEGER, id BLOB, key BLOB, "
                          "domain, difficulty, path)")
        self.runs = 0
        self.rows: list[tuple[Any, ...]] = []

    def run(self) -> _Run:
        self.runs += 1
        return _Run(self, self.runs)

    def add(self, run: int, e: ManifestEntry) -> None:
        key = folded(e.id)
        self.rows.append((run, _text(e.id), None if key is e.id else _text(key), _cell(e.domain),
                          _cell(e.difficulty), _cell(e.stored_path)))
        if len(self.rows) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        self.conn.executemany("INSERT INTO entries (run, id, key, domain, difficulty, path) VALUES (?, ?, ?, ?, ?, ?)",
                              self.rows)
        self.rows = []

    def keep(self, run: _Run) -> int:
        """Keep only ``run``'s entries; how many there are."""
        self.flush()
        self.conn.execute("DELETE FROM entries WHERE run != ?", (run.number,))
        self.conn.execute("CREATE INDEX entries_by_id ON entries (id, seq, domain, difficulty, path)")  # covering
        self.conn.execute("CREATE INDEX entries_by_key ON entries (coalesce(key, id))")
        self.conn.commit()
        count: int = self.conn.execute("SELECT count(*) FROM entries").fetchone()[0]
        return count


def store_manifest(questions_dir: Path, database: Path) -> StoredManifest:
    """Read ``vmeval_dataset.json`` of ``questions_dir`` (as
    :func:`~.dataset_manifest.read_manifest_entries` reads it) into the new database file
    ``database``, for :meth:`Records.manifest_problems`. Run in a worker, beside the folder checks."""
    writer = _ManifestWriter(database)
    try:
        path, listed, total, problems = read_listed(questions_dir, writer.run, lazy_pairs=True)
        count = writer.keep(listed) if isinstance(listed, _Run) else None
    finally:
        writer.conn.close()
    return StoredManifest(path, count, total, problems)


class _Span(NamedTuple):
    """Where a domain's folders are in tree order: the first one's position, how many."""

    first: int
    count: int


class Records:
    """The folders of a tree, and which hold a valid question, in the database ``tree.sqlite3``
    in ``folder``; ``folder / "manifest.sqlite3"`` is for :func:`store_manifest`. Use
    :func:`tree_records`, which makes and removes the folder.

    A folder's position is its place in tree order (domains in order, ids in natural order
    within each): the checks run over runs of positions, in workers, and report back which
    positions hold a valid question (:meth:`mark_valid`)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.manifest_file = folder / "manifest.sqlite3"
        self.conn = _connect(folder / "tree.sqlite3")
        self.conn.execute("CREATE TABLE listing (domain INTEGER, digits INTEGER, number BLOB, name BLOB)")
        self.conn.execute("CREATE TABLE folders (pos INTEGER PRIMARY KEY, domain INTEGER, name BLOB, "
                          "valid INTEGER NOT NULL DEFAULT 0, difficulty)")
        self.domains: list[str] = []
        self.spans: list[_Span] = []
        self._rows: list[tuple[int, int, bytes, bytes]] = []
        self._checked = False  # whether add_checked made its table

    # --- the listing --------------------------------------------------------------------------

    def add_domain(self, domain: str, listing: Callable[[Callable[[str], None]], int | None]) -> int | None:
        """List the next domain (in domain order): ``listing`` hands each question folder's name
        to the function it is given, and returns how many entries the folder holds, or None if
        it could not be listed (its names are then dropped). Returns what ``listing`` returned."""
        index = len(self.domains)
        self.domains.append(domain)
        rows = self._rows

        def found(name: str) -> None:
            number = name.rpartition("_")[2].lstrip("0")  # 4+ ASCII digits: in natural order by length, then text
            rows.append((index, len(number), number.encode(), name.encode()))
            if len(rows) >= _BATCH:
                self._flush_listing()

        count = listing(found)
        self._flush_listing()
        if count is None:
            self.conn.execute("DELETE FROM listing WHERE domain = ?", (index,))
        return count

    def add_checked(self, domain: str, folders: Iterable[str], valid: Iterable[Listed]) -> int:
        """List the next domain (in domain order) from checks that ran already (the build's
        workers): the names of its question folders, valid or not, and the listings of its valid
        questions (each a folder's); those are marked valid as :meth:`order` numbers the folders.
        How many folders there are."""
        index = len(self.domains)
        count = 0

        def listing(found: Callable[[str], None]) -> int:
            nonlocal count
            for name in folders:
                found(name)
                count += 1
            return count

        self.add_domain(domain, listing)
        if not self._checked:
            self.conn.execute("CREATE TABLE checked (domain INTEGER, name BLOB, difficulty, PRIMARY KEY (domain, name))")
            self._checked = True
        rows = ((index, _text(row.id), _cell(row.difficulty)) for row in valid)
        while batch := list(itertools.islice(rows, _BATCH)):
            self.conn.executemany("INSERT INTO checked VALUES (?, ?, ?)", batch)
        return count

    def _flush_listing(self) -> None:
        self.conn.executemany("INSERT INTO listing VALUES (?, ?, ?, ?)", self._rows)
        self._rows.clear()

    def order(self) -> list[_Span]:
        """Once every domain is listed: number the folders in tree order; each domain's span."""
        if self._checked:  # valid already: marked as they are numbered
            self.conn.execute("INSERT INTO folders (domain, name, valid, difficulty) "
                              "SELECT l.domain, l.name, c.name IS NOT NULL, c.difficulty FROM listing l "
                              "LEFT JOIN checked c ON c.domain = l.domain AND c.name = l.name "
                              "ORDER BY l.domain, l.digits, l.number, l.name")
            self.conn.execute("DROP TABLE checked")
        else:
            self.conn.execute("INSERT INTO folders (domain, name) SELECT domain, name FROM listing "
                              "ORDER BY domain, digits, number, name")
        self.conn.execute("DROP TABLE listing")
        self.conn.commit()
        spans = {d: _Span(first, count) for d, first, count in
                 self.conn.execute("SELECT domain, min(pos), count(*) FROM folders GROUP BY domain")}
        self.spans = [spans.get(d, _Span(0, 0)) for d in range(len(self.domains))]
        return self.spans

    def names(self, first: int, count: int) -> list[str]:
        """The names of the ``count`` folders from position ``first`` on, in tree order."""
        return [name.decode() for (name,) in self.conn.execute(
            "SELECT name FROM folders WHERE pos >= ? AND pos < ? ORDER BY pos", (first, first + count))]

    def mark_valid(self, found: Iterable[tuple[int, str | None]]) -> None:
        """Note the folders at these positions as valid questions, each with its difficulty."""
        self.conn.executemany("UPDATE folders SET valid = 1, difficulty = ? WHERE pos = ?",
                              ((_cell(difficulty), pos) for pos, difficulty in found))
        self.conn.commit()

    # --- the tree-wide checks -----------------------------------------------------------------

    def valid_count(self) -> int:
        """How many valid questions the tree has."""
        count: int = self.conn.execute("SELECT count(*) FROM folders WHERE valid").fetchone()[0]
        return count

    def _by_name(self) -> None:
        """Index the folders by name (covering what the comparison reads), once they are all checked."""
        self.conn.execute("CREATE INDEX IF NOT EXISTS folders_by_name ON folders (name, pos, valid, domain, difficulty)")
        self.conn.commit()

    def _listed(self, row: Iterable[Any]) -> Listed:
        name, domain, difficulty = row
        return Listed(_str(name), self.domains[domain], _value(difficulty))

    def repeated(self) -> list[tuple[Listed, Listed]]:
        """Each valid question whose id an earlier one has, with that first one, in tree order
        (as :func:`~.checker.repeated_ids`: the ids are folder names, lowercase ASCII, so their
        folded form is themselves). Never any in a tree listed here, but checked all the same."""
        self._by_name()
        found: list[tuple[int, Listed, Listed]] = []
        for (name,) in self.conn.execute("SELECT name FROM folders WHERE valid GROUP BY name HAVING count(*) > 1"):
            rows = [(pos, self._listed(row)) for pos, *row in self.conn.execute(
                "SELECT pos, name, domain, difficulty FROM folders WHERE valid AND name = ? ORDER BY pos", (name,))]
            found += [(pos, row, rows[0][1]) for pos, row in rows[1:]]
        return [(row, first) for _, row, first in sorted(found, key=lambda f: f[0])]

    def _questions_by_id(self) -> Iterator[Listed]:
        """The valid questions, sorted by id (stably: of equal ids, in tree order)."""
        for row in self.conn.execute("SELECT name, domain, difficulty FROM folders INDEXED BY folders_by_name "
                                     "WHERE valid ORDER BY name, pos"):
            yield self._listed(row)

    def is_folder(self, qid: str) -> bool:
        """Whether ``qid`` names a question folder (valid or not)."""
        return self.conn.execute("SELECT 1 FROM folders WHERE name = ? LIMIT 1", (_text(qid),)).fetchone() is not None

    def manifest_problems(self, stored: StoredManifest) -> list[Problem]:
        """The differences between the manifest :func:`store_manifest` read and the folders, as
        :func:`~.dataset_manifest.manifest_problems` finds them."""
        if stored.count is None:
            return list(stored.problems)
        self._by_name()
        with contextlib.closing(_connect(self.manifest_file)) as m:
            repeated = (_str(qid) for (qid,) in m.execute(
                "SELECT e.id FROM entries e JOIN (SELECT coalesce(key, id) AS k, min(seq) AS first FROM entries "
                "GROUP BY k HAVING count(*) > 1) d ON coalesce(e.key, e.id) = d.k AND e.seq > d.first ORDER BY e.seq"))
            listed = (ManifestEntry(_str(qid), _value(domain), _value(difficulty), _value(path))
                      for qid, domain, difficulty, path in m.execute(
                          "SELECT id, domain, difficulty, path FROM entries ORDER BY id, seq"))
            return sync_problems(str(stored.path), repeated, listed, self._questions_by_id(), self.is_folder,
                                 stored.count, stored.total)


def tree_records() -> contextlib.AbstractContextManager[Records]:
    """:class:`Records` in a new temporary folder, removed on the way out (whatever happens); a
    failure to write them (a full disk) is a :class:`~vmeval_hf.errors.LocalFileError`."""
    return scratch_store(Records, "vmeval-checks-", "the tree-wide checks' records")
