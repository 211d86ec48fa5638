"""The S3 boundary: the one way to build a client, and thin wrappers that translate botocore errors.

Everything vmeval-hf sends to S3 goes through :func:`make_client` and :class:`S3Bucket`; no other
module imports botocore or catches its exceptions. A wrapper returns a plain value or raises one
:class:`~vmeval_hf.errors.S3Error` subclass ``from`` the botocore error, with a message that says
what is wrong and what to do next::

    no credentials / access denied      -> S3AuthError
    no such bucket                      -> S3BucketNotFoundError (says how to create it)
    endpoint unreachable, timeouts,
    throttled or 5xx past the retries   -> S3UnreachableError (re-running resumes)
    bytes refused by the server         -> IntegrityError
    anything else botocore raises       -> S3Error

Every object the client writes is put-once: single-part puts send ``If-None-Match: *`` and a
``ChecksumSHA256``; multipart uploads (parts with ``ChecksumSHA256``) and server-side copies send
``If-None-Match: *`` on CompleteMultipartUpload and CopyObject. The multipart and copy logic that
proves what a large object holds is in :mod:`vmeval_hf.s3.transfer`, on top of these wrappers.

Only ``botocore.exceptions`` (about 12 ms) is imported at the top, for the error translation.
boto3 and the rest of botocore take about 0.15 s more to import (``python -X
importtime``), so they are imported inside the functions that use them (the lines marked
``# start-up``): importing this module, or running a command that never reaches S3, does
not pay for them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

from .._shared.meta import __version__
from ..config import Settings
from ..errors import (
    IntegrityError,
    S3AuthError,
    S3BucketNotFoundError,
    S3Error,
    S3UnreachableError,
    VmevalError,
)

log = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
#: Threads sending the parts of multipart uploads and copies (on top of the caller's workers).
TRANSFER_CONCURRENCY = 8

_AUTH_CODES = {
    "AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch",
    "ExpiredToken", "InvalidToken", "TokenRefreshRequired", "AccountProblem", "InvalidSecurity",
    "UnrecognizedClientException", "403",
}
_THROTTLE_CODES = {
    "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests",
    "TooManyRequestsException", "RequestThrottled", "ServiceUnavailable", "InternalError",
    "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete",
}
_INTEGRITY_CODES = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"}
_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}


#: Bodies at least this large ask for ``Expect: 100-continue``; smaller ones are sent at once.
EXPECT_CONTINUE_MIN = 1 << 20


def _put_once_multipart(params: dict[str, Any], **_: Any) -> None:
    params.setdefault("IfNoneMatch", "*")


def _expect_continue_for_large_bodies(model: Any, params: dict[str, Any], **_: Any) -> None:
    # botocore asks every S3 PUT to wait for "100 Continue" (one more round trip and about a fifth
    # of the client CPU of a small put_object); it only saves bandwidth when a large body is refused.
    from botocore.utils import determine_content_length  # start-up: see the module docstring

    body = params.get("body")
    if model.http.get("method") in ("PUT", "POST") and hasattr(body, "read"):
        size = determine_content_length(body)
        if size is None or size >= EXPECT_CONTINUE_MIN:
            params["headers"]["Expect"] = "100-continue"


_loader_lock = threading.Lock()
_shared_loader: Any = None


def _botocore_session() -> Any:
    """A new botocore session (credentials resolve afresh) sharing one model loader, so clients
    after the first skip re-parsing the large S3 service JSON."""
    import botocore.session  # start-up: see the module docstring

    global _shared_loader
    session = botocore.session.Session()
    with _loader_lock:
        if _shared_loader is None:
            _shared_loader = session.get_component("data_loader")
        else:
            session.register_component("data_loader", _shared_loader)
    return session


def make_client(
    settings: Settings,
    max_workers: int = 16,
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    max_attempts: int | None = None,
) -> Any:
    """The one S3 client constructor: share the result across threads (botocore clients are thread-safe).

    The connection pool holds at least ``max_workers`` connections plus the multipart threads,
    retries use botocore's ``standard`` mode (``max_attempts`` tries in all, by default
    ``settings.s3_attempts``: ``VMEVAL_S3_ATTEMPTS``), and checksums are only computed where we ask for
    them (we send SHA-256 ourselves and verify downloads against the manifest).
    """
    import boto3  # start-up: see the module docstring
    from botocore.config import Config  # start-up: see the module docstring

    endpoint = settings.aws_endpoint_url
    config = Config(
        max_pool_connections=max(10, max_workers + TRANSFER_CONCURRENCY),
        # total_max_attempts counts every try; botocore's max_attempts would count only the retries
        retries={"mode": "standard", "total_max_attempts": max_attempts or settings.s3_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        # Every call's parameters are built here, not typed by a user: skip re-validating them.
        parameter_validation=False,
        # S3-compatible servers (moto, MinIO, the sandbox) rarely resolve virtual-host names.
        s3={"addressing_style": "path"} if endpoint else None,
        user_agent_extra=f"vmeval-hf/{__version__}",
    )
    try:
        session = boto3.session.Session(
            botocore_session=_botocore_session(),
            aws_access_key_id=settings.aws_access_key_id,
            aws_secret_access_key=settings.aws_secret_access_key,
            aws_session_token=settings.aws_session_token,
            region_name=settings.aws_region,
        )
        client = session.client("s3", endpoint_url=endpoint, config=config)
    except ProfileNotFound as exc:
        raise S3AuthError(f"AWS profile not found ({exc}); unset AWS_PROFILE or create the profile") from exc
    except (BotoCoreError, ValueError) as exc:
        raise S3Error(f"cannot create an S3 client for endpoint {endpoint or 'AWS'}: {exc}") from exc
    from botocore.handlers import (  # start-up: see the module docstring
        add_expect_header,
        convert_body_to_file_like_object,
    )

    events = client.meta.events
    events.register("before-parameter-build.s3.CompleteMultipartUpload", _put_once_multipart)
    events.unregister("before-call.s3", add_expect_header)
    events.register("before-call.s3", _expect_continue_for_large_bodies)
    events.register("before-parse.s3", _throttled_without_body)  # see the function
    # put_object bodies here are bytes already in memory (small files); kept as bytes, the headers
    # and body leave in one send() instead of being streamed from a BytesIO in 8 KiB blocks.
    events.unregister("before-parameter-build.s3.PutObject", convert_body_to_file_like_object)
    return client


def b64_to_hex(value: str) -> str | None:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None


def hex_to_b64(value: str) -> str:
    return base64.b64encode(bytes.fromhex(value)).decode("ascii")


@dataclass(frozen=True)
class ObjectInfo:
    """What a HEAD says about an object. ``checksum`` is the SHA-256 checksum the server stored,
    as it gives it (base64; a multipart object's composite may end in ``-<parts>``), or None."""

    key: str
    size: int
    checksum: str | None
    etag: str = ""
    checksum_type: str | None = None  # "FULL_OBJECT" or "COMPOSITE", when the server says

    @property
    def parts(self) -> int | None:
        """The number of parts whose checksums make up ``checksum`` (a composite), None when it is
        the whole object's: by the server's ``ChecksumType``, else the ``-<parts>`` of the checksum,
        else of the ETag (servers that give neither type nor suffix, such as moto)."""
        if self.checksum_type == "FULL_OBJECT":
            return None
        for text in (self.checksum or "", self.etag.strip('"')):
            count = text.rpartition("-")[2] if "-" in text else ""
            if count.isdigit():
                return int(count)
        return 1 if self.checksum_type == "COMPOSITE" else None

    @property
    def sha256(self) -> str | None:
        """Hex sha256 of the whole object, when the server's checksum is one (a single-part object)."""
        return b64_to_hex(self.checksum) if self.checksum and self.parts is None else None

    def same_checksum(self, composite: str) -> bool:
        """Whether the server's checksum is ``composite`` (``<base64>-<parts>``; some servers
        leave the ``-<parts>`` off)."""
        mine, _, count = (self.checksum or "").partition("-")
        theirs, _, want = composite.partition("-")
        return bool(mine) and mine == theirs and (self.parts or 1) == int(want or 1) and (not count or count == want)


class S3Bucket:
    """One bucket seen through one shared client; every method translates botocore errors."""

    def __init__(self, client: Any, settings: Settings) -> None:
        self.client = client
        self.name = settings.s3_bucket
        self.region = settings.aws_region
        self.endpoint = settings.aws_endpoint_url
        # for the messages: the client may be the caller's, made with another budget
        self.max_attempts = (client.meta.config.retries or {}).get("total_max_attempts") or settings.s3_attempts

    def uri(self, key: str = "") -> str:
        return f"s3://{self.name}/{key}"

    # -- error translation: the one boundary ------------------------------------------------

    @contextmanager
    def errors(self, op: str, key: str | None = None) -> Iterator[None]:
        """Run S3 calls, re-raising any botocore / s3transfer error as our type."""
        try:
            yield
        except VmevalError:
            raise
        except Exception as exc:
            translated = self.translate(exc, op, key)
            if translated is None:
                raise
            raise translated from exc

    def translate(self, exc: BaseException, op: str, key: str | None = None) -> VmevalError | None:
        """Our error for ``exc``, raised by ``op`` on ``key``; None if it is not an S3 error."""
        where = self.uri(key or "")
        endpoint = self.endpoint or "the AWS S3 endpoint"
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return S3AuthError(
                "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(environment or .env), or configure an AWS profile",
                key=key,
            )
        if isinstance(exc, ClientError):
            return self._translate_client_error(exc, op, key)
        if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
            return S3UnreachableError(
                f"cannot reach {endpoint} ({type(exc).__name__}); check AWS_ENDPOINT_URL and the "
                "network, then re-run: finished files are not sent again",
                bucket=self.name, key=key,
            )
        if isinstance(exc, (ReadTimeoutError, ConnectionClosedError, HTTPClientError)):
            return S3UnreachableError(
                f"the connection to {endpoint} failed during {op} on {where} ({type(exc).__name__}) "
                f"after {self.max_attempts} attempts; re-run: finished files are not sent again",
                bucket=self.name, key=key,
            )
        if isinstance(exc, BotoCoreError):
            return S3Error(f"S3 {op} failed on {where}: {exc}", bucket=self.name, key=key)
        if type(exc).__module__.startswith(("s3transfer", "urllib3")):
            return S3UnreachableError(
                f"S3 transfer {op} on {where} failed: {exc}; re-run: finished files are not sent again",
                bucket=self.name, key=key,
            )
        return None

    def _translate_client_error(self, exc: ClientError, op: str, key: str | None) -> VmevalError:
        """The error for an S3 error response, by its code and HTTP status."""
        where = self.uri(key or "")
        endpoint = self.endpoint or "the AWS S3 endpoint"
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = err.get("Message") or ""
        if code == "NoSuchBucket" or (op == "head_bucket" and code in _NOT_FOUND_CODES):
            return S3BucketNotFoundError(
                f"bucket {self.name!r} does not exist at {endpoint}: create it with "
                f"`aws s3 mb s3://{self.name} --region {self.region}`"
                + (f" --endpoint-url {self.endpoint}" if self.endpoint else "")
                + ", or set S3_BUCKET to an existing bucket",
                bucket=self.name, key=key,
            )
        if code in _AUTH_CODES or status == 403:
            return S3AuthError(
                f"S3 refused {op} on {where} ({code or status}: {message or 'access denied'}): "
                "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and that these credentials may "
                f"read and write bucket {self.name!r}",
                bucket=self.name, key=key,
            )
        if code in _INTEGRITY_CODES:
            return IntegrityError(
                f"S3 rejected the bytes sent for {where} ({code}: {message}); the local file "
                "probably changed while mirroring: re-run to mirror its current content",
                key=key,
            )
        if code in _THROTTLE_CODES or status in (429, 500, 502, 503, 504):
            return S3UnreachableError(
                f"S3 kept failing {op} on {where} ({code or status}) after {self.max_attempts} "
                "attempts (throttled or unavailable); wait a moment and re-run the same command: "
                "it resumes where it stopped",
                bucket=self.name, key=key,
            )
        return S3Error(f"S3 {op} failed on {where}: {code or status}: {message}", bucket=self.name, key=key)

    @staticmethod
    def _code(exc: ClientError) -> str:
        return str(exc.response.get("Error", {}).get("Code", ""))

    # -- calls ------------------------------------------------------------------------------

    def _get_object(self, key: str) -> Any | None:
        """GetObject's answer (its ``Body`` still to read), or None when the key does not exist;
        call inside ``self.errors("GetObject", key)``."""
        try:
            return self.client.get_object(Bucket=self.name, Key=key)
        except ClientError as exc:
            if self._code(exc) in _NOT_FOUND_CODES:
                return None
            raise

    def get_bytes(self, key: str) -> bytes | None:
        """The object's bytes, or None when the key does not exist."""
        with self.errors("GetObject", key):
            resp = self._get_object(key)
            return None if resp is None else resp["Body"].read()

    def head(self, key: str) -> ObjectInfo | None:
        """Size and sha256 of an object (HEAD with checksum mode), or None when it does not exist."""
        with self.errors("HeadObject", key):
            try:
                resp = self.client.head_object(Bucket=self.name, Key=key, ChecksumMode="ENABLED")
            except ClientError as exc:
                if self._code(exc) in _NOT_FOUND_CODES:
                    return None
                raise
        return ObjectInfo(key, int(resp.get("ContentLength", 0)), resp.get("ChecksumSHA256"), str(resp.get("ETag", "")),
                          resp.get("ChecksumType"))

    def first_part_size(self, key: str) -> int | None:
        """The size of part 1 of a multipart object (HEAD with ``partNumber=1``), None if it is gone."""
        with self.errors("HeadObject", key):
            try:
                resp = self.client.head_object(Bucket=self.name, Key=key, PartNumber=1)
            except ClientError as exc:
                if self._code(exc) in _NOT_FOUND_CODES:
                    return None
                raise
        return int(resp.get("ContentLength", 0))

    def sha256_of_object(self, key: str) -> str | None:
        """Hex sha256 of the object's bytes, downloaded and hashed (for objects whose checksum
        cannot be compared: multipart ones without a recorded composite); None if it is gone."""
        digest = hashlib.sha256()
        with self.errors("GetObject", key):
            try:
                resp = self.client.get_object(Bucket=self.name, Key=key)
            except ClientError as exc:
                if self._code(exc) in _NOT_FOUND_CODES:
                    return None
                raise
            for chunk in resp["Body"].iter_chunks(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()

    def list_sizes(self, prefix: str) -> dict[str, int]:
        """Every key under ``prefix`` with its size."""
        return dict(self.iter_sizes(prefix))

    def iter_sizes(self, prefix: str) -> Iterator[tuple[str, int]]:
        """``(key, size)`` of every key under ``prefix``, a page at a time, in the order S3 lists
        them: ascending UTF-8 bytes, which is the order of the keys as Python strings."""
        with self.errors("ListObjectsV2", prefix):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.name, Prefix=prefix):
                for obj in page.get("Contents", ()):
                    yield obj["Key"], int(obj["Size"])

    def get_to_file(self, key: str, target: Path) -> bool:
        """Download ``key`` to ``target`` a chunk at a time (the bytes are not checked: for an object
        the caller checks by its content, such as a manifest); False when the key does not exist."""
        with self.errors("GetObject", key):
            resp = self._get_object(key)
            if resp is None:
                return False
            with open(target, "wb") as fh:
                for chunk in resp["Body"].iter_chunks(1 << 20):
                    fh.write(chunk)
        return True

    def put_once(self, key: str, body: bytes | BinaryIO, sha256_hex: str, content_type: str | None = None) -> bool:
        """Create ``key`` with ``body`` (bytes, or a file open for reading, sent as it is read)
        unless it exists. True if written, False if it already existed.

        S3 checks the bytes against the SHA-256 we send and stores that checksum, so a later HEAD
        compares with the manifest without downloading.
        """
        extra = {"ContentType": content_type} if content_type else {}
        with self.errors("PutObject", key):
            try:
                self.client.put_object(
                    Bucket=self.name, Key=key, Body=body, IfNoneMatch="*",
                    ChecksumAlgorithm="SHA256", ChecksumSHA256=hex_to_b64(sha256_hex), **extra,
                )
            except ClientError as exc:
                if self._code(exc) in ("PreconditionFailed", "412"):
                    return False
                if self._code(exc) == "ConditionalRequestConflict":
                    # A concurrent write to the same key is in flight; the caller HEADs and compares.
                    return False
                raise
        return True

    # -- multipart uploads and copies (the logic is in vmeval_hf.s3.transfer) ---------------------

    def create_upload(self, key: str, content_type: str | None) -> str:
        """Start a multipart upload whose parts carry SHA-256 checksums; its upload id."""
        extra = {"ContentType": content_type} if content_type else {}
        with self.errors("CreateMultipartUpload", key):
            resp = self.client.create_multipart_upload(Bucket=self.name, Key=key, ChecksumAlgorithm="SHA256", **extra)
        return str(resp["UploadId"])

    def upload_part(self, key: str, upload_id: str, number: int, body: bytes | bytearray, checksum_b64: str) -> dict[str, Any]:
        """Send one part with the SHA-256 of its bytes (S3 refuses the part if they differ)."""
        with self.errors("UploadPart", key):
            return self.client.upload_part(  # type: ignore[no-any-return]
                Bucket=self.name, Key=key, UploadId=upload_id, PartNumber=number, Body=body,
                ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum_b64)

    def copy_part(self, key: str, upload_id: str, number: int, source: str, first: int, last: int) -> dict[str, Any]:
        """Copy bytes ``first..last`` of ``source`` (this bucket) as part ``number``."""
        with self.errors("UploadPartCopy", key):
            resp = self.client.upload_part_copy(
                Bucket=self.name, Key=key, UploadId=upload_id, PartNumber=number,
                CopySource={"Bucket": self.name, "Key": source}, CopySourceRange=f"bytes={first}-{last}")
        result = resp["CopyPartResult"]
        part = {"PartNumber": number, "ETag": result["ETag"]}
        if result.get("ChecksumSHA256"):
            part["ChecksumSHA256"] = result["ChecksumSHA256"]
        return part

    def complete_upload(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Complete a multipart upload, put-once; the response, or None if ``key`` already existed."""
        with self.errors("CompleteMultipartUpload", key):
            try:
                return self.client.complete_multipart_upload(  # type: ignore[no-any-return]
                    Bucket=self.name, Key=key, UploadId=upload_id, IfNoneMatch="*", MultipartUpload={"Parts": parts})
            except ClientError as exc:
                if self._code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                    return None
                raise

    def abort_upload(self, key: str, upload_id: str) -> None:
        """Drop a multipart upload's parts. Best effort: it runs while another error is raised, which
        matters more; a failure here is logged (S3's lifecycle rules can remove what it leaves)."""
        try:
            with self.errors("AbortMultipartUpload", key):
                self.client.abort_multipart_upload(Bucket=self.name, Key=key, UploadId=upload_id)
        except VmevalError as exc:
            log.warning("could not abort the multipart upload %s of %s: %s", upload_id, self.uri(key), exc)

    def copy_once(self, source: str, key: str) -> dict[str, Any] | None:
        """Copy ``source`` (this bucket) to ``key`` on the server, put-once, asking the server for the
        copy's SHA-256; the ``CopyObjectResult``, None if ``key`` already existed, or
        ``{"source_missing": True}`` if ``source`` does not exist."""
        with self.errors("CopyObject", key):
            try:
                resp = self.client.copy_object(Bucket=self.name, Key=key, CopySource={"Bucket": self.name, "Key": source},
                                               ChecksumAlgorithm="SHA256", IfNoneMatch="*")
            except ClientError as exc:
                if self._code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                    return None
                if self._code(exc) in _NOT_FOUND_CODES:
                    return {"source_missing": True}
                raise
        return resp.get("CopyObjectResult") or {}  # type: ignore[no-any-return]

    def delete(self, key: str) -> None:
        with self.errors("DeleteObject", key):
            self.client.delete_object(Bucket=self.name, Key=key)

    def download_verified(self, key: str, target: Path, size: int, sha256_hex: str, *, attempts: int = 3) -> None:
        """Download ``key`` to ``target`` only if its bytes have ``size`` and ``sha256_hex``.

        The bytes land in a temp file beside ``target`` and are renamed into place after the check,
        so ``target`` is never partial or wrong. A dropped connection mid-body is retried (botocore
        retries requests, not body reads); a sha256 mismatch raises IntegrityError naming the key.
        """
        for attempt in range(1, attempts + 1):
            try:
                self._download_once(key, target, size, sha256_hex)
                return
            except S3UnreachableError:
                if attempt == attempts:
                    raise
                log.info("retrying the download of %s", key)

    def _download_once(self, key: str, target: Path, size: int, sha256_hex: str) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        digest, got = hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh, self.errors("GetObject", key):
                resp = self.client.get_object(Bucket=self.name, Key=key)
                for chunk in resp["Body"].iter_chunks(1 << 20):
                    digest.update(chunk)
                    got += len(chunk)
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            if got != size or digest.hexdigest() != sha256_hex:
                raise IntegrityError(
                    f"{self.uri(key)} does not match its manifest ({got} bytes, sha256 "
                    f"{digest.hexdigest()[:12]}...; expected {size} bytes, sha256 {sha256_hex[:12]}...): the "
                    f"object was altered after publishing; nothing was written to {target}",
                    key=key, path=target,
                )
            os.replace(tmp, target)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def list_subfolders(bucket: S3Bucket, prefix: str = "") -> list[str]:
    """The "folders" one level below ``prefix`` (``ListObjectsV2`` with ``Delimiter="/"``), e.g.
    ``["20250115/", "versions/"]`` for the bucket's top level: one page per 1000 folders, no matter
    how many objects each holds."""
    out: list[str] = []
    with bucket.errors("ListObjectsV2", prefix or None):
        paginator = bucket.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket.name, Prefix=prefix, Delimiter="/"):
            out += [p["Prefix"] for p in page.get("CommonPrefixes", ())]
    return out


def _throttled_without_body(response_dict: dict[str, Any], customized_response_dict: dict[str, Any],
                            **_: Any) -> None:
    """Name a bodiless 429 (a throttled HEAD) ``TooManyRequestsException``.

    botocore before 1.44 tells throttling by the error code alone, and a HEAD answer has no body to
    carry one (its code parses as "429"), so the standard retry mode gave up on the first throttled
    HEAD; botocore 1.44 retries a 429 by its status. s3fs's aiobotocore holds botocore below 1.44,
    so the code is named here and the standard mode backs off and retries it, as a throttle.
    """
    if response_dict.get("status_code") == 429 and not response_dict.get("body"):
        customized_response_dict["Error"] = {"Code": "TooManyRequestsException", "Message": "Too Many Requests"}
