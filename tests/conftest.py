"""Shared test fixtures. Server fixtures live in tests/support/ and are loaded as plugins."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

pytest_plugins = [
    "tests.support.hub",
    "tests.support.s3",
    "tests.support.trees",
    "tests.support.reliability",
]


def pytest_configure(config: pytest.Config) -> None:
    """The frame-verdict cache of every command the tests run (in-process or a subprocess, which
    inherits the variable) is a folder of this session's own, never the user's."""
    folder = tempfile.mkdtemp(prefix="vmeval-test-cache-")
    os.environ["VMEVAL_CACHE_DIR"] = folder
    config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
