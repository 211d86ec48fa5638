"""``scripts/bench_publish.py`` end to end on a tiny tree made from real generated questions: it
runs every contender, the Hub server included, and counts the frames each run inflated. No timing
is asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_publish.py"


def test_bench_publish_counts_the_frames_each_run_inflates(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--questions", "40", "--pool", "2", "--repeat", "1",
                           "--cache-dir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[2:10]}
    assert list(rows) == ["floor", "hash", "build", "validate", "validate-again", "publish-check",
                          "publish-check-again", "publish-noop"]
    inflated = {name: (int(row[-2]), int(row[-1])) for name, row in rows.items()}
    # cold runs inflate all 80 frames (the tEXt copies are distinct bytes); runs on the unchanged
    # tree, the no-op re-publish included, inflate none of them
    assert inflated["validate"] == inflated["publish-check"] == (80, 0)
    assert inflated["validate-again"] == inflated["publish-check-again"] == inflated["publish-noop"] == (0, 80)
    assert inflated["build"] == (0, 0)
    assert "PASS  validate-again: 0 inflated" in proc.stdout and "PASS  publish-noop: 0 inflated" in proc.stdout
