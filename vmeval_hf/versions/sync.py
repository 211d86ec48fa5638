"""``vmeval-hf versions sync``: rebuild the local log from S3's records and the Hub's tags, and
report every disagreement between the three.

What it writes: only the local ``version_log.json`` (in its own format, through
:meth:`VersionLog.append`): a version recorded on S3 but missing locally is added; a local entry
that a ``--force`` elsewhere replaced is updated to the current record; a Hub version tag that no
record or entry names is added from the tag (with its S3 prefix, when a complete one holds it).
With ``push=True`` local entries that have no record yet are recorded on S3 (put-once), which
shares a log written before records existed.

What it reports (:class:`Disagreement`, ``kind``):

    conflict              the local log and S3's record hold one version with different content
                          (neither is changed)
    moved-tag             a Hub tag points at another commit than the record
    missing-tag           a recorded Hub version whose tag is gone
    tag-without-prefix    a version tag whose release no S3 prefix holds (S3 configured)
    tag-without-record    a version tag mirrored to S3 but never logged
    prefix-without-entry  a complete S3 prefix (with MANIFEST.json) that no entry names (the
                          prefix of a record a --force replaced is named by that record)
    missing-prefix        an entry's S3 prefix is not complete (no MANIFEST.json)
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import ConfigError, RemoteError, S3Error, VersionConflictError
from ..hub import hf_uri
from ..s3.client import list_subfolders
from ..s3.layout import parse_date
from ..s3.mirror import open_manifest, run_parallel
from .hub_tags import HubVersions, hub_versions
from .identity import describe, same_content
from .log import VersionLog, is_results
from .lookup import PathArg, check_source, s3_configured
from .remote import RECORDS_PREFIX, Record, RemoteLog

log = logging.getLogger(__name__)

_S3_URI = re.compile(r"^s3://([^/]+)/([^/]+)/data$")


@dataclass(frozen=True)
class Disagreement:
    """One finding of :func:`sync_versions` (``kind``: see the module docstring)."""

    kind: str
    version: str | None
    where: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.kind}: {self.where}: {self.detail}"


@dataclass
class SyncReport:
    """What :func:`sync_versions` found and wrote. ``ok``: no disagreement."""

    log_path: Path
    sources: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)        # written into the local log
    updated: list[str] = field(default_factory=list)      # local entries replaced by the current record
    pushed: list[str] = field(default_factory=list)       # local entries recorded on S3 (push=True)
    local_only: list[str] = field(default_factory=list)   # local entries with no S3 record
    disagreements: list[Disagreement] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.disagreements

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["log_path"], out["ok"] = str(self.log_path), self.ok
        return out


def _day_of(entry: dict[str, Any], bucket: str) -> str | None:
    m = _S3_URI.match(str(entry.get("s3_uri") or ""))
    return m.group(2) if m and m.group(1) == bucket else None


def _complete_prefixes(remote: RemoteLog, warnings: list[str]) -> dict[str, dict[str, Any]]:
    """``{date: MANIFEST.json's fields but files}`` for every complete date prefix of the bucket
    (each manifest streamed: a prefix of 100,000 questions lists 400,000 files, and they are read
    side by side)."""
    days = []
    for folder in list_subfolders(remote.bucket):
        if folder == RECORDS_PREFIX:
            continue
        try:
            days.append(parse_date(folder.rstrip("/")))
        except ConfigError:
            continue

    def read(day: str) -> dict[str, Any] | None:
        try:
            with open_manifest(remote.bucket, day) as manifest:
                return None if manifest is None else manifest.head
        except S3Error as exc:
            if type(exc) is not S3Error:  # unreachable, refused...: not a finding about the prefix
                raise
            warnings.append(str(exc))
            return None

    docs = run_parallel(read, days, remote.workers)
    return {day: doc for day, doc in zip(days, docs) if doc is not None}


@dataclass
class _Sync:
    """One run of :func:`sync_versions`."""

    settings: Settings
    log: VersionLog
    report: SyncReport
    local: dict[str, dict[str, Any]]
    remote: RemoteLog | None = None
    records: dict[str, Record] = field(default_factory=dict)
    prefixes: dict[str, dict[str, Any]] = field(default_factory=dict)
    hub: HubVersions | None = None
    superseded: set[str] = field(default_factory=set)  # S3 URIs of records a --force replaced
    add: dict[str, dict[str, Any]] = field(default_factory=dict)
    replace: dict[str, dict[str, Any]] = field(default_factory=dict)

    def found(self, kind: str, version: str | None, where: str, detail: str) -> None:
        self.report.disagreements.append(Disagreement(kind, version, where, detail))

    def known(self) -> dict[str, dict[str, Any]]:
        """Every entry after this run: the records, the local log, what will be added."""
        return {**self.local, **{k: r.entry for k, r in self.records.items()}, **self.replace, **self.add}

    def read_s3(self) -> None:
        self.remote = RemoteLog(self.settings)
        self.records = self.remote.read_all()
        self.report.warnings += [f"{self.remote.bucket.uri(k)} is not a version record; skipped"
                                 for k in self.remote.strays]
        self.prefixes = _complete_prefixes(self.remote, self.report.warnings)
        for label, revisions in self.remote.labels().items():
            if len(revisions) > 1:  # a --force left the replaced version's prefix behind, knowingly
                self.superseded |= {str(r.entry.get("s3_uri")) for r in self.remote.history(label)[:-1]}
        self.report.sources.append("s3")

    def read_hub(self, repo_id: str, lenient: bool) -> None:
        try:
            self.hub = hub_versions(self.settings, repo_id)
        except RemoteError as exc:
            if not lenient:
                raise
            self.report.warnings.append(f"could not read the tags of hf://datasets/{repo_id} ({exc}); "
                                        "the Hub was not compared")
            return
        self.report.warnings += self.hub.warnings
        self.report.sources.append("hub")

    def against_records(self) -> None:
        """Local entries against S3's current records: add, update, or report a conflict."""
        assert self.remote is not None
        for label, record in sorted(self.records.items()):
            ours = self.local.get(label)
            if ours is None:
                self.add[label] = dict(record.entry)
            elif not same_content(ours, record.entry):
                if any(same_content(r.entry, ours) for r in self.remote.history(label)[:-1]):
                    self.replace[label] = dict(record.entry)
                else:
                    self.found("conflict", label, record.uri,
                               f"the local log has {describe(ours)}, the record has {describe(record.entry)}; "
                               f"neither was changed: keep the right one (the record is what other machines see)")
        self.report.local_only = sorted(set(self.local) - set(self.records))

    def against_hub(self) -> None:
        """Recorded Hub versions against the tags; tags nothing names are added from the Hub."""
        assert self.hub is not None
        repo, known = self.hub.repo_id, self.known()
        for label, entry in sorted(known.items()):
            commit = entry.get("hf_commit")
            if entry.get("hf_repo") != repo or not commit or is_results(entry):
                continue
            tag = self.hub.tags.get(label)
            if tag is None:
                self.found("missing-tag", label, hf_uri(repo, label), f"the log records commit {commit[:12]} "
                           f"but the repo has no tag {label}")
            elif tag != commit:
                held = self.hub.entries.get(label)
                self.found("moved-tag", label, hf_uri(repo, label),
                           f"tag {label} points at commit {tag[:12]}"
                           + (f" ({describe(held)})" if held else "")
                           + f", the log records commit {commit[:12]} ({describe(entry)}); put the tag back "
                           f"(`vmeval-hf verify {label}` lists the differences)")
        for label, entry in sorted(self.hub.entries.items()):
            if label not in known:
                self.add[label] = self._from_tag(label, entry)

    def _from_tag(self, label: str, entry: dict[str, Any]) -> dict[str, Any]:
        rebuilt, where = dict(entry), str(entry.get("hf_uri"))
        day = next((d for d, doc in sorted(self.prefixes.items()) if doc.get("version") == label
                    and doc.get("content_sha256") == entry.get("content_sha256")), None)
        if day is not None:
            rebuilt.update(date=day, s3_uri=f"s3://{self.settings.s3_bucket}/{day}/data")
            self.found("tag-without-record", label, where, f"published on the Hub and mirrored to "
                       f"s3://{self.settings.s3_bucket}/{day}/ but never logged; added to the local log")
        elif self.remote is not None:
            self.found("tag-without-prefix", label, where, "no complete S3 prefix holds this release; added to "
                       "the local log from the Hub alone")
        return rebuilt

    def against_prefixes(self) -> None:
        """Complete prefixes no entry names; entries whose prefix is not complete."""
        bucket, known = self.settings.s3_bucket, self.known()
        named = {_day_of(e, bucket) for e in known.values()}
        named |= {_day_of({"s3_uri": uri}, bucket) for uri in self.superseded}
        for day, doc in sorted(self.prefixes.items()):
            if day not in named:
                what = f"version {doc['version']}" if doc.get("version") else "a data-tree mirror"
                self.found("prefix-without-entry", doc.get("version"), f"s3://{bucket}/{day}/",
                           f"a complete mirror of {what} ({describe(doc)}) that no log entry or record names")
        for label, entry in sorted(known.items()):
            day = _day_of(entry, bucket)
            if day is not None and day not in self.prefixes:
                self.found("missing-prefix", label, f"s3://{bucket}/{day}/", "the log names this prefix but it "
                           "has no MANIFEST.json (unfinished or deleted)")

    def push(self) -> None:
        if self.remote is None:
            raise ConfigError("--push records local entries on S3: configure S3 (AWS_ACCESS_KEY_ID or "
                              "AWS_ENDPOINT_URL), or pass --source s3")
        for label in list(self.report.local_only):
            try:
                self.remote.record(self.local[label])
            except VersionConflictError as exc:  # recorded by someone else since the listing
                self.found("conflict", label, self.remote.uri, str(exc))
                continue
            self.report.pushed.append(label)
            self.report.local_only.remove(label)

    def write(self) -> None:
        """Add and update local entries (the lock and atomic write are :meth:`VersionLog.append`'s)."""
        for label, entry in sorted(self.add.items(), key=lambda item: str(item[1].get("timestamp") or "")):
            try:
                self.log.append(entry)
            except VersionConflictError:  # appended meanwhile by another process on this machine
                now = self.log.get(label)
                if now is None or not same_content(now, entry):
                    self.found("conflict", label, str(self.log.path), "appended with other content while syncing")
                continue
            self.report.added.append(label)
        for label, entry in sorted(self.replace.items()):
            self.log.append(entry, replace=True)
            self.report.updated.append(label)


def sync_versions(*, settings: Settings, data_dir: PathArg = "data", source: str = "auto",
                  repo_id: str | None = None, push: bool = False) -> SyncReport:
    """Merge S3's records and the Hub's tags into the local log; report every disagreement.

    ``settings``: endpoints and credentials. ``data_dir``: the data tree holding the local log
    (created if missing). ``source``: ``auto`` (S3 when configured, and the Hub; a Hub that cannot
    be read is a warning), ``s3`` or ``hub``. ``repo_id``: the Hub repo (default
    ``settings.hf_repo``). ``push``: also record local entries that S3 has no record of.
    See the module docstring for what is written and reported.
    """
    if check_source(source) == "local":
        raise ConfigError("`versions sync` merges remote sides into the local log: use --source auto, s3 or hub")
    versions = VersionLog(data_dir=data_dir)
    job = _Sync(settings, versions, SyncReport(versions.path), {e["version"]: dict(e) for e in versions.entries()})
    if source == "s3" or (source == "auto" and s3_configured(settings)):
        job.read_s3()
        job.against_records()
    if source in ("auto", "hub"):
        job.read_hub(repo_id or settings.hf_repo, lenient=source == "auto")
        if job.hub is not None:
            job.against_hub()
    if job.remote is not None:
        job.against_prefixes()
    if push:
        job.push()
    job.write()
    log.info("synced %s: %d added, %d updated, %d disagreements", versions.path, len(job.report.added),
             len(job.report.updated), len(job.report.disagreements))
    return job.report
