"""Version labels: which strings may name a version, which spellings name the same one, and the
numeric order of ``MAJOR.MINOR``.

A label ends up in Hub tag names, folder names and log entries, so one rule decides it, here:
:func:`canonical_label` is the one place that says ``v1.0`` and ``1.0`` are the same version (the
seed's summary prints ``v1.0``, so people type it). :func:`validate_label` returns that canonical
spelling, and every comparison of two labels goes through :func:`same_label`, so a log lookup, a
publish, a build and the CLI can never disagree on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import ConfigError

_NUMERIC_RE = re.compile(r"^([0-9]+)\.([0-9]+)(?:\.([0-9]+))?\Z")
_NUMBERED_RE = re.compile(r"^(.*?)([0-9]+)\.([0-9]+)(?:\.([0-9]+))?\Z")  # <stem><MAJOR.MINOR[.PATCH]>
_LABEL_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*\Z")
_MAX_LABEL = 128


def canonical_label(version: str) -> str:
    """The one spelling of ``version``: a leading ``v``/``V`` before a digit is dropped
    (``v1.0`` -> ``1.0``, ``V2`` -> ``2``); anything else is returned as is (``vnext`` stays)."""
    if version[:1] in ("v", "V") and version[1:2].isdigit():
        return version[1:]
    return version


def same_label(a: object, b: object) -> bool:
    """Whether ``a`` and ``b`` name the same version (:func:`canonical_label` of each is equal)."""
    return isinstance(a, str) and isinstance(b, str) and canonical_label(a) == canonical_label(b)


def validate_label(version: object) -> str:
    """Return the canonical spelling of ``version`` (:func:`canonical_label`) if it is a safe
    version label, else raise :class:`ConfigError`.

    Accepted: ``1.0``, ``1.10``, ``2.0.1``, ``v1.0`` (returned as ``1.0``) and other labels of
    letters, digits, ``.``, ``_`` and ``-`` that do not start with ``.`` (they end up in Hub
    tag names and file names).
    """
    if not isinstance(version, str) or not version:
        raise ConfigError(f"version must be a non-empty string like '1.0', got {version!r}")
    if len(version) > _MAX_LABEL or not _LABEL_RE.match(version) or ".." in version:
        raise ConfigError(
            f"invalid version label {version!r}: use MAJOR.MINOR such as '1.0' or '1.10', "
            "or letters, digits, '.', '_' and '-' (not starting with '.')"
        )
    return canonical_label(version)


def numeric_key(version: str) -> tuple[int, int, int] | None:
    """``(major, minor, patch)`` for ``1.2`` / ``1.2.3`` labels (``v1.2`` too), ``None`` for other labels."""
    m = _NUMERIC_RE.match(canonical_label(version))
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


def release_line(version: str) -> tuple[str, tuple[int, int, int]] | None:
    """``(stem, (major, minor, patch))`` for a label ending in ``MAJOR.MINOR[.PATCH]``: ``1.10`` is
    ``("", (1, 10, 0))``, ``exp-2.1`` is ``("exp-", (2, 1, 0))``; ``None`` for other labels (``nightly``)."""
    m = _NUMBERED_RE.match(canonical_label(version))
    if not m:
        return None
    return m.group(1), (int(m.group(2)), int(m.group(3)), int(m.group(4) or 0))


def ordered_after(later: str, version: str) -> bool:
    """Whether ``later`` is a later release than ``version`` of the same line: the same stem and a
    higher number (``1.10`` after ``1.9``, ``exp-1.1`` after ``exp-1.0``). Labels of other lines,
    or without a number, are not ordered: neither comes after the other."""
    a, b = release_line(later), release_line(version)
    return a is not None and b is not None and a[0] == b[0] and a[1] > b[1]
