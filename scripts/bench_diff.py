#!/usr/bin/env python3
"""What ``vmeval-hf diff`` takes as versions grow: wall time, CPU and peak memory of the command.

    python scripts/bench_diff.py --questions 10000 100000 --repeat 3
    python scripts/bench_diff.py --questions 100000 --baseline /tmp/wt-old   # against an older checkout

For each N, ``bench_scale.py``'s synthetic tree (cached under ``--cache-dir``) is built once with
``vmeval-hf build`` and its release manifest kept (``release-manifest-v<format>-<N>.json``; the
shards are deleted). Version 1.0 is that manifest; version 1.1 is the same manifest with one
question in a hundred given another prompt (its ``prompt.txt`` entry's sha256 and size changed,
``content_sha256`` recomputed, written as the build writes a manifest). Both go into a scratch data
folder's ``releases/``, and ``vmeval-hf diff 1.0 1.1 --from local --json`` runs on them as users run
it, a ``python -m vmeval_hf`` subprocess: its wall time, CPU (user + sys) and the peak of its
summed PSS, sampled every 10 ms (``bench_build.measure``). With ``--baseline DIR`` the same command
also runs from the checkout at ``DIR`` (``PYTHONPATH``), rounds interleaved, and the two outputs
must be the same JSON. Medians of ``--repeat`` rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_build import measure  # noqa: E402  (wall, CPU, the process tree's peak PSS)
from bench_scale import TREE_FORMAT, ensure_tree  # noqa: E402  (the synthetic trees)

from vmeval_hf.release.release_manifest import RELEASE_MANIFEST, content_sha256, manifest_text  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHANGED_EVERY = 100


def release_manifest(cache_dir: Path, n: int) -> Path:
    """The release manifest of N questions as ``vmeval-hf build`` writes it, built once and kept."""
    kept = cache_dir / f"release-manifest-v{TREE_FORMAT}-{n}.json"
    if kept.is_file():
        return kept
    data = ensure_tree(cache_dir, n)
    with tempfile.TemporaryDirectory(prefix="bench-diff-build-", dir=cache_dir) as tmp:
        out = Path(tmp) / "release"
        subprocess.run([sys.executable, "-m", "vmeval_hf", "build", "--data-dir", str(data), "--out", str(out),
                        "--version", "1.0"], check=True, stdout=subprocess.DEVNULL)
        shutil.copyfile(out / RELEASE_MANIFEST, kept.with_suffix(".tmp"))
    os.replace(kept.with_suffix(".tmp"), kept)
    return kept


def two_versions(manifest: Path, data: Path) -> int:
    """``<data>/releases/1.0`` (``manifest``) and ``1.1`` (one question in a hundred with another
    prompt); the number of questions changed."""
    old = data / "releases" / "1.0"
    old.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(manifest, old / RELEASE_MANIFEST)
    doc = json.loads(manifest.read_text(encoding="utf-8"))
    changed = 0
    for i, entry in enumerate(e for e in doc["sources"] if e["path"].endswith("/prompt.txt")):
        if i % CHANGED_EVERY == 0:
            entry["sha256"] = "0" * 63 + "1"
            entry["size"] += 1
            changed += 1
    doc["version"] = "1.1"
    doc["content_sha256"] = content_sha256(doc["sources"])
    new = data / "releases" / "1.1"
    new.mkdir(parents=True, exist_ok=True)
    (new / RELEASE_MANIFEST).write_text(manifest_text(doc), encoding="utf-8")
    return changed


def run_diff(checkout: Path, data: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(checkout), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "vmeval_hf", "diff", "1.0", "1.1", "--from", "local", "--data-dir", str(data),
           "--json"]
    r = measure(cmd, cwd=data.parent, env=env, memory=True, parse_json=False)
    r["output"] = json.loads(r.pop("stdout"))
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, nargs="+", default=[10000], metavar="N")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline", type=Path, help="a checkout of another commit to run side by side")
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "vmeval-scale",
                    help="where the trees and built manifests are kept between runs (default /tmp/vmeval-scale)")
    args = ap.parse_args(argv)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    contenders = {"ours": ROOT, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    print(f"{'N':>8} {'contender':10} {'changed':>8} {'manifest MB':>11} {'wall s':>8} {'CPU s':>7} "
          f"{'peak PSS MB':>11} {'PSS / baseline':>14}", flush=True)
    for n in args.questions:
        manifest = release_manifest(args.cache_dir, n)
        with tempfile.TemporaryDirectory(prefix="bench-diff-", dir=args.cache_dir) as tmp:
            data = Path(tmp) / "data"
            changed = two_versions(manifest, data)
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
            for rnd in range(args.repeat):
                order = list(contenders)[rnd % len(contenders):] + list(contenders)[:rnd % len(contenders)]
                for name in order:
                    runs[name].append(run_diff(contenders[name], data))
            outputs = {json.dumps(r["output"], sort_keys=True) for rs in runs.values() for r in rs}
            if len(outputs) != 1:
                raise SystemExit(f"N={n}: the contenders' diffs differ")
            got = runs["ours"][0]["output"]
            if len(got["changed"]) != changed or got["added"] or got["removed"]:
                raise SystemExit(f"N={n}: the diff found {len(got['changed'])} changed, expected {changed}")
            med = {name: {k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu", "tree_pss_mb")}
                   for name, rs in runs.items()}
            for name, m in med.items():
                base = med.get("baseline")
                ratio = f"{m['tree_pss_mb'] / base['tree_pss_mb']:.2f}x" if base else ""
                print(f"{n:>8,} {name:10} {changed:>8,} {manifest.stat().st_size / 1e6:>11.1f} {m['wall']:>8.2f} "
                      f"{m['cpu']:>7.2f} {m['tree_pss_mb']:>11.0f} {ratio:>14}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
