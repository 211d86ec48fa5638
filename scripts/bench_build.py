#!/usr/bin/env python3
"""Benchmark the release build against the read floor and the ``datasets`` way.

    python scripts/bench_build.py --questions 2000
    python scripts/bench_build.py --questions 2000 10000 --repeat 3

For each N it builds (once, cached under ``--cache-dir`` keyed by N) a synthetic
question tree: N questions over five domains, two noise PNGs each (5-60 KB, drawn
from a triangular distribution peaking at 60 KB), a prompt and a metadata file.
Then it runs, each in its own subprocess, ``--repeat`` times, interleaved:

- ``floor``: ``tar -cf - questions | cat >/dev/null``, reading every input byte once;
- ``ours``: ``vmeval_hf.build_release`` (validate, hash, Parquet, card, manifest);
- ``ours-serial`` (only with ``--only``): the same build in one process (``workers=1``);
- ``datasets``: ``Dataset.from_generator`` with ``Image()`` features per domain, bytes
  embedded with ``datasets.table.embed_table_storage`` the way ``push_to_hub`` does it
  (``map(..., keep_in_memory=True)``), then ``to_parquet`` (plain ``to_parquet`` would
  write only paths);
- ``pyarrow``: a bare writer, files read into ``from_pylist`` tables of 100 rows, no
  validation or hashing: what the Parquet part alone costs.

The page cache cannot be dropped here, so every contender reads a warm cache: each
timed run follows an untimed floor run. (This machine's kernel pages out page-cache
pages it sees as idle for a minute, a DAMON ``pageout`` scheme; directory blocks then
come back from disk one by one, which made some runs 20-40% slower at random.) Times
are medians: ``wall`` is the whole subprocess (interpreter start and imports included),
``work`` is the timed call inside it. Each round of runs starts with the next contender, so none always follows the
same one. Memory: ``ru_maxrss`` of the largest process (from ``wait4``, in the timed runs),
and the peaks of the summed RSS and of the summed PSS of the whole process tree, sampled
every 10 ms in one more, untimed run per contender (our build forks workers; ``tar | cat``
is two processes): the sampling thread takes CPU, which slows a contender that uses both
cores more than one that uses one, and reading PSS slows the process it reads. Summed RSS
counts every page a fork shares with its parent once per process; summed PSS counts it
once in all, so it is the tree's real footprint and what the memory targets are judged on.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

try:
    import vmeval_hf  # noqa: F401
except ImportError:  # run from a checkout without installing: use the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DOMAINS = ("chess", "maze", "raven", "rotation", "sudoku")
DIFFICULTIES = ("easy", "medium", "hard")
TREE_FORMAT = 1  # bump when the generated tree changes, so stale caches are not reused
PNG_SIDE = 400
CONTENDERS = ("floor", "ours", "ours-serial", "datasets", "pyarrow")
DEFAULT_CONTENDERS = ("floor", "ours", "datasets", "pyarrow")

# --- the synthetic tree --------------------------------------------------------------


def _png(rng: random.Random, target: int) -> bytes:
    """A PNG of about ``target`` bytes: rows of noise (incompressible) over a flat background."""
    import io

    import numpy as np
    from PIL import Image

    rows = max(1, min(PNG_SIDE, round(target / (PNG_SIDE * 3))))
    pixels = np.empty((PNG_SIDE, PNG_SIDE, 3), dtype=np.uint8)
    pixels[:] = [rng.randrange(256) for _ in range(3)]
    noise = np.random.default_rng(rng.randrange(2**32))
    pixels[:rows] = noise.integers(0, 256, size=(rows, PNG_SIDE, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def _write_questions(qdir: Path, items: list[tuple[str, int]]) -> int:
    total = 0
    for domain, index in items:
        rng = random.Random(f"{domain}-{index}")
        qid = f"{domain}_{index:04d}"
        folder = qdir / f"{domain}_task" / qid
        folder.mkdir(parents=True)
        for name in ("first_frame.png", "final_frame.png"):
            data = _png(rng, round(rng.triangular(5_000, 60_000, 60_000)))
            (folder / name).write_bytes(data)
            total += len(data)
        prompt = f"Move the pieces so that the {domain} puzzle {index} reaches the target state."
        (folder / "prompt.txt").write_text(prompt, encoding="utf-8")
        meta = {"id": qid, "domain": domain, "prompt": prompt, "difficulty": DIFFICULTIES[index % 3],
                "task_category": domain.capitalize(),
                "first_image_path": f"{domain}_task/{qid}/first_frame.png",
                "final_image_path": f"{domain}_task/{qid}/final_frame.png",
                f"{domain}_data": {"index": index, "seed": rng.randrange(10**6)}}
        (folder / "question_metadata.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return total


def cached_tree(cache_dir: Path, name: str, n: int, fill: Callable[[Path], int],
                created_at: str | None = None) -> Path:
    """The data dir ``<cache_dir>/<name>/data`` of a synthetic tree of N questions, made once and
    reused: ``fill(questions_dir)`` writes the question folders (and returns the bytes of PNG it
    wrote) in a temp folder, the manifest is written (``created_at``: its date), and the folder is
    moved into place with a ``.complete`` mark, so an interrupted run never leaves half a tree."""
    data_dir = cache_dir / name / "data"
    if (data_dir / ".complete").is_file():
        return data_dir
    shutil.rmtree(data_dir.parent, ignore_errors=True)
    building = cache_dir / f".{name}.tmp"
    shutil.rmtree(building, ignore_errors=True)
    qdir = building / "data" / "questions"
    qdir.mkdir(parents=True)
    t0 = time.perf_counter()
    print(f"generating {n} questions under {data_dir} (once) ...", file=sys.stderr, flush=True)
    png_bytes = fill(qdir)
    t1 = time.perf_counter()
    from vmeval_hf.tree.manifest_sync import write_manifest

    write_manifest(building / "data", created_at=created_at)
    (building / "data" / ".complete").write_text(json.dumps({"questions": n, "png_bytes": png_bytes}))
    os.replace(building, data_dir.parent)
    print(f"  done in {time.perf_counter() - t0:.0f} s ({t1 - t0:.0f} s of files, the rest the manifest): "
          f"{png_bytes / 1e6:.0f} MB of PNG", file=sys.stderr)
    return data_dir


def ensure_tree(cache_dir: Path, n: int) -> Path:
    """The data dir for N questions of noise PNGs (:func:`cached_tree`)."""
    def fill(qdir: Path) -> int:
        items = [(DOMAINS[i % len(DOMAINS)], i // len(DOMAINS)) for i in range(n)]
        chunks = [items[i:i + 200] for i in range(0, n, 200)]
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            return sum(pool.map(_write_questions, [qdir] * len(chunks), chunks))

    return cached_tree(cache_dir, f"tree-v{TREE_FORMAT}-{n}", n, fill)


def tree_stats(data_dir: Path) -> dict[str, int]:
    return json.loads((data_dir / ".complete").read_text())  # type: ignore[no-any-return]


# --- contenders (each runs in a child process: ``--_run NAME``) ---------------------------


def run_ours(data_dir: Path, out: Path, workers: int | None = None) -> None:
    from vmeval_hf.release import build

    build.build_release(data_dir, out, version="0.0-bench", workers=workers)


def run_ours_serial(data_dir: Path, out: Path) -> None:
    run_ours(data_dir, out, workers=1)  # the same build in one process, no forked workers


def run_datasets(data_dir: Path, out: Path) -> None:
    import datasets
    from datasets.arrow_writer import get_writer_batch_size_from_features
    from datasets.table import embed_table_storage

    datasets.disable_progress_bars()
    features = datasets.Features({
        "id": datasets.Value("string"), "domain": datasets.Value("string"),
        "task_category": datasets.Value("string"), "difficulty": datasets.Value("string"),
        "prompt": datasets.Value("string"), "first_frame": datasets.Image(), "final_frame": datasets.Image(),
        "metadata": datasets.Value("string"), "source_path": datasets.Value("string"),
    })
    batch = get_writer_batch_size_from_features(features)

    def rows(domain_dir: str) -> Any:
        for folder in sorted(Path(domain_dir).iterdir()):
            meta_text = (folder / "question_metadata.json").read_text(encoding="utf-8")
            meta = json.loads(meta_text)
            yield {"id": folder.name, "domain": meta["domain"], "task_category": meta.get("task_category"),
                   "difficulty": meta.get("difficulty"), "prompt": (folder / "prompt.txt").read_text(encoding="utf-8"),
                   "first_frame": str(folder / "first_frame.png"), "final_frame": str(folder / "final_frame.png"),
                   "metadata": meta_text, "source_path": f"{folder.parent.name}/{folder.name}"}

    for domain_dir in sorted((data_dir / "questions").glob("*_task")):
        domain = domain_dir.name.removesuffix("_task")
        ds = datasets.Dataset.from_generator(rows, features=features, gen_kwargs={"domain_dir": str(domain_dir)})
        # what push_to_hub does per shard before writing it
        fmt = ds.format
        ds = ds.with_format("arrow").map(embed_table_storage, batched=True, batch_size=batch, keep_in_memory=True)
        ds = ds.with_format(**fmt)
        (out / "data" / domain).mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(out / "data" / domain / "test-00000-of-00001.parquet"), batch_size=batch)


def run_pyarrow(data_dir: Path, out: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vmeval_hf.release.schema import arrow_schema

    schema = arrow_schema()
    for domain_dir in sorted((data_dir / "questions").glob("*_task")):
        domain = domain_dir.name.removesuffix("_task")
        (out / "data" / domain).mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(str(out / "data" / domain / "test-00000-of-00001.parquet"), schema) as writer:
            batch: list[dict[str, Any]] = []
            for folder in sorted(domain_dir.iterdir()):
                meta_text = (folder / "question_metadata.json").read_text(encoding="utf-8")
                batch.append({
                    "id": folder.name, "domain": domain, "prompt": (folder / "prompt.txt").read_text(encoding="utf-8"),
                    "first_frame": {"bytes": (folder / "first_frame.png").read_bytes(), "path": "first_frame.png"},
                    "final_frame": {"bytes": (folder / "final_frame.png").read_bytes(), "path": "final_frame.png"},
                    "metadata": meta_text, "source_path": f"{domain_dir.name}/{folder.name}",
                })
                if len(batch) == 100:
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    batch = []
            if batch:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))


# imported before the clock starts, so ``work`` is the work and ``wall - work`` the start-up
# (pyarrow imports pandas on its first pa.array() from Python objects, ~0.3 s here: our build
# never calls it, the other two do)
_OURS_PRELOAD = ["pyarrow.parquet", "numpy", "PIL.PngImagePlugin", "huggingface_hub.repocard", "jinja2",
                 "vmeval_hf.release.build", "vmeval_hf.release.card"]
PRELOAD = {
    "ours": _OURS_PRELOAD,
    "ours-serial": _OURS_PRELOAD,
    "datasets": ["datasets", "datasets.table", "pandas"],
    "pyarrow": ["pyarrow.parquet", "pandas", "vmeval_hf.release.schema"],
}


def _child(name: str, data_dir: Path, out: Path, profile: Path | None) -> None:
    import importlib

    fn = {"ours": run_ours, "ours-serial": run_ours_serial, "datasets": run_datasets, "pyarrow": run_pyarrow}[name]
    for module in PRELOAD[name]:
        importlib.import_module(module)
    t0 = time.perf_counter()
    if profile is not None:
        import cProfile

        cProfile.runctx("fn(data_dir, out)", globals(), {"fn": fn, "data_dir": data_dir, "out": out},
                        str(profile))
    else:
        fn(data_dir, out)
    print(json.dumps({"work": time.perf_counter() - t0}))


# --- measuring ---------------------------------------------------------------------------------


def _mem_kb(pid: int, pss: bool) -> int:
    """RSS (cheap: /proc/PID/status) or PSS (/proc/PID/smaps_rollup) of one process, in KiB.

    PSS splits each shared page among the processes mapping it, so summing PSS over a forked
    tree counts the parent's pages once, where RSS counts them in every fork. Reading it walks
    the page tables under the process's memory lock, which slows the process down, so it is
    sampled only in a run of its own, never in a timed one.
    """
    path, key = (f"/proc/{pid}/smaps_rollup", "Pss:") if pss else (f"/proc/{pid}/status", "VmRSS:")
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree_pids(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except OSError:
            continue
    return pids


def measure(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, memory: bool = False,
            parse_json: bool = True, interval: float = 0.01,
            on_start: Callable[[int], Any] | None = None) -> dict[str, Any]:
    """Run ``cmd``; wall time, CPU (user + sys of it and its reaped children, ``cpu``) and ru_maxrss
    of the largest process. With ``memory``, also the sampled peaks of the tree's summed RSS
    (``tree_rss_mb``) and summed PSS (``tree_pss_mb``): the sampling thread takes CPU from a
    process that uses both cores, so such a run is not timed. The last line of stdout is parsed
    as JSON into the result (``parse_json``), else the whole stdout is returned as ``stdout``.
    ``interval``: seconds between memory samples (a busy, many-threaded process is slowed more
    by each read of its PSS). ``on_start`` is called with the child's pid once it is started (to
    attach a profiler to it)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if on_start is not None:
        on_start(proc.pid)
    peaks = {False: 0, True: 0}  # pss? -> peak KiB
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            pids = _tree_pids(proc.pid)
            for pss in peaks:
                peaks[pss] = max(peaks[pss], sum(_mem_kb(p, pss) for p in pids))
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    if memory:
        sampler.start()
    errs: list[bytes] = []  # read stderr alongside stdout: a full stderr pipe would block the child
    reader = threading.Thread(target=lambda: errs.append(proc.stderr.read() if proc.stderr else b""), daemon=True)
    reader.start()
    out = proc.stdout.read() if proc.stdout else b""
    reader.join()
    err = errs[0] if errs else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    if memory:
        sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.decode(errors='replace')}")
    result: dict[str, Any] = {"wall": wall, "maxrss_mb": usage.ru_maxrss / 1024,
                              "cpu": usage.ru_utime + usage.ru_stime}
    if memory:
        result.update(tree_rss_mb=peaks[False] / 1024, tree_pss_mb=peaks[True] / 1024)
    if not parse_json:
        result["stdout"] = out.decode(errors="replace")
        return result
    lines = out.decode().strip().splitlines()
    result.update(json.loads(lines[-1]) if lines else {"work": wall})
    return result


def run_contender(name: str, data_dir: Path, scratch: Path, profile: Path | None = None,
                  memory: bool = False) -> dict[str, Any]:
    if name == "floor":
        return measure(["bash", "-c", "tar -cf - questions | cat >/dev/null"], cwd=data_dir, memory=memory)
    out = scratch / f"out-{name}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = {**os.environ, "HF_DATASETS_CACHE": str(scratch / "hf-cache"), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_run", name, "--_data", str(data_dir),
           "--_out", str(out / "release")]
    if profile is not None:
        cmd += ["--_profile", str(profile)]
    try:
        return measure(cmd, cwd=scratch, env=env, memory=memory)
    finally:
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(scratch / "hf-cache", ignore_errors=True)


def bench(n: int, repeat: int, cache_dir: Path, contenders: tuple[str, ...]) -> dict[str, Any]:
    data_dir = ensure_tree(cache_dir, n)
    stats = tree_stats(data_dir)
    with tempfile.TemporaryDirectory(prefix="bench-", dir=cache_dir) as tmp:
        scratch = Path(tmp)
        runs: dict[str, list[dict[str, Any]]] = {c: [] for c in contenders}
        for i in range(repeat):
            # each round starts with the next contender, so none always follows the same one
            for c in contenders[i % len(contenders):] + contenders[:i % len(contenders)]:
                run_contender("floor", data_dir, scratch)  # untimed: the whole tree in the page cache
                runs[c].append(run_contender(c, data_dir, scratch))
        # one more, untimed run per contender samples the tree's memory (the sampler takes CPU)
        memory = {c: run_contender(c, data_dir, scratch, memory=True) for c in contenders}
    med = {c: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for c, rs in runs.items()}
    for c, rs in runs.items():  # the spread of the timed runs: the machine is shared and noisy
        med[c]["work_min"], med[c]["work_max"] = min(r["work"] for r in rs), max(r["work"] for r in rs)
        med[c]["tree_rss_mb"], med[c]["tree_pss_mb"] = memory[c]["tree_rss_mb"], memory[c]["tree_pss_mb"]
    return {"questions": n, "png_mb": stats["png_bytes"] / 1e6, "repeat": repeat, "median": med}


def report(res: dict[str, Any]) -> list[str]:
    med = res["median"]
    floor = med.get("floor", {}).get("wall")
    ours = med.get("ours", {}).get("work")
    lines = [f"N = {res['questions']} questions, {res['png_mb']:.0f} MB of PNG, median of {res['repeat']} "
             f"(warm page cache)",
             f"{'contender':12} {'work s':>8} {'work range':>11} {'wall s':>8} {'maxrss MB':>10} {'tree RSS MB':>12} "
             f"{'tree PSS MB':>12} {'work/floor':>11} {'work/ours':>10}"]
    for c, m in med.items():
        vs_floor = f"{m['work'] / floor:.2f}x" if floor else "-"
        vs_ours = f"{m['work'] / ours:.2f}x" if ours else "-"
        spread = f"{m['work_min']:.2f}-{m['work_max']:.2f}"
        lines.append(f"{c:12} {m['work']:8.2f} {spread:>11} {m['wall']:8.2f} {m['maxrss_mb']:10.0f} {m['tree_rss_mb']:12.0f} "
                     f"{m.get('tree_pss_mb', 0):12.0f} {vs_floor:>11} {vs_ours:>10}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, nargs="+", default=[2000], metavar="N",
                    help="tree sizes to benchmark (default 2000); RSS growth is reported across them")
    ap.add_argument("--repeat", type=int, default=3, help="runs per contender (default 3; medians reported)")
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "vmeval-bench",
                    help="where generated trees are kept between runs (default /tmp/vmeval-bench)")
    ap.add_argument("--only", nargs="+", choices=CONTENDERS, default=list(DEFAULT_CONTENDERS),
                    help="run only these contenders (default: all but ours-serial, the build without "
                         "forked workers)")
    ap.add_argument("--profile", type=Path, metavar="FILE",
                    help="instead of benchmarking, run our build once under cProfile and write FILE")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--_run", choices=CONTENDERS[1:], help=argparse.SUPPRESS)
    ap.add_argument("--_data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--_out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--_profile", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args._run:
        _child(args._run, args._data, args._out, args._profile)
        return 0
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    if args.profile:
        data_dir = ensure_tree(args.cache_dir, args.questions[0])
        with tempfile.TemporaryDirectory(prefix="bench-", dir=args.cache_dir) as tmp:
            run_contender("floor", data_dir, Path(tmp))
            print(run_contender("ours", data_dir, Path(tmp), profile=args.profile.resolve()))
        return 0

    contenders = tuple(c for c in CONTENDERS if c in args.only)
    results = []
    for n in args.questions:
        res = bench(n, args.repeat, args.cache_dir, contenders)
        results.append(res)
        if not args.json:
            print("\n".join(report(res)) + "\n", flush=True)
    verdict = targets(results)
    if args.json:
        print(json.dumps({"results": results, "targets": verdict}, indent=2))
    else:
        for line in verdict:
            print(line)
    return 0


def targets(results: list[dict[str, Any]]) -> list[str]:
    """The goals: within 2x the floor, 3x faster than datasets, <300 MB at the largest N, <20% RSS growth."""
    out = []
    for res in results:
        med, n = res["median"], res["questions"]
        if {"floor", "ours"} <= med.keys():
            r = med["ours"]["work"] / med["floor"]["wall"]
            out.append(f"N={n}: ours / floor = {r:.2f} (target <= 2): {'ok' if r <= 2 else 'MISSED'}")
        if {"datasets", "ours"} <= med.keys():
            r = med["datasets"]["work"] / med["ours"]["work"]
            out.append(f"N={n}: datasets / ours = {r:.2f} (target >= 3): {'ok' if r >= 3 else 'MISSED'}")
        if "ours" in med:
            pss, rss = med["ours"]["tree_pss_mb"], med["ours"]["tree_rss_mb"]
            out.append(f"N={n}: ours peak memory (tree PSS) = {pss:.0f} MB (target < 300): "
                       f"{'ok' if pss < 300 else 'MISSED'}; summed RSS, shared pages counted per fork: {rss:.0f} MB")
    with_ours = [r for r in results if "ours" in r["median"]]
    if len(with_ours) > 1:
        lo, hi = with_ours[0], with_ours[-1]
        g = hi["median"]["ours"]["tree_pss_mb"] / lo["median"]["ours"]["tree_pss_mb"] - 1
        out.append(f"memory growth (tree PSS) N={lo['questions']} -> N={hi['questions']}: {g:+.0%} "
                   f"(target <= +20%): {'ok' if g <= 0.2 else 'MISSED'}")
    return out


if __name__ == "__main__":
    sys.exit(main())
