"""Pytest plugin: a real S3 over HTTP (moto on 127.0.0.1) and a fault-injecting proxy in front of it.

Fixtures:

``moto_server`` (session)
    The base URL (``http://127.0.0.1:<port>``) of a ``ThreadedMotoServer`` started once per session.
``s3_settings``
    :class:`vmeval_hf.config.Settings` for a fresh, empty, unique bucket on that server, with fake
    credentials. The matching ``AWS_*``, ``S3_BUCKET`` and ``AWS_ENDPOINT_URL`` variables are set
    too (monkeypatched), so code that calls ``Settings.from_env()`` - the seed-compatible
    functions, scripts run as subprocesses - reaches the same bucket.
``s3_faults``
    ``S3Faults(settings, proxy)``: the same bucket reached through a :class:`FaultProxy`; add
    rules to ``proxy`` to make requests fail, and read ``proxy.count(...)`` to see what was sent.

:class:`FaultProxy` knows nothing about S3: it forwards any HTTP request to the upstream URL it is
given, so the Hub tests can put it in front of the sandbox Hub the same way.
"""

from __future__ import annotations

import http.client
import random
import re
import socket
import struct
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pytest

from vmeval_hf.config import Settings

TEST_ACCESS_KEY = "AKIAVMEVALTEST000001"
TEST_SECRET_KEY = "vmevalTestSecretKey0000000000000000000001"
TEST_REGION = "us-east-2"

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
               "te", "trailer", "transfer-encoding", "upgrade", "expect", "content-length"}
_ERROR_CODES = {429: "TooManyRequestsException", 500: "InternalError", 502: "BadGateway",
                503: "SlowDown", 504: "GatewayTimeout", 403: "AccessDenied"}


# -- fault injection ---------------------------------------------------------------------------


@dataclass
class FaultRule:
    """When a request matches, do ``action`` instead of (or after) forwarding it.

    Actions: an HTTP status (``500``, ``503``, ``429``, ``403``...) answered with a small S3-style
    XML error; ``"reset"`` (close the connection with a TCP RST before forwarding); ``"reset-after"``
    (forward, so the upstream acts on it, then reset instead of answering: the client must retry
    a request that already took effect); ``"stall"`` (hold the request ``stall`` seconds without
    answering, then close; set it above the client's read timeout).
    """

    action: int | str
    method: str | None = None                       # e.g. "PUT"
    path: str | None = None                         # regex searched in the path + query
    predicate: Callable[[str, str], bool] | None = None   # (method, path) -> bool
    rate: float = 1.0                               # chance to fire on a match (seeded RNG)
    times: int | None = None                        # fire at most this many times
    skip: int = 0                                   # let the first ``skip`` matches through
    stall: float = 5.0
    body: bytes | None = None                       # for status actions: the response body
    headers: dict[str, str] = field(default_factory=dict)
    seen: int = 0
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and method.upper() != self.method.upper():
            return False
        if self.path is not None and not re.search(self.path, path):
            return False
        return self.predicate is None or bool(self.predicate(method, path))


class Record(NamedTuple):
    method: str
    path: str
    outcome: str        # "forwarded", the status injected, "reset", "reset-after" or "stall"
    body: int = 0       # bytes of the request body that reached the upstream (forwarded, reset-after)


class FaultProxy:
    """A threaded HTTP proxy on 127.0.0.1 that forwards to ``upstream`` and injects faults by rule.

    Deterministic: rules fire by position (``skip``/``times``), by predicate, or by a
    ``random.Random(seed)`` draw. Every request is recorded; :meth:`count` filters them.
    """

    def __init__(self, upstream: str, *, seed: int = 0, host: str = "127.0.0.1",
                 rewrite_urls: bool = False,
                 chooser: Callable[[str, str], FaultRule | None] | None = None) -> None:
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream must be an http(s) URL, not {upstream!r}")
        self.upstream = upstream.rstrip("/")
        self._up = parts
        #: Replace the upstream's own URL with the proxy's in response headers and bodies, so links
        #: the upstream hands out (the Hub sandbox's signed LFS upload URLs) lead back through the proxy.
        self.rewrite_urls = rewrite_urls
        #: Consulted when no rule fires: ``(method, path) -> FaultRule | None`` (called under the lock).
        self.chooser = chooser
        self.rules: list[FaultRule] = []
        self.records: list[Record] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer((host, 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- configuration ----------------------------------------------------------------------

    def add(self, action: int | str, **kwargs: Any) -> FaultRule:
        rule = FaultRule(action=action, **kwargs)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Drop every rule and forget recorded requests."""
        with self._lock:
            self.rules.clear()
            self.records.clear()

    def count(self, method: str | None = None, path: str | None = None, outcome: str | None = None) -> int:
        with self._lock:
            return sum(
                1 for r in self.records
                if (method is None or r.method == method.upper())
                and (path is None or re.search(path, r.path))
                and (outcome is None or r.outcome == outcome)
            )

    def _decide(self, method: str, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self.rules:
                if not rule.matches(method, path):
                    continue
                rule.seen += 1
                if rule.seen <= rule.skip or (rule.times is not None and rule.fired >= rule.times):
                    continue
                if rule.rate < 1.0 and self._rng.random() >= rule.rate:
                    continue
                rule.fired += 1
                return rule
            return self.chooser(method, path) if self.chooser is not None else None

    def sent_bytes(self, method: str | None = None, path: str | None = None) -> int:
        """Request body bytes that reached the upstream (forwarded, or acted on before a reset-after)."""
        with self._lock:
            return sum(r.body for r in self.records
                       if r.outcome in ("forwarded", "reset-after")
                       and (method is None or r.method == method.upper())
                       and (path is None or re.search(path, r.path)))

    def _record(self, method: str, path: str, outcome: str, body: int = 0) -> None:
        with self._lock:
            self.records.append(Record(method, path, outcome, body))

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the handler ------------------------------------------------------------------------

    def _forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        cls = http.client.HTTPSConnection if self._up.scheme == "https" else http.client.HTTPConnection
        conn = cls(self._up.hostname, self._up.port, timeout=120)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() not in _HOP_BY_HOP:
                    conn.putheader(name, value)
            if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.reason, resp.getheaders(), data
        finally:
            conn.close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _read_body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    out = bytearray()
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return bytes(out)
                        out += self.rfile.read(size)
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _reset(self) -> None:
                # SO_LINGER with a zero timeout makes close() send a TCP RST.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()

            def _handle(self) -> None:
                method, path = self.command, self.path
                body = self._read_body()
                rule = proxy._decide(method, path)
                action = rule.action if rule is not None else None
                if action == "reset":
                    proxy._record(method, path, "reset")
                    return self._reset()
                if action == "stall":
                    proxy._record(method, path, "stall")
                    proxy._stop.wait(rule.stall)  # type: ignore[union-attr]
                    self.close_connection = True
                    return
                if rule is not None and action != "reset-after":
                    status = int(action)  # type: ignore[arg-type]
                    proxy._record(method, path, str(status))
                    payload = rule.body if rule.body is not None else (
                        f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{_ERROR_CODES.get(status, 'InjectedFault')}"
                        f"</Code><Message>injected by FaultProxy</Message></Error>").encode()
                    self.send_response(status)
                    for name, value in {"Content-Type": "application/xml", **rule.headers}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload) if method != "HEAD" else 0))
                    self.end_headers()
                    if method != "HEAD":
                        self.wfile.write(payload)
                    return
                try:
                    status, reason, headers, data = proxy._forward(method, path, list(self.headers.items()), body)
                except OSError:
                    proxy._record(method, path, "upstream-error")
                    self.send_error(502, "upstream unreachable")
                    return
                if action == "reset-after":
                    proxy._record(method, path, "reset-after", len(body))
                    return self._reset()
                proxy._record(method, path, "forwarded", len(body))
                if proxy.rewrite_urls:
                    old, new = proxy.upstream + "/", proxy.url + "/"  # "/": port 4000 is not 40001
                    data = data.replace(old.encode(), new.encode())
                    headers = [(n, v.replace(old, new)) for n, v in headers]
                self.send_response(status, reason)
                length_sent = False
                for name, value in headers:
                    low = name.lower()
                    if low == "content-length" and method == "HEAD":
                        self.send_header(name, value)
                        length_sent = True
                    elif low not in _HOP_BY_HOP and low not in ("server", "date"):
                        self.send_header(name, value)
                if not length_sent:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if method != "HEAD" and data:
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle

        return Handler


# -- fixtures ----------------------------------------------------------------------------------


class S3Faults(NamedTuple):
    settings: Settings      # the test bucket, reached through the proxy
    proxy: FaultProxy


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Base URL of a moto S3 server on 127.0.0.1 shared by the session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def raw_client(settings: Settings) -> Any:
    """A plain boto3 client for test set-up and inspection (not the code under test)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region,
        aws_access_key_id=settings.aws_access_key_id, aws_secret_access_key=settings.aws_secret_access_key,
        config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 2}),
    )


def keys_in(settings: Settings, prefix: str = "") -> dict[str, bytes]:
    """Every object of the settings' bucket under ``prefix``: its key -> its bytes."""
    client = raw_client(settings)
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=settings.s3_bucket, Prefix=prefix):
        for obj in page.get("Contents", ()):
            out[obj["Key"]] = client.get_object(Bucket=settings.s3_bucket, Key=obj["Key"])["Body"].read()
    return out


@pytest.fixture
def s3_settings(moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for a fresh, empty bucket on the moto server; the AWS_* environment matches."""
    bucket = f"vmeval-test-{uuid.uuid4().hex[:12]}"
    settings = Settings(
        s3_bucket=bucket, aws_region=TEST_REGION, aws_access_key_id=TEST_ACCESS_KEY,
        aws_secret_access_key=TEST_SECRET_KEY, aws_endpoint_url=moto_server,
    )
    raw_client(settings).create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": TEST_REGION})
    nowhere = tmp_path_factory.mktemp("no-aws-config") / "none"
    for name, value in {
        "AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": TEST_SECRET_KEY,
        "AWS_DEFAULT_REGION": TEST_REGION, "AWS_REGION": TEST_REGION, "S3_BUCKET": bucket,
        "AWS_ENDPOINT_URL": moto_server, "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(nowhere), "AWS_SHARED_CREDENTIALS_FILE": str(nowhere),
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                 "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    return settings


@pytest.fixture
def s3_faults(s3_settings: Settings) -> Iterator[S3Faults]:
    """The test bucket reached through a :class:`FaultProxy` (no rules yet)."""
    with FaultProxy(s3_settings.aws_endpoint_url or "", seed=1234) as proxy:
        yield S3Faults(s3_settings.with_(aws_endpoint_url=proxy.url), proxy)
