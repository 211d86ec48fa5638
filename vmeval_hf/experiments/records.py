"""Archive records in the version log, and the listing of an experiment's files they pin.

An archive record is a version-log entry with ``"kind": "archive"`` (readers of question versions
skip it: :func:`vmeval_hf.versions.is_question_version`)::

    {"kind": "archive", "version": "archive-<experiment>-<listing hash, 12>", "experiment": ...,
     "models": [...] | null, "folders": ["outputs/<experiment>", "evaluations/<folder>/<experiment>"],
     "date": <the snapshot prefix>, "s3_uri": "s3://<bucket>/<D>/data", "files": N, "bytes": B,
     "size_mb": ..., "listing_sha256": <sha256 of the listing>, "summary": {...}, "timestamp", "tool"}

The listing is the canonical JSON of ``[{"key", "size", "sha256"}, ...]`` sorted by key: every
file archived, keys as in the prefix's ``MANIFEST.json`` (``data/outputs/...``). Its hash names
the record, so archiving the same files again finds the same record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._shared.fs import canonical_json, sha256_bytes
from ..versions import ARCHIVE_KIND, VersionLog


def listing(files: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return sorted(({"key": f["key"], "size": f["size"], "sha256": f["sha256"]} for f in files),
                  key=lambda f: f["key"])


def listing_sha256(files: Iterable[Mapping[str, Any]]) -> str:
    return sha256_bytes(canonical_json(listing(files)).encode("utf-8"))


def record_label(experiment: str, digest: str) -> str:
    return f"archive-{experiment[:80]}-{digest[:12]}"


def in_folders(files: Iterable[Mapping[str, Any]], folders: Iterable[str]) -> list[dict[str, Any]]:
    """The entries of ``files`` (keys ``data/...``) under one of ``folders`` (relative to ``data/``)."""
    under = folder_filter(folders)
    return [dict(f) for f in files if under(f)]


def folder_filter(folders: Iterable[str]) -> Callable[[Any], bool]:
    """Whether an entry (a mapping with a key ``data/...``) is under one of ``folders``."""
    prefixes = tuple(f"data/{f.strip('/')}/" for f in folders)
    return lambda f: isinstance(f, Mapping) and str(f.get("key", "")).startswith(prefixes)


def archive_records(log: VersionLog, experiment: str | None = None) -> list[dict[str, Any]]:
    """The archive records of the log (of ``experiment`` only, when given), oldest first."""
    return [dict(e) for e in log.entries()
            if e.get("kind") == ARCHIVE_KIND and (experiment is None or e.get("experiment") == experiment)]


def latest_record(log: VersionLog, experiment: str, models: list[str] | None = None,
                  date: str | None = None) -> dict[str, Any] | None:
    """The newest archive record of ``experiment`` (for exactly ``models`` when given as a filter of
    the archive, for the prefix ``date`` when given)."""
    found = [r for r in archive_records(log, experiment)
             if (models is None or sorted(r.get("models") or []) == sorted(models))
             and (date is None or r.get("date") == date)]
    return found[-1] if found else None
