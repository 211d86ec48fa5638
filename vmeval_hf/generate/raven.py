"""Raven-style 3x3 progressive matrices with named, stored rules.

Each cell shows ``count`` copies of one ``shape`` with a ``fill`` and a ``rotation``.
Every attribute follows one rule along the rows:

* ``progression`` - the value moves ``step`` places along an ordered scale per column
  (shape scale: triangle, square, pentagon, hexagon; fill scale: white, light, dark,
  black; count: integers; rotation: degrees modulo 360);
* ``distribute_three`` - each row holds the same three values in a different order;
* ``constant`` - one value everywhere.

Difficulty is the number of attributes that vary: *easy* one progression, *medium* two
progressions, *hard* three varying attributes, at least one of them distribute-three.
The first frame hides the bottom-right cell; the final frame shows it. The answer is
the rule applied to the first eight cells, which :func:`check` recomputes.
"""

from __future__ import annotations

import random
from typing import Any

from ._render import INK, Canvas, regular_polygon, rotate_points
from .base import GeneratedQuestion, base_metadata, check_failure

DOMAIN = "raven"
PROMPT = "This is Raven's Progressive Matrices like task. Complete the missing pattern in this 3x3 matrix."

SHAPE_SCALE = ["triangle", "square", "pentagon", "hexagon"]
SHAPES = ["circle", "triangle", "square", "diamond", "pentagon", "hexagon", "star", "cross"]
FILL_SCALE = ["white", "light", "dark", "black"]
FILL_RGB = {"white": (255, 255, 255), "light": (200, 200, 200), "dark": (118, 118, 118), "black": (25, 25, 25)}
ATTRIBUTES = ("shape", "count", "rotation", "fill")

TILE = 176
GAP = 10
MARGIN = 20
IMAGE = 2 * MARGIN + 3 * TILE + 2 * GAP
# Where the copies go inside a tile, as fractions of the tile, for each count.
LAYOUTS: dict[int, list[tuple[float, float]]] = {
    1: [(0.5, 0.5)],
    2: [(0.3, 0.5), (0.7, 0.5)],
    3: [(0.5, 0.28), (0.28, 0.7), (0.72, 0.7)],
    4: [(0.3, 0.3), (0.7, 0.3), (0.3, 0.7), (0.7, 0.7)],
    5: [(0.25, 0.25), (0.75, 0.25), (0.5, 0.5), (0.25, 0.75), (0.75, 0.75)],
    6: [(0.25, 0.3), (0.5, 0.3), (0.75, 0.3), (0.25, 0.7), (0.5, 0.7), (0.75, 0.7)],
}
RADIUS = {1: 0.34, 2: 0.17, 3: 0.16, 4: 0.16, 5: 0.13, 6: 0.11}

Cell = dict[str, Any]
Rule = dict[str, Any]


# --- rules ------------------------------------------------------------------------


def apply_rule(rule: Rule, row: int, col: int) -> Any:
    """The value ``rule`` puts in cell (row, col)."""
    kind = rule["kind"]
    if kind == "constant":
        return rule["value"]
    if kind == "distribute_three":
        return rule["values"][(rule["row_shifts"][row] + col) % 3]
    start = rule["row_starts"][row]
    if rule["attribute"] == "rotation":
        return (start + col * rule["step"]) % 360
    if "scale" in rule:
        return rule["scale"][start + col * rule["step"]]
    return start + col * rule["step"]


def next_in_row(rule: Rule, left: Any, middle: Any) -> Any:
    """The third value of a row from its first two, using only the rule's kind and parameters."""
    kind = rule["kind"]
    if kind == "constant":
        return middle
    if kind == "distribute_three":
        (missing,) = [v for v in rule["values"] if v not in (left, middle)]
        return missing
    if rule["attribute"] == "rotation":
        return (middle + rule["step"]) % 360
    if "scale" in rule:
        return rule["scale"][rule["scale"].index(middle) + rule["step"]]
    return middle + rule["step"]


def _progression(rng: random.Random, attribute: str) -> Rule:
    if attribute == "rotation":
        step = rng.choice([45, 90, -45, -90])
        return {"attribute": attribute, "kind": "progression", "step": step,
                "row_starts": [rng.randrange(0, 360, 45) for _ in range(3)]}
    if attribute == "count":
        step = rng.choice([1, 1, 2, -1])
        lo = 1 if step > 0 else 1 - 2 * step
        hi = 6 - 2 * step if step > 0 else 6
        return {"attribute": attribute, "kind": "progression", "step": step,
                "row_starts": [rng.randint(lo, min(hi, lo + 2)) for _ in range(3)]}
    scale = SHAPE_SCALE if attribute == "shape" else FILL_SCALE
    step = rng.choice([1, -1])
    starts = [0, 1] if step > 0 else [len(scale) - 1, len(scale) - 2]
    return {"attribute": attribute, "kind": "progression", "step": step, "scale": scale,
            "row_starts": [rng.choice(starts) for _ in range(3)]}


def _distribute(rng: random.Random, attribute: str) -> Rule:
    pool: list[Any] = {"shape": SHAPES, "fill": FILL_SCALE, "count": [1, 2, 3, 4, 5, 6],
                       "rotation": list(range(0, 360, 45))}[attribute]
    values = rng.sample(pool, 3)
    if attribute == "count":
        values.sort()
    shifts = [0, 1, 2]
    rng.shuffle(shifts)
    return {"attribute": attribute, "kind": "distribute_three", "values": values, "row_shifts": shifts}


def _constant(rng: random.Random, attribute: str, varying: set[str]) -> Rule:
    if attribute == "shape":
        # A rotation rule needs a shape that looks different at every angle.
        value: Any = "arrow" if "rotation" in varying else rng.choice(SHAPES)
    elif attribute == "count":
        value = rng.randint(1, 3)
    elif attribute == "rotation":
        value = 0
    else:
        value = rng.choice(FILL_SCALE)
    return {"attribute": attribute, "kind": "constant", "value": value}


def _pick_rules(rng: random.Random, difficulty: str) -> list[Rule]:
    n_varying = {"easy": 1, "medium": 2, "hard": 3}[difficulty]
    while True:
        varying = set(rng.sample(ATTRIBUTES, n_varying))
        if not {"shape", "rotation"} <= varying:  # rotation needs one fixed, asymmetric shape
            break
    kinds = {a: "progression" for a in varying}
    if difficulty == "hard":
        for a in rng.sample(sorted(varying - {"rotation"}), rng.randint(1, 2)):
            kinds[a] = "distribute_three"
    while True:
        rules = []
        for attribute in ATTRIBUTES:
            if attribute not in varying:
                rules.append(_constant(rng, attribute, varying))
            elif kinds[attribute] == "progression":
                rules.append(_progression(rng, attribute))
            else:
                rules.append(_distribute(rng, attribute))
        if not _locked(build_cells(rules), sorted(varying)):
            return rules


def _locked(cells: list[Cell], varying: list[str]) -> bool:
    """True if two varying attributes always move together (one rule would explain both)."""
    for i, a in enumerate(varying):
        for b in varying[i + 1:]:
            pairs = {(c[a], c[b]) for c in cells}
            if len(pairs) == len({c[a] for c in cells}) == len({c[b] for c in cells}):
                return True
    return False


def rule_name(rules: list[Rule]) -> str:
    parts = [f"{r['attribute']} {r['kind'].replace('_', '-')}" for r in rules if r["kind"] != "constant"]
    return " + ".join(parts)


def rule_type(rules: list[Rule]) -> str:
    varying = [r for r in rules if r["kind"] != "constant"]
    if len(varying) == 1:
        return f"{varying[0]['attribute']}_{varying[0]['kind']}"
    return "combination"


def build_cells(rules: list[Rule]) -> list[Cell]:
    return [{r["attribute"]: apply_rule(r, row, col) for r in rules} for row in range(3) for col in range(3)]


# --- drawing ----------------------------------------------------------------------


def _shape_points(shape: str, cx: float, cy: float, r: float, rotation: float) -> list[tuple[float, float]]:
    if shape == "triangle":
        pts = regular_polygon(cx, cy + r * 0.15, r * 1.1, 3)
    elif shape == "square":
        pts = regular_polygon(cx, cy, r * 1.15, 4, 45)
    elif shape == "diamond":
        pts = [(cx, cy - r * 1.1), (cx + r * 0.75, cy), (cx, cy + r * 1.1), (cx - r * 0.75, cy)]
    elif shape == "pentagon":
        pts = regular_polygon(cx, cy + r * 0.05, r * 1.05, 5)
    elif shape == "hexagon":
        pts = regular_polygon(cx, cy, r * 1.05, 6)
    elif shape == "star":
        pts = []
        for k in range(10):
            rad = r * 1.15 if k % 2 == 0 else r * 0.5
            pts.append(regular_polygon(cx, cy, rad, 10, 0)[k])
    elif shape == "cross":
        a, b = r * 0.36, r * 1.0
        pts = [(cx - a, cy - b), (cx + a, cy - b), (cx + a, cy - a), (cx + b, cy - a), (cx + b, cy + a),
               (cx + a, cy + a), (cx + a, cy + b), (cx - a, cy + b), (cx - a, cy + a), (cx - b, cy + a),
               (cx - b, cy - a), (cx - a, cy - a)]
    elif shape == "arrow":  # points up at rotation 0
        pts = [(cx, cy - r * 1.1), (cx + r * 0.8, cy - r * 0.15), (cx + r * 0.32, cy - r * 0.15),
               (cx + r * 0.32, cy + r * 1.0), (cx - r * 0.32, cy + r * 1.0), (cx - r * 0.32, cy - r * 0.15),
               (cx - r * 0.8, cy - r * 0.15)]
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return rotate_points(pts, cx, cy, rotation)


def _draw_cell(canvas: Canvas, x: float, y: float, cell: Cell) -> None:
    count = cell["count"]
    r = RADIUS[count] * TILE
    fill = FILL_RGB[cell["fill"]]
    width = max(2.0, r / 12)
    for fx, fy in LAYOUTS[count]:
        cx, cy = x + fx * TILE, y + fy * TILE
        if cell["shape"] == "circle":
            canvas.ellipse(cx, cy, r, fill=fill, outline=INK, width=width)
        else:
            canvas.polygon(_shape_points(cell["shape"], cx, cy, r, cell["rotation"]), fill=fill, outline=INK,
                           width=width)


def render(cells: list[Cell], hide_last: bool) -> Any:
    canvas = Canvas(IMAGE, IMAGE, background=(236, 238, 242))
    for i, cell in enumerate(cells):
        row, col = divmod(i, 3)
        x, y = MARGIN + col * (TILE + GAP), MARGIN + row * (TILE + GAP)
        if hide_last and i == 8:
            canvas.rect(x, y, x + TILE, y + TILE, fill=(214, 218, 226), outline=INK, width=2)
            canvas.text(x + TILE / 2, y + TILE / 2, "?", 96, fill=(90, 96, 110))
            continue
        canvas.rect(x, y, x + TILE, y + TILE, fill=(255, 255, 255), outline=INK, width=2)
        _draw_cell(canvas, x, y, cell)
    return canvas.image()


# --- the domain interface ---------------------------------------------------------


def generate(rng: random.Random, index: int, difficulty: str) -> GeneratedQuestion:
    rules = _pick_rules(rng, difficulty)
    cells = build_cells(rules)
    meta = base_metadata(DOMAIN, index, PROMPT, difficulty)
    meta["raven_data"] = {
        "rule": rule_name(rules),
        "rule_type": rule_type(rules),
        "rules": rules,
        "matrix_size": "3x3",
        "cells": cells,
        "answer": cells[8],
        "missing_cell": [2, 2],
    }
    return GeneratedQuestion(render(cells, hide_last=True), render(cells, hide_last=False), PROMPT, meta)


def check(metadata: dict[str, Any]) -> None:
    """Every cell obeys the rules and the answer follows from the first eight cells; else ValidationError."""
    fail = check_failure(DOMAIN, metadata)

    data = metadata["raven_data"]
    rules, cells = data["rules"], data["cells"]
    if len(cells) != 9 or build_cells(rules) != cells or cells[8] != data["answer"]:
        fail("cells do not follow the stored rules")
    predicted = {r["attribute"]: next_in_row(r, cells[6][r["attribute"]], cells[7][r["attribute"]]) for r in rules}
    if predicted != data["answer"]:
        fail(f"the rules applied to the first eight cells give {predicted}, not the stored answer")
    varying = sum(1 for r in rules if r["kind"] != "constant")
    if varying != {"easy": 1, "medium": 2, "hard": 3}[metadata["difficulty"]]:
        fail("difficulty label does not match the number of varying attributes")
    for row in range(3):
        if len({repr(cells[row * 3 + c]) for c in range(3)}) != 3:
            fail(f"row {row} repeats a cell")


def dedupe_key(metadata: dict[str, Any]) -> str:
    return repr(metadata["raven_data"]["cells"])
