"""The layout of an S3 mirror and the local scan behind it; no S3 I/O here (writing a mirror:
:mod:`vmeval_hf.s3.mirror`; reading it back, verified: :mod:`vmeval_hf.s3.read`).

Layout (see DESIGN.md)::

    <D>/data/questions/...    <D>/data/outputs/...    <D>/data/evaluations/...
    <D>/release/...           the release folder, when one is given
    <D>/MANIFEST.json         written last, put-once: its presence marks the prefix complete

This module holds the date prefixes ``<D>`` (:func:`parse_date`, :func:`next_date_suffix`), the
walk and hash of the local files to mirror (:func:`scan`, :func:`build_manifest_entries`) and the
``MANIFEST.json`` document (:func:`manifest_doc`, :func:`file_list`, :func:`describe_differences`).
The version log (``data/data_logging/``) is never mirrored: it may be mid-write.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._shared.fs import sha256_bytes, sha256_file
from .._shared.meta import __version__
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


def scan(data_dir: Path, release_dir: Path | None, keep_bytes: int = 0,
         folders: Sequence[str] | None = None) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """Walk and hash every file to mirror. Small files are read whole once; while the total
    stays under ``keep_bytes`` their bytes are kept, so the upload sends exactly what was hashed
    without reading the file again. ``folders`` (POSIX paths relative to ``data_dir``, each inside
    one of :data:`MIRRORED_DIRS`, such as ``outputs/<experiment>``) narrows the data tree to them."""
    found: list[tuple[str, str, int]] = []
    for sub in _checked_folders(folders):
        if (data_dir / sub).is_dir():
            found += _walk(data_dir / sub, f"data/{sub}/")
    if release_dir is not None:
        if not release_dir.is_dir():
            raise ConfigError(f"release folder {release_dir} does not exist; run `vmeval-hf build` first",
                              path=release_dir)
        found += _walk(release_dir, "release/")
    found.sort()
    entries: list[dict[str, Any]] = []
    bodies: dict[str, bytes] = {}
    large: list[dict[str, Any]] = []
    for key, path, size in found:
        entry = {"key": key, "path": path, "size": size, "sha256": ""}
        entries.append(entry)
        if size > SMALL_FILE:
            large.append(entry)
            continue
        with open(path, "rb") as fh:
            body = fh.read()
        entry["size"], entry["sha256"] = len(body), sha256_bytes(body)
        if keep_bytes >= len(body):
            bodies[key] = body
            keep_bytes -= len(body)
    if large:
        # hashlib releases the GIL on big buffers: hash large files side by side.
        with ThreadPoolExecutor(max_workers=min(8, len(large))) as pool:
            for entry, digest in zip(large, pool.map(lambda e: sha256_file(e["path"]), large)):
                entry["sha256"] = digest
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


def file_list(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``files`` of ``MANIFEST.json``: key, size, sha256 and, for an object stored in parts,
    ``composite_sha256``: the SHA-256 checksum S3 computed of it (``<base64>-<parts>``)."""
    return sorted(({"key": e["key"], "size": e["size"], "sha256": e["sha256"]}
                   | ({"composite_sha256": e["composite_sha256"]} if e.get("composite_sha256") else {})
                   for e in entries), key=lambda e: e["key"])


def same_files(a: Iterable[dict[str, Any]], b: Iterable[dict[str, Any]]) -> bool:
    """Whether two file lists name the same keys with the same sizes and sha256s (how each object
    is stored, whole or in parts, aside)."""
    def rows(files: Iterable[dict[str, Any]]) -> list[tuple[Any, Any, Any]]:
        return sorted((f.get("key"), f.get("size"), f.get("sha256")) for f in files if isinstance(f, dict))

    return rows(a) == rows(b)


def source_key(release: Mapping[str, Any], path: str) -> str | None:
    """Where a source of ``release`` is mirrored: a question source under ``data/questions/``; a
    results release's sources are relative to the data tree (``evaluations/...``, ``outputs/...``),
    and the question release it refers to (``releases/<V>/...``) is not part of its mirror."""
    if release.get("kind") != "results":
        return f"data/questions/{path}"
    return f"data/{path}" if path.split("/", 1)[0] in MIRRORED_DIRS else None


def tree_differences(entries: Iterable[dict[str, Any]], release: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(key, what)`` for every file where the scanned data tree is not the release's sources: a
    source changed or gone, and (for a question release) a question file that is no source. The
    dataset manifest ``questions/vmeval_dataset.json`` is not a source and is not compared."""
    scanned = {e["key"]: e for e in entries}
    wanted = {key: s for s in release["sources"] if (key := source_key(release, s["path"]))}
    out = []
    for key, want in sorted(wanted.items()):
        got = scanned.get(key)
        if got is None:
            out.append((key, "is a source of the release but is gone from the tree"))
        elif (got["size"], got["sha256"]) != (want["size"], want["sha256"]):
            out.append((key, f"has sha256 {got['sha256'][:12]}... ({got['size']} bytes); the release's source "
                             f"{want['sha256'][:12]}... ({want['size']} bytes)"))
    if release.get("kind") != "results":
        skip = f"data/questions/{DATASET_MANIFEST}"
        out += [(key, "is not a source of the release") for key in sorted(scanned)
                if key.startswith("data/questions/") and key not in wanted and key != skip]
    return out


def manifest_doc(entries: list[dict[str, Any]], *, version: str | None, content_sha256: str | None,
                 date: str, hub: dict[str, Any] | None) -> dict[str, Any]:
    """The ``MANIFEST.json`` document (schema :data:`MANIFEST_SCHEMA`) for ``entries`` mirrored to ``date``."""
    return {
        "schema": MANIFEST_SCHEMA,
        "version": version,
        "content_sha256": content_sha256,
        "date": date,
        "files": file_list(entries),
        "hub": hub,
        "tool": f"vmeval-hf {__version__}",
    }


def describe_differences(remote: list[dict[str, Any]], local: list[dict[str, Any]], date: str) -> tuple[list[str], str]:
    """How two manifests' file lists differ: the ``<date>/<key>`` of every changed, local-only and
    remote-only file, and a one-line summary naming the first of each."""
    r = {e["key"]: e for e in remote}
    loc = {e["key"]: e for e in local}
    changed = sorted(k for k in r.keys() & loc.keys() if (r[k]["size"], r[k]["sha256"]) != (loc[k]["size"], loc[k]["sha256"]))
    only_remote = sorted(r.keys() - loc.keys())
    only_local = sorted(loc.keys() - r.keys())
    parts = []
    if changed:
        parts.append(f"{len(changed)} file(s) differ, e.g. {date}/{changed[0]}")
    if only_local:
        parts.append(f"{len(only_local)} local file(s) are not in it, e.g. {date}/{only_local[0]}")
    if only_remote:
        parts.append(f"{len(only_remote)} of its file(s) are gone locally, e.g. {date}/{only_remote[0]}")
    return [f"{date}/{k}" for k in changed + only_local + only_remote], "; ".join(parts)
