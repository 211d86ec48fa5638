#!/usr/bin/env python3
"""Benchmark the S3 mirror against `aws s3 sync` and a plain put_object loop, on a local moto server.

    python scripts/bench_mirror.py --questions 1000 [--repeats 3]

Builds a question tree of N folders (two small PNGs, prompt.txt, question_metadata.json each),
starts a moto server on 127.0.0.1 in its own process, and runs side by side, each as a child
process whose wall time and CPU (user+sys, from wait4) are measured:

  ours        scripts/s3_sync.py to a fresh date prefix (sha256 manifest, put-once, checksums)
  aws         `aws s3 sync` of the same tree to another prefix (aws-cli defaults)
  put loop    one boto3 client, put_object per file, at each concurrency in --concurrency;
              the fastest is the ceiling this server allows
  no-change   a second run of ours and of aws s3 sync against the complete prefix
  large files with --videos N: N files of --video-mb MB each (multipart: ours hashes every byte
              it sends and checks S3's composite checksum), ours vs `aws s3 sync`

Every timed run follows an untimed read of the tree (a warm page cache for each contender).
Medians over --repeats runs are printed with the ratios the targets are stated in.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

REPO = Path(__file__).resolve().parents[1]
BUCKET = "vmeval-bench"
REGION = "us-east-2"
FAKE_KEYS = {"AWS_ACCESS_KEY_ID": "AKIAVMEVALBENCH00001", "AWS_SECRET_ACCESS_KEY": "vmevalBenchSecret000000000000000001"}
DOMAINS = ("chess", "maze", "sudoku", "rotation", "raven")


# -- the tree ----------------------------------------------------------------------------------


def build_tree(root: Path, questions: int, seed: int = 7) -> Path:
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    data = root / "data"
    for i in range(questions):
        domain = DOMAINS[i % len(DOMAINS)]
        qid = f"{domain}_{i // len(DOMAINS):04d}"
        q = data / "questions" / f"{domain}_task" / qid
        q.mkdir(parents=True)
        for name in ("first_frame.png", "final_frame.png"):
            img = Image.new("RGB", (256, 256), (240, 240, 240))
            draw = ImageDraw.Draw(img)
            for _ in range(40):  # a board-like picture with a textured patch: 3-30 KB, like the real ones
                x, y = rng.randrange(0, 224), rng.randrange(0, 224)
                draw.rectangle((x, y, x + rng.randrange(8, 32), y + rng.randrange(8, 32)),
                               fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)))
            side = rng.randrange(16, 72)
            img.paste(Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3)), (8, 8))
            img.save(q / name, format="PNG")
        (q / "prompt.txt").write_text(f"Solve the {domain} puzzle {qid} in as few moves as possible.\n")
        (q / "question_metadata.json").write_text(json.dumps(
            {"id": qid, "domain": domain, "difficulty": rng.choice(["easy", "medium", "hard"])}, indent=2))
    return data


def tree_stats(data: Path) -> tuple[int, int]:
    files = [p for p in data.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def warm(data: Path) -> None:
    """Read the whole tree, untimed, so every timed run starts from a warm page cache. (Some
    kernels page out page cache that sat idle for a minute, which made runs slower at random.)"""
    for p in data.rglob("*"):
        if p.is_file():
            p.read_bytes()


# -- processes and measurements ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Run(NamedTuple):
    wall: float    # s
    cpu: float     # user + sys, s
    rss_mb: float  # peak RSS of the child (ru_maxrss), MB


class Measured:
    """Runs a child with pipes, reaping it ourselves so wait4 gives its CPU and peak RSS."""

    @staticmethod
    def run(cmd: list[str], env: dict[str, str]) -> Run:
        with tempfile.TemporaryFile() as out:
            t0 = time.perf_counter()
            pid = os.posix_spawn(cmd[0], cmd, env, file_actions=[
                (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, out.fileno(), 2),
            ])
            _, status, usage = os.wait4(pid, 0)
            wall = time.perf_counter() - t0
            if os.waitstatus_to_exitcode(status) != 0:
                out.seek(0)
                raise RuntimeError(f"{' '.join(cmd[:4])} ... failed:\n{out.read().decode(errors='replace')[-3000:]}")
        return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def s3(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION, **{k.lower(): v for k, v in FAKE_KEYS.items()},
                        config=Config(s3={"addressing_style": "path"}, max_pool_connections=32))


def delete_prefix(client: Any, prefix: str) -> int:
    n = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", ())]
        if keys:
            client.delete_objects(Bucket=BUCKET, Delete={"Objects": keys, "Quiet": True})
            n += len(keys)
    return n


def count_prefix(client: Any, prefix: str) -> int:
    return sum(page.get("KeyCount", 0) for page in
               client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix))


# -- the plain put_object loop (runs in a child process) -----------------------------------------


def put_loop(data: Path, prefix: str, concurrency: int, endpoint: str) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION,
                          config=Config(max_pool_connections=max(10, concurrency), s3={"addressing_style": "path"},
                                        retries={"mode": "standard"}))
    files = [p for p in data.rglob("*") if p.is_file()]

    def put(p: Path) -> None:
        client.put_object(Bucket=BUCKET, Key=f"{prefix}/{p.relative_to(data.parent).as_posix()}", Body=p.read_bytes())

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(put, files))


# -- large files -------------------------------------------------------------------------------


def large_files(args: argparse.Namespace, work: Path, env: dict[str, str], aws: str, endpoint: str,
                client: Any) -> None:
    """Time ``--videos`` files of ``--video-mb`` MB: ours (scripts/s3_sync.py) vs `aws s3 sync`, each
    to a fresh prefix, ``--repeats`` times in alternating order; print medians and the ratio."""
    data = work / "large" / "data"
    folder = data / "outputs" / "exp" / "model" / "chess_task"
    rng = random.Random(11)
    for i in range(args.videos):
        target = folder / f"chess_{i:04d}" / "video" / "generated.mp4"
        target.parent.mkdir(parents=True)
        target.write_bytes(rng.randbytes(args.video_mb * 10**6))
    total = args.videos * args.video_mb * 10**6
    runs: dict[str, list[Run]] = {"ours": [], "aws": []}
    for r in range(args.repeats):
        for which in (("ours", "aws") if r % 2 == 0 else ("aws", "ours")):
            warm(data)
            if which == "ours":
                cmd = [sys.executable, str(REPO / "scripts" / "s3_sync.py"), "--data-dir", str(data), "--quiet",
                       "--date", f"20250103-r{r}"]
                prefix = f"20250103-r{r}/"
            else:
                cmd = [aws, "s3", "sync", str(data), f"s3://{BUCKET}/aws-large-r{r}/data", "--only-show-errors",
                       "--no-progress", "--endpoint-url", endpoint]
                prefix = f"aws-large-r{r}/"
            runs[which].append(Measured.run(cmd, env))
            last = runs[which][-1]
            print(f"  large {which:<6} wall {last.wall:6.2f} s   cpu {last.cpu:6.2f} s   peak RSS {last.rss_mb:6.1f} MB",
                  flush=True)
            delete_prefix(client, prefix)
    print()
    print(f"## {args.videos} files of {args.video_mb} MB ({total / 1e6:.0f} MB); medians of {args.repeats}")
    print()
    print("| run | wall s | MB/s | client CPU s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|")
    for which, name in (("ours", "ours (s3_sync.py)"), ("aws", "aws s3 sync")):
        w = statistics.median(x.wall for x in runs[which])
        c = statistics.median(x.cpu for x in runs[which])
        m = statistics.median(x.rss_mb for x in runs[which])
        print(f"| {name} | {w:.2f} | {total / 1e6 / w:.1f} | {c:.2f} | {m:.1f} |")
    paired = statistics.median(o[0] / a[0] for o, a in zip(runs["ours"], runs["aws"]))
    print(f"\nlarge files, ours / aws wall, paired per repeat: {paired:.2f}x\n", flush=True)


# -- the benchmark -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=int, default=1000, help="question folders (4 files each)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per scenario; medians are quoted")
    ap.add_argument("--concurrency", default="4,8,16,32", help="put_object loop concurrencies to sweep")
    ap.add_argument("--workers", type=int, default=16, help="our mirror's workers")
    ap.add_argument("--videos", type=int, default=0, help="also time N large files (multipart), ours vs aws")
    ap.add_argument("--video-mb", type=int, default=20, help="size of each large file, MB")
    ap.add_argument("--large-only", action="store_true", help="with --videos: only the large files (no question tree)")
    ap.add_argument("--put-loop", nargs=3, metavar=("DATA", "PREFIX", "CONCURRENCY"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.put_loop:
        put_loop(Path(args.put_loop[0]), args.put_loop[1], int(args.put_loop[2]), os.environ["AWS_ENDPOINT_URL"])
        return 0

    work = Path(tempfile.mkdtemp(prefix="vmeval-bench-"))
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
        client = s3(endpoint)
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        (work / "aws-config").write_text("[default]\n")
        env = dict(os.environ, **FAKE_KEYS, AWS_DEFAULT_REGION=REGION, AWS_ENDPOINT_URL=endpoint, S3_BUCKET=BUCKET,
                   AWS_CONFIG_FILE=str(work / "aws-config"), AWS_SHARED_CREDENTIALS_FILE=str(work / "none"),
                   AWS_EC2_METADATA_DISABLED="true", PYTHONPATH=str(REPO))
        env.pop("AWS_PROFILE", None)
        aws = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")
        if aws is None:
            print("aws-cli not found: pip install awscli", file=sys.stderr)
            return 2
        if args.large_only and args.videos:
            print(f"{args.videos} files of {args.video_mb} MB; moto at {endpoint}; {os.cpu_count()} CPUs; "
                  f"{args.repeats} repeats; load average {os.getloadavg()[0]:.1f}", flush=True)
            large_files(args, work, env, aws, endpoint, client)
            return 0
        data = build_tree(work, args.questions)
        nfiles, nbytes = tree_stats(data)
        print(f"tree: {args.questions} questions, {nfiles} files, {nbytes / 1e6:.1f} MB; moto at {endpoint}; "
              f"{os.cpu_count()} CPUs; {args.repeats} repeats; load average {os.getloadavg()[0]:.1f}", flush=True)

        results: dict[str, list[tuple[float, float]]] = {}

        def record(name: str, cmd: list[str], expect_prefix: str | None = None) -> None:
            warm(data)
            wall, cpu, _ = Measured.run(cmd, env)
            if expect_prefix is not None:
                got = count_prefix(client, expect_prefix)
                if got < nfiles:
                    raise RuntimeError(f"{name}: only {got} of {nfiles} objects under {expect_prefix}")
            results.setdefault(name, []).append((wall, cpu))
            print(f"  {name:<28} wall {wall:6.2f} s   cpu {cpu:6.2f} s", flush=True)

        ours = [sys.executable, str(REPO / "scripts" / "s3_sync.py"), "--data-dir", str(data), "--quiet",
                "--workers", str(args.workers)]
        sweep = [int(c) for c in args.concurrency.split(",")]
        for c in sweep:  # one pass to find the ceiling
            record(f"put loop c={c}", [sys.executable, __file__, "--put-loop", str(data), f"sweep-{c}", str(c)],
                   f"sweep-{c}/")
            delete_prefix(client, f"sweep-{c}/")
        best_c = min(sweep, key=lambda c: results[f"put loop c={c}"][0][0])
        for r in range(args.repeats):
            print(f"repeat {r + 1}", flush=True)
            order = ["ours", "aws", "put"]
            random.Random(r).shuffle(order)  # no scenario always runs first on a cold server
            for which in order:
                if which == "ours":
                    record("ours", [*ours, "--date", f"20250101-r{r}"], f"20250101-r{r}/data/")
                    record("ours no-change", [*ours, "--date", f"20250101-r{r}"])
                    delete_prefix(client, f"20250101-r{r}/")
                elif which == "aws":
                    cmd = [aws, "s3", "sync", str(data), f"s3://{BUCKET}/aws-r{r}/data", "--only-show-errors",
                           "--no-progress", "--endpoint-url", endpoint]
                    record("aws s3 sync", cmd, f"aws-r{r}/data/")
                    record("aws s3 sync no-change", cmd)
                    delete_prefix(client, f"aws-r{r}/")
                else:
                    record(f"put loop c={best_c}", [sys.executable, __file__, "--put-loop", str(data), f"put-r{r}",
                                                    str(best_c)], f"put-r{r}/")
                    delete_prefix(client, f"put-r{r}/")
        if args.videos:
            large_files(args, work, env, aws, endpoint, client)
        # in-process re-publish of a complete version: the library call alone, no interpreter start
        sys.path.insert(0, str(REPO))
        from vmeval_hf.config import Settings
        from vmeval_hf.s3.mirror import mirror_version

        settings = Settings(s3_bucket=BUCKET, aws_region=REGION, aws_endpoint_url=endpoint,
                            aws_access_key_id=FAKE_KEYS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=FAKE_KEYS["AWS_SECRET_ACCESS_KEY"])
        mirror_version(data, settings=settings, date="20250102")
        lib_noop = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            res = mirror_version(data, settings=settings, date="20250102")
            lib_noop.append(time.perf_counter() - t0)
            assert res.already_complete
        # start-up alone: interpreter, imports, S3 client with its model, and one small LIST
        client.put_object(Bucket=BUCKET, Key="startup/x", Body=b"x")
        start_ours = [sys.executable, "-c", "import sys; from vmeval_hf.config import Settings; "
                      "from vmeval_hf.s3.client import make_client; "
                      f"make_client(Settings.from_env()).list_objects_v2(Bucket='{BUCKET}', Prefix='startup/')"]
        start_aws = [aws, "s3", "ls", f"s3://{BUCKET}/startup/", "--endpoint-url", endpoint]
        startup_ours = [Measured.run(start_ours, env) for _ in range(args.repeats)]
        startup_aws = [Measured.run(start_aws, env) for _ in range(args.repeats)]
    finally:
        moto.terminate()
        moto.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)

    def med(name: str, i: int) -> float:
        return statistics.median(x[i] for x in results[name])

    ceiling = f"put loop c={best_c}"
    rows = ["ours", "aws s3 sync", ceiling, "ours no-change", "aws s3 sync no-change"]
    print()
    print(f"## {args.questions} questions = {nfiles} files, {nbytes / 1e6:.1f} MB; medians of {args.repeats} "
          f"(put loop: best of c={args.concurrency}, then {args.repeats} runs at c={best_c})")
    print()
    print("| run | wall s | files/s | client CPU s | CPU ms/file |")
    print("|---|---:|---:|---:|---:|")
    for name in rows:
        w, c = med(name, 0), med(name, 1)
        print(f"| {name} | {w:.2f} | {nfiles / w:.0f} | {c:.2f} | {1000 * c / nfiles:.3f} |")
    s_ours = statistics.median(r.cpu for r in startup_ours)
    s_aws = statistics.median(r.cpu for r in startup_aws)
    print(f"| start-up alone (interpreter, client, one LIST): ours / aws | | | {s_ours:.2f} / {s_aws:.2f} | |")
    print(f"| ours no-change, library call in-process | {statistics.median(lib_noop):.3f} | | | |")
    print()
    wo, wa, wp = med("ours", 0), med("aws s3 sync", 0), med(ceiling, 0)
    co, ca = med("ours", 1) / nfiles, med("aws s3 sync", 1) / nfiles
    mo, ma = (med("ours", 1) - s_ours) / nfiles, (med("aws s3 sync", 1) - s_aws) / nfiles
    # Runs of one repeat are back to back, so their ratio is least disturbed by other load on the host.
    paired_cpu = statistics.median(o[1] / a[1] for o, a in zip(results["ours"], results["aws s3 sync"]))
    paired_wall = statistics.median(o[0] / p[0] for o, p in zip(results["ours"], results[ceiling][-args.repeats:]))
    print(f"paired per-repeat medians: ours/aws CPU {paired_cpu:.2f}x, ours/put-loop wall {paired_wall:.2f}x; "
          f"load average at the end {os.getloadavg()[0]:.1f}")
    print()
    no, na = med("ours no-change", 0), med("aws s3 sync no-change", 0)
    checks = [
        (f"wall vs put_object ceiling: {wo / wp:.2f}x (target <= 1.10)", wo / wp <= 1.10),
        (f"wall vs aws s3 sync: {wo / wa:.2f}x (target < 1)", wo < wa),
        (f"client CPU per file vs aws-cli: {co / ca:.2f}x ({1000 * co:.3f} vs {1000 * ca:.3f} ms; target <= 0.50)",
         co / ca <= 0.5),
        (f"  the same without start-up: {mo / ma:.2f}x ({1000 * mo:.3f} vs {1000 * ma:.3f} ms per file)", mo / ma <= 0.5),
        (f"re-publish of a complete version: {no:.2f} s wall incl. interpreter start, "
         f"{statistics.median(lib_noop):.3f} s in-process (target < 1 s)", no < 1.0),
        (f"no-change run vs aws s3 sync no-change: {no:.2f} vs {na:.2f} s = {no / na:.2f}x (target < 1)", no < na),
    ]
    for text, ok in checks:
        print(f"- [{'x' if ok else ' '}] {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
