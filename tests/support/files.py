"""Read folders back, to compare what is on disk byte for byte."""

from __future__ import annotations

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
