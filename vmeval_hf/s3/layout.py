"""The layout of an S3 mirror and the local scan behind it; no S3 I/O here (writing a mirror:
:mod:`vmeval_hf.s3.mirror`; reading it back, verified: :mod:`vmeval_hf.s3.read`).

Layout (see DESIGN.md)::

    <D>/data/questions/...    <D>/data/outputs/...    <D>/data/evaluations/...
    <D>/release/...           the release folder, when one is given
    <D>/MANIFEST.json         written last, put-once: its presence marks the prefix complete

This module holds the date prefixes ``<D>`` (:func:`parse_date`, :func:`next_date_suffix`), the
walk and hash of the local files to mirror (:func:`walk_files`, :func:`hash_files`, :func:`scan`) and
the ``MANIFEST.json`` document (:func:`manifest_head`, :func:`write_manifest`, :func:`compare_files`),
each comparison a walk of lists in key order side by side.
The version log (``data/data_logging/``) is never mirrored: it may be mid-write.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from json.encoder import (
    encode_basestring as _json_text,  # json.dumps' string form, ensure_ascii=False
)
from pathlib import Path
from typing import Any, NamedTuple

from .._shared.fs import canonical_json, sha256_bytes, sha256_file
from .._shared.meta import __version__
from .._shared.ordered import outer_join
from ..errors import ConfigError
from ..tree.model import DATASET_MANIFEST

MIRROR_MANIFEST = "MANIFEST.json"
MANIFEST_SCHEMA = 1
MIRRORED_DIRS = ("questions", "outputs", "evaluations")
SKIPPED_NAMES = {"__pycache__"}
#: Small files read for the manifest keep their bytes up to this total, so the first ones sent are
#: read once; the rest are read again (and re-hashed) as they are sent. Small on purpose: at
#: 256 MiB a mirror of 10,000 questions (200 MB of frames) held every frame in memory from the
#: scan until its upload, and the mirror's peak memory grew with the tree (scripts/bench_scale.py).
KEEP_BODIES_BYTES = 16 * 2**20

_DATE_RE = re.compile(r"^(\d{8})(?:-([A-Za-z0-9][A-Za-z0-9._-]{0,31}))?$")


# -- dates and manifests ----------------------------------------------------------------------


def parse_date(text: str | None) -> str:
    """Validate a date prefix: ``YYYYMMDD`` or ``YYYYMMDD-<suffix>``; None means today (UTC)."""
    if text is None or not str(text).strip():
        return datetime.now(timezone.utc).strftime("%Y%m%d")
    text = str(text).strip()
    m = _DATE_RE.match(text)
    valid = False
    if m:
        try:
            datetime.strptime(m.group(1), "%Y%m%d")
            valid = True
        except ValueError:
            pass
    if not valid:
        raise ConfigError(
            f"--date {text!r} is not a date prefix: use YYYYMMDD (e.g. 20250115) or "
            "YYYYMMDD-<suffix> (e.g. 20250115-b) for a second version on the same day",
        )
    return text


def next_date_suffix(date: str) -> str:
    """A suggestion for the next free-looking prefix on the same day: 20250115 -> 20250115-b."""
    base, _, suffix = date.partition("-")
    if len(suffix) == 1 and "a" <= suffix < "z":
        return f"{base}-{chr(ord(suffix) + 1)}"
    return f"{base}-b" if not suffix else f"{date}-b"


#: Files up to this size are hashed inline while walking (reading them whole is cheapest).
SMALL_FILE = 1 << 20


def _walk(root: Path, key_prefix: str) -> Iterator[tuple[str, str, int]]:
    """``(key, path, size)`` for every regular file under ``root``, skipping hidden names and
    caches; a symlink may point anywhere inside ``root`` but never outside it."""
    root_real = os.path.realpath(root)
    stack = [(str(root), key_prefix)]
    while stack:
        folder, prefix = stack.pop()
        with os.scandir(folder) as it:
            found = sorted(it, key=lambda e: e.name)
        for entry in reversed(found):  # the stack pops in reverse: keep keys in order
            name = entry.name
            if name.startswith(".") or name in SKIPPED_NAMES:
                continue
            if entry.is_symlink():
                real = os.path.realpath(entry.path)
                if real != root_real and not real.startswith(root_real + os.sep):
                    raise ConfigError(f"{entry.path} is a symlink to {real}, outside {root}: the mirror "
                                      "never reads outside the tree; copy the file in instead", path=entry.path)
            if entry.is_dir(follow_symlinks=False):
                stack.append((entry.path, f"{prefix}{name}/"))
            elif entry.is_file():  # FIFOs, sockets and devices are never opened
                yield f"{prefix}{name}", entry.path, entry.stat().st_size


def walk_files(data_dir: Path, release_dir: Path | None,
               folders: Sequence[str] | None = None) -> Iterator[tuple[str, str, int]]:
    """``(key, path, size)`` of every file to mirror, in walk order (not key order): the data tree
    (only ``folders`` of it when given: POSIX paths relative to ``data_dir``, each inside one of
    :data:`MIRRORED_DIRS`, such as ``outputs/<experiment>``), then ``release_dir``."""
    subs = _checked_folders(folders)
    if release_dir is not None and not release_dir.is_dir():
        raise ConfigError(f"release folder {release_dir} does not exist; run `vmeval-hf build` first",
                          path=release_dir)
    return itertools.chain(*(_walk(data_dir / sub, f"data/{sub}/") for sub in subs if (data_dir / sub).is_dir()),
                           _walk(release_dir, "release/") if release_dir is not None else ())


#: Files over :data:`SMALL_FILE` hashed side by side, at most this many at a time.
LARGE_BATCH = 32


def hash_files(found: Iterable[tuple[str, str, int]], keep_bytes: int = 0,
               bodies: dict[str, bytes] | None = None) -> Iterator[dict[str, Any]]:
    """``{"key", "path", "size", "sha256"}`` of each file ``found`` (by :func:`walk_files`), a
    large one a little later than a small one. Small files are read whole once; while the total
    stays under ``keep_bytes`` their bytes go to ``bodies``, so the upload sends exactly what was
    hashed without reading the file again."""
    large: list[dict[str, Any]] = []
    for key, path, size in found:
        entry = {"key": key, "path": path, "size": size, "sha256": ""}
        if size > SMALL_FILE:
            large.append(entry)
            if len(large) >= LARGE_BATCH:
                yield from _hashed(large)
                large = []
            continue
        with open(path, "rb") as fh:
            body = fh.read()
        entry["size"], entry["sha256"] = len(body), sha256_bytes(body)
        if bodies is not None and keep_bytes >= len(body):
            bodies[key] = body
            keep_bytes -= len(body)
        yield entry
    yield from _hashed(large)


def _hashed(large: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Large files, hashed side by side: hashlib releases the GIL on big buffers."""
    if large:
        with ThreadPoolExecutor(max_workers=min(8, len(large))) as pool:
            for entry, digest in zip(large, pool.map(lambda e: sha256_file(e["path"]), large)):
                entry["sha256"] = digest
    return large


def scan(data_dir: Path, release_dir: Path | None, keep_bytes: int = 0,
         folders: Sequence[str] | None = None) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """Every file to mirror (:func:`walk_files`), hashed (:func:`hash_files`), as a list in key
    order, with the bytes kept of the first small files up to ``keep_bytes``. For a caller that
    holds them all; the mirror itself keeps them on disk (:class:`~vmeval_hf.s3.files.MirrorFiles`)."""
    bodies: dict[str, bytes] = {}
    entries = sorted(hash_files(walk_files(data_dir, release_dir, folders), keep_bytes, bodies),
                     key=lambda e: e["key"])
    return entries, bodies


def _checked_folders(folders: Sequence[str] | None) -> Sequence[str]:
    if folders is None:
        return MIRRORED_DIRS
    for sub in folders:
        parts = sub.split("/")
        if parts[0] not in MIRRORED_DIRS or any(p in ("", ".", "..") for p in parts):
            raise ConfigError(f"cannot mirror folder {sub!r}: give a path inside one of {', '.join(MIRRORED_DIRS)}")
    return sorted(folders)


def build_manifest_entries(data_dir: str | Path, release_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Every file to mirror, sorted by key: ``{"key", "path", "size", "sha256"}``.

    ``key`` is relative to ``<D>/``: ``data/<questions|outputs|evaluations>/...`` and
    ``release/...``. Hidden files, ``__pycache__`` and the version log are left out.
    """
    return scan(Path(data_dir), Path(release_dir) if release_dir is not None else None)[0]


def manifest_file(entry: dict[str, Any]) -> dict[str, Any]:
    """A file's entry in ``MANIFEST.json``: key, size, sha256 and, for an object stored in parts,
    ``composite_sha256``: the SHA-256 checksum S3 computed of it (``<base64>-<parts>``)."""
    return ({"key": entry["key"], "size": entry["size"], "sha256": entry["sha256"]}
            | ({"composite_sha256": entry["composite_sha256"]} if entry.get("composite_sha256") else {}))


def file_list(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``files`` of ``MANIFEST.json`` (:func:`manifest_file` of each), in key order."""
    return sorted((manifest_file(e) for e in entries), key=lambda e: e["key"])


class FileDifferences(NamedTuple):
    """The keys where two file lists differ, each list in key order."""

    changed: list[str]      # in both, of another size or sha256
    only_remote: list[str]
    only_local: list[str]

    def __bool__(self) -> bool:
        return bool(self.changed or self.only_remote or self.only_local)


def compare_files(remote: Iterable[dict[str, Any]], local: Iterable[dict[str, Any]]) -> FileDifferences:
    """Where two file lists, each in key order, differ: key, size and sha256 (how each object is
    stored, whole or in parts, aside). Walked side by side: nothing per file is held but the
    differences."""
    diff = FileDifferences([], [], [])
    for r, loc in outer_join(remote, local, lambda f: str(f.get("key")), lambda f: str(f["key"])):
        if loc is None:
            diff.only_remote.append(str(r.get("key")))  # type: ignore[union-attr]
        elif r is None:
            diff.only_local.append(loc["key"])
        elif (r.get("size"), r.get("sha256")) != (loc["size"], loc["sha256"]):
            diff.changed.append(loc["key"])
    return diff


def source_key(release: Mapping[str, Any], path: str) -> str | None:
    """Where a source of ``release`` is mirrored: a question source under ``data/questions/``; a
    results release's sources are relative to the data tree (``evaluations/...``, ``outputs/...``),
    and the question release it refers to (``releases/<V>/...``) is not part of its mirror."""
    if release.get("kind") != "results":
        return f"data/questions/{path}"
    return f"data/{path}" if path.split("/", 1)[0] in MIRRORED_DIRS else None


class TreeDifferences(NamedTuple):
    """How a scanned data tree differs from a release's sources: the first difference, ``(key,
    what)`` (a source's, else a file that is no source), and how many there are."""

    first: tuple[str, str] | None
    count: int


def tree_differences(entries: Iterable[dict[str, Any]], release: Mapping[str, Any],
                     sources: Iterable[Mapping[str, Any]]) -> TreeDifferences:
    """Where the scanned data tree ``entries`` (in key order) is not ``release``'s ``sources`` (in
    path order): a source changed or gone, and (for a question release) a question file that is no
    source. The dataset manifest ``questions/vmeval_dataset.json`` is not a source and is not
    compared. Both are walked side by side."""
    wanted = ((key, s) for s in sources if (key := source_key(release, s["path"])))
    questions = release.get("kind") != "results"
    skip = f"data/questions/{DATASET_MANIFEST}"
    first_source: tuple[str, str] | None = None
    first_other: tuple[str, str] | None = None
    count = 0
    for got, want in outer_join(entries, wanted, lambda e: e["key"], lambda w: w[0]):
        what = None
        if want is None:
            key = got["key"]  # type: ignore[index]
            if questions and key.startswith("data/questions/") and key != skip:
                count += 1
                first_other = first_other or (key, "is not a source of the release")
            continue
        key, source = want
        if got is None:
            what = "is a source of the release but is gone from the tree"
        elif (got["size"], got["sha256"]) != (source["size"], source["sha256"]):
            what = (f"has sha256 {got['sha256'][:12]}... ({got['size']} bytes); the release's source "
                    f"{source['sha256'][:12]}... ({source['size']} bytes)")
        if what is not None:
            count += 1
            first_source = first_source or (key, what)
    return TreeDifferences(first_source or first_other, count)


def manifest_head(*, version: str | None, content_sha256: str | None, date: str,
                  hub: dict[str, Any] | None) -> dict[str, Any]:
    """The fields of ``MANIFEST.json`` (schema :data:`MANIFEST_SCHEMA`) but its ``files``, for a
    mirror of ``date``."""
    return {
        "schema": MANIFEST_SCHEMA,
        "version": version,
        "content_sha256": content_sha256,
        "date": date,
        "hub": hub,
        "tool": f"vmeval-hf {__version__}",
    }


#: what ``files`` holds while the rest of the document is written: a string no manifest has
_FILES_MARK = "\0files\0"


def _entry_text(entry: Any) -> str:
    """One entry of ``files`` as ``canonical_json`` of the document writes it (indented inside
    the list). A :func:`manifest_file` entry is one f-string with its strings escaped by
    :mod:`json`'s C encoder. :mod:`json` encodes the indented form in pure Python: writing the
    400,000 entries of N = 100,000 took 6.1 s of CPU that way, 1.4 s this way, and hashing a
    downloaded copy 6.6 s, now 1.9 s. Any other entry goes through :mod:`json` itself."""
    if (type(entry) is dict and type(entry.get("key")) is str and type(entry.get("sha256")) is str
            and type(entry.get("size")) is int
            and (len(entry) == 3 or (len(entry) == 4 and type(entry.get("composite_sha256")) is str))):
        composite = (f'\n      "composite_sha256": {_json_text(entry["composite_sha256"])},'
                     if len(entry) == 4 else "")
        return (f'{{{composite}\n      "key": {_json_text(entry["key"])},\n      "sha256": '
                f'{_json_text(entry["sha256"])},\n      "size": {entry["size"]}\n    }}')
    return json.dumps(entry, indent=2, sort_keys=True, ensure_ascii=False).replace("\n", "\n    ")


def canonical_parts(head: dict[str, Any], files: Iterable[Any]) -> Iterator[str]:
    """``canonical_json`` of ``head`` with ``files`` (in that order) as its ``files``, a part at a
    time: the document's text without the document or its text held whole."""
    before, after = canonical_json({**head, "files": _FILES_MARK}).split(json.dumps(_FILES_MARK))
    yield before
    opened = False
    for entry in files:
        one = _entry_text(entry)
        yield (",\n    " if opened else "[\n    ") + one
        opened = True
    yield "\n  ]" if opened else "[]"
    yield after


def canonical_sha256(head: dict[str, Any], files: Iterable[Any]) -> str:
    """The sha256 of :func:`canonical_parts`: of ``canonical_json`` of the whole document."""
    digest = hashlib.sha256()
    for part in canonical_parts(head, files):
        digest.update(part.encode("utf-8"))
    return digest.hexdigest()


def write_manifest(path: Path, head: dict[str, Any], files: Iterable[dict[str, Any]]) -> str:
    """Write ``MANIFEST.json`` to ``path``: ``head`` with ``files`` (each a :func:`manifest_file`,
    given in key order) as its file list, a file at a time; the bytes are exactly
    ``canonical_json`` of the whole document. Returns their sha256."""
    digest = hashlib.sha256()
    with open(path, "w", encoding="utf-8") as out:
        for part in canonical_parts(head, map(manifest_file, files)):
            out.write(part)
            digest.update(part.encode("utf-8"))
    return digest.hexdigest()


def describe_differences(diff: FileDifferences, date: str) -> tuple[list[str], str]:
    """How two manifests' file lists differ (:func:`compare_files`): the ``<date>/<key>`` of every
    changed, local-only and remote-only file, and a one-line summary naming the first of each."""
    changed, only_local, only_remote = diff.changed, diff.only_local, diff.only_remote
    parts = []
    if changed:
        parts.append(f"{len(changed)} file(s) differ, e.g. {date}/{changed[0]}")
    if only_local:
        parts.append(f"{len(only_local)} local file(s) are not in it, e.g. {date}/{only_local[0]}")
    if only_remote:
        parts.append(f"{len(only_remote)} of its file(s) are gone locally, e.g. {date}/{only_remote[0]}")
    return [f"{date}/{k}" for k in changed + only_local + only_remote], "; ".join(parts)
