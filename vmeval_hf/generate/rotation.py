"""3-D mental rotation: a block sculpture on a table, seen from two camera azimuths.

The sculpture is a face-connected "snake" of unit cubes that spans all three axes and
is chiral (not equal to its own mirror image under any rotation), so the two views
cannot be matched by flipping. It is drawn with numpy + Pillow: orthographic
projection, painter's algorithm, shading tied to the camera, on a gridded table.

Both azimuths stay at least 12 degrees off the x and y axes, so every view shows two
side faces of each block. Difficulty is measured by block count and turn angle
(mental-rotation effort grows with both): *easy* 5-6 blocks turned 90 degrees,
*medium* 7-8 blocks turned 135, *hard* 9-10 blocks turned 180.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from typing import Any

import numpy as np

from ._render import INK, Canvas
from .base import GeneratedQuestion, base_metadata, check_failure

DOMAIN = "rotation"
LEVELS = {"easy": ((5, 6), 90), "medium": ((7, 8), 135), "hard": ((9, 10), 180)}
IMAGE = 560
PROMPT = ("A {n}-block sculpture sits fixed on a table. First frame: Your camera is tilted at {e1}° "
          "elevation, viewing from {a1}° azimuth. Final frame: Your camera remains at {e2}° elevation, "
          "but rotates horizontally to {a2}° azimuth. This is a {turn}. Create a smooth video showing "
          "the camera orbiting the sculpture from the first view to the final view.")

Voxel = tuple[int, int, int]
STEPS: list[Voxel] = [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)]
BLOCK = np.array([118, 170, 232], dtype=float)
TABLE, TABLE_LINE, SHADOW = (226, 220, 208), (190, 182, 166), (168, 160, 146)


def _rotations() -> list[np.ndarray]:
    """The 24 proper rotations of the cube as integer matrices."""
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3), dtype=int)
            for row, (col, sign) in enumerate(zip(perm, signs)):
                m[row, col] = sign
            if round(np.linalg.det(m)) == 1:
                out.append(m)
    return out


ROTATIONS = _rotations()


def canonical(voxels: list[Voxel]) -> tuple[Voxel, ...]:
    """A rotation- and translation-invariant name for a voxel shape."""
    pts = np.array(voxels, dtype=int)
    best: tuple[Voxel, ...] | None = None
    for m in ROTATIONS:
        q = pts @ m.T
        q -= q.min(axis=0)
        key = tuple(sorted((int(a), int(b), int(c)) for a, b, c in q))
        if best is None or key < best:
            best = key
    assert best is not None
    return best


def is_chiral(voxels: list[Voxel]) -> bool:
    return canonical(voxels) != canonical([(-x, y, z) for x, y, z in voxels])


def is_connected(voxels: list[Voxel]) -> bool:
    cells = set(voxels)
    seen = {voxels[0]}
    stack = [voxels[0]]
    while stack:
        x, y, z = stack.pop()
        for dx, dy, dz in STEPS:
            nxt = (x + dx, y + dy, z + dz)
            if nxt in cells and nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return len(seen) == len(cells)


def _snake(rng: random.Random, n: int) -> list[Voxel]:
    while True:
        cells: list[Voxel] = [(0, 0, 0)]
        direction = rng.choice(STEPS)
        while len(cells) < n:
            if rng.random() < 0.55:
                direction = rng.choice(STEPS)
            x, y, z = cells[-1]
            nxt = (x + direction[0], y + direction[1], z + direction[2])
            if nxt in cells:
                options = [s for s in STEPS if (x + s[0], y + s[1], z + s[2]) not in cells]
                if not options:
                    break
                direction = rng.choice(options)
                nxt = (x + direction[0], y + direction[1], z + direction[2])
            cells.append(nxt)
        if len(cells) < n:
            continue
        pts = np.array(cells)
        pts -= pts.min(axis=0)
        voxels = [(int(a), int(b), int(c)) for a, b, c in pts]
        if all(pts.max(axis=0) >= 1) and pts[:, 2].max() <= 3 and is_chiral(voxels):
            return voxels


def _camera(elev: float, azim: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(towards-camera, screen-right, screen-up) unit vectors for a camera at (elev, azim) degrees."""
    e, a = math.radians(elev), math.radians(azim)
    d = np.array([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])
    right = np.array([-math.sin(a), math.cos(a), 0.0])
    up = np.cross(d, right)
    return d, right, up


def _faces(voxels: list[Voxel]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Outer faces as (4 corners, outward normal); faces shared by two cubes are dropped."""
    cells = set(voxels)
    out = []
    for x, y, z in voxels:
        for axis in range(3):
            for sign in (1, -1):
                normal = np.zeros(3)
                normal[axis] = sign
                nb = [x, y, z]
                nb[axis] += sign
                if tuple(nb) in cells:
                    continue
                base = np.array([x, y, z], dtype=float)
                if sign > 0:
                    base[axis] += 1
                u, v = [k for k in range(3) if k != axis]
                corners = []
                for du, dv in ((0, 0), (1, 0), (1, 1), (0, 1)):
                    p = base.copy()
                    p[u] += du
                    p[v] += dv
                    corners.append(p)
                out.append((np.array(corners), normal))
    return out


def render(voxels: list[Voxel], elev: float, azim: float) -> Any:
    pts = np.array(voxels, dtype=float)
    lo, hi = pts.min(axis=0), pts.max(axis=0) + 1
    center = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, (hi[2]) / 2])
    half = max(hi[0] - lo[0], hi[1] - lo[1]) / 2 + 1.0
    table = [center + np.array([sx * half, sy * half, -center[2]]) for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    radius = max(float(np.linalg.norm(p - center)) for p in [*table, *(np.array(c) for c in
                                                                        itertools.product(*zip(lo, hi)))])
    scale = IMAGE * 0.47 / radius
    d, right, up = _camera(elev, azim)
    light = d * 0.45 + np.array([0.0, 0.0, 0.8]) + right * 0.55
    light /= np.linalg.norm(light)

    def project(p: np.ndarray) -> tuple[float, float]:
        q = p - center
        return IMAGE / 2 + float(q @ right) * scale, IMAGE / 2 - float(q @ up) * scale

    canvas = Canvas(IMAGE, IMAGE, background=(250, 250, 250))
    canvas.polygon([project(p) for p in table], fill=TABLE, outline=TABLE_LINE, width=2)
    steps = int(round(2 * half))
    for k in range(1, steps):
        t = -half + k
        canvas.line([project(center + np.array([t, -half, -center[2]])),
                     project(center + np.array([t, half, -center[2]]))], fill=TABLE_LINE, width=1)
        canvas.line([project(center + np.array([-half, t, -center[2]])),
                     project(center + np.array([half, t, -center[2]]))], fill=TABLE_LINE, width=1)
    # Footprint shadows tie every block column to the table, so overhangs read as overhangs.
    for x, y in sorted({(v[0], v[1]) for v in voxels}):
        canvas.polygon([project(np.array([x + dx, y + dy, 0.0])) for dx, dy in ((0, 0), (1, 0), (1, 1), (0, 1))],
                       fill=SHADOW)
    faces = [(corners, normal) for corners, normal in _faces(voxels) if float(normal @ d) > 1e-9]
    # Painter's algorithm: farthest first. Depths are rounded so last-bit float differences
    # between machines cannot reorder equal faces; ties are broken by the corner list.
    faces.sort(key=lambda f: (round(float(f[0].mean(axis=0) @ d), 9), tuple(f[0].ravel())))
    for corners, normal in faces:
        shade = 0.5 + 0.5 * max(0.0, float(normal @ light))
        color = tuple(int(round(c)) for c in np.clip(BLOCK * shade + 18, 0, 255))
        canvas.polygon([project(c) for c in corners], fill=color, outline=INK, width=1.6)  # type: ignore[arg-type]
    return canvas.image()


def _oblique(azim: int) -> bool:
    """At least 12 degrees away from looking straight along the x or y axis."""
    return 12 <= azim % 90 <= 78


def _turn_text(delta: int) -> str:
    if abs(delta) == 180:
        return "180-degree rotation"
    way = "counterclockwise" if delta > 0 else "clockwise"
    return f"{abs(delta)}-degree {way} rotation (seen from above)"


def generate(rng: random.Random, index: int, difficulty: str) -> GeneratedQuestion:
    (lo, hi), turn = LEVELS[difficulty]
    voxels = _snake(rng, rng.randint(lo, hi))
    elev = rng.randint(20, 40)
    delta = turn if turn == 180 or rng.random() < 0.5 else -turn
    while True:  # a view straight along an axis hides every side face: keep both views oblique
        azim1 = rng.randint(0, 359)
        azim2 = (azim1 + delta) % 360
        if _oblique(azim1) and _oblique(azim2):
            break
    prompt = PROMPT.format(n=len(voxels), e1=elev, a1=azim1, e2=elev, a2=azim2, turn=_turn_text(delta))
    meta = base_metadata(DOMAIN, index, prompt, difficulty)
    meta["rotation_data"] = {
        "generation_method": "3D voxel snake with viewpoint rotation",
        "num_voxels": len(voxels),
        "voxels": [list(v) for v in voxels],
        "first_view_elev": elev,
        "first_view_azim": azim1,
        "final_view_elev": elev,
        "final_view_azim": azim2,
        "angle_difference": abs(delta),
        "rotation_direction": "either" if abs(delta) == 180 else ("counterclockwise" if delta > 0 else "clockwise"),
        "structural_complexity": "snake_like_3d_voxels",
        "chiral": True,
        "azimuth_convention": "degrees counterclockwise from +x, seen from above (z up)",
    }
    return GeneratedQuestion(render(voxels, elev, azim1), render(voxels, elev, azim2), prompt, meta)


def check(metadata: dict[str, Any]) -> None:
    """The sculpture is a connected, chiral, 3-axis shape and the views match the prompt; else ValidationError."""
    fail = check_failure(DOMAIN, metadata)

    data = metadata["rotation_data"]
    voxels = [tuple(v) for v in data["voxels"]]
    if len(set(voxels)) != len(voxels) or len(voxels) != data["num_voxels"]:
        fail("voxels repeat or num_voxels is wrong")
    if not is_connected(voxels) or not is_chiral(voxels):  # type: ignore[arg-type]
        fail("sculpture is not one connected chiral piece")
    if any(len({v[k] for v in voxels}) < 2 for k in range(3)) or min(v[2] for v in voxels) != 0:
        fail("sculpture does not span all three axes while resting on the table")
    delta = (data["final_view_azim"] - data["first_view_azim"]) % 360
    (lo, hi), turn = LEVELS[metadata["difficulty"]]
    if data["angle_difference"] != turn or delta not in (turn, 360 - turn) or not lo <= len(voxels) <= hi:
        fail("views or block count do not match the difficulty")
    if not (_oblique(data["first_view_azim"]) and _oblique(data["final_view_azim"])):
        fail("a view looks straight along an axis, which hides the side faces")
    for value in (data["first_view_azim"], data["final_view_azim"], data["first_view_elev"]):
        if not re.search(rf"(?<![0-9]){value}°", metadata["prompt"]):
            fail(f"the prompt does not state the angle {value}°")


def dedupe_key(metadata: dict[str, Any]) -> str:
    data = metadata["rotation_data"]
    shape = canonical([tuple(v) for v in data["voxels"]])  # type: ignore[misc]
    return f"{shape}|{data['first_view_elev']}|{data['first_view_azim']}|{data['final_view_azim']}"
