"""Pytest plugin for the reliability suite (faults, crashes, hostile input, secrets).

The publisher runs as a real ``vmeval-hf`` process (``python -m vmeval_hf.cli``): huggingface_hub
reads ``HF_ENDPOINT`` at import, and a process is what SIGKILL can stop. It talks to a dedicated
sandbox Hub and to moto only through two :class:`~tests.support.s3.FaultProxy` instances, so a
test can fail, reset or stall any request on either side, count what was sent, and stop the
publisher at a chosen request. The test process inspects both sides directly, behind the proxies.

Fixtures: ``reliability_hub`` (session: a HubServer of its own, token :data:`HUB_SECRET`) and
``stage`` (a fresh data tree, repo, bucket and both proxies: a :class:`Stage`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.files import killable_tmp
from tests.support.s3 import TEST_REGION, FaultProxy, FaultRule, raw_client
from tests.support.trees import make_tree
from vmeval_hf.config import Settings
from vmeval_hf.sandbox import HubServer

#: Distinctive values: the secrets tests search every output for them.
HUB_SECRET = "hf_RELIABILITYsecretTOKEN7f3a9c01"
AWS_KEY_SECRET = "AKIARELIABILITY7F3A9C"
AWS_SECRET_SECRET = "reliabilitySecretAccessKey/7f3a9c+SECRETvalue"
AWS_TOKEN_SECRET = "FwoGZXIvYXdzRELIABILITYsessionTOKEN7f3a9c//SECRET"
SECRETS = (HUB_SECRET, AWS_KEY_SECRET, AWS_SECRET_SECRET, AWS_TOKEN_SECRET)

DAY = "20250115"
#: The Hub client's own timeouts (seconds) in the publisher: a stall longer than this is a timeout.
CLIENT_TIMEOUT = 2
STALL = 2.5
CLI = (sys.executable, "-m", "vmeval_hf.cli")
_SHA = re.compile(r"\b[0-9a-f]{40}\b")


# -- deterministic flaky network -------------------------------------------------------------------


class Flaky:
    """A ``FaultProxy`` chooser: fail ``rate`` of the requests, each path at most ``max_per_path`` times.

    The choice is a hash of (seed, method, path without query, how often that path was seen), so it
    does not depend on thread timing: the same run injects the same faults into the same requests.
    Capping failures per path keeps every request from failing forever, so retries converge.
    """

    def __init__(self, rate: float, *, seed: int = 7, max_per_path: int = 2,
                 actions: Sequence[int | str] = (500, 503, 429, "reset", "reset-after", "stall"),
                 stall: float = STALL, names: Sequence[str] = ()) -> None:
        self.rate, self.seed, self.max_per_path = rate, seed, max_per_path
        self.actions, self.stall = tuple(actions), stall
        self.names = tuple(names)  # per-test names (repo id, bucket) left out of the hash
        self.seen: Counter[tuple[str, str]] = Counter()
        self.fired: Counter[tuple[str, str]] = Counter()
        self.by_action: Counter[str] = Counter()

    def key(self, method: str, path: str) -> tuple[str, str]:
        """What identifies a request across runs: no query (signed URLs), test names or commit shas."""
        path = path.split("?", 1)[0]
        for name in self.names:
            path = path.replace(name, "{name}")
        return method, _SHA.sub("{sha}", path)

    def __call__(self, method: str, path: str) -> FaultRule | None:
        key = self.key(method, path)
        n = self.seen[key]
        self.seen[key] += 1
        if self.fired[key] >= self.max_per_path:
            return None
        digest = hashlib.sha256(f"{self.seed}|{key[0]}|{key[1]}|{n}".encode()).digest()
        if int.from_bytes(digest[:8], "big") / 2**64 >= self.rate:
            return None
        action = self.actions[int.from_bytes(digest[8:12], "big") % len(self.actions)]
        self.fired[key] += 1
        self.by_action[str(action)] += 1
        return FaultRule(action, stall=self.stall)

    @property
    def requests(self) -> int:
        return sum(self.seen.values())

    @property
    def faults(self) -> int:
        return sum(self.fired.values())


# -- the world one test publishes into -------------------------------------------------------------


@dataclass
class Stage:
    work: Path              # the publisher's working folder (no .env)
    data: Path              # work/data: the question tree, releases, version log
    repo: str
    bucket: str
    hub: HubServer
    hub_proxy: FaultProxy
    s3_proxy: FaultProxy
    direct: Settings        # both sides without the proxies: for inspection
    hf_home: Path

    # -- running the publisher ------------------------------------------------------------------

    def env(self, **overrides: str | None) -> dict[str, str]:
        """A clean environment for a ``vmeval-hf`` process reaching both sides through the proxies."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("HF_", "AWS_", "HUGGING", "VMEVAL_", "S3_"))}
        nowhere = str(self.work / ".no-aws-config")
        env.update({
            "TMPDIR": killable_tmp(self.work),
            "HF_ENDPOINT": self.hub_proxy.url, "HF_TOKEN": HUB_SECRET, "HF_HUB_DISABLE_XET": "1",
            "HF_UPDATE_DOWNLOAD_COUNTS": "0", "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HOME": str(self.hf_home),
            "HF_HUB_ETAG_TIMEOUT": str(CLIENT_TIMEOUT), "HF_HUB_DOWNLOAD_TIMEOUT": str(CLIENT_TIMEOUT),
            "AWS_ENDPOINT_URL": self.s3_proxy.url, "AWS_ACCESS_KEY_ID": AWS_KEY_SECRET,
            "AWS_SECRET_ACCESS_KEY": AWS_SECRET_SECRET, "AWS_SESSION_TOKEN": AWS_TOKEN_SECRET,
            "AWS_DEFAULT_REGION": TEST_REGION, "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": nowhere, "AWS_SHARED_CREDENTIALS_FILE": nowhere,
            "S3_BUCKET": self.bucket, "VMEVAL_HF_REPO": self.repo, "PYTHONUNBUFFERED": "1",
        })
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def argv(self, *args: str | Path) -> list[str]:
        return [*CLI, *(str(a) for a in args)]

    def run(self, *args: str | Path, env: dict[str, str] | None = None,
            timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Run ``vmeval-hf <args>`` to completion (in ``work``)."""
        return subprocess.run(self.argv(*args), cwd=self.work, env=env or self.env(), capture_output=True,
                              text=True, timeout=timeout)

    def publish_args(self, *extra: str) -> tuple[str, ...]:
        return ("publish", "--data-dir", str(self.data), "--log", "--date", DAY, *extra)

    def spawn(self, *args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*args), cwd=self.work, env=env or self.env(), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def flaky(self, rate: float, *, seed: int, **kwargs: Any) -> tuple[Flaky, Flaky]:
        """Put a :class:`Flaky` chooser in front of each side; returns (hub, s3)."""
        names = (self.repo, self.bucket)
        hub, s3 = Flaky(rate, seed=seed, names=names, **kwargs), Flaky(rate, seed=seed + 1, names=names, **kwargs)
        self.hub_proxy.chooser, self.s3_proxy.chooser = hub, s3
        return hub, s3

    def kill_when(self, proc: subprocess.Popen[str], condition: Callable[[], bool],
                  timeout: float = 90) -> None:
        """SIGKILL ``proc`` as soon as ``condition()`` holds; fail if it ends or times out first."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if condition():
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.communicate(timeout=30)
                    assert proc.returncode == -signal.SIGKILL
                    return
                if proc.poll() is not None:
                    out, err = proc.communicate()
                    pytest.fail(f"the publisher ended (exit {proc.returncode}) before the crash point:\n"
                                f"{out}\n{err[-3000:]}")
                time.sleep(0.002)
            pytest.fail("the crash point was never reached")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=30)

    # -- inspecting both sides ------------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        return self.data / "data_logging" / "version_log.json"

    def log_versions(self) -> list[str]:
        if not self.log_path.exists():
            return []
        return [e["version"] for e in json.loads(self.log_path.read_text(encoding="utf-8"))["versions"]]

    def api(self) -> Any:
        from vmeval_hf.hub import hub_api

        return hub_api(self.direct)

    def tags(self) -> dict[str, str]:
        from huggingface_hub.errors import RepositoryNotFoundError

        try:
            refs = self.api().list_repo_refs(self.repo, repo_type="dataset")
        except RepositoryNotFoundError:
            return {}
        return {t.name: t.target_commit for t in refs.tags}

    def keys(self, prefix: str = "") -> dict[str, int]:
        pages = raw_client(self.direct).get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                                   Prefix=prefix)
        return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", ())}

    def s3_manifest(self, day: str = DAY) -> dict[str, Any] | None:
        from vmeval_hf.s3.mirror import read_manifest

        return read_manifest(settings=self.direct, date=day)

    def assert_no_half_version(self, version: str = "1.0", day: str = DAY) -> None:
        """After a crash: nothing claims ``version`` unless what it claims is complete and right.

        The log does not list it; a Hub tag named after it points at a commit holding exactly the
        built release; a ``MANIFEST.json`` on S3 lists only objects present with their sha256, and
        its content is the release's.
        """
        from vmeval_hf.hub import verify_hub
        from vmeval_hf.release.release_manifest import load_release
        from vmeval_hf.s3.read import verify_s3

        assert version not in self.log_versions()
        tags = self.tags()
        held = self.s3_manifest(day)
        if version in tags or held is not None:
            # Either side claims the version: the build had finished, so the release is on disk.
            expected = load_release(self.data / "releases" / version)
            if version in tags:
                assert verify_hub(settings=self.direct, repo_id=self.repo, version=version,
                                  expected=expected) == []
            if held is not None:
                assert held["version"] == version
                assert held["content_sha256"] == expected["content_sha256"]
                assert verify_s3(settings=self.direct, date=day) == []

    def assert_published(self, version: str = "1.0") -> None:
        """Logged exactly once, and both sides verify against the recorded release."""
        from vmeval_hf.publish import verify_version

        assert self.log_versions().count(version) == 1, self.log_versions()
        assert verify_version(version, settings=self.direct, data_dir=self.data) == []
        entry = next(e for e in json.loads(self.log_path.read_text(encoding="utf-8"))["versions"]
                     if e["version"] == version)
        assert entry["hf_commit"] == self.tags()[version]
        held = self.s3_manifest(entry["date"])
        assert held is not None and held["content_sha256"] == entry["content_sha256"]


def error_lines(text: str) -> list[str]:
    """The ``ERROR:`` lines of a command's output."""
    return [line for line in text.splitlines() if line.startswith("ERROR:")]


def secrets_in(text: str | bytes, where: str, secrets: Iterable[str] = SECRETS) -> list[str]:
    """One line per secret found in ``text`` (``where`` says what the text is), showing only its start."""
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
    return [f"{where}: {s[:6]}..." for s in secrets if s.encode() in raw]


def assert_clean_failure(proc: subprocess.CompletedProcess[str]) -> str:
    """Exit 1, exactly one ``ERROR:`` line and no traceback; returns that line."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


# -- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def reliability_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """A sandbox Hub for the reliability suite only (not the session one), token :data:`HUB_SECRET`."""
    server = HubServer(tmp_path_factory.mktemp("reliability-hub") / "storage", token=HUB_SECRET).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def stage(tmp_path: Path, reliability_hub: HubServer, moto_server: str,
          request: pytest.FixtureRequest) -> Iterator[Stage]:
    """A data tree (chess x3, maze x2), a fresh repo and bucket, and a fault proxy before each side."""
    work = tmp_path / "work"
    work.mkdir()
    # A difficulty label of its own makes this test's shards unique: the Hub stores LFS objects by
    # content, and a shard another test already uploaded would never be sent again. Derived from
    # the test's name, so the shards (and the LFS upload paths faults are chosen by) are the same
    # on every run.
    label = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:8]
    data = make_tree(work / "data", {"chess": 3, "maze": 2}, difficulty=f"easy-{label}")
    bucket = f"vmeval-rel-{uuid.uuid4().hex[:12]}"
    direct = Settings(hf_token=HUB_SECRET, hf_endpoint=reliability_hub.url, hf_repo=f"rel-org/r-{uuid.uuid4().hex[:8]}",
                      s3_bucket=bucket, aws_region=TEST_REGION, aws_access_key_id=AWS_KEY_SECRET,
                      aws_secret_access_key=AWS_SECRET_SECRET, aws_endpoint_url=moto_server)
    raw_client(direct).create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": TEST_REGION})
    with FaultProxy(reliability_hub.url, seed=11, rewrite_urls=True) as hub_proxy, \
            FaultProxy(moto_server, seed=12) as s3_proxy:
        yield Stage(work, data, direct.hf_repo, bucket, reliability_hub, hub_proxy, s3_proxy, direct,
                    tmp_path / "hf-home")
