"""``restore_experiment``: bring an archived experiment back into the data tree, every sha256 checked.

The files come from the prefix an archive record names (or the snapshot ``date`` given): the
record pins their listing (its hash), so a prefix altered since the archive is refused before
anything is downloaded. Each file lands through a temp file checked against its sha256; files
already there with the right bytes are skipped (an interrupted restore resumes); a local file with
other bytes where one would land is never overwritten: it is named, and nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import ConfigError, IntegrityError, S3Error
from ..s3.client import S3Bucket
from ..s3.layout import MIRROR_MANIFEST, parse_date
from ..s3.mirror import MirrorManifest, open_bucket, open_manifest
from ..s3.read import fetch_files
from ..tree.model import DOMAIN_DIR_RE
from ..versions import VersionLog
from .model import EVALUATIONS, OUTPUTS, check_name, evaluation_roots
from .records import archive_records, in_folders, listing_sha256


@dataclass
class RestoreResult:
    experiment: str
    dates: list[str]        # the snapshot prefixes restored from (newest archive record first)
    uris: list[str]         # s3://<bucket>/<D>/data of each
    files: int
    bytes: int
    downloaded: int
    skipped: int            # already there with the right bytes

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def restore_experiment(experiment: str, data_dir: str | Path = "data", *, settings: Settings,
                       models: Sequence[str] | None = None, domains: Sequence[str] | None = None,
                       date: str | None = None,
                       progress: Callable[[int, int, int, int], None] | None = None) -> RestoreResult:
    """Restore ``experiment`` into the data tree ``data_dir`` from S3.

    ``settings``: the S3 bucket and credentials. ``models`` / ``domains``: only these models' and
    domains' files. ``date``: the snapshot prefix to restore from (default: the prefixes the
    experiment's archive records name, each file from the newest record holding it: archiving
    one model, then another, restores both). ``progress``: ``(files_done, bytes_done,
    files_total, bytes_total)`` callback, per prefix.

    Raises ConfigError when nothing names where the experiment is, IntegrityError naming a local
    file that differs (nothing of that prefix is downloaded then) or a prefix that no longer holds
    what was recorded.
    """
    check_name("experiment", experiment)
    data = Path(data_dir)
    wanted = ({check_name("model", m) for m in models} if models else None,
              {check_name("domain", d) for d in domains} if domains else None)
    log = VersionLog(data_dir=data)
    day = parse_date(date) if date else None
    sources: list[tuple[str, dict[str, Any] | None]] = [(str(r["date"]), r) for r in reversed(archive_records(
        log, experiment)) if day is None or r.get("date") == day]
    if day is not None and not sources:
        sources = [(day, None)]  # a snapshot no record names: the experiment's folders in it
    if not sources:
        raise ConfigError(f"experiment {experiment!r} has no archive record in {log.path}; pass --from DATE "
                          "to restore it from a snapshot prefix that holds it")
    bucket = open_bucket(settings, 16, None)
    plan = _plan(bucket, experiment, sources[:1] if day else sources, *wanted)
    if not plan:
        raise ConfigError(f"{', '.join(bucket.uri(d + '/') for d, _ in sources)} hold no files of experiment "
                          f"{experiment!r}" + (f" for models {sorted(wanted[0])}" if wanted[0] else "")
                          + (f" in domains {sorted(wanted[1])}" if wanted[1] else ""))
    got = [fetch_files(settings=settings, date=d, files=files, dest=data, strip="data/", progress=progress)
           for d, files in plan]
    return RestoreResult(experiment, [d for d, _ in plan], [bucket.uri(f"{d}/data") for d, _ in plan],
                         sum(g.files for g in got), sum(g.bytes for g in got), sum(g.downloaded for g in got),
                         sum(g.skipped for g in got))


def _plan(bucket: S3Bucket, experiment: str, sources: list[tuple[str, dict[str, Any] | None]],
          models: set[str] | None, domains: set[str] | None) -> list[tuple[str, list[dict[str, Any]]]]:
    """``(prefix, files to fetch from it)``: each wanted file from the first source that holds it."""
    taken: set[str] = set()
    plan = []
    for day, record in sources:
        with open_manifest(bucket, day) as manifest:
            if manifest is None:
                raise S3Error(f"{bucket.uri(day + '/')} has no {MIRROR_MANIFEST}: it is not a complete snapshot; "
                              "pick another --from", key=f"{day}/{MIRROR_MANIFEST}")
            files = [f for f in _experiment_files(manifest, experiment, record, bucket.uri(day + "/"))
                     if f["key"] not in taken and _wanted(f["key"], experiment, models, domains)]
        taken |= {f["key"] for f in files}
        if files:
            plan.append((day, files))
    return plan


def _experiment_files(manifest: MirrorManifest, experiment: str, record: dict[str, Any] | None,
                      where: str) -> list[dict[str, Any]]:
    """The experiment's entries of a ``MANIFEST.json`` (streamed: only these are held): the record's
    folders, whose listing must be the recorded one; without a record, every folder of the
    experiment in the prefix (found by a first walk of the keys)."""
    if record is not None:
        found = in_folders(manifest.files(), record.get("folders") or [])
        if listing_sha256(found) != record.get("listing_sha256"):
            raise IntegrityError(f"{where} no longer holds experiment {experiment} as archived (the listing of its "
                                 f"files is not the one {record.get('version')} recorded): it was altered after the "
                                 "archive; nothing was restored", key=where)
        return found
    under = f"data/{EVALUATIONS}/"
    flat, nested = evaluation_roots(tuple(key.split("/")[1:]) for f in manifest.files()
                                    if (key := str(f.get("key", ""))).startswith(under))
    folders = [f"{OUTPUTS}/{experiment}"] + ([f"{EVALUATIONS}/{experiment}"] if experiment in flat else [])
    folders += [f"{EVALUATIONS}/{f}/{x}" for f, x in sorted(nested) if x == experiment]
    return in_folders(manifest.files(), folders)


def _wanted(key: str, experiment: str, models: set[str] | None, domains: set[str] | None) -> bool:
    """Whether a file of the experiment (``data/outputs/<experiment>/<model>/<domain>_task/...`` or
    ``data/evaluations/[<folder>/]<experiment>/<model>/<domain>_task/...``) is of ``models`` and ``domains``."""
    if models is None and domains is None:
        return True
    parts = key.split("/")[1:]
    base = 2 if parts[0] == OUTPUTS or parts[1] == experiment else 3
    model = parts[base] if len(parts) > base + 1 else None
    match = DOMAIN_DIR_RE.match(parts[base + 1]) if len(parts) > base + 2 else None
    return (models is None or model in models) and (domains is None or (match is not None and match.group(1) in domains))
