#!/usr/bin/env python3
"""Generate the question tree, as the seed's ``vmevalkit/runner/create_dataset.py`` did.

    python scripts/create_dataset.py --pairs-per-domain 15
    python scripts/create_dataset.py --pairs-per-domain 5 --domains chess maze --random-seed 7
    python scripts/create_dataset.py --read-only          # summarise the existing folders

Seed flags: ``--pairs-per-domain`` (default 15), ``--random-seed`` (default 42),
``--read-only``, plus the documented ``--domains`` and ``--output-dir`` (default
``data/questions``). Also ``--difficulty easy|medium|hard|mixed`` and ``--overwrite``.
Unlike the seed, a run is reproducible byte for byte and never leaves stale folders:
a non-empty output folder is refused unless ``--overwrite`` replaces it entirely.
The work is done by :func:`vmeval_hf.generate.create_dataset`; ``vmeval-hf create``
is the same thing.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

try:
    import vmeval_hf  # noqa: F401
except ImportError:  # run from a checkout without installing: use the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vmeval_hf.errors import VmevalError  # noqa: E402
from vmeval_hf.generate import DIFFICULTY_CHOICES, DOMAINS, create_dataset  # noqa: E402


def _summary(output_dir: Path) -> int:
    from vmeval_hf.tree.validate import validate_tree

    report = validate_tree(questions_dir=output_dir, check_data_folders=False)
    by_domain = Counter(q.domain for q in report.question_list)
    by_level = Counter(q.difficulty or "unlabelled" for q in report.question_list)
    print(f"{report.questions} questions in {output_dir}")
    for domain, n in sorted(by_domain.items()):
        print(f"  {domain:10} {n}")
    print("difficulty: " + ", ".join(f"{k} {v}" for k, v in sorted(by_level.items())))
    for problem in report.errors:
        print(f"ERROR {problem.path}: {problem.message}", file=sys.stderr)
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate VMEvalKit question folders and the manifest.")
    parser.add_argument("--pairs-per-domain", type=int, default=15, help="questions per domain (default 15)")
    parser.add_argument("--random-seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--domains", nargs="+", choices=list(DOMAINS), default=None, metavar="DOMAIN",
                        help=f"domains to generate (default: all of {', '.join(DOMAINS)})")
    parser.add_argument("--output-dir", type=Path, default=Path("data/questions"),
                        help="questions folder (default data/questions)")
    parser.add_argument("--difficulty", choices=DIFFICULTY_CHOICES, default="mixed",
                        help="difficulty of every question (default mixed: easy, medium, hard in turn)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder entirely")
    parser.add_argument("--read-only", action="store_true", help="only summarise the existing folders")
    args = parser.parse_args(argv)
    if args.pairs_per_domain < 1:
        parser.error("--pairs-per-domain must be at least 1")

    if args.read_only:
        return _summary(args.output_dir)
    try:
        result = create_dataset(args.output_dir, pairs_per_domain=args.pairs_per_domain, domains=args.domains,
                                seed=args.random_seed, difficulty=args.difficulty, overwrite=args.overwrite)
    except VmevalError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    print(f"Wrote {result.total} questions to {result.output_dir}")
    for domain, n in result.counts.items():
        print(f"  {domain:10} {n}")
    print("difficulty: " + ", ".join(f"{k} {v}" for k, v in result.difficulties.items()))
    print(f"manifest: {result.manifest_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
