"""The Ray tests (``tests/test_ray_engine.py``) in a network namespace holding only the loopback
interface (:mod:`tests.support.netns`): a local Ray instance binds its servers to the machine's
network address, which the tests must not expose. Every test of that file must pass there."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import netns

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(not netns.available(), reason="no loopback-only namespace here: "
                    "tests/test_ray_engine.py runs in the suite's own processes instead")
@pytest.mark.timeout(600)
def test_the_ray_engine_tests_pass_with_only_the_loopback_network(tmp_path: Path) -> None:
    run = subprocess.run(netns.argv(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                    "--basetemp", str(tmp_path / "t"), "tests/test_ray_engine.py"),
                         cwd=ROOT, capture_output=True, text=True, timeout=580)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    counts = dict((kind, int(n)) for n, kind in re.findall(r"(\d+) (\w+)", summary))
    assert counts.get("passed", 0) >= 10 and set(counts) == {"passed"}, summary  # none skipped, failed, errors
