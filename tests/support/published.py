"""Two versions published from one folder, to be read from another: the "second machine" scenario.

``publish_world(...)`` publishes 1.0 and 1.1 of a small tree (chess x2, maze x1; then one prompt
changed and maze_0005 added) from ``<root>/A/data`` to a fresh bucket on the session's moto server
and a fresh repo on the session's Hub server, with the environment (``AWS_*``, ``S3_BUCKET``,
``VMEVAL_HF_REPO``) set for the CLI and ``Settings.from_env()``; ``<root>/B`` is an empty folder
with no ``data/``. Test modules wrap it in a module-scoped fixture, so publishing happens once per
module.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.files import snapshot
from tests.support.s3 import TEST_ACCESS_KEY, TEST_REGION, TEST_SECRET_KEY, raw_client
from tests.support.trees import change_tree, make_tree
from vmeval_hf.config import Settings
from vmeval_hf.publish import publish_version

D10, D11 = "20250115", "20250116"

#: the S3 part of the environment (removed to play a machine with the Hub alone)
S3_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN")


@dataclass
class World:
    root: Path
    a: Path                     # the publisher's data tree (A/data)
    b: Path                     # the second machine's working folder (no data/)
    settings: Settings
    repo: str
    bucket: str
    entries: dict[str, dict[str, Any]]      # the publisher's log entries, by version
    questions_10: dict[str, bytes]          # A/data/questions as 1.0 was published

    def release(self, version: str) -> Path:
        return self.a / "releases" / version

    def keys(self, prefix: str = "") -> dict[str, int]:
        pages = raw_client(self.settings).get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                                     Prefix=prefix)
        return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", ())}


def world_env(mp: pytest.MonkeyPatch, moto_server: str, bucket: str, repo: str, nowhere: Path) -> None:
    """The environment of a machine with the settings: the test bucket, repo and credentials."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": TEST_SECRET_KEY,
        "AWS_DEFAULT_REGION": TEST_REGION, "AWS_REGION": TEST_REGION, "S3_BUCKET": bucket,
        "AWS_ENDPOINT_URL": moto_server, "AWS_EC2_METADATA_DISABLED": "true", "VMEVAL_HF_REPO": repo,
        "AWS_CONFIG_FILE": str(nowhere), "AWS_SHARED_CREDENTIALS_FILE": str(nowhere),
    }.items():
        mp.setenv(name, value)
    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                 "AWS_ENDPOINT_URL_S3"):
        mp.delenv(name, raising=False)


@contextmanager
def publish_world(root: Path, moto_server: str) -> Iterator[World]:
    bucket = f"vmeval-shared-{uuid.uuid4().hex[:10]}"
    repo = f"test-org/shared-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as mp:
        world_env(mp, moto_server, bucket, repo, root / "no-aws-config")
        settings = Settings.from_env(dotenv_path=root / "no.env")
        raw_client(settings).create_bucket(Bucket=bucket,
                                           CreateBucketConfiguration={"LocationConstraint": TEST_REGION})
        a = make_tree(root / "A" / "data", {"chess": 2, "maze": 1})
        questions_10 = snapshot(a / "questions")
        first = publish_version(a, settings=settings, log_entry=True, date=D10)
        change_tree(a)
        second = publish_version(a, settings=settings, log_entry=True, date=D11)
        (root / "B").mkdir()
        entries = {r.version: dict(r.entry or {}) for r in (first, second)}
        yield World(root, a, root / "B", settings, repo, bucket, entries, questions_10)
