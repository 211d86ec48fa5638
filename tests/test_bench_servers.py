"""``scripts/bench_servers.py``'s indexed listing (the moto server the S3 scale benchmarks use)
answers ``ListObjectsV2`` exactly as moto's own does: the same keys, sizes, pages and
continuation, through writes, overwrites and deletes between listings. Both servers are the
script's child processes on 127.0.0.1 (the index changes moto's classes, so never in this one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from bench_servers import Servers  # noqa: E402

from vmeval_hf.config import DEFAULT_REGION  # noqa: E402
from vmeval_hf.sandbox.local import S3_KEY_ID, S3_SECRET  # noqa: E402

BUCKET = "listing"


def _client(url: str) -> Any:
    return boto3.client("s3", endpoint_url=url, region_name=DEFAULT_REGION, aws_access_key_id=S3_KEY_ID,
                        aws_secret_access_key=S3_SECRET)


def _pages(s3: Any, **kwargs: Any) -> list[tuple[list[tuple[str, int]], bool, list[str]]]:
    """Every page of a listing: its (key, size) pairs, whether it was truncated, its common prefixes."""
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, **kwargs):
        out.append(([(o["Key"], o["Size"]) for o in page.get("Contents", ())], page["IsTruncated"],
                    [p["Prefix"] for p in page.get("CommonPrefixes", ())]))
    return out


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with Servers(tmp_path_factory.mktemp("moto"), s3=True) as moto, \
            Servers(tmp_path_factory.mktemp("indexed"), s3=True, listing="indexed") as indexed:
        for s in (moto, indexed):
            s.create_bucket(BUCKET)
        yield _client(moto.s3.url), _client(indexed.s3.url)  # type: ignore[union-attr]


def test_indexed_listing_pages_like_moto_through_writes_and_deletes(servers: Any) -> None:
    moto, indexed = servers
    keys = [f"20270101/data/{d}_task/{d}_{i:04d}/{f}" for d in ("chess", "maze", "é") for i in range(4)
            for f in ("first_frame.png", "prompt.txt")] + ["20270101/MANIFEST.json", "2027010/x", "other"]
    listings: list[dict[str, Any]] = [
        {}, {"Prefix": "20270101/"}, {"Prefix": "20270101/data/maze"}, {"Prefix": "nothing/"},
        {"Prefix": "20270101/", "PaginationConfig": {"PageSize": 5}},
        {"Prefix": "20270101/", "StartAfter": "20270101/data/chess_task/chess_0002/prompt.txt",
         "PaginationConfig": {"PageSize": 4}},
        {"Prefix": "20270101/", "Delimiter": "/"},  # moto's own code in both
    ]

    def same(step: str) -> list[Any]:
        got = [(_pages(moto, **kw), _pages(indexed, **kw)) for kw in listings]
        for kw, (theirs, ours) in zip(listings, got):
            assert ours == theirs, (step, kw)
        return [theirs for theirs, _ in got]

    for s3 in servers:
        for i, key in enumerate(keys):
            s3.put_object(Bucket=BUCKET, Key=key, Body=b"x" * (i % 7))
    first = same("after the puts")
    # the listings are not trivial: the paged ones are cut where asked (25 keys, 5 a page), and see every key
    assert len(first[4]) == 5 and all(truncated for _, truncated, _ in first[4][:-1])
    assert [k for page, _, _ in first[1] for k, _ in page] == sorted(k for k in keys if k.startswith("20270101/"))

    for s3 in servers:  # an overwrite with another size, a delete, a new key: the index must see each
        s3.put_object(Bucket=BUCKET, Key=keys[0], Body=b"y" * 30)
        s3.delete_object(Bucket=BUCKET, Key=keys[5])
        s3.put_object(Bucket=BUCKET, Key="20270101/data/chess_task/chess_0001/zz", Body=b"z")
    after = same("after an overwrite, a delete and a new key")
    listed = dict(kv for page, _, _ in after[1] for kv in page)
    assert listed[keys[0]] == 30 and keys[5] not in listed and "20270101/data/chess_task/chess_0001/zz" in listed


def test_bench_listing_fills_each_size_and_lists_its_pages() -> None:
    """``scripts/bench_listing.py`` at a tiny size: each server is filled to each count (2 pages of
    1,000 need more than 1,000 objects held, 3 pages more than 2,000) and its pages are listed.
    No timing is asserted."""
    script = Path(__file__).resolve().parent.parent / "scripts" / "bench_listing.py"
    proc = subprocess.run([sys.executable, str(script), "--objects", "1500", "2500", "--pages", "3"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split() for line in proc.stdout.splitlines()[1:]]
    assert [(r[0], r[1], r[2]) for r in rows] == [("moto", "1,500", "2"), ("moto", "2,500", "3"),
                                                  ("indexed", "1,500", "2"), ("indexed", "2,500", "3")]
    assert all(float(v) > 0 for r in rows for v in r[3:5])
