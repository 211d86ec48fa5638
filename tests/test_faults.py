"""A flaky or dead network on either side never produces a wrong or half-published version.

The publisher is a real ``vmeval-hf`` process reaching a dedicated sandbox Hub and moto through a
:class:`~tests.support.s3.FaultProxy` each (see ``tests/support/reliability.py``). Faults are
chosen by a seeded hash per request path (:class:`~tests.support.reliability.Flaky`), so a run is
reproducible whatever the thread timing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.reliability import (
    DAY,
    STALL,
    Stage,
    assert_clean_failure,
    secrets_in,
)
from tests.support.s3 import FaultProxy
from tests.support.trees import make_tree
from vmeval_hf.config import Settings


@pytest.mark.slow
def test_publish_and_verify_complete_with_a_fifth_of_requests_failing_on_each_side(stage: Stage) -> None:
    hub_faults, s3_faults = stage.flaky(0.2, seed=3)

    # shards of at most 1 KB: a release of more files, so that the Hub side, one commit and one tag
    # since issue 20, still makes enough requests for a fifth of them to be many faults
    published = stage.run(*stage.publish_args("--max-shard-size", "1KB"))
    assert published.returncode == 0, published.stderr[-4000:]
    # retry warnings quote the errors: still no secret
    assert secrets_in(published.stdout + published.stderr, "output") == []
    assert "version   1.0" in published.stdout
    verified = stage.run("verify", "1.0", "--data-dir", stage.data)  # still through the faults
    assert verified.returncode == 0, verified.stderr[-4000:]
    assert verified.stdout.strip() == "version 1.0: verified"

    stage.assert_published("1.0")
    # The faults really happened, of every kind, on both sides, at about the rate asked for (a
    # little under it: the per-path cap lets the third attempt of a path through).
    for flaky in (hub_faults, s3_faults):
        assert flaky.requests >= 30 and flaky.faults >= 5, (flaky.faults, flaky.requests)
    faults = hub_faults.faults + s3_faults.faults
    assert 0.1 <= faults / (hub_faults.requests + s3_faults.requests) <= 0.3
    injected = hub_faults.by_action + s3_faults.by_action
    assert set(injected) == {"500", "503", "429", "reset", "reset-after", "stall"}, injected
    assert stage.hub_proxy.count(outcome="stall") + stage.s3_proxy.count(outcome="stall") >= 1


@pytest.mark.slow
def test_hub_down_stops_with_one_message_and_nothing_logged_or_mirrored(stage: Stage) -> None:
    stage.hub_proxy.add(503)
    failed = stage.run(*stage.publish_args())
    line = assert_clean_failure(failed)
    assert "Hub" in line and stage.hub_proxy.url in line and "HTTP 503" in line and "re-run the same command" in line
    assert stage.log_versions() == [] and not stage.log_path.exists()
    assert stage.s3_proxy.count("PUT") == stage.s3_proxy.count("POST") == 0 and stage.keys() == {}
    assert stage.tags() == {}
    # the retry warnings quote the errors: still no secret
    assert secrets_in(failed.stdout + failed.stderr, "output") == []


@pytest.mark.slow
def test_verify_reads_the_s3_manifest_once(stage: Stage) -> None:
    published = stage.run(*stage.publish_args())
    assert published.returncode == 0, published.stderr[-4000:]
    stage.s3_proxy.records.clear()
    verified = stage.run("verify", "1.0", "--data-dir", stage.data)
    assert verified.returncode == 0 and verified.stdout.strip() == "version 1.0: verified", verified.stderr[-4000:]
    assert stage.s3_proxy.count("GET", rf"/{DAY}/MANIFEST\.json") == 1  # shared by the object check and the release check
    assert stage.s3_proxy.count("HEAD") > 1 and stage.s3_proxy.count("PUT") == 0


@pytest.mark.slow
def test_the_hub_retry_budget_comes_from_the_environment(stage: Stage) -> None:
    stage.hub_proxy.add(503)
    counts = []
    for attempts in (1, 3):
        stage.hub_proxy.records.clear()
        failed = stage.run(*stage.publish_args(), env=stage.env(VMEVAL_HUB_ATTEMPTS=str(attempts)))
        assert "HTTP 503" in assert_clean_failure(failed)
        assert failed.stderr.count("retrying in") == attempts - 1
        counts.append(stage.hub_proxy.count())
    assert counts[0] >= 1 and counts[1] == 3 * counts[0], counts  # each try of the failing call, no more
    assert stage.log_versions() == [] and stage.tags() == {}


@pytest.mark.slow
def test_s3_down_stops_with_one_message_before_the_hub_is_touched(stage: Stage) -> None:
    stage.s3_proxy.add(503)
    failed = stage.run(*stage.publish_args())
    line = assert_clean_failure(failed)
    assert f"s3://{stage.bucket}/{DAY}/" in line and "re-run the same command" in line
    assert secrets_in(failed.stdout + failed.stderr, "output") == []
    assert not stage.log_path.exists()
    assert stage.hub_proxy.count() == 0 and stage.tags() == {}  # refused before the Hub was touched
    assert stage.keys() == {}


@pytest.mark.slow
def test_s3_stalls_past_the_client_read_timeout_are_retried(tmp_path: Path, s3_faults: object) -> None:
    """The publisher's S3 client times out after 60 s; here one with a 1 s read timeout meets 3 s stalls."""
    from vmeval_hf.s3.client import make_client
    from vmeval_hf.s3.mirror import mirror_version
    from vmeval_hf.s3.read import verify_s3

    proxy: FaultProxy = s3_faults.proxy  # type: ignore[attr-defined]
    settings: Settings = s3_faults.settings  # type: ignore[attr-defined]
    data = make_tree(tmp_path / "data", {"chess": 2})
    proxy.add("stall", method="GET", path=r"/MANIFEST\.json", times=1, stall=STALL)
    proxy.add("stall", method="PUT", path=r"/first_frame\.png", times=2, stall=STALL)
    proxy.add("stall", method="HEAD", times=1, stall=STALL)
    client = make_client(settings, 4, read_timeout=1, connect_timeout=1)
    result = mirror_version(data, settings=settings, date=DAY, client=client, workers=4)
    assert result.uploaded == result.files
    assert proxy.count(outcome="stall") == 3
    assert verify_s3(settings=settings, date=DAY, client=client) == []
    assert proxy.count(outcome="stall") == 4  # the HEAD stall hit verify; it was retried too
