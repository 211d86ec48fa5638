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
from ..s3.layout import MIRROR_MANIFEST, parse_date
from ..s3.mirror import manifest_at, open_bucket
from ..s3.read import fetch_files
from ..tree.model import DOMAIN_DIR_RE
from ..versions import VersionLog
from .model import EVALUATIONS, OUTPUTS, check_name, evaluation_roots
from .records import in_folders, latest_record, listing_sha256


@dataclass
class RestoreResult:
    experiment: str
    date: str
    uri: str                # s3://<bucket>/<D>/data
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
    domains' files. ``date``: the snapshot prefix to restore from (default: the one the newest
    archive record of the experiment names). ``progress``: ``(files_done, bytes_done, files_total,
    bytes_total)`` callback.

    Raises ConfigError when nothing names where the experiment is, IntegrityError naming a local
    file that differs (nothing is downloaded then) or a prefix that no longer holds what was recorded.
    """
    check_name("experiment", experiment)
    data = Path(data_dir)
    wanted_models = {check_name("model", m) for m in models} if models else None
    wanted_domains = {check_name("domain", d) for d in domains} if domains else None
    record = latest_record(VersionLog(data_dir=data), experiment, date=parse_date(date) if date else None)
    if date is None and record is None:
        raise ConfigError(f"experiment {experiment!r} has no archive record in {VersionLog(data_dir=data).path}; "
                          "pass --from DATE to restore it from a snapshot prefix that holds it")
    day = parse_date(date) if date else str(record["date"])  # type: ignore[index]
    bucket = open_bucket(settings, 16, None)
    manifest = manifest_at(bucket, day)
    if manifest is None:
        raise S3Error(f"{bucket.uri(day + '/')} has no {MIRROR_MANIFEST}: it is not a complete snapshot; "
                      "pick another --from", key=f"{day}/{MIRROR_MANIFEST}")
    files = _experiment_files(manifest["files"], experiment, record, bucket.uri(day + "/"))
    files = [f for f in files if _wanted(f["key"], experiment, wanted_models, wanted_domains)]
    if not files:
        raise ConfigError(f"{bucket.uri(day + '/')} holds no files of experiment {experiment!r}"
                          + (f" for models {sorted(wanted_models)}" if wanted_models else "")
                          + (f" in domains {sorted(wanted_domains)}" if wanted_domains else ""))
    got = fetch_files(settings=settings, date=day, files=files, dest=data, strip="data/", progress=progress)
    return RestoreResult(experiment, day, bucket.uri(f"{day}/data"), got.files, got.bytes, got.downloaded, got.skipped)


def _experiment_files(files: list[Any], experiment: str, record: dict[str, Any] | None,
                      where: str) -> list[dict[str, Any]]:
    """The experiment's entries of a ``MANIFEST.json``: the record's folders, whose listing must be
    the recorded one; without a record, every folder of the experiment in the prefix."""
    if record is not None:
        found = in_folders(files, record.get("folders") or [])
        if listing_sha256(found) != record.get("listing_sha256"):
            raise IntegrityError(f"{where} no longer holds experiment {experiment} as archived (the listing of its "
                                 f"files is not the one {record.get('version')} recorded): it was altered after the "
                                 "archive; nothing was restored", key=where)
        return found
    parts = [tuple(str(f.get("key", "")).split("/")[1:]) for f in files if isinstance(f, dict)]
    flat, nested = evaluation_roots([p for p in parts if p[:1] == (EVALUATIONS,)])
    folders = [f"{OUTPUTS}/{experiment}"] + ([f"{EVALUATIONS}/{experiment}"] if experiment in flat else [])
    folders += [f"{EVALUATIONS}/{f}/{x}" for f, x in sorted(nested) if x == experiment]
    return in_folders(files, folders)


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
