"""The shared version log: one put-once S3 object per version record, outside the date prefixes.

Layout::

    s3://<bucket>/versions/<label>/000.json    the record of version <label>
    s3://<bucket>/versions/<label>/001.json    the record that replaced it (``--force``), and so on

A record is canonical JSON ``{"schema": 1, "kind": "vmeval-version-record", "entry": {...}}`` where
``entry`` is the version-log entry exactly as the local ``version_log.json`` stores it. The current
record of a label is its highest number. Every record is written with ``If-None-Match: *`` (and a
``ChecksumSHA256``), so a record is never rewritten:

- two publishers of *different* labels write different keys: both records land, no update is lost
  (there is no shared document to read, modify and write back);
- two publishers of the *same* label race for ``000.json``: exactly one write succeeds; the other
  reads the winner: the same content is the same release (a no-op), other content is a
  :class:`VersionConflictError` naming both content hashes;
- ``--force`` writes the next number, put-once too, so two concurrent forces cannot both win.

An object under ``versions/`` that is not such a record (corrupt, or foreign) is a one-line
:class:`VersionLogError` naming its key when it is read; nothing is ever written over it. Keys
that do not even look like ``<label>/<NNN>.json`` are skipped with a warning (``strays``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._shared.fs import canonical_json, sha256_bytes
from .._shared.labels import next_after, validate_label
from ..config import Settings
from ..errors import ConfigError, S3Error, VersionConflictError, VersionLogError
from ..s3.client import S3Bucket
from ..s3.mirror import open_bucket, run_parallel
from .identity import describe, same_content
from .log import field_problem

log = logging.getLogger(__name__)

RECORDS_PREFIX = "versions/"
RECORD_SCHEMA = 1
RECORD_KIND = "vmeval-version-record"
_KEY_RE = re.compile(r"^versions/([^/]+)/([0-9]{3,9})\.json\Z")
_FIX = "nothing was written over it: restore the object, or delete it if it is not a version record"


def record_key(label: str, revision: int) -> str:
    """``versions/<label>/<NNN>.json``."""
    return f"{RECORDS_PREFIX}{label}/{revision:03d}.json"


def record_body(entry: Mapping[str, Any]) -> bytes:
    """The bytes of the record holding ``entry``."""
    doc = {"schema": RECORD_SCHEMA, "kind": RECORD_KIND, "entry": dict(entry)}
    return canonical_json(doc).encode("utf-8")


def parse_record(raw: bytes, *, label: str, uri: str, key: str) -> dict[str, Any]:
    """The entry in the record ``raw`` read from ``uri``; :class:`VersionLogError` naming ``key``
    (one line) if it is not a record of ``label`` this vmeval-hf understands."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise VersionLogError(f"{uri} is not a vmeval-hf version record (not JSON: {reason}); {_FIX}",
                              key=key) from exc
    if not isinstance(doc, dict) or doc.get("kind") != RECORD_KIND or not isinstance(doc.get("entry"), dict):
        raise VersionLogError(f"{uri} is not a vmeval-hf version record (no \"kind\": \"{RECORD_KIND}\" "
                              f"object with an entry); {_FIX}", key=key)
    schema = doc.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise VersionLogError(f"{uri}: 'schema' must be a positive integer, found {schema!r}; {_FIX}", key=key)
    if schema > RECORD_SCHEMA:
        raise VersionLogError(f"{uri} has record schema {schema}, newer than this vmeval-hf understands "
                              f"({RECORD_SCHEMA}); upgrade vmeval-hf", key=key)
    entry: dict[str, Any] = doc["entry"]
    if entry.get("version") != label:
        raise VersionLogError(f"{uri} records version {entry.get('version')!r}, not {label!r} as its key says; "
                              f"{_FIX}", key=key)
    if (problem := field_problem(entry)) is not None:
        raise VersionLogError(f"{uri}: {problem}; {_FIX}", key=key)
    return entry


@dataclass(frozen=True)
class Record:
    """One record: ``entry`` is version ``label``'s log entry, ``revision`` its number (0, 1, ...)."""

    label: str
    revision: int
    key: str
    uri: str
    entry: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class RecordWrite:
    """What :meth:`RemoteLog.record` did. ``record`` is the label's current record afterwards (ours,
    or an identical one already there: ``written`` False); ``replaced`` the record ours replaced."""

    record: Record
    written: bool
    replaced: Record | None = None


def _label_of(key: str) -> tuple[str, int] | None:
    m = _KEY_RE.match(key)
    if m is None:
        return None
    try:
        return validate_label(m.group(1)), int(m.group(2))
    except ConfigError:
        return None


class RemoteLog:
    """The version records in ``settings.s3_bucket`` (see the module docstring)."""

    def __init__(self, settings: Settings, *, client: Any | None = None, workers: int = 8) -> None:
        self.bucket: S3Bucket = open_bucket(settings, workers, client)
        self.workers = workers
        #: keys under ``versions/`` that are not ``<label>/<NNN>.json`` (skipped, with a warning)
        self.strays: list[str] = []

    @property
    def uri(self) -> str:
        return self.bucket.uri(RECORDS_PREFIX)

    def _listing(self, prefix: str) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for key in self.bucket.list_sizes(prefix):
            parsed = _label_of(key)
            if parsed is None:
                if key not in self.strays:
                    self.strays.append(key)
                    log.info("%s is not a version record (versions/<label>/<NNN>.json); skipped",
                             self.bucket.uri(key))  # the callers show self.strays as warnings
                continue
            found.setdefault(parsed[0], []).append(parsed[1])
        return {label: sorted(revisions) for label, revisions in found.items()}

    def labels(self) -> dict[str, list[int]]:
        """Every recorded label with its record numbers, from one listing (no record is read)."""
        return self._listing(RECORDS_PREFIX)

    def revisions(self, label: str) -> list[int]:
        """The record numbers of ``label``, oldest first."""
        return self._listing(f"{RECORDS_PREFIX}{validate_label(label)}/").get(label, [])

    def read(self, label: str, revision: int) -> Record | None:
        """Record ``revision`` of ``label``, or None if there is none."""
        key = record_key(label, revision)
        raw = self.bucket.get_bytes(key)
        if raw is None:
            return None
        uri = self.bucket.uri(key)
        return Record(label, revision, key, uri, parse_record(raw, label=label, uri=uri, key=key))

    def current(self, label: str) -> Record | None:
        """The current (highest-numbered) record of ``label``, or None."""
        revisions = self.revisions(label)
        return self.read(label, revisions[-1]) if revisions else None

    def history(self, label: str) -> list[Record]:
        """Every record of ``label``, oldest first (the last one is current)."""
        return [r for r in (self.read(label, n) for n in self.revisions(label)) if r is not None]

    def read_all(self) -> dict[str, Record]:
        """The current record of every label (read side by side)."""
        listing = sorted(self.labels().items())
        found = run_parallel(lambda item: self.read(item[0], item[1][-1]), listing, self.workers)
        return {r.label: r for r in found if r is not None}

    def check(self, entry: Mapping[str, Any], *, replace: bool = False) -> Record | None:
        """Before publishing ``entry``'s content (``content_sha256`` is enough): refuse with
        :class:`VersionConflictError` when its version is recorded with other content, unless
        ``replace``. Returns the current record, or None."""
        current = self.current(validate_label(entry.get("version")))
        if current is not None and not replace and not same_content(current.entry, entry):
            raise self._conflict(current, entry, meanwhile=False)
        return current

    def check_location(self, label: str, s3_uri: str) -> None:
        """Before mirroring a data tree to be logged as ``label`` at ``s3_uri``: refuse when ``label``
        is recorded at another location (the same location is a resumed run)."""
        current = self.current(validate_label(label))
        if current is not None and current.entry.get("s3_uri") != s3_uri:
            free, where = next_after(self.labels()), current.entry.get("s3_uri") or "no S3 prefix"
            raise VersionConflictError(f"version {label} is already recorded in {current.uri} ({where}); pass "
                                       f"--version {free} (the next free one)", version=label)

    def record(self, entry: Mapping[str, Any], *, replace: bool = False) -> RecordWrite:
        """Record ``entry`` (a complete log entry) as its version's current record.

        No record yet: ``000.json``. A current record with the same content: nothing written. Other
        content: :class:`VersionConflictError` naming both content hashes, unless ``replace``, which
        writes the next number. Losing a race for a key: the winner's record decides, as above.
        """
        label = validate_label(entry.get("version"))
        current = self.current(label)
        if current is not None and same_content(current.entry, entry):
            return RecordWrite(current, written=False)
        if current is not None and not replace:
            raise self._conflict(current, entry, meanwhile=False)
        revision = 0 if current is None else current.revision + 1
        key = record_key(label, revision)
        body = record_body(entry)
        if self.bucket.put_once(key, body, sha256_bytes(body), content_type="application/json"):
            log.info("recorded version %s in %s", label, self.bucket.uri(key))
            return RecordWrite(Record(label, revision, key, self.bucket.uri(key), dict(entry)), written=True,
                               replaced=current)
        winner = self.read(label, revision)  # another publisher wrote this key first
        if winner is None:
            raise S3Error(f"{self.bucket.uri(key)} appeared and vanished while recording version {label}; "
                          "re-run the same command", bucket=self.bucket.name, key=key)
        if same_content(winner.entry, entry):
            return RecordWrite(winner, written=False)
        raise self._conflict(winner, entry, meanwhile=True)

    def _conflict(self, held: Record, entry: Mapping[str, Any], *, meanwhile: bool) -> VersionConflictError:
        free = next_after(self.labels())
        when = "was just recorded by another publisher" if meanwhile else "is already recorded"
        fix = (f"publish this content as {free}" if meanwhile
               else f"publish this content as {free}, or pass --force to replace the record")
        return VersionConflictError(
            f"version {held.label} {when} in {held.uri} with {describe(held.entry)}; this one has "
            f"{describe(entry)}: {fix}", version=held.label)
