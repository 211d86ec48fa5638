"""Versions read from the Hub alone: the repo's tags, each tag's ``vmeval_release.json`` and the
date of the commit it points at. No S3, no local log, and no token for a public repo.

Every tag whose commit holds a release manifest becomes a log entry (``s3_uri`` null, sizes and
counts from the manifest, date and timestamp from the commit). Tags that are not version labels,
or hold no release, are skipped with a warning; a tag whose release names another version, or
whose ``content_sha256`` does not match its source list, is kept with a warning.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .._shared.labels import validate_label
from ..config import Settings
from ..errors import ConfigError
from ..hub import commit_dates, hf_uri, list_tags, remote_manifest
from ..release.release_manifest import ReleaseManifest
from ..release.release_manifest import content_sha256 as sources_sha256

log = logging.getLogger(__name__)

#: Release manifests read side by side (one small download each).
WORKERS = 4


@dataclass
class HubVersions:
    """The versions of one Hub repo: ``entries`` by label, every ``tags`` (name -> commit)."""

    repo_id: str
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def hub_entry(repo_id: str, tag: str, commit: str, manifest: ReleaseManifest, timestamp: str | None) -> dict[str, Any]:
    """The log entry the Hub alone can give for ``tag`` at ``commit`` holding ``manifest``."""
    size = sum(int(f.get("size", 0)) for f in manifest.get("files") or [])
    return {
        "version": tag,
        "date": (timestamp or "")[:10].replace("-", "") or None,
        "timestamp": timestamp,
        "s3_uri": None,
        "hf_uri": hf_uri(repo_id, tag),
        "hf_repo": repo_id,
        "hf_revision": tag,
        "hf_commit": commit,
        "size_mb": round(size / 2**20, 3),
        "files": len(manifest.get("files") or []) + 1,
        "questions": manifest.get("questions"),
        "domains": dict(manifest.get("domains") or {}),
        "content_sha256": manifest.get("content_sha256"),
    }


def _check(tag: str, manifest: ReleaseManifest, where: str) -> list[str]:
    problems = []
    if manifest.get("version") != tag:
        problems.append(f"{where}: tag {tag} points at the release of version {manifest.get('version')!r}")
    try:
        ok = sources_sha256(manifest["sources"]) == manifest["content_sha256"]
    except (KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        problems.append(f"{where}: vmeval_release.json's content_sha256 does not match its source list")
    return problems


def hub_versions(settings: Settings, repo_id: str) -> HubVersions:
    """Every version tag of ``repo_id`` as a log entry (see the module docstring)."""
    out = HubVersions(repo_id, tags=list_tags(settings, repo_id))
    labels = {}
    for tag, commit in sorted(out.tags.items()):
        try:
            labels[validate_label(tag)] = commit
        except ConfigError:
            out.warnings.append(f"hf://datasets/{repo_id}: tag {tag!r} is not a version label; skipped")
    if not labels:
        return out
    dates = commit_dates(settings, repo_id)
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(labels))) as pool:
        manifests = dict(zip(labels, pool.map(lambda c: remote_manifest(settings, repo_id, c), labels.values())))
    for tag, commit in labels.items():
        where = f"{hf_uri(repo_id, tag)}"
        manifest = manifests[tag]
        if not isinstance(manifest, dict):
            out.warnings.append(f"{where}: commit {commit[:12]} holds no vmeval_release.json; not a release, skipped")
            continue
        if commit not in dates:  # a tag off main's history
            dates.update(commit_dates(settings, repo_id, commit))
        out.warnings += _check(tag, manifest, where)
        out.entries[tag] = hub_entry(repo_id, tag, commit, manifest, dates.get(commit))
    return out
