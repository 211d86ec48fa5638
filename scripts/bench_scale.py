#!/usr/bin/env python3
"""How every stage scales with the number of questions: time per question and peak memory.

    python scripts/bench_scale.py --questions 1000
    python scripts/bench_scale.py --questions 10000 100000

For each N it makes (once, cached under ``--cache-dir`` keyed by N) a synthetic question tree:
N questions over the five domains, each with two PNG frames of 3-16 KB (a grid and shapes drawn
with Pillow, every frame distinct bytes), a domain's prompt and metadata as the upstream
generators wrote them, and ``vmeval_dataset.json``. Then it starts the project's Hub server and a
moto S3 server, each in its own process on 127.0.0.1 (``scripts/bench_servers.py``), fresh for
each N, and runs the stages as users run them, each a ``vmeval-hf`` subprocess. The moto server
answers listings from an index (``--listing indexed``, the default): moto's own listing sorts the
whole prefix for every page, so listing the 400,000 objects of N = 100,000 would cost it 100 times
what the 40,000 of N = 10,000 cost, a cost of the stand-in that S3 does not have.

- ``validate``: ``vmeval-hf validate``;
- ``build``: ``vmeval-hf build --out <scratch>``;
- ``publish-hub``: ``vmeval-hf publish --no-s3`` (validate, build, the Hub commit and tag; with
  ``--log`` when ``publish-s3`` is not among the stages, so that verify and pull find the version);
- ``publish-s3``: ``vmeval-hf publish --log`` (validate, build, the Hub side again, a no-op now,
  the S3 mirror of the tree and the release, verify both sides, log);
- ``verify``: ``vmeval-hf verify`` (the published sides against the release manifest);
- ``pull-hub``: ``vmeval-hf pull --from hub`` (the release);
- ``pull-s3``: ``vmeval-hf pull --from s3`` (the question tree).

Each stage's wall time, CPU (user + sys, reaped children included) and the peak of its process
tree's summed PSS, sampled every 100 ms by ``bench_build.measure`` (reading PSS slows the
process it reads, the same at every N). One run per stage and N; the table gives time per
question and the ratios against the smallest N (of the wall time and of the client's CPU); an
S3 stage also gives the CPU the moto server used during it (``/proc/<pid>/stat``), which tells
its growing cost per request from the tool's. The targets: time per question within 1.15x,
peak memory within +20%.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_build import cached_tree, measure  # noqa: E402  (the sampler: one process tree's peak PSS)
from bench_s3_floor import client_for, probe, server_cpu  # noqa: E402  (the server's own cost a request)
from bench_servers import LISTINGS, Servers  # noqa: E402

TREE_FORMAT = 1  # bump when the generated tree changes, so stale caches are not reused
DOMAINS = ("chess", "maze", "raven", "rotation", "sudoku")
SIDES = {"chess": 400, "maze": 480, "raven": 450, "rotation": 400, "sudoku": 420}
BASES_PER_DOMAIN = 64
STAGES = ("validate", "build", "publish-hub", "publish-s3", "verify", "pull-hub", "pull-s3")
VERSION = "1.0"
TIME_TARGET, MEMORY_TARGET = 1.15, 0.20
# PSS is sampled every 100 ms, not bench_build's 10 ms: each read of smaps_rollup takes the read
# process's memory lock, and at 10 ms the sampler took half a core and slowed the 16-thread S3
# stages several times over (26 files/s mirrored at N = 1,000)
SAMPLE_EVERY = 0.1

# --- the synthetic tree ------------------------------------------------------------------------


class _Base:
    """One drawn frame, compressed once up to its last rows: each question's frame only compresses
    its own last rows (a few pixels that spell its number) onto a copy of the compressor."""

    TAIL_ROWS = 2

    def __init__(self, rng: random.Random, side: int, target: int) -> None:
        from PIL import Image, ImageDraw

        bg = tuple(rng.randrange(200, 256) for _ in range(3))
        img = Image.new("RGB", (side, side), bg)  # type: ignore[arg-type]
        draw = ImageDraw.Draw(img)
        cells = rng.choice((3, 4, 8))
        step = side / cells
        for i in range(cells + 1):
            draw.line([(0, round(i * step)), (side, round(i * step))], fill=(40, 40, 40), width=2)
            draw.line([(round(i * step), 0), (round(i * step), side)], fill=(40, 40, 40), width=2)
        for _ in range(rng.randrange(3, 12)):
            x, y = rng.randrange(side - 40), rng.randrange(side - 40)
            w, h = rng.randrange(15, 80), rng.randrange(15, 80)
            color = tuple(rng.randrange(256) for _ in range(3))
            shape = rng.choice(("ellipse", "rectangle", "polygon"))
            if shape == "polygon":
                draw.polygon([(x, y + h), (x + w // 2, y), (x + w, y + h)], fill=color, outline=(0, 0, 0))
            else:
                getattr(draw, shape)([x, y, x + w, y + h], fill=color, outline=(0, 0, 0))
        self.side = side
        row = side * 3
        raw = bytearray(img.tobytes())
        plain = len(zlib.compress(self._rows(raw), 6))
        if plain < target:  # a patch of noise (incompressible) brings the frame to its target size
            noise = random.Random(rng.random()).randbytes(target - plain)
            top = rng.randrange(0, side // 2)
            for i in range(0, len(noise), row // 3):
                r = top + i // (row // 3)
                if r >= side - self.TAIL_ROWS:
                    break
                chunk = noise[i:i + row // 3]
                raw[r * row:r * row + len(chunk)] = chunk
        self.raw = raw
        head = self._rows(raw[: (side - self.TAIL_ROWS) * row])
        self.compressor = zlib.compressobj(6)
        self.head = self.compressor.compress(head)
        self.ihdr = self._chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))

    def _rows(self, raw: bytes | bytearray) -> bytes:
        row = self.side * 3
        return b"".join(b"\0" + bytes(raw[i:i + row]) for i in range(0, len(raw), row))

    @staticmethod
    def _chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    def frame(self, number: int) -> bytes:
        row = self.side * 3
        tail = bytearray(self.raw[(self.side - self.TAIL_ROWS) * row:])
        for bit in range(40):  # the number, one dark or light pixel per bit
            v = 20 if number >> bit & 1 else 235
            tail[bit * 3:bit * 3 + 3] = bytes((v, v, v))
        c = self.compressor.copy()
        idat = self.head + c.compress(self._rows(tail)) + c.flush()
        return b"\x89PNG\r\n\x1a\n" + self.ihdr + self._chunk(b"IDAT", idat) + self._chunk(b"IEND", b"")


_BASES: dict[str, list[_Base]] = {}


def _bases(domain: str, count: int) -> list[_Base]:
    if domain not in _BASES:
        rng = random.Random(f"bases-{domain}")
        _BASES[domain] = [_Base(rng, SIDES[domain], rng.randrange(3_000, 15_000)) for _ in range(count)]
    return _BASES[domain]


def _metadata(domain: str, qid: str, index: int, rng: random.Random) -> tuple[str, dict[str, Any]]:
    """A prompt and metadata shaped like the upstream generators' (see the reference notes)."""
    paths = {"first_image_path": f"{domain}_task/{qid}/first_frame.png",
             "final_image_path": f"{domain}_task/{qid}/final_frame.png"}
    created = f"2026-11-{1 + index % 28:02d}T{index % 24:02d}:{index % 60:02d}:{(index * 7) % 60:02d}.{index % 10**6:06d}Z"
    if domain == "chess":
        side = rng.choice(("White", "Black"))
        move = rng.choice(("Qh7#", "Re8#", "Qxf7#", "Rd8#", "Nf7#", "Qg7#"))
        prompt = f"{side} can deliver checkmate in one move. Show the winning move."
        extra = {"task_category": "Chess", "difficulty": "easy", "side_to_move": side.lower(),
                 "mate_moves": [move], "pattern_description": rng.choice(("back-rank mate", "queen corner mate")),
                 "chess_data": {"generation_method": "mate_in_1_templates",
                                "initial_fen": f"6k1/5ppp/8/8/8/8/{rng.randrange(8)}PPP1PP/R5K1 w - - 0 1",
                                "mate_moves": [move], "pattern_tags": ["back_rank", "rook"]}}
    elif domain == "maze":
        start, end = [rng.randrange(3), rng.randrange(3)], [rng.randrange(3), rng.randrange(3)]
        length = 1 + abs(start[0] - end[0]) + abs(start[1] - end[1])
        prompt = ("Move the green dot from its starting position through the maze paths to the red flag. "
                  "Navigate only through open spaces (white).")
        extra = {"task_category": "Maze", "difficulty": "easy", "maze_size": [3, 3], "start_pos": start,
                 "end_pos": end, "solution_length": length,
                 "maze_data": {"generation_method": "kruskal_algorithm", "solution_length": length}}
    elif domain == "raven":
        rule = rng.choice(("shape progression", "number progression", "rotation", "fill/color", "combination"))
        prompt = ("This is Raven's Progressive Matrices like task. Complete the missing pattern in this 3x3 "
                  "matrix.")
        extra = {"task_category": "AbstractReasoning", "difficulty": "hard" if rule == "combination" else "medium",
                 "raven_data": {"rule": rule, "rule_type": rule.split()[0], "matrix_size": "3x3",
                                "seed": 2025 + index}}
    elif domain == "rotation":
        elev, azim, voxels = rng.randrange(20, 41), rng.randrange(360), rng.choice((8, 9))
        prompt = (f"A {voxels}-block sculpture sits fixed on a table. First frame: Your camera is tilted at "
                  f"{elev}° elevation, viewing from {azim}° azimuth. Final frame: Your camera remains at "
                  f"{elev}° elevation, but rotates horizontally to {(azim + 180) % 360}° azimuth. This is a "
                  "180-degree rotation Create a smooth video showing the camera moving around the sculpture.")
        extra = {"task_category": "3D Mental Rotation", "difficulty": "easy",
                 "rotation_data": {"generation_method": "3D voxel snake with viewpoint rotation",
                                   "num_voxels": voxels, "first_view_elev": elev, "first_view_azim": azim,
                                   "final_view_elev": elev, "final_view_azim": (azim + 180) % 360,
                                   "angle_difference": 180, "structural_complexity": "snake_like_3d_voxels"}}
    else:
        solution = rng.choice(([1, 2, 3, 2, 3, 1, 3, 1, 2], [2, 3, 1, 3, 1, 2, 1, 2, 3], [3, 1, 2, 1, 2, 3, 2, 3, 1]))
        puzzle = list(solution)
        puzzle[rng.randrange(9)] = None
        prompt = ("Solve this 3x3 Sudoku puzzle. Fill in all the empty cells following Sudoku rules: each row and "
                  "column must contain the digits 1, 2, and 3 exactly once. Show the complete solution.")
        extra = {"task_category": "Sudoku", "difficulty": rng.choice(("easy", "medium", "hard")),
                 "sudoku_data": {"puzzle": puzzle, "solution": solution, "difficulty_level": rng.randrange(3),
                                 "num_given": 8},
                 "puzzle_array": puzzle, "solution_array": solution, "num_given": 8}
    return prompt, {"id": qid, "prompt": prompt, **paths, **extra, "created_at": created, "domain": domain}


def _write_questions(qdir: str, domain: str, indices: range, per_domain: int) -> int:
    bases, total = _bases(domain, min(BASES_PER_DOMAIN, per_domain + 1)), 0
    for index in indices:
        rng = random.Random(index)
        qid = f"{domain}_{index:04d}"
        folder = os.path.join(qdir, f"{domain}_task", qid)
        os.mkdir(folder)
        first = rng.randrange(len(bases))
        for name, base, number in (("first_frame.png", bases[first], 2 * index),
                                   ("final_frame.png", bases[(first + 1) % len(bases)], 2 * index + 1)):
            data = base.frame(number)
            with open(os.path.join(folder, name), "wb") as fh:
                fh.write(data)
            total += len(data)
        prompt, meta = _metadata(domain, qid, index, rng)
        with open(os.path.join(folder, "prompt.txt"), "w", encoding="utf-8") as fh:
            fh.write(prompt)
        with open(os.path.join(folder, "question_metadata.json"), "w", encoding="utf-8") as fh:
            json.dump(meta, fh, indent=2)
    return total


def ensure_tree(cache_dir: Path, n: int) -> Path:
    """The data dir for N questions of small drawn frames (``bench_build.cached_tree``)."""
    def fill(qdir: Path) -> int:
        per = [n // len(DOMAINS) + (1 if i < n % len(DOMAINS) else 0) for i in range(len(DOMAINS))]
        jobs = []
        for domain, count in zip(DOMAINS, per, strict=True):
            (qdir / f"{domain}_task").mkdir(parents=True)
            jobs += [(str(qdir), domain, range(i, min(i + 2000, count)), count) for i in range(0, count, 2000)]
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            return sum(pool.map(_write_questions, *zip(*jobs, strict=True)))

    return cached_tree(cache_dir, f"tree-v{TREE_FORMAT}-{n}", n, fill, created_at="2026-11-30T00:00:00Z")


# --- the stages --------------------------------------------------------------------------------


def stage_commands(stage: str, data: Path, scratch: Path, date: str, stages: tuple[str, ...]) -> list[str]:
    cli = [str(Path(sys.executable).with_name("vmeval-hf"))]
    d = ["--data-dir", str(data)]
    # without the S3 stage, the Hub publish logs the version (for verify and pull); with it, the S3
    # stage logs (a version logged already would make its publish a no-op)
    log = [] if "publish-s3" in stages else ["--log"]
    return {
        "validate": [*cli, "validate", *d, "--json"],
        "build": [*cli, "build", *d, "--out", str(scratch / "release"), "--version", VERSION, "--json"],
        "publish-hub": [*cli, "publish", *d, "--version", VERSION, "--date", date, "--no-s3", *log, "--json"],
        "publish-s3": [*cli, "publish", *d, "--version", VERSION, "--date", date, "--log", "--json"],
        "verify": [*cli, "verify", VERSION, *d, "--json"],
        "pull-hub": [*cli, "pull", VERSION, "--from", "hub", "--dest", str(scratch / "pull-hub"), *d, "--json"],
        "pull-s3": [*cli, "pull", VERSION, "--from", "s3", "--dest", str(scratch / "pull-s3"), *d, "--json"],
    }[stage]


def _clean(data: Path) -> None:
    """Remove what the stages leave in the cached tree: releases and the version log."""
    shutil.rmtree(data / "releases", ignore_errors=True)
    shutil.rmtree(data / "data_logging", ignore_errors=True)


def _warm(data: Path) -> None:
    """Read the tree once, untimed, so every N starts from a warm page cache."""
    import subprocess

    subprocess.run(["bash", "-c", "tar -cf - questions | cat >/dev/null"], cwd=data, check=True)


S3_STAGES = ("publish-s3", "verify", "pull-s3")
FLOOR_WORKERS = 16


def reference_work() -> int:
    """A fixed piece of CPU work in the stages' mix (Python bytecode, JSON, SHA-256): the yardstick
    of :class:`MachineGauge`. About 13 ms of CPU on this machine."""
    total = 0
    for i in range(200_000):
        total += i * i % 7
    rows = [{"key": f"data/questions/chess_task/chess_{i:07d}/first_frame.png", "size": i} for i in range(2_000)]
    digest = hashlib.sha256(json.dumps(rows).encode() * 8).digest()
    return total + digest[0]


def _steal_seconds() -> float:
    """CPU seconds the hypervisor has taken from this machine's CPUs so far (``steal`` in /proc/stat)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class MachineGauge:
    """How fast the machine is during a stage, measured beside it: every ``every`` seconds a thread
    runs :func:`reference_work` and records the CPU time it took (``time.thread_time``, so waiting
    for a core is not counted; a shared host's contention, frequency and steal are). The median of
    a stage's samples (``ref_ms``) against the first N's tells a slower machine from more work per
    question; ``steal`` is the share of the machine's CPU time the hypervisor took during the
    stage. The yardstick costs about 0.3% of one core."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self.samples: list[float] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        t0 = time.thread_time()
        reference_work()
        self.samples.append((time.thread_time() - t0) * 1000)

    def _run(self) -> None:
        while not self._done.wait(self.every):
            self._sample()

    def __enter__(self) -> MachineGauge:
        self._steal0, self._t0 = _steal_seconds(), time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        wall = time.perf_counter() - self._t0
        self.steal = (_steal_seconds() - self._steal0) / max(wall * (os.cpu_count() or 1), 1e-9)

    def result(self) -> dict[str, Any]:
        if not self.samples:  # a stage shorter than one interval: one sample now
            self._sample()
        return {"ref_ms": statistics.median(self.samples), "ref_samples": len(self.samples), "steal": self.steal}


class Profiler:
    """``py-spy record`` attached to a stage's process (sampling ``rate`` times a second without
    pausing it, ``--nonblocking``), its stacks written in py-spy's raw (collapsed) format to
    ``<out>/<stage>-<N>.txt`` (``-2``, ``-3`` for the same N again): one line a stack, ``frame;frame;... count``."""

    def __init__(self, py_spy: str, out: Path, rate: int) -> None:
        self.py_spy, self.out, self.rate = py_spy, out, rate
        self.procs: list[subprocess.Popen[bytes]] = []

    def attach(self, name: str) -> Any:
        def start(pid: int) -> None:
            self.out.mkdir(parents=True, exist_ok=True)
            path, again = self.out / f"{name}.txt", 1
            while path.exists():  # the same N run twice: -2, -3, ...
                again += 1
                path = self.out / f"{name}-{again}.txt"
            self.procs.append(subprocess.Popen(
                [self.py_spy, "record", "--pid", str(pid), "--rate", str(self.rate), "--nonblocking",
                 "--format", "raw", "--output", str(path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return start

    def wait(self) -> None:
        for p in self.procs:  # py-spy ends when the process it samples does, and writes its file
            p.wait(timeout=120)
        self.procs.clear()


def server_floor(servers: Servers, bucket: str, prefix: str, n: int) -> float:
    """The moto server's own cost now: ``n`` bare PUTs and HEADs of a 9 KB body (as
    ``scripts/bench_s3_floor.py`` sends them) into a bucket of their own; the mean wall ms a request."""
    assert servers.s3 is not None
    got = probe(client_for(servers.s3.url, FLOOR_WORKERS), bucket, prefix, n, FLOOR_WORKERS, servers.s3.proc.pid)
    return (got["PUT"]["wall_ms"] + got["HEAD"]["wall_ms"]) / 2


def run_size(n: int, stages: tuple[str, ...], cache_dir: Path, servers: Servers, run_id: str,
             keep: bool, floor: int = 0, profiler: Profiler | None = None,
             profile: tuple[str, ...] = ()) -> dict[str, Any]:
    data = ensure_tree(cache_dir, n)
    stats = json.loads((data / ".complete").read_text())
    _clean(data)
    _warm(data)
    bucket = f"bench-scale-{run_id}-{n}"
    servers.create_bucket(bucket)
    scratch = Path(tempfile.mkdtemp(prefix=f"scale-{n}-", dir=cache_dir))
    env = {**os.environ, **servers.env(repo=f"bench/scale-{run_id}-{n}", bucket=bucket, hf_home=scratch / "hf")}
    date = "20270101"
    results: dict[str, Any] = {}
    floors: dict[str, float] = {}
    probing = floor > 0 and any(s in S3_STAGES for s in stages)
    if probing:
        servers.create_bucket(f"bench-floor-{run_id}-{n}")
        floors["before"] = server_floor(servers, f"bench-floor-{run_id}-{n}", "before/", floor)
    try:
        for stage in stages:
            print(f"N={n}: {stage} ...", file=sys.stderr, flush=True)
            s3_pid = servers.s3.proc.pid if servers.s3 is not None else None
            before = server_cpu(s3_pid) if s3_pid else 0.0
            on_start = profiler.attach(f"{stage}-{n}") if profiler is not None and stage in profile else None
            with MachineGauge() as gauge:
                r = measure(stage_commands(stage, data, scratch, date, stages), cwd=scratch, env=env, memory=True,
                            parse_json=False, interval=SAMPLE_EVERY, on_start=on_start)
            if profiler is not None:
                profiler.wait()
            r.pop("stdout", None)
            r.update(gauge.result())
            if s3_pid:  # the moto server's CPU during the stage: its share of the stage's time
                r["s3_server_cpu"] = server_cpu(s3_pid) - before
            results[stage] = r
            print(f"  {r['wall']:.1f} s, {r['tree_pss_mb']:.0f} MB", file=sys.stderr, flush=True)
            if stage == "build" and not keep:
                shutil.rmtree(scratch / "release", ignore_errors=True)
        if probing:
            floors["after"] = server_floor(servers, f"bench-floor-{run_id}-{n}", "after/", floor)
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)
            _clean(data)
    return {"questions": n, "png_mb": stats["png_bytes"] / 1e6, "stages": results, "server_floor_ms": floors}


def table(results: list[dict[str, Any]]) -> list[str]:
    """One line a stage and N. ``ratio`` and ``CPU ratio``: time and client CPU per question against
    the first N's; ``ref ratio``: the machine's yardstick (:class:`MachineGauge`) against the first
    N's, and ``CPU / ref``: the CPU ratio divided by it, the growth with the machine's drift taken
    out; ``steal``: the share of CPU time the hypervisor took."""
    base = results[0]
    lines = [f"{'stage':12} {'N':>8} {'wall s':>9} {'ms/question':>12} {'ratio':>7} {'CPU s':>8} "
             f"{'CPU ratio':>9} {'moto CPU s':>10} {'ref ms':>7} {'ref ratio':>9} {'CPU / ref':>9} {'steal':>6} "
             f"{'peak PSS MB':>12} {'growth':>8}  verdict"]

    def x(v: float | None) -> str:
        return "" if v is None else f"{v:.2f}x"

    for res in results:
        n = res["questions"]
        for stage, r in res["stages"].items():
            per = r["wall"] / n
            b = base["stages"].get(stage)
            ratio = per / (b["wall"] / base["questions"]) if b else None
            growth = r["tree_pss_mb"] / b["tree_pss_mb"] - 1 if b else None
            cpu_ratio = r["cpu"] / n / (b["cpu"] / base["questions"]) if b else None
            ref_ratio = r["ref_ms"] / b["ref_ms"] if b and "ref_ms" in r and "ref_ms" in b else None
            net = cpu_ratio / ref_ratio if cpu_ratio is not None and ref_ratio else None
            moto = r.get("s3_server_cpu")
            verdict = ""
            if res is not base and ratio is not None and growth is not None:
                verdict = "ok" if ratio <= TIME_TARGET and growth <= MEMORY_TARGET else "MISSED:" + ",".join(
                    w for w, bad in (("time", ratio > TIME_TARGET), ("memory", growth > MEMORY_TARGET)) if bad)
            ref = f"{r['ref_ms']:.2f}" if "ref_ms" in r else ""
            steal = f"{r['steal']:.1%}" if "steal" in r else ""
            lines.append(f"{stage:12} {n:>8,} {r['wall']:9.1f} {per * 1000:12.2f} {x(ratio):>7} {r['cpu']:8.1f} "
                         f"{x(cpu_ratio):>9} {'' if moto is None else f'{moto:.1f}':>10} {ref:>7} "
                         f"{x(ref_ratio):>9} {x(net):>9} {steal:>6} {r['tree_pss_mb']:12.0f} "
                         f"{'' if growth is None else f'{growth:+.0%}':>8}  {verdict}")
    for res in results:
        f, b = res.get("server_floor_ms") or {}, base.get("server_floor_ms") or {}
        if f:
            ratio = f" ({f['after'] / b['after']:.2f}x the first N's after)" if res is not base and b else ""
            lines.append(f"server floor at N={res['questions']:,}: {f['before']:.2f} ms a request before the "
                         f"stages, {f['after']:.2f} ms after{ratio}")
    return lines


def _frame(frame: str) -> str:
    """py-spy's ``fn (path/to/file.py:123)`` as ``fn (to/file.py)``: no line, the path's last two parts."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    return f"{name} ({'/'.join(path.split('/')[-2:])})" if path else name


def _waiting(frame: str) -> bool:
    """A stack ending here waits (py-spy counts a thread blocked in a socket read as active)."""
    return frame.split(" (")[0] in {"SocketIO.readinto", "Condition.wait", "Event.wait", "Thread.join",
                                    "_wait_for_tstate_lock", "select", "poll", "Queue.get", "_worker"}


def profile_summary(folder: Path, top: int = 25) -> list[str]:
    """The stacks :class:`Profiler` wrote, compared across N: for each stage, the functions with the
    most samples (self: the stack's last frame; total: anywhere in it), in samples per 1,000
    questions, and each N's figure against the first N's. Read from ``<stage>-<N>[-k].txt``."""
    import re
    from collections import Counter, defaultdict

    runs: dict[str, dict[str, tuple[Counter[str], Counter[str], int]]] = defaultdict(dict)
    for path in sorted(folder.glob("*.txt")):
        m = re.fullmatch(r"(.+?)-(\d+)(?:-(\d+))?", path.stem)
        if not m:
            continue
        stage, n = m.group(1), int(m.group(2))
        own, anywhere = Counter[str](), Counter[str]()
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames = [_frame(f) for f in stack.split(";")]
            own[frames[-1]] += int(count)
            for f in set(frames):
                anywhere[f] += int(count)
        runs[stage][path.stem] = (own, anywhere, n)
    lines: list[str] = []
    for stage, by_run in runs.items():
        names = sorted(by_run, key=lambda k: (by_run[k][2], k))
        for kind, idx in (("self", 0), ("total", 1)):
            lines.append(f"{stage}: samples per 1,000 questions ({kind}); ratio against {names[0]}")
            lines.append(f"{'function':70}" + "".join(f"{k:>16}" for k in names) + "   ratio(s)")
            ranked = sum((by_run[k][idx] for k in names), Counter[str]()).most_common(top)
            for fn, _ in ranked:
                per = [by_run[k][idx][fn] / by_run[k][2] * 1000 for k in names]
                base = per[0] or float("nan")
                lines.append(f"{fn[:70]:70}" + "".join(f"{v:16.1f}" for v in per) + "   "
                             + " ".join(f"{v / base:.2f}x" for v in per[1:]))
            for label, counted in (("(all samples)", lambda fn: True),
                                   ("(all but waits for a socket or a lock)", lambda fn: not _waiting(fn))):
                totals = [sum(c for fn, c in by_run[k][0].items() if counted(fn)) / by_run[k][2] * 1000
                          for k in names]
                lines.append(f"{label:70}" + "".join(f"{v:16.1f}" for v in totals) + "   "
                             + " ".join(f"{v / totals[0]:.2f}x" for v in totals[1:]))
            lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, nargs="+", default=[1000], metavar="N",
                    help="tree sizes, smallest first (default 1000); ratios are against the first. An N may come "
                         "again (10000 100000 10000), to bracket the big run with two baselines")
    ap.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES),
                    help="stages to run, in this order (default: all; verify and pull need a publish "
                         "stage; without publish-s3, pull-s3 cannot run)")
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "vmeval-scale",
                    help="where generated trees are kept between runs (default /tmp/vmeval-scale)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folders (releases, pulls)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--floor", type=int, default=2000, metavar="REQUESTS",
                    help="with an S3 stage: time this many bare PUTs and HEADs against the same moto server "
                         "before and after each N's stages, to tell the server's slowing (it holds every "
                         "object sent) from ours (default 2000; 0: none)")
    ap.add_argument("--listing", choices=LISTINGS, default="indexed",
                    help="how the moto server answers ListObjectsV2: from a sorted index, in time that does "
                         "not grow with the bucket, as S3 does (default), or with moto's own code, which sorts "
                         "the whole prefix for every page of 1,000 (see scripts/bench_servers.py)")
    ap.add_argument("--profile", nargs="+", choices=STAGES, default=[], metavar="STAGE",
                    help="sample these stages' processes with py-spy (--py-spy), without pausing them; the "
                         "stacks go to --profile-dir as <stage>-<N>.txt (py-spy's raw format)")
    ap.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy", help="the py-spy to run (default: on PATH)")
    ap.add_argument("--profile-dir", type=Path, default=Path("bench-scale-profiles"))
    ap.add_argument("--profile-rate", type=int, default=10, help="samples a second (default 10)")
    ap.add_argument("--summarize-profiles", type=Path, metavar="DIR",
                    help="print the comparison of the stacks in DIR (from --profile) across N, and run nothing")
    args = ap.parse_args(argv)
    if args.summarize_profiles is not None:
        print("\n".join(profile_summary(args.summarize_profiles)))
        return 0
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    profiler = Profiler(args.py_spy, args.profile_dir, args.profile_rate) if args.profile else None
    stages = tuple(s for s in STAGES if s in args.stages)
    run_id = time.strftime("%H%M%S")
    results = []
    for n in args.questions:  # each N on servers of its own: the 100,000 do not pay for what the 10,000 left
        with tempfile.TemporaryDirectory(prefix="servers-", dir=args.cache_dir) as root, \
                Servers(Path(root), s3=True, listing=args.listing) as servers:
            results.append(run_size(n, stages, args.cache_dir, servers, run_id, args.keep, args.floor,
                                    profiler, tuple(args.profile)))
        if not args.json:
            print("\n".join(table(results)) + "\n", flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
