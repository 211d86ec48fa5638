"""Maze: perfect mazes (randomised Kruskal), a green dot to walk to a red flag.

Difficulty is the maze size: *easy* 4-6 cells a side, *medium* 7-9, *hard* 10-13. The
goal is placed at least 60% of the longest possible path away from the start. The
maze is stored as a block grid (``#`` wall, ``.`` open; cell (r, c) sits at grid
(2r+1, 2c+1)) with the shortest path, which :func:`check` re-derives by BFS.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from ._render import INK, WHITE, Canvas, draw_dot, draw_flag
from .base import GeneratedQuestion, base_metadata, check_failure

DOMAIN = "maze"
PROMPT = ("Move the green dot from its starting position through the maze paths to the red flag. "
          "Navigate only through open spaces (white).")
SIZES = {"easy": (4, 6), "medium": (7, 9), "hard": (10, 13)}
IMAGE = 600
MARGIN = 24

Cell = tuple[int, int]


def _kruskal(rng: random.Random, n: int) -> list[str]:
    """A perfect n x n maze as block-grid rows."""
    parent = list(range(n * n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    walls = [((r, c), (r, c + 1)) for r in range(n) for c in range(n - 1)]
    walls += [((r, c), (r + 1, c)) for r in range(n - 1) for c in range(n)]
    rng.shuffle(walls)
    grid = [["#"] * (2 * n + 1) for _ in range(2 * n + 1)]
    for r in range(n):
        for c in range(n):
            grid[2 * r + 1][2 * c + 1] = "."
    for (r0, c0), (r1, c1) in walls:
        a, b = find(r0 * n + c0), find(r1 * n + c1)
        if a != b:
            parent[a] = b
            grid[r0 + r1 + 1][c0 + c1 + 1] = "."
    return ["".join(row) for row in grid]


def neighbours(grid: list[str], cell: Cell) -> list[Cell]:
    r, c = cell
    out = []
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        if grid[2 * r + 1 + dr][2 * c + 1 + dc] == ".":
            out.append((r + dr, c + dc))
    return out


def bfs(grid: list[str], start: Cell) -> dict[Cell, Cell | None]:
    """Parent links of a breadth-first search from ``start`` over open passages."""
    prev: dict[Cell, Cell | None] = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        for nxt in neighbours(grid, cell):
            if nxt not in prev:
                prev[nxt] = cell
                queue.append(nxt)
    return prev


def shortest_path(grid: list[str], start: Cell, end: Cell) -> list[Cell]:
    prev = bfs(grid, start)
    path: list[Cell] = []
    cur: Cell | None = end
    while cur is not None:
        path.append(cur)
        cur = prev[cur]
    return path[::-1]


def _depths(grid: list[str], start: Cell) -> dict[Cell, int]:
    prev = bfs(grid, start)
    depth: dict[Cell, int] = {}
    for cell in prev:  # BFS order: a parent is always seen before its child
        p = prev[cell]
        depth[cell] = 0 if p is None else depth[p] + 1
    return depth


def render(grid: list[str], dot: Cell, goal: Cell) -> Any:
    n = (len(grid) - 1) // 2
    cell = (IMAGE - 2 * MARGIN) // n
    off = (IMAGE - cell * n) / 2
    wall = max(3.0, cell / 7)
    canvas = Canvas(IMAGE, IMAGE, background=WHITE)

    def wall_rect(x0: float, y0: float, x1: float, y1: float) -> None:
        canvas.rect(x0 - wall / 2, y0 - wall / 2, x1 + wall / 2, y1 + wall / 2, fill=INK)

    for gr in range(2 * n + 1):
        for gc in range(2 * n + 1):
            if grid[gr][gc] != "#" or (gr % 2 == 1 and gc % 2 == 1):
                continue
            x, y = off + (gc // 2) * cell, off + (gr // 2) * cell
            if gr % 2 == 0 and gc % 2 == 1:  # horizontal wall above/below a cell
                wall_rect(x, y, x + cell, y)
            elif gr % 2 == 1 and gc % 2 == 0:  # vertical wall left/right of a cell
                wall_rect(x, y, x, y + cell)
    dx, dy = off + dot[1] * cell + cell / 2, off + dot[0] * cell + cell / 2
    if dot == goal:  # arrived: the dot sits low in the cell, under the flag
        draw_dot(canvas, dx + cell * 0.08, dy + cell * 0.12, cell * 0.26)
    else:
        draw_dot(canvas, dx, dy, cell * 0.3)
    gx, gy = off + goal[1] * cell + cell / 2, off + goal[0] * cell + cell / 2
    draw_flag(canvas, gx, gy, cell * 0.86)
    return canvas.image()


def generate(rng: random.Random, index: int, difficulty: str) -> GeneratedQuestion:
    n = rng.randint(*SIZES[difficulty])
    grid = _kruskal(rng, n)
    start = (rng.randrange(n), rng.randrange(n))
    depth = _depths(grid, start)
    far = max(depth.values())
    end = rng.choice(sorted(c for c, d in depth.items() if d >= max(2, round(far * 0.6))))
    path = shortest_path(grid, start, end)
    meta = base_metadata(DOMAIN, index, PROMPT, difficulty)
    meta.update({
        "maze_data": {
            "generation_method": "kruskal_algorithm",
            "grid": grid,
            "grid_legend": {"#": "wall", ".": "open"},
            "cell_to_grid": "cell (r, c) is grid[2*r+1][2*c+1]",
            "solution_path": [list(c) for c in path],
            "solution_length": len(path),
        },
        "maze_size": [n, n],
        "start_pos": list(start),
        "end_pos": list(end),
        "solution_length": len(path),
    })
    return GeneratedQuestion(render(grid, start, end), render(grid, end, end), PROMPT, meta)


def check(metadata: dict[str, Any]) -> None:
    """The maze is perfect and the stored path is a shortest start-to-goal walk; else ValidationError."""
    fail = check_failure(DOMAIN, metadata)

    data = metadata["maze_data"]
    grid: list[str] = data["grid"]
    n_rows, n_cols = metadata["maze_size"]
    if len(grid) != 2 * n_rows + 1 or any(len(row) != 2 * n_cols + 1 for row in grid):
        fail("grid shape does not match maze_size")
    start, end = tuple(metadata["start_pos"]), tuple(metadata["end_pos"])
    reach = bfs(grid, start)  # type: ignore[arg-type]
    passages = sum(row[1:-1].count(".") for row in grid[1:-1]) - n_rows * n_cols
    if len(reach) != n_rows * n_cols or passages != n_rows * n_cols - 1:
        fail("maze is not perfect (every cell reachable by exactly one route)")
    path = [tuple(c) for c in data["solution_path"]]
    if path[0] != start or path[-1] != end:
        fail("solution_path does not run from start_pos to end_pos")
    for a, b in zip(path, path[1:]):
        if b not in neighbours(grid, a):  # type: ignore[arg-type]
            fail(f"solution_path steps through a wall between {a} and {b}")
    if len(path) != len(shortest_path(grid, start, end)):  # type: ignore[arg-type]
        fail("solution_path is not the shortest route")
    if metadata["solution_length"] != len(path) or data["solution_length"] != len(path):
        fail("solution_length does not match solution_path")
    lo, hi = SIZES[metadata["difficulty"]]
    if not lo <= n_rows <= hi:
        fail("difficulty label does not match the maze size")


def dedupe_key(metadata: dict[str, Any]) -> str:
    return "/".join(metadata["maze_data"]["grid"]) + f"|{metadata['start_pos']}|{metadata['end_pos']}"
