"""What changed between two versions, read from their release manifests (no shard download).

A release manifest lists every source file of the question tree with its sha256
(``chess_task/chess_0007/prompt.txt``...), so two manifests say which questions were added,
removed or changed, and which parts of a changed question: ``prompt``, ``first_frame``,
``final_frame``, ``metadata``, ``goal``, ``ground_truth_video``.

The manifests come from the local release folders, the S3 prefixes or the Hub revisions
(``source``); a manifest whose ``content_sha256`` does not match its own source list is named
and never diffed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from .config import Settings
from .errors import ConfigError, HubNotFoundError, IntegrityError
from .hub import remote_manifest
from .release.changes import ReleaseDiff, diff_manifests
from .release.release_manifest import (
    RELEASE_MANIFEST,
    ReleaseManifest,
    content_sha256,
    load_release,
)
from .s3.mirror import read_release_manifest
from .versions import is_results
from .versions.lookup import find_version

log = logging.getLogger(__name__)

Source = Literal["local", "s3", "hub"]
SOURCES: tuple[Source, ...] = ("local", "s3", "hub")

def checked_manifest(doc: Any, where: str, version: str | None = None) -> ReleaseManifest:
    """``doc`` if it is a release manifest whose ``content_sha256`` matches its own source list
    (and, given ``version``, is that version's); else :class:`IntegrityError` naming ``where``."""
    try:
        ok = content_sha256(doc["sources"]) == doc["content_sha256"]
        label = doc["version"]
    except (KeyError, TypeError, AttributeError) as exc:
        raise IntegrityError(f"{where} is not a readable release manifest ({exc}); rebuild or re-publish "
                             "that version", path=where) from exc
    if not ok:
        raise IntegrityError(f"{where}: content_sha256 does not match its source list; the manifest was "
                             "altered after the build, so it is not diffed", path=where)
    if version is not None and label != version:
        raise IntegrityError(f"{where} is the manifest of version {label}, not {version}", path=where)
    return doc  # type: ignore[no-any-return]


def diff_versions(old: str, new: str, *, settings: Settings, data_dir: str | Path = "data",
                  source: Source | None = None, repo_id: str | None = None) -> ReleaseDiff:
    """Questions added, removed and changed from version ``old`` to ``new``.

    ``settings``: endpoints and credentials. ``data_dir``: the data tree (its release folders
    and version log). ``source``: where to read the two release manifests: ``"local"``
    (``<data_dir>/releases/<version>/``), ``"s3"`` (the logged prefixes) or ``"hub"`` (the
    version tags of ``repo_id``); by default the local folders when both exist, else S3 when
    both versions are mirrored there, else the Hub. ``repo_id``: the Hub repo (default: the
    one the log records, else ``settings.hf_repo``).
    """
    data = Path(data_dir)
    lookup = "local" if source == "local" else "auto"  # --from local never asks a remote
    entries = {v: _entry(v, settings=settings, data=data, repo_id=repo_id, lookup=lookup) for v in (old, new)}
    scored = [v for v in (old, new) if is_results(entries[v])]
    if scored:
        raise ConfigError(f"{scored[0]} is a results version: diff compares question versions (a results "
                          "version's leaderboard: `vmeval-hf results show`)")
    repos = {v: entries[v].get("hf_repo") for v in (old, new)}
    if repos[old] and repos[new] and repos[old] != repos[new]:
        raise ConfigError(f"version {old} was published to {repos[old]} and {new} to {repos[new]}: versions of "
                          "two repos are not one history; diff two versions of one repo")
    chosen = source or _default_source(data, entries)
    if chosen not in SOURCES:
        raise ConfigError(f"unknown source {chosen!r}; use one of {', '.join(SOURCES)}")
    manifests = [_manifest(chosen, v, entries[v], settings=settings, data=data, repo_id=repo_id) for v in (old, new)]
    return diff_manifests(*manifests)


def _entry(version: str, *, settings: Settings, data: Path, repo_id: str | None, lookup: str) -> dict[str, Any]:
    """The version's record: the local log, else (``lookup="auto"``) the shared records on S3, else
    the Hub's tags; ``{}`` when none knows it (the Hub tag is then read directly)."""
    found = find_version(version, settings=settings, data_dir=data, source=lookup, repo_id=repo_id)
    for warning in found.warnings:
        log.warning("%s", warning)
    return dict(found.entry or {})


def _default_source(data: Path, entries: dict[str, dict[str, Any]]) -> Source:
    if all((data / "releases" / v / RELEASE_MANIFEST).is_file() for v in entries):
        return "local"
    if all(e.get("s3_uri") for e in entries.values()):
        return "s3"
    return "hub"


def _manifest(source: Source, version: str, entry: dict[str, Any], *, settings: Settings, data: Path,
              repo_id: str | None) -> ReleaseManifest:
    if source == "local":
        folder = data / "releases" / version
        if not (folder / RELEASE_MANIFEST).is_file():
            raise ConfigError(f"{folder / RELEASE_MANIFEST} does not exist: version {version} was not built here; "
                              f"build it, or diff with --from s3 or --from hub")
        return checked_manifest(load_release(folder), str(folder / RELEASE_MANIFEST), version)
    if source == "s3":
        return _s3_manifest(version, entry, settings)
    return _hub_manifest(version, entry, settings, repo_id)


def _s3_manifest(version: str, entry: dict[str, Any], settings: Settings) -> ReleaseManifest:
    uri = str(entry.get("s3_uri") or "")
    parts = uri.removeprefix("s3://").split("/")
    if len(parts) != 3 or parts[2] != "data":
        raise ConfigError(f"version {version} has no S3 prefix in the version log; see `vmeval-hf versions "
                          f"summary`, or diff with --from hub")
    where = f"s3://{settings.s3_bucket}/{parts[1]}/release/{RELEASE_MANIFEST}"
    doc = read_release_manifest(settings=settings, date=parts[1])
    if doc is None:
        raise ConfigError(f"{where} does not exist: version {version} was mirrored without its release "
                          "(a data-tree sync); diff with --from hub")
    return checked_manifest(doc, where, version)


def _hub_manifest(version: str, entry: dict[str, Any], settings: Settings, repo_id: str | None) -> ReleaseManifest:
    logged_repo = entry.get("hf_repo")
    if repo_id and logged_repo and repo_id != logged_repo:
        raise ConfigError(f"version {version} was published to {logged_repo}, not {repo_id}; diff versions of "
                          "one repo (drop --repo, or pass the repo both versions are tagged on)")
    repo = repo_id or logged_repo or settings.hf_repo
    revision = entry.get("hf_commit") if entry.get("hf_repo") == repo else None
    where = f"hf://datasets/{repo}@{version}/{RELEASE_MANIFEST}"
    try:
        doc = remote_manifest(settings, repo, revision or version)
    except HubNotFoundError:
        doc = None
    if doc is None:
        raise ConfigError(f"{where} does not exist: {repo} has no version {version}; see `vmeval-hf versions "
                          f"summary --repo {repo}`")
    return checked_manifest(doc, where, version)
