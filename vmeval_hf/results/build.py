"""Compile one experiment's evaluations into a results release folder, in the question release's format.

Layout written (built in a temp folder beside ``out``, then moved in; nothing is written when
the evaluations have errors)::

    README.md                                     the card: YAML config, leaderboard, load snippets
    assets/leaderboard.png                        the leaderboard heatmap the card shows
    data/<evaluator>/test-00000-of-0000N.parquet  one row per evaluation, sorted by model, domain, id
    leaderboard.json                              the leaderboard as data
    vmeval_release.json                           sources, shards, files, content_sha256 (+ kind "results")

``sources`` are the evaluation files, the videos they score (paths relative to the data tree)
and the question release they refer to (its ``vmeval_release.json``), so ``content_sha256``
changes with any of them and with nothing else. The same evaluations, videos, question version,
label and options give a byte-identical folder, so the Hub and S3 steps of the question release
(:mod:`vmeval_hf.hub`, :mod:`vmeval_hf.s3.mirror`) take it as it is.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from .._shared.fs import canonical_json, parse_size, replace_dir, sha256_bytes, sha256_file
from ..config import Settings
from ..errors import BuildError, IntegrityError
from ..release.build import DEFAULT_MAX_SHARD_SIZE, BuildResult
from ..release.release_manifest import (
    RELEASE_MANIFEST,
    SCHEMA,
    FileEntry,
    ShardEntry,
    content_sha256,
)
from ..release.schema import SPLIT, arrow_schema
from ..release.shards import (
    ROW_GROUP_BYTES,
    ROW_GROUP_ROWS,
    binary_array,
    bool_array,
    int64_array,
    parquet_writer,
    string_array,
)
from ..versions import VersionLog
from .card import HEATMAP, LEADERBOARD, CardFacts, render_results_card
from .heatmap import heatmap_png
from .leaderboard import leaderboard
from .model import (
    COLUMNS,
    KIND,
    Evaluation,
    ResultsReport,
    check_results_label,
    next_results_version,
)
from .questions import question_ref
from .scan import check_experiment, scan_experiment

log = logging.getLogger(__name__)

#: Parquet layout of the results shards: video bytes stored as they are, repeated labels as dictionaries
RAW = ("video",)
DICTIONARY = ("model", "domain", "evaluator", "evaluator_folder", "status", "evaluation_type",
              "question_version", "question_content_sha256")
STATISTICS = ("model", "domain", "task_id", "evaluator", "score", "status")


@dataclass
class ResultsBuild(BuildResult):
    """A built results release; ``questions``/``domains`` count the distinct questions evaluated."""

    experiment: str = ""
    rows: int = 0
    evaluators: dict[str, int] = field(default_factory=dict)
    models: dict[str, int] = field(default_factory=dict)
    question_version: str = ""
    question_content_sha256: str = ""
    leaderboard: dict[str, Any] = field(default_factory=dict)
    report: ResultsReport | None = None  # the warnings the build went ahead with
    #: the data-tree folders of the experiment (relative to the data tree): what its S3 mirror takes
    folders: list[str] = field(default_factory=list)


def build_results(data_dir: str | Path = "data", out: str | Path | None = None, *, experiment: str,
                  settings: Settings, version: str | None = None, questions_version: str | None = None,
                  repo_id: str | None = None, questions_repo: str | None = None, with_videos: bool = False,
                  max_shard_size: str | int = DEFAULT_MAX_SHARD_SIZE, license: str = "mit") -> ResultsBuild:
    """Check ``experiment``'s evaluations in ``data_dir`` and compile its results release at ``out``.

    ``version``: the label, ``<experiment>-<N.M>`` (default: the next for this experiment in the
    version log, ``<experiment>-1.0`` first). ``out``: default ``<data_dir>/releases/<version>``.
    ``questions_version``: the question version the run was made on (default: the latest logged);
    every evaluation must score one of its questions. ``settings``: reach that version's release
    manifest on the Hub or S3 when it is not built locally, and name the default repos.
    ``repo_id``: the results repo in the card's snippets (default ``settings.results_repo``);
    ``questions_repo``: the questions repo it names (default: the logged one, else
    ``settings.hf_repo``). ``with_videos``: embed each scored video's bytes in the ``video``
    column. ``max_shard_size``: the largest Parquet shard. ``license``: the card's license.

    Raises :class:`~vmeval_hf.errors.ValidationError` listing every problem (nothing is written)
    when an evaluation file is bad; warnings do not stop the build.
    """
    check_experiment(experiment)
    data = Path(data_dir)
    label = check_results_label(version or next_results_version(
        [dict(e) for e in VersionLog(data_dir=data).entries()], experiment), experiment)
    limit = parse_size(max_shard_size, "--max-shard-size")
    ref = question_ref(data, questions_version, settings=settings)
    report = scan_experiment(data, experiment, ref)
    report.raise_for_errors()  # before any folder is made
    out_path = Path(out) if out is not None else data / "releases" / label
    board = leaderboard(report.evaluations, experiment=experiment, question_version=ref.version)
    facts = CardFacts(repo_id=repo_id or settings.results_repo, version=label, license=license,
                      content_sha256=content_sha256(report.sources()), questions=ref,
                      questions_repo=questions_repo or _questions_repo(data, ref.version, settings),
                      with_videos=with_videos, num_bytes={}, download_size={})
    summary = _write(out_path, report, board, facts, limit)
    evaluations = report.evaluations
    return ResultsBuild(
        out=out_path, version=label, questions=summary["questions"], domains=summary["domains"],
        shards=summary["shards"], content_sha256=summary["content_sha256"],
        size_bytes=sum(f["size"] for f in summary["files"]) + (out_path / RELEASE_MANIFEST).stat().st_size,
        experiment=experiment, rows=len(evaluations), evaluators=summary["evaluators"], models=summary["models"],
        question_version=ref.version, question_content_sha256=ref.content_sha256, leaderboard=board,
        report=report, folders=list(report.folders))


def _questions_repo(data: Path, version: str, settings: Settings) -> str:
    entry = VersionLog(data_dir=data).get(version)
    return str((entry or {}).get("hf_repo") or settings.hf_repo)


def _write(out: Path, report: ResultsReport, board: dict[str, Any], facts: CardFacts, limit: int) -> dict[str, Any]:
    """Write the release in a temp folder beside ``out`` and move it into place; its manifest."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    except OSError as exc:
        raise BuildError(f"cannot write the results release at {out} ({exc.strerror or exc}); check free space "
                         "and permissions, or pass --out elsewhere", path=out) from exc
    try:
        summary = _fill(tmp, report, board, facts, limit)
        replace_dir(tmp, out)  # out is never a half-written release
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise BuildError(f"cannot write the results release at {out} ({exc.strerror or exc}); nothing was "
                             "left behind; check free space and permissions", path=out) from exc
        raise
    log.info("built %s: %d evaluations, %d shards", out, len(report.evaluations), len(summary["shards"]))
    return summary


def _fill(root: Path, report: ResultsReport, board: dict[str, Any], facts: CardFacts, limit: int) -> dict[str, Any]:
    """Shards, leaderboard, heatmap, card and release manifest in ``root``; returns the manifest."""
    evaluations = report.evaluations
    shards: list[ShardEntry] = []
    by_evaluator: dict[str, list[Evaluation]] = {}
    for e in evaluations:
        by_evaluator.setdefault(e.evaluator, []).append(e)
    for evaluator, rows in sorted(by_evaluator.items()):
        written, facts.num_bytes[evaluator] = _write_evaluator(root, evaluator, rows, facts, limit)
        facts.download_size[evaluator] = sum(s["size"] for s in written)
        shards += written
    (root / LEADERBOARD).write_text(canonical_json(board), encoding="utf-8")
    (root / HEATMAP).parent.mkdir(parents=True, exist_ok=True)
    (root / HEATMAP).write_bytes(heatmap_png(board))
    (root / "README.md").write_text(render_results_card(facts, board, evaluations), encoding="utf-8")
    sources = report.sources()
    questions = Counter(e.domain for e in {(e.domain, e.task_id): e for e in evaluations}.values())
    manifest = {
        "schema": SCHEMA, "kind": KIND, "version": facts.version, "experiment": report.experiment,
        "questions": sum(questions.values()), "domains": dict(sorted(questions.items())),
        "rows": len(evaluations), "evaluators": {k: len(v) for k, v in sorted(by_evaluator.items())},
        "models": dict(sorted(Counter(e.model for e in evaluations).items())),
        "question_version": facts.questions.version, "question_content_sha256": facts.questions.content_sha256,
        "with_videos": facts.with_videos, "sources": sources, "shards": shards,
        "files": _files(root, shards), "content_sha256": content_sha256(sources),
    }
    (root / RELEASE_MANIFEST).write_text(canonical_json(manifest), encoding="utf-8")
    return manifest


def _files(root: Path, shards: list[ShardEntry]) -> list[FileEntry]:
    hashed = {s["path"]: s for s in shards}
    files: list[FileEntry] = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel != RELEASE_MANIFEST:
            known = hashed.get(rel)
            files.append({"path": rel, "size": known["size"] if known else p.stat().st_size,
                          "sha256": known["sha256"] if known else sha256_file(p)})
    return files


# -- shards ------------------------------------------------------------------------------------


def _row_bytes(e: Evaluation, with_videos: bool) -> int:
    return e.size + (e.video.size if with_videos and e.video is not None else 0)


def _chunks(rows: list[Evaluation], with_videos: bool, max_bytes: int, max_rows: int | None = None
            ) -> Iterator[list[Evaluation]]:
    """``rows`` in order, cut before a row that would take a chunk past ``max_bytes`` or ``max_rows``
    (a row over the limit gets a chunk of its own)."""
    chunk: list[Evaluation] = []
    size = 0
    for e in rows:
        n = _row_bytes(e, with_videos)
        if chunk and (size + n > max_bytes or (max_rows is not None and len(chunk) >= max_rows)):
            yield chunk
            chunk, size = [], 0
        chunk.append(e)
        size += n
    if chunk:
        yield chunk


def _write_evaluator(root: Path, evaluator: str, rows: list[Evaluation], facts: CardFacts,
                     limit: int) -> tuple[list[ShardEntry], int]:
    """``data/<evaluator>/test-XXXXX-of-YYYYY.parquet``: the shards and the Arrow bytes written."""
    schema = arrow_schema(COLUMNS)
    parts = list(_chunks(rows, facts.with_videos, limit))
    (root / "data" / evaluator).mkdir(parents=True, exist_ok=True)
    shards: list[ShardEntry] = []
    num_bytes = 0
    for index, part in enumerate(parts):
        rel = f"data/{evaluator}/{SPLIT}-{index:05d}-of-{len(parts):05d}.parquet"
        writer = parquet_writer(root / rel, schema, raw=RAW, dictionary=DICTIONARY, statistics=STATISTICS)
        try:
            for group in _chunks(part, facts.with_videos, ROW_GROUP_BYTES, ROW_GROUP_ROWS):
                table = _table(group, schema, facts)
                num_bytes += table.nbytes
                writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        finally:
            writer.close()
        path = root / rel
        shards.append({"path": rel, "rows": len(part), "size": path.stat().st_size, "sha256": sha256_file(path)})
    return shards, num_bytes


def _video_bytes(e: Evaluation) -> bytes | None:
    """The scored video's bytes, checked against the sha256 the sources record."""
    if e.video is None:
        return None
    data = e.video.file.read_bytes()
    if sha256_bytes(data) != e.video.sha256:
        raise IntegrityError(f"{e.video.file} changed while building (its bytes no longer match the sha256 read "
                             "moments ago); re-run the build once the run has finished writing", path=e.video.file)
    return data


def _table(rows: list[Evaluation], schema: Any, facts: CardFacts) -> Any:
    """One row group of evaluations as an Arrow table of :data:`~vmeval_hf.results.model.COLUMNS`."""
    q = facts.questions
    text: dict[str, list[str | None]] = {
        "model": [e.model for e in rows], "domain": [e.domain for e in rows], "task_id": [e.task_id for e in rows],
        "evaluator": [e.evaluator for e in rows], "evaluator_folder": [e.evaluator_folder for e in rows],
        "status": [e.status for e in rows], "explanation": [e.explanation for e in rows],
        "error": [e.error for e in rows], "evaluation_type": [e.evaluation_type for e in rows],
        "annotator": [e.annotator for e in rows], "timestamp": [e.timestamp for e in rows],
        "question_version": [q.version] * len(rows), "question_content_sha256": [q.content_sha256] * len(rows),
        "video_key": [e.video.key if e.video else None for e in rows],
        "video_sha256": [e.video.sha256 if e.video else None for e in rows],
        "evaluation": [e.text for e in rows], "source_path": [e.source_path for e in rows],
    }
    arrays = {name: string_array(values) for name, values in text.items()}
    arrays["score"] = int64_array([e.score for e in rows])
    arrays["success"] = bool_array([e.success for e in rows])
    arrays["video"] = binary_array([_video_bytes(e) if facts.with_videos else None for e in rows], pa.binary())
    return pa.Table.from_arrays([arrays[name] for name in schema.names], schema=schema)
