"""The release flow: validate -> build -> Hub -> S3 -> verify both -> log.

``publish_version`` is resumable: every step is idempotent (the Hub commit is a no-op
when the files are already there, the tag is checked by content, the S3 mirror skips
objects already stored with the right checksum), so re-running the same command after
any failure finishes the job. The version log is written last, only after both sides
verify, so a half-finished publish never looks finished.
"""

from __future__ import annotations

import itertools
import logging
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

from ._shared.fs import canonical_json, sha256_bytes, sha256_file
from ._shared.labels import numeric_key, same_label, validate_label
from ._shared.meta import TOOL
from ._shared.ordered import outer_join
from .config import Settings
from .errors import (
    ConfigError,
    HubNotFoundError,
    IntegrityError,
    S3ConflictError,
    VerifyError,
    VersionConflictError,
    VmevalError,
)
from .hub import (
    FILES_PER_COMMIT,
    HubResult,
    check_files_per_commit,
    fetch_release_manifest,
    publish_to_hub,
    pull_hub,
    release_sha256,
    remote_manifest,
    verify_hub,
)
from .release.build import BuildResult, build_release
from .release.changes import History, ReleaseDiff
from .release.release_manifest import (
    RELEASE_MANIFEST,
    Mismatch,
    ReleaseManifest,
    iter_sources,
    load_release,
    load_release_copy,
    sources_of,
)
from .s3.layout import (
    MIRROR_MANIFEST,
    next_date_suffix,
    parse_date,
    source_key,
    walk_files,
)
from .s3.mirror import (
    MirrorManifest,
    MirrorResult,
    mirror_version,
    read_manifest_stream,
    read_release_manifest,
)
from .s3.read import pull_s3, verify_s3
from .versions import VersionLog, complete_entry
from .versions.lookup import next_free_version, require_version
from .versions.remote import RecordWrite, RemoteLog

T = TypeVar("T")

log = logging.getLogger(__name__)

#: progress(stage, detail): stages are validate, build, hub, s3, verify, log
StageProgress = Callable[[str, str], None]


@dataclass
class PublishResult:
    version: str
    release_dir: Path | None
    content_sha256: str
    questions: int
    domains: dict[str, int]
    files: int
    size_bytes: int
    hub: HubResult | None = None
    s3: MirrorResult | None = None
    entry: dict[str, Any] | None = None  # the version-log entry (written only with log=True)
    noop: bool = False
    dry_run: bool = False
    plan: list[str] = field(default_factory=list)
    message: str | None = None  # the change note
    changes: ReleaseDiff | None = None  # against the previous version, when its manifest was readable
    record: RecordWrite | None = None  # the shared record on S3 (log=True with the S3 side)
    release_sha256: str | None = None  # the release's own hash: every file, not only the sources
    #: frames whose image data this run checked, and frames passed by earlier verdicts (the cache)
    frames_checked: int = 0
    frames_cached: int = 0


def _stage(progress: StageProgress | None, stage: str, detail: str) -> None:
    log.info("%s: %s", stage, detail)
    if progress is not None:
        progress(stage, detail)


def _date_from_uri(uri: str | None) -> str | None:
    m = re.match(r"^s3://[^/]+/([^/]+)/data$", uri or "")
    return m.group(1) if m else None


def publish_version(
    data_dir: str | Path = "data",
    *,
    settings: Settings,
    version: str | None = None,
    log_entry: bool = False,
    date: str | None = None,
    repo_id: str | None = None,
    hub: bool = True,
    s3: bool = True,
    dry_run: bool = False,
    force: bool = False,
    message: str | None = None,
    out: str | Path | None = None,
    max_shard_size: str | int = "500MB",
    progress: StageProgress | None = None,
    s3_progress: Callable[[int, int, int, int], None] | None = None,
    files_per_commit: int = FILES_PER_COMMIT,
    frame_cache: bool | str | Path = True,
) -> PublishResult:
    """Publish the question tree at ``data_dir`` as ``version``: validate, build, Hub, S3, verify, log.

    ``settings``: endpoints and credentials (:meth:`Settings.from_env`). ``version``: the label
    (default: the next minor after the latest logged). ``log_entry``: append the version to the
    log once both sides verify. ``date``: the S3 prefix ``YYYYMMDD[-suffix]`` (default: today,
    UTC). ``repo_id``: the Hub repo (default ``settings.hf_repo``). ``hub`` / ``s3``: which sides
    to publish. ``dry_run``: build in a temp folder and return the plan; nothing remote.
    ``force``: replace a version published with other content. ``message``: a change note, kept
    in the log entry, the Hub commit message and the card's version history (the commit
    description carries the diff against the previous version too). ``out``: the release folder
    (default ``<data_dir>/releases/<version>``). ``max_shard_size``: the largest Parquet shard.
    ``progress``: optional ``(stage, detail)`` callback; ``s3_progress``: optional
    ``(files_done, bytes_done, files_total, bytes_total)`` callback for the upload.
    ``files_per_commit``: the most file changes one Hub commit carries (a bigger release goes in
    several commits, the last one tagged; see :mod:`vmeval_hf.hub`). ``frame_cache``: frames that
    passed the pixel check before are not checked again (as for :func:`~vmeval_hf.tree.validate.validate_tree`).

    Raises a :class:`VmevalError` naming the failed side; the log is untouched then.
    """
    if not hub and not s3:
        raise ConfigError("--no-hub and --no-s3 together publish nothing; drop one of them")
    per_commit = check_files_per_commit(files_per_commit)  # before anything is built or sent
    data = Path(data_dir)
    versions = VersionLog(data_dir=data)
    job = _Publish(settings=settings, data=data, versions=versions,
                   # a tag, a folder, a log entry. The default reads the local log only: nothing is asked of
                   # S3 before the tree is validated; a label other machines recorded is refused (naming
                   # the next free one) before the Hub is touched (_Publish.push)
                   version=validate_label(version or versions.next_version()),
                   repo=repo_id or settings.hf_repo, hub=hub, s3=s3, force=force, progress=progress,
                   message=message.strip() if message and message.strip() else None, files_per_commit=per_commit,
                   frame_cache=frame_cache, defaulted=version is None)
    day = parse_date(date or _date_from_uri((job.logged or {}).get("s3_uri")))
    built, result = job.build_and_check(out=out, max_shard_size=max_shard_size, dry_run=dry_run, date=date, day=day)
    if result.noop or result.dry_run:
        return result
    job.push(result, built, day, s3_progress)
    job.verify_and_log(result, built, day, log_entry)
    return result


@dataclass
class _Publish:
    """One run of :func:`publish_version`, in its three phases: build and check, push, verify and log."""

    settings: Settings
    data: Path
    versions: VersionLog
    version: str
    repo: str
    hub: bool
    s3: bool
    force: bool
    progress: StageProgress | None
    message: str | None = None
    logged: dict[str, Any] | None = None
    files_per_commit: int = FILES_PER_COMMIT
    frame_cache: bool | str | Path = True
    defaulted: bool = False  # the label is the default (the next minor), not the caller's
    #: the built release's manifest, read without its source list (streamed from the file when walked)
    release: ReleaseManifest | None = None

    def __post_init__(self) -> None:
        found = self.versions.get(self.version)
        self.logged = dict(found) if found is not None else None

    def build_and_check(self, *, out: str | Path | None, max_shard_size: str | int, dry_run: bool,
                        date: str | None, day: str) -> tuple[BuildResult, PublishResult]:
        """Build the release (in a temp folder for a dry run) and hold it against the log."""
        _stage(self.progress, "validate", str(self.data))
        tmp_out = Path(tempfile.mkdtemp(prefix="vmeval-dry-run-")) if dry_run else None
        previous = tempfile.TemporaryDirectory(prefix="vmeval-previous-")  # the last version's manifest, if fetched
        try:
            _stage(self.progress, "build", f"version {self.version}")
            # the gate before anything leaves the machine: every frame's image data, not only its chunks
            history = self.history(day, Path(previous.name))
            built = build_release(self.data, tmp_out or out, version=self.version, repo_id=self.repo,
                                  max_shard_size=max_shard_size, decode_images=True, history=history,
                                  frame_cache=self.frame_cache)
            # without its source list (400,000 entries at 100,000 questions): the walks below stream it.
            # Not checked against content_sha256 here, as the build has just written it from the digest
            # it made: each step that sends the release checks the list first (publish_to_hub beside
            # its first requests, mirror_release as it reads the manifest), so an edit made after now
            # still sends nothing
            self.release = manifest = load_release(built.out, sources=False, content=False)
            result = PublishResult(self.version, None if dry_run else built.out, built.content_sha256,
                                   built.questions, built.domains, len(manifest["files"]) + 1, built.size_bytes,
                                   # the build writes the manifest's canonical text: its bytes' sha256 is
                                   # release_sha256(manifest), without a second copy of it as one string
                                   dry_run=dry_run, release_sha256=sha256_file(built.out / RELEASE_MANIFEST),
                                   frames_checked=built.frames_checked, frames_cached=built.frames_cached)
            result.changes = history.changes(self.version, iter_sources(built.out / RELEASE_MANIFEST))
            self._against_log(result)
            if self.defaulted and not result.noop:
                self._unchanged_since_latest(result, built, remove=out is None and not dry_run)
            result.message = self.message
            if dry_run and not result.noop:
                result.plan = _plan(self.settings, self.data, built, manifest, self.repo, date, self.hub, self.s3,
                                    self.files_per_commit)
            return built, result
        finally:
            previous.cleanup()
            if tmp_out is not None:
                shutil.rmtree(tmp_out, ignore_errors=True)

    def earlier(self) -> list[dict[str, Any]]:
        """The question versions this one follows, oldest first: the ``MAJOR.MINOR`` labels below it
        in numeric order, else (for other labels) those logged before it."""
        entries = [dict(e) for e in self.versions.entries() if e.get("kind", "questions") == "questions"]
        mine = numeric_key(self.version)
        if mine is not None:
            lower = [(numeric_key(e["version"]), e) for e in entries]
            return [e for k, e in sorted((p for p in lower if p[0] is not None and p[0] < mine),
                                         key=lambda p: p[0])]
        mine_at = next((i for i, e in enumerate(entries) if same_label(e["version"], self.version)), None)
        return entries if mine_at is None else entries[:mine_at]

    def history(self, day: str, scratch: Path) -> History:
        """The card's version history: the versions before this one, and the manifest of the last of
        them when it can be read (to count this version's changes; an unreadable old release
        leaves them uncounted rather than stopping the publish), fetched into ``scratch`` when
        there is no local copy."""
        earlier = self.earlier()
        previous, previous_file = None, None
        if earlier:
            try:
                previous, previous_file = recorded_release(self.settings, earlier[-1], self.data, scratch)
            except VmevalError as exc:
                log.warning("no diff against %s: %s", earlier[-1]["version"], exc)
        return History(earlier=tuple(earlier), date=day, message=self.message, previous=previous,
                       previous_file=previous_file)

    def _against_log(self, result: PublishResult) -> None:
        """The same release already logged (every file: ``release_sha256``): a no-op. The same
        questions built into other files, or other content: refused unless ``force``."""
        logged = self.logged
        if logged is None or self.force:
            return
        if logged.get("content_sha256") == result.content_sha256:
            held = self._logged_release(logged, result)
            if held is None or held == result.release_sha256:
                result.noop, result.entry = True, dict(logged)
                _stage(self.progress, "log", f"version {self.version} is already published with this content")
                return
            raise VersionConflictError(
                f"version {self.version} is logged with these questions but other release files (release "
                f"sha256:{held[:12]}, this build sha256:{str(result.release_sha256)[:12]}): the card dates each "
                f"version, so pass --date {logged.get('date')} (the date {self.version} was published with); a "
                "build by another vmeval-hf or pyarrow version differs too. Or pass --force to publish this "
                f"build as {self.version}", version=self.version)
        raise VersionConflictError(
            f"version {self.version} is already logged with different content "
            f"(sha256:{str(logged.get('content_sha256'))[:12]}); publish as {self.versions.next_version()}, "
            "or pass --force to replace it", version=self.version)

    def _unchanged_since_latest(self, result: PublishResult, built: BuildResult, *, remove: bool) -> None:
        """A default label on a tree holding exactly the questions of the latest logged version: a
        no-op reporting that version (a second version of the same questions is asked for by
        name, ``--version``). The release just built for the label that will not exist is removed
        when ``remove`` (it went to the default folder)."""
        earlier = self.earlier()
        latest = earlier[-1] if earlier else None
        if latest is None or latest.get("content_sha256") != result.content_sha256:
            return
        if remove:
            shutil.rmtree(built.out, ignore_errors=True)
        result.version, result.release_dir = str(latest["version"]), None
        result.noop, result.entry = True, dict(latest)
        _stage(self.progress, "log", f"the questions are unchanged since version {latest['version']}; nothing to "
               f"publish (pass --version to publish them under another label)")

    def _logged_release(self, logged: dict[str, Any], result: PublishResult) -> str | None:
        """The logged version's ``release_sha256``; for an entry logged before that field, read from
        its Hub commit (not on a dry run: nothing remote). None: unknown, the sources decide."""
        held = logged.get("release_sha256")
        if held or result.dry_run or not (self.hub and logged.get("hf_commit") and logged.get("hf_repo")):
            return str(held) if held else None
        theirs = remote_manifest(self.settings, logged["hf_repo"], logged["hf_commit"])
        return release_sha256(theirs) if theirs else None

    def push(self, result: PublishResult, built: BuildResult, day: str,
             s3_progress: Callable[[int, int, int, int], None] | None) -> None:
        """The Hub commit + tag, then the S3 mirror (a taken prefix is refused before either)."""
        if self.s3:  # a taken prefix or version is known before anything is sent: refuse before the Hub
            check_prefix_free(self.settings, day, self.version, built.content_sha256, self.release,
                              built.out / RELEASE_MANIFEST)
            RemoteLog(self.settings).check({"version": self.version, "content_sha256": built.content_sha256},
                                           replace=self.force)
        if self.hub:
            _stage(self.progress, "hub", f"{self.repo}@{self.version}")
            result.hub = publish_to_hub(built.out, settings=self.settings, repo_id=self.repo, force=self.force,
                                        commit_message=_commit_message(self.version, self.message),
                                        commit_description=_commit_description(result),
                                        files_per_commit=self.files_per_commit, manifest=self.release)
        if self.s3:
            _stage(self.progress, "s3", f"s3://{self.settings.s3_bucket}/{day}/")
            hub_info = ({"repo": self.repo, "revision": self.version, "commit": result.hub.commit}
                        if result.hub else None)
            result.s3 = mirror_version(self.data, settings=self.settings, date=day, release_dir=built.out,
                                       version=self.version, content_sha256=built.content_sha256, hub=hub_info,
                                       progress=s3_progress)

    def verify_and_log(self, result: PublishResult, built: BuildResult, day: str, log_entry: bool) -> None:
        """Both sides against the release manifest; then, with ``log_entry``, the log line."""
        _stage(self.progress, "verify", "both sides against the release manifest")
        assert self.release is not None  # read by build_and_check
        problems = verify_sides(self.settings, self.release, repo=self.repo if self.hub else None,
                                 commit=result.hub.commit if result.hub else None, date=day if self.s3 else None,
                                 manifest_file=built.out / RELEASE_MANIFEST)
        if problems:
            raise VerifyError(_verify_message(self.version, problems), mismatches=problems, version=self.version)
        entry = _entry(result, day)  # the date on the card's Versions table (and the S3 prefix's, if any)
        if log_entry:
            _stage(self.progress, "log", str(self.versions.path))
            entry = self._record(result, complete_entry(entry))
            try:
                entry = dict(self.versions.append(entry, replace=self.logged is not None))
            except VersionConflictError:
                entry = self._logged_meanwhile(result)
        result.entry = entry

    def _record(self, result: PublishResult, entry: dict[str, Any]) -> dict[str, Any]:
        """The shared record on S3 first: it is the arbiter between machines. An identical record
        (a re-run, or a concurrent publisher of this content) is kept and copied into the local log."""
        if not self.s3:
            return entry
        result.record = RemoteLog(self.settings).record(entry, replace=self.force)
        return dict(result.record.record.entry)

    def _logged_meanwhile(self, result: PublishResult) -> dict[str, Any]:
        """Another publisher of this version logged it while this one ran. The same content is the
        same release (both sides just verified): nothing left to do; other content is a conflict."""
        now = self.versions.get(self.version)
        if now is None or now.get("content_sha256") != result.content_sha256:
            raise VersionConflictError(
                f"version {self.version} was logged with other content by another publisher while this one "
                f"ran; see `vmeval-hf versions show {self.version}` and publish this content as "
                f"{self.versions.next_version()}", version=self.version) from None
        result.noop = True
        return dict(now)


def check_prefix_free(settings: Settings, day: str, version: str, content: str,
                      manifest: ReleaseManifest | None = None, manifest_file: Path | None = None) -> None:
    """Raise S3ConflictError if ``s3://<bucket>/<day>/`` is complete with another version or content,
    or (given the release ``manifest``, and ``manifest_file`` when it was read without its sources)
    with the same questions in other release files."""
    with read_manifest_stream(settings=settings, date=day) as held:  # streamed: one GET, never held whole
        where = f"s3://{settings.s3_bucket}/{day}/"
        if held is not None and manifest is not None and (held.get("version"), held.get("content_sha256")) == (
                version, content) and (wrong := _s3_against_release(settings, day, held, manifest, manifest_file)):
            raise S3ConflictError(
                f"{where} already holds version {version} with the same questions but other release files "
                f"({wrong[0].where.rsplit('/release/', 1)[-1]} differs): a published prefix is never overwritten; "
                f"publish this build with --date {next_date_suffix(day)}", uri=where, version=version,
                key=f"{day}/{MIRROR_MANIFEST}")
        if held is None or (held.get("version"), held.get("content_sha256")) == (version, content):
            return
        what = f"version {held.get('version')}" if held.get("version") is not None else "a data-tree mirror"
        raise S3ConflictError(
            f"{where} already holds {what} (content {str(held.get('content_sha256'))[:12]}); refusing to write "
            f"version {version} there: a published prefix is never overwritten; publish with "
            f"--date {next_date_suffix(day)} (any YYYYMMDD-<suffix> works)",
            uri=where, version=held.get("version"), key=f"{day}/{MIRROR_MANIFEST}")


def _commit_message(version: str, message: str | None) -> str:
    return f"Release {version}: {message}" if message else f"Release {version}"


def _commit_description(result: PublishResult) -> str:
    lines = [f"vmeval-hf release {result.version}, content sha256:{result.content_sha256}"]
    if result.changes is not None:
        lines.append(result.changes.summary())
    return "\n\n".join(lines)


def _entry(result: PublishResult, day: str | None) -> dict[str, Any]:
    hub = result.hub
    notes: dict[str, Any] = {}
    if result.message:
        notes["message"] = result.message
    if result.changes is not None:
        notes["changes"] = result.changes.counts()
    return notes | {
        "version": result.version,
        "date": day or datetime.now(timezone.utc).strftime("%Y%m%d"),
        "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "s3_uri": result.s3.uri if result.s3 else None,
        "hf_uri": hub.uri if hub else None,
        "hf_repo": hub.repo_id if hub else None,
        "hf_revision": result.version if hub else None,
        "hf_commit": hub.commit if hub else None,
        # like the seed's s3_sync: what the S3 prefix holds; the release alone for a Hub-only publish
        "size_mb": round((result.s3.bytes if result.s3 else result.size_bytes) / 2**20, 3),
        "files": result.s3.files if result.s3 else result.files,
        "questions": result.questions,
        "domains": dict(result.domains),
        "content_sha256": result.content_sha256,
        "release_sha256": result.release_sha256,
        "tool": TOOL,
    }


def _plan(settings: Settings, data: Path, built: Any, manifest: ReleaseManifest, repo: str, date: str | None,
          hub: bool, s3: bool, files_per_commit: int = FILES_PER_COMMIT) -> list[str]:
    lines = []
    if hub:
        files = len(manifest["files"]) + 1
        commits = -(-files // files_per_commit)
        how = (f"one commit of {files} files" if commits == 1 else
               f"{files} files in {commits} commits of at most {files_per_commit}")
        lines.append(f"hub: {how} ({built.size_bytes / 1e6:.1f} MB) to {settings.hub_endpoint}/datasets/{repo}, "
                     f"tagged {built.version}" + ("" if commits == 1 else " (the last commit)"))
    if s3:
        day = parse_date(date)
        count = size = 0
        for _, _, nbytes in walk_files(data, None):  # listed, not hashed: a plan sends nothing
            count, size = count + 1, size + nbytes
        lines.append(f"s3: {count} data files ({size / 1e6:.1f} MB) to s3://{settings.s3_bucket}/{day}/data/, "
                     f"{len(manifest['files']) + 1} release files to s3://{settings.s3_bucket}/{day}/release/, "
                     f"then s3://{settings.s3_bucket}/{day}/{MIRROR_MANIFEST}")
    return lines


def verify_sides(settings: Settings, manifest: ReleaseManifest, *, repo: str | None, commit: str | None,
                  date: str | None, manifest_file: Path | None = None) -> list[Mismatch]:
    """Every difference between ``manifest`` and its copies: the Hub tag on ``repo`` (expected at
    ``commit``), and the S3 prefix ``date`` (its objects, and its ``MANIFEST.json`` against the
    release); a side given as None is not checked. ``manifest_file``: a file holding exactly
    ``manifest``'s canonical text (a build's, or a copy whose bytes hash to the logged
    ``release_sha256``), compared with the Hub's copy byte for byte (Hub side), and the source
    list streamed from it when ``manifest`` was read without one (S3 side)."""
    problems: list[Mismatch] = []
    if repo:
        problems += verify_hub(settings=settings, repo_id=repo, version=manifest["version"], expected=manifest,
                               expected_commit=commit, expected_file=manifest_file)
    if date:
        with read_manifest_stream(settings=settings, date=date) as remote:  # one GET of MANIFEST.json
            problems += verify_s3(settings=settings, date=date, manifest=remote)
            if (remote.get("content_sha256") if remote else None) != manifest["content_sha256"]:
                problems.append(Mismatch(f"s3://{settings.s3_bucket}/{date}/{MIRROR_MANIFEST}", "sha256",
                                         "content_sha256 differs from the release"))
            if remote is not None:
                problems += _s3_against_release(settings, date, remote, manifest, manifest_file)
    return problems


def _s3_against_release(settings: Settings, date: str, remote: dict[str, Any] | MirrorManifest,
                        manifest: ReleaseManifest, manifest_file: Path | None = None) -> list[Mismatch]:
    """Sources and release files that ``MANIFEST.json`` records otherwise than the release (its
    sources streamed from ``manifest_file`` when it was read without them).

    ``verify_s3`` checks the objects against ``MANIFEST.json``; this ties ``MANIFEST.json`` to the
    recorded release, so an object rewritten together with its ``MANIFEST.json`` entry is caught too.
    Both lists are walked side by side in key order (the sources' keys keep their paths' order,
    and every ``data/`` key sorts before the ``release/`` ones), never held.
    """
    held = MirrorManifest.of(remote) if isinstance(remote, dict) else remote
    sources = ((key, s) for s in sources_of(manifest, manifest_file) if (key := source_key(manifest, s["path"])))
    files = sorted((f"release/{f['path']}", f) for f in manifest["files"])
    recorded = ((e.get("key"), e) for e in held.files())
    out: list[Mismatch] = []
    for mine, here in outer_join(_ascending(itertools.chain(sources, files)), recorded, itemgetter(0), itemgetter(0)):
        if mine is None:
            continue  # recorded, not the release's: verify_s3 compares the objects with MANIFEST.json
        key, want = mine
        got, where = here[1] if here is not None else None, f"s3://{settings.s3_bucket}/{date}/{key}"
        if got is None:
            out.append(Mismatch(where, "missing", "in the release but not in MANIFEST.json"))
        elif (got.get("size"), got.get("sha256")) != (want["size"], want["sha256"]):
            out.append(Mismatch(where, "sha256", "MANIFEST.json records other bytes than the release"))
    return out


def _ascending(entries: Iterable[tuple[str, T]]) -> Iterator[tuple[str, T]]:
    """``entries`` as they come, checked to be in strictly ascending key order."""
    last = None
    for key, value in entries:
        if last is not None and not last < key:
            raise ValueError(f"release entries not in key order: {key!r} after {last!r}")
        last = key
        yield key, value


def _verify_message(version: str, problems: list[Mismatch]) -> str:
    lines = "; ".join(str(p) for p in problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return f"version {version} does not match its release manifest: {lines}{more}"


def verify_version(version: str, *, settings: Settings, data_dir: str | Path = "data",
                   lookup: str = "auto") -> list[Mismatch]:
    """Check the logged ``version``'s Hub revision and S3 prefix; return every difference (empty = verified).

    ``settings``: endpoints and credentials. ``data_dir``: the data tree whose log names the
    version (it may not exist). ``lookup``: where the version's entry is looked up: ``auto`` (the
    local log, else S3's shared records when S3 is configured, else the Hub's tags), ``local``,
    ``s3`` or ``hub``. A data-tree mirror logged by :func:`sync_data_tree` is checked against its
    prefix's ``MANIFEST.json`` and the hash of that manifest recorded in the log.
    """
    entry = require_version(version, settings=settings, data_dir=data_dir, source=lookup, warn=log.warning).entry
    assert entry is not None
    if _tree_only(entry):
        return _verify_tree_mirror(settings, entry)
    date = _date_from_uri(entry.get("s3_uri"))
    with tempfile.TemporaryDirectory(prefix="vmeval-verify-") as scratch:
        # read without its source list (local, or fetched from the Hub): the S3 side streams it from the file
        expected, expected_file = recorded_release(settings, entry, Path(data_dir), Path(scratch))
        problems: list[Mismatch] = []
        if expected is None:
            return [Mismatch(version, "no-manifest", "no release manifest found locally, on the Hub or on S3")]
        if expected["content_sha256"] != entry.get("content_sha256"):
            problems.append(Mismatch(version, "sha256",
                                     "release manifest content differs from the log's content_sha256"))
        problems += verify_sides(settings, expected,
                                  repo=entry.get("hf_repo") if entry.get("hf_commit") else None,
                                  commit=entry.get("hf_commit"), date=date, manifest_file=expected_file)
    return problems


def recorded_manifest(settings: Settings, entry: dict[str, Any], data_dir: Path, *,
                      sources: bool = True, remotes: bool = True) -> ReleaseManifest | None:
    """The release manifest of a logged version: local copy, else the Hub at the logged commit, else S3.

    ``sources=False``: a local copy is read without its source list (see ``load_release``) and
    taken only if its bytes are the logged release's (``release_sha256`` is the hash of the
    canonical text the build writes); a copy from the Hub comes whole, one from S3 with its list
    when ``sources`` (:func:`recorded_release` reads either without holding it).
    ``remotes=False``: the local copy only."""
    local = data_dir / "releases" / entry["version"]
    if (local / RELEASE_MANIFEST).is_file():
        try:
            m = load_release(local, sources=sources)
            held = release_sha256(m) if sources else sha256_file(local / RELEASE_MANIFEST)
            # the logged release exactly (every file, when the log has its hash): a rebuild of the same
            # questions into other files is not the record of what was published
            if m["content_sha256"] == entry.get("content_sha256") and entry.get("release_sha256") in (None, held):
                return m
        except Exception:  # a damaged local copy is not evidence; fall through to the remotes
            log.debug("local release copy unusable", exc_info=True)
    if not remotes:
        return None
    if entry.get("hf_commit") and entry.get("hf_repo"):
        try:
            m = remote_manifest(settings, entry["hf_repo"], entry["hf_commit"])
        except HubNotFoundError:
            m = None
        if m is not None:
            return m
    day = _date_from_uri(entry.get("s3_uri"))
    if day:
        with tempfile.TemporaryDirectory(prefix="vmeval-manifest-") as scratch:
            got = read_release_manifest(settings=settings, date=day, dest=scratch)
            if got is not None:
                m, file = got
                return {**m, "sources": list(sources_of(m, file))} if sources else m
    return None


def recorded_release(settings: Settings, entry: dict[str, Any], data_dir: Path,
                     scratch: Path | None = None) -> tuple[ReleaseManifest | None, Path | None]:
    """:func:`recorded_manifest` without holding a source list (400,000 entries at 100,000
    questions): the manifest, and the file its sources are streamed from when it was read without
    them (:func:`~vmeval_hf.release.release_manifest.sources_of`). The local copy is read so; with
    ``scratch`` (a folder the caller removes), so is the Hub's copy at the logged commit, else the
    S3 prefix's, downloaded there a chunk at a time: a machine without the release verifies it in
    the same memory. A Hub copy the streamed read refuses comes whole, as
    :func:`recorded_manifest` reads it."""
    manifest = recorded_manifest(settings, entry, data_dir, sources=False, remotes=False)
    if manifest is not None:
        return manifest, data_dir / "releases" / entry["version"] / RELEASE_MANIFEST
    if scratch is None:
        return recorded_manifest(settings, entry, data_dir), None
    if entry.get("hf_commit") and entry.get("hf_repo"):
        try:
            file = fetch_release_manifest(settings, entry["hf_repo"], entry["hf_commit"], scratch / "hub")
        except HubNotFoundError:
            file = None
        if file is not None:
            try:
                where = f"hf://datasets/{entry['hf_repo']}@{entry['hf_commit']}/{RELEASE_MANIFEST}"
                return load_release_copy(file, where), file
            except VmevalError:  # damaged: read whole below, as before (verify then names what differs)
                log.debug("the Hub's release manifest did not read", exc_info=True)
                return recorded_manifest(settings, entry, data_dir), None
    day = _date_from_uri(entry.get("s3_uri"))
    got = read_release_manifest(settings=settings, date=day, dest=scratch / "s3") if day else None
    return got if got is not None else (None, None)


def pull_version(version: str, *, settings: Settings, source: str = "s3", dest: str | Path,
                 release: bool = False, data_dir: str | Path = "data", lookup: str = "auto") -> dict[str, Any]:
    """Download a logged ``version`` into ``dest``, every sha256 checked.

    ``source``: ``"s3"`` (the question tree, or the release files with ``release``) or ``"hub"``
    (the release at the logged commit). ``settings``: endpoints and credentials. ``data_dir``:
    the data tree whose log names the version (it may not exist). ``lookup``: where the version's
    entry is looked up, as for :func:`verify_version`.
    """
    entry = require_version(version, settings=settings, data_dir=data_dir, source=lookup, warn=log.warning).entry
    assert entry is not None
    if source == "hub":
        if not entry.get("hf_repo"):
            raise ConfigError(f"version {version} was not published to the Hub; pull it with --from s3")
        # The logged commit, not the tag: a tag can be moved, a commit's content cannot change.
        m = pull_hub(settings=settings, repo_id=entry["hf_repo"], sources=False,
                     version=entry.get("hf_commit") or entry.get("hf_revision") or version, dest=dest)
        if entry.get("content_sha256") and m["content_sha256"] != entry["content_sha256"]:
            raise IntegrityError(f"{dest}: the Hub's release of {version} has content sha256:"
                                 f"{m['content_sha256'][:12]}, the log records sha256:{entry['content_sha256'][:12]}; "
                                 f"the repo was altered after publishing: run `vmeval-hf verify {version}`",
                                 path=dest)
        return {"dest": str(dest), "files": len(m["files"]) + 1, "source": "hub"}
    day = _date_from_uri(entry.get("s3_uri"))
    if not day:
        raise ConfigError(f"version {version} was not mirrored to S3; pull it with --from hub")
    with tempfile.TemporaryDirectory(prefix="vmeval-pull-") as scratch:
        expected, expected_file = recorded_release(settings, entry, Path(data_dir), Path(scratch))
        wrong: list[Mismatch] = []
        with read_manifest_stream(settings=settings, date=day) as remote:
            if remote is not None and expected is not None:  # no MANIFEST.json at all: pull_s3 says so
                wrong = _s3_against_release(settings, day, remote, expected, expected_file)
        if wrong:
            raise IntegrityError(f"{wrong[0].where}: {wrong[0].detail}; the S3 copy of {version} was altered "
                                 f"after publishing, so nothing was pulled: run `vmeval-hf verify {version}`",
                                 key=wrong[0].where)
    r = pull_s3(settings=settings, date=day, dest=Path(dest), release=release)
    return {"dest": str(dest), "files": r.files, "bytes": r.bytes, "source": "s3"}


# -- the data tree alone (the seed's s3_sync.py) ----------------------------------------------


@dataclass
class SyncResult:
    mirror: MirrorResult
    entry: dict[str, Any] | None = None  # the version-log entry, with ``log_entry=True``


def sync_data_tree(data_dir: str | Path = "data", *, settings: Settings, date: str | None = None,
                   log_entry: bool = False, version: str | None = None,
                   progress: Callable[[int, int, int, int], None] | None = None, full: bool = False) -> SyncResult:
    """Mirror the data tree alone (questions, outputs, evaluations) to ``s3://<bucket>/<date>/``.

    ``data_dir``: the data tree. ``settings``: endpoints and credentials. ``date``: the prefix
    (default: today, UTC). ``log_entry``: once the prefix verifies against its ``MANIFEST.json``,
    log it as ``version`` (default: the next minor), with the manifest's hash so that
    :func:`verify_version` can check it later. ``progress``: as for :func:`publish_version`.
    ``full``: upload every file; by default a file the latest complete prefix records with the
    same sha256 is copied from there on the server (an incremental snapshot: every file is still
    present under the new prefix). A taken version is refused before anything is uploaded.
    """
    data = Path(data_dir)
    versions = VersionLog(data_dir=data)
    day = parse_date(date)
    if log_entry:  # read the logs before uploading: a corrupt log or a taken version stops us here
        version = validate_label(version or next_free_version(versions, settings, remote=True))
        if versions.get(version) is not None:
            raise VersionConflictError(f"version {version} is already in the version log {versions.path}; pass "
                                       f"--version {versions.next_version()} (the next free one)", version=version)
        RemoteLog(settings).check_location(version, f"s3://{settings.s3_bucket}/{day}/data")
    mirrored = mirror_version(data, settings=settings, date=day, progress=progress, incremental=not full)
    result = SyncResult(mirrored)
    if log_entry:
        assert version is not None
        with read_manifest_stream(settings=settings, date=mirrored.date) as remote:
            problems = verify_s3(settings=settings, date=mirrored.date, manifest=remote)
            if problems:
                raise VerifyError(_verify_message(version, problems), mismatches=problems, version=version)
            digest = _manifest_hash(remote)
        entry = complete_entry({
            "version": version, "date": mirrored.date, "s3_uri": mirrored.uri,
            "size_mb": round(mirrored.bytes / 2**20, 3), "files": mirrored.files,
            "mirror_manifest_sha256": digest})
        recorded = RemoteLog(settings).record(entry)  # the shared record first: it is the arbiter
        result.entry = dict(versions.append(recorded.record.entry))
    return result


def _manifest_hash(manifest: MirrorManifest | None) -> str:
    """What the log records of a data-tree mirror's ``MANIFEST.json``: the sha256 of its canonical
    JSON (of ``{}`` when there is none), computed from the stream."""
    return manifest.sha256() if manifest is not None else sha256_bytes(canonical_json({}).encode("utf-8"))


def _tree_only(entry: dict[str, Any]) -> bool:
    """A data-tree mirror: an S3 prefix with no release (no content hash, no Hub side)."""
    return bool(entry.get("s3_uri")) and not entry.get("content_sha256") and not entry.get("hf_commit")


def _verify_tree_mirror(settings: Settings, entry: dict[str, Any]) -> list[Mismatch]:
    """The prefix's objects against its ``MANIFEST.json``, and that manifest against the log's hash."""
    day = _date_from_uri(entry.get("s3_uri"))
    where = f"s3://{settings.s3_bucket}/{day}/{MIRROR_MANIFEST}"
    if day is None:
        return [Mismatch(str(entry.get("s3_uri")), "missing", "the log's s3_uri is not s3://<bucket>/<date>/data")]
    with read_manifest_stream(settings=settings, date=day) as remote:
        problems = verify_s3(settings=settings, date=day, manifest=remote)
        recorded = entry.get("mirror_manifest_sha256")
        if remote is not None and recorded and _manifest_hash(remote) != recorded:
            problems.append(Mismatch(where, "sha256", "MANIFEST.json differs from the one the log recorded"))
    return problems
