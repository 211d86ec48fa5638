"""Scratch SQLite databases in a temporary folder: what a whole-tree job keeps on disk instead of
in memory (the tree-wide checks' records, :mod:`vmeval_hf.tree.records`; an S3 mirror's file
list, :mod:`vmeval_hf.s3.files`), so that its memory is SQLite's page caches however big the tree.

Strings that are compared or sorted are stored as their UTF-8 bytes (:func:`as_blob`,
``surrogatepass``: any code point, and a file name's undecodable bytes), so SQLite's order
(``memcmp``) is Python's order of the strings, and S3's order of the keys.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

from ..errors import LocalFileError

#: SQLite's page cache for each database, KiB: what a scratch database holds in memory (the rest
#: is on disk, in the OS's file cache)
CACHE_KIB = 512


def as_blob(s: str) -> bytes:
    """``s`` as stored: bytes that sort as Python sorts the strings."""
    return s.encode("utf-8", "surrogatepass")


def of_blob(cell: bytes) -> str:
    """A string stored by :func:`as_blob`, read back."""
    return cell.decode("utf-8", "surrogatepass")


def connect(path: Path) -> sqlite3.Connection:
    """A connection for scratch data: no journal, no fsync (a crash loses nothing of value), a
    small page cache, sorts that spill to files."""
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    conn.execute("PRAGMA temp_store = FILE")
    return conn


@contextlib.contextmanager
def scratch_folder(prefix: str, what: str) -> Iterator[Path]:
    """A new temporary folder for ``what`` (such as "the tree-wide checks' records"), removed on
    the way out whatever happens. This machine's failures to write there (a full disk, a folder
    not writable: SQLite's, or an ``OSError`` of a file the caller writes) are a
    :class:`~vmeval_hf.errors.LocalFileError` naming the folder and saying what to do."""
    try:
        folder = Path(tempfile.mkdtemp(prefix=prefix))
    except OSError as exc:
        raise LocalFileError(f"cannot make a temporary folder for {what} ({exc.strerror}); "
                             "set TMPDIR to a writable folder", path=tempfile.gettempdir()) from exc
    try:
        yield folder
    except sqlite3.Error as exc:
        if not local_error(exc):
            raise
        raise _cannot_write(folder, what, exc) from exc
    except OSError as exc:
        if exc.filename is None or not str(exc.filename).startswith(str(folder)):
            raise
        raise _cannot_write(folder, what, exc.strerror) from exc
    finally:
        _remove(folder)


class _Store(Protocol):
    conn: sqlite3.Connection


S = TypeVar("S", bound=_Store)


@contextlib.contextmanager
def scratch_store(make: Callable[[Path], S], prefix: str, what: str) -> Iterator[S]:
    """``make(folder)``, a store whose ``conn`` is a database in a new :func:`scratch_folder`, closed
    and removed on the way out."""
    with scratch_folder(prefix, what) as folder:
        store = make(folder)
        try:
            yield store
        finally:
            store.conn.close()


def _cannot_write(folder: Path, what: str, why: object) -> LocalFileError:
    return LocalFileError(f"{folder}: cannot write {what} ({why}); free some space there (or set TMPDIR to "
                          "another folder) and run it again", path=str(folder))


#: SQLite's errors that are this machine's (a full disk, a folder not writable), not a bug's
_LOCAL_ERRORS = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM")


#: how SQLite words them (Python 3.10 gives no error name)
_LOCAL_WORDS = ("disk is full", "disk I/O error", "unable to open database file", "readonly database")


def local_error(exc: sqlite3.Error) -> bool:
    """Whether a SQLite error is this machine's (a full disk, a folder not writable)."""
    name = getattr(exc, "sqlite_errorname", None)
    if name is not None:
        return str(name).startswith(_LOCAL_ERRORS)
    return any(words in str(exc) for words in _LOCAL_WORDS)


def _remove(folder: Path) -> None:
    """Remove a scratch folder: it holds only files."""
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            with contextlib.suppress(OSError):
                os.unlink(folder / name)
        os.rmdir(folder)
