"""``vmeval-hf``: a thin click skin over the library.

Each command parses options, calls one public library function and renders the
result (human text, or JSON with ``--json``). Errors become one ``ERROR: ...``
line and an exit code, in one place (:class:`_Group.invoke`); tracebacks only
with ``--debug``.

Start-up: each command imports its own stage inside the command (the lines marked
``# start-up``). Importing every stage up front costs 160-200 ms more for every command
(measured with ``python -X importtime``: publish with the Hub and S3 clients ~60-110 ms,
sandbox ~100 ms, build ~65 ms, versions ~50 ms, generate ~45 ms), so ``vmeval-hf validate``
would pay for boto3 and huggingface_hub it never uses. These are the package's only
function-level imports of its own modules (tests/test_layout.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from ._shared.fs import parse_size
from ._shared.meta import __version__
from .config import Settings
from .errors import VmevalError

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


def _settings(ctx: click.Context) -> Settings:
    obj = ctx.ensure_object(dict)
    if "settings" not in obj:
        obj["settings"] = Settings.from_env()
    return obj["settings"]


def _mask(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every secret (of 4+ characters) replaced by ``***``."""
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _scrub(text: str, ctx: click.Context | None = None) -> str:
    """Remove any configured secret from text we are about to print."""
    ctx = ctx or click.get_current_context(silent=True)
    settings = (ctx.find_root().obj or {}).get("settings") if ctx is not None else None
    return _mask(text, settings.secrets) if settings is not None else text


class _MaskSecrets:
    """Log record factory that masks the configured secrets in every record's text.

    At ``--debug`` botocore logs each request's headers (the access key id in ``Authorization``,
    the session token) and some libraries log through handlers of their own, so the masking
    happens where records are made, before any handler sees them.
    """

    def __init__(self, inner: Callable[..., logging.LogRecord]) -> None:
        self.inner = inner
        self.secrets: tuple[str, ...] = ()

    def mask(self, text: str) -> str:
        return _mask(text, self.secrets)

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.inner(*args, **kwargs)
        if self.secrets:
            try:
                message = record.getMessage()
            except Exception:  # a bad format string: keep its parts, masked
                message = f"{record.msg} {record.args!r}"
            record.msg, record.args = self.mask(message), None
            if record.exc_info:
                record.exc_text = self.mask(logging.Formatter().formatException(record.exc_info))
            if record.stack_info:
                record.stack_info = self.mask(record.stack_info)
        return record


def _mask_secrets_in_logs(secrets: tuple[str, ...]) -> None:
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _MaskSecrets):
        factory = _MaskSecrets(factory)
        logging.setLogRecordFactory(factory)
    factory.secrets = secrets


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
                echo("".join(traceback.format_exception(exc)), err=True)
            echo(f"ERROR: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            echo("ERROR: interrupted; re-run the same command to resume", err=True)
            ctx.exit(130)


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(f)


class _Size(click.ParamType):
    """A byte count written as 500MB, 64MiB or 1024: a bad one is a usage error, before any work."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            return parse_size(value, "the value")
        except VmevalError as exc:
            self.fail(str(exc), param, ctx)


class _FilesPerCommit(click.ParamType):
    """A whole number of at least 1 (the library's rule, :func:`vmeval_hf.hub.check_files_per_commit`):
    anything else is a usage error, before any work."""

    name = "count"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        from .hub import FILES_PER_COMMIT, check_files_per_commit  # start-up

        try:
            return check_files_per_commit(int(str(value).strip()))
        except (ValueError, VmevalError):
            self.fail(f"{value!r} is not a whole number of at least 1 (the default, {FILES_PER_COMMIT}, is about "
                      "the most the Hub recommends per commit)", param, ctx)


def max_shard_size_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--max-shard-size", type=_Size(), default="500MB", show_default=True,
                        help="Largest Parquet shard, e.g. 500MB or 64MiB.")(f)


def engine_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
        help="Where the work runs: local (this machine), or ray (tasks on ray.init(), or on the cluster at "
             "$RAY_ADDRESS; the folders must be on a filesystem every node sees; pip install 'vmeval-hf[ray]'). "
             "The bytes written are the same.")(f)


@contextlib.contextmanager
def _stdout_to_stderr(active: bool) -> Iterator[None]:
    """While ``active``, what is printed goes to stderr: Ray's driver prints what the cluster
    reports (a worker that died, its task retried) to stdout, which carries only the result
    (``--json``)."""
    if not active:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


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
    _mask_secrets_in_logs(_settings(ctx).secrets)


# --- question tree -----------------------------------------------------------------


def files_per_commit_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--files-per-commit", type=_FilesPerCommit(), default=100, show_default=True,
        help="Most files in one Hub commit (the Hub recommends under 100); a bigger release goes in "
             "several commits and only the last is tagged.")(f)


def frame_cache_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--no-frame-cache", "no_frame_cache", is_flag=True,
        help="Check every frame's image data again, also frames that passed before (their sha256 verdicts "
             "are cached in $VMEVAL_CACHE_DIR, default ~/.cache/vmeval-hf).",
    )(f)


@cli.command()
@data_dir_option
@frame_cache_option
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes to check the domains in (default: 2 for trees of 400+ questions on 2+ cores).")
@json_option
def validate(data_dir: Path, no_frame_cache: bool, workers: int | None, as_json: bool) -> None:
    """Check the question tree; list every problem; exit 1 if any."""
    from .tree.validate import validate_tree  # start-up: see the module docstring

    report = validate_tree(data_dir, frame_cache=not no_frame_cache, keep_questions=False, workers=workers)
    emit(as_json, [p.as_dict() for p in report.problems], lambda: _print_report(report))
    if not report.ok:
        sys.exit(EXIT_PROBLEM)


def _print_report(report: Any) -> None:
    for group, problems in report.grouped().items():
        echo(f"{group}:")
        for p in problems:
            # Within a question's group, name the file: "bad_image" alone does not say which frame.
            where = f"{Path(p.path).name}: " if p.question and not p.path.endswith(p.question) else ""
            echo(f"  {p.severity.upper():7} {p.code}: {where}{p.message}")
    errors, warnings = len(report.errors), len(report.warnings)
    status = "OK" if report.ok else "FAILED"
    frames = (f" (frames: {report.frames_checked} checked, {report.frames_cached} passed before)"
              if report.frames_checked or report.frames_cached else "")
    echo(f"{status}: {report.questions} questions, {errors} errors, {warnings} warnings{frames}")


@cli.command()
@data_dir_option
@click.option("--check", is_flag=True, help="Only check that vmeval_dataset.json matches the folders.")
@json_option
def manifest(data_dir: Path, check: bool, as_json: bool) -> None:
    """Write vmeval_dataset.json from the folders, or check it is in sync."""
    from .tree.manifest_sync import check_manifest, write_manifest  # start-up

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
    from .versions import VersionLog  # start-up

    return VersionLog(data_dir=data_dir).next_version()


@cli.command()
@data_dir_option
@click.option("--out", type=click.Path(path_type=Path, file_okay=False),
              help="Release folder to write (default: <data-dir>/releases/<version>).")
@click.option("--version", "version", help="Version label (default: next minor after the latest logged).")
@click.option("--repo", help="Hub repo id used in the card's load snippets (default: $VMEVAL_HF_REPO).")
@max_shard_size_option
@click.option("--workers", type=click.IntRange(min=1),
              help="Processes to compile the domains in (default: 2 on a machine with 2+ cores, for trees of "
                   "400+ questions; 1: this process only; with --engine ray, the CPUs of a local Ray instance). "
                   "The release is byte-identical either way.")
@engine_option
@json_option
@click.pass_context
def build(ctx: click.Context, data_dir: Path, out: Path | None, version: str | None, repo: str | None,
          max_shard_size: int, workers: int | None, engine: str, as_json: bool) -> None:
    """Compile the release folder: Parquet shards, dataset card, vmeval_release.json."""
    from .release.build import build_release  # start-up

    settings = _settings(ctx)
    with _stdout_to_stderr(engine == "ray"):
        result = build_release(data_dir, out, version=version or _default_version(data_dir),
                               repo_id=repo or settings.hf_repo, max_shard_size=max_shard_size, workers=workers,
                               engine=engine)
    summary = {"out": str(result.out), "version": result.version, "questions": result.questions,
               "domains": result.domains, "shards": len(result.shards), "bytes": result.size_bytes,
               "content_sha256": result.content_sha256}
    emit(as_json, summary, lambda: echo(
        f"built {result.out} (version {result.version}): {result.questions} questions, "
        f"{len(result.shards)} shards, {result.size_bytes / 1e6:.1f} MB, content sha256:{result.content_sha256[:12]}"))


# --- release flow ------------------------------------------------------------------


def _show_progress(as_json: bool) -> bool:
    return not as_json and sys.stderr.isatty()


class _Bars:
    """Stage lines and a tqdm bar for byte transfers, on a terminal only."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def stage(self, stage: str, detail: str) -> None:
        if self.enabled:
            self.close()
            echo(f"[{stage}] {detail}", err=True)

    def transfer(self, files_done: int, bytes_done: int, files_total: int, bytes_total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm  # start-up: only a transfer on a terminal draws a bar

            self.bar = tqdm(total=bytes_total, unit="B", unit_scale=True, desc="upload", leave=False)
        self.bar.n = bytes_done
        self.bar.set_postfix_str(f"{files_done}/{files_total} files", refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _summary_lines(entry: dict[str, Any]) -> list[str]:
    return [
        f"version   {entry.get('version')}",
        f"hf_uri    {entry.get('hf_uri') or '-'}" + (f"  (commit {entry['hf_commit'][:12]})"
                                                    if entry.get("hf_commit") else ""),
        f"s3_uri    {entry.get('s3_uri') or '-'}",
        f"questions {entry.get('questions')}  files {entry.get('files')}  {entry.get('size_mb', 0):.1f} MB",
        f"content   sha256:{entry.get('content_sha256')}",
    ]


@cli.command()
@data_dir_option
@click.option("--version", "version", help="Version label (default: next minor after the latest logged).")
@click.option("--log", "log_entry", is_flag=True, help="Append the version to version_log.json once verified.")
@click.option("--date", help="S3 date prefix YYYYMMDD or YYYYMMDD-<suffix> (default: today, UTC).")
@click.option("--repo", help="Hub dataset repo id (default: $VMEVAL_HF_REPO).")
@click.option("--bucket", help="S3 bucket (default: $S3_BUCKET or vmevalkit).")
@click.option("--no-hub", is_flag=True, help="Skip the Hub side.")
@click.option("--no-s3", is_flag=True, help="Skip the S3 side.")
@click.option("--dry-run", is_flag=True, help="Print what would be uploaded and where; touch nothing remote.")
@click.option("--force", is_flag=True, help="Replace a version published with different content (moves the tag).")
@click.option("--message", "-m", help="A change note: kept in the log entry, the Hub commit and the card's history.")
@max_shard_size_option
@files_per_commit_option
@frame_cache_option
@json_option
@click.pass_context
def publish(ctx: click.Context, data_dir: Path, version: str | None, log_entry: bool, date: str | None,
            repo: str | None, bucket: str | None, no_hub: bool, no_s3: bool, dry_run: bool, force: bool,
            message: str | None, max_shard_size: int, files_per_commit: int, no_frame_cache: bool,
            as_json: bool) -> None:
    """Validate, build, publish to the Hub, mirror to S3, verify both, and log."""
    from .publish import publish_version  # start-up

    settings = _settings(ctx).with_(s3_bucket=bucket)
    bars = _Bars(_show_progress(as_json))
    try:
        result = publish_version(data_dir, settings=settings, version=version, log_entry=log_entry, date=date,
                                 repo_id=repo, hub=not no_hub, s3=not no_s3, dry_run=dry_run, force=force,
                                 message=message, max_shard_size=max_shard_size, progress=bars.stage,
                                 s3_progress=bars.transfer, files_per_commit=files_per_commit,
                                 frame_cache=not no_frame_cache)
    finally:
        bars.close()
    if result.dry_run:
        emit(as_json, {"dry_run": True, "version": result.version, "plan": result.plan,
                       "content_sha256": result.content_sha256, "questions": result.questions},
             lambda: echo("\n".join([f"dry run: version {result.version}, {result.questions} questions, "
                                     "nothing uploaded", *result.plan])))
        return
    entry = result.entry or {}

    def human() -> None:
        if result.noop:
            echo(f"version {result.version} is already published with this content; nothing to do")
        if result.hub is not None and result.hub.tag_moved:
            echo(f"moved tag {result.version} to commit {result.hub.commit[:12]} (--force)")
        if result.record is not None and result.record.replaced is not None:
            echo(f"replaced the shared record {result.record.replaced.uri} with {result.record.record.uri} (--force)")
        echo("\n".join(_summary_lines(entry)))
        echo(f"frames    {result.frames_checked} checked, {result.frames_cached} passed before")
        if not log_entry and not result.noop:
            echo("(not logged: pass --log to record it in version_log.json)")

    emit(as_json, entry, human)


LOOKUP_SOURCES = ("auto", "local", "s3", "hub")


def lookup_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--source", "lookup", type=click.Choice(LOOKUP_SOURCES), default="auto", show_default=True,
                        help="Where to look the version up: auto is the local log, else the shared records on S3 "
                             "when S3 is configured (AWS_ACCESS_KEY_ID or AWS_ENDPOINT_URL), else the Hub's tags.")(f)


def _warn(messages: list[str]) -> None:
    for message in messages:
        echo(f"WARNING: {message}", err=True)


@cli.command()
@click.argument("version")
@lookup_option
@data_dir_option
@json_option
@click.pass_context
def verify(ctx: click.Context, version: str, lookup: str, data_dir: Path, as_json: bool) -> None:
    """Check version V's Hub revision and S3 prefix against its recorded manifest."""
    from .publish import verify_version  # start-up

    problems = verify_version(version, settings=_settings(ctx), data_dir=data_dir, lookup=lookup)
    emit(as_json, {"version": version, "ok": not problems, "mismatches": [p.as_dict() for p in problems]},
         lambda: echo("\n".join(str(p) for p in problems) if problems else f"version {version}: verified"))
    if problems:
        sys.exit(EXIT_PROBLEM)


@cli.command()
@click.argument("version")
@click.option("--from", "source", type=click.Choice(["s3", "hub"]), default="s3", show_default=True)
@click.option("--dest", type=click.Path(path_type=Path, file_okay=False), help="Target folder "
              "(default: ./vmeval-<version>).")
@click.option("--release", is_flag=True, help="From S3: pull the release (Parquet + card) instead of the tree.")
@lookup_option
@data_dir_option
@json_option
@click.pass_context
def pull(ctx: click.Context, version: str, source: str, dest: Path | None, release: bool, lookup: str,
         data_dir: Path, as_json: bool) -> None:
    """Download a published version, verifying every sha256."""
    from .publish import pull_version  # start-up

    result = pull_version(version, settings=_settings(ctx), source=source, dest=dest or Path(f"vmeval-{version}"),
                          release=release, data_dir=data_dir, lookup=lookup)
    emit(as_json, result, lambda: echo(f"pulled {version} from {source} into {result['dest']} "
                                       f"({result['files']} files, verified)"))


@cli.command()
@click.argument("old", metavar="V1")
@click.argument("new", metavar="V2")
@click.option("--from", "source", type=click.Choice(["local", "s3", "hub"]),
              help="Where to read the two release manifests (default: the local release folders when both "
                   "exist, else S3 when both are mirrored, else the Hub).")
@click.option("--repo", help="Hub dataset repo id for --from hub (default: the logged one, else $VMEVAL_HF_REPO).")
@data_dir_option
@json_option
@click.pass_context
def diff(ctx: click.Context, old: str, new: str, source: str | None, repo: str | None, data_dir: Path,
         as_json: bool) -> None:
    """Questions added, removed and changed from V1 to V2, and which parts of each changed."""
    from .diff import diff_versions  # start-up

    result = diff_versions(old, new, settings=_settings(ctx), data_dir=data_dir, source=source,  # type: ignore[arg-type]
                           repo_id=repo)
    emit(as_json, result.as_dict(), lambda: echo("\n".join(_diff_lines(result))))


def _diff_lines(result: Any) -> list[str]:
    lines = [f"{result.old} -> {result.new}: {result.summary()}"]
    lines += [f"  + {qid}" for qid in result.added]
    lines += [f"  - {qid}" for qid in result.removed]
    lines += [f"  ~ {qid}: {', '.join(parts)}" for qid, parts in result.changed.items()]
    return lines


@cli.command()
@data_dir_option
@click.option("--date", help="S3 date prefix YYYYMMDD or YYYYMMDD-<suffix> (default: today, UTC).")
@click.option("--bucket", help="S3 bucket (default: $S3_BUCKET or vmevalkit).")
@click.option("--log", "log_entry", is_flag=True, help="Also log the upload as the next version.")
@click.option("--version", "version", help="Version label for --log (default: next minor).")
@click.option("--full", is_flag=True, help="Upload every file (default: copy the files the latest complete prefix "
              "holds with the same sha256 on the server, and upload only new or changed ones).")
@json_option
@click.pass_context
def sync(ctx: click.Context, data_dir: Path, date: str | None, bucket: str | None, log_entry: bool,
         version: str | None, full: bool, as_json: bool) -> None:
    """Snapshot the data tree to S3 (the original s3_sync.py): every file under the new date prefix."""
    from .publish import sync_data_tree  # start-up

    bars = _Bars(_show_progress(as_json))
    try:
        synced = sync_data_tree(data_dir, settings=_settings(ctx).with_(s3_bucket=bucket), date=date,
                                log_entry=log_entry, version=version, progress=bars.transfer, full=full)
    finally:
        bars.close()
    result = synced.mirror
    out: dict[str, Any] = {"s3_uri": result.uri, "files": result.files, "bytes": result.bytes,
                           "uploaded": result.uploaded, "uploaded_bytes": result.uploaded_bytes,
                           "copied": result.copied, "copied_bytes": result.copied_bytes,
                           "copied_from": result.copied_from, "skipped": result.skipped}
    if synced.entry is not None:
        out["entry"] = synced.entry
    emit(as_json, out, lambda: echo(f"mirrored {result.files} files ({result.bytes / 2**20:.1f} MB) to "
                                    f"{result.uri} ({_sent(result)})"))


def _sent(result: Any) -> str:
    copied = f"{result.copied} copied from {result.copied_from}, " if result.copied else ""
    return f"{result.uploaded} uploaded, {copied}{result.skipped} already there"


# --- experiments -------------------------------------------------------------------


def _warn_problems(problems: list[Any]) -> None:
    _warn([f"{p.code}: {p.path}: {p.message}" for p in problems])


@cli.command()
@click.argument("experiment")
@click.option("--model", "models", multiple=True, metavar="M", help="Only this model's outputs and evaluations "
              "(repeat for several).")
@click.option("--dry-run", is_flag=True, help="Say what would be snapshotted and deleted; write and delete nothing.")
@click.option("--date", help="Snapshot prefix when one is needed (default: today, UTC, or its next free -<suffix>).")
@click.option("--full", is_flag=True, help="Upload every file of the snapshot (default: incremental).")
@click.option("--bucket", help="S3 bucket (default: $S3_BUCKET or vmevalkit).")
@data_dir_option
@json_option
@click.pass_context
def archive(ctx: click.Context, experiment: str, models: tuple[str, ...], dry_run: bool, date: str | None,
            full: bool, bucket: str | None, data_dir: Path, as_json: bool) -> None:
    """Make sure a verified S3 snapshot holds EXPERIMENT, log where, then delete it locally."""
    from .experiments import archive_experiment  # start-up

    bars = _Bars(_show_progress(as_json))

    def stage(name: str, detail: str) -> None:
        if name != "deleted":  # one call per file deleted: too many lines for a terminal
            bars.stage(name, detail)

    try:
        result = archive_experiment(experiment, data_dir, settings=_settings(ctx).with_(s3_bucket=bucket),
                                    models=list(models) or None, dry_run=dry_run, date=date, full=full,
                                    progress=stage, s3_progress=bars.transfer)
    finally:
        bars.close()
    _warn_problems(result.warnings)
    emit(as_json, result.as_dict(), lambda: echo("\n".join(_archive_lines(result))))


def _archive_lines(r: Any) -> list[str]:
    size = f"{r.files} files, {r.bytes / 2**20:.1f} MB"
    if r.already_archived:
        return [f"experiment {r.experiment} is already archived in {r.uri}; nothing left locally"]
    snap = r.snapshot
    lines = [f"dry run: experiment {r.experiment} ({size}) would be deleted once {r.uri} holds it" if r.dry_run
             else f"archived experiment {r.experiment} ({size}) in {r.uri}; deleted {r.deleted} local files"]
    if snap is not None:
        lines.append(f"  snapshot {snap.date}: {_sent(snap)}; {snap.uploaded_bytes / 2**20:.1f} MB uploaded")
    elif r.dry_run:
        lines.append("  no snapshot needed: that prefix holds every file already")
    return lines


@cli.command()
@click.argument("experiment")
@click.option("--model", "models", multiple=True, metavar="M", help="Only this model's files (repeat for several).")
@click.option("--domain", "domains", multiple=True, metavar="D", help="Only this domain's files, e.g. chess.")
@click.option("--from", "date", help="The snapshot prefix to restore from (default: the newest archive record's).")
@click.option("--bucket", help="S3 bucket (default: $S3_BUCKET or vmevalkit).")
@data_dir_option
@json_option
@click.pass_context
def restore(ctx: click.Context, experiment: str, models: tuple[str, ...], domains: tuple[str, ...],
            date: str | None, bucket: str | None, data_dir: Path, as_json: bool) -> None:
    """Bring EXPERIMENT back into the data tree from S3, every sha256 checked; never overwrites."""
    from .experiments import restore_experiment  # start-up

    bars = _Bars(_show_progress(as_json))
    try:
        r = restore_experiment(experiment, data_dir, settings=_settings(ctx).with_(s3_bucket=bucket),
                               models=list(models) or None, domains=list(domains) or None, date=date,
                               progress=bars.transfer)
    finally:
        bars.close()
    emit(as_json, r.as_dict(), lambda: echo(
        f"restored experiment {r.experiment} from {', '.join(r.uris)}: {r.files} files ({r.bytes / 2**20:.1f} MB), "
        f"{r.downloaded} downloaded, {r.skipped} already there, every sha256 checked"))


@cli.command()
@data_dir_option
@json_option
def experiments(data_dir: Path, as_json: bool) -> None:
    """Every experiment, local and archived: models, domains, tasks with a video, evaluations, bytes, where."""
    from .experiments import list_experiments  # start-up

    found = list_experiments(data_dir)
    if not as_json:
        _warn_problems([p for e in found for p in e.warnings])
    emit(as_json, [e.as_dict() for e in found],
         lambda: echo("\n".join(line for e in found for line in _experiment_lines(e)) or "No experiments."))


def _experiment_lines(e: Any) -> list[str]:
    lines = [f"{e.name} ({e.status})"]
    for what, summary in ([("local", e.local)] if e.local else []) + [
            (f"archived in {r.get('s3_uri')}" + (f" (models {', '.join(r['models'])})" if r.get("models") else ""),
             r.get("summary") or {}) for r in e.archives]:
        evaluations = ", ".join(f"{k} {v}" for k, v in (summary.get("evaluations") or {}).items()) or "none"
        lines.append(f"  {what}: {len(summary.get('models') or [])} models, {len(summary.get('domains') or [])} "
                     f"domains, {summary.get('tasks_with_video', 0)} tasks with a video, evaluations: {evaluations}; "
                     f"{summary.get('files', 0)} files, {summary.get('bytes', 0) / 2**20:.1f} MB")
    return lines


@cli.command()
@click.argument("action", type=click.Choice(["summary", "latest", "show", "sync"]), default="summary")
@click.argument("version", required=False)
@click.option("--source", type=click.Choice(LOOKUP_SOURCES), default="auto", show_default=True,
              help="Which versions: auto is the local log merged with the shared records on S3 when S3 is "
                   "configured (AWS_ACCESS_KEY_ID or AWS_ENDPOINT_URL), else with the Hub's tags; sync reads S3 "
                   "(when configured) and the Hub.")
@click.option("--repo", help="Hub dataset repo id whose tags to read (default: $VMEVAL_HF_REPO).")
@click.option("--bucket", help="S3 bucket holding the shared records (default: $S3_BUCKET or vmevalkit).")
@click.option("--push", is_flag=True, help="sync: also record on S3 the local entries it has no record of.")
@data_dir_option
@json_option
@click.pass_context
def versions(ctx: click.Context, action: str, version: str | None, source: str, repo: str | None,
             bucket: str | None, push: bool, data_dir: Path, as_json: bool) -> None:
    """The versions, from any machine: summary, latest, show V; sync rebuilds the local log.

    summary, latest and show read the local log merged with the shared records on S3 (or the
    Hub's tags: see --source). sync merges S3's records and the Hub's tags into the local log
    and reports every disagreement (exit 1 if any).
    """
    settings = _settings(ctx).with_(s3_bucket=bucket)
    if action == "sync":
        return _versions_sync(settings, data_dir, source, repo, push, as_json)
    if action == "show":
        if not version:
            raise click.UsageError("`versions show` needs a version, e.g. `vmeval-hf versions show 1.0`")
        return _versions_show(settings, data_dir, source, repo, version, as_json)
    from .versions.lookup import list_versions  # start-up

    listing = list_versions(settings=settings, data_dir=data_dir, source=source, repo_id=repo)
    _warn(listing.warnings)
    if action == "summary":
        emit(as_json, listing.as_log(), lambda: echo(listing.summary_text()))
        return
    entry = listing.latest()
    if entry is None:
        emit(as_json, None, lambda: echo("No versions logged yet."))
        sys.exit(EXIT_PROBLEM)
    emit(as_json, entry, lambda: echo(f"Latest: v{entry['version']} → {entry.get('s3_uri') or entry.get('hf_uri')}"))


def _versions_show(settings: Settings, data_dir: Path, source: str, repo: str | None, version: str,
                   as_json: bool) -> None:
    from .versions.lookup import require_version  # start-up

    found = require_version(version, settings=settings, data_dir=data_dir, source=source, repo_id=repo,
                            warn=lambda message: _warn([message]))
    entry = found.entry or {}
    emit(as_json, entry, lambda: echo("\n".join([*_summary_lines(entry), f"from      {found.source}"])))


def _versions_sync(settings: Settings, data_dir: Path, source: str, repo: str | None, push: bool,
                   as_json: bool) -> None:
    from .versions.sync import sync_versions  # start-up

    report = sync_versions(settings=settings, data_dir=data_dir, source=source, repo_id=repo, push=push)
    _warn(report.warnings)

    def human() -> None:
        added = f" ({', '.join(report.added)})" if report.added else ""
        updated = f" ({', '.join(report.updated)})" if report.updated else ""
        echo(f"synced {report.log_path} from {', '.join(report.sources) or 'nothing'}: "
             f"{len(report.added)} added{added}, {len(report.updated)} updated{updated}")
        if report.pushed:
            echo(f"recorded on S3: {', '.join(report.pushed)}")
        if report.local_only:
            echo(f"only in the local log (no S3 record; --push records them): {', '.join(report.local_only)}")
        for finding in report.disagreements:
            echo(str(finding))
        echo(f"{len(report.disagreements)} disagreement(s)" if report.disagreements else "no disagreements")

    emit(as_json, report.as_dict(), human)
    if report.disagreements:
        sys.exit(EXIT_PROBLEM)


# --- results dataset ---------------------------------------------------------------


def experiment_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--experiment", required=True,
                        help="The experiment: its folder in evaluations/[<evaluator-folder>/] and outputs/.")(f)


def questions_version_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--questions-version",
                        help="The question version the run was made on (default: the latest logged).")(f)


@cli.group()
def results() -> None:
    """An experiment's evaluations as a dataset: Parquet + a leaderboard card, on its own Hub repo."""


@results.command("validate")
@data_dir_option
@experiment_option
@questions_version_option
@json_option
@click.pass_context
def results_validate(ctx: click.Context, data_dir: Path, experiment: str, questions_version: str | None,
                     as_json: bool) -> None:
    """Check an experiment's evaluation files; list every problem; exit 1 if any error."""
    from .results.scan import validate_results  # start-up

    report = validate_results(data_dir, experiment=experiment, settings=_settings(ctx),
                              questions_version=questions_version)
    emit(as_json, [p.as_dict() for p in report.problems], lambda: echo("\n".join(
        [f"  {p.severity.upper():7} {p.code}: {p.path}: {p.message}" for p in report.problems]
        + [f"{'OK' if report.ok else 'FAILED'}: {len(report.evaluations)} evaluations, {len(report.errors)} errors, "
           f"{len(report.warnings)} warnings"])))
    if not report.ok:
        sys.exit(EXIT_PROBLEM)


@results.command("build")
@data_dir_option
@experiment_option
@questions_version_option
@click.option("--version", "version", help="Label <experiment>-<N.M> (default: the next for the experiment).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False),
              help="Release folder to write (default: <data-dir>/releases/<version>).")
@click.option("--repo", help="Results repo named in the card (default: $VMEVAL_RESULTS_REPO).")
@click.option("--with-videos", is_flag=True, help="Embed each scored video's bytes (the video column).")
@max_shard_size_option
@json_option
@click.pass_context
def results_build(ctx: click.Context, data_dir: Path, experiment: str, questions_version: str | None,
                  version: str | None, out: Path | None, repo: str | None, with_videos: bool, max_shard_size: int,
                  as_json: bool) -> None:
    """Compile an experiment's evaluations: Parquet per evaluator, leaderboard card, vmeval_release.json."""
    from .results.build import build_results  # start-up

    r = build_results(data_dir, out, experiment=experiment, settings=_settings(ctx), version=version,
                      questions_version=questions_version, repo_id=repo, with_videos=with_videos,
                      max_shard_size=max_shard_size)
    summary = {"out": str(r.out), "version": r.version, "experiment": r.experiment, "rows": r.rows,
               "evaluators": r.evaluators, "models": r.models, "question_version": r.question_version,
               "shards": len(r.shards), "bytes": r.size_bytes, "content_sha256": r.content_sha256,
               "warnings": [p.as_dict() for p in (r.report.warnings if r.report else [])]}
    emit(as_json, summary, lambda: echo(
        f"built {r.out} (results {r.version}): {r.rows} evaluations by {len(r.evaluators)} evaluators of "
        f"{len(r.models)} models, on questions {r.question_version}; {len(r.shards)} shards, content "
        f"sha256:{r.content_sha256[:12]}" + (f"; {len(summary['warnings'])} warnings (`vmeval-hf results "
                                             "validate` lists them)" if summary["warnings"] else "")))


@results.command("publish")
@data_dir_option
@experiment_option
@questions_version_option
@click.option("--version", "version", help="Label <experiment>-<N.M> (default: the next for the experiment).")
@click.option("--log", "log_entry", is_flag=True, help="Append the version to version_log.json once verified.")
@click.option("--date", help="S3 prefix YYYYMMDD-<suffix> (default: <today, UTC>-<version>).")
@click.option("--repo", help="Results dataset repo id (default: $VMEVAL_RESULTS_REPO or org/vmevalkit-results).")
@click.option("--bucket", help="S3 bucket (default: $S3_BUCKET or vmevalkit).")
@click.option("--force", is_flag=True, help="Replace a version published with different content (moves the tag).")
@click.option("--with-videos", is_flag=True, help="Embed each scored video's bytes (the video column).")
@max_shard_size_option
@files_per_commit_option
@json_option
@click.pass_context
def results_publish(ctx: click.Context, data_dir: Path, experiment: str, questions_version: str | None,
                    version: str | None, log_entry: bool, date: str | None, repo: str | None, bucket: str | None,
                    force: bool, with_videos: bool, max_shard_size: int, files_per_commit: int,
                    as_json: bool) -> None:
    """Build an experiment's results, publish to the Hub, mirror to S3, verify both, and log."""
    from .results.publish import publish_results  # start-up

    bars = _Bars(_show_progress(as_json))
    try:
        result = publish_results(data_dir, experiment=experiment, settings=_settings(ctx).with_(s3_bucket=bucket),
                                 version=version, questions_version=questions_version, log_entry=log_entry,
                                 date=date, repo_id=repo, force=force, with_videos=with_videos,
                                 max_shard_size=max_shard_size, progress=bars.stage, s3_progress=bars.transfer,
                                 files_per_commit=files_per_commit)
    finally:
        bars.close()
    entry = result.entry or {}

    def human() -> None:
        if result.noop:
            echo(f"results {result.version} are already published with this content; nothing to do")
        echo("\n".join([f"results   {entry.get('version')} (experiment {entry.get('experiment')}, questions "
                        f"{entry.get('question_version')})", *_summary_lines(entry)[1:3],
                        f"rows      {entry.get('rows')}  files {entry.get('files')}  {entry.get('size_mb', 0):.1f} MB",
                        f"content   sha256:{entry.get('content_sha256')}"]))
        if not log_entry and not result.noop:
            echo("(not logged: pass --log to record it in version_log.json)")

    emit(as_json, entry, human)


@results.command("show")
@data_dir_option
@experiment_option
@questions_version_option
@json_option
@click.pass_context
def results_show(ctx: click.Context, data_dir: Path, experiment: str, questions_version: str | None,
                 as_json: bool) -> None:
    """Print an experiment's leaderboard (success rate and mean score per model and domain)."""
    from .results.leaderboard import leaderboard_lines, show_results  # start-up

    board = show_results(data_dir, experiment=experiment, settings=_settings(ctx), questions_version=questions_version)
    emit(as_json, board, lambda: echo("\n".join(leaderboard_lines(board))))


# --- sandbox -------------------------------------------------------------------------


@cli.command()
@click.option("--root", type=click.Path(path_type=Path, file_okay=False), default=Path(".vmeval-sandbox"),
              show_default=True, help="Folder where the Hub server keeps its repos.")
@click.option("--hub-port", type=int, default=0, help="Hub server port (default: any free port).")
@click.option("--s3-port", type=int, default=0, help="S3 server port (default: any free port).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the environment as one JSON object on one line, then keep running.")
def sandbox(root: Path, hub_port: int, s3_port: int, as_json: bool) -> None:
    """Run a local Hub-compatible server and S3 (moto) on 127.0.0.1 until Ctrl-C."""
    from .sandbox.local import Sandbox  # start-up

    stop = _stop_on_signals()
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # in every thread, the servers' (started now) too
    try:
        with Sandbox(root, hub_port=hub_port, s3_port=s3_port) as box:
            # click.echo, not echo: the sandbox's own (fake, local) credentials are printed on purpose
            if as_json:
                click.echo(json.dumps(box.env(), sort_keys=True))
            else:
                click.echo("# sandbox running on 127.0.0.1; in another shell:")
                for key, value in box.env().items():
                    click.echo(f"export {key}={value}")
            click.echo("# Ctrl-C to stop", err=True)
            signal.sigwait(stop)  # Ctrl-C or kill, at any moment since the start (held till now): exit 0
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop)


def _stop_on_signals() -> set[signal.Signals]:
    """The signals that stop a long-running command: Ctrl-C (SIGINT) and ``kill`` (SIGTERM),
    each given a handler that raises KeyboardInterrupt. The caller blocks them in every thread
    and takes them with :func:`signal.sigwait`: a handler alone can run just before the main
    thread goes to sleep, which then sleeps on, or in another thread's turn. A handler is set
    all the same, so neither is ignored: a script that runs a command in the background
    (``vmeval-hf sandbox &``) starts it with SIGINT ignored, and an ignored signal never arrives."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    stop = {signal.SIGINT, signal.SIGTERM}
    for sig in stop:
        signal.signal(sig, interrupt)
    return stop


@cli.command()
@click.option("--workdir", type=click.Path(path_type=Path, file_okay=False), default=Path("vmeval-demo"),
              show_default=True, help="Work folder (questions, hub storage, version log).")
@click.option("--pairs-per-domain", type=click.IntRange(1, 200), default=3, show_default=True)
@json_option
def demo(workdir: Path, pairs_per_domain: int, as_json: bool) -> None:
    """The whole flow on the sandbox: create, publish 1.0, change, publish 1.1, load both back, verify."""
    from .demo import run_demo  # start-up

    bars = _Bars(not as_json)
    report = run_demo(workdir, pairs_per_domain=pairs_per_domain, progress=bars.stage)
    emit(as_json, report, lambda: echo("\n".join(report["lines"])))


# --- question generation -----------------------------------------------------------


@cli.command()
@click.option("--pairs-per-domain", type=click.IntRange(min=1), default=15, show_default=True,
              help="Questions to generate per domain.")
@click.option("--domains", "domains", multiple=True, metavar="DOMAIN",
              help="Domains to generate (default: all five): `--domains chess maze`, `--domains chess,maze`.")
@click.argument("more_domains", nargs=-1, metavar="")
@click.option("--output-dir", type=click.Path(path_type=Path, file_okay=False), default=Path("data/questions"),
              show_default=True, help="Questions folder to write (must be empty unless --overwrite).")
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed; same seed, same bytes.")
@click.option("--difficulty", type=click.Choice(["easy", "medium", "hard", "mixed"]), default="mixed",
              show_default=True, help="Difficulty of every question; mixed cycles easy, medium, hard.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty --output-dir entirely (no stale folders).")
@engine_option
@json_option
def create(pairs_per_domain: int, domains: tuple[str, ...], more_domains: tuple[str, ...], output_dir: Path,
           seed: int, difficulty: str, overwrite: bool, engine: str, as_json: bool) -> None:
    """Generate checked puzzle questions (chess, maze, sudoku, rotation, raven) and the manifest."""
    from .generate import DOMAINS, create_dataset  # start-up

    if more_domains and not domains:
        raise click.UsageError(f"unexpected argument {more_domains[0]!r}; list domains after --domains")
    names = [n.strip() for value in (*domains, *more_domains) for n in value.split(",") if n.strip()]
    for name in names:
        if name not in DOMAINS:
            raise click.BadParameter(f"unknown domain {name!r}; choose from {', '.join(DOMAINS)}",
                                     param_hint="--domains")
    show = _show_progress(as_json)

    def progress(domain: str, done: int, total: int) -> None:
        if show and done == total:
            echo(f"[create] {domain}: {total} questions", err=True)

    with _stdout_to_stderr(engine == "ray"):
        result = create_dataset(output_dir, pairs_per_domain=pairs_per_domain, domains=names or None, seed=seed,
                                difficulty=difficulty, overwrite=overwrite, progress=progress, engine=engine)
    emit(as_json, result.as_dict(), lambda: echo(
        f"wrote {result.total} questions to {result.output_dir} "
        f"({', '.join(f'{d} {n}' for d, n in result.counts.items())}; seed {seed}, {difficulty}); "
        f"manifest {result.manifest_path}"))


def main() -> None:
    cli(prog_name="vmeval-hf")


if __name__ == "__main__":  # pragma: no cover
    main()
