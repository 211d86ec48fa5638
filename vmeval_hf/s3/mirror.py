"""The write side of the S3 mirror: copy a version to ``s3://<bucket>/<D>/`` (its layout and the
local scan: :mod:`vmeval_hf.s3.layout`; reading it back, verified: :mod:`vmeval_hf.s3.read`).

It also holds the S3 helpers both sides share: a thread pool (:func:`run_parallel`), progress
accounting (:class:`ProgressCounter`), :func:`open_bucket` and the manifest reads
(:func:`manifest_at`, :func:`read_manifest`, :func:`read_release_manifest`).

How a mirror runs: hash every file first (the manifest), read ``MANIFEST.json`` (present and equal:
nothing to do; present and different: refused), list the prefix once, HEAD the objects already
there (an interrupted run being resumed) and upload the rest with one shared client across a
thread pool: ``put_object`` with ``ChecksumSHA256`` and ``If-None-Match: *`` for small files,
s3transfer multipart for large ones. An object already present with the right sha256 counts as
done; one with another sha256 is a conflict naming the key. ``MANIFEST.json`` goes last.

All S3 calls and error translation live in :mod:`vmeval_hf.s3.client`. The library never prints:
progress goes to an optional ``progress(files_done, bytes_done, files_total, bytes_total)`` callback.
"""

from __future__ import annotations

import itertools
import json
import logging
import mimetypes
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .._shared.fs import canonical_json, parse_size, sha256_bytes
from .._shared.jsonstream import JsonStream, Unstreamed, member_items, object_without
from ..config import Settings
from ..errors import ConfigError, IntegrityError, S3ConflictError, S3Error
from ..release.release_manifest import RELEASE_MANIFEST, SCHEMA, ReleaseManifest, load_release
from ..release.release_manifest import content_sha256 as sources_sha256
from .client import S3Bucket, list_subfolders, make_client
from .layout import (
    KEEP_BODIES_BYTES,
    MANIFEST_SCHEMA,
    MIRROR_MANIFEST,
    MIRRORED_DIRS,
    describe_differences,
    file_list,
    manifest_doc,
    next_date_suffix,
    parse_date,
    same_files,
    scan,
    tree_differences,
)
from .transfer import COPY_MAX, PartPool, copy_verified, file_composite, upload_verified

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 16
DEFAULT_MULTIPART_THRESHOLD = 16 * 2**20
DEFAULT_MULTIPART_CHUNKSIZE = 8 * 2**20

Progress = Callable[[int, int, int, int], None]
T = TypeVar("T")


# -- shared plumbing --------------------------------------------------------------------------


class ProgressCounter:
    """Thread-safe progress accounting; calls the user's callback under a lock."""

    def __init__(self, callback: Progress | None, files_total: int, bytes_total: int) -> None:
        self.callback = callback
        self.files_total, self.bytes_total = files_total, bytes_total
        self.files = self.bytes = 0
        self._lock = threading.Lock()

    def add(self, files: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            self.files += files
            self.bytes += nbytes
            if self.callback is not None:
                self.callback(self.files, self.bytes, self.files_total, self.bytes_total)


def run_parallel(fn: Callable[[T], Any], items: Iterable[T], workers: int) -> list[Any]:
    """``[fn(item) for item in items]`` on ``workers`` threads pulling from one shared queue.

    The first error stops every worker before its next item and is re-raised as is (our error
    types). One loop per thread instead of one future per item keeps the per-file overhead low.
    """
    todo = list(items)
    if workers <= 1 or len(todo) <= 1:
        return [fn(item) for item in todo]
    results: list[Any] = [None] * len(todo)
    errors: list[BaseException] = []
    next_index = iter(range(len(todo)))
    lock = threading.Lock()

    def worker() -> None:
        while not errors:
            with lock:
                i = next(next_index, None)
            if i is None:
                return
            try:
                results[i] = fn(todo[i])
            except BaseException as exc:  # noqa: B036 - handed to the calling thread
                errors.append(exc)
                return

    threads = [threading.Thread(target=worker, name=f"vmeval-s3-{n}", daemon=True)
               for n in range(min(workers, len(todo)))]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    except BaseException:  # Ctrl-C: let the workers finish their current request, start no more
        errors.append(KeyboardInterrupt())
        raise
    if errors:
        raise errors[0]
    return results


def run_batched(fn: Callable[[T], Any], items: Iterable[T], workers: int, batch: int = 4096) -> Iterator[Any]:
    """:func:`run_parallel` over ``items`` a ``batch`` at a time, yielding the results in order:
    a stream of any length takes the memory of one batch."""
    it = iter(items)
    while chunk := list(itertools.islice(it, batch)):
        yield from run_parallel(fn, chunk, workers)


def open_bucket(settings: Settings, workers: int, client: Any | None) -> S3Bucket:
    return S3Bucket(client if client is not None else make_client(settings, workers), settings)


def _get_json(bucket: S3Bucket, key: str, error: type[S3Error] | type[IntegrityError]) -> Any:
    """The JSON object stored at ``key``, None if there is none; ``error`` if it is not JSON."""
    raw = bucket.get_bytes(key)
    return None if raw is None else _json_of(bucket, key, raw, error)


def _json_of(bucket: S3Bucket, key: str, raw: bytes, error: type[S3Error] | type[IntegrityError]) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise error(f"{bucket.uri(key)} is not valid JSON ({exc}); the prefix was tampered with: "
                    "inspect it by hand", key=key) from exc


def manifest_at(bucket: S3Bucket, date: str) -> dict[str, Any] | None:
    key = f"{date}/{MIRROR_MANIFEST}"
    doc = _get_json(bucket, key, S3Error)
    return None if doc is None else _checked_manifest(bucket, key, doc)


def _checked_manifest(bucket: S3Bucket, key: str, doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict) or doc.get("schema") != MANIFEST_SCHEMA or not isinstance(doc.get("files"), list):
        raise S3Error(f"{bucket.uri(key)} is not a schema-{MANIFEST_SCHEMA} vmeval-hf manifest; "
                      "this prefix was not written by vmeval-hf: pick another --date", key=key)
    return doc


class MirrorManifest:
    """A prefix's ``MANIFEST.json`` for the readers that walk its files once, in key order (verify,
    pull, the check against the release): its fields but ``files`` in :attr:`head`, and
    :meth:`files`. Opened by :func:`open_manifest` from a downloaded copy, streamed (400,000 entries
    at 100,000 questions are never held); made by :meth:`of` from a document held whole."""

    def __init__(self, head: dict[str, Any], *, path: Path | None = None,
                 files: list[dict[str, Any]] | None = None) -> None:
        self.head, self._path, self._files = head, path, files

    @classmethod
    def of(cls, doc: dict[str, Any]) -> MirrorManifest:
        files = [f for f in doc.get("files") or [] if isinstance(f, dict)]
        return cls({k: v for k, v in doc.items() if k != "files"},
                   files=sorted(files, key=lambda f: str(f.get("key"))))

    def get(self, name: str, default: Any = None) -> Any:
        return self.head.get(name, default)

    def files(self) -> Iterator[dict[str, Any]]:
        """Every file entry, in ascending key order (checked when the copy was opened)."""
        if self._files is not None:
            yield from self._files
        else:
            assert self._path is not None
            yield from member_items(self._path, "files")


def _files_in_order(stream: JsonStream) -> int:
    """Walk ``MANIFEST.json``'s ``files``: how many; :class:`Unstreamed` unless each is an object
    with a string key, in strictly ascending key order (anything else is read whole instead)."""
    if stream.skip_ws() != "[":
        raise Unstreamed("files is not an array")
    count, last = 0, None
    for _ in stream.items():
        e = stream.value()
        key = e.get("key") if isinstance(e, dict) else None
        if not isinstance(key, str) or (last is not None and not last < key):
            raise Unstreamed("files not in key order")
        count, last = count + 1, key
    return count


@contextmanager
def open_manifest(bucket: S3Bucket, date: str) -> Iterator[MirrorManifest | None]:
    """The ``MANIFEST.json`` of prefix ``date`` (None if the prefix is not complete), downloaded to
    a temporary folder removed on leaving and read there as a stream; a document of another shape
    is read whole, with :func:`manifest_at`'s checks and errors."""
    key = f"{date}/{MIRROR_MANIFEST}"
    with tempfile.TemporaryDirectory(prefix="vmeval-manifest-") as tmp:
        path = Path(tmp) / MIRROR_MANIFEST
        if not bucket.get_to_file(key, path):
            yield None
            return
        read = object_without(path, "files", _files_in_order)
        if read is not None and read[0].get("schema") == MANIFEST_SCHEMA:
            yield MirrorManifest(read[0], path=path)
            return
        doc = _checked_manifest(bucket, key, _json_of(bucket, key, path.read_bytes(), S3Error))
        yield MirrorManifest.of(doc)


@contextmanager
def read_manifest_stream(*, settings: Settings, date: str, client: Any | None = None
                         ) -> Iterator[MirrorManifest | None]:
    """:func:`read_manifest` for a reader that walks the files once: :func:`open_manifest`."""
    with open_manifest(open_bucket(settings, 1, client), parse_date(date)) as manifest:
        yield manifest


def read_manifest(*, settings: Settings, date: str, client: Any | None = None) -> dict[str, Any] | None:
    """The ``MANIFEST.json`` of prefix ``date``, or None if the prefix is not complete (or empty)."""
    return manifest_at(open_bucket(settings, 1, client), parse_date(date))


def read_release_manifest(*, settings: Settings, date: str, client: Any | None = None) -> dict[str, Any] | None:
    """The release manifest mirrored under ``<D>/release/``, checked, or None if there is none."""
    d = parse_date(date)
    bucket = open_bucket(settings, 1, client)
    key = f"{d}/release/{RELEASE_MANIFEST}"
    doc = _get_json(bucket, key, IntegrityError)
    if doc is None:
        return None
    try:
        ok = doc.get("schema") == SCHEMA and sources_sha256(doc["sources"]) == doc["content_sha256"]
    except (KeyError, TypeError, AttributeError) as exc:
        raise IntegrityError(f"{bucket.uri(key)} is not a readable release manifest ({exc})", key=key) from exc
    if not ok:
        raise IntegrityError(f"{bucket.uri(key)}: content_sha256 does not match its source list; the object "
                             "was altered after publishing", key=key)
    return doc  # type: ignore[no-any-return]


# -- mirror ------------------------------------------------------------------------------------


@dataclass
class MirrorResult:
    uri: str                    # s3://<bucket>/<D>/data
    release_uri: str | None     # s3://<bucket>/<D>/release, when a release was mirrored
    manifest_uri: str           # s3://<bucket>/<D>/MANIFEST.json
    date: str
    files: int                  # files in the manifest
    bytes: int
    uploaded: int               # files sent this run
    skipped: int                # files already there with the right sha256
    already_complete: bool      # the prefix already held this exact manifest: nothing was sent
    version: str | None = None
    uploaded_bytes: int = 0
    dry_run: bool = False
    manifest: dict[str, Any] = field(default_factory=dict, repr=False)
    copied: int = 0             # files copied on the server from ``copied_from`` (incremental)
    copied_bytes: int = 0
    copied_from: str | None = None  # the complete prefix an incremental mirror copied from (s3://.../<D>/)


def _check_existing_manifest(bucket: S3Bucket, date: str, remote: dict[str, Any], doc: dict[str, Any]) -> bool:
    """True when ``remote`` is the manifest we would write; otherwise raise S3ConflictError."""
    same = same_files(remote.get("files") or [], doc["files"])
    rv, lv = remote.get("version"), doc["version"]
    same_version = rv == lv or lv is None
    same_content = doc["content_sha256"] is None or remote.get("content_sha256") == doc["content_sha256"]
    if same and same_version and same_content:
        return True
    where = bucket.uri(f"{date}/")
    hint = (f"a published prefix is never overwritten: mirror to a new prefix with "
            f"--date {next_date_suffix(date)} (any YYYYMMDD-<suffix> works)")
    if not same_version or not same_content:
        held = f"version {rv}" if rv is not None else "a data-tree mirror"
        want = f"version {lv}" if lv is not None else "this data tree"
        raise S3ConflictError(
            f"{where} already holds {held} (content {str(remote.get('content_sha256'))[:12]}); "
            f"refusing to write {want} there; {hint}",
            uri=where, version=rv, key=f"{date}/{MIRROR_MANIFEST}",
        )
    keys, summary = describe_differences(remote.get("files") or [], doc["files"], date)
    raise S3ConflictError(
        f"{where} already holds a complete mirror whose files differ from yours: {summary}; {hint}",
        uri=where, version=rv, key=keys[0] if keys else None, keys=keys,
    )


_TYPES: dict[str, str | None] = {}


def _content_type(key: str) -> str | None:
    """A Content-Type by extension (as `aws s3 sync` sets), so objects open right in a browser."""
    ext = os.path.splitext(key)[1].lower()
    if ext not in _TYPES:
        _TYPES[ext] = mimetypes.guess_type(f"x{ext}")[0]
    return _TYPES[ext]


@dataclass
class _Mirror:
    """One mirror's sending side: which objects exist, and the uploads and copies of the rest."""

    bucket: S3Bucket
    date: str
    workers: int
    counter: ProgressCounter
    threshold: int
    chunksize: int
    bodies: dict[str, bytes]
    copy_from: dict[str, str] = field(default_factory=dict)  # entry key -> full key of its copy source
    copy_max: int = COPY_MAX

    def __post_init__(self) -> None:
        self.pool = PartPool()

    def key(self, entry: dict[str, Any]) -> str:
        return f"{self.date}/{entry['key']}"

    def close(self) -> None:
        self.pool.close()

    def conflict(self, key: str, found: str) -> S3ConflictError:
        return S3ConflictError(
            f"{self.bucket.uri(key)} already exists with other content ({found}); this unfinished "
            f"prefix holds data from another upload: mirror to a new prefix with "
            f"--date {next_date_suffix(self.date)}, or delete that object if it is a leftover",
            key=key,
        )

    def check(self, entry: dict[str, Any]) -> bool:
        """True if the object is already there with the right bytes (by the server's checksum);
        raise if it differs; False if absent."""
        key = self.key(entry)
        info = self.bucket.head(key)
        if info is None:
            return False
        if info.size != entry["size"]:
            raise self.conflict(key, f"{info.size} bytes, expected {entry['size']}")
        if info.parts is not None:
            return self._check_parts(key, entry, info.checksum, info.same_checksum)
        if info.sha256 != entry["sha256"]:
            found = f"sha256 {info.sha256[:12]}..., expected {entry['sha256'][:12]}..." if info.sha256 else \
                "no SHA-256 checksum stored to compare with"
            raise self.conflict(key, found)
        return True

    def _check_parts(self, key: str, entry: dict[str, Any], stored: str | None,
                     same: Callable[[str], bool]) -> bool:
        """A multipart object: its composite checksum against the local file's, cut as it was."""
        part = self.bucket.first_part_size(key)
        if part is None:
            return False
        expected, local = file_composite(entry["path"], entry["size"], part)
        if local != entry["sha256"]:
            raise IntegrityError(f"{entry['path']} changed while mirroring (its bytes no longer match the "
                                 "manifest); re-run to mirror its current content", path=entry["path"], key=key)
        if not same(expected):
            raise self.conflict(key, f"checksum {stored}, expected {expected} from the local file")
        entry["composite_sha256"] = expected
        return True

    def _send_large(self, key: str, entry: dict[str, Any]) -> tuple[bool, int]:
        reported = [0]

        def on_bytes(n: int) -> None:
            reported[0] += n
            self.counter.add(0, n)

        stored = upload_verified(self.bucket, self.pool, key, entry["path"], entry["size"], entry["sha256"],
                                 chunksize=self.chunksize, on_bytes=on_bytes, content_type=_content_type(key))
        if stored is not None:
            entry["composite_sha256"] = stored
        return stored is not None, entry["size"] - reported[0]  # the rest was reported as it went

    def _send_small(self, key: str, entry: dict[str, Any]) -> tuple[bool, int]:
        body = self.bodies.pop(entry["key"], None)
        if body is None:  # not kept from the scan: read again, and make sure it is what was hashed
            with open(entry["path"], "rb") as fh:
                body = fh.read()
            if len(body) != entry["size"] or sha256_bytes(body) != entry["sha256"]:
                raise IntegrityError(
                    f"{entry['path']} changed while mirroring (its bytes no longer match the "
                    "manifest); re-run to mirror its current content", path=entry["path"], key=key,
                )
        return self.bucket.put_once(key, body, entry["sha256"], content_type=_content_type(key)), entry["size"]

    def _copy(self, key: str, entry: dict[str, Any]) -> str:
        """"copied", "exists" (412) or "refused" (the caller uploads instead)."""
        outcome, stored = copy_verified(self.bucket, self.pool, self.copy_from[entry["key"]], key, entry["size"],
                                        entry["sha256"], path=entry["path"], chunksize=self.chunksize,
                                        copy_max=self.copy_max)
        if stored is not None:
            entry["composite_sha256"] = stored
        if outcome == "refused":
            del self.copy_from[entry["key"]]
        return outcome

    def upload(self, entry: dict[str, Any]) -> str:
        """Copy (incremental) or send one missing file; "copied", "uploaded" or "skipped"."""
        key = self.key(entry)
        for _ in range(3):
            copied = self._copy(key, entry) if entry["key"] in self.copy_from else None
            if copied == "copied":
                self.counter.add(1, entry["size"])
                return "copied"
            written, rest = (False, entry["size"]) if copied == "exists" else self._send(key, entry)
            if written:
                self.counter.add(1, rest)
                return "uploaded"
            # 412: the key exists (a retried request that had landed, or a concurrent writer).
            if self.check(entry):
                self.counter.add(1, rest)
                return "skipped"
        raise S3Error(f"{self.bucket.uri(key)} kept appearing and vanishing; another writer is "
                      "working on this prefix: wait for it, then re-run", key=key)

    def _send(self, key: str, entry: dict[str, Any]) -> tuple[bool, int]:
        """(written, the bytes not yet reported to the progress counter)."""
        if entry["size"] >= self.threshold:
            return self._send_large(key, entry)
        return self._send_small(key, entry)

    def plan(self, entries: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Split ``entries`` into (already in the bucket, missing) with one listing; refuse a prefix
        holding objects of other content (other keys, or other sizes under our keys)."""
        d = self.date
        existing = self.bucket.list_sizes(f"{d}/")
        wanted = {self.key(e) for e in entries}
        strays = sorted(k for k in existing if k not in wanted and k != f"{d}/{MIRROR_MANIFEST}")
        if strays:
            raise S3ConflictError(
                f"{self.bucket.uri(d + '/')} has no {MIRROR_MANIFEST} but holds {len(strays)} object(s) that "
                f"are not part of this mirror, e.g. {strays[0]}: an unfinished upload of other content; "
                f"mirror to a new prefix with --date {next_date_suffix(d)}, or delete those objects",
                key=strays[0], keys=strays,
            )
        present = [e for e in entries if self.key(e) in existing]
        for e in present:  # a size mismatch needs no HEAD to be a conflict
            if existing[self.key(e)] != e["size"]:
                raise self.conflict(self.key(e), f"{existing[self.key(e)]} bytes, expected {e['size']}")
        missing = [e for e in entries if self.key(e) not in existing]
        log.info("mirroring %d files to %s: %d to send, %d to check", len(entries), self.bucket.uri(d + "/"),
                 len(missing), len(present))
        return present, missing

    def put_manifest(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Write MANIFEST.json once; if another mirror wrote it first it must be the same."""
        key = f"{self.date}/{MIRROR_MANIFEST}"
        body = canonical_json(doc).encode("utf-8")
        if self.bucket.put_once(key, body, sha256_bytes(body), content_type="application/json"):
            return doc
        remote = manifest_at(self.bucket, self.date)
        if remote is None:
            raise S3ConflictError(f"{self.bucket.uri(key)} appeared and vanished during the mirror; re-run", key=key)
        _check_existing_manifest(self.bucket, self.date, remote, doc)
        return remote

    def resume_or_upload(self, entry: dict[str, Any]) -> str:
        if self.check(entry):
            self.counter.add(1, entry["size"])
            return "skipped"
        return self.upload(entry)


def mirror_version(
    data_dir: str | Path,
    *,
    settings: Settings,
    date: str | None = None,
    release_dir: str | Path | None = None,
    version: str | None = None,
    content_sha256: str | None = None,
    hub: dict[str, Any] | None = None,
    workers: int = DEFAULT_WORKERS,
    progress: Progress | None = None,
    multipart_threshold: int | str = DEFAULT_MULTIPART_THRESHOLD,
    multipart_chunksize: int | str = DEFAULT_MULTIPART_CHUNKSIZE,
    dry_run: bool = False,
    client: Any | None = None,
    folders: Sequence[str] | None = None,
    incremental: bool = False,
    copy_max: int = COPY_MAX,
) -> MirrorResult:
    """Mirror ``data_dir`` (questions, outputs, evaluations; only ``folders`` of it when given, see
    :func:`~vmeval_hf.s3.layout.scan`) and ``release_dir`` to ``s3://<bucket>/<D>/``.

    Idempotent and resumable: a complete prefix with the same manifest is a no-op (one GET); an
    unfinished one is completed, sending only what is missing. Raises S3ConflictError when the
    prefix holds another version or an object with other bytes, and IntegrityError, before
    anything is sent, when the data tree is not the sources of the release in ``release_dir``.
    ``incremental``: a file recorded with the same sha256 in the latest complete prefix's
    ``MANIFEST.json`` is copied on the server from there instead of uploaded (``CopyObject``, in
    parts above ``copy_max`` bytes), its checksum computed by the server. ``dry_run`` reads the
    remote state and reports what would be sent, writing nothing. ``client`` reuses a client from
    :func:`vmeval_hf.s3.client.make_client`.

    Long because it is the one sequence of the mirror's steps, each a call: scan, check against the
    release, the existing manifest, the copy sources, send.
    """
    d = parse_date(date)
    data = Path(data_dir)
    if not data.is_dir():
        raise ConfigError(f"data folder {data} does not exist; pass --data-dir", path=data)
    release = None
    if release_dir is not None:
        release, version, content_sha256 = _release_identity(release_dir, version, content_sha256)
    threshold = parse_size(multipart_threshold, "multipart_threshold")
    chunksize = parse_size(multipart_chunksize, "multipart_chunksize")
    entries, bodies = scan(data, Path(release_dir) if release_dir is not None else None,
                           keep_bytes=KEEP_BODIES_BYTES, folders=folders)
    if not any(e["key"].startswith("data/") for e in entries) and release_dir is None:
        raise ConfigError(f"nothing to mirror: {data} has no files under {', '.join(MIRRORED_DIRS)}", path=data)
    if release is not None:
        _require_release_sources(data, entries, release)
    doc = manifest_doc(entries, version=version, content_sha256=content_sha256, date=d, hub=hub)
    bucket = open_bucket(settings, workers, client)
    total_bytes = sum(e["size"] for e in entries)
    result = MirrorResult(
        uri=bucket.uri(f"{d}/data"), release_uri=bucket.uri(f"{d}/release") if release_dir else None,
        manifest_uri=bucket.uri(f"{d}/{MIRROR_MANIFEST}"), date=d, files=len(entries), bytes=total_bytes,
        uploaded=0, skipped=0, already_complete=False, version=version, dry_run=dry_run, manifest=doc,
    )
    counter = ProgressCounter(progress, len(entries), total_bytes)

    remote = manifest_at(bucket, d)
    if remote is not None and _check_existing_manifest(bucket, d, remote, doc):
        log.info("%s already complete: nothing to send", result.manifest_uri)
        result.skipped, result.already_complete, result.manifest = len(entries), True, remote
        counter.add(len(entries), total_bytes)
        return result

    job = _Mirror(bucket, d, workers, counter, threshold, chunksize,
                  {k: b for k, b in bodies.items() if len(b) < threshold}, copy_max=copy_max)
    if incremental:
        result.copied_from, job.copy_from = copy_sources(bucket, d, entries)
    _send(job, entries, doc, result)
    return result


def _release_identity(release_dir: str | Path, version: str | None, content_sha256: str | None
                      ) -> tuple[ReleaseManifest, str, str]:
    """The manifest, version and content_sha256 of the release at ``release_dir``; a ``version``
    given must be the release's own."""
    rel = load_release(release_dir)
    if version is not None and version != rel["version"]:
        raise ConfigError(f"the release folder {release_dir} is version {rel['version']}, not {version}; rebuild it")
    return rel, version or rel["version"], content_sha256 or rel["content_sha256"]


def _require_release_sources(data: Path, entries: list[dict[str, Any]], release: ReleaseManifest) -> None:
    """Refuse, before anything is sent, a data tree whose files are not the release's sources: a
    file edited, added or removed since the build would be mirrored beside a release it is not part
    of, under a completion mark."""
    wrong = tree_differences(entries, release)
    if not wrong:
        return
    key, what = wrong[0]
    path = data / key.removeprefix("data/")
    more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
    raise IntegrityError(
        f"{path} {what}{more}: the data tree changed after release {release['version']} was built, so its "
        "S3 mirror would not hold the release's sources; nothing was sent. Restore the tree as it was "
        "built, or publish its new content as a new version", path=path, key=key)


def latest_complete(bucket: S3Bucket, exclude: str) -> tuple[str, dict[str, Any]] | None:
    """The newest date prefix other than ``exclude`` that holds a vmeval-hf ``MANIFEST.json``, with
    that manifest (one LIST of the bucket's top level, then a GET per prefix, newest first)."""
    for folder in sorted(list_subfolders(bucket), reverse=True):
        day = folder.rstrip("/")
        try:
            if day == exclude or parse_date(day) != day:
                continue
            found = manifest_at(bucket, day)
        except (ConfigError, S3Error):
            continue  # not a date prefix, or not one of ours
        if found is not None:
            return day, found
    return None


def copy_sources(bucket: S3Bucket, date: str, entries: list[dict[str, Any]]) -> tuple[str | None, dict[str, str]]:
    """``(the prefix copied from, entry key -> the key to copy it from)``: every file the latest
    complete prefix records with the same size and sha256, under the same key where it can."""
    found = latest_complete(bucket, date)
    if found is None:
        return None, {}
    day, manifest = found
    files = [f for f in manifest["files"] if isinstance(f, dict)]
    by_key = {f.get("key"): f for f in files}
    by_content = {(f.get("sha256"), f.get("size")): f.get("key") for f in files}
    sources: dict[str, str] = {}
    for e in entries:
        same = by_key.get(e["key"])
        if same is not None and (same.get("sha256"), same.get("size")) == (e["sha256"], e["size"]):
            sources[e["key"]] = f"{day}/{e['key']}"
        elif (src := by_content.get((e["sha256"], e["size"]))) is not None:
            sources[e["key"]] = f"{day}/{src}"
    log.info("incremental: %d of %d files can be copied from %s", len(sources), len(entries), bucket.uri(day + "/"))
    return bucket.uri(f"{day}/"), sources


def _send(job: _Mirror, entries: list[dict[str, Any]], doc: dict[str, Any], result: MirrorResult) -> None:
    """Check what is there, send (or copy) the rest, then ``MANIFEST.json``; only count with ``dry_run``."""
    present, missing = job.plan(entries)
    if result.dry_run:
        job.close()
        copies = [e for e in missing if e["key"] in job.copy_from]
        result.uploaded, result.skipped, result.copied = len(missing) - len(copies), len(present), len(copies)
        result.uploaded_bytes = sum(e["size"] for e in missing) - sum(e["size"] for e in copies)
        result.copied_bytes = sum(e["size"] for e in copies)
        return
    order = present + sorted(missing, key=lambda e: -e["size"])  # large files start first
    try:
        outcomes = run_parallel(job.resume_or_upload, present, job.workers)
        outcomes += run_parallel(job.upload, order[len(present):], job.workers)
    finally:
        job.close()
    result.uploaded, result.skipped = outcomes.count("uploaded"), outcomes.count("skipped")
    result.copied = outcomes.count("copied")
    result.uploaded_bytes = sum(e["size"] for e, o in zip(order, outcomes) if o == "uploaded")
    result.copied_bytes = sum(e["size"] for e, o in zip(order, outcomes) if o == "copied")
    doc["files"] = file_list(entries)  # with the composite checksum of each object stored in parts
    result.manifest = job.put_manifest(doc)
    log.info("mirrored %s: %d sent, %d copied, %d already there", result.manifest_uri, result.uploaded,
             result.copied, result.skipped)


# -- seed compatibility ------------------------------------------------------------------------


def sync_to_s3(date_prefix: str | None = None, data_dir: str | Path | None = None) -> str:
    """Seed-compatible: mirror ``data_dir`` (default ``data``) to S3 under the prefix ``date_prefix``
    (default: today, UTC); return ``s3://<bucket>/<D>/data``. Settings come from the environment."""
    settings = Settings.from_env()
    return mirror_version(Path(data_dir) if data_dir is not None else Path("data"),
                          settings=settings, date=date_prefix).uri
