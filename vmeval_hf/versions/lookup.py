"""Which versions exist, from any machine: the local log merged with the shared records on S3, or
with the Hub's tags.

Sources (``source=``): ``local`` (``version_log.json`` alone), ``s3`` (the records under
``s3://<bucket>/versions/``, :mod:`.remote`), ``hub`` (the repo's tags, :mod:`.hub_tags`), and
``auto``: the local log plus S3 when S3 is configured (:func:`s3_configured`), else plus the Hub.
In ``auto`` an unreachable remote is a warning and the local log still answers; with an explicit
source it is an error.

Merging: the same version on two sides with the same content (:mod:`.identity`) is one entry; with
other content it is a :class:`VersionConflictError` naming both, except where the local entry is
an S3 record that a ``--force`` elsewhere replaced (then the current record wins, with a warning
to run ``vmeval-hf versions sync``). The local file is never rewritten here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._shared.labels import canonical_label, next_after, numeric_key, same_label, validate_label
from ..config import Settings
from ..errors import ConfigError, RemoteError, VersionConflictError
from .hub_tags import hub_versions
from .identity import describe, same_content
from .log import SCHEMA, VersionLog, format_summary, is_question_version
from .remote import RemoteLog

log = logging.getLogger(__name__)

SOURCES = ("auto", "local", "s3", "hub")
PathArg = str | os.PathLike[str]


def s3_configured(settings: Settings) -> bool:
    """S3 counts as configured when the settings carry AWS credentials or an endpoint URL
    (``AWS_ACCESS_KEY_ID`` / ``AWS_ENDPOINT_URL``). With a profile or an instance role alone,
    choose S3 explicitly (``source="s3"``, ``--source s3``)."""
    return bool(settings.aws_access_key_id or settings.aws_endpoint_url)


def check_source(source: str) -> str:
    if source not in SOURCES:
        raise ConfigError(f"unknown version source {source!r}: choose one of {', '.join(SOURCES)}")
    return source


def remote_sides(source: str, settings: Settings) -> list[str]:
    """The remote sides ``source`` reads: ``auto`` is S3 when configured, else the Hub."""
    if check_source(source) == "auto":
        return ["s3"] if s3_configured(settings) else ["hub"]
    return [] if source == "local" else [source]


def next_free_version(versions: VersionLog, settings: Settings, *, remote: bool) -> str:
    """The default label of the next version: the minor after every label in the local log and,
    with ``remote``, in S3's records. An S3 that cannot be read leaves it to the local log (with a
    warning): the publish then stops at its first S3 request anyway, and a clash is refused there."""
    labels = [e["version"] for e in versions.entries()]
    if remote:
        try:
            labels += list(RemoteLog(settings).labels())
        except RemoteError as exc:
            log.warning("could not list s3://%s/versions/ (%s); the next version counts the local log only",
                        settings.s3_bucket, exc)
    return next_after(labels)


def _order(entry: Mapping[str, Any]) -> tuple[str, tuple[int, int, int], str]:
    label = str(entry.get("version"))
    return str(entry.get("timestamp") or ""), numeric_key(label) or (1 << 30, 0, 0), label


@dataclass
class VersionListing:
    """The versions one or more sources know. ``entries`` is in log order for ``local``, else
    oldest first by timestamp; ``sources`` names the sides that answered."""

    entries: list[dict[str, Any]]
    sources: list[str]
    warnings: list[str] = field(default_factory=list)

    def get(self, version: str) -> dict[str, Any] | None:
        """The entry of ``version`` (``v1.0`` finds ``1.0``: :func:`same_label`), or None."""
        return next((e for e in self.entries if same_label(e.get("version"), version)), None)

    def latest(self) -> dict[str, Any] | None:
        """The last question version (results entries and archive records are not question versions)."""
        return next((e for e in reversed(self.entries) if is_question_version(e)), None)

    def as_log(self) -> dict[str, Any]:
        """The entries in the version log's own format."""
        return {"schema": SCHEMA, "versions": self.entries}

    def summary_text(self) -> str:
        """The seed's summary; read from the Hub's tags, each version also names its commit and
        content hash (what the Hub alone has to tell versions apart)."""
        if "hub" not in self.sources or not self.entries:
            return format_summary(self.entries)
        lines = []
        for entry in self.entries:
            lines.append(format_summary([entry]))
            ids = [f"commit {str(entry['hf_commit'])[:12]}"] if entry.get("hf_commit") else []
            ids += [f"content sha256:{str(entry['content_sha256'])[:12]}"] if entry.get("content_sha256") else []
            if ids:
                lines.append(f"  {', '.join(ids)}")
        return "\n".join(lines)


@dataclass
class FoundVersion:
    """The entry of one version (None: found nowhere) and the side that gave it."""

    version: str
    entry: dict[str, Any] | None
    source: str | None
    looked_in: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # "<where> (<why>)" of each side that failed


def _spellings(version: str) -> list[str]:
    """The labels a remote side may hold ``version`` under: as typed, then its canonical spelling
    (``v1.0`` names ``1.0``: :func:`canonical_label`, the one rule)."""
    return list(dict.fromkeys((version, canonical_label(version))))


def _where(side: str, settings: Settings, repo_id: str | None) -> str:
    if side == "s3":
        return f"the S3 records s3://{settings.s3_bucket}/versions/"
    if side == "hub":
        return f"the tags of hf://datasets/{repo_id or settings.hf_repo}"
    return side


def _unavailable(side: str, settings: Settings, repo_id: str | None, exc: RemoteError) -> str:
    message = f"could not read {_where(side, settings, repo_id)} ({exc}); answering without them"
    log.info("%s", message)  # a warning for the caller to show (the result's warnings): logged once, quietly
    return message


def _read_remote(side: str, settings: Settings, repo_id: str | None) -> tuple[dict[str, dict[str, Any]], list[str], Any]:
    """``(label -> entry, warnings, the RemoteLog for s3)`` of one remote side."""
    if side == "s3":
        remote = RemoteLog(settings)
        records = remote.read_all()
        strays = [f"{remote.bucket.uri(k)} is not a version record; skipped" for k in remote.strays]
        return {label: r.entry for label, r in records.items()}, strays, remote
    found = hub_versions(settings, repo_id or settings.hf_repo)
    return found.entries, found.warnings, None


def _merge_one(merged: dict[str, dict[str, Any]], label: str, theirs: dict[str, Any], side: str,
               remote: RemoteLog | None, warnings: list[str]) -> None:
    """Fold ``side``'s entry of ``label`` into ``merged`` (see the module docstring)."""
    ours = merged.get(label)
    if ours is None:
        merged[label] = dict(theirs)
        return
    if same_content(ours, theirs):
        if side == "s3":
            merged[label] = dict(theirs)  # the record is the arbiter; a hub entry knows less than ours
        return
    if remote is not None and any(same_content(r.entry, ours) for r in remote.history(label)[:-1]):
        warnings.append(f"the local entry of {label} was replaced on S3 (--force elsewhere) by one with "
                        f"{describe(theirs)}; showing that one: run `vmeval-hf versions sync` to update the log")
        merged[label] = dict(theirs)
        return
    where = f"s3://{remote.bucket.name}/versions/{label}/" if remote is not None else theirs.get("hf_uri")
    raise VersionConflictError(
        f"version {label} has {describe(ours)} in the local log but {describe(theirs)} in {where}; "
        "see both with `vmeval-hf versions show " + label + " --source local` and `--source " + side + "`, "
        "and `vmeval-hf versions sync` for every disagreement", version=label)


def list_versions(*, settings: Settings, data_dir: PathArg = "data", source: str = "auto",
                  repo_id: str | None = None) -> VersionListing:
    """Every version the chosen ``source`` knows, merged (see the module docstring).

    ``settings``: endpoints and credentials. ``data_dir``: the data tree holding the local log (it
    may not exist). ``source``: ``auto``, ``local``, ``s3`` or ``hub``. ``repo_id``: the Hub repo
    for ``hub`` (default ``settings.hf_repo``). Raises :class:`VersionConflictError` when two
    sides hold one version with different content.
    """
    sides = remote_sides(source, settings)
    local = [dict(e) for e in VersionLog(data_dir=data_dir).entries()] if source in ("auto", "local") else []
    if source == "local":
        return VersionListing(local, ["local"])
    listing = VersionListing([], ["local"] if source == "auto" else [])
    merged = {e["version"]: e for e in local}
    for side in sides:
        try:
            entries, warnings, remote = _read_remote(side, settings, repo_id)
        except RemoteError as exc:
            if source != "auto":
                raise
            listing.warnings.append(_unavailable(side, settings, repo_id, exc))
            continue
        listing.sources.append(side)
        listing.warnings += warnings
        for label, entry in sorted(entries.items()):
            _merge_one(merged, label, entry, side, remote, listing.warnings)
    listing.entries = sorted(merged.values(), key=_order)
    return listing


def _find_remote(side: str, version: str, settings: Settings, repo_id: str | None) -> dict[str, Any] | None:
    if side == "s3":
        remote = RemoteLog(settings)
        for label in _spellings(version):
            record = remote.current(label)
            if record is not None:
                return record.entry
        return None
    entries = hub_versions(settings, repo_id or settings.hf_repo).entries
    return next((entries[label] for label in _spellings(version) if label in entries), None)


def find_version(version: str, *, settings: Settings, data_dir: PathArg = "data", source: str = "auto",
                 repo_id: str | None = None) -> FoundVersion:
    """Look ``version`` up: the local log, else S3's records (when S3 is configured), else the Hub's
    tags; or only the chosen ``source``.

    ``settings``: endpoints and credentials. ``data_dir``: the data tree holding the local log.
    ``source``: ``auto``, ``local``, ``s3`` or ``hub``. ``repo_id``: the Hub repo (default
    ``settings.hf_repo``). In ``auto``, an S3 that cannot be read is a warning and the Hub is asked.
    """
    sides = remote_sides(source, settings)
    found = FoundVersion(version, None, None)
    if source in ("auto", "local"):
        found.looked_in.append(f"the local log {VersionLog(data_dir=data_dir).path}")
        entry = VersionLog(data_dir=data_dir).get(version)
        if entry is not None:
            found.entry, found.source = dict(entry), "local"
            return found
    if sides:  # a label no version can have is not asked for remotely (a local log may hold any spelling)
        validate_label(version)
    while sides:
        side = sides.pop(0)
        found.looked_in.append(_where(side, settings, repo_id))
        try:
            entry = _find_remote(side, version, settings, repo_id)
        except RemoteError as exc:
            if source != "auto":
                raise
            found.warnings.append(_unavailable(side, settings, repo_id, exc))
            found.unreadable.append(f"{_where(side, settings, repo_id)} ({exc})")
            if side == "s3" and not sides:
                sides.append("hub")  # S3 is down: the Hub can still say what the version is
            continue
        if entry is not None:
            found.entry, found.source = dict(entry), side
            return found
    return found


def require_version(version: str, *, settings: Settings, data_dir: PathArg = "data", source: str = "auto",
                    repo_id: str | None = None, warn: Callable[[str], None] | None = None) -> FoundVersion:
    """:func:`find_version`, or a :class:`ConfigError` saying where it looked (and what failed)."""
    found = find_version(version, settings=settings, data_dir=data_dir, source=source, repo_id=repo_id)
    for message in found.warnings:
        if warn is not None:
            warn(message)
    if found.entry is None:
        failed = f"; could not read {'; '.join(found.unreadable)}" if found.unreadable else ""
        raise ConfigError(f"version {version} is not in the version log (looked in "
                          f"{', '.join(found.looked_in)}){failed}; see `vmeval-hf versions summary`")
    return found
