"""``validate`` keeps what its tree-wide checks need on disk (:mod:`vmeval_hf.tree.records`) and
checks the folders in runs of at most ``_MAX_PER_JOB``, each made when a worker is free for it
(:func:`~vmeval_hf._shared.forked.run_forked_as_done`), so that its memory does not grow with the
tree. The findings must be exactly those of the in-memory checks (the build reads the same records), in
the same order, across run boundaries, forked or not."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from tests.support.trees import make_tree
from tests.test_manifest_stream import DISK, FOLDERS, _problems, _texts, _whole_text_problems
from vmeval_hf.errors import LocalFileError
from vmeval_hf.tree.checker import Checker
from vmeval_hf.tree.datafolders import data_folder_problems
from vmeval_hf.tree.dataset_manifest import manifest_problems
from vmeval_hf.tree.model import DATASET_MANIFEST, Listed
from vmeval_hf.tree.records import Records, store_manifest, tree_records

REPO = Path(__file__).resolve().parent.parent


def _fill(records: Records, questions: list[Listed], folders: dict[str, str]) -> None:
    """List ``folders`` into ``records`` (each domain backwards: the listing's order is not
    the tree's), and mark ``questions`` valid."""
    by_domain: dict[str, list[str]] = {}
    for name in folders:
        by_domain.setdefault(name.rpartition("_")[0], []).append(name)

    def listing(names: list[str], found: object) -> int:
        for name in reversed(names):
            found(name)  # type: ignore[operator]
        return len(names)

    for domain in sorted(by_domain):
        records.add_domain(domain, lambda found, names=by_domain[domain]: listing(names, found))
    difficulty = {q.id: q.difficulty for q in questions}
    for span in records.order():
        names = records.names(span.first, span.count)
        assert names == sorted(names, key=lambda n: (len(n), n))  # natural order, here
        records.mark_valid((span.first + i, difficulty[n]) for i, n in enumerate(names) if n in difficulty)


def test_stored_manifest_reports_what_the_whole_text_reported(tmp_path: Path) -> None:
    """The same corpus as the streamed reader's test (keys in any order, repeated keys, seed
    ``pairs`` only, values of every JSON type, cut and damaged files): read into the records'
    database and compared from there, the problems are exactly those of ``json.loads``."""
    texts = _texts()
    texts = texts[:60] + texts[60::3]
    with tree_records() as records:
        _fill(records, DISK, FOLDERS)
        assert records.valid_count() == len(DISK) and records.repeated() == []
        for text in texts:
            (tmp_path / DATASET_MANIFEST).write_bytes(text)
            records.manifest_file.unlink(missing_ok=True)
            stored = store_manifest(tmp_path, records.manifest_file)
            assert _problems(records.manifest_problems(stored)) == \
                _problems(_whole_text_problems(tmp_path, DISK, FOLDERS)), text


def test_stored_values_keep_their_type_and_words(tmp_path: Path) -> None:
    """Strings with any code point (a lone surrogate, from JSON escapes), null, absent fields and
    values that are not strings are compared, and shown, as the in-memory check shows them; ids
    sort by code point, as Python sorts them."""
    disk = [Listed("chess_0000", "chess", "\udc80"), Listed("chess_0001", "chess", None),
            Listed("chess_0002", "chess", "easy")]
    folders = {q.id: q.source_path for q in disk}
    entries = [{"id": "chess_0000", "domain": "chess", "difficulty": "\udc80", "path": "chess_task/chess_0000"},
               {"id": "chess_0001", "domain": ["chess"], "difficulty": 1.5, "path": None},
               {"id": "chess_0002", "difficulty": None},
               {"id": "\ud800x"}, {"id": "\u00e9"}, {"id": "Z"}, {"id": "CHESS_0002"}]
    (tmp_path / DATASET_MANIFEST).write_text(json.dumps({"questions": entries, "total_pairs": 7}), encoding="utf-8")
    expected = _problems(manifest_problems(tmp_path, disk, folders))
    assert [code for _, code, *_ in expected].count("manifest_lists_missing") == 4
    with tree_records() as records:
        _fill(records, disk, folders)
        got = _problems(records.manifest_problems(store_manifest(tmp_path, records.manifest_file)))
    assert got == expected


def test_the_records_folder_is_removed_and_a_failure_to_make_it_is_a_local_file_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with tree_records() as records:
        assert records.folder.parent == tmp_path and records.folder.is_dir()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError), tree_records():
        raise RuntimeError("a failure while checking")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    with pytest.raises(LocalFileError, match="TMPDIR"), tree_records():
        pass


def test_question_names_finds_what_question_folders_finds(tree_with_odd_entries: Path) -> None:
    """The listing that hands names on as it goes records the same problems, in the same order
    (by name), and finds the same folders, as the sorted listing."""
    qdir = tree_with_odd_entries / "questions"
    ddir = str(qdir / "maze_task")
    sorted_listing = Checker(qdir)
    expected = sorted_listing.question_folders(ddir, "maze", names=True)
    streamed, names = Checker(qdir), []
    count = streamed.question_names(ddir, "maze", names.append)
    assert count == len(os.listdir(ddir))
    assert sorted(names) == sorted(expected) and len(names) == 4
    assert streamed.report.problems == sorted_listing.report.problems
    assert [p.code for p in streamed.report.problems] == ["bad_folder_name", "bad_folder_name", "stray_file"]
    missing = Checker(qdir)
    assert missing.question_names(str(qdir / "nothing_task"), "nothing", names.append) is None
    assert [p.code for p in missing.report.problems] == ["unreadable"]


@pytest.fixture
def tree_with_odd_entries(tmp_path: Path) -> Path:
    data = make_tree(tmp_path / "data", {"maze": 4})
    ddir = data / "questions" / "maze_task"
    (ddir / "notes.txt").write_text("stray")
    (ddir / "maze_12").mkdir()
    (ddir / "Maze_0009").mkdir()
    return data


# --- whole trees, across run boundaries, forked and not ---------------------------------------------

_VALIDATE = """
import json, os, sys
from vmeval_hf.tree import validate
validate._MIN_PER_JOB = validate._MAX_PER_JOB = int(sys.argv[3])
jobs = []
inner = validate.run_forked_as_done
def counting(js, n):
    def each():
        for job in js:
            jobs.append(job[0])
            yield job
    return inner(each(), n)
validate.run_forked_as_done = counting
r = validate.validate_tree(sys.argv[1], workers=int(sys.argv[2]), frame_cache=False, keep_questions=False)
print(json.dumps({"problems": [[p.path, p.code, p.message, p.severity, p.question] for p in r.problems],
                  "questions": r.questions, "ids": len(r.question_list), "folders": len(r.folders), "jobs": jobs}))
"""


def _validate(data: Path, workers: int, per_job: int, tmp: Path) -> dict:
    # in a fresh process: this one may run threads, and then nothing forks
    tmp.mkdir(exist_ok=True)
    proc = subprocess.run([sys.executable, "-c", _VALIDATE, str(data), str(workers), str(per_job)],
                          capture_output=True, text=True, timeout=120, cwd=REPO, env={**os.environ, "TMPDIR": str(tmp)})
    assert proc.returncode == 0, proc.stderr
    assert list(tmp.iterdir()) == []  # the records' folder is gone
    return json.loads(proc.stdout)


def _out_of_sync_tree(tmp_path: Path) -> Path:
    """Three domains; the manifest lists one folder twice, leaves one out, lists one that does not
    exist, gives another difficulty, and miscounts; a listed question is invalid; a domain has a
    stray file and a misnamed folder, and one holds an id past 9999 (natural and string order differ)."""
    data = make_tree(tmp_path / "data", {"chess": 5, "maze": 4, "sudoku": 3})
    q = data / "questions"
    shutil.copytree(q / "chess_task" / "chess_0002", q / "chess_task" / "chess_10000")
    meta = q / "chess_task" / "chess_10000" / "question_metadata.json"
    meta.write_text(meta.read_text(encoding="utf-8").replace("chess_0002", "chess_10000"), encoding="utf-8")
    doc = json.loads((q / DATASET_MANIFEST).read_text(encoding="utf-8"))
    entries = [e for e in doc["questions"] if e["id"] != "chess_0003"]
    entries.append(next(e for e in entries if e["id"] == "maze_0001"))
    entries.append({"id": "chess_0099", "domain": "chess", "difficulty": "easy", "path": "chess_task/chess_0099"})
    for e in entries:
        if e["id"] == "sudoku_0002":
            e["difficulty"] = "hard"
    doc["questions"] = entries
    (q / DATASET_MANIFEST).write_text(json.dumps(doc), encoding="utf-8")
    (q / "chess_task" / "chess_0001" / "prompt.txt").write_bytes(b"\xff")  # listed, invalid: has a folder
    (q / "maze_task" / "notes.txt").write_text("stray")
    (q / "maze_task" / "maze_12").mkdir()
    return data


def _expected(data: Path) -> list[list[object]]:
    """What the single-process, in-memory checks find (the build's path), in their order."""
    qdir = data / "questions"
    checker = Checker(qdir)
    report = checker.run()
    problems = report.problems + manifest_problems(qdir, checker.listed, report.folders) + data_folder_problems(data)
    return [[p.path, p.code, p.message, p.severity, p.question] for p in problems]


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("per_job", [2, 3, 1000])
def test_an_out_of_sync_tree_gives_the_in_memory_findings_across_runs(tmp_path: Path, workers: int,
                                                                      per_job: int) -> None:
    data = _out_of_sync_tree(tmp_path)
    expected = _expected(data)
    found = _validate(data, workers, per_job, tmp_path / "tmp")
    assert found["problems"] == expected
    assert found["questions"] == 12 and found["ids"] == 0 and found["folders"] == 0  # nothing kept per question
    codes = [(p[1], p[4]) for p in expected]
    for problem in [("manifest_duplicate_id", "maze_0001"), ("manifest_missing_question", "chess_task/chess_0003"),
                    ("manifest_missing_question", "chess_task/chess_10000"), ("manifest_lists_missing", "chess_0099"),
                    ("manifest_field_differs", "sudoku_task/sudoku_0002"), ("manifest_count_differs", None),
                    ("not_utf8", "chess_task/chess_0001"), ("bad_folder_name", "maze_task/maze_12")]:
        assert problem in codes, problem
    assert ("manifest_lists_missing", "chess_0001") not in codes
    if workers == 2:  # one job reads the manifest; the folders go in runs of per_job within each domain
        runs = sum(-(-n // per_job) for n in (6, 4, 3))
        assert found["jobs"] == ["the dataset manifest"] + ["questions of 'chess'"] * -(-6 // per_job) + \
            ["questions of 'maze'"] * -(-4 // per_job) + ["questions of 'sudoku'"] * -(-3 // per_job)
        assert len(found["jobs"]) == runs + 1


def test_a_tree_in_sync_across_runs_has_no_problems(tmp_path: Path) -> None:
    data = make_tree(tmp_path / "data", {"chess": 7, "maze": 5})
    found = _validate(data, 2, 2, tmp_path / "tmp")
    assert found["problems"] == [] and found["questions"] == 12


# --- the runner ------------------------------------------------------------------------------------


def _run_script(code: str) -> str:
    """Run ``code`` in a fresh interpreter; it must pass its own asserts and leave no child behind."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code) + textwrap.dedent("""
        try:
            os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            print("no children left")
    """)], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_run_forked_as_done_makes_each_job_when_a_worker_is_free_and_hands_on_each_result() -> None:
    out = _run_script("""
        import os, time
        from vmeval_hf._shared.forked import run_forked_as_done

        made = []
        def jobs():
            for i in range(6):
                made.append(i)
                yield f"job {i}", lambda i=i: (i, os.getpid(), time.sleep(0.3 if i == 0 else 0.02))
        seen = []
        for index, (i, pid, _) in run_forked_as_done(jobs(), 2):
            if not seen:
                assert len(made) <= 3, made  # two running, at most one more made once a worker was free
            seen.append((index, i, pid))
        assert sorted(s[0] for s in seen) == list(range(6)) and all(index == i for index, i, _ in seen)
        assert seen[0][0] != 0  # the first result in is not the first job's: it is slow
        assert os.getpid() not in {s[2] for s in seen} and len({s[2] for s in seen}) == 6
    """)
    assert out.strip() == "no children left"


def test_run_forked_as_done_closed_early_or_failing_leaves_no_child() -> None:
    out = _run_script("""
        import contextlib, os, time
        from vmeval_hf._shared.forked import run_forked_as_done

        def slow(i):
            time.sleep(0.05 if i == 0 else 30)
            return i
        with contextlib.closing(run_forked_as_done([(f"job {i}", lambda i=i: slow(i)) for i in range(4)], 2)) as done:
            assert next(done) == (0, 0)
        def bad():
            raise KeyError("missing thing")
        try:
            list(run_forked_as_done([("slow", lambda: time.sleep(30)), ("bad", bad)], 2))
        except KeyError as exc:
            assert "missing thing" in str(exc)
        else:
            raise AssertionError("not raised")
    """)
    assert out.strip() == "no children left"


# --- the build's checks, on the same records ----------------------------------------------------------

_BUILD = """
import json, sys
from vmeval_hf.errors import ValidationError
from vmeval_hf.release.build import build_release
try:
    build_release(sys.argv[1], sys.argv[2], version="1.0", workers=int(sys.argv[3]), frame_cache=False)
    print(json.dumps(None))
except ValidationError as exc:
    print(json.dumps([[p.path, p.code, p.message, p.severity, p.question] for p in exc.problems]))
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_the_build_refuses_an_out_of_sync_tree_with_the_in_memory_findings(tmp_path: Path, workers: int) -> None:
    """The build's tree-wide checks read each domain's listings into the records as its result
    comes in (forked or not) and store the manifest there: the findings are the in-memory ones,
    in their order, and nothing is left behind (no release, no records folder)."""
    data = _out_of_sync_tree(tmp_path)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.run([sys.executable, "-c", _BUILD, str(data), str(tmp_path / "release"), str(workers)],
                          capture_output=True, text=True, timeout=120, cwd=REPO, env={**os.environ, "TMPDIR": str(tmp)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == _expected(data)
    assert list(tmp.iterdir()) == [] and not (tmp_path / "release").exists()


def test_records_from_checks_that_ran_already_are_those_of_a_listing_then_marked_valid() -> None:
    """``add_checked`` (the build: a domain's folder names and its valid questions at once) gives
    the records ``add_domain`` then ``mark_valid`` give (validate): positions, validity, difficulty."""
    questions = [q for q in DISK if q.id in FOLDERS]
    with tree_records() as marked, tree_records() as checked:
        _fill(marked, questions, FOLDERS)
        by_domain: dict[str, list[str]] = {}
        for name in FOLDERS:
            by_domain.setdefault(name.rpartition("_")[0], []).append(name)
        for domain in sorted(by_domain):
            names = list(reversed(by_domain[domain]))  # any order
            assert checked.add_checked(domain, names, [q for q in questions if q.id in names]) == len(names)
        assert checked.order() == marked.spans
        query = "SELECT pos, domain, name, valid, difficulty FROM folders ORDER BY pos"
        assert checked.conn.execute(query).fetchall() == marked.conn.execute(query).fetchall()
        assert checked.valid_count() == len(questions) > 0
        assert len(checked.conn.execute("SELECT * FROM folders WHERE NOT valid").fetchall()) == \
            len(FOLDERS) - len(questions) > 0
