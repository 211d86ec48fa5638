"""``scripts/bench_hub.py`` end to end on a tiny tree: it starts its own Hub servers, runs the three
publishers, prints the table, and stops every server it started. No timing is asserted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_hub.py"


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if text.encode() in fh.read():
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def test_bench_hub_runs_end_to_end_and_the_noop_republish_sends_no_content(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--questions", "30", "--repeat", "1", "--attribute",
                           "--cache-dir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("N = 30: release of")
    rows = {line[:14].strip(): line.split() for line in lines[2:7]}
    assert set(rows) == {"ours", "ours no-op", "upload_folder", "push_to_hub", "ours unchecked"}
    # the unchecked diagnostic publishes the same release: the same content, one commit, one tag
    content, commits_main_tags = slice(-7, -6), slice(-4, -1)
    for cols in (content, commits_main_tags):
        assert rows["ours unchecked"][cols] == rows["ours"][cols]
    assert rows["ours unchecked"][commits_main_tags] == ["1", "1", "1"]
    assert any(line.startswith("N=30: the release check costs ours") for line in lines)
    # the no-op re-publish of the same release sends no file content and makes no commit
    assert any("no-op re-publish: 0 bytes of file content, 0 commits" in line and line.endswith("ok")
               for line in lines)
    assert any("ours made" in line and "and 1 tag" in line for line in lines)
    assert _processes_mentioning(str(tmp_path)) == []  # every server it started was stopped
