"""The results flow: check and build -> Hub -> S3 -> verify both -> log, as for the questions.

The results release is a release folder of the question release's format, so the Hub commit +
tag (:func:`~vmeval_hf.hub.publish_to_hub`), the S3 mirror (:func:`~vmeval_hf.s3.mirror.mirror_version`,
with the experiment's folders of the data tree) and the verification of both sides
(:func:`~vmeval_hf.publish.verify_sides`) are the question release's own. Same rules too: the
same content under a logged label is a no-op, other content is refused unless ``force``, a taken
S3 prefix is refused before anything is sent, and the log line is written last, only after both
sides verify, with ``"kind": "results"``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._shared.meta import TOOL
from ..config import Settings
from ..errors import ConfigError, VerifyError, VersionConflictError
from ..hub import FILES_PER_COMMIT, HubResult, check_files_per_commit, publish_to_hub
from ..publish import check_prefix_free, verify_sides
from ..release.build import DEFAULT_MAX_SHARD_SIZE
from ..release.release_manifest import Mismatch
from ..s3.layout import parse_date
from ..s3.mirror import MirrorResult, mirror_version
from ..versions import VersionLog, is_results
from .build import ResultsBuild, build_results
from .model import KIND, check_results_label, next_results_version
from .scan import check_experiment

log = logging.getLogger(__name__)


@dataclass
class ResultsPublish:
    """What :func:`publish_results` did; ``entry`` is the log entry (written only with ``log_entry``)."""

    version: str
    build: ResultsBuild
    hub: HubResult | None = None
    s3: MirrorResult | None = None
    entry: dict[str, Any] | None = None
    noop: bool = False


def default_date(version: str) -> str:
    """The S3 prefix of a results version: ``<today UTC>-<label>``, so it never shares a day's
    prefix with a question version (or another results version)."""
    day = f"{datetime.now(timezone.utc):%Y%m%d}-{version}"
    try:
        return parse_date(day)
    except ConfigError:
        raise ConfigError(f"results version {version!r} is too long for an S3 date prefix "
                          f"(YYYYMMDD-<suffix of up to 32 characters>); pass --date") from None


def publish_results(
    data_dir: str | Path = "data", *, experiment: str, settings: Settings, version: str | None = None,
    questions_version: str | None = None, log_entry: bool = False, date: str | None = None,
    repo_id: str | None = None, force: bool = False, with_videos: bool = False, out: str | Path | None = None,
    max_shard_size: str | int = DEFAULT_MAX_SHARD_SIZE, progress: Callable[[str, str], None] | None = None,
    s3_progress: Callable[[int, int, int, int], None] | None = None,
    files_per_commit: int = FILES_PER_COMMIT,
) -> ResultsPublish:
    """Publish ``experiment``'s evaluations in ``data_dir`` as a results version: check and build,
    Hub commit + tag, S3 mirror, verify both sides, and (``log_entry``) log it.

    ``settings``: endpoints and credentials. ``version``: ``<experiment>-<N.M>`` (default: the
    next for this experiment). ``questions_version``: the question version the run was made on
    (default: the latest logged). ``date``: the S3 prefix (default ``<today>-<version>``, see
    :func:`default_date`). ``repo_id``: the results repo (default ``settings.results_repo``).
    ``force``: replace a version published with other content (moves the tag). ``with_videos``,
    ``out``, ``max_shard_size``: as for :func:`~vmeval_hf.results.build.build_results`.
    ``progress``: optional ``(stage, detail)`` callback; ``s3_progress``: optional
    ``(files_done, bytes_done, files_total, bytes_total)`` callback for the upload.
    ``files_per_commit``: the most file changes one Hub commit carries (as for
    :func:`~vmeval_hf.publish.publish_version`).

    Bad evaluations raise :class:`~vmeval_hf.errors.ValidationError` before anything is sent;
    a failed side raises its error and the log is untouched.
    """
    check_experiment(experiment)
    per_commit = check_files_per_commit(files_per_commit)  # before anything is built or sent
    data, versions = Path(data_dir), VersionLog(data_dir=data_dir)
    entries = [dict(e) for e in versions.entries()]  # a corrupt log stops us here, before any work
    label = check_results_label(version or next_results_version(entries, experiment), experiment)
    logged = _logged(versions, label, experiment)
    repo = repo_id or settings.results_repo
    day = parse_date(date or (logged or {}).get("date") or default_date(label))  # a bad --date stops us here
    _stage(progress, "build", f"results {label} of experiment {experiment}")
    built = build_results(data, out, experiment=experiment, settings=settings, version=label,
                          questions_version=questions_version, repo_id=repo, with_videos=with_videos,
                          max_shard_size=max_shard_size)
    result = ResultsPublish(label, built)
    if logged is not None and not force:
        if logged.get("content_sha256") == built.content_sha256:
            result.noop, result.entry = True, logged
            _stage(progress, "log", f"{label} is already published with this content")
            return result
        raise VersionConflictError(
            f"results version {label} is already logged with different content "
            f"(sha256:{str(logged.get('content_sha256'))[:12]}); publish as "
            f"{next_results_version(entries, experiment)}, or pass --force to replace it", version=label, repo=repo)
    _push(result, settings, data, repo, day, force, progress, s3_progress, per_commit)
    _verify(result, settings, repo, day, progress)
    result.entry = _entry(result, experiment, day)
    if log_entry:
        _stage(progress, "log", str(versions.path))
        result.entry = dict(versions.append(result.entry, replace=logged is not None))
    return result


def _stage(progress: Callable[[str, str], None] | None, stage: str, detail: str) -> None:
    log.info("%s: %s", stage, detail)
    if progress is not None:
        progress(stage, detail)


def _logged(versions: VersionLog, label: str, experiment: str) -> dict[str, Any] | None:
    """The log entry of ``label``, if it is this experiment's results; another entry is a conflict."""
    found = versions.get(label)
    if found is None:
        return None
    if not is_results(found) or found.get("experiment") != experiment:
        raise VersionConflictError(f"{label} is already in the version log {versions.path} as another kind of "
                                   f"version; label the results {next_results_version([], experiment)} or later",
                                   version=label)
    return dict(found)


def _push(result: ResultsPublish, settings: Settings, data: Path, repo: str, day: str, force: bool,
          progress: Callable[[str, str], None] | None,
          s3_progress: Callable[[int, int, int, int], None] | None, files_per_commit: int) -> None:
    """The Hub commit + tag, then the experiment's folders and the release to ``s3://<bucket>/<day>/``."""
    built = result.build
    check_prefix_free(settings, day, result.version, built.content_sha256)  # before the Hub is touched
    _stage(progress, "hub", f"{repo}@{result.version}")
    result.hub = publish_to_hub(built.out, settings=settings, repo_id=repo, force=force,
                                commit_message=f"Results {result.version}",
                                commit_description=f"vmeval-hf results {result.version} of experiment "
                                f"{built.experiment} on questions {built.question_version}, content "
                                f"sha256:{built.content_sha256}", files_per_commit=files_per_commit)
    _stage(progress, "s3", f"s3://{settings.s3_bucket}/{day}/")
    result.s3 = mirror_version(data, settings=settings, date=day, release_dir=built.out, version=result.version,
                               content_sha256=built.content_sha256, folders=built.folders, progress=s3_progress,
                               hub={"repo": repo, "revision": result.version, "commit": result.hub.commit})


def _verify(result: ResultsPublish, settings: Settings, repo: str, day: str,
            progress: Callable[[str, str], None] | None) -> None:
    _stage(progress, "verify", "both sides against the release manifest")
    assert result.hub is not None
    problems: list[Mismatch] = verify_sides(settings, result.build.manifest, repo=repo, commit=result.hub.commit,
                                            date=day)
    if problems:
        shown = "; ".join(str(p) for p in problems[:5])
        raise VerifyError(f"results version {result.version} does not match its release manifest: {shown}",
                          mismatches=problems, version=result.version)


def _entry(result: ResultsPublish, experiment: str, day: str) -> dict[str, Any]:
    built, hub, s3 = result.build, result.hub, result.s3
    assert hub is not None and s3 is not None
    return {
        "kind": KIND, "version": result.version, "experiment": experiment, "date": day,
        "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "s3_uri": s3.uri, "hf_uri": hub.uri, "hf_repo": hub.repo_id, "hf_revision": result.version,
        "hf_commit": hub.commit, "size_mb": round(s3.bytes / 2**20, 3), "files": s3.files,
        "rows": built.rows, "questions": built.questions, "domains": dict(built.domains),
        "evaluators": dict(built.evaluators), "models": dict(built.models),
        "question_version": built.question_version, "question_content_sha256": built.question_content_sha256,
        "content_sha256": built.content_sha256, "tool": TOOL,
    }
