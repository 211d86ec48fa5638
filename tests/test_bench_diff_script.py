"""``scripts/bench_diff.py`` end to end at a tiny size: it builds the tree's release once, makes the
second version, and the diff it times finds exactly the questions it changed (the script stops
with an error otherwise). Run against this checkout as its own baseline, the two outputs must
agree. No timing is asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "bench_diff.py"


def test_bench_diff_times_the_diff_of_two_versions_and_checks_what_it_found(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--questions", "250", "--repeat", "1",
                           "--baseline", str(ROOT), "--cache-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split() for line in proc.stdout.splitlines()[1:]]
    assert [(r[0], r[1], r[2]) for r in rows] == [("250", "ours", "3"), ("250", "baseline", "3")]
    assert all(float(v) > 0 for r in rows for v in r[4:7])
    assert (tmp_path / "release-manifest-v1-250.json").is_file()  # built once, kept for the next run
