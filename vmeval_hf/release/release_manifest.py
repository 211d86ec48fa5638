"""The release manifest, ``vmeval_release.json``: the record every later step checks against.

Shape (schema 1)::

    {"schema": 1, "version": "1.0", "questions": 75, "domains": {"chess": 15, ...},
     "sources": [{"path": "chess_task/chess_0000/first_frame.png", "size": 123, "sha256": "..."}],
     "shards":  [{"path": "data/chess/test-00000-of-00001.parquet", "rows": 15, "size": 1, "sha256": "..."}],
     "files":   [{"path": "README.md", "size": 1, "sha256": "..."}, ...],   # every release file but this one
     "content_sha256": "<sha256 of the sorted source list>"}

``sources`` paths are relative to ``data/questions``. ``content_sha256`` identifies the
question content independent of the version label, so re-publishing the same content
is recognised whatever it is called.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from json.encoder import encode_basestring as _text  # json.dumps' string form, ensure_ascii=False
from json.encoder import encode_basestring_ascii as _ascii  # ... and with ensure_ascii=True
from pathlib import Path, PurePosixPath
from typing import IO, Any, TypedDict

from .._shared.digest_cache import DigestCache
from .._shared.fs import CHUNK, canonical_json, sha256_file
from .._shared.jsonstream import (
    JsonStream,
    JsonStreamError,
    Unstreamed,
    array_items,
    indented_array,
    object_without_items,
)
from ..config import default_cache_dir
from ..errors import BuildError, IntegrityError

RELEASE_MANIFEST = "vmeval_release.json"
SCHEMA = 1
#: threads that hash a release's files at once (:func:`check_release_files`)
HASH_THREADS = 4


@dataclass(frozen=True)
class Mismatch:
    """One difference between a published copy and its manifest.

    ``problem`` is one of: missing, extra, size, sha256, moved (a tag on another commit),
    no-manifest.
    """

    where: str  # hf://datasets/<repo>@<version>/<path>, or an S3 key <D>/...
    problem: str
    detail: str = ""

    @property
    def key(self) -> str:
        """The S3 key (or Hub location) this is about; an alias of ``where``."""
        return self.where

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}: {self.detail}"


class FileEntry(TypedDict):
    path: str
    size: int
    sha256: str


class ShardEntry(TypedDict):
    path: str
    rows: int
    size: int
    sha256: str


class ReleaseManifest(TypedDict):
    schema: int
    version: str
    questions: int
    domains: dict[str, int]
    sources: list[FileEntry]
    shards: list[ShardEntry]
    files: list[FileEntry]
    content_sha256: str


#: one source file as the build carries it: (path, size, sha256)
SourceRow = tuple[str, int, str]


@dataclass(frozen=True)
class SourceRun:
    """A run of source rows, sorted by path, written by :func:`write_source_run` in the two
    text forms the release needs: ``compact`` as :func:`content_sha256` hashes it,
    ``indented`` as the manifest lists it.

    Each build worker writes its own domain's run; only this small record reaches the parent,
    which streams the files in path order, so no process holds the whole source list.
    """

    compact: Path
    indented: Path
    first: str  # the first and last paths, to check the runs are joined in order
    last: str


def _compact(path: str, size: int, sha: str) -> str:
    return f'{{"path":{_ascii(path)},"sha256":{_ascii(sha)},"size":{int(size)}}}'


def _indented(path: str, size: int, sha: str) -> str:
    return f'{{\n      "path": {_text(path)},\n      "sha256": {_text(sha)},\n      "size": {int(size)}\n    }}'


def write_source_run(rows: Sequence[SourceRow], stem: Path) -> SourceRun | None:
    """Write ``rows`` (sorted by path) to ``<stem>.compact`` and ``<stem>.indented``; None if
    there are none."""
    return _write_run(iter(rows), stem)


def _write_run(rows: Iterator[SourceRow], stem: Path) -> SourceRun | None:
    """Write the sorted ``rows`` to ``<stem>.compact`` (joined by ``,``) and ``<stem>.indented``
    (joined by ``,\\n    ``), both as the rows come, in one pass: joined, a domain's run is a string of
    tens of MB (and its parts as many again), and a merged run is never held at all. None (and no
    file) if there are none."""
    first = next(rows, None)
    if first is None:
        return None
    compact, indented = stem.with_name(stem.name + ".compact"), stem.with_name(stem.name + ".indented")
    stem.parent.mkdir(parents=True, exist_ok=True)
    last = first
    with open(compact, "w", encoding="utf-8", newline="") as c, open(indented, "w", encoding="utf-8", newline="") as i:
        c.write(_compact(*first))
        i.write(_indented(*first))
        for last in rows:
            c.write(",")
            c.write(_compact(*last))
            i.write(",\n    ")
            i.write(_indented(*last))
    return SourceRun(compact, indented, first[0], last[0])


#: source rows a :class:`SourceRows` holds before it writes them out sorted (about 300 bytes each
#: in memory: at 4 files a question, a domain of 2,000 questions fits in one chunk)
CHUNK_ROWS = 8192
#: sorted chunk files merged at once (each is a file open during the merge); more are first merged
#: in rounds of this many
FAN_IN = 64


class SourceRows:
    """Source rows that come in any order (a domain's questions come in natural id order, which
    is not path order: ``x_9999`` before ``x_10000``), made into a run sorted by path while
    holding at most ``chunk_rows`` of them.

    Each time ``chunk_rows`` are in, they are sorted and written to a chunk file beside ``stem``
    (``<stem>.chunk-NNNNN``); :meth:`run` merges the chunks from disk into the run (rows that
    never filled a chunk are sorted in memory and written directly), :meth:`chunks` gives them
    for a merge elsewhere (:func:`merge_chunks`). Either way the rows come out in the order
    ``sorted()`` of all of them gives, so the run's bytes do not depend on the chunk size.
    """

    def __init__(self, stem: Path, chunk_rows: int | None = None) -> None:
        self.stem = stem
        self.chunk_rows = max(1, CHUNK_ROWS if chunk_rows is None else chunk_rows)
        self.rows: list[SourceRow] = []
        self.spilled: list[Path] = []

    def add(self, row: SourceRow) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.chunk_rows:
            self._spill()

    def _spill(self) -> None:
        """Write the rows held, sorted, to the next chunk file, and let them go."""
        if not self.rows:
            return
        self.rows.sort()
        path = self.stem.with_name(f"{self.stem.name}.chunk-{len(self.spilled):05d}")
        _write_chunk(self.rows, path)
        self.spilled.append(path)
        self.rows = []

    def chunks(self) -> list[Path]:
        """Every row, in sorted chunk files (the rows held are written out first)."""
        self._spill()
        return list(self.spilled)

    def run(self, fan_in: int | None = None) -> SourceRun | None:
        """Every row, as one run sorted by path at ``stem`` (None if there are none); the chunk
        files are removed. ``fan_in``: as for :func:`merge_chunks`."""
        if not self.spilled:
            self.rows.sort()
            rows, self.rows = self.rows, []
            return write_source_run(rows, self.stem)
        return merge_chunks(self.chunks(), self.stem, fan_in)


def _write_chunk(rows: Iterable[SourceRow], path: Path) -> None:
    """``rows`` to ``path``, one a line: path, size and sha256 separated by tabs, each string in
    JSON's ASCII form (so no tab or line break is left in one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="ascii", newline="\n") as f:
        for path_, size, sha in rows:
            f.write(f"{_ascii(path_)}\t{int(size)}\t{_ascii(sha)}\n")


def _unquote(text: str) -> str:
    """A string :func:`_write_chunk` wrote (JSON, ASCII): most have no escape to undo."""
    return text[1:-1] if "\\" not in text else json.loads(text)


def _read_chunk(f: IO[str]) -> Iterator[SourceRow]:
    """The rows of a chunk file open in ``f``, in its order."""
    for line in f:
        path, size, sha = line[:-1].split("\t")
        yield _unquote(path), int(size), _unquote(sha)


def _merged(chunks: Sequence[Path], stack: ExitStack) -> Iterator[SourceRow]:
    """The rows of the sorted ``chunks``, merged in sorted order, read a line at a time."""
    files = [stack.enter_context(open(c, encoding="ascii", newline="\n")) for c in chunks]
    return heapq.merge(*(_read_chunk(f) for f in files))


def _fewer_chunks(chunks: list[Path], stem: Path, fan_in: int) -> list[Path]:
    """``chunks`` merged in rounds of ``fan_in`` into new chunk files beside ``stem`` until at
    most ``fan_in`` are left (the merged ones are removed), so a merge never opens more files."""
    rounds = 0
    while len(chunks) > fan_in:
        group, chunks = chunks[:fan_in], chunks[fan_in:]
        merged = stem.with_name(f"{stem.name}.merged-{rounds:05d}")
        with ExitStack() as stack:
            _write_chunk(_merged(group, stack), merged)
        for c in group:
            c.unlink()
        chunks.append(merged)
        rounds += 1
    return chunks


def merge_chunks(chunks: Sequence[Path], stem: Path, fan_in: int | None = None) -> SourceRun | None:
    """The rows of sorted chunk files (:meth:`SourceRows.chunks`, from any number of writers)
    merged into one run sorted by path at ``stem``, never held (None if there are no rows); the
    chunk files are removed. ``fan_in``: chunk files open at once (default :data:`FAN_IN`, at
    least 2)."""
    chunks = _fewer_chunks(list(chunks), stem, max(2, FAN_IN if fan_in is None else fan_in))
    with ExitStack() as stack:
        run = _write_run(_merged(chunks, stack), stem)
    for c in chunks:
        c.unlink()
    return run


def _in_order(runs: Sequence[SourceRun]) -> Sequence[SourceRun]:
    for a, b in zip(runs, runs[1:]):
        if not a.last < b.first:
            raise ValueError(f"source runs out of order: {a.last!r} then {b.first!r}")
    return runs


def read_runs(runs: Sequence[SourceRun]) -> Iterator[FileEntry]:
    """The source rows of ``runs``, in order, read back from their compact files an entry at a
    time (a run is a whole domain: tens of MB once parsed)."""
    for run in runs:
        with open(run.compact, "rb") as f:
            stream = JsonStream(_Bracketed(f))
            stream.start()
            for _ in stream.items():
                yield stream.value()


class _Bracketed:
    """A compact run file read as the JSON array it is the inside of: ``[``, its bytes, ``]``."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self._parts: list[bytes] = [b"]"]
        self._started = False

    def read(self, n: int = -1) -> bytes:
        if not self._started:
            self._started = True
            return b"["
        data = self._f.read(n)
        if data or not self._parts:
            return data
        return self._parts.pop()


def content_sha256(sources: list[FileEntry]) -> str:
    """sha256 of the sorted source list in a fixed compact JSON form:
    ``json.dumps(sources, sort_keys=True, separators=(",", ":"))``."""
    rows = sorted((s["path"], s["size"], s["sha256"]) for s in sources)
    return hashlib.sha256(f"[{','.join(_compact(*row) for row in rows)}]".encode()).hexdigest()


def content_sha256_runs(runs: Sequence[SourceRun]) -> str:
    """:func:`content_sha256` of the sources given as runs, in path order."""
    h = hashlib.sha256(b"[")
    for i, run in enumerate(_in_order(runs)):
        h.update(b"," if i else b"")
        with open(run.compact, "rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
    h.update(b"]")
    return h.hexdigest()


_SOURCES_MARK = "\x00sources\x00"


def _file_fields(entry: Any) -> bool:
    """An entry with a string ``path`` and ``sha256`` and an integer ``size``: what every reader
    reads of a source entry or a release file entry."""
    return (isinstance(entry, dict) and isinstance(entry.get("path"), str) and isinstance(entry.get("sha256"), str)
            and type(entry.get("size")) is int)


def _plain_source(entry: Any) -> bool:
    """A source entry of those three fields and no other (as the build writes them)."""
    return _file_fields(entry) and len(entry) == 3


def manifest_text(manifest: Any) -> str:
    """``canonical_json(manifest)``, the text :func:`write_release_manifest` writes, made fast: with
    an indent, :mod:`json` encodes in pure Python, seconds for the source list of 10,000
    questions; here each source entry is one f-string. A manifest whose sources are not all
    plain ``path``/``sha256``/``size`` entries (a foreign file) goes through :mod:`json` whole."""
    sources = manifest.get("sources") if isinstance(manifest, dict) else None
    if not isinstance(sources, list) or not all(_plain_source(e) for e in sources):
        return canonical_json(manifest)
    head, tail = canonical_json({**manifest, "sources": _SOURCES_MARK}).split(_text(_SOURCES_MARK))
    body = ",\n    ".join(_indented(e["path"], e["size"], e["sha256"]) for e in sources)
    return f"{head}[\n    {body}\n  ]{tail}" if sources else f"{head}[]{tail}"


def write_release_manifest(path: Path, manifest: dict[str, Any], runs: Sequence[SourceRun]) -> None:
    """Write ``manifest`` plus its ``sources`` (given as runs, in path order) in
    :func:`~vmeval_hf._shared.fs.canonical_json`'s exact form, without building the source list:
    it has an entry per source file (tens of thousands). A list that hashes to the manifest's
    ``content_sha256`` (the runs' compact form, :func:`content_sha256_runs`, written from the
    same rows as the indented one) is remembered as checked for these bytes (:func:`_checked_lists`),
    so the first reader need not walk it again."""
    head, tail = canonical_json({**manifest, "sources": _SOURCES_MARK}).split(_text(_SOURCES_MARK))
    h = hashlib.sha256()

    def write(fh: IO[bytes], data: bytes) -> None:
        h.update(data)
        fh.write(data)

    with open(path, "wb") as fh:
        write(fh, head.encode("utf-8"))
        if not runs:
            write(fh, b"[]")
        for i, run in enumerate(_in_order(runs)):
            write(fh, b",\n    " if i else b"[\n    ")
            with open(run.indented, "rb") as src:
                while chunk := src.read(CHUNK):
                    write(fh, chunk)
        if runs:
            write(fh, b"\n  ]")
        write(fh, tail.encode("utf-8"))
    if runs and content_sha256_runs(runs) == manifest.get("content_sha256"):
        cache = _checked_lists()
        cache.remember(_list_key(h.digest(), manifest["content_sha256"]))
        cache.flush()


#: what the source list's check (:func:`_without_sources`) accepts, as a number: raise it whenever
#: it accepts less or more, and the cache of checked lists starts a new file
LIST_CHECK_VERSION = 1


def _checked_lists() -> DigestCache:
    """The release manifests known to hold a source list that passes :func:`_without_sources`'
    check, by :func:`_list_key` (a :class:`~vmeval_hf._shared.digest_cache.DigestCache` in the
    user cache folder, beside the frame verdicts)."""
    return DigestCache(default_cache_dir(), f"release-lists-v{LIST_CHECK_VERSION}", "release list cache",
                       "checking every source list")


def _list_key(file_sha256: bytes, content: str) -> bytes:
    """The key of a manifest file whose bytes hash to ``file_sha256`` and whose ``content_sha256``
    is ``content``: its source list is plain entries in path order that hash to ``content``."""
    return hashlib.sha256(b"vmeval-hf release list\0" + file_sha256 + content.encode("utf-8")).digest()


def load_release(release_dir: str | Path, *, sources: bool = True, content: bool = True) -> ReleaseManifest:
    """Read and sanity-check ``<release_dir>/vmeval_release.json``.

    ``sources=False``: the manifest without its ``sources`` key (the list of every source file,
    about 70 MB of JSON at 100,000 questions), for callers that need only the release files and
    the hashes, or that walk the list from the file (:func:`sources_of`): the list is read a chunk
    at a time and checked against ``content_sha256`` on the way, never held. A list not in path
    order, or any other surprise, is read whole instead, with the same checks and errors, and
    kept (sorted), so that :func:`sources_of` still gives it.

    ``content=False``: the source list is not checked against ``content_sha256`` here; the caller
    must :func:`check_content` before it relies on the manifest (``publish_to_hub`` does, beside its
    first requests, before anything is written). With ``sources=False`` the list is then not read
    at all where the file is laid out as the build writes it: the document around it is found
    and parsed alone, a few milliseconds at any size."""
    path = Path(release_dir) / RELEASE_MANIFEST
    return _read_release(path, sources, _release_reading(path), content=content)


def _release_reading(path: Path) -> _Reading:
    return _Reading(path, BuildError, "the manifest was edited, rebuild the release", "rebuild the release")


def check_content(manifest: ReleaseManifest, release_dir: str | Path) -> None:
    """The check ``load_release(..., content=False)`` left out: ``manifest``'s source list against
    its ``content_sha256``, an :class:`IntegrityError` naming the release's manifest otherwise (or
    the refusal :func:`load_release` gives a list it cannot read). A manifest read without its
    sources has the list streamed from the file (as ``load_release(..., sources=False)`` checks
    it), which must hold the very list the manifest's ``content_sha256`` was made of."""
    path = Path(release_dir) / RELEASE_MANIFEST
    how = _release_reading(path)
    if "sources" in manifest:
        _require_source_entries(manifest["sources"], how)
        digest = content_sha256(manifest["sources"])
    else:
        streamed = _without_sources(path)
        # a list the stream does not take: read whole, which refuses what it refuses in its own words
        digest = streamed[1] if streamed is not None else _read_release(path, True, how)["content_sha256"]
    if digest != manifest["content_sha256"]:
        raise _refused(IntegrityError, how, f"content_sha256 does not match its source list; {how.edited}")


def load_release_copy(file: str | Path, where: str) -> ReleaseManifest:
    """A release manifest downloaded from ``where`` (its ``hf://`` or ``s3://`` address) into
    ``file``, read as ``load_release(..., sources=False)`` reads one (the list streamed from
    ``file`` by :func:`sources_of`, never held). Every refusal is an :class:`IntegrityError` naming
    ``where``: the copy there was altered after it was published."""
    return _read_release(Path(file), False, _Reading(where, IntegrityError,
                                                     "the copy there was altered after publishing, re-publish "
                                                     "that version", "re-publish that version"))


@dataclass(frozen=True)
class _Reading:
    """How :func:`_read_release` names the manifest it reads and what it tells the user to do."""

    label: Path | str                               # the path, or the remote address of a copy
    error: type[BuildError] | type[IntegrityError]  # for a file that is not a release manifest
    edited: str                                     # the sources no longer match content_sha256
    fix: str                                        # anything else


def _read_release(path: Path, sources: bool, how: _Reading, *, content: bool = True) -> ReleaseManifest:
    # without its sources: the document, and their content_sha256 as streamed (or, content=False, the
    # document alone, its list left for check_content); else, or when the file is not the simple
    # case, read whole (held)
    data: dict[str, Any] | None = None
    streamed = None
    if not sources and content:
        data, streamed = _without_sources(path) or (None, None)
    elif not sources:
        fast = indented_array(path, "sources")
        data = fast.doc if fast is not None else None
    held = data is None
    if data is None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BuildError(
                f"{path}: no release manifest here; run `vmeval-hf build` to compile a release first",
                path=path,
            ) from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _refused(how.error, how, f"not valid JSON ({exc}); {how.fix}") from exc
    missing = [k for k in ReleaseManifest.__annotations__ if k not in data and (held or k != "sources")]
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or missing:
        raise _refused(how.error, how, f"not a schema-{SCHEMA} release manifest (missing {missing or 'schema'}); "
                       f"{how.fix}")
    _require_shape(data, how)
    if held and (content or not sources):
        _require_source_entries(data["sources"], how)
    if content and (streamed if not held else content_sha256(data["sources"])) != data["content_sha256"]:
        raise _refused(IntegrityError, how, f"content_sha256 does not match its source list; {how.edited}")
    if not sources and held:  # read whole: keep the list, in the order a stream would give it
        data["sources"] = sorted(data["sources"], key=lambda s: s["path"])
    return data  # type: ignore[no-any-return]


def _require_shape(data: dict[str, Any], how: _Reading) -> None:
    """The fields every reader uses, of the types it uses them as: ``version`` and
    ``content_sha256`` strings, ``shards`` a list, ``files`` a list of ``{path, size, sha256}``
    entries whose paths stay inside the release folder (publish reads and uploads them, pull and
    verify read them); else the refusal ``how`` says, naming the field."""
    for name in ("version", "content_sha256"):
        if not isinstance(data[name], str) or not data[name]:
            raise _refused(how.error, how, f"its {name} is not a string ({json.dumps(data[name])[:60]}); {how.fix}")
    for name in ("files", "shards"):
        if not isinstance(data[name], list):
            raise _refused(how.error, how, f"its {name} are not a list; {how.fix}")
    for i, e in enumerate(data["files"]):
        if not _file_fields(e):
            raise _refused(how.error, how, f"files entry {i} is not a {{path, size, sha256}} entry "
                                           f"({json.dumps(e)[:100]}); {how.fix}")
        rel = PurePosixPath(e["path"])
        if rel.is_absolute() or not rel.parts or ".." in rel.parts or "\\" in e["path"] or "\x00" in e["path"]:
            raise _refused(how.error, how, f"files entry {i} names a path outside the release "
                                           f"({json.dumps(e['path'])[:100]}); {how.fix}")


def _require_source_entries(sources: Any, how: _Reading) -> None:
    """``sources`` is a list of entries with a string ``path`` and ``sha256`` and an integer
    ``size`` (what :func:`content_sha256` reads of each); else the refusal ``how`` says, naming the
    first entry that is not."""
    if not isinstance(sources, list):
        raise _refused(how.error, how, f"its sources are not a list; {how.fix}")
    for i, e in enumerate(sources):
        if not _file_fields(e):
            raise _refused(how.error, how, f"source entry {i} is not a {{path, size, sha256}} entry "
                                           f"({json.dumps(e)[:100]}); {how.fix}")


def _refused(error: type[BuildError] | type[IntegrityError], how: _Reading, why: str) -> BuildError | IntegrityError:
    """The error for the manifest ``how`` names (a path, or a remote address), refused for ``why``."""
    return error(f"{how.label}: {why}", path=how.label)


def _without_sources(path: Path) -> tuple[dict[str, Any], str] | None:
    """The manifest at ``path`` without ``sources``, and the :func:`content_sha256` of the list,
    streamed instead of kept (a slice at a time in C for a file laid out as the build writes it,
    :func:`~vmeval_hf._shared.jsonstream.object_without_items`); None when the file is not that
    simple case (missing, not JSON, a source entry of another shape, sources not in path order):
    the caller reads it whole, which reports each of those as it always has.

    The bytes of a file laid out so are hashed first: a manifest with these very bytes whose list
    passed this check before (:func:`_checked_lists`: written by the build, or walked here) is not
    walked again; one walked now and found to match its ``content_sha256`` is remembered."""
    fast = indented_array(path, "sources")
    content = fast.doc.get("content_sha256") if fast is not None else None
    if fast is None or not isinstance(content, str):
        return object_without_items(path, "sources", _content_of)
    try:
        with open(path, "rb") as fh:  # hashlib's buffer of 256 KiB: this read holds no more than the walk
            key = _list_key(hashlib.file_digest(fh, "sha256").digest(), content)
    except OSError:
        return None
    cache = _checked_lists()
    if cache.known(key):
        return fast.doc, content
    streamed = object_without_items(path, "sources", _content_of)
    if streamed is not None and streamed[1] == content:
        cache.remember(key)
        cache.flush()
    return streamed


def _content_of(entries: Iterable[Any]) -> str:
    """:func:`content_sha256` of a source list given an entry at a time; :class:`Unstreamed` if it
    is not ``{path: str, size: int, sha256: str}`` entries in strictly increasing path order (what
    sorting would do then is left to :func:`content_sha256`)."""
    h = hashlib.sha256(b"[")
    for i, e in enumerate(_plain_sorted(entries)):
        h.update(b"," if i else b"")
        h.update(_compact(e["path"], e["size"], e["sha256"]).encode("utf-8"))
    h.update(b"]")
    return h.hexdigest()


class _Unsorted(Unstreamed):
    """A source list that is not plain entries in strictly increasing path order."""


def _plain_sorted(entries: Iterable[Any]) -> Iterator[FileEntry]:
    """``entries``, checked as they pass: :class:`_Unsorted` at the first that is not
    ``{path: str, size: int, sha256: str}`` or not after the one before."""
    last = None
    for e in entries:
        if not _plain_source(e):
            raise _Unsorted
        if last is not None and not last < e["path"]:
            raise _Unsorted
        last = e["path"]
        yield e  # type: ignore[misc]


def iter_sources(manifest_file: str | Path) -> Iterator[FileEntry]:
    """The source list of the release manifest ``manifest_file``, read an entry at a time, in path
    order: at 100,000 questions the list is 400,000 entries, which the callers that walk it (the
    diff against the previous version, the S3 checks) need once, in order, never whole.

    The file is expected to be one :func:`load_release` has checked (it is read again here, not
    re-checked against ``content_sha256``); a list that is not plain entries in path order, or a
    file that changed to something unreadable, is an :class:`IntegrityError` naming the file."""
    path = Path(manifest_file)

    def damaged(why: str) -> IntegrityError:
        return IntegrityError(f"{path}: {why}; rebuild the release (or pull it again)", path=path)

    try:
        yield from _plain_sorted(array_items(path, "sources"))
    except _Unsorted:
        raise damaged("its source list is not plain entries in path order") from None
    except Unstreamed:
        raise damaged("not a release manifest with a source list") from None
    except (OSError, JsonStreamError, RecursionError) as exc:
        raise damaged(f"unreadable ({exc})") from exc


def sources_of(manifest: ReleaseManifest, manifest_file: str | Path | None) -> Iterable[FileEntry]:
    """``manifest``'s source list in path order: its own (sorted: a document from elsewhere may list
    them in any order), or, for a manifest read without it (``load_release(..., sources=False)``),
    streamed from ``manifest_file``, the file it was read from (in order, or refused)."""
    if "sources" in manifest:
        return sorted(manifest["sources"], key=lambda s: s["path"])
    if manifest_file is None:
        raise ValueError("a release manifest read without its sources needs the file it was read from")
    return iter_sources(manifest_file)


def check_release_files(release_dir: str | Path, manifest: ReleaseManifest, *, contents: bool = True) -> list[str]:
    """Re-hash every release file listed in ``manifest``; return one line per mismatch, in the
    manifest's order. The files are hashed on a few threads (:data:`HASH_THREADS`): ``hashlib``
    releases the GIL, so a release's shards hash on every core, as ``huggingface_hub`` hashes an
    upload's files. An unreadable file raises its ``OSError``. ``contents=False``: only that each
    file is there, opens and has its size (no hashing; for a check before the hashes are ready)."""
    from concurrent.futures import ThreadPoolExecutor  # start-up: ~5 ms, release readers only

    root = Path(release_dir)

    def problem(entry: dict[str, Any]) -> str | None:
        p = root / entry["path"]
        if not p.is_file():
            return f"{entry['path']}: missing"
        if not contents:
            with open(p, "rb"):  # unreadable: its OSError, now
                pass
        if p.stat().st_size != entry["size"] or (contents and sha256_file(p) != entry["sha256"]):
            return f"{entry['path']}: bytes differ from the manifest"
        return None

    entries = list(manifest["files"])
    if not contents:
        return [line for line in map(problem, entries) if line is not None]
    with ThreadPoolExecutor(max(1, min(HASH_THREADS, len(entries))), thread_name_prefix="hash") as pool:
        return [line for line in pool.map(problem, entries) if line is not None]


def release_paths(manifest: ReleaseManifest) -> list[str]:
    """Every file that makes up the release, the manifest itself included, sorted."""
    return sorted([e["path"] for e in manifest["files"]] + [RELEASE_MANIFEST])
