"""The version log ``data/data_logging/version_log.json``: one entry per published version.

The file keeps the seed's shape (``{"versions": [...]}``, each entry with
``version/date/s3_uri/size_mb/files/timestamp``) so readers of the original
format keep working, and adds ``"schema": 1`` plus Hub fields (``hf_uri``,
``hf_repo``, ``hf_revision``, ``hf_commit``), ``questions``, ``domains``,
``content_sha256``, ``release_sha256`` and ``tool``. A log without ``"schema"`` (the seed's
``{"versions": []}``) is read as is.

Every write is a read-modify-write under ``filelock.FileLock("<log>.lock")``,
finished by an atomic temp-file + ``os.replace``, so several processes
appending at once lose nothing and readers never see a partial file. A log
that cannot be parsed, or has the wrong shape, raises :class:`VersionLogError`
naming the file and line, and is never overwritten.

:class:`VersionLog` is the API; the module-level functions (``log_version``,
``get_latest``, ``print_summary``, ``load_log``, ``save_log``) keep the seed's
``data_logging.version_tracker`` calls working.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, NoReturn, TypedDict

from filelock import FileLock, Timeout

from .._shared.fs import atomic_write_json, canonical_json
from .._shared.labels import canonical_label, next_after, same_label, validate_label
from .._shared.meta import TOOL
from ..errors import ConfigError, VersionConflictError, VersionLogError

SCHEMA = 1
DEFAULT_LOG_PATH = Path("data") / "data_logging" / "version_log.json"
LOCK_TIMEOUT = 60.0

_FIX_HINT = "fix or restore the file; vmeval-hf never overwrites a log it cannot read"


class _SeedEntry(TypedDict):
    version: str
    date: str
    s3_uri: str
    size_mb: float
    files: int
    timestamp: str


class VersionEntry(_SeedEntry, total=False):
    """One published version. The seed's six fields always; the rest when known."""

    hf_uri: str
    hf_repo: str
    hf_revision: str
    hf_commit: str
    questions: int
    domains: dict[str, int]
    content_sha256: str
    release_sha256: str  # the release's own hash (every file); entries before it have none
    tool: str
    kind: str  # "results" for a results dataset version; absent (or "questions") for a question version
    experiment: str


#: ``kind`` of a results dataset version's entry (``vmeval-hf results publish``)
RESULTS_KIND = "results"


def is_results(entry: Mapping[str, Any]) -> bool:
    """Whether a log entry is a results dataset version, not a question version."""
    return entry.get("kind") == RESULTS_KIND


#: ``kind`` of an archive record: which snapshot prefix holds an experiment deleted locally
#: (``vmeval-hf archive``; written by :mod:`vmeval_hf.experiments`)
ARCHIVE_KIND = "archive"


def is_question_version(entry: Mapping[str, Any]) -> bool:
    """Whether a log entry is a question version (not a results version, nor an archive record)."""
    return entry.get("kind", "questions") == "questions"


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def resolve_log_path(path: str | os.PathLike[str] | None = None,
                     data_dir: str | os.PathLike[str] | None = None) -> Path:
    """``path`` if given, else ``<data_dir>/data_logging/version_log.json``, else the default."""
    if path is not None:
        return Path(path)
    if data_dir is not None:
        return Path(data_dir) / "data_logging" / "version_log.json"
    return DEFAULT_LOG_PATH


# --- parsing -------------------------------------------------------------------------


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _entry_lines(text: str) -> tuple[int, list[int]]:
    """Line of the top-level ``versions`` value and of each of its items (best effort).

    Walks the already-valid JSON text with ``raw_decode`` so the positions are
    exact; any surprise falls back to line 1.
    """
    decoder = json.JSONDecoder()
    try:
        pos = _skip_ws(text, 0)
        if text[pos] != "{":
            return 1, []
        pos += 1
        while True:
            pos = _skip_ws(text, pos)
            if text[pos] == "}":
                return 1, []
            key, pos = decoder.raw_decode(text, pos)
            pos = _skip_ws(text, pos)
            pos = _skip_ws(text, pos + 1)  # past ':'
            value_start = pos
            _, pos = decoder.raw_decode(text, pos)
            if key == "versions":
                break
            pos = _skip_ws(text, pos)
            if text[pos] == ",":
                pos += 1
        versions_line = _line_of(text, value_start)
        if text[value_start] != "[":
            return versions_line, []
        lines: list[int] = []
        pos = _skip_ws(text, value_start + 1)
        while text[pos] != "]":
            lines.append(_line_of(text, pos))
            _, pos = decoder.raw_decode(text, pos)
            pos = _skip_ws(text, pos)
            if text[pos] == ",":
                pos = _skip_ws(text, pos + 1)
        return versions_line, lines
    except (IndexError, ValueError):
        return 1, []


#: the entry fields the readers use, and the types they use them as (absent or null is fine: an
#: entry of the seed's s3_sync has only version, date, s3_uri, size_mb, files and timestamp)
_FIELD_TYPES: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    *((name, str, "a string") for name in (
        "date", "timestamp", "s3_uri", "hf_uri", "hf_repo", "hf_revision", "hf_commit", "content_sha256",
        "release_sha256", "mirror_manifest_sha256", "kind", "experiment", "message")),
    ("size_mb", (int, float), "a number"),
    ("files", int, "an integer"),
    ("questions", int, "an integer"),
    ("domains", dict, "an object"),
)


def field_problem(entry: Mapping[str, Any]) -> str | None:
    """The first field of the log entry ``entry`` that holds a value of another type than its
    readers use it as (:data:`_FIELD_TYPES`), said in words; None if there is none."""
    for name, kinds, what in _FIELD_TYPES:
        value = entry.get(name)
        if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
            return f"{name!r} must be {what}, found {json.dumps(value)[:60]}"
    return None


def _check_shape(doc: Any, path: Path, text: str | None) -> None:
    """Raise :class:`VersionLogError` unless ``doc`` is a well-formed version log."""
    versions_line, item_lines = _entry_lines(text) if text is not None else (None, [])

    def fail(problem: str, line: int | None) -> NoReturn:
        if text is not None:
            raise VersionLogError(f"{path}:{line or 1}: {problem}; {_FIX_HINT}", path=path, line=line or 1)
        raise VersionLogError(f"refusing to save version log {path}: {problem}", path=path)

    def item_line(i: int) -> int | None:
        return item_lines[i] if i < len(item_lines) else versions_line

    if not isinstance(doc, dict):
        fail(f"the log must be a JSON object with a 'versions' list, found {type(doc).__name__}", 1)
    schema = doc.get("schema", SCHEMA)
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 0:
        fail(f"'schema' must be an integer, found {schema!r}", 1)
    if schema > SCHEMA:
        fail(f"the log has schema {schema}, newer than this vmeval-hf understands ({SCHEMA}); "
             "upgrade vmeval-hf", 1)
    if "versions" not in doc:
        fail("the log has no 'versions' list", 1)
    versions = doc["versions"]
    if not isinstance(versions, list):
        fail(f"'versions' must be a list, found {type(versions).__name__}", versions_line)
    seen: dict[str, int] = {}
    for i, entry in enumerate(versions):
        if not isinstance(entry, dict):
            fail(f"versions[{i}] must be an object, found {type(entry).__name__}", item_line(i))
        version = entry.get("version")
        if not isinstance(version, str) or not version:
            fail(f"versions[{i}] has no 'version' string", item_line(i))
        if (problem := field_problem(entry)) is not None:
            fail(f"versions[{i}] ({version}): {problem}", item_line(i))
        key = canonical_label(version)  # v1.0 and 1.0 are one version (labels.canonical_label)
        if key in seen:
            fail(f"version {version!r} appears twice (versions[{seen[key]}] and versions[{i}])",
                 item_line(i))
        seen[key] = i


def _parse(data: bytes, path: Path) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise VersionLogError(f"{path}:{line}: version log is not UTF-8 text; {_FIX_HINT}",
                              path=path, line=line) from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise VersionLogError(
            f"{path}:{exc.lineno}: version log is not valid JSON ({exc.msg}, column {exc.colno}); "
            f"{_FIX_HINT}",
            path=path, line=exc.lineno,
        ) from exc
    _check_shape(doc, path, text)
    return doc


def _empty() -> dict[str, Any]:
    return {"schema": SCHEMA, "versions": []}


# --- the log -------------------------------------------------------------------------


class VersionLog:
    """The version log at ``path`` (default ``data/data_logging/version_log.json``)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 data_dir: str | os.PathLike[str] | None = None,
                 lock_timeout: float = LOCK_TIMEOUT) -> None:
        self.path = resolve_log_path(path, data_dir)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"VersionLog({str(self.path)!r})"

    # reading needs no lock: writers replace the file atomically.
    def load(self) -> dict[str, Any]:
        """The whole document; ``{"schema": 1, "versions": []}`` if the file does not exist."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return _empty()
        except OSError as exc:
            raise VersionLogError(f"cannot read version log {self.path}: {exc}", path=self.path) from exc
        return _parse(data, self.path)

    def entries(self) -> list[VersionEntry]:
        """Every entry, oldest first."""
        return list(self.load()["versions"])

    def get(self, version: str) -> VersionEntry | None:
        """The entry for ``version`` (``v1.0`` finds ``1.0`` too: :func:`same_label`), or ``None``."""
        return next((e for e in self.entries() if same_label(e["version"], version)), None)

    def latest(self) -> VersionEntry | None:
        """The last appended question version (results entries and archive records are not
        question versions), or ``None`` when there is none."""
        entries = [e for e in self.entries() if is_question_version(e)]
        return entries[-1] if entries else None

    def next_version(self) -> str:
        """``1.0`` for an empty log, else the minor after the highest ``MAJOR.MINOR`` (1.9 -> 1.10)."""
        return next_after(e["version"] for e in self.entries())

    def summary_text(self) -> str:
        """The seed's summary: a line per version, then its size, files and questions."""
        return format_summary(self.entries())

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VersionLogError(f"cannot create {self.path.parent}: {exc}", path=self.path) from exc
        lock = FileLock(str(self.lock_path), timeout=self.lock_timeout)
        try:
            lock.acquire()
        except Timeout as exc:
            raise VersionLogError(
                f"another process has held {self.lock_path} for over {self.lock_timeout:.0f}s; "
                "wait for it to finish and retry",
                path=self.path,
            ) from exc
        try:
            yield
        finally:
            lock.release()

    def _write(self, doc: dict[str, Any]) -> None:
        try:
            atomic_write_json(self.path, doc)
        except OSError as exc:
            raise VersionLogError(f"cannot write version log {self.path}: {exc}", path=self.path) from exc

    def append(self, entry: Mapping[str, Any], *, replace: bool = False) -> VersionEntry:
        """Add ``entry`` and return it as stored.

        Missing seed fields are filled (``date``/``timestamp`` now in UTC,
        ``size_mb``/``files`` 0, ``tool``). An existing version raises
        :class:`VersionConflictError` unless ``replace=True``, which replaces
        it in place. A log that cannot be read is left untouched.
        """
        stored = _complete(entry)
        version = stored["version"]
        with self._locked():
            doc = self.load()  # raises on a corrupt log, before anything is written
            versions: list[dict[str, Any]] = doc["versions"]
            index = next((i for i, e in enumerate(versions) if same_label(e["version"], version)), None)
            if index is None:
                versions.append(stored)
            elif replace:
                versions[index] = stored
            else:
                raise VersionConflictError(
                    f"version {version} is already in the version log {self.path}; "
                    f"use the next free version ({next_after(e['version'] for e in versions)}), "
                    "or replace the entry on purpose (replace=True)",
                    version=version, path=self.path,
                )
            doc["schema"] = SCHEMA
            self._write(doc)
        return stored  # type: ignore[return-value]

    def save(self, doc: Mapping[str, Any]) -> None:
        """Replace the whole document (shape-checked). Refuses if the file on disk is unreadable.

        Prefer :meth:`append`: a load-then-save done by hand can lose an entry
        that another process appends in between.
        """
        new = dict(doc)
        new.setdefault("schema", SCHEMA)
        _check_shape(new, self.path, None)
        try:
            canonical_json(new)
        except (TypeError, ValueError) as exc:
            raise VersionLogError(f"refusing to save version log {self.path}: {exc}",
                                  path=self.path) from exc
        with self._locked():
            self.load()
            self._write(new)


def _complete(entry: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"a version log entry must be a mapping, got {type(entry).__name__}")
    stored = dict(entry)
    stored["version"] = validate_label(stored.get("version"))  # the canonical spelling: v1.0 is stored as 1.0
    now = _utc_now()
    stored.setdefault("date", now.strftime("%Y%m%d"))
    stored.setdefault("timestamp", now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    stored.setdefault("size_mb", 0)
    stored.setdefault("files", 0)
    stored.setdefault("tool", TOOL)
    try:
        canonical_json(stored)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"version {stored['version']}: an entry field is not JSON data ({exc})") from exc
    return stored


def complete_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """``entry`` as :meth:`VersionLog.append` would store it (seed fields filled, label checked), so
    a copy written elsewhere (the shared record on S3) is the same document as the local line."""
    return _complete(entry)


def format_summary(entries: list[VersionEntry] | list[dict[str, Any]]) -> str:
    """Text for :func:`print_summary` (no trailing newline)."""
    if not entries:
        return "No versions logged yet."
    lines = []
    for e in entries:
        where = " | ".join(str(e[k]) for k in ("s3_uri", "hf_uri") if e.get(k)) or "(no location)"
        label = f"results {e['version']}" if is_results(e) else f"v{e['version']}"
        if e.get("kind") == ARCHIVE_KIND:
            label = f"archive of experiment {e.get('experiment')}"
        lines.append(f"{label} ({e.get('date', '?')}) → {where}")
        size = e.get("size_mb", 0)
        size_text = f"{size:.1f}MB" if isinstance(size, (int, float)) else f"{size}MB"
        stats = f"  {size_text}, {e.get('files', 0)} files"
        if is_results(e):
            stats += f", {e.get('rows')} evaluations of questions {e.get('question_version')}"
        elif e.get("kind") == ARCHIVE_KIND:
            stats += f" of {', '.join(e.get('models') or ['every model'])} (deleted locally)"
        elif e.get("questions") is not None:
            stats += f", {e['questions']} questions"
        lines.append(stats)
    return "\n".join(lines)


# --- seed-compatible functions -------------------------------------------------------

PathArg = str | os.PathLike[str] | None


def log_version(version: str, s3_uri: str | None, stats: Mapping[str, Any] | None = None, *,
                path: PathArg = None, data_dir: PathArg = None, replace: bool = False,
                **fields: Any) -> dict[str, Any]:
    """Append ``version`` at ``s3_uri``, as the seed's ``log_version(version, s3_uri, stats)`` did.

    ``path`` / ``data_dir``: the log file, or the data tree holding it (default
    ``data/data_logging/version_log.json``). ``replace``: replace an existing entry.

    ``stats``: ``stats['size_mb']``/``stats['files']`` fill the seed fields; other stats
    keys and ``fields`` are kept in the entry (the seed dropped them). ``date``
    (UTC ``YYYYMMDD``), ``timestamp`` (UTC ISO with ``Z``) and ``tool`` are
    filled unless given. Unlike the seed, an existing version raises
    :class:`VersionConflictError` instead of printing, unless ``replace=True``.
    """
    stats = dict(stats or {})
    entry: dict[str, Any] = {"version": version, "s3_uri": s3_uri,
                             "size_mb": stats.pop("size_mb", 0), "files": stats.pop("files", 0)}
    for key, value in stats.items():
        if key not in ("version", "s3_uri"):
            entry[key] = value
    entry.update(fields)
    return dict(VersionLog(path, data_dir=data_dir).append(entry, replace=replace))


def get_latest(path: PathArg = None, *, data_dir: PathArg = None) -> VersionEntry | None:
    """The last appended question version of the log at ``path`` (or under ``data_dir``), or ``None``."""
    return VersionLog(path, data_dir=data_dir).latest()


def next_version(path: PathArg = None, *, data_dir: PathArg = None) -> str:
    """The version ``publish`` uses by default: ``1.0``, then the next minor (log at ``path`` or under ``data_dir``)."""
    return VersionLog(path, data_dir=data_dir).next_version()


def load_log(path: PathArg = None, *, data_dir: PathArg = None) -> dict[str, Any]:
    """The whole log at ``path`` (or under ``data_dir``); ``{"schema": 1, "versions": []}`` if it does not exist."""
    return VersionLog(path, data_dir=data_dir).load()


def save_log(log: Mapping[str, Any], path: PathArg = None, *, data_dir: PathArg = None) -> None:
    """Replace the whole log at ``path`` (or under ``data_dir``) with ``log``, atomically and under the
    lock, after checking its shape."""
    VersionLog(path, data_dir=data_dir).save(log)


def print_summary(path: PathArg = None, file: IO[str] | None = None, *,
                  data_dir: PathArg = None) -> None:
    """Print :meth:`VersionLog.summary_text` of the log at ``path`` (or under ``data_dir``) to ``file``
    (default stdout). The one printing function: the seed API printed."""
    print(VersionLog(path, data_dir=data_dir).summary_text(), file=file or sys.stdout)
