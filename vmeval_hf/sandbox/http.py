"""Generic HTTP plumbing for the sandbox servers: a threaded server that can drop its idle
keep-alive connections, and a base request handler that parses the request, reads bounded bodies,
serves files with byte ranges and turns every outcome into exactly one response.

Route handlers end by streaming a file (``_send_file``) or by raising: :class:`_Reply` for a
prepared response, or :class:`HTTPError` for an error, sent as a JSON body ``{"error": message}``
with an ``X-Error-Message`` header (the header is what ``huggingface_hub`` shows its users).
Errors::

    HTTPError                   status, message, extra headers
    └── StoreError              the Hub store's refusals (vmeval_hf.sandbox.hub_store)

Anything else a handler raises is translated here, once: a request of the wrong shape
(``ValueError``, ``TypeError``, ``KeyError``, ``AttributeError``) gets a 400, never a 5xx, since
clients retry those; any other exception a 500; a client that hung up, a closed connection.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_LINGER_BYTES = 64 << 20


class HTTPError(Exception):
    """An error response: ``status``, the body ``{"error": message}``, and ``X-Error-Message``
    plus ``headers`` as headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


class _Reply(Exception):
    """Raised by route handlers to send a prepared response."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


class _HTTPServer(ThreadingHTTPServer):
    """A threaded server that tracks its connections, so ``close_connections()`` can drop them."""

    daemon_threads = True
    logger = log

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.logger.debug("Connection from %s ended with an error", client_address, exc_info=True)

    def close_connections(self) -> None:
        """Drop idle keep-alive connections so no handler thread outlives ``stop()``."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _BaseHandler(BaseHTTPRequestHandler):
    """Dispatches every method to :meth:`_route` and sends the one response it ends with.

    Subclasses override the hooks :meth:`_route` and, if they like, :meth:`_count_request`,
    :meth:`_count_body` and :meth:`_body_limit`; ``service`` names the server in 500 responses and
    logs, ``logger`` is where it logs.
    """

    protocol_version = "HTTP/1.1"
    #: TCP_NODELAY on every connection, as production HTTP servers set it: a response goes out as
    #: its head, then its body (two writes), and on a kept-alive connection Nagle's algorithm holds
    #: the body until the client acknowledges the head, which Linux delays by up to 40 ms. Without
    #: it every request after a connection's first took about 44 ms on loopback
    #: (``scripts/bench_hub.py``), a stall no real Hub has, which made a client's request count
    #: its cost.
    disable_nagle_algorithm = True
    server_version = "vmeval-sandbox/1"
    timeout = 120
    service = "sandbox"
    logger = log
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        self.logger.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # hooks ---------------------------------------------------------------------------------------

    def _count_request(self) -> None:
        """Called once per request, before anything else."""

    def _count_body(self, nbytes: int) -> None:
        """Called for each chunk of request body read, with its size."""

    def _body_limit(self) -> int:
        """The largest request body accepted, in bytes; a larger one gets a 413."""
        return 2 * 1024**3

    def _route(self, method: str, segments: list[str]) -> None:
        """Handle the request; ``segments`` are the path's percent-decoded ``/`` segments."""
        raise _Reply(404, {"error": f"Not found: {method} {self.raw_path}"})

    # plumbing ------------------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        self._count_request()
        self._body_done = False
        self.method = method
        try:
            raw_path, _, raw_query = self.path.partition("?")
            self.raw_path = raw_path
            self.query = parse_qs(raw_query, keep_blank_values=True)
            segments = [unquote(s) for s in raw_path.split("/")[1:]]
            if any("\0" in s for s in segments):
                raise HTTPError(400, "NUL byte in request path")
            self._route(method, segments)
        except _Reply as reply:
            self._send(reply.status, reply.body, reply.headers)
        except HTTPError as err:
            self._send(err.status, {"error": err.message}, {"X-Error-Message": err.message, **err.headers})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # A request of the wrong shape. Never 5xx: clients retry those for ~30 s.
            self.logger.warning("Malformed request %s %s", method, self.path, exc_info=True)
            self.close_connection = True
            self._send(400, {"error": f"Malformed request: {type(exc).__name__}: {exc}"})
        except Exception:  # a bug in the server or a storage failure, not a client mistake
            self.logger.exception("%s failed on %s %s", self.service, method, self.path)
            self.close_connection = True
            self._send(500, {"error": f"internal error in the {self.service}"})

    def finish(self) -> None:
        super().finish()
        if getattr(self, "_linger", False):
            # Closing with unread input makes the kernel send RST, which can destroy the error
            # response before the client reads it: half-close, then drain briefly.
            try:
                self.connection.shutdown(socket.SHUT_WR)
                self.connection.settimeout(0.2)
                deadline, drained = time.monotonic() + 2, 0
                while time.monotonic() < deadline and drained < _LINGER_BYTES:
                    chunk = self.connection.recv(_CHUNK)
                    if not chunk:
                        break
                    drained += len(chunk)
            except OSError:
                pass

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        if isinstance(body, bytes):
            data, ctype = body, "application/octet-stream"
        elif body is None:
            data, ctype = b"", "application/json; charset=utf-8"
        else:
            data, ctype = json.dumps(body).encode(), "application/json; charset=utf-8"
        headers = dict(headers or {})
        ctype = headers.pop("Content-Type", ctype)
        if not self._body_done and self._has_body():
            self.close_connection = True  # the unread request body would corrupt the next request
            self._linger = True
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for key, value in headers.items():
            self.send_header(key, value.encode("ascii", "replace").decode("ascii").replace("\n", " "))
        if self.close_connection:
            self.send_header("Connection", "close")
        head = self.method == "HEAD"
        self.send_header("Content-Length", "0" if head and status >= 400 else str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _send_file(self, path: Path, size: int, headers: dict[str, str]) -> None:
        """Send the ``size``-byte file at ``path`` with ``headers``: all of it (200), or the one byte
        range the ``Range`` header asks for (206; 416 if it cannot be satisfied)."""
        start, end, status = 0, size - 1, 200
        byte_range = _parse_range(self.headers.get("Range", ""), size)
        if byte_range == "unsatisfiable":
            headers["Content-Range"] = f"bytes */{size}"
            raise _Reply(416, {"error": f"Range not satisfiable for a {size}-byte file"}, headers)
        if byte_range is not None:
            start, end = byte_range
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        if self.method == "HEAD":
            return
        with open(path, "rb") as fh:
            fh.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = fh.read(min(_CHUNK, remaining))
                if not chunk:
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)

    def _has_body(self) -> bool:
        return "chunked" in self.headers.get("Transfer-Encoding", "").lower() or \
            self.headers.get("Content-Length", "0").strip() not in ("", "0")

    def _iter_body(self) -> Iterator[bytes]:
        """Yield the request body (Content-Length or chunked), refusing more than the cap (413)."""
        limit, total = self._body_limit(), 0
        too_big = HTTPError(413, f"Request body exceeds the {limit}-byte limit of this server")
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise HTTPError(400, "Malformed chunked request body") from None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > limit:
                    raise too_big
                remaining = size
                while remaining:
                    chunk = self.rfile.read(min(remaining, _CHUNK))
                    if not chunk:
                        raise HTTPError(400, "Truncated request body")
                    remaining -= len(chunk)
                    self._count_body(len(chunk))
                    yield chunk
                self.rfile.readline(8)
        else:
            try:
                remaining = int(self.headers.get("Content-Length", "0") or 0)
            except ValueError:
                raise HTTPError(400, "Invalid Content-Length") from None
            if remaining > limit:
                raise too_big
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, _CHUNK))
                if not chunk:
                    raise HTTPError(400, "Truncated request body")
                remaining -= len(chunk)
                self._count_body(len(chunk))
                yield chunk
        self._body_done = True

    def _body(self) -> bytes:
        return b"".join(self._iter_body())

    def _json(self) -> Any:
        data = self._body()
        try:
            obj = json.loads(data or b"{}")
        except ValueError:
            raise HTTPError(400, "Request body is not valid JSON") from None
        if not isinstance(obj, dict):
            raise HTTPError(400, "Request body must be a JSON object")
        return obj

    def _param(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default


def _parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """``(start, end)`` for one satisfiable byte range, "unsatisfiable", or None to send it all."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size:
        return "unsatisfiable"
    if end < start:
        return None
    return start, end
