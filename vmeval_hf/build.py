"""Compile a question tree into a release folder: Parquet shards, dataset card, release manifest.

Layout written (atomically: built in a temp folder beside ``out``, then moved in)::

    README.md                                   dataset card; its YAML is the loading config
    assets/<domain>_preview.png                 first | final frame of one question per domain
    data/<domain>/test-00000-of-0000N.parquet   rows sorted by id; images embedded byte for byte
    vmeval_release.json                         sources, shards, files, content_sha256

One pass: :class:`~vmeval_hf.questions.Checker` reads each file once to validate it and
hands the same bytes to the domain's writer, which hashes them and streams them into row
groups of about 100 rows, so memory does not grow with the tree. If any question fails,
nothing is moved into place: the temp folder is deleted and ``ValidationError`` lists
every problem. Domains are compiled in two forked worker processes when the tree is big
enough to pay for them (scripts/bench_build.py has the figures).
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from glob import escape as glob_escape
from pathlib import Path
from typing import Any

from .card import PreviewSource
from .errors import BuildError
from .fsutil import parse_size, replace_dir, sha256_file
from .questions import (
    VIDEO,
    Checker,
    Listed,
    Problem,
    Question,
    resolve_questions_dir,
    tree_problems,
)
from .release import (
    RELEASE_MANIFEST,
    SCHEMA,
    FileEntry,
    ReleaseManifest,
    ShardEntry,
    SourceRow,
    content_sha256_rows,
    load_release,
    write_release_manifest,
)
from .schema import IMAGE_COLUMNS, SPLIT, arrow_schema

log = logging.getLogger(__name__)

ROW_GROUP_ROWS = 100
#: a row group is also cut at this many input bytes, so huge frames or videos stay bounded
ROW_GROUP_BYTES = 256 * 2**20
DEFAULT_MAX_SHARD_SIZE = "500MB"
#: below this many question folders, forking workers costs more than it saves
PARALLEL_MIN_QUESTIONS = 400
_INT32_MAX = 2**31 - 1

@dataclass
class BuildResult:
    out: Path
    version: str
    questions: int
    domains: dict[str, int]
    shards: list[ShardEntry]
    content_sha256: str
    size_bytes: int

    @cached_property
    def manifest(self) -> ReleaseManifest:
        """The release manifest, read (and checked) from ``out`` when first asked for: it lists
        every source file, so the build itself never holds it whole."""
        return load_release(self.out)


@dataclass
class _DomainResult:
    """What compiling one domain gives back (picklable: it crosses from a worker process)."""

    domain: str
    shards: list[ShardEntry]
    sources: list[SourceRow]  # sorted by path
    num_bytes: int
    difficulties: dict[str, int]
    problems: list[Problem]
    listed: list[Listed]  # the valid questions, in id order
    folders: dict[str, str]
    first: PreviewSource | None  # the first question, for the card's preview


# --- Arrow columns from Python values, without pa.array() ----------------------------------------
# pa.array() on a Python list imports pandas the first time (about 0.3 s); these build the same
# arrays (same buffers, so the same Table.nbytes) straight from the bytes.


def _bitmap(flags: list[bool]) -> Any:
    import numpy as np
    import pyarrow as pa

    return pa.py_buffer(np.packbits(np.array(flags, dtype=bool), bitorder="little").tobytes())


def _binary_array(values: list[bytes | None], type_: Any) -> Any:
    """A ``binary`` or ``string`` (values then UTF-8 bytes) Arrow array; None is null."""
    import numpy as np
    import pyarrow as pa

    n = len(values)
    lengths = np.fromiter((0 if v is None else len(v) for v in values), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] > _INT32_MAX:
        raise BuildError(f"a row group holds {offsets[-1]} bytes in one column, over Parquet's 2 GiB binary limit; "
                         "shrink the largest files")
    nulls = sum(v is None for v in values)
    validity = _bitmap([v is not None for v in values]) if nulls else None
    data = pa.py_buffer(b"".join(v for v in values if v is not None))
    return pa.Array.from_buffers(type_, n, [validity, pa.py_buffer(offsets.astype(np.int32).tobytes()), data],
                                 null_count=nulls)


def _string_array(values: list[str | None]) -> Any:
    import pyarrow as pa

    return _binary_array([None if v is None else v.encode("utf-8") for v in values], pa.string())


def _image_array(data: Any, name: str) -> Any:
    """The ``datasets`` Image storage struct around the binary array ``data``. A null image has
    null children too, as Parquet reading gives them, so ``Table.nbytes`` here equals what
    ``datasets`` counts on load."""
    import pyarrow as pa

    nulls = data.is_null().to_pylist()
    mask = pa.Array.from_buffers(pa.bool_(), len(data), [None, _bitmap(nulls)])
    paths = _string_array([None if null else name for null in nulls])
    return pa.StructArray.from_arrays([data, paths], names=["bytes", "path"], mask=mask)


class _Arena:
    """One image column of the row group being built, read straight into one buffer.

    The checker reads each frame into :meth:`reserve`'s view; :meth:`commit` keeps it (a
    question that fails leaves its bytes to be overwritten). :meth:`array` is the binary
    column over that buffer, with no copy; :meth:`reset` reuses it for the next row group.
    """

    def __init__(self) -> None:
        self.buf = bytearray(1 << 20)
        self.view = memoryview(self.buf)
        self.pos = 0
        self.offsets = [0]
        self.valid: list[bool] = []

    def reserve(self, size: int) -> memoryview:
        need = self.pos + size
        if need > len(self.buf):  # a new buffer: views of the old one may still be alive
            grown = bytearray(max(need, 2 * len(self.buf)))
            grown[:self.pos] = self.view[:self.pos]
            self.buf, self.view = grown, memoryview(grown)
        return self.view[self.pos:need]

    def commit(self, size: int | None) -> None:
        """The reserved view's first ``size`` bytes are this row's value; None: a null."""
        self.pos += size or 0
        self.offsets.append(self.pos)
        self.valid.append(size is not None)

    def array(self) -> Any:
        import numpy as np
        import pyarrow as pa

        if self.pos > _INT32_MAX:
            raise BuildError(f"a row group holds {self.pos} bytes of one image column, over Parquet's 2 GiB "
                             "binary limit; shrink the largest frames")
        n = len(self.valid)
        nulls = n - sum(self.valid)
        validity = _bitmap(self.valid) if nulls else None
        offsets = pa.py_buffer(np.array(self.offsets, dtype=np.int32).tobytes())
        return pa.Array.from_buffers(pa.binary(), n, [validity, offsets, pa.py_buffer(self.buf)[:self.pos]],
                                     null_count=nulls)

    def reset(self) -> None:
        self.pos = 0
        self.offsets = [0]
        self.valid = []


def _writer(path: Path, schema: Any) -> Any:
    import pyarrow.parquet as pq

    image_cols = [f"{c}.bytes" for c in IMAGE_COLUMNS] + ["ground_truth_video"]
    compression = {name: "snappy" for name in schema.names}
    compression.update({c: "none" for c in image_cols})  # PNG/MP4 bytes are already compressed
    dictionary = [n for n in ("domain", "task_category", "difficulty")]
    kwargs: dict[str, Any] = dict(compression=compression, use_dictionary=dictionary, write_page_index=True,
                                  write_statistics=["id", "domain", "difficulty", "source_path"])
    return pq.ParquetWriter(str(path), schema, **kwargs)


_STRING_FIELDS = ("id", "domain", "task_category", "difficulty", "prompt", "goal", "metadata", "source_path")


class _DomainWriter:
    """Streams one domain's valid questions, in order, into shards of row groups.

    Shards are cut at ``limit`` input bytes (a question over the limit gets a shard of its
    own) and written under temporary names; :meth:`finish` gives them their final
    ``test-XXXXX-of-YYYYY`` names once the count is known. Once the checker has found an
    error anywhere in this domain, nothing more is written (the release is discarded).
    """

    def __init__(self, root: Path, domain: str, limit: int, checker: Checker) -> None:
        self.schema = arrow_schema()
        self.folder = root / "data" / domain
        self.root = root
        self.domain = domain
        self.limit = limit
        self.checker = checker
        self.columns: dict[str, list[Any]] = {name: [] for name in self.schema.names if name not in IMAGE_COLUMNS}
        self.arenas = {f"{name}.png": _Arena() for name in IMAGE_COLUMNS}
        self.row_bytes = 0
        self.shard_bytes = 0
        self.shard_rows = 0
        self.writer: Any = None
        self.parts: list[tuple[Path, int, int]] = []  # (temp path, rows, size)
        self.sources: list[SourceRow] = []
        self.first: PreviewSource | None = None
        self.num_bytes = 0
        self.difficulties: Counter[str] = Counter()

    def buffer_for(self, name: str, size: int) -> memoryview | None:
        """The checker's hook: frames are read into the row group's image buffers."""
        arena = self.arenas.get(name)
        return arena.reserve(size) if arena is not None and not self.checker.failed else None

    def add(self, q: Question, blobs: dict[str, bytes | memoryview]) -> None:
        if self.first is None:
            self.first = (q.id, q.first_frame, q.final_frame)
        if self.checker.failed:
            return
        if q.ground_truth_video is not None:
            blobs[VIDEO] = q.ground_truth_video.read_bytes()
        size = sum(len(b) for b in blobs.values())
        if self.shard_rows and self.shard_bytes + size > self.limit:
            # this question's frames sit in the image buffers past the rows being flushed: keep them
            frames = {name: bytes(blobs[name]) for name in self.arenas if name in blobs}
            self._close_shard()
            for name, data in frames.items():
                view = blobs[name] = self.arenas[name].reserve(len(data))
                view[:] = data
        self.sources.extend((f"{q.source_path}/{name}", len(blobs[name]), hashlib.sha256(blobs[name]).hexdigest())
                            for name in blobs)
        cols = self.columns
        for name in _STRING_FIELDS:
            cols[name].append(q.metadata_text if name == "metadata" else getattr(q, name))
        for name, arena in self.arenas.items():
            frame = blobs.get(name)
            arena.commit(None if frame is None else len(frame))
        cols["ground_truth_video"].append(blobs.get(VIDEO))
        self.difficulties[q.difficulty or "unlabelled"] += 1
        self.shard_bytes += size
        self.shard_rows += 1
        self.row_bytes += size
        if len(cols["id"]) >= ROW_GROUP_ROWS or self.row_bytes >= ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        cols = self.columns
        if not cols["id"]:
            return
        self.columns = {name: [] for name in cols}
        arrays = []
        for name in self.schema.names:
            if name in IMAGE_COLUMNS:
                arrays.append(_image_array(self.arenas[f"{name}.png"].array(), f"{name}.png"))
                continue
            values = cols.pop(name)  # each column's bytes are dropped once copied into its array
            if name == "ground_truth_video":
                arrays.append(_binary_array(values, pa.binary()))
            else:
                arrays.append(_string_array(values))
            del values
        table = pa.Table.from_arrays(arrays, schema=self.schema)
        del arrays
        if self.writer is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.writer = _writer(self._part(len(self.parts)), self.schema)
        self.num_bytes += table.nbytes
        self.writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        del table  # releases the image buffers before they are written over
        for arena in self.arenas.values():
            arena.reset()
        self.row_bytes = 0

    def _part(self, index: int) -> Path:
        return self.folder / f".{SPLIT}-{index:05d}.parquet.part"

    def _close_shard(self) -> None:
        self._flush()
        if self.writer is None:
            return
        self.writer.close()
        self.writer = None
        path = self._part(len(self.parts))
        self.parts.append((path, self.shard_rows, path.stat().st_size))
        self.shard_rows = self.shard_bytes = 0

    def close(self) -> None:
        """Release the open shard without finishing it (on an error)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def finish(self) -> list[ShardEntry]:
        if self.checker.failed:
            self.close()
            return []
        self._close_shard()
        entries: list[ShardEntry] = []
        for index, (path, rows, size) in enumerate(self.parts):
            rel = f"data/{self.domain}/{SPLIT}-{index:05d}-of-{len(self.parts):05d}.parquet"
            entries.append({"path": rel, "rows": rows, "size": size, "sha256": ""})  # see _hash_shards
            path.rename(self.root / rel)
        return entries


def _compile_domain(qdir: Path, decode_images: bool, ddir: str, domain: str, root: Path,
                    limit: int) -> _DomainResult:
    """Validate one domain's questions and stream the valid ones into its shards."""
    checker = Checker(qdir, decode_images=decode_images)
    writer = _DomainWriter(root, domain, limit, checker)
    checker.on_question = writer.add
    checker.buffer_for = writer.buffer_for
    try:
        checker.check_domain(ddir, domain)
        shards = writer.finish()
    finally:
        writer.close()
    report = checker.report
    return _DomainResult(domain, shards, sorted(writer.sources), writer.num_bytes, dict(writer.difficulties),
                         report.problems, checker.listed, report.folders, writer.first)


def _workers(requested: int | None, sizes: dict[str, int]) -> int:
    """How many processes to compile in: forked workers only where that is safe and pays.

    ``sizes`` is the number of entries in each domain folder. A small tree (under
    :data:`PARALLEL_MIN_QUESTIONS` folders) is compiled in this process, and so is any tree
    when this process runs other threads (see :func:`~vmeval_hf.forked.fork_available`).
    """
    from .forked import fork_available

    n = requested if requested is not None else min(2, os.cpu_count() or 1)
    if requested is None and sum(sizes.values()) < PARALLEL_MIN_QUESTIONS:
        n = 1
    if n <= 1 or len(sizes) <= 1 or not fork_available():
        return 1
    return min(n, len(sizes))


def _folder_count(ddir: str) -> int:
    try:
        with os.scandir(ddir) as it:
            return sum(1 for _ in it)
    except OSError:
        return 0  # the checker reports it


def _compile_all(checker: Checker, root: Path, limit: int, workers: int | None
                 ) -> tuple[list[_DomainResult], list[dict[str, str]] | None]:
    """Every domain, in domain order; in forked worker processes when :func:`_workers` says so.

    Each domain gets a fresh child (biggest domains first), so memory stays that of one
    domain. While they run, this process draws the card's previews from each domain's first
    question folder (on a valid tree, the first question); returns them too, or None.
    """
    from functools import partial

    from .forked import run_forked

    domains = checker.domains()
    args = (checker.qdir, checker.decode_images)
    sizes = {domain: _folder_count(ddir) for ddir, domain in domains}
    n = _workers(workers, sizes)
    if n == 1:
        return [_compile_domain(*args, ddir, domain, root, limit) for ddir, domain in domains], None
    import pyarrow.parquet  # noqa: F401  (imported once here, inherited by the forks)

    order = sorted(domains, key=lambda d: -sizes[d[1]])
    jobs = [(f"domain {domain!r}", partial(_compile_domain, *args, ddir, domain, root, limit))
            for ddir, domain in order]
    results, previews = run_forked(jobs, n, on_idle=partial(_while_idle, root, domains))
    by_domain = {r.domain: r for r in results}
    return [by_domain[domain] for _, domain in domains], previews


def _hash_shards(root: Path, results: list[_DomainResult]) -> None:
    """Fill in the sha256 of every shard not hashed yet.

    Workers leave it to this process: hashing a finished domain's shards here, while the last
    domains are still compiling, uses a core that would otherwise idle.
    """
    for r in results:
        for shard in r.shards:
            if not shard["sha256"]:
                shard["sha256"] = sha256_file(root / shard["path"])


def _while_idle(root: Path, domains: list[tuple[str, str]], finished: list[_DomainResult]
                ) -> list[dict[str, str]] | None:
    _hash_shards(root, finished)
    return _early_previews(root, domains)


def _early_previews(root: Path, domains: list[tuple[str, str]]) -> list[dict[str, str]] | None:
    """Previews of each domain's first question folder in id order, or None if any cannot be drawn
    (the workers' findings decide what is wrong; the previews are drawn again from their results)."""
    from .card import write_previews
    from .questions import FINAL, FIRST, id_sort_key

    examples = {}
    try:
        for ddir, domain in domains:
            with os.scandir(ddir) as it:
                names = [e.name for e in it if e.name.startswith(f"{domain}_")]
            if names:
                folder = Path(ddir) / min(names, key=id_sort_key)
                final = folder / FINAL
                examples[domain] = (folder.name, folder / FIRST, final if final.is_file() else None)
        return write_previews(root, examples)
    except Exception:  # noqa: BLE001  (a broken frame is reported by validation, in the workers)
        return None


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
    """Validate the tree and compile the release folder at ``out``, in one pass.

    If validation fails, :class:`ValidationError` lists every problem and nothing is left
    behind: ``out`` is untouched and the temp folder (and any parent folder this call
    created) is removed. The same tree, version and repo id give a byte-identical folder.
    Frames are checked for PNG structure and CRCs; ``decode_images=True`` also decodes every
    frame's pixels (what ``vmeval-hf validate`` and ``publish`` do), at about a millisecond
    per frame.
    """
    from .versions import validate_label

    validate_label(version)  # it names the output folder, a Hub tag and a log entry
    limit = parse_size(max_shard_size)
    if limit <= 0:
        raise BuildError(f"--max-shard-size must be positive, got {max_shard_size!r}")
    qdir = resolve_questions_dir(data_dir, questions_dir)
    out_path = Path(out) if out is not None else qdir.parent / "releases" / version

    created = _make_parents(out_path.parent)
    _remove_abandoned_builds(out_path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_path.name}.building-{os.getpid()}-", dir=out_path.parent))
    try:
        checker = Checker(qdir, decode_images=decode_images)
        results, previews = _compile_all(checker, tmp, limit, workers)
        report = checker.report
        listed = [row for r in results for row in r.listed]
        for r in results:
            report.problems.extend(r.problems)
            report.folders.update(r.folders)
        checker.finish(listed)
        tree_problems(report, listed=listed)
        report.raise_for_errors()
        del listed
        results = [r for r in results if r.listed]
        _hash_shards(tmp, results)
        summary = _finish_release(tmp, results, previews, version=version, repo_id=repo_id, license=license)
        replace_dir(tmp, out_path)  # out_path is never a half-written release
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in reversed(created):
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    size = sum(f["size"] for f in summary["files"]) + (out_path / RELEASE_MANIFEST).stat().st_size
    log.info("built %s: %d questions, %d shards", out_path, summary["questions"], len(summary["shards"]))
    return BuildResult(out_path, version, summary["questions"], summary["domains"], summary["shards"],
                       summary["content_sha256"], size)


def _make_parents(folder: Path) -> list[Path]:
    """``mkdir -p folder``; returns the folders it created, outermost first."""
    missing = []
    for p in [folder, *folder.parents]:
        if p.exists():
            break
        missing.append(p)
    folder.mkdir(parents=True, exist_ok=True)
    return missing[::-1]


def _finish_release(tmp: Path, results: list[_DomainResult], previews: list[dict[str, str]] | None, *,
                    version: str, repo_id: str, license: str) -> dict[str, Any]:
    """Previews (unless drawn already from the right questions), card and release manifest beside
    the shards already in ``tmp``; returns the manifest but its source list."""
    from .card import render_card, write_previews

    def sources() -> Iterator[SourceRow]:  # each domain's list is sorted: merge them, never copy
        return heapq.merge(*(r.sources for r in results))

    shards = [s for r in results for s in r.shards]
    domains = {r.domain: sum(s["rows"] for s in r.shards) for r in results}
    digest = content_sha256_rows(sources())
    firsts = {r.domain: r.first for r in results if r.first is not None}
    if previews is None or {p["domain"]: p["id"] for p in previews} != {d: f[0] for d, f in firsts.items()}:
        shutil.rmtree(tmp / "assets", ignore_errors=True)
        previews = write_previews(tmp, firsts)
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
    summary: dict[str, Any] = {
        "schema": SCHEMA, "version": version, "questions": sum(domains.values()), "domains": domains,
        "shards": shards, "files": files, "content_sha256": digest,
    }
    # No temp file needed: tmp/ is swapped in whole.
    write_release_manifest(tmp / RELEASE_MANIFEST, summary, sources())
    return summary
