#!/usr/bin/env python3
"""The sandbox servers for the benchmarks, each in a process of its own on 127.0.0.1.

    with Servers(root, s3=True) as servers:
        env = {**os.environ, **servers.env(repo="bench/x", bucket="b")}
        ...                           # run clients with env
        servers.hub_traffic()         # bytes the Hub server received so far (server side)

The Hub is the project's :class:`vmeval_hf.sandbox.HubServer`; S3 is moto's threaded server, as
``vmeval-hf sandbox`` starts it (:func:`vmeval_hf.sandbox.local.moto_server`). Each runs in a
child (``python scripts/bench_servers.py hub|s3``) so that its CPU and memory are not the
client's, and it prints one JSON line with its URL, then answers ``traffic`` lines on stdin with
a JSON line (the Hub's :attr:`~vmeval_hf.sandbox.HubServer.traffic`). A child stops when its
stdin closes: when ``Servers`` exits, whatever the reason, or when the benchmark dies.

``Servers(root, s3=True, listing="indexed")`` starts moto with :func:`indexed_listing`: moto lists
a page of ``ListObjectsV2`` by copying, filtering and sorting the whole bucket (1.27 s of server
CPU a page of 1,000 with 440,000 objects held, 0.27 s with 44,000: ``scripts/bench_listing.py``),
so listing a prefix costs it the square of the prefix's size, where S3 answers a page in the same
time at any size. The benchmarks that scale the S3 stages use the index so that they measure the
client, not that.
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import IO, Any

try:
    import vmeval_hf  # noqa: F401
except ImportError:  # run from a checkout without installing: use the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vmeval_hf.config import DEFAULT_REGION
from vmeval_hf.sandbox.local import HOST, S3_KEY_ID, S3_SECRET, moto_server


def _say(out: IO[str], obj: Any) -> None:
    out.write(json.dumps(obj) + "\n")
    out.flush()


def serve_hub(root: Path, token: str) -> None:
    from vmeval_hf.sandbox import HubServer

    with HubServer(root, token=token, host=HOST) as hub:
        _say(sys.stdout, {"url": hub.url})
        for line in sys.stdin:  # until the parent closes our stdin
            if line.strip() == "traffic":
                _say(sys.stdout, hub.traffic)


def indexed_listing() -> None:
    """Make this process's moto answer a ``ListObjectsV2`` page without a delimiter from a sorted
    index of the bucket's names (kept per bucket and prefix, rebuilt after any write to any bucket),
    in time that does not grow with the bucket; the same keys, order, truncation and continuation
    tokens as moto's own (``tests/test_bench_servers.py`` compares the two). Listings with a
    delimiter, and buckets of other kinds, go to moto's own code. Only for the benchmarks' child
    server: it changes moto's classes in this process."""
    import bisect
    import threading

    from moto.s3.models import FakeBucket, FakeDeleteMarker, S3Backend
    from moto.s3.utils import _VersionedKeyStore

    lock = threading.Lock()
    generation = [0]
    index: dict[tuple[str, str], tuple[int, list[str]]] = {}

    def bumped(method: Any) -> Any:
        def write(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            finally:
                with lock:
                    generation[0] += 1
        return write

    for name in ("__setitem__", "__delitem__", "setlist", "pop", "popitem", "clear", "update", "setdefault"):
        setattr(_VersionedKeyStore, name, bumped(getattr(_VersionedKeyStore, name)))

    def names(bucket: Any, prefix: str) -> list[str]:
        with lock:
            now = generation[0]
        held = index.get((bucket.name, prefix))
        if held is not None and held[0] == now:
            return held[1]
        versions = dict.copy(bucket.keys)  # name -> its versions; copied, as moto does, for the other threads
        listed = sorted(n for n, v in versions.items()
                        if n.startswith(prefix) and v and not isinstance(v[-1], FakeDeleteMarker))
        index[(bucket.name, prefix)] = (now, listed)
        return listed

    moto_v2 = S3Backend.list_objects_v2

    def list_objects_v2(self: Any, bucket: Any, prefix: str | None, delimiter: str | None,
                        continuation_token: str | None, start_after: str | None, max_keys: int) -> Any:
        if delimiter or type(bucket) is not FakeBucket:
            return moto_v2(self, bucket, prefix, delimiter, continuation_token, start_after, max_keys)
        listed = names(bucket, prefix or "")
        after = self._pagination_tokens.get(continuation_token) if continuation_token else start_after
        start = bisect.bisect_right(listed, after) if after else 0
        page = [bucket.keys[n] for n in listed[start:start + max_keys + 1]]
        return self._truncate_result(page, max_keys)

    S3Backend.list_objects_v2 = list_objects_v2


def serve_s3(listing: str = "moto") -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one INFO line per request otherwise
    if listing == "indexed":
        indexed_listing()
    moto = moto_server()(ip_address=HOST, port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        _say(sys.stdout, {"url": f"http://{host}:{port}"})
        for line in sys.stdin:
            if line.startswith("fill "):
                _say(sys.stdout, _fill(*line.split()[1:]))
    finally:
        moto.stop()


def _fill(bucket: str, prefix: str, count: str, size: str) -> dict[str, float]:
    """Put ``count`` objects of ``size`` random bytes as ``<prefix><number>`` straight into this
    process's moto backend (no HTTP: a bucket of 440,000 objects in a minute, not an hour), to
    measure what the server's requests cost with that much held. Seconds taken."""
    import random
    import time

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    rng, t0 = random.Random(prefix), time.perf_counter()
    for i in range(int(count)):
        backend.put_object(bucket, f"{prefix}{i:08d}", rng.randbytes(int(size)))
    return {"seconds": time.perf_counter() - t0}


class _Child:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *args], text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError(f"the {args[0]} server did not start (exit code {self.proc.returncode})")
        self.url: str = json.loads(line)["url"]

    def ask(self, what: str) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(what + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def stop(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


LISTINGS = ("moto", "indexed")  # moto's own ListObjectsV2, or :func:`indexed_listing`


class Servers:
    """The Hub server (storage under ``root``) and, with ``s3``, a moto server; see the module docstring."""

    def __init__(self, root: Path, *, s3: bool = False, listing: str = "moto") -> None:
        if listing not in LISTINGS:
            raise ValueError(f"listing must be one of {LISTINGS}, not {listing!r}")
        self.root = Path(root)
        self.token = f"hf_bench_{secrets.token_hex(12)}"
        self.with_s3 = s3
        self.listing = listing
        self.hub: _Child | None = None
        self.s3: _Child | None = None

    def start(self) -> Servers:
        try:
            self.hub = _Child("hub", "--root", str(self.root / "hub"), "--token", self.token)
            if self.with_s3:
                self.s3 = _Child("s3", "--listing", self.listing)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for child in (self.s3, self.hub):
            if child is not None:
                child.stop()
        self.s3 = self.hub = None

    def __enter__(self) -> Servers:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def hub_traffic(self) -> dict[str, int]:
        assert self.hub is not None
        return self.hub.ask("traffic")  # type: ignore[no-any-return]

    def fill(self, bucket: str, prefix: str, count: int, size: int) -> float:
        """Put ``count`` objects of ``size`` bytes under ``prefix`` in the moto server's ``bucket``
        directly, not over HTTP (:func:`_fill`); the seconds the server took."""
        assert self.s3 is not None
        return float(self.s3.ask(f"fill {bucket} {prefix} {count} {size}")["seconds"])

    def create_bucket(self, bucket: str) -> None:
        import boto3

        assert self.s3 is not None
        client = boto3.client("s3", endpoint_url=self.s3.url, region_name=DEFAULT_REGION,
                              aws_access_key_id=S3_KEY_ID, aws_secret_access_key=S3_SECRET)
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": DEFAULT_REGION})

    def env(self, *, repo: str, bucket: str | None = None, hf_home: Path | None = None) -> dict[str, str]:
        """What a client process needs to reach the servers (as ``Sandbox.env()``, plus caches)."""
        assert self.hub is not None
        env = {
            "HF_ENDPOINT": self.hub.url, "HF_TOKEN": self.token, "HF_HUB_DISABLE_XET": "1",
            "HF_UPDATE_DOWNLOAD_COUNTS": "0", "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1", "VMEVAL_HF_REPO": repo,
        }
        if hf_home is not None:
            env.update(HF_HOME=str(hf_home), HF_HUB_CACHE=str(hf_home / "hub"),
                       HF_DATASETS_CACHE=str(hf_home / "datasets"))
        if self.s3 is not None:
            env.update({"AWS_ENDPOINT_URL": self.s3.url, "AWS_ACCESS_KEY_ID": S3_KEY_ID,
                        "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_DEFAULT_REGION": DEFAULT_REGION})
            if bucket:
                env["S3_BUCKET"] = bucket
        return env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=("hub", "s3"))
    ap.add_argument("--root", type=Path)
    ap.add_argument("--token")
    ap.add_argument("--listing", choices=LISTINGS, default="moto")
    args = ap.parse_args(argv)
    if args.kind == "hub":
        serve_hub(args.root, args.token)
    else:
        serve_s3(args.listing)
    return 0


if __name__ == "__main__":
    sys.exit(main())
