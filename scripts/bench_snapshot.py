#!/usr/bin/env python3
"""Benchmark incremental snapshots against the aws CLI, on a local moto server.

    python scripts/bench_snapshot.py --mb 500 [--repeats 3] [--changed 0.01]

Builds a data tree whose outputs/ holds about --mb MB of video-sized files (1-8 MB each, random
bytes), starts a moto server on 127.0.0.1 in its own process, and per repeat runs, each as a child
process whose wall time and CPU (user+sys, from wait4) are measured:

  ours first    `vmeval-hf sync` to a fresh prefix D1 (everything is uploaded)
  (then --changed of the files, at least one, get new bytes and a new size, so every tool sees them)
  ours second   `vmeval-hf sync` to D2: unchanged files are copied from D1 on the server
  aws sync      `aws s3 sync data s3://bucket/D2a/data`: uploads everything again
  aws recipe    `aws s3 sync s3://bucket/D1/ s3://bucket/D2b/` then `aws s3 sync data s3://bucket/D2b/data`:
                the best two-command aws-cli recipe (a server-side copy, then what changed)
  copy floor    a bare boto3 loop (16 threads) copying every object of D1 to a fresh prefix with
                CopyObject: what the server-side copies alone cost this server

Bytes uploaded: ours from its own report (`uploaded_bytes`), aws from its "upload:" lines (the
sizes of the files it sent). Every prefix is checked to hold every file (count and sizes) after
each run. Medians are printed side by side with the ratios the targets are stated in.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mirror import FAKE_KEYS, REGION, delete_prefix, free_port, s3, warm  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BUCKET = "vmeval-bench"
DOMAINS = ("chess", "maze", "sudoku", "rotation", "raven")


def build_tree(root: Path, megabytes: int, seed: int = 5) -> tuple[Path, list[Path]]:
    """A data tree: a few questions and outputs/bench/<model>/<domain>_task/<task>/video/out.mp4
    files of 1-8 MB (random bytes) until about ``megabytes`` MB."""
    rng = random.Random(seed)
    data = root / "data"
    q = data / "questions" / "chess_task" / "chess_0000"
    q.mkdir(parents=True)
    (q / "prompt.txt").write_text("Solve it.\n")
    videos, total, i = [], 0, 0
    while total < megabytes * 10**6:
        size = rng.randint(1 * 10**6, 8 * 10**6)
        model, domain = f"model-{i % 3}", DOMAINS[i % len(DOMAINS)]
        path = data / "outputs" / "bench" / model / f"{domain}_task" / f"{domain}_{i:04d}" / "video" / "out.mp4"
        path.parent.mkdir(parents=True)
        path.write_bytes(rng.randbytes(size))
        videos.append(path)
        total, i = total + size, i + 1
    return data, videos


def change(videos: list[Path], fraction: float, seed: int) -> int:
    """Give ``fraction`` of the files (at least one) new bytes and a new size; the bytes changed."""
    rng = random.Random(seed)
    picked = rng.sample(videos, max(1, round(len(videos) * fraction)))
    for path in picked:
        path.write_bytes(rng.randbytes(path.stat().st_size + rng.randint(1, 1000)))
    return sum(p.stat().st_size for p in picked)


def measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall s, CPU s of the child, its stdout)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        pid = os.posix_spawn(cmd[0], cmd, env, file_actions=[(os.POSIX_SPAWN_DUP2, out.fileno(), 1),
                                                             (os.POSIX_SPAWN_DUP2, err.fileno(), 2)])
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        text = out.read().decode(errors="replace")
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{' '.join(cmd[:5])} ... failed:\n{err.read().decode(errors='replace')[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, text


def uploaded_by_aws(stdout: str, data: Path) -> int:
    """The bytes of the local files an `aws s3 sync` printed as uploaded."""
    total = 0
    for line in stdout.splitlines():
        if line.startswith("upload: "):
            total += Path(line[len("upload: "):].split(" to s3://")[0]).stat().st_size
    return total


def check_prefix(client: Any, prefix: str, data: Path) -> None:
    """The prefix holds every file of the tree with its size (a snapshot is complete)."""
    held = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        held |= {o["Key"][len(prefix):]: o["Size"] for o in page.get("Contents", ())}
    for p in data.rglob("*"):
        if p.is_file():
            key = p.relative_to(data.parent).as_posix()
            if held.get(key) != p.stat().st_size:
                raise RuntimeError(f"{prefix}{key}: {held.get(key)} bytes, the file has {p.stat().st_size}")


def one_repeat(r: int, data: Path, videos: list[Path], args: argparse.Namespace, env: dict[str, str],
               aws: str, endpoint: str, client: Any) -> dict[str, tuple[float, float, int]]:
    """Every contender once; ``name -> (wall s, CPU s, bytes uploaded)``."""
    ours = [sys.executable, "-m", "vmeval_hf.cli", "sync", "--data-dir", str(data), "--json"]
    d1, d2 = f"202501{r + 10:02d}", f"202502{r + 10:02d}"
    out: dict[str, tuple[float, float, int]] = {}
    warm(data)
    wall, cpu, text = measured([*ours, "--date", d1], env)
    out["ours first"] = (wall, cpu, json.loads(text)["uploaded_bytes"])
    changed = change(videos, args.changed, seed=100 + r)
    warm(data)
    wall, cpu, text = measured([*ours, "--date", d2], env)
    got = json.loads(text)
    assert got["copied_from"] and got["copied"] > 0, got
    out["ours second"] = (wall, cpu, got["uploaded_bytes"])
    check_prefix(client, f"{d2}/", data)
    awsargs = ["--no-progress", "--endpoint-url", endpoint]
    warm(data)
    wall, cpu, text = measured([aws, "s3", "sync", str(data), f"s3://{BUCKET}/aws-{r}/data", *awsargs], env)
    out["aws s3 sync"] = (wall, cpu, uploaded_by_aws(text, data))
    check_prefix(client, f"aws-{r}/", data)
    warm(data)
    w1, c1, _ = measured([aws, "s3", "sync", f"s3://{BUCKET}/{d1}/", f"s3://{BUCKET}/recipe-{r}/", *awsargs], env)
    w2, c2, text = measured([aws, "s3", "sync", str(data), f"s3://{BUCKET}/recipe-{r}/data", *awsargs], env)
    out["aws recipe"] = (w1 + w2, c1 + c2, uploaded_by_aws(text, data))
    check_prefix(client, f"recipe-{r}/", data)
    wall, cpu, _ = measured([sys.executable, __file__, "--copy-loop", f"{d1}/", f"floor-{r}/"], env)
    out["copy floor"] = (wall, cpu, 0)
    out["changed"] = (0.0, 0.0, changed)
    for prefix in (d1, d2, f"aws-{r}", f"recipe-{r}", f"floor-{r}"):
        delete_prefix(client, f"{prefix}/")
    for name, (w, c, b) in out.items():
        print(f"  {name:<12} wall {w:7.2f} s   cpu {c:6.2f} s   uploaded {b / 1e6:8.1f} MB", flush=True)
    return out


def report(runs: list[dict[str, tuple[float, float, int]]], nfiles: int, nbytes: int, args: argparse.Namespace) -> None:
    def med(name: str, i: int) -> float:
        return statistics.median(run[name][i] for run in runs)

    changed = med("changed", 2)
    print(f"\n## {nfiles} files, {nbytes / 1e6:.0f} MB of outputs; {args.changed:.0%} of the files changed "
          f"({changed / 1e6:.1f} MB); medians of {len(runs)} repeats\n")
    print("| run | wall s | client CPU s | MB uploaded | uploaded / changed |")
    print("|---|---:|---:|---:|---:|")
    for name in ("ours first", "ours second", "aws s3 sync", "aws recipe", "copy floor"):
        print(f"| {name} | {med(name, 0):.2f} | {med(name, 1):.2f} | {med(name, 2) / 1e6:.1f} | "
              f"{med(name, 2) / changed:.2f}x |")
    second, recipe, full = med("ours second", 0), med("aws recipe", 0), med("aws s3 sync", 0)
    paired = statistics.median(run["ours second"][0] / run["aws recipe"][0] for run in runs)
    print(f"\nours second / ours first: {second / med('ours first', 0):.2f}x time, "
          f"{med('ours second', 2) / max(1, med('ours first', 2)):.3f}x bytes")
    print(f"ours second / aws s3 sync: {second / full:.2f}x time; / aws recipe: {second / recipe:.2f}x time "
          f"(paired per repeat: {paired:.2f}x); / copy floor: {second / med('copy floor', 0):.2f}x; "
          f"load average at the end {os.getloadavg()[0]:.1f}\n")
    ratio = med("ours second", 2) / changed
    print(f"- [{'x' if ratio <= 1.2 else ' '}] bytes uploaded within 1.2x the changed bytes: {ratio:.2f}x")
    print(f"- [{'x' if second <= recipe / 3 else ' '}] time at most a third of aws-cli's best recipe: "
          f"{second / recipe:.2f}x")


def copy_loop(source: str, target: str, endpoint: str) -> None:
    """Copy every object under ``source`` to ``target`` with CopyObject, 16 at a time (a child process)."""
    from concurrent.futures import ThreadPoolExecutor

    client = s3(endpoint)
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=source)
            for o in page.get("Contents", ())]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: client.copy_object(Bucket=BUCKET, Key=target + k[len(source):],
                                                   CopySource={"Bucket": BUCKET, "Key": k}), keys))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=500, help="MB of video-sized files under outputs/ (default 500)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--changed", type=float, default=0.01, help="fraction of the files changed between snapshots")
    ap.add_argument("--copy-loop", nargs=2, metavar=("SOURCE", "TARGET"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.copy_loop:
        copy_loop(*args.copy_loop, os.environ["AWS_ENDPOINT_URL"])
        return 0
    aws = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")
    if aws is None:
        print("aws-cli not found: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="vmeval-bench-snapshot-"))
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        data, videos = build_tree(work, args.mb)
        nbytes = sum(p.stat().st_size for p in videos)
        client = s3(endpoint)
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        (work / "aws-config").write_text("[default]\n")
        env = dict(os.environ, **FAKE_KEYS, AWS_DEFAULT_REGION=REGION, AWS_ENDPOINT_URL=endpoint, S3_BUCKET=BUCKET,
                   AWS_CONFIG_FILE=str(work / "aws-config"), AWS_SHARED_CREDENTIALS_FILE=str(work / "none"),
                   AWS_EC2_METADATA_DISABLED="true", PYTHONPATH=str(REPO))
        env.pop("AWS_PROFILE", None)
        print(f"tree: {len(videos)} files, {nbytes / 1e6:.0f} MB under outputs/; moto at {endpoint}; "
              f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}", flush=True)
        runs = []
        for r in range(args.repeats):
            print(f"repeat {r + 1}", flush=True)
            runs.append(one_repeat(r, data, videos, args, env, aws, endpoint, client))
    finally:
        moto.terminate()
        moto.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    report(runs, len(videos), nbytes, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
