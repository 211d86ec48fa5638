"""Question generation: determinism, answers re-verified by independent code, layout, CLI.

The checkers below deliberately share no code with ``vmeval_hf.generate``: each puzzle
is re-solved from its stored metadata alone (python-chess from the FEN, BFS over the
stored maze grid, a brute-force Sudoku counter, the Raven rules re-applied).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter, deque
from pathlib import Path
from typing import Any

import chess
import pytest
from click.testing import CliRunner
from PIL import Image

from tests.support.files import snapshot
from vmeval_hf.cli import cli
from vmeval_hf.errors import ConfigError, ValidationError, VmevalError
from vmeval_hf.generate import DOMAINS, create_dataset, domain_seed
from vmeval_hf.tree.validate import validate_tree

PAIRS = 6  # two of each difficulty per domain with --difficulty mixed
SEED = 1234
REPO = Path(__file__).resolve().parent.parent


def load_questions(root: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(root.glob("*_task/*/question_metadata.json"))]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "questions"
    create_dataset(out, pairs_per_domain=PAIRS, seed=SEED)
    return out


@pytest.fixture(scope="module")
def questions(dataset: Path) -> list[dict[str, Any]]:
    return load_questions(dataset)


def by_domain(questions: list[dict[str, Any]], domain: str) -> list[dict[str, Any]]:
    found = [q for q in questions if q["domain"] == domain]
    assert len(found) == PAIRS
    return found


# --- determinism ----------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_in_another_process(dataset: Path, tmp_path: Path) -> None:
    """A second run in a fresh interpreter with a different string-hash salt writes the same bytes."""
    out = tmp_path / "again"
    code = ("import sys; from vmeval_hf.generate import create_dataset; "
            f"create_dataset(sys.argv[1], pairs_per_domain={PAIRS}, seed={SEED})")
    env = {**os.environ, "PYTHONHASHSEED": "987"}
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, env=env, cwd=tmp_path, timeout=120)
    first, second = snapshot(dataset), snapshot(out)
    assert len(first) == 5 * PAIRS * 4 + 1
    assert first == second


def test_domain_seed_is_sha256_of_seed_and_domain() -> None:
    digest = hashlib.sha256(b"42:chess").digest()
    assert domain_seed(42, "chess") == int.from_bytes(digest[:8], "big")
    assert domain_seed(42, "chess") != domain_seed(43, "chess") != domain_seed(42, "maze")


def test_another_seed_gives_other_puzzles(tmp_path: Path, questions: list[dict[str, Any]]) -> None:
    create_dataset(tmp_path / "q", pairs_per_domain=2, domains=["chess"], seed=SEED + 1)
    other = {q["chess_data"]["initial_fen"] for q in load_questions(tmp_path / "q")}
    mine = {q["chess_data"]["initial_fen"] for q in by_domain(questions, "chess")}
    assert not other & mine


def test_no_wall_clock_in_files(questions: list[dict[str, Any]], dataset: Path) -> None:
    assert all("created_at" not in q for q in questions)
    manifest = json.loads((dataset / "vmeval_dataset.json").read_text(encoding="utf-8"))
    assert "created_at" not in manifest
    assert manifest["generation_info"]["random_seed"] == SEED
    assert manifest["generation_info"]["pairs_per_domain"] == PAIRS


# --- layout ---------------------------------------------------------------------------


def test_tree_validates_and_manifest_lists_every_folder(dataset: Path) -> None:
    report = validate_tree(questions_dir=dataset, check_data_folders=False)
    assert report.ok, report.errors
    assert not report.warnings
    assert report.questions == 5 * PAIRS
    manifest = json.loads((dataset / "vmeval_dataset.json").read_text(encoding="utf-8"))
    folders = {p.name for p in dataset.glob("*_task/*")}
    assert {q["id"] for q in manifest["questions"]} == folders
    assert manifest["total_pairs"] == 5 * PAIRS


def test_question_files_and_fields(dataset: Path, questions: list[dict[str, Any]]) -> None:
    categories = {"chess": "Chess", "maze": "Maze", "sudoku": "Sudoku", "rotation": "3D Mental Rotation",
                  "raven": "AbstractReasoning"}
    for q in questions:
        folder = dataset / f"{q['domain']}_task" / q["id"]
        assert q["id"] == f"{q['domain']}_{int(q['id'].rsplit('_', 1)[1]):04d}"
        assert q["first_image_path"] == f"{q['domain']}_task/{q['id']}/first_frame.png"
        assert q["final_image_path"] == f"{q['domain']}_task/{q['id']}/final_frame.png"
        assert q["task_category"] == categories[q["domain"]]
        assert f"{q['domain']}_data" in q
        prompt = (folder / "prompt.txt").read_bytes()
        assert prompt == q["prompt"].encode("utf-8") and not prompt.endswith(b"\n")
        for name in ("first_frame.png", "final_frame.png"):
            data = (folder / name).read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
            assert b"tEXt" not in data and b"tIME" not in data and b"iTXt" not in data
            with Image.open(folder / name) as im:
                assert im.mode == "RGB"
                assert 400 <= im.width <= 900 and 400 <= im.height <= 900
        with Image.open(folder / "first_frame.png") as a, Image.open(folder / "final_frame.png") as b:
            assert a.size == b.size and a.tobytes() != b.tobytes()


def test_mixed_spreads_difficulties_evenly(questions: list[dict[str, Any]]) -> None:
    for domain in DOMAINS:
        assert Counter(q["difficulty"] for q in by_domain(questions, domain)) == {
            "easy": PAIRS // 3, "medium": PAIRS // 3, "hard": PAIRS // 3}


def test_prompts_match_upstream_wording(questions: list[dict[str, Any]]) -> None:
    for q in by_domain(questions, "chess"):
        side = q["side_to_move"].capitalize()
        assert q["prompt"] == f"{side} can deliver checkmate in one move. Show the winning move."
    for q in by_domain(questions, "rotation"):
        assert "rotation. Create" in q["prompt"] or "above). Create" in q["prompt"]  # the upstream typo is fixed
    for q in by_domain(questions, "sudoku"):
        n = q["sudoku_data"]["grid_size"]
        assert q["prompt"].startswith(f"Solve this {n}x{n} Sudoku puzzle.")


# --- independent answer checks ----------------------------------------------------------


def test_chess_every_listed_move_mates_and_none_is_missing(questions: list[dict[str, Any]]) -> None:
    positions = []
    for q in by_domain(questions, "chess"):
        data = q["chess_data"]
        board = chess.Board(data["initial_fen"])
        assert board.is_valid()
        assert not board.is_game_over()
        assert q["side_to_move"] == ("white" if board.turn else "black")
        for san in q["mate_moves"]:
            move = board.parse_san(san)  # raises if illegal
            after = board.copy()
            after.push(move)
            assert after.is_checkmate(), (q["id"], san)
        all_mates = set()
        for move in list(board.legal_moves):
            after = board.copy()
            after.push(move)
            if after.is_checkmate():
                all_mates.add(board.san(move))
        assert all_mates == set(q["mate_moves"]) == set(data["mate_moves"])
        final = board.copy()
        final.push_san(data["final_move"])
        assert final.board_fen() == chess.Board(data["final_fen"]).board_fen()
        positions.append(board.board_fen() + str(board.turn))
        if q["difficulty"] == "easy":
            assert len(board.piece_map()) <= 6
        if q["difficulty"] == "hard":
            assert len(board.piece_map()) >= 10 and len(all_mates) == 1
    assert len(set(positions)) == len(positions), "duplicate chess positions"


def _maze_open(grid: list[str], r: int, c: int, dr: int, dc: int) -> bool:
    return grid[2 * r + 1 + dr][2 * c + 1 + dc] != "#"


def test_maze_is_perfect_and_path_is_shortest(questions: list[dict[str, Any]]) -> None:
    sizes: dict[str, list[int]] = {}
    for q in by_domain(questions, "maze"):
        grid = q["maze_data"]["grid"]
        rows, cols = q["maze_size"]
        assert len(grid) == 2 * rows + 1 and {len(line) for line in grid} == {2 * cols + 1}
        assert all(ch == "#" for ch in grid[0] + grid[-1]) and all(line[0] == line[-1] == "#" for line in grid)
        passages = sum(_maze_open(grid, r, c, 0, 1) for r in range(rows) for c in range(cols - 1))
        passages += sum(_maze_open(grid, r, c, 1, 0) for r in range(rows - 1) for c in range(cols))
        assert passages == rows * cols - 1  # a tree has cells - 1 edges
        start, end = tuple(q["start_pos"]), tuple(q["end_pos"])
        dist = {start: 0}
        queue = deque([start])
        while queue:
            r, c = queue.popleft()
            for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0)):
                if _maze_open(grid, r, c, dr, dc) and (r + dr, c + dc) not in dist:
                    dist[(r + dr, c + dc)] = dist[(r, c)] + 1
                    queue.append((r + dr, c + dc))
        assert len(dist) == rows * cols  # connected
        path = [tuple(p) for p in q["maze_data"]["solution_path"]]
        assert path[0] == start and path[-1] == end and start != end
        for (r0, c0), (r1, c1) in zip(path, path[1:]):
            assert abs(r0 - r1) + abs(c0 - c1) == 1 and _maze_open(grid, r0, c0, r1 - r0, c1 - c0)
        assert len(path) - 1 == dist[end]
        assert q["solution_length"] == len(path)
        sizes.setdefault(q["difficulty"], []).append(rows)
    assert max(sizes["easy"]) < min(sizes["medium"]) <= max(sizes["medium"]) < min(sizes["hard"])


def _count_sudoku(grid: list[int], n: int, limit: int = 3) -> int:
    box = int(n ** 0.5)
    try:
        i = grid.index(0)
    except ValueError:
        return 1
    r, c = divmod(i, n)
    total = 0
    for d in range(1, n + 1):
        if any(grid[r * n + k] == d or grid[k * n + c] == d for k in range(n)):
            continue
        br, bc = r - r % box, c - c % box
        if any(grid[(br + a) * n + bc + b] == d for a in range(box) for b in range(box)):
            continue
        grid[i] = d
        total += _count_sudoku(grid, n, limit - total)
        grid[i] = 0
        if total >= limit:
            break
    return total


def test_sudoku_has_exactly_one_solution(questions: list[dict[str, Any]]) -> None:
    for q in by_domain(questions, "sudoku"):
        puzzle = [v for row in q["puzzle_array"] for v in row]
        solution = [v for row in q["solution_array"] for v in row]
        n = len(q["puzzle_array"])
        assert n in (4, 9) and q["sudoku_data"]["grid_size"] == n
        assert [v or 0 for v in q["sudoku_data"]["puzzle"]] == puzzle
        assert all(p in (0, s) for p, s in zip(puzzle, solution))
        assert sum(1 for v in puzzle if v) == q["num_given"]
        assert _count_sudoku(list(puzzle), n) == 1
        box = int(n ** 0.5)
        digits = set(range(1, n + 1))
        for k in range(n):  # the stored solution is complete and breaks no rule
            assert {solution[k * n + j] for j in range(n)} == digits
            assert {solution[j * n + k] for j in range(n)} == digits
            br, bc = (k // box) * box, (k % box) * box
            assert {solution[(br + a) * n + bc + b] for a in range(box) for b in range(box)} == digits
        assert any(v == 0 for v in puzzle)


def test_sudoku_difficulty_follows_givens(questions: list[dict[str, Any]]) -> None:
    for size in (4, 9):
        ranks = {"easy": 0, "medium": 1, "hard": 2}
        seen = sorted((ranks[q["difficulty"]], -q["num_given"]) for q in by_domain(questions, "sudoku")
                      if q["sudoku_data"]["grid_size"] == size)
        assert [g for _, g in seen] == sorted(g for _, g in seen)  # harder never has more givens


def _next_value(rule: dict[str, Any], a: Any, b: Any) -> Any:
    if rule["kind"] == "constant":
        assert a == b == rule["value"]
        return b
    if rule["kind"] == "distribute_three":
        rest = [v for v in rule["values"] if v != a and v != b]
        assert len(rest) == 1
        return rest[0]
    assert rule["kind"] == "progression"
    if rule["attribute"] == "rotation":
        assert (b - a) % 360 == rule["step"] % 360
        return (b + rule["step"]) % 360
    if "scale" in rule:
        scale = rule["scale"]
        assert scale.index(b) - scale.index(a) == rule["step"]
        return scale[scale.index(b) + rule["step"]]
    assert b - a == rule["step"]
    return b + rule["step"]


def test_raven_last_cell_follows_from_the_rule(questions: list[dict[str, Any]]) -> None:
    for q in by_domain(questions, "raven"):
        data = q["raven_data"]
        cells, rules = data["cells"], data["rules"]
        assert len(cells) == 9 and {r["attribute"] for r in rules} == {"shape", "count", "rotation", "fill"}
        for row in range(2):  # the rule holds on the complete rows too
            for rule in rules:
                a, b, c = (cells[row * 3 + k][rule["attribute"]] for k in range(3))
                assert _next_value(rule, a, b) == c
        answer = {r["attribute"]: _next_value(r, cells[6][r["attribute"]], cells[7][r["attribute"]])
                  for r in rules}
        assert answer == cells[8] == data["answer"]
        varying = [r for r in rules if r["kind"] != "constant"]
        assert len(varying) == {"easy": 1, "medium": 2, "hard": 3}[q["difficulty"]]
        assert data["rule"] and data["rule_type"]


def test_rotation_views_match_the_prompt(questions: list[dict[str, Any]]) -> None:
    for q in by_domain(questions, "rotation"):
        data = q["rotation_data"]
        voxels = {tuple(v) for v in data["voxels"]}
        assert len(voxels) == data["num_voxels"] == len(data["voxels"])
        start = next(iter(voxels))
        seen, stack = {start}, [start]
        while stack:
            x, y, z = stack.pop()
            for d in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)):
                nb = (x + d[0], y + d[1], z + d[2])
                if nb in voxels and nb not in seen:
                    seen.add(nb)
                    stack.append(nb)
        assert seen == voxels
        assert all(len({v[k] for v in voxels}) > 1 for k in range(3))
        for key in ("first_view_azim", "final_view_azim", "first_view_elev", "final_view_elev"):
            assert f" {data[key]}° " in q["prompt"]
        turn = (data["final_view_azim"] - data["first_view_azim"]) % 360
        assert data["angle_difference"] in (turn, 360 - turn)
        assert f"{data['angle_difference']}-degree" in q["prompt"]
        assert q["prompt"].startswith(f"A {len(voxels)}-block sculpture")


@pytest.mark.parametrize("domain,tamper", [
    ("chess", lambda q: q["chess_data"].update(mate_moves=q["chess_data"]["mate_moves"][1:] or ["Kh1"])),
    ("maze", lambda q: q["maze_data"]["solution_path"].pop(1)),
    ("sudoku", lambda q: q["sudoku_data"]["solution"].reverse()),
    ("raven", lambda q: q["raven_data"]["answer"].update(count=q["raven_data"]["answer"]["count"] + 1)),
    ("rotation", lambda q: q["rotation_data"].update(final_view_azim=(q["rotation_data"]["final_view_azim"] + 7) % 360)),
])
def test_library_check_rejects_a_wrong_answer(questions: list[dict[str, Any]], domain: str, tamper: Any) -> None:
    module = DOMAINS[domain].load()
    q = json.loads(json.dumps(by_domain(questions, domain)[0]))
    module.check(q)
    tamper(q)
    with pytest.raises(ValidationError):
        module.check(q)


# --- refusals and the CLI ---------------------------------------------------------------


def test_library_refuses_non_empty_output_and_bad_options(tmp_path: Path) -> None:
    out = tmp_path / "q"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(VmevalError, match="--overwrite"):
        create_dataset(out, pairs_per_domain=1, domains=["maze"])
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    with pytest.raises(ConfigError):
        create_dataset(tmp_path / "x", pairs_per_domain=1, domains=["poker"])
    with pytest.raises(ConfigError):
        create_dataset(tmp_path / "x", pairs_per_domain=1, difficulty="extreme")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q"]  # no temp folders left behind


def test_cli_create_refuse_overwrite_and_json(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "questions"
    result = runner.invoke(cli, ["create", "--pairs-per-domain", "2", "--domains", "maze", "raven",
                                 "--output-dir", str(out), "--seed", "7", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["domains"] == {"maze": 2, "raven": 2} and summary["total_questions"] == 4

    stale = out / "maze_task" / "maze_0099"
    stale.mkdir()
    (stale / "prompt.txt").write_text("old")
    (out / "chess_task").mkdir()
    result = runner.invoke(cli, ["create", "--pairs-per-domain", "1", "--domains", "maze", "--output-dir", str(out)])
    assert result.exit_code == 1
    assert "--overwrite" in result.output
    assert stale.is_dir()  # untouched

    result = runner.invoke(cli, ["create", "--pairs-per-domain", "1", "--domains", "sudoku,maze",
                                 "--difficulty", "hard", "--output-dir", str(out), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert "wrote 2 questions" in result.output
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("*_task/*")) == [
        "maze_task/maze_0000", "sudoku_task/sudoku_0000"]
    assert validate_tree(questions_dir=out, check_data_folders=False).ok
    meta = json.loads((out / "maze_task/maze_0000/question_metadata.json").read_text())
    assert meta["difficulty"] == "hard"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["questions"]


@pytest.mark.parametrize("args", [
    ["--domains", "poker"],
    ["--domains", "chess", "--difficulty", "extreme"],
    ["--pairs-per-domain", "0"],
    ["maze"],
])
def test_cli_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(cli, ["create", "--output-dir", str(tmp_path / "q"), *args])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "q").exists()


def test_seed_compatible_script(tmp_path: Path) -> None:
    out = tmp_path / "q"
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "create_dataset.py"), "--pairs-per-domain", "1",
                          "--random-seed", "5", "--domains", "chess", "rotation", "--output-dir", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.glob("*_task/*")) == ["chess_0000", "rotation_0000"]
    again = tmp_path / "again"
    create_dataset(again, pairs_per_domain=1, domains=["chess", "rotation"], seed=5)
    assert snapshot(out) == snapshot(again)


def test_overwrite_only_replaces_question_trees(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "outputs").mkdir(parents=True)
    with pytest.raises(VmevalError, match="does not look like a questions folder"):
        create_dataset(data, pairs_per_domain=1, domains=["maze"], overwrite=True)
    assert (data / "outputs").is_dir()


def test_relative_dot_output_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "q"
    out.mkdir()
    monkeypatch.chdir(out)
    result = create_dataset(".", pairs_per_domain=1, domains=["sudoku"])
    assert result.manifest_path == Path("vmeval_dataset.json")
    assert (out / "sudoku_task" / "sudoku_0000" / "first_frame.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q"]
