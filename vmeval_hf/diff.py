"""What changed between two versions, read from their release manifests (no shard download).

A release manifest lists every source file of the question tree with its sha256
(``chess_task/chess_0007/prompt.txt``...), so two manifests say which questions were added,
removed or changed, and which parts of a changed question: ``prompt``, ``first_frame``,
``final_frame``, ``metadata``, ``goal``, ``ground_truth_video``.

The manifests come from the local release folders, the S3 prefixes or the Hub revisions
(``source``); a manifest whose ``content_sha256`` does not match its own source list is named
and never diffed. A remote manifest is downloaded to a scratch folder a chunk at a time, and both
source lists are walked from their files side by side: at 100,000 questions (400,000 entries, about
70 MB of JSON each) a diff holds neither list, only the questions that differ.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any, Literal

from .config import Settings
from .errors import ConfigError, HubNotFoundError, IntegrityError
from .hub import fetch_release_manifest
from .release.changes import ReleaseDiff, diff_manifests
from .release.release_manifest import (
    RELEASE_MANIFEST,
    ReleaseManifest,
    load_release,
    load_release_copy,
)
from .s3.mirror import read_release_manifest
from .versions import is_results
from .versions.lookup import find_version

log = logging.getLogger(__name__)

Source = Literal["local", "s3", "hub"]
SOURCES: tuple[Source, ...] = ("local", "s3", "hub")

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
    with tempfile.TemporaryDirectory(prefix="vmeval-diff-") as scratch:
        (a, a_file), (b, b_file) = (
            _manifest(chosen, v, entries[v], settings=settings, data=data, repo_id=repo_id, scratch=Path(scratch) / v)
            for v in (old, new))
        return diff_manifests(a, b, old_file=a_file, new_file=b_file)


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
              repo_id: str | None, scratch: Path) -> tuple[ReleaseManifest, Path]:
    """The version's release manifest read without its source list, and the file the list is
    streamed from (a remote copy is downloaded into ``scratch``)."""
    if source == "local":
        folder = data / "releases" / version
        if not (folder / RELEASE_MANIFEST).is_file():
            raise ConfigError(f"{folder / RELEASE_MANIFEST} does not exist: version {version} was not built here; "
                              f"build it, or diff with --from s3 or --from hub")
        return _of_version(load_release(folder, sources=False), folder / RELEASE_MANIFEST, version)
    if source == "s3":
        return _s3_manifest(version, entry, settings, scratch)
    return _hub_manifest(version, entry, settings, repo_id, scratch)


def _of_version(manifest: ReleaseManifest, file: Path, version: str, where: str | None = None
                ) -> tuple[ReleaseManifest, Path]:
    """``(manifest, file)`` if the manifest is ``version``'s, else an :class:`IntegrityError`."""
    if manifest["version"] != version:
        raise IntegrityError(f"{where or file} is the manifest of version {manifest['version']}, not {version}",
                             path=where or file)
    return manifest, file


def _s3_manifest(version: str, entry: dict[str, Any], settings: Settings, scratch: Path) -> tuple[ReleaseManifest, Path]:
    uri = str(entry.get("s3_uri") or "")
    parts = uri.removeprefix("s3://").split("/")
    if len(parts) != 3 or parts[2] != "data":
        raise ConfigError(f"version {version} has no S3 prefix in the version log; see `vmeval-hf versions "
                          f"summary`, or diff with --from hub")
    where = f"s3://{settings.s3_bucket}/{parts[1]}/release/{RELEASE_MANIFEST}"
    got = read_release_manifest(settings=settings, date=parts[1], dest=scratch)
    if got is None:
        raise ConfigError(f"{where} does not exist: version {version} was mirrored without its release "
                          "(a data-tree sync); diff with --from hub")
    return _of_version(*got, version, where)


def _hub_manifest(version: str, entry: dict[str, Any], settings: Settings, repo_id: str | None,
                  scratch: Path) -> tuple[ReleaseManifest, Path]:
    logged_repo = entry.get("hf_repo")
    if repo_id and logged_repo and repo_id != logged_repo:
        raise ConfigError(f"version {version} was published to {logged_repo}, not {repo_id}; diff versions of "
                          "one repo (drop --repo, or pass the repo both versions are tagged on)")
    repo = repo_id or logged_repo or settings.hf_repo
    revision = entry.get("hf_commit") if entry.get("hf_repo") == repo else None
    where = f"hf://datasets/{repo}@{version}/{RELEASE_MANIFEST}"
    try:
        file = fetch_release_manifest(settings, repo, revision or version, scratch)
    except HubNotFoundError:
        file = None
    if file is None:
        raise ConfigError(f"{where} does not exist: {repo} has no version {version}; see `vmeval-hf versions "
                          f"summary --repo {repo}`")
    return _of_version(load_release_copy(file, where), file, version, where)
