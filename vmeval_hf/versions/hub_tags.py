"""Versions read from the Hub alone: the repo's tags, each tag's ``vmeval_release.json`` and the
date of the commit it points at. No S3, no local log, and no token for a public repo.

Every tag whose commit holds a release manifest becomes a log entry (``s3_uri`` null, sizes and
counts from the manifest, date and timestamp from the commit). Tags that are not version labels,
or hold no release, are skipped with a warning; a tag whose release names another version, or
whose ``content_sha256`` does not match its source list, is kept with a warning.

Each manifest is downloaded to a scratch folder and read without holding its source list (about
70 MB of JSON at 100,000 questions, for every tag): the list is checked as it is read.
"""

from __future__ import annotations

import json
import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .._shared.labels import validate_label
from ..config import Settings
from ..errors import ConfigError, IntegrityError
from ..hub import commit_dates, fetch_release_manifest, hf_uri, list_tags
from ..release.release_manifest import RELEASE_MANIFEST, ReleaseManifest, load_release_copy

log = logging.getLogger(__name__)

#: Release manifests read side by side (each downloaded to a scratch file and read as a stream).
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


def _check(tag: str, manifest: ReleaseManifest, where: str, intact: bool) -> list[str]:
    problems = []
    if manifest.get("version") != tag:
        problems.append(f"{where}: tag {tag} points at the release of version {manifest.get('version')!r}")
    if not intact:
        problems.append(f"{where}: vmeval_release.json's content_sha256 does not match its source list")
    return problems


def _tagged_manifest(settings: Settings, repo_id: str, commit: str) -> tuple[Any, bool]:
    """The release manifest at ``commit`` without its source list, and whether the list matches its
    ``content_sha256``; ``(None, False)`` when the commit holds none. A manifest that fails a check
    is read whole, for :func:`_check` to say what is wrong (or to skip it, not being an object)."""
    with tempfile.TemporaryDirectory(prefix="vmeval-tags-") as scratch:
        file = fetch_release_manifest(settings, repo_id, commit, scratch)
        if file is None:
            return None, False
        try:
            return load_release_copy(file, f"hf://datasets/{repo_id}@{commit}/{RELEASE_MANIFEST}"), True
        except IntegrityError:
            try:
                return json.loads(file.read_text(encoding="utf-8")), False
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
                return None, False


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
        manifests = dict(zip(labels, pool.map(lambda c: _tagged_manifest(settings, repo_id, c), labels.values())))
    for tag, commit in labels.items():
        where = f"{hf_uri(repo_id, tag)}"
        manifest, intact = manifests[tag]
        if not isinstance(manifest, dict):
            out.warnings.append(f"{where}: commit {commit[:12]} holds no vmeval_release.json; not a release, skipped")
            continue
        if commit not in dates:  # a tag off main's history
            dates.update(commit_dates(settings, repo_id, commit))
        out.warnings += _check(tag, manifest, where, intact)
        out.entries[tag] = hub_entry(repo_id, tag, commit, manifest, dates.get(commit))
    return out
