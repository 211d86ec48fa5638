#!/usr/bin/env python3
"""Benchmark question generation: questions per second per domain (median of several runs).

    python scripts/bench_create.py                 # 15 questions per domain, 5 runs
    python scripts/bench_create.py --pairs 30 --runs 7 --json

Each run is a full :func:`vmeval_hf.generate.create_dataset` call for one domain into a
fresh temp folder (generate, check the answer, encode PNGs, write files, write and
validate the manifest), so the figure is what ``vmeval-hf create`` achieves. Runs use
different seeds so the median is not one lucky draw.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

try:
    import vmeval_hf  # noqa: F401
except ImportError:  # run from a checkout without installing: use the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vmeval_hf.generate import DOMAINS, create_dataset  # noqa: E402


def bench(domain: str | None, pairs: int, runs: int) -> dict[str, float]:
    rates = []
    for run in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            result = create_dataset(Path(tmp) / "questions", pairs_per_domain=pairs,
                                    domains=[domain] if domain else None, seed=1000 + run)
            elapsed = time.perf_counter() - start
        rates.append(result.total / elapsed)
    return {"median_qps": statistics.median(rates), "min_qps": min(rates), "max_qps": max(rates)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Questions per second per domain (median of several runs).")
    parser.add_argument("--pairs", type=int, default=15, help="questions per domain per run (default 15)")
    parser.add_argument("--runs", type=int, default=5, help="runs per domain (default 5)")
    parser.add_argument("--domains", nargs="+", choices=list(DOMAINS), default=list(DOMAINS))
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)

    results = {d: bench(d, args.pairs, args.runs) for d in args.domains}
    results["all five"] = bench(None, args.pairs, args.runs)
    if args.json:
        print(json.dumps({"pairs": args.pairs, "runs": args.runs, "results": results}, indent=2))
        return 0
    print(f"python {platform.python_version()} on {platform.machine()}, {args.pairs} questions per domain, "
          f"median of {args.runs} runs (difficulty mixed)")
    print(f"{'domain':10} {'q/s (median)':>13} {'min':>8} {'max':>8}")
    for name, r in results.items():
        print(f"{name:10} {r['median_qps']:13.1f} {r['min_qps']:8.1f} {r['max_qps']:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
