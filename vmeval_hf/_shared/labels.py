"""Version labels: which strings may name a version, and the numeric order of ``MAJOR.MINOR``.

A label ends up in Hub tag names, folder names and log entries, so one rule decides it, here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import ConfigError

_NUMERIC_RE = re.compile(r"^([0-9]+)\.([0-9]+)(?:\.([0-9]+))?\Z")
_LABEL_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*\Z")
_MAX_LABEL = 128


def validate_label(version: object) -> str:
    """Return ``version`` if it is a safe version label, else raise :class:`ConfigError`.

    Accepted: ``1.0``, ``1.10``, ``2.0.1`` and other labels of letters, digits,
    ``.``, ``_`` and ``-`` that do not start with ``.`` (they end up in Hub tag
    names and file names).
    """
    if not isinstance(version, str) or not version:
        raise ConfigError(f"version must be a non-empty string like '1.0', got {version!r}")
    if len(version) > _MAX_LABEL or not _LABEL_RE.match(version) or ".." in version:
        raise ConfigError(
            f"invalid version label {version!r}: use MAJOR.MINOR such as '1.0' or '1.10', "
            "or letters, digits, '.', '_' and '-' (not starting with '.')"
        )
    return version


def numeric_key(version: str) -> tuple[int, int, int] | None:
    """``(major, minor, patch)`` for ``1.2`` / ``1.2.3`` labels, ``None`` for other labels."""
    m = _NUMERIC_RE.match(version)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def next_after(versions: Iterable[str]) -> str:
    """``1.0`` when no label is numeric, else the minor after the highest ``MAJOR.MINOR`` (1.9 -> 1.10)."""
    keys = [k for k in (numeric_key(v) for v in versions) if k is not None]
    if not keys:
        return "1.0"
    major, minor, _ = max(keys)
    return f"{major}.{minor + 1}"
