"""Compile a question tree into a release folder: Parquet shards, dataset card, release manifest.

Layout written (atomically: built in a temp folder beside ``out``, then moved in)::

    README.md                                   dataset card; its YAML is the loading config
    assets/<domain>_preview.png                 first | final frame of one question per domain
    data/<domain>/test-00000-of-0000N.parquet   rows sorted by id; images embedded byte for byte
    vmeval_release.json                         sources, shards, files, content_sha256

Streaming: one question's bytes at a time go into a row group of about 100 rows,
so memory does not grow with the tree. Domains are written one after another by
default: on 2 cores, forked workers (``workers=N``) were no faster (scripts/bench_build.py;
the work is file reads, hashing and memory copies) and held more memory.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from glob import escape as glob_escape
from pathlib import Path
from typing import Any

from .errors import BuildError
from .fsutil import parse_size, replace_dir, sha256_bytes, sha256_file
from .questions import KNOWN_FILES, Question, resolve_questions_dir, scan_questions
from .release import (
    RELEASE_MANIFEST,
    SCHEMA,
    FileEntry,
    ReleaseManifest,
    ShardEntry,
    content_sha256,
)
from .schema import IMAGE_COLUMNS, SPLIT, arrow_schema

log = logging.getLogger(__name__)

ROW_GROUP_ROWS = 100
DEFAULT_MAX_SHARD_SIZE = "500MB"
# Below this many input bytes, starting worker processes costs more than it saves.
PARALLEL_MIN_BYTES = 32 * 10**6

Progress = Callable[[int, int], None]  # (questions_done, questions_total)


@dataclass
class BuildResult:
    out: Path
    version: str
    questions: int
    domains: dict[str, int]
    shards: list[ShardEntry]
    content_sha256: str
    size_bytes: int
    manifest: ReleaseManifest = field(repr=False)


@dataclass
class _DomainResult:
    domain: str
    shards: list[ShardEntry]
    sources: list[FileEntry]
    num_bytes: int
    difficulties: dict[str, int]


def _question_size(q: Question) -> int:
    paths = [q.first_frame, q.final_frame, q.ground_truth_video]
    return sum(p.stat().st_size for p in paths if p is not None) + len(q.prompt) + len(q.metadata_text or "")


def plan_shards(questions: list[Question], max_shard_size: int) -> list[list[Question]]:
    """Split one domain's (sorted) questions into shards of at most ``max_shard_size`` input bytes.

    A question larger than the limit gets a shard of its own. Planning up front (from
    file sizes) fixes the ``-of-N`` count before anything is written.
    """
    shards: list[list[Question]] = [[]]
    size = 0
    for q in questions:
        qsize = _question_size(q)
        if shards[-1] and size + qsize > max_shard_size:
            shards.append([])
            size = 0
        shards[-1].append(q)
        size += qsize
    return shards


def _source_files(q: Question) -> Iterator[Path]:
    names = sorted(q.files) if q.files else [n for n in sorted(KNOWN_FILES) if (q.folder / n).is_file()]
    for name in names:
        yield q.folder / name


def _read_sources(q: Question, sources: list[FileEntry]) -> dict[str, bytes]:
    """Every source file of one question, hashed from the same bytes that get embedded."""
    blobs: dict[str, bytes] = {}
    for path in _source_files(q):
        data = path.read_bytes()
        blobs[path.name] = data
        sources.append({"path": f"{q.source_path}/{path.name}", "size": len(data), "sha256": sha256_bytes(data)})
    return blobs


def _image_array(values: list[bytes | None], name: str) -> Any:
    """The ``datasets`` Image storage struct. A null image has null children too, as Parquet
    reading gives them, so ``Table.nbytes`` here equals what ``datasets`` counts on load."""
    import pyarrow as pa

    mask = pa.array([v is None for v in values], pa.bool_())
    data = pa.array(values, pa.binary())
    paths = pa.array([None if v is None else name for v in values], pa.string())
    return pa.StructArray.from_arrays([data, paths], names=["bytes", "path"], mask=mask)


def _table(questions: list[Question], sources: list[FileEntry], schema: Any) -> Any:
    """One row group: the questions' columns, built column by column (no per-row dicts)."""
    import pyarrow as pa

    blobs = [_read_sources(q, sources) for q in questions]
    strings: dict[str, list[str | None]] = {
        "id": [q.id for q in questions], "domain": [q.domain for q in questions],
        "task_category": [q.task_category for q in questions], "difficulty": [q.difficulty for q in questions],
        "prompt": [q.prompt for q in questions], "goal": [q.goal for q in questions],
        "metadata": [q.metadata_text for q in questions], "source_path": [q.source_path for q in questions],
    }
    columns = []
    for name in schema.names:
        if name in IMAGE_COLUMNS:
            columns.append(_image_array([b.get(f"{name}.png") for b in blobs], f"{name}.png"))
        elif name == "ground_truth_video":
            columns.append(pa.array([b.get("ground_truth.mp4") for b in blobs], pa.binary()))
        else:
            columns.append(pa.array(strings[name], pa.string()))
    return pa.Table.from_arrays(columns, schema=schema)


def _writer(path: Path, schema: Any) -> Any:
    import pyarrow.parquet as pq

    image_cols = [f"{c}.bytes" for c in IMAGE_COLUMNS] + ["ground_truth_video"]
    compression = {name: "snappy" for name in schema.names}
    compression.update({c: "none" for c in image_cols})  # PNG/MP4 bytes are already compressed
    dictionary = [n for n in ("domain", "task_category", "difficulty")]
    kwargs: dict[str, Any] = dict(compression=compression, use_dictionary=dictionary, write_page_index=True,
                                  write_statistics=["id", "domain", "difficulty", "source_path"])
    return pq.ParquetWriter(str(path), schema, **kwargs)


def _write_domain(domain: str, shards: list[list[Question]], root: Path) -> _DomainResult:
    schema = arrow_schema()
    folder = root / "data" / domain
    folder.mkdir(parents=True, exist_ok=True)
    sources: list[FileEntry] = []
    entries: list[ShardEntry] = []
    num_bytes = 0
    for index, shard in enumerate(shards):
        rel = f"data/{domain}/{SPLIT}-{index:05d}-of-{len(shards):05d}.parquet"
        writer = _writer(root / rel, schema)
        try:
            for start in range(0, len(shard), ROW_GROUP_ROWS):
                table = _table(shard[start:start + ROW_GROUP_ROWS], sources, schema)
                num_bytes += table.nbytes
                writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
                del table  # one row group of bytes in memory at a time
        finally:
            writer.close()
        p = root / rel
        entries.append({"path": rel, "rows": len(shard), "size": p.stat().st_size, "sha256": sha256_file(p)})
    difficulties = Counter(q.difficulty or "unlabelled" for shard in shards for q in shard)
    return _DomainResult(domain, entries, sources, num_bytes, dict(difficulties))


def _write_all(plans: dict[str, list[list[Question]]], root: Path, workers: int | None,
               total_bytes: int) -> list[_DomainResult]:
    """Write every domain; in forked worker processes when that is safe and pays.

    Forked workers inherit the imported pyarrow (no 1 s re-import per worker). Forking a
    process that runs other threads can deadlock a child, so it is used only when this
    process has a single thread; otherwise, and for small trees, domains go one by one.
    """
    import multiprocessing
    import threading

    n = workers if workers is not None else 1
    if (n > 1 and len(plans) > 1 and total_bytes >= PARALLEL_MIN_BYTES and threading.active_count() == 1
            and "fork" in multiprocessing.get_all_start_methods()):
        import pyarrow.parquet  # noqa: F401  (imported once here, inherited by the forks)

        with ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("fork")) as pool:
            # biggest domains first, so the last one to finish is a small one
            order = sorted(plans, key=lambda d: -sum(len(s) for s in plans[d]))
            futures = {d: pool.submit(_write_domain, d, plans[d], root) for d in order}
            return [futures[d].result() for d in plans]
    return [_write_domain(d, s, root) for d, s in plans.items()]


def _remove_abandoned_builds(out: Path) -> None:
    """Delete temp build folders for ``out`` left by a build process that no longer runs (killed)."""
    prefix = f".{out.name}.building-"
    for folder in out.parent.glob(f"{glob_escape(prefix)}*"):
        pid = folder.name[len(prefix):].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        log.info("removing %s, left by an interrupted build", folder)
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def build_release(
    data_dir: str | Path | None = None,
    out: str | Path | None = None,
    *,
    version: str,
    repo_id: str = "org/vmevalkit-questions",
    questions_dir: str | Path | None = None,
    max_shard_size: str | int = DEFAULT_MAX_SHARD_SIZE,
    workers: int | None = None,
    license: str = "mit",
    decode_images: bool = False,
) -> BuildResult:
    """Validate the tree, then compile the release folder at ``out``.

    Nothing is written if validation fails (:class:`ValidationError`). The same tree,
    version and repo id give a byte-identical folder. Frames are checked for PNG
    structure and CRCs; ``decode_images=True`` also decodes every frame's pixels (what
    ``vmeval-hf validate`` and ``publish`` do), at about a millisecond per frame.
    """
    from .card import render_card, write_previews
    from .versions import validate_label

    validate_label(version)  # it names the output folder, a Hub tag and a log entry
    # the parsed metadata dicts are not needed here (the text is), and are most of a Question's memory
    questions = [replace(q, metadata=None) for q in scan_questions(data_dir, questions_dir=questions_dir,
                                                                   decode_images=decode_images)]
    qdir = resolve_questions_dir(data_dir, questions_dir)
    out_path = Path(out) if out is not None else qdir.parent / "releases" / version
    limit = parse_size(max_shard_size)
    if limit <= 0:
        raise BuildError(f"--max-shard-size must be positive, got {max_shard_size!r}")
    by_domain: dict[str, list[Question]] = {}
    for q in questions:
        by_domain.setdefault(q.domain, []).append(q)
    plans = {d: plan_shards(qs, limit) for d, qs in sorted(by_domain.items())}

    out_path.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_builds(out_path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_path.name}.building-{os.getpid()}-", dir=out_path.parent))
    try:
        total_bytes = sum(_question_size(q) for q in questions)
        results = _write_all(plans, tmp, workers, total_bytes)

        sources = sorted((s for r in results for s in r.sources), key=lambda s: s["path"])
        shards = [s for r in results for s in r.shards]
        domains = {r.domain: sum(s["rows"] for s in r.shards) for r in results}
        digest = content_sha256(sources)
        previews = write_previews(tmp, {d: qs[0] for d, qs in by_domain.items()})
        card_text = render_card(
            repo_id=repo_id, version=version, license=license,
            domains=domains, difficulties={r.domain: r.difficulties for r in results},
            num_bytes={r.domain: r.num_bytes for r in results},
            download_size={r.domain: sum(s["size"] for s in r.shards) for r in results},
            previews=previews, content_sha256=digest,
        )
        (tmp / "README.md").write_text(card_text, encoding="utf-8")
        hashed = {s["path"]: s for s in shards}  # shards were hashed as they were written
        files: list[FileEntry] = []
        for p in sorted(tmp.rglob("*")):
            if p.is_file():
                rel = p.relative_to(tmp).as_posix()
                if rel in hashed:
                    files.append({"path": rel, "size": hashed[rel]["size"], "sha256": hashed[rel]["sha256"]})
                else:
                    files.append({"path": rel, "size": p.stat().st_size, "sha256": sha256_file(p)})
        manifest: ReleaseManifest = {
            "schema": SCHEMA, "version": version, "questions": len(questions), "domains": domains,
            "sources": sources, "shards": shards, "files": files, "content_sha256": digest,
        }
        # fsutil.canonical_json's form, streamed: json.dumps with indent joins every piece in memory
        # first (tens of MB for 10,000 questions). No temp file needed: tmp/ is swapped in whole.
        with open(tmp / RELEASE_MANIFEST, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=2, sort_keys=True, ensure_ascii=False)
            fh.write("\n")
        replace_dir(tmp, out_path)  # out_path is never a half-written release
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = sum(f["size"] for f in files) + (out_path / RELEASE_MANIFEST).stat().st_size
    log.info("built %s: %d questions, %d shards", out_path, len(questions), len(shards))
    return BuildResult(out_path, version, len(questions), domains, shards, digest, size, manifest)
