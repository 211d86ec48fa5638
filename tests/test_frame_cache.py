"""The frame check's verdict cache and the parallel validate: an unchanged tree is not inflated
again, a changed frame always is (the key is its content), a broken cache is never trusted, and
checking in worker processes finds exactly what one process finds."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from tests.support.files import snapshot
from tests.support.pngs import png_bytes
from tests.support.trees import make_tree
from vmeval_hf.release.build import build_release
from vmeval_hf.tree.validate import validate_tree
from vmeval_hf.tree.verdicts import CHECK_VERSION

FRAMES = 2 * (3 + 2)  # two frames in each question of the tree below


def distinct_frames(data: Path, start: int = 0) -> Path:
    """Give every frame of the tree its own bytes (test trees reuse a frame per index)."""
    for i, png in enumerate(sorted((data / "questions").glob("*_task/*/*.png"))):
        png.write_bytes(png_bytes(start + i))
    return data


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return distinct_frames(make_tree(tmp_path / "data", {"chess": 3, "maze": 2}))


def cache_file(folder: Path) -> Path:
    return folder / f"png-verdicts-v{CHECK_VERSION}.sqlite3"


def frames(report: object) -> tuple[int, int]:
    return report.frames_checked, report.frames_cached  # type: ignore[attr-defined]


def corrupt_in_place(png: Path) -> None:
    """Damage the image data of ``png`` (one byte inside IDAT, its CRC fixed so the chunks stay
    sound), keeping its size and mtime: only reading the content can tell."""
    st = png.stat()
    data = bytearray(png.read_bytes())
    pos = data.index(b"IDAT") - 4
    (length,) = struct.unpack_from(">I", data, pos)
    body = pos + 8
    data[body + length // 2] ^= 0xFF
    struct.pack_into(">I", data, body + length, zlib.crc32(bytes(data[pos + 4:body + length])))
    png.write_bytes(bytes(data))
    os.utime(png, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert png.stat().st_size == st.st_size


def test_an_unchanged_tree_is_not_inflated_again(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = validate_tree(tree, frame_cache=cache)
    assert first.ok and frames(first) == (FRAMES, 0)
    again = validate_tree(tree, frame_cache=cache)
    assert again.ok and frames(again) == (0, FRAMES)
    assert frames(validate_tree(tree, frame_cache=False)) == (FRAMES, 0)  # asked not to use it


def test_the_publish_check_uses_the_same_verdicts(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    built = build_release(tree, tmp_path / "r1", version="1.0", decode_images=True, frame_cache=cache)
    assert (built.frames_checked, built.frames_cached) == (FRAMES, 0)
    assert frames(validate_tree(tree, frame_cache=cache)) == (0, FRAMES)
    rebuilt = build_release(tree, tmp_path / "r2", version="1.0", decode_images=True, frame_cache=cache)
    assert (rebuilt.frames_checked, rebuilt.frames_cached) == (0, FRAMES)
    assert rebuilt.content_sha256 == built.content_sha256
    # the hashes the pixel check computed are the ones the release records: the same bytes as a plain build
    plain = build_release(tree, tmp_path / "r0", version="1.0")
    assert snapshot(plain.out) == snapshot(built.out) == snapshot(rebuilt.out)


def test_a_frame_edited_in_place_with_the_same_size_and_mtime_is_checked_again(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert validate_tree(tree, frame_cache=cache).ok
    png = tree / "questions" / "maze_task" / "maze_0001" / "final_frame.png"
    corrupt_in_place(png)
    report = validate_tree(tree, frame_cache=cache)
    assert [(p.code, p.path) for p in report.errors] == [("bad_image", str(png))]
    assert frames(report) == (1, FRAMES - 1)
    again = validate_tree(tree, frame_cache=cache)  # a failed frame is never remembered as good
    assert [(p.code, p.path) for p in again.errors] == [("bad_image", str(png))]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other-schema", "foreign-table", "a-folder"])
def test_a_broken_cache_is_ignored_and_rebuilt(tree: Path, tmp_path: Path, damage: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "cache"
    assert validate_tree(tree, frame_cache=cache).ok
    path = cache_file(cache)
    if damage == "garbage":
        path.write_bytes(b"this is not a database" * 100)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "other-schema":
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA user_version = 99")
    elif damage == "foreign-table":
        path.unlink()
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE ok (name TEXT)")
            conn.execute("INSERT INTO ok VALUES ('x')")
            conn.execute("PRAGMA user_version = 1")
    else:
        path.unlink()
        path.mkdir()
    report = validate_tree(tree, frame_cache=cache)
    assert report.ok and frames(report) == (FRAMES, 0)  # nothing was taken from it
    assert "frame check cache" in caplog.text
    if damage != "a-folder":  # set aside and started again: the next run uses the new one
        assert frames(validate_tree(tree, frame_cache=cache)) == (0, FRAMES)


def test_a_damaged_frame_is_caught_whatever_the_cache_holds(tree: Path, tmp_path: Path) -> None:
    """Corrupt frames are checked every time: only passes are kept."""
    cache = tmp_path / "cache"
    png = tree / "questions" / "chess_task" / "chess_0002" / "first_frame.png"
    corrupt_in_place(png)
    for _ in range(2):
        report = validate_tree(tree, frame_cache=cache)
        assert [(p.code, p.path) for p in report.errors] == [("bad_image", str(png))]
    with sqlite3.connect(cache_file(cache)) as conn:
        assert conn.execute("SELECT count(*) FROM ok").fetchone()[0] == FRAMES - 1


_VALIDATE = """
import sys
from vmeval_hf.tree.validate import validate_tree
r = validate_tree(sys.argv[1], frame_cache=sys.argv[2])
print(r.ok, r.frames_checked, r.frames_cached)
"""


def test_concurrent_processes_share_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    trees = [distinct_frames(make_tree(tmp_path / f"d{i}", {"chess": 30, "maze": 30}), 1000 * i) for i in range(3)]
    procs = [subprocess.Popen([sys.executable, "-c", _VALIDATE, str(t), str(cache)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for t in trees * 2]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    for out, _ in outs:
        ok, checked, cached = out.split()
        assert ok == "True" and int(checked) + int(cached) == 120
    assert "WARNING" not in "".join(err for _, err in outs)
    for t in trees:
        assert frames(validate_tree(t, frame_cache=cache)) == (0, 120)


_CHECK_IN_WORKERS = """
import json, sys
from vmeval_hf.tree import validate
validate._MIN_PER_JOB = int(sys.argv[3])
jobs = []
inner = validate.run_forked_as_done
def counting(js, n):
    jobs.append(0)
    def each():
        for job in js:
            jobs[-1] += 1
            yield job
    return inner(each(), n)
validate.run_forked_as_done = counting
r = validate.validate_tree(sys.argv[1], workers=int(sys.argv[2]), frame_cache=False,
                           keep_questions=sys.argv[4] == "keep")
print(json.dumps({"problems": [p.as_dict() for p in r.problems], "ids": [q.id for q in r.question_list],
                  "questions": r.questions, "frames": [r.frames_checked, r.frames_cached], "jobs": jobs}))
"""


def _check(data: Path, workers: int, per_job: int = 50, keep: str = "keep") -> dict:
    # in a fresh process: this one may run server threads, and then nothing forks
    proc = subprocess.run([sys.executable, "-c", _CHECK_IN_WORKERS, str(data), str(workers), str(per_job), keep],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_checking_in_workers_finds_what_one_process_finds(tmp_path: Path) -> None:
    """One job per domain, and runs of two folders (jobs that split a domain): the same findings,
    in the same order, as one process."""
    data = make_tree(tmp_path / "data", {"chess": 4, "maze": 3, "sudoku": 2, "raven": 2})
    q = data / "questions"
    corrupt_in_place(q / "chess_task" / "chess_0001" / "first_frame.png")
    (q / "maze_task" / "maze_0002" / "prompt.txt").write_bytes(b"\xff")
    (q / "sudoku_task" / "sudoku_0001" / "final_frame.png").write_bytes(b"not a png")
    (q / "raven_task" / "raven_0000" / "notes.txt").write_text("stray")
    (q / "maze_task" / "maze_12").mkdir()  # a listing problem, reported before the domain's questions
    shutil.rmtree(q / "raven_task" / "raven_0001")  # the manifest (read while the workers run) lists it
    one = _check(data, 1)
    assert one["jobs"] == [] and len(one["problems"]) == 6 and one["questions"] == 7
    assert one["frames"] == [20, 0]
    assert [p["path"] for p in one["problems"] if p["path"].endswith("vmeval_dataset.json")]
    for per_job, jobs in ((50, 5), (2, 7)):  # one job per domain or run of two, and one reads the manifest
        two = _check(data, 2, per_job)
        assert two["jobs"] == [jobs]
        assert {k: v for k, v in two.items() if k != "jobs"} == {k: v for k, v in one.items() if k != "jobs"}
    lean = _check(data, 2, 2, "lean")
    assert lean["questions"] == 7 and lean["ids"] == [] and lean["problems"] == one["problems"]
