"""Structure checks for ``data/outputs/`` and ``data/evaluations/``.

These trees are mirrored to S3, not compiled, so layout findings are warnings;
a symlink that escapes the data root is an error because the mirror must never
read outside the tree.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from .model import DOMAIN_DIR_RE, Problem

OUTPUTS, EVALUATIONS = "outputs", "evaluations"


def _walk(top: Path, root_real: str) -> tuple[list[Path], list[Problem]]:
    files: list[Path] = []
    problems: list[Problem] = []
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                real = os.path.realpath(p)
                if not (real == root_real or real.startswith(root_real + os.sep)):
                    problems.append(Problem(str(p), "path_escape",
                                            f"symlink points outside the data root ({real}); "
                                            "copy the file in instead"))
        files.extend(Path(dirpath) / f for f in filenames)
    return files, problems


def _special_file(p: Path) -> Problem | None:
    """A warning for a FIFO, socket, device or broken symlink: opening one can block forever."""
    try:
        regular = stat.S_ISREG(p.stat().st_mode)
    except OSError:
        regular = False
    if regular:
        return None
    return Problem(str(p), "not_a_file", "is not a regular file (FIFO, socket, device or broken symlink); "
                   "remove it or replace it with a regular file", "warning")


def data_folder_problems(data_dir: Path) -> list[Problem]:
    """Layout warnings (and escape errors) for outputs/ and evaluations/ when present."""
    root_real = os.path.realpath(data_dir)
    problems: list[Problem] = []
    for kind in (OUTPUTS, EVALUATIONS):
        top = data_dir / kind
        if not top.is_dir():
            continue
        files, found = _walk(top, root_real)
        problems.extend(found)
        escaped = {p.path for p in found}
        for f in files:
            if str(f) in escaped:
                continue  # already an error; never read outside the root
            special = _special_file(f)
            if special is not None:
                problems.append(special)
                continue
            parts = f.relative_to(top).parts
            if f.name.startswith("."):
                continue
            task_levels = [i for i, part in enumerate(parts[:-1]) if DOMAIN_DIR_RE.match(part)]
            if not task_levels:
                problems.append(Problem(
                    str(f), f"{kind}_layout",
                    f"not under a <domain>_task/<task_id>/ folder; expected {kind}/<experiment>/<model>/"
                    "<domain>_task/<task_id>/...", "warning"))
            elif kind == EVALUATIONS and f.suffix == ".json":
                try:
                    json.loads(f.read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
                    problems.append(Problem(str(f), "evaluation_invalid_json",
                                            f"evaluation file is not valid JSON ({exc})", "warning"))
    return problems


def entry_kind(entry: os.DirEntry[str], root_real: str) -> tuple[str, str | None]:
    """What a scandir entry under ``root_real`` is, without following it out of the tree:
    ``("dir" | "file", None)``, or ``("escape", <where the link points>)``, ``("linked_folder",
    None)`` or ``("special", None)`` (FIFO, socket, device or broken link) for one to skip."""
    if entry.is_symlink():
        real = os.path.realpath(entry.path)
        if real != root_real and not real.startswith(root_real + os.sep):
            return "escape", real
        if os.path.isdir(entry.path):
            return "linked_folder", None
    if entry.is_dir(follow_symlinks=False):
        return "dir", None
    if entry.is_file():
        return "file", None
    return "special", None
