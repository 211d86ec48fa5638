#!/usr/bin/env python3
"""What one page of a ``ListObjectsV2`` listing costs the moto server as its bucket fills.

    python scripts/bench_listing.py --objects 44000 100000 440000 --listing moto indexed

``verify`` (and ``publish --log``, which verifies the mirror it made) lists a version's prefix
once: 4 objects a question, so 400 pages of 1,000 at N = 100,000. For each ``--listing`` (moto's
own code, or ``scripts/bench_servers.py``'s index that ``bench_scale.py`` uses) a fresh moto
server in a process of its own on 127.0.0.1 is filled, straight into its backend (not over HTTP,
so a fill of 440,000 takes a minute, not an hour), to each ``--objects`` count of 9 KB objects
under one prefix; at each count, ``--pages`` pages of that prefix are listed with ``boto3``'s
paginator, and the server's CPU a page (``/proc/<pid>/stat``) and the wall time a page are
printed, with the ratio against the first count. S3 answers a page in the same time however
many objects the bucket holds; moto's own code copies, filters and sorts the whole prefix for
every page.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_s3_floor import client_for, server_cpu  # noqa: E402
from bench_servers import LISTINGS, Servers  # noqa: E402

BUCKET = "bench-listing"
PREFIX = "20270101/data/"
OBJECT_BYTES = 9000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, nargs="+", default=[44_000, 100_000, 440_000],
                    help="bucket sizes, ascending (default 44,000 100,000 440,000: what N = 10,000 and "
                         "N = 100,000 leave in it)")
    ap.add_argument("--listing", choices=LISTINGS, nargs="+", default=list(LISTINGS))
    ap.add_argument("--pages", type=int, default=20, help="pages of 1,000 listed at each size (default 20)")
    args = ap.parse_args(argv)
    sizes = sorted(args.objects)
    print(f"{'listing':8} {'objects':>9} {'pages':>6} {'server CPU s/page':>18} {'wall s/page':>12} {'ratio':>7}")
    for listing in args.listing:
        with tempfile.TemporaryDirectory(prefix="listing-") as tmp, \
                Servers(Path(tmp), s3=True, listing=listing) as servers:
            assert servers.s3 is not None
            servers.create_bucket(BUCKET)
            s3, pid = client_for(servers.s3.url, 1), servers.s3.proc.pid
            held, first = 0, None
            for n in sizes:
                servers.fill(BUCKET, f"{PREFIX}{held:08d}-", n - held, OBJECT_BYTES)
                held = n
                c0, t0, pages = server_cpu(pid), time.perf_counter(), 0
                for _ in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX):
                    pages += 1
                    if pages == args.pages:
                        break
                per_page = (server_cpu(pid) - c0) / pages
                first = first or per_page
                print(f"{listing:8} {n:>9,} {pages:>6} {per_page:>18.3f} {(time.perf_counter() - t0) / pages:>12.3f} "
                      f"{per_page / first:>6.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
