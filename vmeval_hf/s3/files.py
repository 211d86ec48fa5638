"""The files of one S3 mirror, kept on disk: :class:`MirrorFiles`.

A mirror hashes every file it sends, compares the list with the release's sources, with a
``MANIFEST.json`` already there and with the bucket's listing, sends what is missing, largest
first, and writes the list as its ``MANIFEST.json``. Held in memory, a record per file grew the
mirror's peak memory with the tree: +194% from 10,000 to 100,000 questions (400,000 files;
scripts/bench_scale.py). Here the list is a SQLite table in a scratch folder
(:func:`~vmeval_hf._shared.scratch.scratch_folder`, by :func:`mirror_files`), read back a page
at a time in key order, which is the order of the manifest and of the bucket's listing, so every
comparison walks two streams side by side (:func:`~vmeval_hf._shared.ordered.outer_join`).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .._shared.scratch import as_blob, connect, of_blob, scratch_store
from .layout import hash_files, walk_files, write_manifest

#: rows read or written at a time
PAGE = 4096

_COLUMNS = "key, path, size, sha256, composite, copy_from, present"


class MirrorFiles:
    """Every file of one mirror (key, local path, size, sha256; then the composite checksum of
    one stored in parts, where an incremental mirror copies it from, whether the bucket holds it
    already), in the database ``files.sqlite3`` in ``folder``. Use :func:`mirror_files`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.conn = connect(folder / "files.sqlite3")
        self.conn.execute("CREATE TABLE files (key BLOB PRIMARY KEY, path BLOB, size INTEGER, sha256 TEXT, "
                          "composite TEXT, copy_from BLOB, present INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID")
        self.count = self.bytes = 0
        self.has_data = False  # whether any file is in the data tree (not the release)

    # --- writing ------------------------------------------------------------------------------

    def scan(self, data_dir: Path, release_dir: Path | None, keep_bytes: int = 0,
             folders: Iterable[str] | None = None) -> dict[str, bytes]:
        """Walk and hash every file to mirror (:func:`~.layout.walk_files`,
        :func:`~.layout.hash_files`) into the table; the bytes kept of the first small files,
        up to ``keep_bytes``, by key."""
        bodies: dict[str, bytes] = {}
        entries = hash_files(walk_files(data_dir, release_dir, None if folders is None else list(folders)),
                             keep_bytes, bodies)
        while batch := list(itertools.islice(entries, PAGE)):
            self.conn.executemany("INSERT INTO files (key, path, size, sha256) VALUES (?, ?, ?, ?)",
                                  [(as_blob(e["key"]), as_blob(e["path"]), e["size"], e["sha256"]) for e in batch])
            self.count += len(batch)
            self.bytes += sum(e["size"] for e in batch)
            self.has_data = self.has_data or any(e["key"].startswith("data/") for e in batch)
        self.conn.commit()
        return bodies

    def mark_present(self, keys: Iterable[str]) -> None:
        """Note these files as held by the bucket already (under their keys)."""
        self._write("UPDATE files SET present = 1 WHERE key = ?", ((as_blob(k),) for k in keys))
        self.conn.commit()

    def set_copy_sources(self, previous: Iterable[dict[str, Any]]) -> int:
        """Where each file can be copied from, out of ``previous`` (another prefix's manifest
        files): the same key with the same size and sha256, else any key with them (the last in
        key order). How many files can be copied."""
        self.conn.execute("CREATE TABLE prev (key BLOB PRIMARY KEY, size, sha256) WITHOUT ROWID")
        self._write("INSERT OR REPLACE INTO prev VALUES (?, ?, ?)",
                    ((as_blob(f["key"]), f.get("size"), f.get("sha256")) for f in previous if isinstance(f.get("key"), str)))
        self.conn.execute("CREATE INDEX prev_by_content ON prev (sha256, size, key)")
        self.conn.execute(
            "UPDATE files SET copy_from = coalesce("
            "(SELECT p.key FROM prev p WHERE p.key = files.key AND p.sha256 = files.sha256 AND p.size = files.size), "
            "(SELECT max(p.key) FROM prev p WHERE p.sha256 = files.sha256 AND p.size = files.size))")
        self.conn.execute("DROP TABLE prev")
        self.conn.commit()
        found: int = self.conn.execute("SELECT count(*) FROM files WHERE copy_from IS NOT NULL").fetchone()[0]
        return found

    def _write(self, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
        """``sql`` for each of ``rows``, a page of them at a time (a stream of any length)."""
        it = iter(rows)
        while batch := list(itertools.islice(it, PAGE)):
            self.conn.executemany(sql, batch)

    def record(self, entries: Iterable[dict[str, Any]]) -> None:
        """Keep the composite checksum of each of ``entries`` found stored in parts (sent, copied
        or checked), for the manifest."""
        rows = [(e["composite_sha256"], as_blob(e["key"])) for e in entries if e.get("composite_sha256")]
        if rows:
            self.conn.executemany("UPDATE files SET composite = ? WHERE key = ?", rows)
            self.conn.commit()

    # --- reading ------------------------------------------------------------------------------

    def entries(self) -> Iterator[dict[str, Any]]:
        """Every file, in key order, as ``{"key", "path", "size", "sha256"}`` with
        ``composite_sha256`` and ``copy_from`` when set and ``present`` when held already; a
        page at a time (no statement stays open between pages, so the table may change between
        them)."""
        for page in self._pages(f"SELECT {_COLUMNS} FROM files WHERE key > ? ORDER BY key LIMIT ?", b""):
            yield from map(_entry, page)

    def in_send_order(self) -> Iterator[list[dict[str, Any]]]:
        """Every file, a page at a time: those held already first (to be checked), in key order;
        then the rest, largest first (so that big uploads do not trail at the end)."""
        self.conn.execute("DROP TABLE IF EXISTS queue")
        self.conn.execute("CREATE TABLE queue (seq INTEGER PRIMARY KEY, key BLOB)")
        self.conn.execute("INSERT INTO queue (key) SELECT key FROM files WHERE present ORDER BY key")
        self.conn.execute("INSERT INTO queue (key) SELECT key FROM files WHERE NOT present ORDER BY size DESC, key")
        self.conn.commit()
        cols = ", ".join(f"f.{c}" for c in _COLUMNS.split(", "))
        for page in self._pages(f"SELECT q.seq, {cols} FROM queue q JOIN files f ON f.key = q.key "
                                "WHERE q.seq > ? ORDER BY q.seq LIMIT ?", 0):
            yield [_entry(row[1:]) for row in page]

    def _pages(self, sql: str, first: Any) -> Iterator[list[tuple[Any, ...]]]:
        """The rows of ``sql``, :data:`PAGE` at a time; no statement stays open between pages.
        ``sql`` orders its rows by their first column and takes two parameters: the first column's
        value to start after (``first``, then the last row's) and how many rows to give."""
        after = first
        while page := self.conn.execute(sql, (after, PAGE)).fetchall():
            yield page
            after = page[-1][0]

    def to_send(self) -> tuple[int, int, int, int]:
        """``(files, bytes)`` to upload and ``(files, bytes)`` to copy: those not held already."""
        row = self.conn.execute(
            "SELECT count(*) FILTER (WHERE copy_from IS NULL), coalesce(sum(size) FILTER (WHERE copy_from IS NULL), 0), "
            "count(*) FILTER (WHERE copy_from IS NOT NULL), coalesce(sum(size) FILTER (WHERE copy_from IS NOT NULL), 0) "
            "FROM files WHERE NOT present").fetchone()
        return row[0], row[1], row[2], row[3]

    def held(self) -> int:
        """How many files the bucket holds already."""
        found: int = self.conn.execute("SELECT count(*) FROM files WHERE present").fetchone()[0]
        return found

    def write_manifest(self, head: dict[str, Any]) -> tuple[Path, str]:
        """``MANIFEST.json`` of these files with the fields ``head``, written beside the table a file
        at a time (:func:`~.layout.write_manifest`): its path and sha256."""
        path = self.folder / "MANIFEST.json"
        return path, write_manifest(path, head, self.entries())


def _entry(row: tuple[Any, ...]) -> dict[str, Any]:
    key, path, size, sha256, composite, copy_from, present = row
    entry = {"key": of_blob(key), "path": of_blob(path), "size": size, "sha256": sha256}
    if composite:
        entry["composite_sha256"] = composite
    if copy_from is not None:
        entry["copy_from"] = of_blob(copy_from)
    if present:
        entry["present"] = True
    return entry


def mirror_files() -> contextlib.AbstractContextManager[MirrorFiles]:
    """:class:`MirrorFiles` in a new temporary folder, removed on the way out (whatever happens);
    a failure to write there (a full disk) is a :class:`~vmeval_hf.errors.LocalFileError`."""
    return scratch_store(MirrorFiles, "vmeval-mirror-", "the mirror's file list")
