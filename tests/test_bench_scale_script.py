"""``scripts/bench_scale.py``'s arithmetic and its yardstick, without the hour-long run: the table's
ratios net of the machine's drift, the profile comparison across N, and the gauge's samples. No
timing is asserted."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import bench_scale  # noqa: E402


def _stage(wall: float, cpu: float, ref_ms: float, pss: float = 100.0) -> dict[str, float]:
    return {"wall": wall, "cpu": cpu, "ref_ms": ref_ms, "steal": 0.01, "tree_pss_mb": pss, "s3_server_cpu": 1.0}


def _row(lines: list[str], stage: str, n: str) -> list[str]:
    return next(line.split() for line in lines if line.split()[:2] == [stage, n])


def test_table_divides_the_cpu_ratio_by_the_machines_slowing() -> None:
    results = [
        {"questions": 1000, "stages": {"verify": _stage(10.0, 5.0, 10.0)}},
        # ten times the questions: 1.3x the CPU a question, on a machine 1.25x slower by its yardstick
        {"questions": 10000, "stages": {"verify": _stage(130.0, 65.0, 12.5, pss=110.0)}},
    ]
    lines = bench_scale.table(results)
    header = lines[0].split()
    assert "ref" in header and "steal" in header
    row = _row(lines, "verify", "10,000")
    assert row[4] == "1.30x"                  # wall per question
    assert row[6] == "1.30x"                  # client CPU per question
    assert row[8:11] == ["12.50", "1.25x", "1.04x"]  # yardstick, its ratio, CPU ratio net of it
    assert row[11] == "1.0%"                  # steal
    assert row[-2:] == ["+10%", "MISSED:time"]


def test_table_without_a_yardstick_leaves_the_net_ratio_blank() -> None:
    old = {"wall": 10.0, "cpu": 5.0, "tree_pss_mb": 100.0}  # a result from before the gauge
    lines = bench_scale.table([{"questions": 10, "stages": {"verify": old}},
                               {"questions": 100, "stages": {"verify": dict(old, wall=100.0, cpu=50.0)}}])
    row = _row(lines, "verify", "100")
    assert row[4] == "1.00x" and row[5] == "50.0" and row[6] == "1.00x"
    assert row[-2:] == ["+0%", "ok"]


def test_profile_summary_compares_samples_per_question_and_sets_waits_apart(tmp_path: Path) -> None:
    def stacks(name: str, work: int, waits: int) -> None:
        (tmp_path / name).write_text(
            f"main (vmeval_hf/cli.py:10);verify_s3 (vmeval_hf/s3/read.py:77) {work}\n"
            f"main (vmeval_hf/cli.py:10);SocketIO.readinto (/usr/lib/python3.11/socket.py:706) {waits}\n")

    stacks("verify-100.txt", work=30, waits=20)
    stacks("verify-1000.txt", work=600, waits=200)     # twice the work a question, the same waits
    stacks("verify-1000-2.txt", work=300, waits=200)   # the same N again: its own column
    (tmp_path / "notes.txt").write_text("not a profile\n")
    lines = bench_scale.profile_summary(tmp_path)
    assert lines[0].startswith("verify: samples per 1,000 questions (self)")
    assert lines[1].split()[1:4] == ["verify-100", "verify-1000", "verify-1000-2"]
    own = next(line for line in lines if line.startswith("verify_s3 (s3/read.py)"))
    assert own.split()[-5:] == ["300.0", "600.0", "300.0", "2.00x", "1.00x"]
    wait = next(line for line in lines if line.startswith("SocketIO.readinto"))
    assert wait.split()[-5:] == ["200.0", "200.0", "200.0", "1.00x", "1.00x"]
    busy = next(line for line in lines if line.startswith("(all but waits"))
    assert busy.split()[-5:] == ["300.0", "600.0", "300.0", "2.00x", "1.00x"]
    total = lines.index(next(line for line in lines if line.startswith("verify: samples per 1,000 questions (total)")))
    # in the total section, a frame counts every stack it is in: main holds both
    main = next(line for line in lines[total:] if line.startswith("main (vmeval_hf/cli.py)"))
    assert main.split()[-5:] == ["500.0", "800.0", "500.0", "1.60x", "1.00x"]
    assert not any(line.startswith("main (") for line in lines[:total])  # never a stack's last frame


def test_gauge_samples_the_yardstick_while_a_stage_runs() -> None:
    with bench_scale.MachineGauge(every=0.02) as gauge:
        time.sleep(0.3)
    got = gauge.result()
    assert got["ref_samples"] >= 3
    assert got["ref_ms"] > 0
    assert 0.0 <= got["steal"] <= 1.0


def test_gauge_of_a_stage_shorter_than_its_interval_takes_one_sample() -> None:
    with bench_scale.MachineGauge(every=60) as gauge:
        pass
    got = gauge.result()
    assert got["ref_samples"] == 1 and got["ref_ms"] > 0
