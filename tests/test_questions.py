"""Validation of the question tree: one test per problem, each naming the offending path.

Every case is a real folder built in a temporary directory; nothing is mocked.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.support.pngs import png_bytes, png_chunk, png_claiming
from tests.support.privileges import without_dac_override
from tests.support.trees import make_question, make_tree, plant_problems
from vmeval_hf import ValidationError
from vmeval_hf.release.build import build_release
from vmeval_hf.tree.model import MAX_VIDEO_BYTES, Problem, ValidationReport
from vmeval_hf.tree.validate import scan_questions, validate_tree

# --- helpers ---------------------------------------------------------------------------


def codes(report: ValidationReport) -> list[tuple[str, str]]:
    return [(p.path, p.code) for p in report.problems]


def only_error(report: ValidationReport, code: str, path: Path) -> Problem:
    """The report holds exactly one error, with ``code``, naming ``path``."""
    assert [(p.path, p.code) for p in report.errors] == [(str(path), code)], codes(report)
    assert not report.ok
    return report.errors[0]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A clean classic tree (chess x2, maze x1) with its manifest; returns the data dir."""
    return make_tree(tmp_path / "data", {"chess": 2, "maze": 1})


def q(data: Path, qid: str = "chess_0000") -> Path:
    return data / "questions" / f"{qid.rsplit('_', 1)[0]}_task" / qid


# --- clean trees -------------------------------------------------------------------------


def test_clean_classic_tree_has_no_problems(data_tree: Path) -> None:
    report = validate_tree(data_tree)
    assert report.problems == []
    assert report.ok
    assert [x.id for x in report.question_list] == [
        "chess_0000", "chess_0001", "chess_0002", "maze_0000", "maze_0001"]
    first = report.question_list[0]
    assert first.difficulty == "easy" and first.task_category == "Chess"
    assert first.final_frame == first.folder / "final_frame.png"
    assert json.loads(first.metadata_text or "")["id"] == "chess_0000"


def test_minimal_layout_without_metadata_or_final_frame_is_valid(tmp_path: Path) -> None:
    data = make_tree(tmp_path / "data", {"sudoku": 2}, classic=False, final=False)
    report = validate_tree(data)
    assert report.problems == []
    assert [(x.id, x.final_frame, x.metadata_text) for x in report.question_list] == [
        ("sudoku_0000", None, None), ("sudoku_0001", None, None)]


def test_optional_goal_and_video_are_read(tree: Path) -> None:
    folder = q(tree)
    (folder / "goal.txt").write_text("Checkmate.", encoding="utf-8")
    (folder / "ground_truth.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    question = scan_questions(tree)[0]
    assert question.goal == "Checkmate."
    assert question.ground_truth_video == folder / "ground_truth.mp4"


def test_a_video_over_the_limit_is_named_and_never_read(tree: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    video = q(tree) / "ground_truth.mp4"
    with open(video, "wb") as fh:
        fh.truncate(MAX_VIDEO_BYTES)  # sparse: no disk used; at the limit is fine
    assert validate_tree(tree).ok
    with open(video, "wb") as fh:
        fh.truncate(MAX_VIDEO_BYTES + 1)
    problem = only_error(validate_tree(tree), "too_large", video)
    assert f"{MAX_VIDEO_BYTES + 1} bytes" in problem.message and "256 MiB" in problem.message
    assert "re-encode it smaller" in problem.message

    read: list[int] = []  # the build names it too, before reading any of it
    real_read, real_readv = os.read, os.readv
    monkeypatch.setattr(os, "read", lambda fd, n: read.append(n) or real_read(fd, n))
    monkeypatch.setattr(os, "readv", lambda fd, bufs: read.append(sum(map(len, bufs))) or real_readv(fd, bufs))
    with pytest.raises(ValidationError) as info:
        build_release(tree, tmp_path / "release", version="1.0", workers=1)
    monkeypatch.undo()
    assert [(p.path, p.code) for p in info.value.problems if p.severity == "error"] == [(str(video), "too_large")]
    assert sum(read) < 2**20 and not (tmp_path / "release").exists()


def test_ids_sort_naturally(tmp_path: Path) -> None:
    qdir = tmp_path / "data" / "questions"
    for index in (10000, 9999, 2):
        make_question(qdir, "maze", index, classic=False)
    assert [x.id for x in scan_questions(tmp_path / "data")] == ["maze_0002", "maze_9999", "maze_10000"]


def test_scan_questions_raises_with_every_problem_attached(tree: Path) -> None:
    (q(tree) / "prompt.txt").unlink()
    (q(tree, "maze_0000") / "first_frame.png").unlink()
    with pytest.raises(ValidationError) as info:
        scan_questions(tree)
    assert {p.code for p in info.value.problems} == {"missing_file"}
    assert len(info.value.problems) == 2
    assert "vmeval-hf validate" in str(info.value)


# --- required files ----------------------------------------------------------------------


@pytest.mark.parametrize("classic", [True, False], ids=["classic", "minimal"])
@pytest.mark.parametrize("name", ["first_frame.png", "prompt.txt"])
def test_missing_required_file(tmp_path: Path, name: str, classic: bool) -> None:
    data = make_tree(tmp_path / "data", {"chess": 1}, classic=classic, final=classic)
    (q(data) / name).unlink()
    problem = only_error(validate_tree(data), "missing_file", q(data) / name)
    assert name in problem.message
    assert problem.question == "chess_task/chess_0000"


def test_missing_final_frame_in_classic_layout(tree: Path) -> None:
    (q(tree) / "final_frame.png").unlink()
    only_error(validate_tree(tree), "missing_file", q(tree) / "final_frame.png")


# --- prompt text ---------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"  \n\t\n"], ids=["empty", "blank"])
def test_empty_prompt(tree: Path, content: bytes) -> None:
    (q(tree) / "prompt.txt").write_bytes(content)
    only_error(validate_tree(tree), "empty_prompt", q(tree) / "prompt.txt")


def test_non_utf8_prompt(tree: Path) -> None:
    (q(tree) / "prompt.txt").write_bytes("Déplacez la reine.".encode("latin-1"))
    problem = only_error(validate_tree(tree), "not_utf8", q(tree) / "prompt.txt")
    assert "byte 1" in problem.message


def test_oversized_prompt(tree: Path) -> None:
    (q(tree) / "prompt.txt").write_bytes(b"a" * (64 * 1024 + 1))
    only_error(validate_tree(tree), "too_large", q(tree) / "prompt.txt")


# --- images ----------------------------------------------------------------------------------


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("content", [_jpeg(), b"not an image at all", b""], ids=["jpeg", "text", "empty"])
def test_file_named_png_that_is_not_png(tree: Path, content: bytes) -> None:
    (q(tree) / "first_frame.png").write_bytes(content)
    only_error(validate_tree(tree), "not_png", q(tree) / "first_frame.png")


@pytest.mark.parametrize("keep", [0.5, -12], ids=["half", "no-IEND"])
def test_truncated_png(tree: Path, keep: float) -> None:
    data = png_bytes(7)
    cut = data[: int(len(data) * keep)] if keep > 0 else data[: int(keep)]
    (q(tree) / "final_frame.png").write_bytes(cut)
    only_error(validate_tree(tree), "bad_image", q(tree) / "final_frame.png")


def test_png_with_corrupt_pixel_data_and_valid_checksums(tree: Path) -> None:
    data = png_bytes(7)
    at = data.index(b"IDAT")
    (length,) = struct.unpack(">I", data[at - 4:at])
    junk = png_chunk(b"IDAT", b"\x00" * length)[4:]  # same length, correct CRC, not a zlib stream
    (q(tree) / "first_frame.png").write_bytes(data[:at] + junk + data[at + 4 + length + 4:])
    only_error(validate_tree(tree), "bad_image", q(tree) / "first_frame.png")


@pytest.mark.parametrize("side", [8000, 10000, 20000])  # below, at and far over Pillow's own bomb limits
def test_png_decompression_bomb(tree: Path, side: int) -> None:
    bomb = png_claiming(side, side)
    assert len(bomb) < 200
    (q(tree) / "first_frame.png").write_bytes(bomb)
    problem = only_error(validate_tree(tree), "image_too_large", q(tree) / "first_frame.png")
    assert "40000000" in problem.message


# --- metadata ----------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b'{"id": "chess_0000",', b"[1, 2, 3]", b"\xff{}"],
                         ids=["syntax", "not-object", "not-utf8"])
def test_invalid_json_metadata(tree: Path, content: bytes) -> None:
    (q(tree) / "question_metadata.json").write_bytes(content)
    report = validate_tree(tree)
    assert [(p.path, p.code in {"invalid_json", "not_utf8"}) for p in report.errors] == [
        (str(q(tree) / "question_metadata.json"), True)]


def test_deeply_nested_json_metadata(tree: Path) -> None:
    depth = 100_000
    (q(tree) / "question_metadata.json").write_text("[" * depth + "]" * depth, encoding="utf-8")
    problem = only_error(validate_tree(tree), "invalid_json", q(tree) / "question_metadata.json")
    assert "nested" in problem.message


@pytest.mark.parametrize(("key", "value"), [("id", "chess_0009"), ("id", "CHESS_0000"), ("domain", "maze")])
def test_metadata_disagrees_with_folder(tree: Path, key: str, value: str) -> None:
    path = q(tree) / "question_metadata.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta[key] = value
    path.write_text(json.dumps(meta), encoding="utf-8")
    problem = only_error(validate_tree(tree), f"metadata_{key}_mismatch", path)
    assert repr(value) in problem.message


def test_duplicate_id_in_metadata_is_caught(tree: Path) -> None:
    """The folder name is the id, so a duplicate can only be claimed in metadata: it is refused there."""
    path = q(tree, "chess_0001") / "question_metadata.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta["id"] = "chess_0000"
    path.write_text(json.dumps(meta), encoding="utf-8")
    only_error(validate_tree(tree), "metadata_id_mismatch", path)


def test_metadata_prompt_differing_from_prompt_txt_is_a_warning(tree: Path) -> None:
    (q(tree) / "prompt.txt").write_text("Another prompt.", encoding="utf-8")
    report = validate_tree(tree)
    assert report.ok
    assert codes(report) == [(str(q(tree) / "question_metadata.json"), "prompt_mismatch")]
    assert report.question_list[0].prompt == "Another prompt."


# --- folder names ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "chess_ 0001",            # space
    "chess_0001 ",            # trailing space
    "chess_0001\n",           # trailing newline (a `$` regex lets this through)
    "\u0441hess_0001",        # Cyrillic "с"
    "chess_000\u0661",        # Arabic-Indic digit one
    "chess_\uff11\uff12\uff13\uff14",  # fullwidth digits
    "chess_0001..",
    "..chess_0001",
    "chess_001",              # too few digits
    "Chess_0001",             # uppercase
    "CHESS_0001",
    "maze_0001",              # another domain's name
    "chess_0001_v2",
])
def test_bad_question_folder_name(tree: Path, name: str) -> None:
    folder = tree / "questions" / "chess_task" / name
    folder.mkdir()
    (folder / "first_frame.png").write_bytes(png_bytes())
    (folder / "prompt.txt").write_text("x", encoding="utf-8")
    problem = only_error(validate_tree(tree), "bad_folder_name", folder)
    assert "chess_NNNN" in problem.message


@pytest.mark.parametrize("name", [
    "Chess_task", "chess task", "ch\u0435ss_task", "chess_task\n", "chess_Task", "chess-task", "..task",
])
def test_bad_domain_folder_name(tree: Path, name: str) -> None:
    make_question(tree / "questions" / "tmp", "rook", 1)
    ddir = tree / "questions" / name
    (tree / "questions" / "tmp" / "rook_task").rename(ddir)
    (tree / "questions" / "tmp").rmdir()
    only_error(validate_tree(tree), "bad_folder_name", ddir)


# --- symlinks and special files ----------------------------------------------------------------


def test_symlink_pointing_outside_the_data_root(tree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(png_bytes(3))
    link = q(tree) / "first_frame.png"
    link.unlink()
    link.symlink_to(outside)
    problem = only_error(validate_tree(tree), "path_escape", link)
    assert str(outside) in problem.message


def test_symlinked_domain_folder_outside_the_root(tree: Path, tmp_path: Path) -> None:
    make_question(tmp_path / "other", "rook", 1)
    link = tree / "questions" / "rook_task"
    link.symlink_to(tmp_path / "other" / "rook_task")
    report = validate_tree(tree)
    assert {(p.path, p.code) for p in report.errors} == {(str(link), "path_escape"),
                                                         (str(link), "symlinked_folder")}


def test_symlinked_question_folder(tree: Path) -> None:
    link = tree / "questions" / "chess_task" / "chess_0005"
    link.symlink_to(q(tree))
    only_error(validate_tree(tree), "symlinked_folder", link)


@pytest.mark.parametrize("hops", [1, 2])
def test_symlink_loop(tree: Path, hops: int) -> None:
    link = q(tree) / "prompt.txt"
    link.unlink()
    if hops == 1:
        link.symlink_to(link)
    else:
        other = q(tree) / "goal.txt"
        other.symlink_to(link)
        link.symlink_to(other)
    report = validate_tree(tree)
    assert (str(link), "broken_symlink") in [(p.path, p.code) for p in report.errors]
    assert {p.code for p in report.errors} == {"broken_symlink"}


@pytest.mark.timeout(10)
@pytest.mark.parametrize("name", ["prompt.txt", "first_frame.png", "question_metadata.json"])
def test_fifo_is_not_opened(tree: Path, name: str) -> None:
    path = q(tree) / name
    path.unlink()
    os.mkfifo(path)
    problem = only_error(validate_tree(tree), "not_a_file", path)
    assert "FIFO" in problem.message


def test_folder_where_a_file_belongs(tree: Path) -> None:
    path = q(tree) / "prompt.txt"
    path.unlink()
    path.mkdir()
    only_error(validate_tree(tree), "not_a_file", path)


_UNREADABLE = """
import json, os, sys
from vmeval_hf.release.build import build_release
from vmeval_hf.errors import ValidationError
from vmeval_hf.tree.validate import validate_tree
data, out = sys.argv[1:]
found = [(p.path, p.code) for p in validate_tree(data).errors]
try:
    build_release(data, out, version="1.0")
    refused = []
except ValidationError as exc:
    refused = [(p.path, p.code) for p in exc.problems if p.severity == "error"]
print(json.dumps([found, refused, os.path.exists(out)]))
"""


def test_unreadable_file(tree: Path, tmp_path: Path) -> None:
    # in a process that cannot override file permissions, even when the suite runs as root
    path = q(tree) / "prompt.txt"
    path.chmod(0)
    try:
        proc = subprocess.run([sys.executable, "-c", _UNREADABLE, str(tree), str(tmp_path / "release")],
                              capture_output=True, text=True, timeout=120, preexec_fn=without_dac_override)
    finally:
        path.chmod(0o644)
    assert proc.returncode == 0, proc.stderr
    found, refused, written = json.loads(proc.stdout)
    assert found == refused == [[str(path), "unreadable"]]  # validate and build both name it
    assert not written


# --- warnings and empty trees --------------------------------------------------------------------


def test_stray_files_are_warnings_only(tree: Path) -> None:
    strays = [q(tree) / "notes.txt", tree / "questions" / "chess_task" / ".DS_Store",
              tree / "questions" / "README.md"]
    for path in strays:
        path.write_text("x", encoding="utf-8")
    report = validate_tree(tree)
    assert report.ok and report.questions == 3
    assert sorted(codes(report)) == sorted((str(p), "stray_file") for p in strays)
    assert {p.severity for p in report.problems} == {"warning"}


@pytest.mark.parametrize("layout", ["no-domains", "empty-domain"])
def test_empty_question_tree(tmp_path: Path, layout: str) -> None:
    qdir = tmp_path / "data" / "questions"
    qdir.mkdir(parents=True)
    if layout == "empty-domain":
        (qdir / "chess_task").mkdir()
    report = validate_tree(tmp_path / "data")
    assert [(p.path, p.code) for p in report.errors] == [(str(qdir), "empty_tree")]


def test_missing_questions_folder(tmp_path: Path) -> None:
    only_error(validate_tree(tmp_path / "nowhere"), "missing_questions_dir", tmp_path / "nowhere" / "questions")


# --- outputs/ and evaluations/ --------------------------------------------------------------------


def test_outputs_and_evaluations_layout_warnings(tree: Path) -> None:
    good = tree / "outputs" / "exp" / "model" / "chess_task" / "chess_0000" / "video.mp4"
    good.parent.mkdir(parents=True)
    good.write_bytes(b"\x00")
    loose = tree / "outputs" / "exp" / "notes.txt"
    loose.write_text("x", encoding="utf-8")
    ev = tree / "evaluations" / "exp" / "model" / "chess_task" / "chess_0000"
    ev.mkdir(parents=True)
    (ev / "GPT4OEvaluator.json").write_text('{"score": 1}', encoding="utf-8")
    (ev / "human-eval.json").write_text("{not json", encoding="utf-8")
    (tree / "evaluations" / "summary.csv").write_text("a,b\n", encoding="utf-8")
    report = validate_tree(tree)
    assert report.ok
    assert sorted(codes(report)) == sorted([
        (str(loose), "outputs_layout"),
        (str(ev / "human-eval.json"), "evaluation_invalid_json"),
        (str(tree / "evaluations" / "summary.csv"), "evaluations_layout"),
    ])


def test_symlink_escaping_from_outputs_is_an_error(tree: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text("{}", encoding="utf-8")
    folder = tree / "evaluations" / "exp" / "model" / "chess_task" / "chess_0000"
    folder.mkdir(parents=True)
    (folder / "eval.json").symlink_to(secret)
    only_error(validate_tree(tree), "path_escape", folder / "eval.json")


@pytest.mark.timeout(10)
def test_fifo_in_evaluations_is_reported_not_read(tree: Path) -> None:
    folder = tree / "evaluations" / "exp" / "model" / "chess_task" / "chess_0000"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "eval.json")
    report = validate_tree(tree)
    assert report.ok
    assert codes(report) == [(str(folder / "eval.json"), "not_a_file")]


# --- every problem in one run ----------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_every_planted_problem_is_found_in_one_run(tmp_path: Path) -> None:
    outside = tmp_path / "outside.png"
    outside.write_bytes(png_bytes())
    expected = plant_problems(tmp_path / "data", outside)
    assert len(expected) == 14
    report = validate_tree(tmp_path / "data")
    assert {(p.path, p.code) for p in report.errors} == expected
    assert len(report.errors) == len(expected)
    assert [x.id for x in report.question_list] == ["maze_0000", "maze_0001"]
    assert [p.code for p in report.warnings] == ["manifest_missing"]


# --- scale ------------------------------------------------------------------------------------------


def test_a_few_thousand_questions_open_each_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Work stays linear at scale: 3000 questions, every file opened exactly once. (Speed itself is
    measured by scripts/bench_build.py, not here.)"""
    first = png_bytes(1)
    qdir = tmp_path / "data" / "questions"
    for domain in ("chess", "maze", "raven"):
        for i in range(1000):
            folder = qdir / f"{domain}_task" / f"{domain}_{i:04d}"
            folder.mkdir(parents=True)
            (folder / "first_frame.png").write_bytes(first)
            (folder / "prompt.txt").write_bytes(b"Solve it.")
    opened: list[str] = []
    real_open = os.open

    def counting_open(path: str, *args: int, **kwargs: int) -> int:
        opened.append(os.fsdecode(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", counting_open)
    report = validate_tree(tmp_path / "data")
    monkeypatch.undo()
    assert report.ok and report.questions == 3000
    files = sorted(str(p) for p in qdir.rglob("*") if p.is_file())
    assert sorted(opened) == files
