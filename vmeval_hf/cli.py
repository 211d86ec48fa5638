"""``vmeval-hf``: a thin click skin over the library.

Each command parses options, calls one public library function and renders the
result (human text, or JSON with ``--json``). Errors become one ``ERROR: ...``
line and an exit code, in one place (:class:`_Group.invoke`); tracebacks only
with ``--debug``. Heavy libraries are imported inside the commands that need them.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import __version__
from .config import Settings
from .errors import VmevalError

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


def _settings(ctx: click.Context) -> Settings:
    obj = ctx.ensure_object(dict)
    if "settings" not in obj:
        obj["settings"] = Settings.from_env()
    return obj["settings"]


def _scrub(text: str, ctx: click.Context | None = None) -> str:
    """Remove any configured secret from text we are about to print."""
    ctx = ctx or click.get_current_context(silent=True)
    secrets: tuple[str, ...] = ()
    if ctx is not None:
        root = ctx.find_root()
        settings = (root.obj or {}).get("settings")
        if settings is not None:
            secrets = settings.secrets
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def echo(text: str = "", err: bool = False) -> None:
    click.echo(_scrub(text), err=err)


def emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    """Print ``data`` as JSON with ``--json``, else call ``human()``."""
    if as_json:
        echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        human()


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VmevalError as exc:
            if (ctx.obj or {}).get("debug"):
                import traceback

                echo("".join(traceback.format_exception(exc)), err=True)
            echo(f"ERROR: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            echo("ERROR: interrupted; re-run the same command to resume", err=True)
            ctx.exit(130)


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(f)


def data_dir_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--data-dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=Path("data"),
        show_default=True,
        help="The data tree (holding questions/, outputs/, evaluations/).",
    )(f)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vmeval-hf")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Package, version and ship VMEvalKit benchmark datasets.

    Question folders -> Parquet + dataset card -> a tagged Hub revision and a
    date-prefixed S3 mirror -> a line in version_log.json.
    """
    ctx.ensure_object(dict)["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    _settings(ctx)


# --- question tree -----------------------------------------------------------------


@cli.command()
@data_dir_option
@json_option
def validate(data_dir: Path, as_json: bool) -> None:
    """Check the question tree; list every problem; exit 1 if any."""
    from .questions import validate_tree

    report = validate_tree(data_dir)
    emit(as_json, [p.as_dict() for p in report.problems], lambda: _print_report(report))
    if not report.ok:
        sys.exit(EXIT_PROBLEM)


def _print_report(report: Any) -> None:
    for group, problems in report.grouped().items():
        echo(f"{group}:")
        for p in problems:
            echo(f"  {p.severity.upper():7} {p.code}: {p.message}")
    errors, warnings = len(report.errors), len(report.warnings)
    status = "OK" if report.ok else "FAILED"
    echo(f"{status}: {report.questions} questions, {errors} errors, {warnings} warnings")


@cli.command()
@data_dir_option
@click.option("--check", is_flag=True, help="Only check that vmeval_dataset.json matches the folders.")
@json_option
def manifest(data_dir: Path, check: bool, as_json: bool) -> None:
    """Write vmeval_dataset.json from the folders, or check it is in sync."""
    from .manifest import check_manifest, write_manifest

    if check:
        problems = check_manifest(data_dir)
        emit(
            as_json,
            [p.as_dict() for p in problems],
            lambda: echo("\n".join(f"{p.path}: {p.message}" for p in problems) or "manifest in sync"),
        )
        if problems:
            sys.exit(EXIT_PROBLEM)
        return
    result = write_manifest(data_dir)
    emit(as_json, result, lambda: echo(f"wrote {result['path']} ({result['total_questions']} questions)"))


def _default_version(data_dir: Path) -> str:
    from .versions import VersionLog

    return VersionLog(data_dir=data_dir).next_version()


@cli.command()
@data_dir_option
@click.option("--out", type=click.Path(path_type=Path, file_okay=False),
              help="Release folder to write (default: <data-dir>/releases/<version>).")
@click.option("--version", "version", help="Version label (default: next minor after the latest logged).")
@click.option("--repo", help="Hub repo id used in the card's load snippets (default: $VMEVAL_HF_REPO).")
@click.option("--max-shard-size", default="500MB", show_default=True, help="Largest Parquet shard.")
@json_option
@click.pass_context
def build(ctx: click.Context, data_dir: Path, out: Path | None, version: str | None, repo: str | None,
          max_shard_size: str, as_json: bool) -> None:
    """Compile the release folder: Parquet shards, dataset card, vmeval_release.json."""
    from .build import build_release

    settings = _settings(ctx)
    result = build_release(data_dir, out, version=version or _default_version(data_dir),
                           repo_id=repo or settings.hf_repo, max_shard_size=max_shard_size)
    summary = {"out": str(result.out), "version": result.version, "questions": result.questions,
               "domains": result.domains, "shards": len(result.shards), "bytes": result.size_bytes,
               "content_sha256": result.content_sha256}
    emit(as_json, summary, lambda: echo(
        f"built {result.out} (version {result.version}): {result.questions} questions, "
        f"{len(result.shards)} shards, {result.size_bytes / 1e6:.1f} MB, content sha256:{result.content_sha256[:12]}"))


def main() -> None:
    cli(prog_name="vmeval-hf")


if __name__ == "__main__":  # pragma: no cover
    main()
