"""Sudoku: 4x4 and 9x9 puzzles with exactly one solution (proved by a counting solver).

A random full grid is filled by randomised backtracking, then givens are removed in
random order while the puzzle stays uniquely solvable, down to a target count.
Difficulty is the number of givens for the grid size:

=========  ==============  ==============
level      4x4 givens      9x9 givens
=========  ==============  ==============
easy       10-11           44-48
medium     8-9             36-40
hard       5-7             28-32
=========  ==============  ==============
"""

from __future__ import annotations

import random
from typing import Any

from ._render import BLUE, INK, WHITE, Canvas
from .base import GeneratedQuestion, base_metadata, check_failure

DOMAIN = "sudoku"
GIVENS = {4: {"easy": (10, 11), "medium": (8, 9), "hard": (5, 7)},
          9: {"easy": (44, 48), "medium": (36, 40), "hard": (28, 32)}}
IMAGE = 600
MARGIN = 30
GIVEN_BG = (243, 244, 246)


def prompt_for(n: int) -> str:
    box = 2 if n == 4 else 3
    digits = "1, 2, 3 and 4" if n == 4 else "1 to 9"
    return (f"Solve this {n}x{n} Sudoku puzzle. Fill in all the empty cells following Sudoku rules: "
            f"each row, each column and each {box}x{box} box must contain the digits {digits} exactly once. "
            "Show the complete solution.")


def _units(n: int) -> list[list[int]]:
    """For each cell, the other cells sharing its row, column or box."""
    box = 2 if n == 4 else 3
    peers = []
    for i in range(n * n):
        r, c = divmod(i, n)
        br, bc = r - r % box, c - c % box
        same = {r * n + k for k in range(n)} | {k * n + c for k in range(n)}
        same |= {(br + dr) * n + bc + dc for dr in range(box) for dc in range(box)}
        same.discard(i)
        peers.append(sorted(same))
    return peers


_PEERS = {4: _units(4), 9: _units(9)}


def count_solutions(grid: list[int], n: int, limit: int = 2, rng: random.Random | None = None,
                    out: list[int] | None = None) -> int:
    """Solutions of ``grid`` (0 = blank), counted up to ``limit``; the first is copied to ``out``.

    Backtracking on the most constrained blank; with ``rng`` the candidate order is shuffled,
    which turns the solver into a random full-grid generator.
    """
    peers = _PEERS[n]
    full = (1 << (n + 1)) - 2  # bits 1..n
    cells = list(grid)
    found = 0

    def candidates(i: int) -> int:
        used = 0
        for p in peers[i]:
            used |= 1 << cells[p]
        return full & ~used

    def solve() -> bool:
        nonlocal found
        best, best_mask, best_count = -1, 0, n + 1
        for i, v in enumerate(cells):
            if v == 0:
                mask = candidates(i)
                count = bin(mask).count("1")
                if count < best_count:
                    best, best_mask, best_count = i, mask, count
                    if count <= 1:
                        break
        if best < 0:
            found += 1
            if out is not None and found == 1:
                out[:] = cells
            return found >= limit
        digits = [d for d in range(1, n + 1) if best_mask >> d & 1]
        if rng is not None:
            rng.shuffle(digits)
        for d in digits:
            cells[best] = d
            if solve():
                return True
        cells[best] = 0
        return False

    solve()
    return found


def _full_grid(rng: random.Random, n: int) -> list[int]:
    out: list[int] = []
    count_solutions([0] * (n * n), n, limit=1, rng=rng, out=out)
    return out


def _make_puzzle(rng: random.Random, n: int, target: int) -> tuple[list[int], list[int]] | None:
    solution = _full_grid(rng, n)
    puzzle = list(solution)
    order = list(range(n * n))
    rng.shuffle(order)
    givens = n * n
    for i in order:
        if givens == target:
            break
        keep = puzzle[i]
        puzzle[i] = 0
        if count_solutions(puzzle, n) == 1:
            givens -= 1
        else:
            puzzle[i] = keep
    return (puzzle, solution) if givens == target else None


def render(puzzle: list[int], shown: list[int], n: int) -> Any:
    """The grid showing ``shown``; digits that are not givens in ``puzzle`` are drawn in blue."""
    box = 2 if n == 4 else 3
    cell = (IMAGE - 2 * MARGIN) / n
    canvas = Canvas(IMAGE, IMAGE, background=WHITE)
    size = round(cell * 0.62)
    for i, value in enumerate(shown):
        r, c = divmod(i, n)
        x, y = MARGIN + c * cell, MARGIN + r * cell
        if puzzle[i]:
            canvas.rect(x, y, x + cell, y + cell, fill=GIVEN_BG)
        if value:
            canvas.text(x + cell / 2, y + cell / 2, str(value), size, fill=INK if puzzle[i] else BLUE)
    for k in range(n + 1):
        width = 4.0 if k % box == 0 else 1.5
        p = MARGIN + k * cell
        canvas.line([(MARGIN - 2, p), (IMAGE - MARGIN + 2, p)], width=width)
        canvas.line([(p, MARGIN - 2), (p, IMAGE - MARGIN + 2)], width=width)
    return canvas.image()


def generate(rng: random.Random, index: int, difficulty: str) -> GeneratedQuestion:
    n = rng.choice((4, 9))
    while True:
        target = rng.randint(*GIVENS[n][difficulty])
        made = _make_puzzle(rng, n, target)
        if made is not None:
            break
    puzzle, solution = made
    prompt = prompt_for(n)
    meta = base_metadata(DOMAIN, index, prompt, difficulty)
    rows = [list(range(r * n, r * n + n)) for r in range(n)]
    meta.update({
        "sudoku_data": {
            "grid_size": n,
            "box_size": 2 if n == 4 else 3,
            "puzzle": [v or None for v in puzzle],
            "solution": solution,
            "difficulty_level": ("easy", "medium", "hard").index(difficulty),
            "num_given": target,
        },
        "puzzle_array": [[puzzle[i] for i in row] for row in rows],
        "solution_array": [[solution[i] for i in row] for row in rows],
        "num_given": target,
    })
    return GeneratedQuestion(render(puzzle, puzzle, n), render(puzzle, solution, n), prompt, meta)


def check(metadata: dict[str, Any]) -> None:
    """The solution obeys the rules, extends the givens, and is the only one; else ValidationError."""
    fail = check_failure(DOMAIN, metadata)

    data = metadata["sudoku_data"]
    n = data["grid_size"]
    puzzle = [v or 0 for v in data["puzzle"]]
    solution = data["solution"]
    if n not in _PEERS or len(puzzle) != n * n or len(solution) != n * n:
        fail("grid size is not 4x4 or 9x9")
    for i, v in enumerate(solution):
        if not 1 <= v <= n or any(solution[p] == v for p in _PEERS[n][i]):
            fail(f"solution breaks a Sudoku rule at cell {divmod(i, n)}")
        if puzzle[i] and puzzle[i] != v:
            fail(f"solution changes the given at cell {divmod(i, n)}")
    if count_solutions(puzzle, n) != 1:
        fail("puzzle does not have exactly one solution")
    givens = sum(1 for v in puzzle if v)
    if givens != data["num_given"] or givens != metadata["num_given"]:
        fail("num_given does not match the puzzle")
    lo, hi = GIVENS[n][metadata["difficulty"]]
    if not lo <= givens <= hi:
        fail("difficulty label does not match the number of givens")


def dedupe_key(metadata: dict[str, Any]) -> str:
    return ",".join(str(v or 0) for v in metadata["sudoku_data"]["puzzle"])
