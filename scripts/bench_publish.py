#!/usr/bin/env python3
"""What users run before anything leaves the machine, on frames like the real ones.

    python scripts/bench_publish.py --questions 10000 --repeat 3

The tree: N questions over the five domains, made from a pool of real questions written by
``vmeval-hf create`` (the five generators; 40 a domain by default, cached under
``--cache-dir``). Question ``i`` copies pool question ``i // 5 mod pool`` of its domain, with its
own id in the folder, the metadata and the manifest, and each frame made distinct bytes by a
``tEXt`` chunk naming the copy (same pixels, same compressed image data as the generator's: the
pixel check does the work it does on a generated frame). The generators' frames are 4-20 KB
PNGs of 526-600 px a side that decode in 4-5 ms with Pillow; ``bench_build.py``'s noise PNGs
decode in 1.6 ms.

Then, each a subprocess, interleaved over ``--repeat`` rounds, every timed run after an untimed
read of the tree so all read a warm page cache (medians are reported):

- ``floor``: ``tar -cf - questions | cat >/dev/null``, every input byte read once;
- ``hash``: ``sha256sum`` of every file of the tree, in one process (``xargs``): hashing the tree;
- ``build``: ``vmeval-hf build`` (chunk and CRC checks only: the build never checked pixels);
- ``validate``: ``vmeval-hf validate`` with an empty frame-verdict cache, and ``validate-again``
  on the unchanged tree (the cache filled by the run before);
- ``publish-check``: the Hub-free part of ``publish``, the library call it makes
  (``build_release(decode_images=True)``: validate every frame's image data, then build), with
  an empty cache, and ``publish-check-again`` on the unchanged tree;
- ``publish-noop``: ``vmeval-hf publish --version 1.0 --no-s3`` of a version already published
  and logged with this content, against the project's Hub server (started here on 127.0.0.1):
  what a maintainer's re-run of an unchanged tree costs.

Frames whose image data was inflated are counted in each run (``vmeval-hf validate`` prints
them; the library call returns them). Targets (issue 21): ``validate`` within 1.5x of
``build``; ``publish-check`` at most 1.5x ``build``; the runs on the unchanged tree inflate no
frame and take at most 1.2x ``hash``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_build import cached_tree, measure  # noqa: E402  (trees made once; one subprocess tree's wall, CPU, memory)

DOMAINS = ("chess", "maze", "raven", "rotation", "sudoku")
VMEVAL = [sys.executable, "-m", "vmeval_hf"]


# --- the tree -------------------------------------------------------------------------------------


def ensure_pool(cache_dir: Path, per_domain: int) -> Path:
    """Real questions from the five generators (``vmeval-hf create``), made once."""
    pool = cache_dir / f"pool-{per_domain}"
    if not (pool / "questions" / "vmeval_dataset.json").is_file():
        shutil.rmtree(pool, ignore_errors=True)
        subprocess.run([*VMEVAL, "create", "--pairs-per-domain", str(per_domain), "--output-dir",
                        str(pool / "questions")], check=True, stdout=subprocess.DEVNULL)
    return pool


def _text_chunk(copy: int) -> bytes:
    data = b"Comment\x00vmeval bench copy %d" % copy
    return struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))


def _distinct(png: bytes, copy: int) -> bytes:
    """``png`` with a ``tEXt`` chunk before its ``IEND``: other bytes, the same image."""
    return png[:-12] + _text_chunk(copy) + png[-12:]


def ensure_tree(cache_dir: Path, n: int, per_domain: int) -> Path:
    """N questions copied from the pool (see the module docstring), made once (``bench_build.cached_tree``)."""
    def fill(qdir: Path) -> int:
        pool = ensure_pool(cache_dir, per_domain) / "questions"
        png = 0
        for i in range(n):
            domain, k = DOMAINS[i % 5], i // 5
            src_id, new_id = f"{domain}_{k % per_domain:04d}", f"{domain}_{k:04d}"
            src, dst = pool / f"{domain}_task" / src_id, qdir / f"{domain}_task" / new_id
            dst.mkdir(parents=True)
            for name in ("first_frame.png", "final_frame.png"):
                data = _distinct((src / name).read_bytes(), i * 2 + (name == "final_frame.png"))
                png += (dst / name).write_bytes(data)
            (dst / "prompt.txt").write_bytes((src / "prompt.txt").read_bytes())
            meta = (src / "question_metadata.json").read_text(encoding="utf-8").replace(src_id, new_id)
            (dst / "question_metadata.json").write_text(meta, encoding="utf-8")
        return png

    return cached_tree(cache_dir, f"tree-{n}-{per_domain}", n, fill)


# --- the runs -------------------------------------------------------------------------------------

_CHECK = """
import json, sys, time
t = time.perf_counter()
from vmeval_hf.release.build import build_release
r = build_release(sys.argv[1], sys.argv[2], version="1.0", decode_images=sys.argv[3] == "1")
print(json.dumps({"work": time.perf_counter() - t, "checked": r.frames_checked, "cached": r.frames_cached}))
"""
_FRAMES = re.compile(r"frames:? +(\d+) checked, (\d+) passed before")


def _env(scratch: Path, **more: str) -> dict[str, str]:
    return {**os.environ, "VMEVAL_CACHE_DIR": str(scratch / "verdicts"), "HF_HUB_OFFLINE": "1", **more}


def _fresh_cache(scratch: Path) -> None:
    shutil.rmtree(scratch / "verdicts", ignore_errors=True)


def _cli(args: list[str], data: Path, scratch: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    r = measure([*VMEVAL, *args], cwd=scratch, env=env or _env(scratch), parse_json=False)
    m = _FRAMES.search(r.pop("stdout"))
    r["checked"], r["cached"] = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    return r


def _library(data: Path, scratch: Path, decode: bool) -> dict[str, Any]:
    out = scratch / "release"
    try:
        return measure([sys.executable, "-c", _CHECK, str(data), str(out), "1" if decode else "0"],
                       cwd=scratch, env=_env(scratch))
    finally:
        shutil.rmtree(out, ignore_errors=True)


def run(name: str, data: Path, scratch: Path, hub: str | None) -> dict[str, Any]:
    """One timed run of contender ``name`` (see the module docstring)."""
    if name == "floor":
        return measure(["bash", "-c", "tar -cf - questions | cat >/dev/null"], cwd=data, parse_json=False)
    if name == "hash":
        return measure(["bash", "-c", "find questions -type f -print0 | xargs -0 sha256sum >/dev/null"],
                       cwd=data, parse_json=False)
    if name in ("validate", "publish-check"):
        _fresh_cache(scratch)
    if name.startswith("validate"):
        return _cli(["validate", "--data-dir", str(data)], data, scratch)
    if name.startswith("publish-check"):
        return _library(data, scratch, decode=True)
    if name == "build":
        return _library(data, scratch, decode=False)
    if name == "publish-noop":
        env = _env(scratch, HF_ENDPOINT=hub or "", HF_TOKEN="bench", HF_HUB_OFFLINE="0")
        return _cli(["publish", "--data-dir", str(data), "--version", "1.0", "--no-s3"], data, scratch, env)
    raise ValueError(name)


def publish_once(data: Path, scratch: Path, hub: str) -> None:
    """Publish and log version 1.0 (the Hub side), so that ``publish-noop`` re-publishes it."""
    env = _env(scratch, HF_ENDPOINT=hub, HF_TOKEN="bench", HF_HUB_OFFLINE="0")
    subprocess.run([*VMEVAL, "publish", "--data-dir", str(data), "--version", "1.0", "--no-s3", "--log"],
                   check=True, env=env, cwd=scratch, stdout=subprocess.DEVNULL)


ORDER = ("floor", "hash", "build", "validate", "validate-again", "publish-check", "publish-check-again",
         "publish-noop")


def bench(data: Path, scratch: Path, repeat: int, hub: str | None) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in ORDER if hub or name != "publish-noop"}
    for _ in range(repeat):
        for name in runs:  # "-again" follows its cold run: the cache it finds is the one that run filled
            measure(["bash", "-c", "tar -cf - questions | cat >/dev/null"], cwd=data, parse_json=False)
            runs[name].append(run(name, data, scratch, hub))
    return runs


def report(n: int, runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    med = {name: statistics.median(r["wall"] for r in rs) for name, rs in runs.items()}
    cpu = {name: statistics.median(r["cpu"] for r in rs) for name, rs in runs.items()}
    lines = [f"N = {n} questions ({2 * n} frames), {len(next(iter(runs.values())))} runs each, medians",
             f"{'run':22} {'wall s':>8} {'cpu s':>8} {'x build':>8} {'x hash':>8} {'inflated':>9} {'cached':>8}"]
    for name, rs in runs.items():
        inflated = max(r.get("checked", 0) for r in rs)
        cached = min(r.get("cached", 0) for r in rs)
        lines.append(f"{name:22} {med[name]:8.2f} {cpu[name]:8.2f} {med[name] / med['build']:8.2f} "
                     f"{med[name] / med['hash']:8.2f} {inflated:9d} {cached:8d}")
    checks = [("validate <= 1.5x build", med["validate"] <= 1.5 * med["build"]),
              ("publish-check <= 1.5x build", med["publish-check"] <= 1.5 * med["build"]),
              ("validate-again: 0 inflated", max(r["checked"] for r in runs["validate-again"]) == 0),
              ("validate-again <= 1.2x hash", med["validate-again"] <= 1.2 * med["hash"]),
              ("publish-check-again: 0 inflated", max(r["checked"] for r in runs["publish-check-again"]) == 0)]
    if "publish-noop" in runs:
        checks += [("publish-noop: 0 inflated", max(r["checked"] for r in runs["publish-noop"]) == 0),
                   ("publish-noop <= 1.2x hash", med["publish-noop"] <= 1.2 * med["hash"])]
    lines += [f"  {'PASS' if ok else 'MISS'}  {what}" for what, ok in checks]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, nargs="+", default=[10_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pool", type=int, default=40, help="real questions per domain to copy from")
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "vmeval-bench-publish")
    ap.add_argument("--no-hub", action="store_true", help="leave out publish-noop (no Hub server)")
    args = ap.parse_args(argv)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    for n in args.questions:
        data = ensure_tree(args.cache_dir, n, args.pool)
        scratch = Path(tempfile.mkdtemp(prefix="vmeval-bench-publish-"))
        try:
            if args.no_hub:
                runs = bench(data, scratch, args.repeat, None)
            else:
                runs = _with_hub(data, scratch, args.repeat)
            print("\n".join(report(n, runs)), flush=True)
            print(json.dumps({"n": n, "runs": runs}), file=sys.stderr)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


def _with_hub(data: Path, scratch: Path, repeat: int) -> dict[str, list[dict[str, Any]]]:
    """The runs, with the project's Hub server up on 127.0.0.1 and version 1.0 published to it
    (the tree's log and release folder are copied aside first and put back after)."""
    from vmeval_hf.sandbox.hub_server import HubServer

    work = scratch / "data"
    shutil.copytree(data, work, symlinks=True)
    with HubServer(scratch / "hub-store", token="bench") as server:
        publish_once(work, scratch, server.url)
        return bench(work, scratch, repeat, server.url)


if __name__ == "__main__":
    raise SystemExit(main())
