"""The checks of one question folder and of a domain's folders (:class:`Checker`).

Every file is read once, with plain ``os`` calls; the build hands :class:`Checker` a callback
so that it embeds exactly the bytes that were checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, NamedTuple

from .model import (
    DATASET_MANIFEST,
    DOMAIN_DIR_RE,
    FINAL,
    FIRST,
    GOAL,
    KNOWN_FILES,
    MAX_METADATA_BYTES,
    MAX_PNG_BYTES,
    MAX_PROMPT_BYTES,
    MAX_VIDEO_BYTES,
    METADATA,
    PROMPT,
    VIDEO,
    Listed,
    Problem,
    Question,
    Severity,
    ValidationReport,
    folded,
    id_sort_key,
    listing,
    question_name_re,
)
from .png import pixel_problem, structure_problem
from .verdicts import Verdicts

# open(2) flags for reading a question file found by scandir: never follow a symlink swapped in
# after the listing (symlinks take the checked path), never block on a FIFO swapped in.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)

#: called with each valid question and the bytes read to check it (file name -> bytes)
OnQuestion = Callable[[Question, "dict[str, bytes | memoryview]"], None]


#: where to read a PNG that the consumer embeds: (file name, bytes wanted) -> a writable view
#: of that many bytes, or None to read into a new ``bytes``
BufferFor = Callable[[str, int], "memoryview | None"]


def _readinto_fd(fd: int, view: memoryview) -> memoryview:
    """Fill ``view`` from ``fd``; the part filled (shorter only at end of file)."""
    got = 0
    while got < len(view) and (n := os.readv(fd, [view[got:]])):
        got += n
    return view[:got]


def _read_fd(fd: int, want: int) -> bytes:
    """Up to ``want`` bytes from ``fd`` (fewer only at end of file)."""
    data = os.read(fd, want)
    if len(data) == want or not data:
        return data
    parts, got = [data], len(data)
    while got < want and (chunk := os.read(fd, want - got)):
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _kind(is_dir: bool) -> str:
    return "a folder" if is_dir else "not a regular file (FIFO, socket or device)"


def _is_question_folder(e: os.DirEntry[str], qre: re.Pattern[str]) -> bool:
    """Whether the entry ``e`` of a domain folder is a question folder: a real folder (not a
    symlink) named as ``qre`` says."""
    return e.is_dir(follow_symlinks=True) and not e.is_symlink() and qre.match(e.name) is not None


class _Files(NamedTuple):
    """What a question's checked files hold (None: missing, or failed its check)."""

    meta: tuple[str, dict[str, Any]] | None  # the metadata file's text, and parsed
    prompt: str | None
    final: str | None  # the final frame's file name
    goal: str | None
    video: str | None  # the video's file name


class Checker:
    """Checks a question tree; :func:`validate_tree` runs it whole, the build domain by domain.

    Every file is read once, with plain ``os`` calls on ``str`` paths (the tree has tens of
    thousands of them). ``on_question`` receives each valid question with the bytes that were
    checked, so the build embeds and hashes exactly what was validated without reading again.
    """

    def __init__(self, questions_dir: Path, decode_images: bool = True, on_question: OnQuestion | None = None,
                 verdicts: Verdicts | None = None, keep_questions: bool = True) -> None:
        self.qdir = questions_dir
        #: check every frame's image data (:func:`~vmeval_hf.tree.png.pixel_problem`), not only its chunks
        self.decode_images = decode_images
        self.on_question = on_question
        #: frames that passed the pixel check before, by sha256: not inflated again
        self.verdicts = verdicts if verdicts is not None else Verdicts(None)
        #: keep each valid :class:`Question` in the report (without ``on_question``); else only its listing
        self.keep_questions = keep_questions
        self.root = self._real(questions_dir.parent)
        self.report = ValidationReport(questions_dir)
        #: set on the first error; lets a consumer stop work that will be thrown away
        self.failed = False
        #: every valid question checked here, small (kept also when ``on_question`` takes the question)
        self.listed: list[Listed] = []
        #: lets an ``on_question`` consumer have frames read straight into its own buffers
        self.buffer_for: BufferFor | None = None
        self._blobs: dict[str, bytes | memoryview] = {}
        #: the sha256 of the current question's frames, where the pixel check computed it (file name -> digest)
        self.digests: dict[str, bytes] = {}

    @staticmethod
    def _real(p: Path | str) -> Path:
        return Path(os.path.realpath(p))

    def add(self, path: Path | str, code: str, message: str, severity: Severity = "error",
            question: str | None = None) -> None:
        if severity == "error":
            self.failed = True
        self.report.problems.append(Problem(str(path), code, message, severity, question))

    def inside_root(self, p: Path) -> bool:
        try:
            real = self._real(p)
        except (OSError, RuntimeError):
            return False
        return real == self.root or self.root in real.parents

    def entry_ok(self, p: Path, q: str | None, want: Literal["file", "dir"]) -> os.stat_result | None:
        """lstat + symlink/escape/type checks, for paths not listed by scandir or that are symlinks."""
        try:
            st = p.lstat()
        except OSError as exc:
            self.add(p, "unreadable", f"cannot stat ({exc.strerror}); fix permissions", question=q)
            return None
        if stat.S_ISLNK(st.st_mode):
            try:
                st = p.stat()
            except (OSError, RuntimeError):
                self.add(p, "broken_symlink", "symlink is broken or loops; replace it with the real file", question=q)
                return None
            if not self.inside_root(p):
                self.add(p, "path_escape",
                         f"symlink points outside the data root ({os.path.realpath(p)}); copy the file in instead",
                         question=q)
                return None
        if want == "file" and not stat.S_ISREG(st.st_mode):
            self.add(p, "not_a_file", f"is {_kind(stat.S_ISDIR(st.st_mode))}; replace it with a regular file",
                     question=q)
            return None
        if want == "dir" and not stat.S_ISDIR(st.st_mode):
            self.add(p, "not_a_folder", "expected a folder", question=q)
            return None
        return st

    def read(self, entry: os.DirEntry[str], q: str, limit: int,
             into: BufferFor | None = None) -> bytes | memoryview | None:
        """The bytes of a listed question file (in a view from ``into``, if it gives one), or
        None after recording why not."""
        path = entry.path
        if entry.is_symlink():
            if self.entry_ok(Path(path), q, "file") is None:
                return None
            flags = _OPEN_FLAGS & ~getattr(os, "O_NOFOLLOW", 0)  # checked above: inside the root
        elif not entry.is_file(follow_symlinks=False):
            self.add(path, "not_a_file", f"is {_kind(entry.is_dir(follow_symlinks=False))}; "
                     "replace it with a regular file", question=q)
            return None
        else:
            flags = _OPEN_FLAGS
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            self.add(path, "unreadable", f"cannot read ({exc.strerror}); fix permissions", question=q)
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):  # swapped after the listing
                self.add(path, "not_a_file", f"is {_kind(stat.S_ISDIR(st.st_mode))}; replace it with a regular file",
                         question=q)
                return None
            if st.st_size > limit:
                self._too_large(path, entry.name, st.st_size, limit, q)
                return None
            # Exactly the size fstat gave (checked against the limit): one read, no second one to
            # see the end. A file that grows meanwhile is read as it was; what is checked is what
            # the build embeds and hashes either way.
            view = into(entry.name, st.st_size) if into is not None else None
            data = _read_fd(fd, st.st_size) if view is None else _readinto_fd(fd, view)
        except OSError as exc:
            self.add(path, "unreadable", f"cannot read ({exc.strerror}); fix permissions", question=q)
            return None
        finally:
            os.close(fd)
        if self.on_question is not None:
            self._blobs[entry.name] = data
        return data

    def _too_large(self, path: str, name: str, size: int, limit: int, q: str) -> None:
        if name == VIDEO:
            self.add(path, "too_large", f"is {size} bytes, over the {limit}-byte ({limit // 2**20} MiB) limit for a "
                     "ground-truth video; re-encode it smaller (lower resolution, frame rate or bitrate) or leave "
                     "it out", question=q)
        else:
            self.add(path, "too_large", f"is {size} bytes, over the {limit}-byte limit; shorten it", question=q)

    def check_video(self, entry: os.DirEntry[str], q: str) -> bool:
        """A video is checked for its size only. The build (a consumer of the bytes) reads it
        once, into the buffer it embeds; plain validation does not read it at all."""
        if self.on_question is not None:
            return self.read(entry, q, MAX_VIDEO_BYTES, into=self.buffer_for) is not None
        st = self.entry_ok(Path(entry.path), q, "file")
        if st is None:
            return False
        if st.st_size > MAX_VIDEO_BYTES:
            self._too_large(entry.path, entry.name, st.st_size, MAX_VIDEO_BYTES, q)
            return False
        return True

    def check_png(self, entry: os.DirEntry[str], q: str) -> bool:
        data = self.read(entry, q, MAX_PNG_BYTES, into=self.buffer_for)
        if data is None:
            return False
        if not self.decode_images:
            found = structure_problem(data)
        else:
            digest = self.digests[entry.name] = hashlib.sha256(data).digest()
            if self.verdicts.known(digest):
                self.report.frames_cached += 1
                return True
            found = pixel_problem(data)
            self.report.frames_checked += 1
            if not found:
                self.verdicts.remember(digest)
        if found:
            self.add(entry.path, found[0], found[1], question=q)
            return False
        return True

    def check_text(self, entry: os.DirEntry[str], q: str, what: str) -> str | None:
        data = self.read(entry, q, MAX_PROMPT_BYTES)
        if data is None:
            return None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.add(entry.path, "not_utf8", f"{what} is not UTF-8 (byte {exc.start}); save it as UTF-8", question=q)
            return None
        if not text.strip():
            self.add(entry.path, "empty_prompt" if what == "prompt" else "empty_text",
                     f"{what} is empty; write the {what} text", question=q)
            return None
        return text

    def check_metadata(self, entry: os.DirEntry[str], q: str, domain: str, qid: str
                       ) -> tuple[str, dict[str, Any]] | None:
        data = self.read(entry, q, MAX_METADATA_BYTES)
        if data is None:
            return None
        p = entry.path
        try:
            text = data.decode("utf-8")
            meta = json.loads(text)
        except UnicodeDecodeError as exc:
            self.add(p, "not_utf8", f"not UTF-8 (byte {exc.start}); save it as UTF-8 JSON", question=q)
            return None
        except json.JSONDecodeError as exc:
            self.add(p, "invalid_json", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}; fix the file",
                     question=q)
            return None
        except RecursionError:
            self.add(p, "invalid_json", "JSON is nested too deeply to read; flatten it", question=q)
            return None
        if not isinstance(meta, dict):
            self.add(p, "invalid_json", "metadata must be a JSON object", question=q)
            return None
        for key, want in (("id", qid), ("domain", domain)):
            if key in meta and meta[key] != want:
                self.add(p, f"metadata_{key}_mismatch",
                         f"metadata {key} {meta[key]!r} disagrees with the folder ({want!r}); "
                         "fix the metadata or rename the folder", question=q)
        return text, meta

    def check_question(self, folder: str, domain: str, name: str | None = None) -> None:
        """Check one question folder; a valid question goes to ``on_question`` (else into the report).

        ``name``: the folder's name, if listed already (the question's id is then that string,
        not a new one)."""
        q = name if name is not None else os.path.basename(folder)
        rel = f"{domain}_task/{q}"
        self._blobs, self.digests = {}, {}
        entries = self._question_entries(folder, rel)
        if entries is None:
            return
        had_error, self.failed = self.failed, False  # self.failed now tells whether this question fails
        found = self._check_files(folder, rel, domain, q, entries)
        failed_here = self.failed
        self.failed = had_error or failed_here
        if failed_here or found.prompt is None:
            return
        question = self._question(folder, domain, q, rel, entries, found.prompt, found)
        self.listed.append(listing(question))
        if self.on_question is None:
            if self.keep_questions:
                self.report.question_list.append(question)
        else:  # the consumer keeps what it needs: memory stays flat however big the tree
            blobs, self._blobs = self._blobs, {}
            self.on_question(question, blobs)

    def _question_entries(self, folder: str, rel: str) -> dict[str, os.DirEntry[str]] | None:
        """The folder's entries by name (files that are not part of a question are warned about),
        or None if it cannot be listed."""
        try:
            with os.scandir(folder) as it:
                entries = {e.name: e for e in it}
        except OSError as exc:
            self.add(folder, "unreadable", f"cannot list folder ({exc.strerror}); fix permissions", question=rel)
            return None
        for name in sorted(entries.keys() - KNOWN_FILES):
            self.add(entries[name].path, "stray_file", "not part of a question; it is ignored (move it elsewhere)",
                     "warning", question=rel)
        return entries

    def _check_files(self, folder: str, rel: str, domain: str, q: str,
                     entries: dict[str, os.DirEntry[str]]) -> _Files:
        """Check each file of the question, in a fixed order; what the valid ones hold."""
        sep = os.sep
        meta = self.check_metadata(entries[METADATA], rel, domain, q) if METADATA in entries else None
        if FIRST not in entries:
            self.add(f"{folder}{sep}{FIRST}", "missing_file", "required start frame is missing; add first_frame.png",
                     question=rel)
        else:
            self.check_png(entries[FIRST], rel)
        if PROMPT not in entries:
            self.add(f"{folder}{sep}{PROMPT}", "missing_file", "required prompt is missing; add prompt.txt (UTF-8)",
                     question=rel)
            prompt = None
        else:
            prompt = self.check_text(entries[PROMPT], rel, "prompt")
        final = None
        if FINAL in entries:
            final = FINAL if self.check_png(entries[FINAL], rel) else None
        elif METADATA in entries:
            self.add(f"{folder}{sep}{FINAL}", "missing_file",
                     "classic layout (with question_metadata.json) needs final_frame.png; add it", question=rel)
        goal = self.check_text(entries[GOAL], rel, "goal") if GOAL in entries else None
        video = VIDEO if VIDEO in entries and self.check_video(entries[VIDEO], rel) else None
        return _Files(meta, prompt, final, goal, video)

    def _question(self, folder: str, domain: str, q: str, rel: str, entries: dict[str, os.DirEntry[str]],
                  prompt: str, found: _Files) -> Question:
        """The valid question, from its checked files."""
        meta_text, meta = found.meta if found.meta else (None, None)
        if meta and isinstance(meta.get("prompt"), str) and meta["prompt"].strip() != prompt.strip():
            self.add(entries[METADATA].path, "prompt_mismatch", "metadata prompt differs from prompt.txt; "
                     "prompt.txt is used", "warning", question=rel)

        def text_field(key: str) -> str | None:
            value = (meta or {}).get(key)
            return str(value) if value is not None else None

        return Question(
            id=q, domain=domain, prompt=prompt, source_path=rel, folder=(where := Path(folder)),
            first_frame=where / FIRST, final_frame=found.final and where / found.final,
            difficulty=text_field("difficulty"), task_category=text_field("task_category"),
            goal=found.goal if found.goal is not None else text_field("goal"),
            ground_truth_video=found.video and where / found.video, metadata_text=meta_text, metadata=meta,
        )

    def domains(self) -> list[tuple[str, str]]:
        """The top level: ``(folder, domain)`` for every valid domain folder, sorted by domain.

        Problems with the top level itself (missing, stray or misnamed entries) are recorded.
        """
        qdir = self.qdir
        if not qdir.is_dir():
            self.add(qdir, "missing_questions_dir",
                     "no questions folder here; pass --data-dir, or run `vmeval-hf create` to generate one")
            return []
        try:
            top = sorted(os.scandir(qdir), key=lambda e: e.name)
        except OSError as exc:
            self.add(qdir, "unreadable", f"cannot list folder ({exc.strerror}); fix permissions")
            return []
        found: list[tuple[str, str]] = []
        for e in top:
            p = Path(e.path)
            if e.name == DATASET_MANIFEST:
                continue
            m = DOMAIN_DIR_RE.match(e.name)
            if e.is_symlink():
                self.entry_ok(p, None, "dir")
                if e.is_dir(follow_symlinks=True):
                    self.add(p, "symlinked_folder", "domain folders may not be symlinks; copy it in")
                continue
            if not e.is_dir():
                self.add(p, "stray_file", "not part of the question tree; it is ignored (move it elsewhere)",
                         "warning")
            elif not m:
                self.add(p, "bad_folder_name",
                         "domain folder must be named <domain>_task with domain matching [a-z0-9_]+; rename it")
            else:
                found.append((e.path, m.group(1)))
        return sorted(found, key=lambda pair: pair[1])  # by domain: "a_b_task" sorts before "a_task"

    def question_folders(self, ddir: str, domain: str, names: bool = False) -> list[str]:
        """The valid question folders of one domain (paths; ``names``: their names, the strings
        ``report.folders`` holds too), in natural id order; misnamed entries are recorded.
        Listed by :meth:`question_names`: only the names are held, never an entry object each."""
        found: list[str] = []
        if self.question_names(ddir, domain, found.append) is None:
            return []
        found.sort()
        dname = os.path.basename(ddir)
        folders = self.report.folders
        for name in found:  # in name order, as they always went in
            folders[name] = f"{dname}/{name}"
        found.sort(key=id_sort_key)
        return found if names else [os.path.join(ddir, name) for name in found]

    def question_names(self, ddir: str, domain: str, found: Callable[[str], None]) -> int | None:
        """Hand the name of each valid question folder of one domain to ``found``, in the order
        the listing gives, holding none of them (for a caller that sorts them on disk: a domain
        may hold a million); the other entries are recorded as :meth:`question_folders` records
        them, in name order, once the listing is done. How many entries the folder holds; None
        if it cannot be listed (recorded: then the names handed over are void)."""
        qre = question_name_re(domain)
        odd: list[os.DirEntry[str]] = []  # not question folders: few, kept to be sorted
        count = 0
        try:
            listing = os.scandir(ddir)
        except OSError as exc:
            self._unlisted(ddir, exc)
            return None
        with listing:
            while True:
                try:
                    e = next(listing, None)
                except OSError as exc:
                    self._unlisted(ddir, exc)
                    return None
                if e is None:
                    break
                count += 1
                if _is_question_folder(e, qre):
                    found(e.name)
                else:
                    odd.append(e)
        dname = os.path.basename(ddir)
        for e in sorted(odd, key=lambda e: e.name):
            self._not_a_question_folder(e, domain, dname)
        return count

    def _unlisted(self, ddir: str, exc: OSError) -> None:
        self.add(ddir, "unreadable", f"cannot list folder ({exc.strerror}); fix permissions")

    def _not_a_question_folder(self, e: os.DirEntry[str], domain: str, dname: str) -> None:
        """Record why the entry ``e`` of the folder ``dname`` of ``domain`` is not a question folder."""
        if not e.is_dir(follow_symlinks=True) or e.is_symlink():
            p = Path(e.path)
            if e.is_symlink():
                self.entry_ok(p, None, "dir")
                if e.is_dir(follow_symlinks=True):
                    self.add(p, "symlinked_folder", "question folders may not be symlinks; copy it in")
                return
            self.add(p, "stray_file", "not a question folder; it is ignored (move it elsewhere)", "warning")
            return
        self.add(e.path, "bad_folder_name", f"question folder must be named {domain}_NNNN (4+ ASCII digits); rename it",
                 question=f"{dname}/{e.name}")

    def check_domain(self, ddir: str, domain: str) -> None:
        self.check_questions(self.question_folders(ddir, domain, names=True), domain, ddir)

    def check_questions(self, folders: list[str], domain: str, ddir: str | None = None) -> None:
        """Check the question ``folders`` of ``domain`` (paths; with ``ddir``: the names of folders
        in it, which become the ids: one string per question for the folder and the listing), then
        keep the frame verdicts they gave."""
        for folder in folders:
            if ddir is None:
                self.check_question(folder, domain)
            else:
                self.check_question(os.path.join(ddir, folder), domain, folder)
        self.verdicts.flush()

    def finish(self) -> ValidationReport:
        """Tree-wide checks once every domain is in: an empty tree, duplicate ids; sorts the questions.
        (The build and ``validate`` keep the questions on disk and call :meth:`conclude`.)"""
        return self.conclude(len(self.listed), repeated_ids(self.listed))

    def conclude(self, valid: int, repeated: Iterable[tuple[Listed, Listed]]) -> ValidationReport:
        """:meth:`finish` for a caller that keeps the questions elsewhere (on disk): ``valid``,
        how many valid questions the tree has; ``repeated``, each whose id (case aside) an
        earlier one has, with that first one, in tree order (:func:`repeated_ids`)."""
        self.report.valid = valid
        if not valid and not self.report.errors:
            self.add(self.qdir, "empty_tree", "holds no questions; add <domain>_task/<domain>_NNNN folders "
                     "or run `vmeval-hf create`")
        for row, first in repeated:
            self.add(self.qdir / row.source_path, "duplicate_id", f"id {row.id!r} is also used by "
                     f"{first.source_path}; give each question a unique id", question=row.source_path)
        self.report.question_list.sort(key=lambda x: (x.domain, id_sort_key(x.id)))
        return self.report

    def run(self, domains: list[tuple[str, str]] | None = None) -> ValidationReport:
        """Check every domain (``domains``: those :meth:`domains` gave, if called already), then :meth:`finish`."""
        for ddir, domain in self.domains() if domains is None else domains:
            self.check_domain(ddir, domain)
        return self.finish()


def repeated_ids(rows: Iterable[Listed]) -> Iterator[tuple[Listed, Listed]]:
    """Each of ``rows`` (in tree order) whose id, case aside, an earlier one has, with that first one."""
    seen: dict[str, Listed] = {}  # by folded id: refs only, no new string per question
    for row in rows:
        key = folded(row.id)
        if key in seen:
            yield row, seen[key]
        else:
            seen[key] = row
