"""Parquet shards of one domain: rows streamed into row groups, Arrow columns built from buffers.

:class:`DomainWriter` takes each valid question from the checker (with the bytes the checker
read) and writes it into ``data/<domain>/`` shards of row groups of about
:data:`ROW_GROUP_ROWS` rows. Image bytes are read by the checker straight into an
:class:`Arena`, one buffer per image column and row group, which becomes the Arrow column
without a copy; each ``ground_truth.mp4`` straight into a buffer of its own, which becomes the
video column without a copy when it is the row group's only video (see :data:`VIDEO_GROUP_BYTES`
for what a row group holds, and :class:`DomainWriter` for what that costs in memory). Columns are built from buffers, not with ``pa.array()``: on Python lists
that imports pandas the first time (about 0.3 s), and the buffers are the same, so
``Table.nbytes`` (the card's ``num_bytes``) is too.
"""

from __future__ import annotations

import mmap
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._shared.fs import sha256_bytes, start_writeback
from ..errors import BuildError
from ..tree.checker import Checker
from ..tree.model import VIDEO, Question
from .card import PreviewSource
from .release_manifest import ShardEntry, SourceRows
from .schema import IMAGE_COLUMNS, SPLIT, arrow_schema, image_type

ROW_GROUP_ROWS = 100
#: a row group is also cut at this many input bytes, so huge frames or videos stay bounded
ROW_GROUP_BYTES = 256 * 2**20
#: a row group is cut before a row whose video would take the row group's videos over this: small
#: videos share a row group (and are joined into one buffer, a copy of at most this much), a
#: bigger one goes into the Arrow column from the buffer it was read into, uncopied
VIDEO_GROUP_BYTES = 64 * 2**20
#: an image buffer's first size: a row group of 100 frames of up to 80 KB, so typical trees
#: never grow it (growing copies it). It is an anonymous memory map, so only the pages a row
#: group fills cost memory (and page faults): ``bytearray(n)`` would zero-fill all of them.
ARENA_START = 8 * 2**20
_INT32_MAX = 2**31 - 1


def _arrow() -> tuple[Any, Any]:
    """``(pyarrow, numpy)``, imported on first use: together about 0.2 s (``python -X
    importtime``) that ``import vmeval_hf.release.build`` should not pay; a forked build
    imports them once before its workers start (:func:`~vmeval_hf.release.build._compile_all`)."""
    import numpy as np  # start-up: see the docstring
    import pyarrow as pa  # start-up: see the docstring

    return pa, np


def _bitmap(flags: list[bool]) -> Any:
    pa, np = _arrow()
    return pa.py_buffer(np.packbits(np.array(flags, dtype=bool), bitorder="little").tobytes())


def _assemble(type_: Any, offsets: Any, valid: list[bool], data: Any) -> Any:
    """A ``binary``/``string`` array from its parts: end offsets (starting at 0), validity, data buffer."""
    pa, np = _arrow()
    if offsets[-1] > _INT32_MAX:
        raise BuildError(f"a row group holds {offsets[-1]} bytes in one column, over Parquet's 2 GiB binary limit; "
                         "shrink the largest files")
    n = len(valid)
    nulls = n - sum(valid)
    buffers = [_bitmap(valid) if nulls else None, pa.py_buffer(np.asarray(offsets, dtype=np.int32).tobytes()), data]
    return pa.Array.from_buffers(type_, n, buffers, null_count=nulls)


def binary_array(values: Sequence[bytes | memoryview | None], type_: Any) -> Any:
    """A ``binary`` or ``string`` (values then UTF-8 bytes) Arrow array; None is null.

    When only one value holds any bytes, the array's data is that value's buffer, uncopied (a
    video read into a buffer of its own, :meth:`DomainWriter.buffer_for`); else the values are
    joined into one buffer."""
    pa, np = _arrow()
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(np.fromiter((0 if v is None else len(v) for v in values), dtype=np.int64, count=len(values)),
              out=offsets[1:])
    filled = [v for v in values if v]
    data = pa.py_buffer(filled[0] if len(filled) == 1 else b"".join(filled))
    return _assemble(type_, offsets, [v is not None for v in values], data)


def string_array(values: list[str | None]) -> Any:
    pa, _ = _arrow()
    return binary_array([None if v is None else v.encode("utf-8") for v in values], pa.string())


def int64_array(values: list[int | None]) -> Any:
    """An ``int64`` Arrow array from buffers (``pa.array`` on a list imports pandas); None is null."""
    pa, np = _arrow()
    valid = [v is not None for v in values]
    data = np.fromiter((0 if v is None else v for v in values), dtype=np.int64, count=len(values))
    return pa.Array.from_buffers(pa.int64(), len(values), [_bitmap(valid) if not all(valid) else None,
                                                          pa.py_buffer(data.tobytes())],
                                 null_count=valid.count(False))


def bool_array(values: list[bool | None]) -> Any:
    """A ``bool`` Arrow array from buffers; None is null."""
    pa, _ = _arrow()
    valid = [v is not None for v in values]
    return pa.Array.from_buffers(pa.bool_(), len(values), [_bitmap(valid) if not all(valid) else None,
                                                          _bitmap([bool(v) for v in values])],
                                 null_count=valid.count(False))


def image_array(data: Any, name: str, valid: list[bool]) -> Any:
    """The ``datasets`` Image storage struct around the binary array ``data``, whose non-null
    rows ``valid`` flags. Built from buffers: ``data.is_null()`` and ``StructArray.from_arrays``
    with a mask import ``pyarrow.compute`` (30 ms, in every worker). A null image has null
    children too, as Parquet reading gives them, so ``Table.nbytes`` here equals what
    ``datasets`` counts on load."""
    pa, _ = _arrow()
    paths = string_array([name if v else None for v in valid])
    return pa.Array.from_buffers(image_type(), len(valid), [_bitmap(valid)], null_count=valid.count(False),
                                 children=[data, paths])


class Arena:
    """One image column of the row group being built, read straight into one buffer.

    The checker reads each frame into :meth:`reserve`'s view; :meth:`commit` keeps it (a
    question that fails leaves its bytes to be overwritten). :meth:`array` is the binary
    column over the committed part of that buffer (from ``start``), with no copy; :meth:`reset`
    reuses it for the next row group.
    """

    def __init__(self, size: int = ARENA_START) -> None:
        self.buf = mmap.mmap(-1, size)
        self.view = memoryview(self.buf)
        self.start = 0
        self.pos = 0
        self.offsets = [0]  # from start
        self.valid: list[bool] = []

    def reserve(self, size: int) -> memoryview:
        need = self.pos + size
        if need > len(self.buf):  # a new buffer: views of the old one may still be alive
            grown = mmap.mmap(-1, max(need, 2 * len(self.buf)))
            grown[:self.pos] = self.view[:self.pos]
            self.buf, self.view = grown, memoryview(grown)
        return self.view[self.pos:need]

    def commit(self, size: int | None) -> None:
        """The reserved view's first ``size`` bytes are this row's value; None: a null."""
        self.pos += size or 0
        self.offsets.append(self.pos - self.start)
        self.valid.append(size is not None)

    def array(self) -> Any:
        pa, _ = _arrow()
        return _assemble(pa.binary(), self.offsets, self.valid, pa.py_buffer(self.buf)[self.start:self.pos])

    def reset(self, keep_reserved: bool = False) -> None:
        """Start the next row group at the buffer's start, or (``keep_reserved``) just past the
        rows written: a question whose frames are reserved but not committed yet keeps them there."""
        self.start = self.pos if keep_reserved else 0
        self.pos = self.start
        self.offsets = [0]
        self.valid = []


#: the question shards' columns: stored uncompressed (PNG/MP4 bytes are compressed already),
#: dictionary-encoded, and with statistics (for the readers' row-group filters)
RAW_COLUMNS = (*(f"{c}.bytes" for c in IMAGE_COLUMNS), "ground_truth_video")
DICTIONARY_COLUMNS = ("domain", "task_category", "difficulty")
STATISTICS_COLUMNS = ("id", "domain", "difficulty", "source_path")


def parquet_writer(path: Path, schema: Any, *, raw: Sequence[str] = RAW_COLUMNS,
                   dictionary: Sequence[str] = DICTIONARY_COLUMNS,
                   statistics: Sequence[str] = STATISTICS_COLUMNS) -> Any:
    """A Parquet writer: snappy for every column but the ``raw`` ones, dictionaries for the
    ``dictionary`` columns, statistics for the ``statistics`` ones, and a page index."""
    import pyarrow.parquet as pq  # start-up: see _arrow

    compression = {name: "snappy" for name in schema.names}
    compression.update({c: "none" for c in raw})
    kwargs: dict[str, Any] = dict(compression=compression, use_dictionary=list(dictionary), write_page_index=True,
                                  write_statistics=list(statistics))
    return pq.ParquetWriter(str(path), schema, **kwargs)


_STRING_FIELDS = ("id", "domain", "task_category", "difficulty", "prompt", "goal", "metadata", "source_path")


class DomainWriter:
    """Streams one domain's valid questions, in order, into shards of row groups.

    Shards are cut at ``limit`` input bytes (a question over the limit gets a shard of its
    own) and written under temporary names; :meth:`finish` gives them their final
    ``test-XXXXX-of-YYYYY`` names once the count is known. Once the checker has found an
    error anywhere in this domain, nothing more is written (the release is discarded).

    Memory: a row group's frames, plus its videos. A video is read into a buffer of its own,
    and a row group is cut before a row whose video would take the row group's videos over
    :data:`VIDEO_GROUP_BYTES`, so a big video is never copied by this class and never shares a
    row group with another. pyarrow's Parquet writer, though, copies a page's values twice
    while writing it (the encoder's buffer, then the page with its levels), and a value is
    never split across pages: writing a row group that holds a V-byte video takes about 3V at
    its peak (tests/test_build.py has the measurement), whatever the other rows. Each source file
    written (path, size, sha256) goes to ``sources``, which holds a chunk of them at most and writes
    the rest out sorted (:class:`~vmeval_hf.release.release_manifest.SourceRows`): 4 a question,
    a list of them grew with the domain.
    """

    def __init__(self, root: Path, domain: str, limit: int, checker: Checker, sources: SourceRows) -> None:
        self.schema = arrow_schema()
        self.folder = root / "data" / domain
        self.root = root
        self.domain = domain
        self.limit = limit
        self.checker = checker
        self.columns: dict[str, list[Any]] = {name: [] for name in self.schema.names if name not in IMAGE_COLUMNS}
        self.arenas = {f"{name}.png": Arena() for name in IMAGE_COLUMNS}
        self.row_bytes = 0
        self.video_bytes = 0  # the pending row group's
        self.shard_bytes = 0
        self.shard_rows = 0
        self.writer: Any = None
        self.written: int | None = None  # a read-only descriptor of the shard being written
        self.parts: list[tuple[Path, int, int]] = []  # (temp path, rows, size)
        self.sources = sources  # every source file, written out sorted as it grows (not held: 4 a question)
        self.first: PreviewSource | None = None
        self.num_bytes = 0
        self.difficulties: Counter[str] = Counter()

    def buffer_for(self, name: str, size: int) -> memoryview | None:
        """The checker's hook: frames are read into the row group's image buffers, a video into
        an anonymous memory map of its own (only the pages it fills cost memory)."""
        if self.checker.failed:
            return None
        if name == VIDEO:
            if self.video_bytes and self.video_bytes + size > VIDEO_GROUP_BYTES:
                # before reading it: the pending row group's videos are written and released first
                self._flush(keep_reserved=True)
            return memoryview(mmap.mmap(-1, size)) if size else None
        arena = self.arenas.get(name)
        return arena.reserve(size) if arena is not None else None

    def add(self, q: Question, blobs: dict[str, bytes | memoryview]) -> None:
        if self.first is None:
            self.first = (q.id, q.first_frame, q.final_frame)
        if self.checker.failed:
            return
        size = sum(len(b) for b in blobs.values())
        if self.shard_rows and self.shard_bytes + size > self.limit:
            self._close_shard(keep_reserved=True)  # this question's frames stay reserved for the next
        video = blobs.get(VIDEO)
        known = self.checker.digests  # the frames the pixel check hashed already
        for name, blob in blobs.items():
            self.sources.add((f"{q.source_path}/{name}", len(blob),
                              known[name].hex() if name in known else sha256_bytes(blob)))
        cols = self.columns
        for name in _STRING_FIELDS:
            cols[name].append(q.metadata_text if name == "metadata" else getattr(q, name))
        for name, arena in self.arenas.items():
            frame = blobs.get(name)
            arena.commit(None if frame is None else len(frame))
        cols["ground_truth_video"].append(video)
        self.video_bytes += len(video) if video is not None else 0
        self.difficulties[q.difficulty or "unlabelled"] += 1
        self.shard_bytes += size
        self.shard_rows += 1
        self.row_bytes += size
        if len(cols["id"]) >= ROW_GROUP_ROWS or self.row_bytes >= ROW_GROUP_BYTES:
            self._flush()

    def _flush(self, keep_reserved: bool = False) -> None:
        """Write the pending rows as a row group (``keep_reserved``: see :meth:`Arena.reset`)."""
        pa, _ = _arrow()
        cols = self.columns
        if not cols["id"]:
            return
        self.columns = {name: [] for name in cols}
        arrays = []
        for name in self.schema.names:
            if name in IMAGE_COLUMNS:
                arena = self.arenas[f"{name}.png"]
                arrays.append(image_array(arena.array(), f"{name}.png", arena.valid))
                continue
            values = cols.pop(name)  # each column's bytes are dropped once copied into its array
            if name == "ground_truth_video":
                arrays.append(binary_array(values, pa.binary()))
            else:
                arrays.append(string_array(values))
            del values
        table = pa.Table.from_arrays(arrays, schema=self.schema)
        del arrays
        if self.writer is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self._part(len(self.parts))
            self.writer = parquet_writer(path, self.schema)
            self.written = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        self.num_bytes += table.nbytes
        self.writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        del table  # releases the image buffers before they are written over, and the videos
        start_writeback(self.written)  # the release's fsync, before it is moved in, then waits little
        for arena in self.arenas.values():
            arena.reset(keep_reserved)
        self.row_bytes = self.video_bytes = 0

    def _part(self, index: int) -> Path:
        return self.folder / f".{SPLIT}-{index:05d}.parquet.part"

    def _close_shard(self, keep_reserved: bool = False) -> None:
        self._flush(keep_reserved)
        if self.writer is None:
            return
        self.close()
        path = self._part(len(self.parts))
        self.parts.append((path, self.shard_rows, path.stat().st_size))
        self.shard_rows = self.shard_bytes = 0

    def close(self) -> None:
        """Release the open shard (without finishing it, on an error)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.written is not None:
            start_writeback(self.written)  # the footer
            os.close(self.written)
            self.written = None

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
