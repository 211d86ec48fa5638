"""``load_version``: a published version as ``datasets.load_dataset`` returns it, from the S3 mirror
or the Hub, on any machine with the settings.

The version is looked up like ``verify``/``pull`` do (:func:`vmeval_hf.versions.lookup.find_version`):
the local log, else S3's shared records, else the Hub's tags. Then:

- ``source="s3"``: the release manifest of the version's prefix is read and checked (its
  ``content_sha256`` against its own source list and against the log), and ``datasets`` reads
  exactly the shards it lists, ``s3://<bucket>/<D>/release/data/<domain>/test-*.parquet``, through
  fsspec's ``s3fs``, with the mirror's credentials, region and endpoint (``AWS_ENDPOINT_URL``:
  MinIO, moto). An explicit shard list, not a glob: an object planted beside them is never loaded.
- ``source="hub"``: the release manifest at the recorded commit is checked the same way, then
  ``load_dataset(repo, config, revision=<the recorded commit>)``, the commit and not the tag (a
  tag can be moved). ``datasets`` fixes its Hub endpoint when it is imported
  (``HF_ENDPOINT``); if that is not ``settings.hub_endpoint`` this is a :class:`ConfigError`, never
  a load from another Hub.

A non-streaming load then checks the bytes it was built from: every shard file ``datasets``
downloaded (its download cache for S3: ``<cache>/downloads/<sha256(url)>``, as
``datasets.utils.file_utils.hash_url_to_filename`` names it, since data files are downloaded
without an ETag; the Hub cache's snapshot of the commit for the Hub) must have the manifest's
sha256, and the dataset the manifest's row count. A cached shard with other bytes is downloaded
again once; still wrong is an :class:`IntegrityError` naming the shard. Streaming loads read the
objects as they go and are not hashed (the manifest is checked first all the same).

Either side's manifest is downloaded to a scratch folder a chunk at a time and its source list
checked as it is read, never held (about 70 MB of JSON at 100,000 questions).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from ._shared.fs import sha256_file
from .config import Settings
from .errors import ConfigError, HubNotFoundError, IntegrityError, S3Error
from .hub import fetch_release_manifest
from .release.release_manifest import (
    RELEASE_MANIFEST,
    ReleaseManifest,
    ShardEntry,
    load_release_copy,
)
from .s3.mirror import read_release_manifest
from .versions.lookup import require_version

log = logging.getLogger(__name__)

SPLIT = "test"
DEFAULT_CONFIG = "default"


def load_version(version: str, source: str = "s3", config: str | None = None, streaming: bool = False, *,
                 settings: Settings | None = None, data_dir: str | os.PathLike[str] = "data",
                 lookup: str = "auto", cache_dir: str | os.PathLike[str] | None = None) -> Any:
    """Version ``version`` as ``datasets.load_dataset`` returns it: a ``Dataset`` (split ``test``), or an
    ``IterableDataset`` with ``streaming``.

    ``source``: ``"s3"`` (the mirror, through s3fs) or ``"hub"`` (the recorded commit). ``config``:
    one domain (``"chess"``...), or ``None`` / ``"default"`` for every domain. ``streaming``: read
    rows as they are iterated instead of downloading (not hashed). ``settings``: endpoints and
    credentials (default :meth:`Settings.from_env`). ``data_dir``: the data tree whose log may name
    the version (it need not exist). ``lookup``: where the version is looked up: ``auto``,
    ``local``, ``s3`` or ``hub`` (as for :func:`~vmeval_hf.publish.verify_version`).
    ``cache_dir``: the ``datasets`` cache folder (default: its own).

    Raises :class:`ConfigError` for an unknown version, config or source, :class:`IntegrityError`
    when the bytes loaded are not the release's.
    """
    if source not in ("s3", "hub"):
        raise ConfigError(f"load_version(source={source!r}): choose 's3' or 'hub'")
    settings = settings if settings is not None else Settings.from_env()
    entry = require_version(version, settings=settings, data_dir=data_dir, source=lookup, warn=log.warning).entry
    assert entry is not None
    job = _S3Load(settings, entry) if source == "s3" else _HubLoad(settings, entry)
    shards = _shards(job.manifest, config, entry["version"])
    ds = job.load(config, shards, streaming, cache_dir)
    if not streaming:
        ds = _checked(job, ds, config, shards, cache_dir)
    return ds


def _shards(manifest: ReleaseManifest, config: str | None, version: str) -> list[ShardEntry]:
    domains = sorted(manifest.get("domains") or {})
    if config in (None, DEFAULT_CONFIG):
        return list(manifest["shards"])
    if config not in domains:
        raise ConfigError(f"version {version} has no config {config!r}: choose {DEFAULT_CONFIG!r} or one of "
                          f"{', '.join(domains)}")
    return [s for s in manifest["shards"] if s["path"].startswith(f"data/{config}/")]


def _checked(job: Any, ds: Any, config: str | None, shards: list[ShardEntry],
             cache_dir: str | os.PathLike[str] | None) -> Any:
    """``ds`` if every shard it was built from has the manifest's bytes (and it the manifest's row
    count); a cached shard with other bytes is downloaded again once."""
    bad = job.wrong_shards(shards, cache_dir)
    if bad:
        log.warning("cached shards differ from the release (%s: %s); downloading them again", *bad[0])
        ds = job.load(config, shards, False, cache_dir, redownload=True)
        bad = job.wrong_shards(shards, cache_dir)
    if bad:
        where, problem = bad[0]
        raise IntegrityError(f"{where}: {problem}, even downloaded again: the published copy was altered after "
                             f"publishing; run `vmeval-hf verify {job.entry['version']}`", key=where)
    rows = sum(int(s["rows"]) for s in shards)
    if len(ds) != rows:
        raise IntegrityError(f"the {job.where} load of {job.entry['version']} has {len(ds)} rows, its release "
                             f"manifest {rows}", key=job.where)
    return ds


def _wrong(path: str | None, shard: ShardEntry, where: str) -> tuple[str, str] | None:
    """``(where, why)`` if the downloaded file at ``path`` is not ``shard`` (None: it is)."""
    if path is None or not os.path.isfile(path):
        return where, "no downloaded copy in the cache"
    if os.path.getsize(path) != shard["size"] or sha256_file(path) != shard["sha256"]:
        return where, f"the downloaded copy {path} is not the release's (sha256 {shard['sha256'][:12]})"
    return None


class _S3Load:
    """The S3 side: the prefix's release manifest, s3fs storage options, the download cache."""

    def __init__(self, settings: Settings, entry: dict[str, Any]) -> None:
        self.settings, self.entry = settings, entry
        self.day = _day_of(entry)
        if self.day is None:
            raise ConfigError(f"version {entry['version']} was not mirrored to S3; load it with source='hub'")
        self.prefix = f"s3://{settings.s3_bucket}/{self.day}/release"
        self.where = self.prefix
        with tempfile.TemporaryDirectory(prefix="vmeval-load-") as scratch:  # its source list is not held
            got = read_release_manifest(settings=settings, date=self.day, dest=scratch)
        manifest = got[0] if got is not None else None
        if manifest is None:
            raise S3Error(f"{self.prefix}/ holds no release manifest: version {entry['version']} was mirrored "
                          "without its release (sync --log?); load it with source='hub'",
                          bucket=settings.s3_bucket, key=f"{self.day}/release/")
        _same_release(manifest, entry, self.prefix)
        self.manifest: ReleaseManifest = manifest

    def urls(self, shards: list[ShardEntry]) -> list[str]:
        return [f"{self.prefix}/{s['path']}" for s in shards]

    def load(self, config: str | None, shards: list[ShardEntry], streaming: bool,
             cache_dir: str | os.PathLike[str] | None, redownload: bool = False) -> Any:
        import datasets  # start-up: about a second; only a load pays for it

        try:
            return datasets.load_dataset(
                "parquet", data_files={SPLIT: self.urls(shards)}, split=SPLIT, streaming=streaming,
                storage_options=storage_options(self.settings), cache_dir=_str(cache_dir),
                download_mode="force_redownload" if redownload else None)
        except (FileNotFoundError, PermissionError) as exc:
            raise S3Error(f"reading {self.prefix}/ through s3fs failed ({type(exc).__name__}: {exc}); check "
                          "AWS_* and S3_BUCKET, then `vmeval-hf verify " + self.entry["version"] + "`",
                          bucket=self.settings.s3_bucket) from exc

    def wrong_shards(self, shards: list[ShardEntry],
                     cache_dir: str | os.PathLike[str] | None) -> list[tuple[str, str]]:
        from datasets import config as dconfig  # start-up: as in load()
        from datasets.utils.file_utils import hash_url_to_filename  # start-up: as in load()

        # where the builder puts downloads (datasets.builder.DatasetBuilder.__init__), and the name
        # get_from_cache gives them: data files are downloaded with use_etag=False, so no etag part
        downloads = Path(cache_dir, dconfig.DOWNLOADED_DATASETS_DIR) if cache_dir else Path(
            dconfig.DOWNLOADED_DATASETS_PATH)
        out = []
        for url, shard in zip(self.urls(shards), shards):
            problem = _wrong(str(downloads.expanduser() / hash_url_to_filename(url)), shard, url)
            if problem:
                out.append(problem)
        return out


def _str(path: str | os.PathLike[str] | None) -> str | None:
    return None if path is None else str(path)


def _day_of(entry: dict[str, Any]) -> str | None:
    uri = str(entry.get("s3_uri") or "")
    parts = uri.split("/")
    return parts[3] if uri.startswith("s3://") and len(parts) == 5 and parts[4] == "data" else None


def _same_release(manifest: Any, entry: dict[str, Any], where: str) -> None:
    if not isinstance(manifest, dict) or manifest.get("content_sha256") != entry.get("content_sha256"):
        got = manifest.get("content_sha256") if isinstance(manifest, dict) else None
        raise IntegrityError(f"{where}: the release manifest has content sha256:{str(got)[:12]}, the log records "
                             f"sha256:{str(entry.get('content_sha256'))[:12]}; run `vmeval-hf verify "
                             f"{entry['version']}`", key=where)


def storage_options(settings: Settings) -> dict[str, Any]:
    """s3fs options reaching the mirror as :func:`vmeval_hf.s3.client.make_client` does: the same
    credentials (or boto's chain when none are set), region, endpoint and path-style addressing."""
    options: dict[str, Any] = {"client_kwargs": {"region_name": settings.aws_region}}
    for name, value in (("key", settings.aws_access_key_id), ("secret", settings.aws_secret_access_key),
                        ("token", settings.aws_session_token)):
        if value:
            options[name] = value
    if settings.aws_endpoint_url:
        options["client_kwargs"]["endpoint_url"] = settings.aws_endpoint_url
        options["config_kwargs"] = {"s3": {"addressing_style": "path"}}
    return options


class _HubLoad:
    """The Hub side: the release manifest at the recorded commit, the Hub cache's snapshot."""

    def __init__(self, settings: Settings, entry: dict[str, Any]) -> None:
        self.settings, self.entry = settings, entry
        self.repo, self.commit = entry.get("hf_repo"), entry.get("hf_commit")
        if not self.repo or not self.commit:
            raise ConfigError(f"version {entry['version']} was not published to the Hub; load it with source='s3'")
        self.where = f"hf://datasets/{self.repo}@{self.commit}"
        _check_endpoint(settings)
        with tempfile.TemporaryDirectory(prefix="vmeval-load-") as scratch:  # its source list is not held
            file = fetch_release_manifest(settings, self.repo, self.commit, scratch)
            manifest = None if file is None else load_release_copy(file, f"{self.where}/{RELEASE_MANIFEST}")
        if manifest is None:
            raise HubNotFoundError(f"{self.where} holds no vmeval_release.json; run `vmeval-hf verify "
                                   f"{entry['version']}`", repo=self.repo, version=entry["version"])
        _same_release(manifest, entry, self.where)
        self.manifest: ReleaseManifest = manifest

    def load(self, config: str | None, shards: list[ShardEntry], streaming: bool,
             cache_dir: str | os.PathLike[str] | None, redownload: bool = False) -> Any:
        import datasets  # start-up: about a second; only a load pays for it
        from datasets.exceptions import DatasetNotFoundError  # start-up: as above

        try:
            return datasets.load_dataset(
                self.repo, config or DEFAULT_CONFIG, revision=self.commit, split=SPLIT, streaming=streaming,
                token=self.settings.hf_token, cache_dir=_str(cache_dir),
                download_mode="force_redownload" if redownload else None)
        except DatasetNotFoundError as exc:
            raise HubNotFoundError(f"{self.where}: {exc}; check HF_ENDPOINT, HF_TOKEN and --repo",
                                   repo=self.repo, version=self.entry["version"]) from exc

    def wrong_shards(self, shards: list[ShardEntry],
                     cache_dir: str | os.PathLike[str] | None) -> list[tuple[str, str]]:
        from huggingface_hub import try_to_load_from_cache  # start-up: see vmeval_hf.hub

        out = []
        for shard in shards:
            # datasets downloads Hub files with hf_hub_download into the Hub cache (not cache_dir)
            path = try_to_load_from_cache(self.repo, shard["path"], revision=self.commit, repo_type="dataset")
            problem = _wrong(path if isinstance(path, str) else None, shard, f"{self.where}/{shard['path']}")
            if problem:
                out.append(problem)
        return out


def _check_endpoint(settings: Settings) -> None:
    """``datasets`` and ``huggingface_hub`` read ``HF_ENDPOINT`` once, when imported: loading from any
    other Hub than the one they fixed would silently read another server."""
    import datasets.config  # start-up: as in _HubLoad.load
    from huggingface_hub import constants  # start-up: see vmeval_hf.hub

    theirs = {str(datasets.config.HF_ENDPOINT).rstrip("/"), str(constants.ENDPOINT).rstrip("/")}
    if theirs != {settings.hub_endpoint}:
        raise ConfigError(f"the settings name the Hub {settings.hub_endpoint}, but the datasets client in this "
                          f"process talks to {', '.join(sorted(theirs))} (it reads HF_ENDPOINT once, when imported): "
                          "set HF_ENDPOINT in the environment before Python starts (a .env file is read too late)")
