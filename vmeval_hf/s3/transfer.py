"""Large objects, proven: multipart uploads that hash exactly the bytes they send, and server-side
copies whose SHA-256 the server computed.

Why not s3transfer: it reads each part itself, in its own threads and in no fixed order, so the
bytes that leave cannot be hashed as one stream; a file edited between the manifest's hash and
the upload would be sent as it is now and still be "verified" against the old sha256. Here each
part is read once, in order, by the caller's thread:

* the running sha256 of every byte read must equal the manifest's sha256 before
  ``CompleteMultipartUpload`` is sent; on a mismatch the upload is aborted and
  :class:`~vmeval_hf.errors.IntegrityError` names the file;
* each part carries the ``ChecksumSHA256`` of its bytes (S3 rejects a part whose bytes differ),
  and after completion the object's composite checksum, computed by the server from the parts it
  stored, must equal the one computed here from the same bytes (``b64(sha256(d1 + d2 + ...))-N``,
  ``d`` the parts' raw digests). It is recorded in ``MANIFEST.json`` (``composite_sha256``), so a
  later HEAD checks the object against something the server computed.

A copy (:func:`copy_verified`) asks the server for a SHA-256 of the new object: ``CopyObject``
(up to :data:`COPY_MAX`) returns the full-object checksum, compared with the manifest's sha256;
larger objects are copied in parts (``UploadPartCopy``) and their composite is compared with one
computed from the local file, whose running sha256 must equal the manifest's.

All S3 calls go through :class:`~vmeval_hf.s3.client.S3Bucket` (the botocore error boundary);
parts run on one :class:`PartPool` shared by a whole mirror, which bounds the parts held in memory.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from ..errors import IntegrityError
from .client import TRANSFER_CONCURRENCY, ObjectInfo, S3Bucket

log = logging.getLogger(__name__)

#: S3's limits: at most 10,000 parts, and CopyObject copies at most 5 GiB in one request.
MAX_PARTS = 10_000
COPY_MAX = 5 * 2**30


class PartPool:
    """The threads that send the parts of every multipart upload and copy of one mirror.

    At most ``in_flight`` parts are being read, queued or sent at once, however many files are
    uploaded at once (the mirror uploads up to its ``workers`` files side by side): a part's slot
    is taken before its bytes are read (:meth:`buffer`) and given back once they are sent and
    hashed. The uploads read their parts into a fixed set of buffers, one per slot, each reused
    part after part, so the memory the parts hold is ``in_flight`` x the part size for the whole
    mirror and nothing is allocated per part (glibc would keep the freed 8 MiB blocks of every
    thread that read one, and the process would grow with the number of files uploaded side by
    side)."""

    def __init__(self, threads: int = TRANSFER_CONCURRENCY, in_flight: int | None = None) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="vmeval-s3-part")
        self._slots = threading.BoundedSemaphore(in_flight or 2 * threads)
        self._lock = threading.Lock()
        self._free: list[bytearray] = []  # buffers whose part has been sent
        #: buffers made so far (at most ``in_flight`` while the part size stays the same)
        self.buffers_made = 0

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` (a part that holds no bytes here: a copy) once a slot is free."""
        self._slots.acquire()
        try:
            future = self._pool.submit(fn, *args)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        return future

    def buffer(self, size: int) -> bytearray:
        """A buffer of ``size`` bytes for one part, once a slot is free: a sent part's if one of that
        size is free, else a new one. Pass it to :meth:`send` (or :meth:`give_back` if unused)."""
        self._slots.acquire()
        with self._lock:
            for i, buf in enumerate(self._free):
                if len(buf) == size:
                    return self._free.pop(i)
            if self._free:  # another part size (a file too large for 10,000 parts): drop one
                self._free.pop()
            self.buffers_made += 1
        return bytearray(size)

    def send(self, buf: bytearray, fn: Callable[..., Any], *args: Any) -> tuple[Future[Any], Callable[[], None]]:
        """Run ``fn(*args)`` (which sends ``buf``'s bytes). Returns its future and ``done_reading``:
        ``buf`` and its slot come back once ``fn`` has ended *and* ``done_reading()`` was called, so
        the caller may read ``buf`` (hash it) while it is being sent."""
        claims, lock = [2], threading.Lock()

        def drop() -> None:
            with lock:
                claims[0] -= 1
                last = claims[0] == 0
            if last:
                self.give_back(buf)

        try:
            future = self._pool.submit(fn, *args)
        except BaseException:
            self.give_back(buf)
            raise
        future.add_done_callback(lambda _: drop())
        return future, drop

    def give_back(self, buf: bytearray) -> None:
        """Return a buffer from :meth:`buffer` that is not sent, and its slot."""
        with self._lock:
            self._free.append(buf)
        self._slots.release()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def part_size(size: int, chunksize: int) -> int:
    """``chunksize``, raised as needed so that ``size`` fits in :data:`MAX_PARTS` parts."""
    return max(chunksize, -(-size // MAX_PARTS))


def composite(digests: list[bytes]) -> str:
    """S3's composite SHA-256 of an object made of parts with these raw digests: ``<base64>-<parts>``."""
    return f"{base64.b64encode(hashlib.sha256(b''.join(digests)).digest()).decode('ascii')}-{len(digests)}"


def file_composite(path: str, size: int, part: int) -> tuple[str, str]:
    """``(composite, sha256 hex)`` of the first ``size`` bytes of ``path`` cut in parts of ``part`` bytes."""
    whole, digests = hashlib.sha256(), []
    with open(path, "rb") as fh:
        for offset in range(0, size, part):
            data = fh.read(min(part, size - offset))
            whole.update(data)
            digests.append(hashlib.sha256(data).digest())
            if not data:
                break
    return composite(digests), whole.hexdigest()


def holds(info: ObjectInfo, size: int, sha256_hex: str, composite_sha256: str | None) -> bool:
    """Whether the server's checksum of an object says it holds a file of ``size`` bytes with
    ``sha256_hex`` (a single-part object) or the composite ``composite_sha256`` (a multipart one)."""
    if info.size != size:
        return False
    if info.parts is None:
        return info.sha256 == sha256_hex
    return composite_sha256 is not None and info.same_checksum(composite_sha256)


# -- upload ------------------------------------------------------------------------------------


@dataclass
class _Upload:
    bucket: S3Bucket
    pool: PartPool
    key: str
    path: str
    size: int
    sha256: str
    on_bytes: Callable[[int], None] | None
    upload_id: str = ""

    def send_part(self, number: int, data: bytes | bytearray) -> dict[str, Any]:
        digest = hashlib.sha256(data).digest()
        checksum = base64.b64encode(digest).decode("ascii")
        echoed = self.bucket.upload_part(self.key, self.upload_id, number, data, checksum)
        if echoed.get("ChecksumSHA256") not in (None, checksum):  # S3 checked the bytes against ours
            raise IntegrityError(f"S3 stored other bytes than were sent for part {number} of "
                                 f"{self.bucket.uri(self.key)}; re-run", key=self.key, path=self.path)
        if self.on_bytes is not None:
            self.on_bytes(len(data))
        return {"PartNumber": number, "ETag": echoed["ETag"], "ChecksumSHA256": checksum, "digest": digest}

    def send_parts(self, part: int) -> list[dict[str, Any]]:
        """Read the file once, in order, hashing every byte read; send each part on the pool, from
        one of its buffers. Raise IntegrityError, once every part sent has finished, if what was
        read is not the manifest's bytes."""
        whole, futures, read = hashlib.sha256(), [], 0
        with open(self.path, "rb") as fh:
            for number, offset in enumerate(range(0, self.size, part), 1):
                if any(f.done() and f.exception() is not None for f in futures):
                    break  # a part failed: stop reading; its error is raised below
                want = min(part, self.size - offset)
                buf = self.pool.buffer(part)
                try:
                    got = fh.readinto(memoryview(buf)[:want])
                except BaseException:
                    self.pool.give_back(buf)
                    raise
                read += got
                # a full part is sent from the buffer itself, and hashed into the whole file's
                # sha256 while it goes; the file's last, shorter part as a copy of its bytes
                # (botocore sends bytes or a bytearray, not a memoryview)
                if got == part:
                    future, done_reading = self.pool.send(buf, self.send_part, number, buf)
                    futures.append(future)
                    try:
                        whole.update(buf)
                    finally:
                        done_reading()
                else:
                    body = bytes(memoryview(buf)[:got])
                    self.pool.give_back(buf)
                    futures.append(self.pool.submit(self.send_part, number, body))
                    whole.update(body)
                if got < want:
                    break  # the file shrank
        wait(futures)
        parts = [f.result() for f in futures]  # the first failed part's error, as raised
        if read != self.size or whole.hexdigest() != self.sha256:
            raise IntegrityError(
                f"{self.path} changed while it was being uploaded to {self.bucket.uri(self.key)} (the bytes read "
                f"have sha256 {whole.hexdigest()[:12]}..., the manifest {self.sha256[:12]}...): the upload was "
                "aborted and nothing was marked complete; re-run to mirror its current content",
                path=self.path, key=self.key)
        return parts


def upload_verified(bucket: S3Bucket, pool: PartPool, key: str, path: str, size: int, sha256_hex: str, *,
                    chunksize: int, on_bytes: Callable[[int], None] | None = None,
                    content_type: str | None = None) -> str | None:
    """Upload ``path`` to ``key`` in parts, put-once, proving the object holds ``sha256_hex``.

    Returns the object's composite checksum (for ``MANIFEST.json``), or None when ``key`` already
    existed (nothing written: the caller compares it). A file whose bytes no longer hash to
    ``sha256_hex`` aborts the upload and raises IntegrityError naming it."""
    job = _Upload(bucket, pool, key, path, size, sha256_hex, on_bytes)
    job.upload_id = bucket.create_upload(key, content_type)
    try:
        parts = job.send_parts(part_size(size, chunksize))
        expected = composite([p.pop("digest") for p in parts])
        done = bucket.complete_upload(key, job.upload_id, parts)
    except BaseException:
        bucket.abort_upload(key, job.upload_id)
        raise
    if done is None:  # 412: the key exists (a retried request that had landed, or another writer)
        bucket.abort_upload(key, job.upload_id)
        return None
    _check_server_checksum(bucket, key, done, expected, path)
    return expected


def _check_server_checksum(bucket: S3Bucket, key: str, response: dict[str, Any], expected: str, path: str) -> None:
    """The object just written must carry the checksum computed here; if not, it is deleted (the
    prefix is unfinished, so nothing refers to it yet) and IntegrityError raised."""
    stored = response.get("ChecksumSHA256")
    info = ObjectInfo(key, 0, stored, response.get("ETag", ""), response.get("ChecksumType")) if stored \
        else bucket.head(key)
    if info is not None and info.same_checksum(expected):
        return
    bucket.delete(key)
    raise IntegrityError(f"S3 computed checksum {info.checksum if info else None} for {bucket.uri(key)}, not "
                         f"{expected} as computed from the bytes of {path} sent; the object was deleted: re-run",
                         key=key, path=path)


# -- copy --------------------------------------------------------------------------------------


def copy_verified(bucket: S3Bucket, pool: PartPool, source: str, key: str, size: int, sha256_hex: str, *,
                  path: str, chunksize: int, copy_max: int = COPY_MAX) -> tuple[str, str | None]:
    """Copy ``source`` to ``key`` on the server, put-once, proving the copy holds ``sha256_hex``.

    Returns ``(outcome, composite)``: ``("copied", None)`` for a single-request copy (its checksum
    is the full sha256), ``("copied", composite)`` for one made in parts; ``("exists", None)`` when
    ``key`` existed already (412: nothing written, the caller compares it); ``("refused", None)``
    when the source is gone or the server's checksum of the copy is not the expected one (the copy
    is deleted and a warning logged: the source was altered; the caller uploads the file instead).
    """
    if size <= copy_max:
        done = bucket.copy_once(source, key)
        if done is None:
            return "exists", None
        if done.get("source_missing"):
            return _refused(bucket, source, key, None, deleted=False)
        stored = done.get("ChecksumSHA256")
        info = ObjectInfo(key, size, stored, done.get("ETag", ""), done.get("ChecksumType")) if stored \
            else bucket.head(key)
        if info is not None and info.parts is None and info.sha256 == sha256_hex:
            return "copied", None
        return _refused(bucket, source, key, info)
    part = part_size(size, chunksize)
    upload_id = bucket.create_upload(key, None)
    try:
        futures = [pool.submit(bucket.copy_part, key, upload_id, n, source, first, min(first + part, size) - 1)
                   for n, first in enumerate(range(0, size, part), 1)]
        expected, local = file_composite(path, size, part)  # read while the server copies
        parts = [f.result() for f in futures]
        if local != sha256_hex:
            raise IntegrityError(f"{path} changed while it was being mirrored (sha256 {local[:12]}..., the manifest "
                                 f"{sha256_hex[:12]}...); nothing was marked complete: re-run", path=path, key=key)
        done = bucket.complete_upload(key, upload_id, parts)
    except BaseException:
        bucket.abort_upload(key, upload_id)
        raise
    if done is None:
        bucket.abort_upload(key, upload_id)
        return "exists", None
    info = bucket.head(key)
    if info is not None and info.same_checksum(expected):
        return "copied", expected
    return _refused(bucket, source, key, info)


def _refused(bucket: S3Bucket, source: str, key: str, info: ObjectInfo | None,
             deleted: bool = True) -> tuple[str, None]:
    if deleted:
        bucket.delete(key)
    log.warning("%s cannot serve as the copy of %s (%s); uploading the local file instead", bucket.uri(source),
                bucket.uri(key), f"the copy's checksum is {info.checksum if info else None}" if deleted else "it is gone")
    return "refused", None
