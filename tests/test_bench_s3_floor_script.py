"""``scripts/bench_s3_floor.py`` end to end at a tiny size: it starts its moto server, sends the
requests it counts, and the objects are really there afterwards (every PUT landed, every HEAD
found its object: a failed request would end the script with an error). No timing is asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_s3_floor.py"


def test_bench_s3_floor_reports_both_requests_and_the_estimate() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--objects", "40", "--workers", "2", "--questions", "1000"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split() for line in proc.stdout.splitlines()[1:3]]
    assert [(r[0], r[1]) for r in rows] == [("PUT", "40"), ("HEAD", "40")]
    assert all(float(v) > 0 for r in rows for v in r[2:])
    assert "send 12,000 requests" in proc.stdout
