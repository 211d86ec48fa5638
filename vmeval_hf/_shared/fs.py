"""Small file helpers shared by every module: hashing, atomic writes, canonical JSON, sizes.

Keep one way to do each of these things: import from here rather than re-writing them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import ConfigError

CHUNK = 1 << 20


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


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and ``os.replace``.

    Readers see either the old file or the new one, never a partial write.
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


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, canonical_json(obj))


def replace_dir(new: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Replace the folder ``target`` with the folder ``new`` (same file system): two renames.

    ``target`` is never left half-written: it is the old folder or the new one. If the
    second rename fails, the old folder is put back (or the OSError says where it is kept).
    """
    new_path, target_path = Path(new), Path(target)
    old: Path | None = None
    if target_path.is_dir():
        if any(target_path.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{target_path.name}.old-", dir=target_path.parent))
            os.replace(target_path, old / target_path.name)
        else:
            target_path.rmdir()
    try:
        os.replace(new_path, target_path)
    except OSError as exc:
        if old is not None:
            try:
                os.replace(old / target_path.name, target_path)
                old.rmdir()
            except OSError:
                raise OSError(f"{exc.strerror or exc}; the previous folder is kept in "
                              f"{old / target_path.name}") from exc
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
