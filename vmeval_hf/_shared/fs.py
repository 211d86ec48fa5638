"""Small file helpers shared by every module: hashing, durable atomic writes, canonical JSON, sizes.

Keep one way to do each of these things: import from here rather than re-writing them.

Durability: what a crash or a power cut can leave. A file or folder is moved into place only once
its bytes and its folder entries are on disk (fsync), and the folder holding the move is fsynced
right after it, so that afterwards a reader finds the old version or the new one, complete, and
never a name pointing at bytes that were still in memory. :func:`replace_dir` explains how a whole
folder is swapped with no moment without one.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from glob import escape as glob_escape
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import ConfigError

try:
    import fcntl
except ImportError:  # not POSIX: replace_dir locks with a lock file instead
    fcntl = None  # type: ignore[assignment]

CHUNK = 1 << 20
_O_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
#: fsyncs run on a few threads at once: the file system then commits its journal once for many
#: files (300 small files here: 1 s one after the other, 0.1 s on 8 threads)
FSYNC_THREADS = 8


def sha256_bytes(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def canonical_json(obj: Any) -> str:
    """Deterministic JSON text (sorted keys, 2-space indent, trailing newline)."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --- fsync --------------------------------------------------------------------------------------


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Put a folder's entries (names created, renamed or removed in it) on disk. A no-op where
    folders cannot be opened (Windows, which has no such step)."""
    try:
        fd = os.open(path, _O_DIR)
    except (PermissionError, IsADirectoryError):
        if os.name == "nt":
            return
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _each(fn: Callable[[str], None], paths: list[str]) -> None:
    if len(paths) <= 2:
        for p in paths:
            fn(p)
        return
    from concurrent.futures import ThreadPoolExecutor  # start-up: ~5 ms, for builds and swaps only

    with ThreadPoolExecutor(min(FSYNC_THREADS, len(paths)), thread_name_prefix="fsync") as pool:
        for _ in pool.map(fn, paths):
            pass


def fsync_tree(root: str | os.PathLike[str]) -> None:
    """Put every regular file and folder under ``root`` (``root`` included) on disk: the files
    first, then the folders. Symlinks and special files are left alone (never opened)."""
    files: list[str] = []
    folders: list[str] = []
    todo = [os.fspath(root)]
    while todo:
        folder = todo.pop()
        folders.append(folder)
        with os.scandir(folder) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    todo.append(e.path)
                elif e.is_file(follow_symlinks=False):
                    files.append(e.path)
    _each(fsync_file, files)
    _each(fsync_dir, folders)


class _Libc(NamedTuple):
    renameat2: Any
    sync_file_range: Any
    get_errno: Callable[[], int]


@functools.cache
def _libc() -> _Libc | None:
    """Linux's ``renameat2`` and ``sync_file_range`` (None for each the C library lacks), or None
    off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # start-up: ~4 ms, paid only by what moves a folder into place or writes a shard

    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    rename = getattr(libc, "renameat2", None)
    if rename is not None:
        rename.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    sfr = getattr(libc, "sync_file_range", None)
    if sfr is not None:
        sfr.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return _Libc(rename, sfr, ctypes.get_errno)


_SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int) -> None:
    """Have the kernel start writing ``fd``'s dirty pages to disk now, without waiting for it
    (Linux's ``sync_file_range``; a no-op elsewhere), so that the fsync before a release is moved
    into place finds little left to wait for."""
    libc = _libc()
    if libc is not None and libc.sync_file_range is not None:
        libc.sync_file_range(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)  # advisory: a failure changes nothing


# --- atomic writes ------------------------------------------------------------------------------


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and ``os.replace``.

    Readers see either the old file or the new one, never a partial write; after a crash or a
    power cut, too: the temp file is fsynced before the rename, the folder after it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(target.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, canonical_json(obj))


# --- folders ------------------------------------------------------------------------------------


def replace_dir(new: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Replace the folder ``target`` with the folder ``new`` (same file system), durably.

    After a crash or a power cut at any point, ``target`` is the old folder or the new one,
    complete. In order: every file and folder of ``new`` is fsynced; under a lock on the folder
    holding ``target`` (so two calls for one target never interleave), the two folders swap
    names in one step (Linux's ``renameat2(RENAME_EXCHANGE)``), so ``target`` always exists;
    the holding folder is fsynced; only then is the old folder deleted (from ``new``'s name,
    which a crash leaves for the owner's next build to remove). Where the exchange is not
    available (another OS, a file system that refuses it), two renames move ``target`` into
    a ``.<name>.old-<pid>-*`` folder and ``new`` into place: a crash between them leaves no
    ``target``, which the next call (or :func:`recover_dir`) puts back from that folder.
    """
    new_path, target_path = Path(new), Path(target)
    fsync_tree(new_path)
    with _locked_parent(target_path):
        _recover(target_path)
        old = _swap(new_path, target_path)
        fsync_dir(target_path.parent)
        if old is not None and old != new_path:  # an .old- folder: never left behind the lock
            shutil.rmtree(old, ignore_errors=True)
    if old == new_path:
        shutil.rmtree(old, ignore_errors=True)


def recover_dir(target: str | os.PathLike[str]) -> None:
    """Undo what a crashed :func:`replace_dir` left beside ``target``, under its lock.

    If ``target`` is missing and a ``.<name>.old-*`` folder holds the previous one (a crash
    between the two renames of the fallback), it is put back; every ``.<name>.old-*`` folder is
    then removed. The lock says they are leftovers: one exists only while its owner holds it.
    """
    target_path = Path(target)
    if not target_path.parent.is_dir():
        return
    with _locked_parent(target_path):
        _recover(target_path)


def _old_folders(target: Path) -> list[Path]:
    return sorted(target.parent.glob(f"{glob_escape(f'.{target.name}.old-')}*"))


def _recover(target: Path) -> None:
    """:func:`recover_dir`, with the lock already held."""
    olds = _old_folders(target)
    if not olds:
        return
    if not os.path.lexists(target):
        kept = [old / target.name for old in olds if (old / target.name).is_dir()]
        if kept:
            os.rename(max(kept, key=lambda p: p.parent.stat().st_mtime_ns), target)
            fsync_dir(target.parent)
    for old in olds:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def _locked_parent(target: Path) -> Iterator[None]:
    """An exclusive lock for swapping ``target``: ``flock`` on the folder holding it, so no lock
    file is left beside the releases (a lock file can be deleted safely only by its holder, and
    then a waiter may hold the deleted one). Where folders cannot be locked (not POSIX, some
    network file systems), filelock's ``.<name>.lock`` file beside it, which stays."""
    fd = os.open(target.parent, _O_DIR) if fcntl is not None else None
    try:
        lock: Any = nullcontext()
        try:
            if fd is None:
                raise OSError(errno.ENOLCK, "no flock here")
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            from filelock import FileLock  # start-up: ~25 ms, and only this fallback needs it

            lock = FileLock(target.parent / f".{target.name}.lock")
        with lock:
            yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the flock


def _swap(new: Path, target: Path) -> Path | None:
    """Put ``new`` at ``target``; returns where the old ``target`` now is (None if there was none)."""
    if _exchange(new, target):
        return new
    if not os.path.lexists(target):
        os.rename(new, target)
        return None
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-{os.getpid()}-", dir=target.parent))
    os.rename(target, old / target.name)
    try:
        os.rename(new, target)
    except OSError as exc:
        try:
            os.rename(old / target.name, target)
        except OSError:
            raise OSError(exc.errno, f"{exc.strerror or exc}; the previous folder is kept in "
                                     f"{old / target.name}") from exc
        old.rmdir()
        raise
    return old


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2
#: renameat2 errors that mean "no exchange here" (or no target yet): use the fallback
_NO_EXCHANGE = {errno.ENOENT, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", 0)}


def _exchange(a: Path, b: Path) -> bool:
    """Swap the names ``a`` and ``b`` in one step; False if this system cannot (or ``b`` is missing)."""
    libc = _libc()
    if libc is None or libc.renameat2 is None:
        return False
    if libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = libc.get_errno()
    if err in _NO_EXCHANGE:
        return False
    raise OSError(err, os.strerror(err), os.fspath(b))


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?I?B?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
          "KI": 2**10, "MI": 2**20, "GI": 2**30, "TI": 2**40}


def parse_size(text: str | int, what: str = "size") -> int:
    """Parse ``"500MB"``, ``"8MiB"``, ``"1.5GB"`` or ``1024`` into a positive byte count (decimal
    units, like ``datasets``); anything else is a :class:`ConfigError` naming ``what``."""
    size = None
    if isinstance(text, int) and not isinstance(text, bool):
        size = text
    elif isinstance(text, str) and (m := _SIZE_RE.match(text)):
        size = int(float(m.group(1)) * _UNITS[(m.group(2) or "").upper().removesuffix("B")])
    if size is None or size <= 0:
        raise ConfigError(f"{what} must be a positive size such as 500MB, 64MiB or a byte count, got {text!r}")
    return size


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"
