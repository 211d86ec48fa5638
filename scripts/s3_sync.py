#!/usr/bin/env python3
"""Mirror the data tree to S3 (seed-compatible entry point; the same as ``vmeval-hf sync``).

    python scripts/s3_sync.py [--log] [--date YYYYMMDD[-suffix]] [--data-dir data]

Uploads ``data/questions``, ``data/outputs`` and ``data/evaluations`` to
``s3://$S3_BUCKET/<date>/data/...`` (date: today in UTC by default), then ``MANIFEST.json``.
Re-running resumes an interrupted upload and is a no-op for a complete one. ``--log`` appends the
next version to ``data/data_logging/version_log.json`` without asking anything.
Exit codes: 0 done, 1 refused or failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def _progress_bar(enabled: bool) -> tuple[Any, Any]:
    if not enabled:
        return None, lambda: None
    from tqdm import tqdm

    state: dict[str, Any] = {}

    def progress(files_done: int, bytes_done: int, files_total: int, bytes_total: int) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = tqdm(total=bytes_total, unit="B", unit_scale=True, desc="upload",
                                      leave=False, file=sys.stderr)
        bar.set_postfix_str(f"{files_done}/{files_total} files", refresh=False)
        bar.update(bytes_done - bar.n)  # redraws at most every 0.1 s

    def close() -> None:
        if state.get("bar") is not None:
            state["bar"].close()

    return progress, close


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--date", help="date prefix YYYYMMDD or YYYYMMDD-<suffix> (default: today, UTC)")
    parser.add_argument("--log", action="store_true", help="log the upload as the next version")
    parser.add_argument("--data-dir", default="data", type=Path, help="the data folder (default: data)")
    parser.add_argument("--workers", type=int, default=16, help="parallel uploads (default: 16)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    from vmeval_hf.config import Settings
    from vmeval_hf.errors import ConfigError, VmevalError
    from vmeval_hf.s3.layout import parse_date
    from vmeval_hf.s3.mirror import mirror_version

    settings = Settings.from_env()

    def fail(exc: VmevalError, code: int) -> int:
        text = str(exc)
        for secret in settings.secrets:
            text = text.replace(secret, "***")
        print(f"ERROR: {text}", file=sys.stderr)
        return code

    try:
        date = parse_date(args.date)
    except ConfigError as exc:
        return fail(exc, 2)
    progress, close = _progress_bar(not args.quiet and sys.stderr.isatty())
    try:
        result = mirror_version(args.data_dir, settings=settings, date=date, workers=args.workers, progress=progress)
    except VmevalError as exc:
        close()
        return fail(exc, exc.exit_code)
    except KeyboardInterrupt:
        close()
        print("ERROR: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    close()
    size_mb = result.bytes / 2**20
    if result.already_complete:
        print(f"{result.uri} is already complete ({result.files} files, {size_mb:.1f} MB): nothing to upload")
    else:
        print(f"Uploaded {result.uploaded} files, {result.skipped} already there "
              f"({result.files} files, {size_mb:.1f} MB) to {result.uri}")
    if args.log:
        from vmeval_hf.versions import load_log, log_version, next_version

        try:
            logged = [v for v in load_log(data_dir=args.data_dir).get("versions", []) if v.get("s3_uri") == result.uri]
            if logged:
                print(f"already logged as version {logged[-1].get('version')}")
            else:
                version = next_version(data_dir=args.data_dir)
                log_version(version, result.uri, {"size_mb": round(size_mb, 3), "files": result.files},
                            data_dir=args.data_dir, date=result.date)
                print(f"logged version {version}")
        except VmevalError as exc:
            return fail(exc, exc.exit_code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
