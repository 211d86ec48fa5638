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
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .._shared.fs import canonical_json, parse_size, sha256_bytes
from .._shared.jsonstream import Unstreamed, array_items, object_without_items
from .._shared.ordered import outer_join
from ..config import Settings
from ..errors import ConfigError, IntegrityError, S3ConflictError, S3Error
from ..release.release_manifest import (
    RELEASE_MANIFEST,
    ReleaseManifest,
    load_release,
    load_release_copy,
    sources_of,
)
from .client import S3Bucket, list_subfolders, make_client
from .files import MirrorFiles, mirror_files
from .layout import (
    KEEP_BODIES_BYTES,
    MANIFEST_SCHEMA,
    MIRROR_MANIFEST,
    MIRRORED_DIRS,
    canonical_sha256,
    compare_files,
    describe_differences,
    manifest_head,
    next_date_suffix,
    parse_date,
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
    for i, e in enumerate(doc["files"]):
        if not _plain_entry(e):
            raise IntegrityError(f"{bucket.uri(key)}: files entry {i} is not a {{key, size, sha256}} entry "
                                 f"({json.dumps(e)[:100]}): the manifest was altered after the mirror; mirror "
                                 "the version again under a new --date", key=key)
    return doc


def _plain_entry(e: Any) -> bool:
    """A ``MANIFEST.json`` file entry with the fields its readers use, of their types."""
    return (isinstance(e, dict) and isinstance(e.get("key"), str) and type(e.get("size")) is int
            and isinstance(e.get("sha256"), str))


class MirrorManifest:
    """A prefix's ``MANIFEST.json`` for the readers that walk its files once, in key order (verify,
    pull, the check against the release): its fields but ``files`` in :attr:`head`, and
    :meth:`files`. Opened by :func:`open_manifest` from a downloaded copy, streamed (400,000 entries
    at 100,000 questions are never held); made by :meth:`of` from a document held whole."""

    def __init__(self, head: dict[str, Any], *, path: Path | None = None,
                 files: list[dict[str, Any]] | None = None, doc: dict[str, Any] | None = None) -> None:
        self.head, self._path, self._files, self._doc = head, path, files, doc

    @classmethod
    def of(cls, doc: dict[str, Any]) -> MirrorManifest:
        files = [f for f in doc.get("files") or [] if isinstance(f, dict)]
        return cls({k: v for k, v in doc.items() if k != "files"},
                   files=sorted(files, key=lambda f: str(f.get("key"))), doc=doc)

    def sha256(self) -> str:
        """The sha256 of ``canonical_json`` of the document (what the version log records of a
        data-tree mirror's manifest), computed a file entry at a time for a streamed copy."""
        if self._doc is not None:
            return sha256_bytes(canonical_json(self._doc).encode("utf-8"))
        return canonical_sha256(self.head, self.files())

    def get(self, name: str, default: Any = None) -> Any:
        return self.head.get(name, default)

    def files(self) -> Iterator[dict[str, Any]]:
        """Every file entry, in ascending key order (checked when the copy was opened)."""
        if self._files is not None:
            yield from self._files
        else:
            assert self._path is not None
            yield from array_items(self._path, "files")


def _files_in_order(entries: Iterator[Any]) -> int:
    """Walk ``MANIFEST.json``'s ``files``: how many; :class:`Unstreamed` unless each is a plain
    entry (:func:`_plain_entry`), in strictly ascending key order (anything else is read whole
    instead, and refused there if an entry is not plain)."""
    count, last = 0, None
    for e in entries:
        if not _plain_entry(e) or (last is not None and not last < e["key"]):
            raise Unstreamed("files not in key order")
        count, last = count + 1, e["key"]
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
        read = object_without_items(path, "files", _files_in_order)
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


def read_release_manifest(*, settings: Settings, date: str, dest: str | Path, client: Any | None = None
                          ) -> tuple[ReleaseManifest, Path] | None:
    """The release manifest mirrored under ``<D>/release/``, or None if there is none: downloaded
    into the folder ``dest`` a chunk at a time (about 70 MB at 100,000 questions) and read without
    holding its source list (:func:`~vmeval_hf.release.release_manifest.load_release_copy`), with
    the file it was read from, whence :func:`~vmeval_hf.release.release_manifest.sources_of`
    streams the list. A copy that fails its checks is an :class:`IntegrityError` naming its
    ``s3://`` address."""
    d = parse_date(date)
    bucket = open_bucket(settings, 1, client)
    key = f"{d}/release/{RELEASE_MANIFEST}"
    file = Path(dest) / RELEASE_MANIFEST
    file.parent.mkdir(parents=True, exist_ok=True)
    if not bucket.get_to_file(key, file):
        return None
    return load_release_copy(file, bucket.uri(key)), file


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
    copied: int = 0             # files copied on the server from ``copied_from`` (incremental)
    copied_bytes: int = 0
    copied_from: str | None = None  # the complete prefix an incremental mirror copied from (s3://.../<D>/)


def _check_existing_manifest(bucket: S3Bucket, date: str, remote: MirrorManifest, head: dict[str, Any],
                             files: MirrorFiles) -> bool:
    """True when ``remote`` is the manifest we would write (``head`` with ``files``); otherwise
    raise S3ConflictError. The two file lists are walked side by side."""
    rv, lv = remote.get("version"), head["version"]
    same_version = rv == lv or lv is None
    same_content = head["content_sha256"] is None or remote.get("content_sha256") == head["content_sha256"]
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
    diff = compare_files(remote.files(), files.entries())
    if not diff:
        return True
    keys, summary = describe_differences(diff, date)
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
    copy_day: str | None = None  # the prefix an incremental mirror copies from (each file's ``copy_from``)
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
        outcome, stored = copy_verified(self.bucket, self.pool, f"{self.copy_day}/{entry['copy_from']}", key,
                                        entry["size"], entry["sha256"], path=entry["path"], chunksize=self.chunksize,
                                        copy_max=self.copy_max)
        if stored is not None:
            entry["composite_sha256"] = stored
        if outcome == "refused":
            del entry["copy_from"]
        return outcome

    def upload(self, entry: dict[str, Any]) -> str:
        """Copy (incremental) or send one missing file; "copied", "uploaded" or "skipped"."""
        key = self.key(entry)
        for _ in range(3):
            copied = self._copy(key, entry) if "copy_from" in entry else None
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

    def plan(self, files: MirrorFiles) -> None:
        """Note which files the bucket holds already, with one listing walked beside the file
        list; refuse a prefix holding objects of other content (other keys, or other sizes under
        our keys)."""
        d, skip = self.date, f"{self.date}/{MIRROR_MANIFEST}"
        listed = ((k, size) for k, size in self.bucket.iter_sizes(f"{d}/") if k != skip)
        strays: list[str] = []
        other_size: tuple[str, str] | None = None

        def held() -> Iterator[str]:
            nonlocal other_size
            for e, obj in outer_join(files.entries(), listed, self.key, lambda o: o[0]):
                if e is None:
                    strays.append(obj[0])  # type: ignore[index]
                elif obj is not None:
                    if obj[1] != e["size"] and other_size is None:  # a size mismatch needs no HEAD to be a conflict
                        other_size = obj[0], f"{obj[1]} bytes, expected {e['size']}"
                    yield e["key"]

        files.mark_present(held())
        if strays:
            raise S3ConflictError(
                f"{self.bucket.uri(d + '/')} has no {MIRROR_MANIFEST} but holds {len(strays)} object(s) that "
                f"are not part of this mirror, e.g. {strays[0]}: an unfinished upload of other content; "
                f"mirror to a new prefix with --date {next_date_suffix(d)}, or delete those objects",
                key=strays[0], keys=strays,
            )
        if other_size is not None:
            raise self.conflict(*other_size)
        present = files.held()
        log.info("mirroring %d files to %s: %d to send, %d to check", files.count, self.bucket.uri(d + "/"),
                 files.count - present, present)

    def put_manifest(self, files: MirrorFiles, head: dict[str, Any]) -> None:
        """Write MANIFEST.json once; if another mirror wrote it first it must be the same."""
        key = f"{self.date}/{MIRROR_MANIFEST}"
        path, sha256 = files.write_manifest(head)
        with open(path, "rb") as body:
            if self.bucket.put_once(key, body, sha256, content_type="application/json"):
                return
        with open_manifest(self.bucket, self.date) as remote:
            if remote is None:
                raise S3ConflictError(f"{self.bucket.uri(key)} appeared and vanished during the mirror; re-run",
                                      key=key)
            _check_existing_manifest(self.bucket, self.date, remote, head, files)

    def send(self, entry: dict[str, Any]) -> str:
        """Check a file the bucket held already (a resumed mirror), else copy or upload it."""
        return self.resume_or_upload(entry) if entry.get("present") else self.upload(entry)

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
    release = rel_dir = None
    if release_dir is not None:
        rel_dir = Path(release_dir)
        release, version, content_sha256 = _release_identity(rel_dir, version, content_sha256)
    threshold = parse_size(multipart_threshold, "multipart_threshold")
    chunksize = parse_size(multipart_chunksize, "multipart_chunksize")
    with mirror_files() as files:
        bodies = files.scan(data, rel_dir, keep_bytes=KEEP_BODIES_BYTES, folders=folders)
        if not files.has_data and rel_dir is None:
            raise ConfigError(f"nothing to mirror: {data} has no files under {', '.join(MIRRORED_DIRS)}", path=data)
        if release is not None and rel_dir is not None:
            _require_release_sources(data, files, release, rel_dir / RELEASE_MANIFEST)
        head = manifest_head(version=version, content_sha256=content_sha256, date=d, hub=hub)
        bucket = open_bucket(settings, workers, client)
        result = MirrorResult(
            uri=bucket.uri(f"{d}/data"), release_uri=bucket.uri(f"{d}/release") if release_dir else None,
            manifest_uri=bucket.uri(f"{d}/{MIRROR_MANIFEST}"), date=d, files=files.count, bytes=files.bytes,
            uploaded=0, skipped=0, already_complete=False, version=version, dry_run=dry_run,
        )
        counter = ProgressCounter(progress, files.count, files.bytes)

        with open_manifest(bucket, d) as remote:
            if remote is not None and _check_existing_manifest(bucket, d, remote, head, files):
                log.info("%s already complete: nothing to send", result.manifest_uri)
                result.skipped, result.already_complete = files.count, True
                counter.add(files.count, files.bytes)
                return result

        job = _Mirror(bucket, d, workers, counter, threshold, chunksize,
                      {k: b for k, b in bodies.items() if len(b) < threshold}, copy_max=copy_max)
        if incremental:
            result.copied_from, job.copy_day = copy_sources(bucket, d, files)
        _send(job, files, head, result)
        return result


def _release_identity(release_dir: str | Path, version: str | None, content_sha256: str | None
                      ) -> tuple[ReleaseManifest, str, str]:
    """The manifest (without its sources, which are streamed from the file when compared), version
    and content_sha256 of the release at ``release_dir``; a ``version`` given must be the release's own."""
    rel = load_release(release_dir, sources=False)
    if version is not None and version != rel["version"]:
        raise ConfigError(f"the release folder {release_dir} is version {rel['version']}, not {version}; rebuild it")
    return rel, version or rel["version"], content_sha256 or rel["content_sha256"]


def _require_release_sources(data: Path, files: MirrorFiles, release: ReleaseManifest, manifest_file: Path) -> None:
    """Refuse, before anything is sent, a data tree whose files are not the release's sources: a
    file edited, added or removed since the build would be mirrored beside a release it is not part
    of, under a completion mark."""
    wrong = tree_differences(files.entries(), release, sources_of(release, manifest_file))
    if wrong.first is None:
        return
    key, what = wrong.first
    path = data / key.removeprefix("data/")
    more = f" (and {wrong.count - 1} more)" if wrong.count > 1 else ""
    raise IntegrityError(
        f"{path} {what}{more}: the data tree changed after release {release['version']} was built, so its "
        "S3 mirror would not hold the release's sources; nothing was sent. Restore the tree as it was "
        "built, or publish its new content as a new version", path=path, key=key)


def _dated_prefixes(bucket: S3Bucket, exclude: str) -> Iterator[str]:
    """The bucket's date prefixes other than ``exclude``, newest first (one LIST of its top level)."""
    for folder in sorted(list_subfolders(bucket), reverse=True):
        day = folder.rstrip("/")
        try:
            if day != exclude and parse_date(day) == day:
                yield day
        except ConfigError:
            continue  # not a date prefix


@contextmanager
def open_latest_complete(bucket: S3Bucket, exclude: str) -> Iterator[tuple[str, MirrorManifest] | None]:
    """The newest date prefix other than ``exclude`` that holds a vmeval-hf ``MANIFEST.json``, with
    that manifest opened as :func:`open_manifest` opens it (streamed; a GET per prefix, newest
    first); None when no prefix is complete."""
    for day in _dated_prefixes(bucket, exclude):
        with ExitStack() as stack:
            try:
                manifest = stack.enter_context(open_manifest(bucket, day))
            except S3Error:
                continue  # not one of ours
            if manifest is None:
                continue
            yield day, manifest
            return
    yield None


def copy_sources(bucket: S3Bucket, date: str, files: MirrorFiles) -> tuple[str | None, str | None]:
    """``(the prefix copied from, as s3://.../<D>/, and its date)``, having noted in ``files`` each
    file the latest complete prefix records with the same size and sha256 (under the same key
    where it can: :meth:`~.files.MirrorFiles.set_copy_sources`); ``(None, None)`` when no
    prefix is complete. The prefix's ``MANIFEST.json`` is streamed."""
    with open_latest_complete(bucket, date) as latest:
        if latest is None:
            return None, None
        day, manifest = latest
        found = files.set_copy_sources(manifest.files())
    log.info("incremental: %d of %d files can be copied from %s", found, files.count, bucket.uri(day + "/"))
    return bucket.uri(f"{day}/"), day


def _send(job: _Mirror, files: MirrorFiles, head: dict[str, Any], result: MirrorResult) -> None:
    """Check what is there, send (or copy) the rest, then ``MANIFEST.json``; only count with ``dry_run``."""
    job.plan(files)
    if result.dry_run:
        job.close()
        result.uploaded, result.uploaded_bytes, result.copied, result.copied_bytes = files.to_send()
        result.skipped = files.held()
        return
    try:
        for batch in files.in_send_order():
            outcomes = run_parallel(job.send, batch, job.workers)
            files.record(batch)  # the composite checksum of each object stored in parts
            for e, outcome in zip(batch, outcomes):
                if outcome == "uploaded":
                    result.uploaded, result.uploaded_bytes = result.uploaded + 1, result.uploaded_bytes + e["size"]
                elif outcome == "copied":
                    result.copied, result.copied_bytes = result.copied + 1, result.copied_bytes + e["size"]
                else:
                    result.skipped += 1
    finally:
        job.close()
    job.put_manifest(files, head)
    log.info("mirrored %s: %d sent, %d copied, %d already there", result.manifest_uri, result.uploaded,
             result.copied, result.skipped)


# -- seed compatibility ------------------------------------------------------------------------


def sync_to_s3(date_prefix: str | None = None, data_dir: str | Path | None = None) -> str:
    """Seed-compatible: mirror ``data_dir`` (default ``data``) to S3 under the prefix ``date_prefix``
    (default: today, UTC); return ``s3://<bucket>/<D>/data``. Settings come from the environment."""
    settings = Settings.from_env()
    return mirror_version(Path(data_dir) if data_dir is not None else Path("data"),
                          settings=settings, date=date_prefix).uri
