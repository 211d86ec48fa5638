"""A set of sha256 digests known to pass a check, kept in an SQLite file in the user cache folder
(:func:`~vmeval_hf.config.default_cache_dir`): the frame check's verdicts
(:mod:`vmeval_hf.tree.verdicts`), the release manifests whose source list was checked
(:mod:`vmeval_hf.release.release_manifest`).

A check whose answer depends only on the bytes checked never changes its answer for a digest, so a
digest found here is not checked again; the key is the content, never a path, size or mtime.
Only passes are kept. The file's name carries the check's version (a change to what it accepts
takes a new file, so two vmeval-hf versions never share answers). It is safe with concurrent
processes (SQLite's locking; WAL, so readers never wait for a writer; each process opens its own
connection, also after a fork). It is only ever a shortcut: a file that is corrupt, unreadable,
locked for too long or written by another schema is set aside and rebuilt, or, if that fails too,
every check is made. Damage cannot make bad bytes pass: a row is a 32-byte digest, and a damaged
digest names nothing that was checked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from pathlib import Path

log = logging.getLogger(__name__)

_SCHEMA = 1  # the table layout; PRAGMA user_version holds it
_TIMEOUT = 2.0  # seconds to wait for another process's write lock before going on without it


class DigestCache:
    """The digests of things known to pass a check (see the module docstring).

    ``folder``: the cache folder, None for no cache (every check is made); ``name``: the file's
    name in it, without ``.sqlite3`` (with the version of the check, so that a change to what it
    accepts starts a new file); ``what``: how warnings name the cache, and ``without`` what
    happens when it cannot be used (``"frame check cache"``, ``"checking every frame"``).
    """

    def __init__(self, folder: str | Path | None, name: str, what: str, without: str) -> None:
        self.path = Path(folder) / f"{name}.sqlite3" if folder is not None else None
        self.what, self.without = what, without
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._pending: list[bytes] = []
        self._inherited: list[sqlite3.Connection] = []  # a parent's connection, never used or closed here

    def known(self, digest: bytes) -> bool:
        """Whether ``digest`` (32 bytes) passed the check before."""
        conn = self._connection()
        if conn is None:
            return False
        try:
            return conn.execute("SELECT 1 FROM ok WHERE digest = ?", (digest,)).fetchone() is not None
        except sqlite3.Error as exc:
            self._give_up(exc)
            return False

    def remember(self, digest: bytes) -> None:
        """Note that ``digest`` passed; written by :meth:`flush`."""
        if self.path is not None:
            self._pending.append(digest)

    def flush(self) -> None:
        """Write the digests noted since the last flush, in one transaction (best effort)."""
        pending, self._pending = self._pending, []
        conn = self._connection() if pending else None
        if conn is None:
            return
        try:
            with conn:
                conn.executemany("INSERT OR IGNORE INTO ok (digest) VALUES (?)", [(d,) for d in pending])
        except sqlite3.Error as exc:
            self._give_up(exc)

    def _connection(self) -> sqlite3.Connection | None:
        if self.path is None:
            return None
        if self._pid != os.getpid():  # first use, or a forked child: never share a connection
            if self._conn is not None:
                self._inherited.append(self._conn)
            self._pid, self._conn = os.getpid(), None
            self._conn = self._open()
            if self._conn is None:
                self.path = None
        return self._conn

    def _open(self) -> sqlite3.Connection | None:
        """A connection to a sound cache file: the one there, else (set aside) a new one."""
        assert self.path is not None
        for attempt in (1, 2):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                return _connect(self.path)
            except (sqlite3.Error, OSError) as exc:
                if attempt == 2 or isinstance(exc, OSError) or _locked(exc):
                    log.warning("%s %s not used (%s); %s", self.what, self.path, exc, self.without)
                    return None
                log.warning("%s %s is unusable (%s); starting a new one", self.what, self.path, exc)
                _set_aside(self.path)
        return None

    def _give_up(self, exc: sqlite3.Error) -> None:
        log.warning("%s %s failed (%s); going on without it", self.what, self.path, exc)
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
        self._conn, self.path, self._pending = None, None, []


def _connect(path: Path) -> sqlite3.Connection:
    """Open ``path`` and check (or create) its schema; :class:`sqlite3.DatabaseError` if it is
    not a cache of this schema."""
    conn = sqlite3.connect(path, timeout=_TIMEOUT, isolation_level="DEFERRED", check_same_thread=False)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            with conn:
                conn.execute("CREATE TABLE IF NOT EXISTS ok (digest BLOB PRIMARY KEY) WITHOUT ROWID")
                conn.execute(f"PRAGMA user_version = {_SCHEMA}")
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA journal_mode = WAL")
        elif version != _SCHEMA:
            raise sqlite3.DatabaseError(f"written by another schema ({version}, this is {_SCHEMA})")
        conn.execute("SELECT digest FROM ok LIMIT 1").fetchall()
        # in WAL mode a commit then waits for no fsync (a verdict lost to a power cut is checked again)
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn
    except BaseException:
        conn.close()
        raise


def _locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def _set_aside(path: Path) -> None:
    """Remove a broken cache file (and its journal files); another process may be doing the same."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(OSError):  # gone already, or not removable: the next open says so
            os.unlink(f"{path}{suffix}")
