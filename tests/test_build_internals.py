"""The build's fast paths, each checked against the slow, obvious way it replaces.

- Arrow columns built from buffers == ``pa.array`` of the same values (and the same ``nbytes``,
  which the card's ``num_bytes`` relies on); the build never imports pandas.
- The streamed release manifest == ``canonical_json`` of the whole document; the streamed
  ``content_sha256`` == the documented formula.
- The checker's one-open reads: a file swapped for a FIFO or a symlink after the listing.
- Forked workers: results in order, errors re-raised, a killed worker named, nothing left
  running; a build whose workers find problems lists them all and leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest

from tests.support.files import snapshot
from tests.support.pngs import png_bytes
from tests.support.trees import make_tree
from vmeval_hf._shared.fs import canonical_json
from vmeval_hf.release.release_manifest import (
    content_sha256,
    content_sha256_runs,
    write_release_manifest,
    write_source_run,
)
from vmeval_hf.release.shards import Arena, binary_array, image_array, string_array
from vmeval_hf.tree.checker import Checker

REPO = Path(__file__).resolve().parent.parent

# --- Arrow columns --------------------------------------------------------------------------

BINARY_CASES = [
    [b"a", b"", b"xyz"],
    [b"a", None, b"xyz", None],
    [None, None],
    [],
    [bytes(range(256)) * 40, None, b"\x00"],
    [b"x"] * 9 + [None] * 8,  # a validity bitmap longer than one byte
]


@pytest.mark.parametrize("values", BINARY_CASES)
def test_binary_array_equals_pa_array(values: list[bytes | None]) -> None:
    ours, theirs = binary_array(values, pa.binary()), pa.array(values, pa.binary())
    ours.validate(full=True)
    assert ours.equals(theirs) and ours.to_pylist() == values
    assert ours.null_count == theirs.null_count and ours.nbytes == theirs.nbytes


@pytest.mark.parametrize("values", [["a", "", "é迷 ✓"], ["a", None], [None], []])
def test_string_array_equals_pa_array(values: list[str | None]) -> None:
    ours, theirs = string_array(values), pa.array(values, pa.string())
    ours.validate(full=True)
    assert ours.equals(theirs) and ours.nbytes == theirs.nbytes


@pytest.mark.parametrize("values", BINARY_CASES)
def test_image_struct_equals_the_pa_array_form(values: list[bytes | None]) -> None:
    """The struct as the previous build made it, through pa.array: same values, same nbytes."""
    mask = pa.array([v is None for v in values], pa.bool_())
    data = pa.array(values, pa.binary())
    paths = pa.array([None if v is None else "first_frame.png" for v in values], pa.string())
    theirs = pa.StructArray.from_arrays([data, paths], names=["bytes", "path"], mask=mask)
    ours = image_array(binary_array(values, pa.binary()), "first_frame.png", [v is not None for v in values])
    ours.validate(full=True)
    assert ours.equals(theirs) and ours.nbytes == theirs.nbytes
    assert ours.to_pylist() == [None if v is None else {"bytes": v, "path": "first_frame.png"} for v in values]


def test_a_column_over_2_gib_in_one_row_group_is_refused() -> None:
    from vmeval_hf.errors import BuildError
    from vmeval_hf.release.shards import _assemble

    with pytest.raises(BuildError, match="2 GiB"):  # Parquet binary offsets are 32-bit
        _assemble(pa.binary(), [0, 2**31], [True], pa.py_buffer(b""))


@pytest.mark.parametrize("values", BINARY_CASES)
def test_arena_column_equals_pa_array(values: list[bytes | None]) -> None:
    arena = Arena(4)  # small, so the values below make it grow while views are alive
    for round_ in range(2):  # the second round reuses the buffer after reset()
        views = []
        for v in values:
            abandoned = arena.reserve(7)  # a question that fails after its frame was read
            abandoned[:] = b"garbage"
            if v is None:
                arena.commit(None)
                continue
            view = arena.reserve(len(v) + 1)  # the checker asks for one byte more than the file
            view[:len(v)] = v
            views.append(view)
            arena.commit(len(v))
        ours = arena.array()
        ours.validate(full=True)
        assert ours.equals(pa.array(values, pa.binary())), round_
        assert ours.nbytes == pa.array(values, pa.binary()).nbytes
        del ours, views
        arena.reset()


@pytest.mark.parametrize("workers", [1, 2])
def test_build_never_imports_pandas_or_pyarrow_compute(tmp_path: Path, workers: int) -> None:
    # pa.array() on Python lists imports pandas (a third of a second), Array.is_null() imports
    # pyarrow.compute (30 ms, paid again in every forked worker); the build needs neither
    data_dir = make_tree(tmp_path / "data", {"chess": 3, "maze": 2})
    code = textwrap.dedent("""
        import os, sys
        import vmeval_hf.release.build as b
        import vmeval_hf._shared.forked as forked; forked.PARALLEL_MIN_QUESTIONS = 0
        inner = b._compile_domain
        def spy(*args):
            try:
                return inner(*args)
            finally:  # what the worker imported, one line per domain
                os.write(1, f"{'pandas' in sys.modules} {'pyarrow.compute' in sys.modules}\\n".encode())
        b._compile_domain = spy
        b.build_release(sys.argv[1], sys.argv[2], version="1.0", workers=int(sys.argv[3]))
        print("pandas" in sys.modules, "pyarrow.compute" in sys.modules)
    """)
    proc = subprocess.run([sys.executable, "-c", code, str(data_dir), str(tmp_path / "out"), str(workers)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:-1] == ["False False"] * 3
    assert (tmp_path / "out" / "vmeval_release.json").is_file()


# --- the release manifest, streamed ----------------------------------------------------------

TRICKY = ["chess_task/chess_0000/first_frame.png", 'odd_task/odd_0001/"quoted"\\.png', "ü_task/ü_0002/迷.png",
          "ctl_task/ctl_0003/\x01\t.png"]


def _documented_content_sha256(sources: list[dict[str, object]]) -> str:
    ordered = sorted(({"path": s["path"], "size": s["size"], "sha256": s["sha256"]} for s in sources),
                     key=lambda s: str(s["path"]))
    return hashlib.sha256(json.dumps(ordered, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@pytest.mark.parametrize(("n", "cuts"), [(0, []), (1, []), (4, []), (4, [1]), (4, [1, 3])])
def test_manifest_and_content_hash_from_runs_equal_the_whole_document(tmp_path: Path, n: int,
                                                                      cuts: list[int]) -> None:
    """Workers write their domain's sorted sources as runs; joined in order, they are the document."""
    sources = [{"path": p, "size": 10**i, "sha256": hashlib.sha256(p.encode()).hexdigest()}
               for i, p in enumerate(TRICKY[:n])]
    rows = sorted((str(s["path"]), int(str(s["size"])), str(s["sha256"])) for s in sources)
    bounds = [0, *cuts, n]
    runs = [r for i, (a, b) in enumerate(zip(bounds, bounds[1:]))
            if (r := write_source_run(rows[a:b], tmp_path / "runs" / str(i))) is not None]
    assert len(runs) == (len(cuts) + 1 if n else 0)
    doc = {"schema": 1, "version": "1.0", "questions": n, "domains": {"chess": n}, "content_sha256": "c",
           "shards": [{"path": "data/chess/test-00000-of-00001.parquet", "rows": n, "size": 5, "sha256": "s"}],
           "files": [{"path": "README.md", "size": 1, "sha256": "f"}]}
    write_release_manifest(tmp_path / "m.json", doc, runs)
    expected = canonical_json({**doc, "sources": sorted(sources, key=lambda s: str(s["path"]))})
    assert (tmp_path / "m.json").read_text(encoding="utf-8") == expected
    assert content_sha256_runs(runs) == content_sha256(sources) == _documented_content_sha256(sources)


def test_runs_out_of_order_are_refused(tmp_path: Path) -> None:
    a = write_source_run([("a_task/a_0000/prompt.txt", 1, "x")], tmp_path / "a")
    b = write_source_run([("b_task/b_0000/prompt.txt", 1, "y")], tmp_path / "b")
    assert a is not None and b is not None
    with pytest.raises(ValueError, match="out of order"):
        content_sha256_runs([b, a])
    with pytest.raises(ValueError, match="out of order"):
        write_release_manifest(tmp_path / "m.json", {"schema": 1}, [b, a])


# --- the checker's reads ----------------------------------------------------------------------


def _entry(folder: Path, name: str) -> os.DirEntry[str]:
    with os.scandir(folder) as it:
        return next(e for e in it if e.name == name)


def test_a_file_swapped_for_a_fifo_after_listing_is_refused_without_blocking(tmp_path: Path) -> None:
    qdir = tmp_path / "data" / "questions"
    qdir.mkdir(parents=True)
    (qdir / "prompt.txt").write_text("hi", encoding="utf-8")
    entry = _entry(qdir, "prompt.txt")  # listed as a regular file
    (qdir / "prompt.txt").unlink()
    os.mkfifo(qdir / "prompt.txt")  # no writer: a blocking open would hang here
    checker = Checker(qdir)
    assert checker.read(entry, "q", 100) is None
    assert [(p.code, p.path) for p in checker.report.problems] == [("not_a_file", str(qdir / "prompt.txt"))]


def test_a_file_swapped_for_a_symlink_after_listing_is_not_followed(tmp_path: Path) -> None:
    qdir = tmp_path / "data" / "questions"
    qdir.mkdir(parents=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the data root", encoding="utf-8")
    (qdir / "prompt.txt").write_text("hi", encoding="utf-8")
    entry = _entry(qdir, "prompt.txt")
    (qdir / "prompt.txt").unlink()
    (qdir / "prompt.txt").symlink_to(secret)
    checker = Checker(qdir)
    assert checker.read(entry, "q", 100) is None
    assert [p.code for p in checker.report.problems] == ["unreadable"]


def test_reads_keep_the_bytes_only_for_a_consumer(tmp_path: Path) -> None:
    data_dir = make_tree(tmp_path / "data", {"chess": 2})
    seen: list[tuple[str, dict[str, bytes]]] = []
    checker = Checker(data_dir / "questions", decode_images=False, on_question=lambda q, b: seen.append((q.id, b)))
    report = checker.run()
    assert report.ok and report.question_list == []  # handed over, not kept
    assert [qid for qid, _ in seen] == ["chess_0000", "chess_0001"]
    for qid, blobs in seen:
        folder = data_dir / "questions" / "chess_task" / qid
        assert blobs == {p.name: p.read_bytes() for p in folder.iterdir()}


# --- forked workers ---------------------------------------------------------------------------
# In fresh interpreters: the test process runs server threads, and forking then is unsafe.


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def _run_forked_script(code: str) -> None:
    """Run ``code`` (which calls ``run_forked``) in a fresh interpreter; it must pass its own
    asserts and leave no child process behind."""
    proc = _run(textwrap.dedent(code) + textwrap.dedent("""
        try:
            os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            print("no children left")
    """))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "no children left"


_JOBS_ENDING_APART = """
    import os, time
    from vmeval_hf._shared.forked import run_forked

    calls = []
    results = run_forked([(f"job {i}", lambda i=i: (i, os.getpid(), time.sleep(0.25 * i))) for i in range(5)],
                         2, on_idle=lambda done: calls.append([r[0] for r in done]))
"""


def test_run_forked_returns_results_in_job_order_each_from_its_own_child() -> None:
    _run_forked_script(_JOBS_ENDING_APART + """
    assert [r[0] for r in results] == list(range(5)), results
    assert os.getpid() not in {r[1] for r in results} and len({r[1] for r in results}) == 5
    """)


def test_run_forked_calls_on_idle_once_all_jobs_started_then_after_each_result() -> None:
    _run_forked_script(_JOBS_ENDING_APART + """
    # first once the last job has started (3 done), then after each result while others still run;
    # the jobs end 0.25 s apart, so a loaded machine does not reorder them
    assert calls and calls[0] == [0, 1, 2] and all(c == sorted(c) for c in calls), calls
    assert [len(c) for c in calls] == sorted({len(c) for c in calls}) and len(calls[-1]) <= 4, calls
    """)


def test_run_forked_calls_on_start_once_while_later_jobs_are_still_queued() -> None:
    _run_forked_script("""
        import os, tempfile, time
        from vmeval_hf._shared.forked import run_forked

        marks = tempfile.mkdtemp()
        def job(i):
            open(os.path.join(marks, str(i)), "w").close()
            time.sleep(0.5 if i < 2 else 0)
        def on_start():
            deadline = time.monotonic() + 10
            while not os.path.exists(os.path.join(marks, "0")) and time.monotonic() < deadline:
                time.sleep(0.01)
            starts.append(sorted(os.listdir(marks)))
        starts = []
        run_forked([(f"job {i}", lambda i=i: job(i)) for i in range(3)], 2, on_start=on_start)
        assert len(starts) == 1 and "0" in starts[0] and "2" not in starts[0], starts
    """)


def test_run_forked_reraises_a_jobs_exception_in_the_parent() -> None:
    _run_forked_script("""
        import os
        from vmeval_hf._shared.forked import run_forked

        def bad():
            raise KeyError("missing thing")
        try:
            run_forked([("fine", lambda: 1), ("bad", bad)], 2)
        except KeyError as exc:
            assert "missing thing" in str(exc)
        else:
            raise AssertionError("no KeyError")
    """)


def test_run_forked_names_a_worker_killed_by_a_signal() -> None:
    _run_forked_script("""
        import os, signal
        from vmeval_hf.errors import BuildError
        from vmeval_hf._shared.forked import run_forked

        try:
            run_forked([("domain 'maze'", lambda: os.kill(os.getpid(), signal.SIGKILL))], 2)
        except BuildError as exc:
            assert "domain 'maze'" in str(exc) and "signal 9" in str(exc), exc
        else:
            raise AssertionError("no BuildError")
    """)


def test_run_forked_names_a_worker_killed_part_way_through_its_answer() -> None:
    """Killed while sending its result (the parent is busy, so the pipe fills): not a result."""
    _run_forked_script("""
        import os, signal, threading, time
        from vmeval_hf.errors import BuildError
        from vmeval_hf._shared.forked import run_forked

        def big():
            threading.Thread(target=lambda: (time.sleep(0.3), os.kill(os.getpid(), signal.SIGKILL))).start()
            return b"x" * (8 << 20)
        try:
            run_forked([("domain 'chess'", big)], 2, on_idle=lambda done: time.sleep(1))
        except BuildError as exc:
            assert "domain 'chess'" in str(exc) and "signal 9" in str(exc), exc
        else:
            raise AssertionError("no BuildError")
    """)


def test_run_forked_interrupted_kills_and_reaps_every_running_child() -> None:
    """Interrupted while two children run: both are killed and reaped before the exception goes on."""
    _run_forked_script("""
        import os, signal, time
        from vmeval_hf._shared.forked import run_forked

        r, w = os.pipe()
        def slow():
            os.write(w, f"{os.getpid()}\\n".encode())
            time.sleep(60)
        def interrupt(*_):
            raise KeyboardInterrupt
        signal.signal(signal.SIGALRM, interrupt)
        signal.alarm(2)
        try:
            run_forked([("a", slow), ("b", slow), ("c", slow)], 2)
        except KeyboardInterrupt:
            pass
        else:
            raise AssertionError("no KeyboardInterrupt")
        pids = [int(p) for p in os.read(r, 1000).split()]
        assert len(pids) == 2, pids  # the third job never started
        for pid in pids:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                pass
            else:
                raise AssertionError(f"child {pid} still exists")
    """)


def test_forked_build_lists_every_domains_problems_and_leaves_nothing(tmp_path: Path) -> None:
    data_dir = make_tree(tmp_path / "data", {"chess": 3, "maze": 3, "sudoku": 2})
    qdir = data_dir / "questions"
    (qdir / "chess_task/chess_0001/first_frame.png").write_bytes(b"not a png")
    (qdir / "maze_task/maze_0002/prompt.txt").write_bytes(b"\xff\xfe")
    (qdir / "sudoku_task/sudoku_0001/final_frame.png").write_bytes(png_bytes(1)[:-5])  # truncated
    proc = _run("""
        import json, os, sys
        import vmeval_hf.release.build as b
        from vmeval_hf.errors import ValidationError
        import vmeval_hf._shared.forked as forked; forked.PARALLEL_MIN_QUESTIONS = 0
        inner = b._compile_domain
        def spy(*args):
            os.write(2, f"worker {os.getpid()}\\n".encode())  # one write: children run at once
            return inner(*args)
        b._compile_domain = spy
        try:
            b.build_release(sys.argv[1], sys.argv[2], version="1.0", workers=2)
        except ValidationError as exc:
            print(json.dumps(sorted((p.code, p.path) for p in exc.problems if p.severity == "error")))
        print(os.getpid(), file=sys.stderr)
    """, str(data_dir), str(tmp_path / "releases" / "1.0"))
    assert proc.returncode == 0, proc.stderr
    pids = proc.stderr.split()
    assert pids.count("worker") == 3 and pids[-1] not in pids[:-1]  # three domains, each in a child
    problems = json.loads(proc.stdout)
    assert [code for code, _ in problems] == ["bad_image", "not_png", "not_utf8"]
    assert {path for _, path in problems} == {
        str(qdir / "chess_task/chess_0001/first_frame.png"), str(qdir / "maze_task/maze_0002/prompt.txt"),
        str(qdir / "sudoku_task/sudoku_0001/final_frame.png")}
    assert not (tmp_path / "releases").exists()  # not even the parent folder the build created


@pytest.mark.parametrize("workers", [1, 2])
def test_manifest_out_of_sync_blocks_the_build_forked_or_not(tmp_path: Path, workers: int) -> None:
    data_dir = make_tree(tmp_path / "data", {"chess": 3, "maze": 3, "sudoku": 2})
    manifest = data_dir / "questions" / "vmeval_dataset.json"
    doc = json.loads(manifest.read_text(encoding="utf-8"))
    doc["questions"] = [e for e in doc["questions"] if e["id"] != "maze_0001"]
    doc["questions"].append({**doc["questions"][0], "id": "chess_0099", "path": "chess_task/chess_0099"})
    doc["total_pairs"] = 99
    manifest.write_text(json.dumps(doc), encoding="utf-8")
    proc = _run("""
        import json, os, sys, time
        import vmeval_hf.release.build as b
        from vmeval_hf.errors import ValidationError
        import vmeval_hf._shared.forked as forked; forked.PARALLEL_MIN_QUESTIONS = 0
        # forked: the last domain (the smallest) is slow, so the manifest is read while it runs
        compile_domain, read = b._compile_domain, b.store_manifest
        b._compile_domain = lambda *a: (time.sleep(0.5) if a[3] == "sudoku" else None) or compile_domain(*a)
        early = []
        b.store_manifest = lambda qdir, db: early.append(os.getpid()) or read(qdir, db)
        try:
            b.build_release(sys.argv[1], sys.argv[2], version="1.0", workers=int(sys.argv[3]))
        except ValidationError as exc:
            print(json.dumps(sorted((p.code, p.question) for p in exc.problems if p.severity == "error")))
        print(early == ([os.getpid()] if sys.argv[3] == "2" else []))
    """, str(data_dir), str(tmp_path / "releases" / "1.0"), str(workers))
    assert proc.returncode == 0, proc.stderr
    problems, read_early = proc.stdout.splitlines()
    assert json.loads(problems) == [["manifest_count_differs", None], ["manifest_lists_missing", "chess_0099"],
                                    ["manifest_missing_question", "maze_task/maze_0001"]]
    assert read_early == "True"  # forked: read once, in this process, while the last worker ran
    assert not (tmp_path / "releases").exists()


def test_forked_build_reports_a_killed_worker_and_leaves_nothing(tmp_path: Path) -> None:
    data_dir = make_tree(tmp_path / "data", {"chess": 3, "maze": 3})
    releases = tmp_path / "releases"
    releases.mkdir()
    proc = _run("""
        import os, signal, sys
        import vmeval_hf.release.build as b
        from vmeval_hf.errors import BuildError
        import vmeval_hf._shared.forked as forked; forked.PARALLEL_MIN_QUESTIONS = 0
        inner = b._compile_domain
        def spy(*args):
            if args[3] == "maze":
                os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer would
            return inner(*args)
        b._compile_domain = spy
        try:
            b.build_release(sys.argv[1], sys.argv[2], version="1.0", workers=2)
        except BuildError as exc:
            print(exc)
    """, str(data_dir), str(releases / "1.0"))
    assert proc.returncode == 0, proc.stderr
    assert "domain 'maze'" in proc.stdout and "killed by signal 9" in proc.stdout
    assert list(releases.iterdir()) == []  # no release, no temp folder


@pytest.mark.parametrize("workers", [1, 2])
def test_a_write_failure_is_a_build_error_and_keeps_the_previous_release(tmp_path: Path, workers: int) -> None:
    """The disk fills up mid-build (a file-size limit stands in for it): the error names the
    release and the cause, the previous release is untouched and no temp folder is left."""
    from vmeval_hf.release.build import build_release

    data_dir = make_tree(tmp_path / "data", {"chess": 30, "maze": 30})
    releases = tmp_path / "releases"
    build_release(data_dir, releases / "current", version="1.0")
    before = snapshot(releases)
    proc = _run("""
        import resource, signal, sys
        import vmeval_hf.release.build as b
        from vmeval_hf.errors import BuildError
        import vmeval_hf._shared.forked as forked; forked.PARALLEL_MIN_QUESTIONS = 0
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write over the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (32768, 32768))  # the checks' records fit; the release manifest (42 KB) does not
        try:
            b.build_release(sys.argv[1], sys.argv[2], version="1.1", workers=int(sys.argv[3]))
        except BuildError as exc:
            print(exc)
    """, str(data_dir), str(releases / "current"), str(workers))
    assert proc.returncode == 0, proc.stderr
    assert "cannot write the release at" in proc.stdout and "File too large" in proc.stdout, proc.stdout
    assert [p.name for p in releases.iterdir()] == ["current"]  # no temp folder left
    assert snapshot(releases) == before


def test_no_room_for_the_checks_records_is_a_local_file_error_and_leaves_nothing(tmp_path: Path) -> None:
    """The build's tree-wide checks keep their records in a temporary folder (as validate's): a
    disk too full for them (a file-size limit stands in for it) is a LocalFileError that names
    that folder and says what to do; no release, no temp folder, no records are left."""
    data_dir = make_tree(tmp_path / "data", {"chess": 3, "maze": 3})
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = _run("""
        import os, resource, signal, sys
        import vmeval_hf.release.build as b
        from vmeval_hf.errors import LocalFileError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write over the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))  # less than one SQLite page
        os.environ["TMPDIR"] = sys.argv[3]
        import tempfile; tempfile.tempdir = None
        try:
            b.build_release(sys.argv[1], sys.argv[2], version="1.0", workers=1, frame_cache=False)
        except LocalFileError as exc:
            print(exc)
    """, str(data_dir), str(tmp_path / "releases" / "1.0"), str(tmp))
    assert proc.returncode == 0, proc.stderr
    assert f"{tmp}{os.sep}vmeval-" in proc.stdout and "free some space there" in proc.stdout, proc.stdout
    assert list(tmp.iterdir()) == [] and not (tmp_path / "releases").exists()


def test_a_domain_whose_first_question_fails_still_reports_the_tree_forked(tmp_path: Path) -> None:
    """A forked domain whose questions all fail writes no source rows, so no scratch folder: its
    listings still reach the parent (the stash makes the folder), and the build is refused with
    the validation findings, not a missing-file error."""
    data_dir = make_tree(tmp_path / "data", {"chess": 2, "maze": 2})
    for q in ("maze_0000", "maze_0001"):
        (data_dir / "questions" / "maze_task" / q / "prompt.txt").write_bytes(b"\xff")
    proc = _run("""
        import json, sys
        import vmeval_hf.release.build as b
        from vmeval_hf.errors import ValidationError
        import vmeval_hf._shared.forked as forked; forked.PARALLEL_MIN_QUESTIONS = 0
        try:
            b.build_release(sys.argv[1], sys.argv[2], version="1.0", workers=2, frame_cache=False)
        except ValidationError as exc:
            print(json.dumps(sorted({p.code for p in exc.problems if p.severity == "error"})))
    """, str(data_dir), str(tmp_path / "releases" / "1.0"))
    assert proc.returncode == 0, proc.stderr
    assert "not_utf8" in json.loads(proc.stdout)
    assert not (tmp_path / "releases").exists()
