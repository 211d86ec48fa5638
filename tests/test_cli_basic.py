"""The CLI surface for the question tree: ``validate``, ``manifest``, ``--version``, ``--help``.

Real commands through click's ``CliRunner`` on real folders; results checked through
exit codes, JSON output and the library.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.support.pngs import png_bytes
from tests.support.trees import make_question, make_tree, plant_problems
from vmeval_hf import check_manifest
from vmeval_hf._shared.meta import __version__
from vmeval_hf.cli import cli

PROBLEM_KEYS = {"path", "code", "message", "severity"}


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def as_json(result: Result) -> list[dict[str, str]]:
    data = json.loads(result.stdout)
    assert isinstance(data, list)
    for item in data:
        assert set(item) == PROBLEM_KEYS
        assert item["severity"] in {"error", "warning"}
    return data


# --- group ---------------------------------------------------------------------------------------


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"vmeval-hf, version {__version__}"


def test_help_lists_the_question_commands() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for command in ("validate", "manifest"):
        assert command in result.stdout
    assert run("validate", "--help").exit_code == 0


def test_usage_error_exits_2() -> None:
    assert run("validate", "--no-such-option").exit_code == 2
    assert run("no-such-command").exit_code == 2


def _imported_modules(code: str) -> set[str]:
    heavy = ("datasets", "pyarrow", "boto3", "botocore", "huggingface_hub")
    probe = (f"import json, sys\n{code}\n"
             f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r}))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         timeout=60).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_import_and_help_do_not_load_heavy_libraries() -> None:
    assert _imported_modules("import vmeval_hf") == set()
    help_code = ("from vmeval_hf.cli import cli\n"
                 "try:\n    cli(['--help'], prog_name='vmeval-hf')\nexcept SystemExit:\n    pass")
    assert _imported_modules(help_code) == set()


# --- validate --------------------------------------------------------------------------------------


def test_validate_clean_tree_exits_0(data_tree: Path) -> None:
    result = run("validate", "--data-dir", data_tree)
    assert result.exit_code == 0
    assert result.stdout.strip().splitlines()[-1].startswith("OK: 5 questions, 0 errors, 0 warnings (frames: ")
    # the frames are known good now: a second run inflates none of them, unless asked to
    again = run("validate", "--data-dir", data_tree).stdout.strip().splitlines()[-1]
    assert again == "OK: 5 questions, 0 errors, 0 warnings (frames: 0 checked, 10 passed before)"
    recheck = run("validate", "--data-dir", data_tree, "--no-frame-cache").stdout.strip().splitlines()[-1]
    assert recheck == "OK: 5 questions, 0 errors, 0 warnings (frames: 10 checked, 0 passed before)"
    json_result = run("validate", "--data-dir", data_tree, "--json")
    assert json_result.exit_code == 0
    assert as_json(json_result) == []


def test_validate_warnings_only_exits_0(data_tree: Path) -> None:
    stray = data_tree / "questions" / "chess_task" / "chess_0000" / "notes.txt"
    stray.write_text("scratch", encoding="utf-8")
    result = run("validate", "--data-dir", data_tree)
    assert result.exit_code == 0
    assert "WARNING stray_file: notes.txt: not part of a question" in result.stdout
    assert "OK: 5 questions, 0 errors, 1 warnings" in result.stdout
    assert as_json(run("validate", "--data-dir", data_tree, "--json")) == [
        {"path": str(stray), "code": "stray_file", "severity": "warning",
         "message": "not part of a question; it is ignored (move it elsewhere)"}]


def test_validate_error_exits_1_and_names_the_file(data_tree: Path) -> None:
    prompt = data_tree / "questions" / "maze_task" / "maze_0001" / "prompt.txt"
    prompt.write_bytes(b"\xff")
    result = run("validate", "--data-dir", data_tree)
    assert result.exit_code == 1
    assert "maze_task/maze_0001:" in result.stdout
    assert "ERROR   not_utf8: prompt.txt: prompt is not UTF-8" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("FAILED: 4 questions, 1 errors, 0 warnings")
    json_result = run("validate", "--data-dir", data_tree, "--json")
    assert json_result.exit_code == 1
    assert [(p["path"], p["code"], p["severity"]) for p in as_json(json_result)] == [
        (str(prompt), "not_utf8", "error")]


@pytest.mark.timeout(20)
def test_validate_lists_every_planted_problem_in_one_run(tmp_path: Path) -> None:
    outside = tmp_path / "outside.png"
    outside.write_bytes(png_bytes())
    expected = plant_problems(tmp_path / "data", outside)
    result = run("validate", "--data-dir", tmp_path / "data", "--json")
    assert result.exit_code == 1
    problems = as_json(result)
    assert {(p["path"], p["code"]) for p in problems if p["severity"] == "error"} == expected
    assert sum(p["severity"] == "error" for p in problems) == len(expected) == 14
    human = run("validate", "--data-dir", tmp_path / "data")
    assert human.exit_code == 1
    assert f"{len(expected)} errors" in human.stdout
    shown, group = [], ""
    for line in human.stdout.splitlines():
        if line.startswith("  "):
            shown.append(f"{group} {line}")
        else:
            group = line
    for path, code in expected:  # every problem says which file, even inside a question's group
        assert any(code in line and Path(path).name in line for line in shown), (path, code)
    assert "  ERROR   bad_image: first_frame.png: PNG is truncated" in human.stdout
    assert "  ERROR   image_too_large: final_frame.png: image is 20000x20000 pixels" in human.stdout


def test_validate_missing_data_dir(tmp_path: Path) -> None:
    result = run("validate", "--data-dir", tmp_path / "nowhere", "--json")
    assert result.exit_code == 1
    assert [p["code"] for p in as_json(result)] == ["missing_questions_dir"]


def test_validate_default_data_dir_is_data_in_the_working_dir(data_tree: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(data_tree.parent)
    result = run("validate")
    assert result.exit_code == 0, result.output


def test_debug_validate(data_tree: Path) -> None:
    result = run("--debug", "validate", "--data-dir", data_tree)
    assert result.exit_code == 0
    assert "OK: 5 questions" in result.stdout


# --- manifest ----------------------------------------------------------------------------------------


def test_manifest_writes_deterministically(tmp_path: Path) -> None:
    data = make_tree(tmp_path / "data", {"chess": 2, "rotation": 1}, manifest=False)
    path = data / "questions" / "vmeval_dataset.json"
    result = run("manifest", "--data-dir", data)
    assert result.exit_code == 0
    assert result.stdout.strip() == f"wrote {path} (3 questions)"
    first = path.read_bytes()
    again = run("manifest", "--data-dir", data, "--json")
    assert again.exit_code == 0
    assert json.loads(again.stdout) == {"path": str(path), "total_questions": 3,
                                        "domains": {"chess": 2, "rotation": 1}}
    assert path.read_bytes() == first
    assert check_manifest(data) == []


def test_manifest_check_in_sync_and_drift(data_tree: Path) -> None:
    result = run("manifest", "--data-dir", data_tree, "--check")
    assert result.exit_code == 0
    assert result.stdout.strip() == "manifest in sync"
    assert as_json(run("manifest", "--data-dir", data_tree, "--check", "--json")) == []

    make_question(data_tree / "questions", "maze", 2)
    drift = run("manifest", "--data-dir", data_tree, "--check")
    assert drift.exit_code == 1
    assert "maze_task/maze_0002" in drift.stdout
    drift_json = run("manifest", "--data-dir", data_tree, "--check", "--json")
    assert drift_json.exit_code == 1
    assert [p["code"] for p in as_json(drift_json)] == ["manifest_missing_question"]

    assert run("manifest", "--data-dir", data_tree).exit_code == 0
    assert run("manifest", "--data-dir", data_tree, "--check").exit_code == 0


def test_manifest_check_without_a_manifest_exits_1(tmp_path: Path) -> None:
    data = make_tree(tmp_path / "data", {"chess": 1}, manifest=False)
    result = run("manifest", "--data-dir", data, "--check", "--json")
    assert result.exit_code == 1
    assert [(p["code"], p["severity"]) for p in as_json(result)] == [("manifest_missing", "error")]


def test_manifest_refuses_a_broken_tree_with_one_error_line(data_tree: Path) -> None:
    path = data_tree / "questions" / "vmeval_dataset.json"
    before = path.read_bytes()
    first = data_tree / "questions" / "chess_task" / "chess_0001" / "first_frame.png"
    first.write_bytes(b"nope")
    result = run("manifest", "--data-dir", data_tree)
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ERROR: {first}: ")
    assert "Traceback" not in result.stderr
    assert path.read_bytes() == before

    debug = run("--debug", "manifest", "--data-dir", data_tree)
    assert debug.exit_code == 1
    assert "Traceback" in debug.stderr
