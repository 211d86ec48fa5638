#!/usr/bin/env python3
"""What one S3 request costs against the moto server the benchmarks use, with nothing of ours in it.

    python scripts/bench_s3_floor.py --objects 3000 20000 --workers 16

The S3 stages of ``scripts/bench_scale.py`` send one request per file (a PUT to mirror, a HEAD to
verify, a GET to pull): four per question. This measures the floor under them: bare ``boto3``
``put_object`` (with the SHA-256 checksum and ``If-None-Match: *`` the mirror sends) and
``head_object`` (``ChecksumMode=ENABLED``, as verify asks) of a 9 KB body, from ``--workers``
threads, against a moto server in a process of its own on 127.0.0.1 (``scripts/bench_servers.py``).
Per request: wall time, the client's CPU and the server's CPU (from ``/proc/<pid>/stat``), and
what the three S3 stages at N questions would take at that rate, on this machine, at the least.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_servers import DEFAULT_REGION, S3_KEY_ID, S3_SECRET, Servers  # noqa: E402

BUCKET = "bench-floor"
REQUESTS_PER_QUESTION = 4 * 3  # four files a question; mirror (PUT), verify (HEAD), pull (GET)


def _client_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def server_cpu(pid: int) -> float:
    """CPU seconds (user + sys) the process ``pid`` has used so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed(fn: Any, items: range, workers: int, pid: int) -> dict[str, float]:
    c0, s0, t0 = _client_cpu(), server_cpu(pid), time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fn, items))
    n = len(items)
    return {"wall_ms": (time.perf_counter() - t0) / n * 1000, "client_ms": (_client_cpu() - c0) / n * 1000,
            "server_ms": (server_cpu(pid) - s0) / n * 1000}


def client_for(url: str, workers: int) -> Any:
    """A bare boto3 client for the benchmark's moto server at ``url``."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=url, region_name=DEFAULT_REGION, aws_access_key_id=S3_KEY_ID,
                        aws_secret_access_key=S3_SECRET, config=Config(max_pool_connections=workers * 2))


def probe(s3: Any, bucket: str, prefix: str, n: int, workers: int, pid: int) -> dict[str, dict[str, float]]:
    """``n`` PUTs then ``n`` HEADs of a 9 KB body under ``prefix`` (new keys), as the mirror and
    verify send them: per request, wall time and the client's and server's CPU."""
    body = random.Random(0).randbytes(9000)
    checksum = base64.b64encode(hashlib.sha256(body).digest()).decode()
    put = _timed(lambda i: s3.put_object(Bucket=bucket, Key=f"{prefix}{i:07d}", Body=body,
                                         ChecksumSHA256=checksum, IfNoneMatch="*"), range(n), workers, pid)
    head = _timed(lambda i: s3.head_object(Bucket=bucket, Key=f"{prefix}{i:07d}", ChecksumMode="ENABLED"),
                  range(n), workers, pid)
    return {"PUT": put, "HEAD": head}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, nargs="+", default=[3000, 20000])
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--questions", type=int, default=100_000, help="N for the estimate (default 100,000)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="s3-floor-") as tmp, Servers(Path(tmp), s3=True) as servers:
        assert servers.s3 is not None
        servers.create_bucket(BUCKET)
        s3 = client_for(servers.s3.url, args.workers)
        pid = servers.s3.proc.pid
        print(f"{'request':8} {'objects':>8} {'wall ms':>8} {'client CPU ms':>14} {'server CPU ms':>14}")
        rows = []
        for n in args.objects:
            for name, r in probe(s3, BUCKET, f"run-{n}/", n, args.workers, pid).items():
                rows.append(r)
                print(f"{name:8} {n:>8,} {r['wall_ms']:>8.2f} {r['client_ms']:>14.2f} {r['server_ms']:>14.2f}")
        wall = statistics.median(r["wall_ms"] for r in rows)
        cpu = statistics.median(r["client_ms"] + r["server_ms"] for r in rows)
        requests = args.questions * REQUESTS_PER_QUESTION
        print(f"median: {wall:.2f} ms wall and {cpu:.2f} ms of CPU (client + server) a request; the three S3 stages "
              f"at N = {args.questions:,} send {requests:,} requests: at least {requests * wall / 3.6e6:.1f} h at "
              f"this wall rate ({requests * cpu / 3.6e6 / (os.cpu_count() or 1):.1f} h with every core busy)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
