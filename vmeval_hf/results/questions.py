"""The question version a results dataset refers to: its label, content hash and question folders.

Resolved from the version log (the latest question version unless one is named) through the
release manifest of that version: the local release folder when it holds that content, else the
Hub at the logged commit, else the S3 mirror (:func:`vmeval_hf.publish.recorded_manifest`). A
version that was only built here (``vmeval-hf build``, not logged) is read from its release folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .._shared.fs import canonical_json, sha256_bytes
from ..config import Settings
from ..errors import ConfigError
from ..publish import recorded_manifest
from ..release.release_manifest import RELEASE_MANIFEST, FileEntry, ReleaseManifest, load_release
from ..versions import VersionLog, is_results


@dataclass(frozen=True)
class QuestionRef:
    """A question version: what every results row records, and the question folders it holds."""

    version: str
    content_sha256: str
    folders: frozenset[str]  # "chess_task/chess_0000", as the release's sources name them
    manifest_size: int
    manifest_sha256: str

    @property
    def source(self) -> FileEntry:
        """The question release as a source of the results release: its manifest, by its bytes
        (``vmeval_release.json`` at the version's Hub tag; ``data/releases/<V>/`` when built here)."""
        return {"path": f"releases/{self.version}/{RELEASE_MANIFEST}", "size": self.manifest_size,
                "sha256": self.manifest_sha256}


def question_ref(data_dir: str | Path, version: str | None = None, *, settings: Settings) -> QuestionRef:
    """The question version ``version`` (default: the latest logged one) of the data tree at
    ``data_dir``, read through its release manifest (``settings`` reach the Hub and S3 copies)."""
    data = Path(data_dir)
    log = VersionLog(data_dir=data)
    if version is None:
        latest = log.latest()
        if latest is None:
            raise ConfigError(f"no question version is logged in {log.path}: pass --questions-version (a "
                              "version published with `vmeval-hf publish --log`, or built with `vmeval-hf build`)")
        version = latest["version"]
    entry = log.get(version)
    if entry is not None and is_results(entry):
        raise ConfigError(f"{version} is a results version, not a question version; pass --questions-version "
                          "with a question version (see `vmeval-hf versions summary`)")
    manifest = recorded_manifest(settings, dict(entry), data) if entry is not None else _local(data, version)
    if manifest is None:
        raise ConfigError(f"no release manifest of question version {version} was found locally, on the Hub or "
                          f"on S3; check it with `vmeval-hf verify {version}`")
    return _ref(manifest)


def _local(data: Path, version: str) -> ReleaseManifest:
    folder = data / "releases" / version
    if not (folder / RELEASE_MANIFEST).is_file():
        raise ConfigError(f"question version {version} is neither in the version log nor built in {folder}; "
                          "pass a published version to --questions-version, or build it with `vmeval-hf build "
                          f"--version {version}`", path=folder)
    return load_release(folder)


def _ref(manifest: ReleaseManifest) -> QuestionRef:
    if manifest.get("kind") is not None:  # type: ignore[misc]
        raise ConfigError(f"version {manifest['version']} is a {manifest.get('kind')} release, not a question "  # type: ignore[misc]
                          "release; pass a question version to --questions-version")
    # The manifest is written in canonical_json's exact form, so these are the published file's bytes.
    body = canonical_json(manifest).encode("utf-8")
    folders = frozenset(s["path"].rsplit("/", 1)[0] for s in manifest["sources"])
    return QuestionRef(manifest["version"], manifest["content_sha256"], folders, len(body), sha256_bytes(body))
