#!/usr/bin/env python3
"""Read the version log, as the seed's ``data/data_logging/version_tracker.py`` did.

    python scripts/version_tracker.py summary   # every version (also: no argument, or any other)
    python scripts/version_tracker.py latest    # Latest: v1.0 → s3://...

Options: ``--path P`` (default ``data/data_logging/version_log.json``) and
``--json`` (the log, or the latest entry, as JSON). The work is done by
:mod:`vmeval_hf.versions`; ``vmeval-hf versions`` is the same thing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

try:
    import vmeval_hf  # noqa: F401
except ImportError:  # run from a checkout without installing: use the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vmeval_hf.errors import VmevalError  # noqa: E402
from vmeval_hf.versions import VersionLog  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Show the vmeval-hf version log.")
    parser.add_argument("command", nargs="?", default="summary",
                        help="'latest' for the newest version; anything else prints the summary")
    parser.add_argument("--path", type=Path, default=None,
                        help="the log file (default: data/data_logging/version_log.json)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)

    log = VersionLog(args.path)
    try:
        if args.command == "latest":
            latest = log.latest()
            if args.json:
                print(json.dumps(latest, indent=2, ensure_ascii=False))
            elif latest:
                print(f"Latest: v{latest['version']} → {latest.get('s3_uri') or latest.get('hf_uri')}")
        elif args.json:
            print(json.dumps(log.load(), indent=2, ensure_ascii=False))
        else:
            print(log.summary_text())
    except VmevalError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
