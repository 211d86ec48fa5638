"""The read side of the S3 mirror: check a published prefix in place, or pull it back, verified.

:func:`verify_s3` lists the prefix once and HEADs every key, comparing sizes and the SHA-256
checksums the server stored with ``MANIFEST.json`` (or a manifest the caller gives): the full
sha256 of a single-part object, the composite checksum of one stored in parts. Nothing is
downloaded, except an object stored in parts whose manifest records no composite (mirrored by an
older vmeval-hf): that one is hashed as it is read. :func:`pull_s3` downloads the question tree or the release files, each checked
against the manifest's sha256 before it is moved into place. The write side and the shared S3
helpers are in :mod:`vmeval_hf.s3.mirror`, the layout in :mod:`vmeval_hf.s3.layout`; all S3
calls go through :mod:`vmeval_hf.s3.client`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .._shared.fs import sha256_file
from .._shared.ordered import outer_join
from ..config import Settings
from ..errors import IntegrityError, S3Error
from ..release.release_manifest import Mismatch
from .client import S3Bucket
from .layout import MIRROR_MANIFEST, file_list, parse_date
from .mirror import (
    DEFAULT_WORKERS,
    MirrorManifest,
    Progress,
    ProgressCounter,
    open_bucket,
    open_manifest,
    run_batched,
    run_parallel,
)
from .transfer import holds


def verify_s3(
    *,
    settings: Settings,
    date: str,
    expected: list[dict[str, Any]] | None = None,
    workers: int = DEFAULT_WORKERS,
    client: Any | None = None,
    manifest: dict[str, Any] | MirrorManifest | None = None,
) -> list[Mismatch]:
    """Compare prefix ``date`` with a manifest without downloading: list once, HEAD every key.

    ``expected`` is a list of ``{"key", "size", "sha256"}`` (keys relative to ``<D>/``, as from
    :func:`~vmeval_hf.s3.layout.build_manifest_entries`); by default the prefix's own ``MANIFEST.json``,
    read here unless the caller passes it as ``manifest`` (from
    :func:`~vmeval_hf.s3.mirror.read_manifest` or :func:`~vmeval_hf.s3.mirror.open_manifest`). Returns one
    :class:`Mismatch` per problem (missing, extra, size, sha256, no-manifest); empty means clean.

    The manifest's files and the bucket listing are walked side by side in key order, and the
    HEADs sent a batch at a time: a prefix of any size takes the memory of a batch.
    """
    d = parse_date(date)
    bucket = open_bucket(settings, workers, client)
    with ExitStack() as stack:
        held = MirrorManifest.of(manifest) if isinstance(manifest, dict) else manifest
        if manifest is None:
            held = stack.enter_context(open_manifest(bucket, d))
        problems: list[Mismatch] = []
        if held is None:
            key = f"{d}/{MIRROR_MANIFEST}"
            problems.append(Mismatch(key, "no-manifest",
                                     f"{bucket.uri(key)} is missing: the prefix is unfinished or was never published"))
            if expected is None:
                return problems
        files = iter(file_list(expected)) if expected is not None else held.files()  # type: ignore[union-attr]
        to_head = _side_by_side(files, bucket.iter_sizes(f"{d}/"), d, problems)
        problems += [m for m in run_batched(lambda item: _check_object(bucket, *item), to_head, workers) if m]
    return sorted(problems, key=lambda m: (m.key, m.problem))


def _side_by_side(files: Iterator[dict[str, Any]], listed: Iterator[tuple[str, int]], d: str,
                  problems: list[Mismatch]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Walk the manifest's ``files`` and the listing of ``<d>/`` (both in key order) together: a
    key missing from the bucket, of another size or not in the manifest goes to ``problems``;
    ``(key, entry)`` of every object listed with its size is yielded, to be HEADed."""
    skip = f"{d}/{MIRROR_MANIFEST}"
    listing = ((k, size) for k, size in listed if k != skip)
    for e, here in outer_join(files, listing, lambda e: f"{d}/{e['key']}", lambda obj: obj[0]):
        if e is None:
            problems.append(Mismatch(here[0], "extra", "not in the manifest"))  # type: ignore[index]
        elif here is None:
            problems.append(Mismatch(f"{d}/{e['key']}", "missing", "not in the bucket"))
        elif here[1] != e["size"]:
            problems.append(Mismatch(here[0], "size", f"{here[1]} bytes, expected {e['size']}"))
        else:
            yield here[0], e


def _check_object(bucket: S3Bucket, key: str, e: dict[str, Any]) -> Mismatch | None:
    """The object at ``key`` against its manifest entry ``e``, by the checksum the server stored."""
    info = bucket.head(key)
    if info is None:
        return Mismatch(key, "missing", "listed but gone on HEAD")
    if holds(info, e["size"], e["sha256"], e.get("composite_sha256")):
        return None
    if info.parts is not None and not e.get("composite_sha256"):
        # stored in parts, and the manifest records no composite to compare the server's with
        # (a mirror by an older vmeval-hf): hash the object's bytes
        got = bucket.sha256_of_object(key)
        return None if got == e["sha256"] else Mismatch(key, "sha256", f"{got}, expected {e['sha256']}")
    found = info.checksum or "no SHA-256 checksum stored"
    return Mismatch(key, "sha256", f"{found}, expected {e.get('composite_sha256') or e['sha256']}")


# -- pull --------------------------------------------------------------------------------------


@dataclass
class PullResult:
    dest: Path          # the folder given
    root: Path          # where the files landed: <dest>/questions, or <dest> for a release
    date: str
    version: str | None
    files: int
    bytes: int
    downloaded: int
    skipped: int        # already present locally with the right sha256


def pull_s3(
    *,
    settings: Settings,
    date: str,
    dest: str | Path,
    release: bool = False,
    workers: int = DEFAULT_WORKERS,
    progress: Progress | None = None,
    client: Any | None = None,
) -> PullResult:
    """Download a published version, verified: the question tree to ``<dest>/questions/...``, or
    with ``release=True`` the release files to ``<dest>/...``.

    Every file is checked against the manifest's sha256 before it is moved into place (temp file,
    then rename), so a corrupted object raises IntegrityError naming the key and leaves nothing
    behind for it. Files already present with the right sha256 are not downloaded again. The
    manifest is walked twice as a stream (every key checked safe before anything is written, then
    the downloads a batch at a time), never held.
    """
    d = parse_date(date)
    bucket = open_bucket(settings, workers, client)
    prefix = "release/" if release else "data/questions/"
    root = Path(dest) if release else Path(dest) / "questions"
    with open_manifest(bucket, d) as manifest:
        if manifest is None:
            raise S3Error(f"{bucket.uri(d + '/')} has no {MIRROR_MANIFEST}: nothing complete was published "
                          "there (wrong --date, or an unfinished mirror: re-run it)", key=f"{d}/{MIRROR_MANIFEST}")

        def jobs() -> Iterator[tuple[str, Path, dict[str, Any]]]:
            return (_job(bucket, d, e, prefix, root) for e in manifest.files() if e["key"].startswith(prefix))

        files = size = 0
        for _, _, e in jobs():  # every key checked before anything is written
            files, size = files + 1, size + e["size"]
        if not files:
            what = "release files" if release else "question files"
            raise S3Error(f"{bucket.uri(d + '/')} holds no {what} (version {manifest.get('version')})")
        counter = ProgressCounter(progress, files, size)

        def one(job: tuple[str, Path, dict[str, Any]]) -> str:
            key, target, e = job
            if _holds(target, e):
                outcome = "skipped"
            else:
                bucket.download_verified(key, target, e["size"], e["sha256"])
                outcome = "downloaded"
            counter.add(1, e["size"])
            return outcome

        outcomes = Counter(run_batched(one, jobs(), workers))
    return PullResult(
        dest=Path(dest), root=root, date=d, version=manifest.get("version"), files=files,
        bytes=counter.bytes_total, downloaded=outcomes["downloaded"], skipped=outcomes["skipped"],
    )


def _jobs(bucket: S3Bucket, d: str, wanted: list[dict[str, Any]], prefix: str, root: Path
          ) -> list[tuple[str, Path, dict[str, Any]]]:
    """:func:`_job` of every entry: all are checked before anything is written."""
    return [_job(bucket, d, e, prefix, root) for e in wanted]


def _job(bucket: S3Bucket, d: str, e: dict[str, Any], prefix: str, root: Path) -> tuple[str, Path, dict[str, Any]]:
    """``(object key, local target, manifest entry)``; a key that would land outside ``root``
    (``..``, absolute) is refused."""
    rel = PurePosixPath(e["key"][len(prefix):])
    if not e["key"].startswith(prefix) or rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise S3Error(f"{bucket.uri(d + '/' + MIRROR_MANIFEST)} lists an unsafe key {e['key']!r}; "
                      "refusing to write outside the destination", key=e["key"])
    return f"{d}/{e['key']}", root.joinpath(*rel.parts), e


def _holds(target: Path, e: dict[str, Any]) -> bool:
    """Whether ``target`` is a regular file (not a link) with the entry's size and sha256."""
    return (target.is_file() and not target.is_symlink() and target.stat().st_size == e["size"]
            and sha256_file(target) == e["sha256"])


# -- any files of a prefix: checked in place, fetched without overwriting --------------------------


def check_objects(*, settings: Settings, date: str, files: list[dict[str, Any]], workers: int = DEFAULT_WORKERS,
                  client: Any | None = None) -> list[Mismatch]:
    """HEAD each of ``files`` (``MANIFEST.json`` entries: key relative to ``<D>/``, size, sha256 and,
    for an object in parts, ``composite_sha256``) under prefix ``date`` and compare the server's
    checksum; one :class:`Mismatch` per object that is gone or differs (empty: all there)."""
    d = parse_date(date)
    bucket = open_bucket(settings, workers, client)
    found = run_parallel(lambda e: _check_object(bucket, f"{d}/{e['key']}", e), files, workers)
    return [m for m in found if m is not None]


@dataclass
class FetchResult:
    files: int
    bytes: int
    downloaded: int
    skipped: int        # already present locally with the right sha256


def fetch_files(*, settings: Settings, date: str, files: list[dict[str, Any]], dest: str | Path, strip: str = "data/",
                workers: int = DEFAULT_WORKERS, progress: Progress | None = None,
                client: Any | None = None) -> FetchResult:
    """Download ``files`` (``MANIFEST.json`` entries whose keys start with ``strip``) of prefix ``date``
    to ``<dest>/<key without strip>``, each checked against its sha256 before it is moved into place.

    Never overwrites: a local file with other bytes (or a link, or a folder) where one would land is
    named in an IntegrityError before anything is downloaded. Files already there with the right
    sha256 are skipped, so an interrupted fetch resumes.
    """
    d = parse_date(date)
    bucket = open_bucket(settings, workers, client)
    jobs = _jobs(bucket, d, files, strip, Path(dest))
    present = run_parallel(lambda job: job[1].exists() or job[1].is_symlink(), jobs, workers)
    there = [job for job, p in zip(jobs, present) if p]
    right = run_parallel(lambda job: _holds(job[1], job[2]), there, workers)
    wrong = [job[1] for job, ok in zip(there, right) if not ok]
    if wrong:
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        raise IntegrityError(f"{wrong[0]} already exists with other content than {bucket.uri(d + '/')} holds{more}; "
                             "a local file is never overwritten: move it away (or delete it), then re-run",
                             path=wrong[0])
    skip = {id(job) for job, ok in zip(there, right) if ok}
    counter = ProgressCounter(progress, len(jobs), sum(e["size"] for _, _, e in jobs))

    def one(job: tuple[str, Path, dict[str, Any]]) -> str:
        key, target, e = job
        if id(job) not in skip:
            bucket.download_verified(key, target, e["size"], e["sha256"])
        counter.add(1, e["size"])
        return "skipped" if id(job) in skip else "downloaded"

    outcomes = run_parallel(one, jobs, workers)
    return FetchResult(len(jobs), counter.bytes_total, outcomes.count("downloaded"), outcomes.count("skipped"))
