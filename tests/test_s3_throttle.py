"""A throttled HEAD (429, which has no body) is retried like any throttle.

s3fs's aiobotocore holds botocore below 1.44, whose standard retry mode tells throttling by the
error code alone; a HEAD answer carries none. ``vmeval_hf.s3.client`` names it (see
``_throttled_without_body``), so the retry budget applies to it as to a 503.
"""

from __future__ import annotations

from typing import Any

from tests.support.s3 import raw_client
from vmeval_hf.errors import S3UnreachableError
from vmeval_hf.s3.client import S3Bucket, make_client


def test_a_throttled_head_is_retried_within_the_budget(s3_faults: Any) -> None:
    settings, proxy = s3_faults
    raw_client(settings.with_(aws_endpoint_url=proxy.upstream)).put_object(
        Bucket=settings.s3_bucket, Key="k.txt", Body=b"hello")
    bucket = S3Bucket(make_client(settings, max_attempts=3), settings)
    proxy.add(429, method="HEAD", times=2)
    info = bucket.head("k.txt")
    assert info is not None and info.size == 5
    assert proxy.count("HEAD") == 3 and proxy.count("HEAD", outcome="429") == 2


def test_a_head_throttled_past_the_budget_is_one_unreachable_error(s3_faults: Any) -> None:
    settings, proxy = s3_faults
    bucket = S3Bucket(make_client(settings, max_attempts=2), settings)
    proxy.add(429, method="HEAD")
    try:
        bucket.head("k.txt")
    except S3UnreachableError as exc:
        assert "TooManyRequestsException" in str(exc) and exc.key == "k.txt"
    else:
        raise AssertionError("a HEAD throttled on every try must fail")
    assert proxy.count("HEAD") == 2
