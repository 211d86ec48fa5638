"""Read folders back, to compare what is on disk byte for byte."""

from __future__ import annotations

import os
from pathlib import Path


def snapshot(root: Path, *, skip_hidden: bool = False) -> dict[str, bytes]:
    """Every file under ``root``: its path relative to ``root`` (POSIX form) -> its bytes.

    ``skip_hidden`` leaves out files with a hidden part in that path (such as the ``.cache/``
    folder a Hub download leaves in its target)."""
    files = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and not (skip_hidden and any(part.startswith(".") for part in rel.parts)):
            files[rel.as_posix()] = path.read_bytes()
    return files


def killable_tmp(folder: Path) -> str:
    """``folder/tmp`` (made here): the temporary folder for a child process a test kills, so the
    scratch folders it cannot clean up stay in the test's folder, not in the machine's."""
    scratch = folder / "tmp"
    scratch.mkdir(exist_ok=True)
    return str(scratch)


def killable_env(folder: Path, **extra: str) -> dict[str, str]:
    """``os.environ`` with ``extra``, its ``TMPDIR`` :func:`killable_tmp`."""
    return {**os.environ, **extra, "TMPDIR": killable_tmp(folder)}
