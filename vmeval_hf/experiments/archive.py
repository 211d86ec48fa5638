"""``archive_experiment``: make sure a verified S3 snapshot holds an experiment byte for byte, record
which prefix holds it in the version log, and only then delete the local files.

The steps, each safe to repeat (a re-run after any failure or crash finishes the job):

1. scan the experiment's folders (``outputs/<experiment>`` and its evaluation folders; only the
   given models' when ``models`` is set) and hash every file, as the mirror does;
2. find a complete prefix whose ``MANIFEST.json`` holds every one of them (the prefix of an earlier
   record of this experiment, else the latest complete prefix), or take a snapshot of the whole
   data tree (incremental: unchanged files are copied on the server; ``full`` uploads all);
3. HEAD each of the experiment's objects there: the server's checksum must be the file's;
4. hash every local file again: one that changed since the scan stops the archive, naming it,
   before anything is recorded or deleted;
5. append the archive record (:mod:`.records`) to the version log, unless this listing is recorded;
6. delete the files (each only if unchanged since step 4), then the folders left empty.

S3 failing in steps 2-3 deletes nothing; a crash in step 6 leaves the record and some files; the
re-run finds the record's prefix holding them and deletes the rest.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._shared.fs import sha256_file
from ..config import Settings
from ..errors import ConfigError, IntegrityError, S3ConflictError, VerifyError, VersionConflictError
from ..s3.layout import next_date_suffix, parse_date, scan
from ..s3.mirror import (
    MirrorManifest,
    MirrorResult,
    mirror_version,
    open_bucket,
    open_latest_complete,
    open_manifest,
)
from ..s3.read import check_objects
from ..tree.model import Problem
from ..versions import ARCHIVE_KIND, VersionLog
from .model import check_name, experiment_folders, summarize
from .records import folder_filter, in_folders, latest_record, listing, listing_sha256, record_label

log = logging.getLogger(__name__)

#: progress(stage, detail): stages scan, snapshot, verify, record, delete; then "deleted" once per file
StageProgress = Callable[[str, str], None]


@dataclass
class ArchiveResult:
    experiment: str
    models: list[str] | None
    files: int                      # the experiment's local files (at the start of this run)
    bytes: int
    date: str | None = None         # the prefix that holds them
    uri: str | None = None          # s3://<bucket>/<D>/data
    listing_sha256: str | None = None
    snapshot: MirrorResult | None = None  # the snapshot taken (None: a complete prefix held them already)
    deleted: int = 0
    already_archived: bool = False  # nothing was left locally: an earlier run finished
    dry_run: bool = False
    entry: dict[str, Any] | None = None  # the archive record
    warnings: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        snap = self.snapshot
        return {"experiment": self.experiment, "models": self.models, "files": self.files, "bytes": self.bytes,
                "date": self.date, "s3_uri": self.uri, "listing_sha256": self.listing_sha256,
                "snapshot": None if snap is None else {"date": snap.date, "uploaded": snap.uploaded,
                                                       "uploaded_bytes": snap.uploaded_bytes, "copied": snap.copied,
                                                       "copied_from": snap.copied_from, "skipped": snap.skipped},
                "deleted": self.deleted, "already_archived": self.already_archived, "dry_run": self.dry_run,
                "entry": self.entry, "warnings": [p.as_dict() for p in self.warnings]}


def _stage(progress: StageProgress | None, stage: str, detail: str) -> None:
    log.info("%s: %s", stage, detail)
    if progress is not None:
        progress(stage, detail)


def archive_experiment(experiment: str, data_dir: str | Path = "data", *, settings: Settings,
                       models: Sequence[str] | None = None, dry_run: bool = False, date: str | None = None,
                       full: bool = False, progress: StageProgress | None = None,
                       s3_progress: Callable[[int, int, int, int], None] | None = None) -> ArchiveResult:
    """Archive ``experiment`` of the data tree ``data_dir`` to S3, then delete it locally.

    ``settings``: the S3 bucket and credentials. ``models``: only these models' outputs and
    evaluations. ``dry_run``: say what would be snapshotted and deleted; nothing is written or
    deleted. ``date``: the snapshot prefix when one is needed (default: today, UTC, or the next free
    ``-<suffix>`` of it). ``full``: upload every file of the snapshot instead of copying unchanged
    ones from the latest complete prefix. ``progress``: ``(stage, detail)`` callback;
    ``s3_progress``: ``(files_done, bytes_done, files_total, bytes_total)`` of the snapshot.

    Raises IntegrityError naming a local file that changed after the snapshot (nothing deleted),
    VerifyError when the prefix does not hold the files, and the S3 errors of the mirror.
    """
    job = _Archive(Path(data_dir), check_name("experiment", experiment), settings,
                   sorted(check_name("model", m) for m in models) if models else None, progress)
    _stage(progress, "scan", f"experiment {experiment} in {job.data}")
    entries, result = job.scan()
    if not entries:
        return job.nothing_left(result)
    day, held, pinned = job.holding_prefix(entries)
    if dry_run:
        return job.plan(result, entries, day, date, full)
    if day is None:
        result.snapshot = job.snapshot(date, full, s3_progress)
        day, held = result.snapshot.date, job.under_folders(result.snapshot.date)
    assert held is not None
    job.verify(day, held, entries, pinned)
    stats = job.unchanged(entries, day)
    result.date, result.uri = day, job.bucket.uri(f"{day}/data")
    result.entry = pinned or job.record(day, entries, result)
    result.listing_sha256 = result.entry.get("listing_sha256")
    result.deleted = job.delete(entries, stats)
    return result


@dataclass
class _Archive:
    data: Path
    experiment: str
    settings: Settings
    models: list[str] | None
    progress: StageProgress | None

    def __post_init__(self) -> None:
        self.log = VersionLog(data_dir=self.data)
        self.bucket = open_bucket(self.settings, 16, None)
        self.folders = experiment_folders(self.data, self.experiment, self.models)

    def scan(self) -> tuple[list[dict[str, Any]], ArchiveResult]:
        """Every local file of the experiment, hashed (the mirror's own scan, so keys and bytes agree)."""
        if not self.data.is_dir():
            raise ConfigError(f"data folder {self.data} does not exist; pass --data-dir", path=self.data)
        entries = scan(self.data, None, folders=self.folders)[0] if self.folders else []
        files = [(tuple(e["key"].split("/")[1:]), e["size"]) for e in entries]
        summary = summarize(self.data, files).get(self.experiment)
        result = ArchiveResult(self.experiment, self.models, len(entries), sum(e["size"] for e in entries))
        if summary is not None:
            result.warnings = summary.problems(self.data, self.experiment)
        return entries, result

    def nothing_left(self, result: ArchiveResult) -> ArchiveResult:
        """No local file: done by an earlier run (its record says where), or nothing to archive."""
        record = latest_record(self.log, self.experiment, self.models or [])
        if record is None:
            which = f" (models {', '.join(self.models)})" if self.models else ""
            raise ConfigError(f"experiment {self.experiment!r}{which} has no files under {self.data}/outputs/ or "
                              f"{self.data}/evaluations/ and was never archived; see `vmeval-hf experiments`",
                              path=self.data)
        result.already_archived, result.entry = True, record
        result.date, result.uri, result.listing_sha256 = record.get("date"), record.get("s3_uri"), \
            record.get("listing_sha256")
        return result

    def holding_prefix(self, entries: list[dict[str, Any]]
                       ) -> tuple[str | None, list[dict[str, Any]] | None, dict[str, Any] | None]:
        """``(prefix, its MANIFEST.json's entries under the experiment's folders, the record that
        already pins these files)`` of a complete prefix holding every local file byte for byte: the
        prefix of this experiment's record when what is left is part of what it recorded (a re-run),
        else the latest complete prefix when its copy of the experiment's folders is exactly these
        files (so the listing of those folders there is the record's); ``(None, None, None)`` when
        none does. Each ``MANIFEST.json`` is streamed: only the entries under the folders are kept."""
        record = latest_record(self.log, self.experiment, self.models or [])
        if record is not None:
            day = str(record.get("date"))
            with open_manifest(self.bucket, day) as manifest:
                found = None if manifest is None else \
                    _under(manifest, record.get("folders") or [], self.folders)
            if found is not None:
                recorded, held = found
                if listing_sha256(recorded) == record.get("listing_sha256") and _holds_all(recorded, entries):
                    return day, held, record  # a re-run: the record covers what is left
        with open_latest_complete(self.bucket, "") as latest:
            if latest is not None:
                day, manifest = latest
                held = in_folders(manifest.files(), self.folders)
                if listing(held) == listing(entries):
                    return day, held, None  # exactly these files under the folders: the record pins them
        return None, None, None

    def under_folders(self, day: str) -> list[dict[str, Any]] | None:
        """The entries of ``day``'s ``MANIFEST.json`` under the experiment's folders (streamed);
        None when the prefix has none."""
        with open_manifest(self.bucket, day) as manifest:
            return None if manifest is None else in_folders(manifest.files(), self.folders)

    def snapshot(self, date: str | None, full: bool,
                 s3_progress: Callable[[int, int, int, int], None] | None) -> MirrorResult:
        """Mirror the whole data tree to ``date`` (today, else its next free ``-<suffix>``)."""
        day = parse_date(date)
        for _ in range(26):
            _stage(self.progress, "snapshot", f"{self.bucket.uri(day + '/')} ({'full' if full else 'incremental'})")
            try:
                return mirror_version(self.data, settings=self.settings, date=day, incremental=not full,
                                      progress=s3_progress)
            except S3ConflictError:
                if date is not None:  # the prefix asked for is taken: say so
                    raise
                day = next_date_suffix(day)
        raise S3ConflictError(f"no free snapshot prefix for today in {self.bucket.uri()}; pass --date")

    def plan(self, result: ArchiveResult, entries: list[dict[str, Any]], day: str | None, date: str | None,
             full: bool) -> ArchiveResult:
        """A dry run: where the files are (or would be) held, what a snapshot would send."""
        result.dry_run = True
        if day is None:
            day = parse_date(date)
            result.snapshot = mirror_version(self.data, settings=self.settings, date=day, incremental=not full,
                                             dry_run=True)
        result.date, result.uri = day, self.bucket.uri(f"{day}/data")
        result.listing_sha256 = listing_sha256(entries)
        return result

    def verify(self, day: str, under: list[dict[str, Any]], entries: list[dict[str, Any]],
               pinned: dict[str, Any] | None) -> None:
        """Each file's object in ``day`` (``under``: its ``MANIFEST.json``'s entries under the
        experiment's folders), by the checksum the server stored."""
        _stage(self.progress, "verify", f"{len(entries)} objects in {self.bucket.uri(day + '/')}")
        held = {f["key"]: f for f in under}
        for e in entries:  # a file that changed between the experiment's scan and the snapshot's
            if (held[e["key"]]["size"], held[e["key"]]["sha256"]) != (e["size"], e["sha256"]):
                raise IntegrityError(f"{e['path']} changed while it was being archived; nothing was deleted or "
                                     "recorded: run the archive again", path=e["path"], key=f"{day}/{e['key']}")
        extra = sorted(set(held) - {e["key"] for e in entries})
        if extra and pinned is None:  # a file added meanwhile: the prefix's folders are not this listing
            raise IntegrityError(f"{self.data / extra[0].removeprefix('data/')} appeared while the experiment was "
                                 "being archived; nothing was deleted or recorded: run the archive again",
                                 path=self.data / extra[0].removeprefix("data/"), key=f"{day}/{extra[0]}")
        problems = check_objects(settings=self.settings, date=day, files=[held[e["key"]] for e in entries])
        if problems:
            raise VerifyError(f"{self.bucket.uri(day + '/')} does not hold experiment {self.experiment} as "
                              f"recorded: {problems[0]} (and {len(problems) - 1} more); nothing was deleted",
                              mismatches=problems)

    def unchanged(self, entries: list[dict[str, Any]], day: str) -> list[os.stat_result]:
        """Hash every local file again: one that changed since the scan is never deleted, nor anything else."""
        def check(e: dict[str, Any]) -> os.stat_result:
            st = os.lstat(e["path"])
            if sha256_file(e["path"]) != e["sha256"]:
                raise IntegrityError(
                    f"{e['path']} changed after the snapshot {self.bucket.uri(day + '/')} was taken (its bytes are "
                    "not the archived copy's): nothing was deleted or recorded; run the archive again to "
                    "snapshot its new content", path=e["path"], key=f"{day}/{e['key']}")
            return st

        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(check, entries))

    def record(self, day: str, entries: list[dict[str, Any]], result: ArchiveResult) -> dict[str, Any]:
        """Append the archive record (once: the same listing is the same record)."""
        _stage(self.progress, "record", str(self.log.path))
        digest = listing_sha256(entries)
        files = [(tuple(e["key"].split("/")[1:]), e["size"]) for e in entries]
        summary = summarize(self.data, files).get(self.experiment)
        entry = {"kind": ARCHIVE_KIND, "version": record_label(self.experiment, digest),
                 "experiment": self.experiment, "models": self.models, "folders": self.folders, "date": day,
                 "s3_uri": self.bucket.uri(f"{day}/data"), "files": len(entries), "bytes": result.bytes,
                 "size_mb": round(result.bytes / 2**20, 3), "listing_sha256": digest,
                 "summary": summary.as_dict() if summary else {}}
        try:
            return dict(self.log.append(entry))
        except VersionConflictError:
            held = self.log.get(entry["version"])
            if held is None or held.get("listing_sha256") != digest:
                raise
            return dict(held)

    def delete(self, entries: list[dict[str, Any]], stats: list[os.stat_result]) -> int:
        """Delete each file if it is as it was hashed, then the experiment's folders left empty."""
        _stage(self.progress, "delete", f"{len(entries)} files")
        deleted = 0
        for e, st in zip(entries, stats):
            now = os.lstat(e["path"])
            if (now.st_ino, now.st_size, now.st_mtime_ns) != (st.st_ino, st.st_size, st.st_mtime_ns):
                raise IntegrityError(f"{e['path']} changed while the archive was deleting; it was kept (the files "
                                     f"before it are archived and deleted): run the archive again",
                                     path=e["path"])
            os.unlink(e["path"])
            deleted += 1
            _stage(self.progress, "deleted", e["path"])
        for folder in self.folders:
            _remove_empty(self.data / folder)
        return deleted


def _holds_all(files: list[Any], entries: list[dict[str, Any]]) -> bool:
    held = {f.get("key"): (f.get("size"), f.get("sha256")) for f in files if isinstance(f, dict)}
    return all(held.get(e["key"]) == (e["size"], e["sha256"]) for e in entries)


def _remove_empty(root: Path) -> None:
    """Remove the empty folders under ``root``, and ``root`` itself if it ends up empty."""
    for folder, _, _ in sorted(os.walk(root), key=lambda t: -len(t[0])):
        try:
            os.rmdir(folder)
        except OSError:
            pass  # not empty (hidden files are never archived, so they keep their folder)


def _under(manifest: MirrorManifest, *folder_sets: list[str]) -> list[list[dict[str, Any]]]:
    """For each of ``folder_sets``, the manifest's entries under one of its folders
    (:func:`~.records.in_folders` of several sets at once), from one walk of its files."""
    tests = [folder_filter(folders) for folders in folder_sets]
    found: list[list[dict[str, Any]]] = [[] for _ in folder_sets]
    for entry in manifest.files():
        for under, kept in zip(tests, found, strict=True):
            if under(entry):
                kept.append(dict(entry))
    return found
