"""The Hub side: publish a release folder as one tagged commit on ``main``, verify, pull.

This module is the one boundary where ``huggingface_hub`` errors are translated into
:mod:`vmeval_hf.errors` (see :func:`_hub_error`): a Hub that fails or cannot be reached is a
:class:`HubError` (retried), a local disk problem is a :class:`LocalFileError` (never retried,
never called an outage).

A version is published as **one commit and one tag** whenever ``main`` may take it (no tag in the
repo orders after this version: ``1.10`` after ``1.9``, :func:`~vmeval_hf._shared.labels.ordered_after`):

1. **the release commit on ``main``**: exactly the release files, files of earlier versions
   deleted, committed with ``main``'s head as its parent, so a concurrent writer is refused (412)
   rather than mixed in. A release with more than ``files_per_commit`` file changes (default
   :data:`FILES_PER_COMMIT`, the Hub's guidance: fewer than about 100 files per commit) goes in
   several commits, each naming the one before: deletions first, then the additions in path
   order, ``README.md`` and ``vmeval_release.json`` in the last commit (an earlier release's
   ``vmeval_release.json`` deleted in the first), so ``main`` stopped half-way never holds a release
   manifest that does not describe its files. A re-run compares what ``main`` holds (git blob
   sha1, LFS sha256) and sends only the missing or different files: a run stopped between
   batches, or after its last commit and before its tag, commits nothing twice;
2. **the tag** ``<version>`` at that commit's sha. ``--force`` deletes the old tag and creates
   the new one back to back (the Hub has no atomic tag move); a tag left missing by a failed
   move is created by re-running the same command.

``main`` holds an untagged release only between its last commit and the tag (a run stopped there
is finished by re-running it). Two publishers of the same version cannot both commit: the second
finds ``main``'s head moved (412) and, looking again, an untagged release of this version with
other files, and is refused before it commits (:meth:`_Push.refuse_unfinished`); ``--force``
publishes over it. A version that ``main`` may not take (a later version is tagged: a back-filled
or ``--force``d older version) is committed on the staging branch
``vmeval-staging-<version>-<release hash>`` instead, started from ``main``, in the same batches,
and tagged there; ``main`` stays where it is and the branch is deleted after the tag (the commit
stays reachable through it). ``main`` never goes backwards.

A tag that already names this very release is a no-op; if ``main`` lags behind it (a repo
published before ``main`` took releases directly), ``main`` is brought to the tagged files then (:meth:`_Push.follow_main`), only forward.

"The same release" means every file: the release manifest's own hash (:func:`release_sha256`),
which covers the card, every shard and the sources; ``content_sha256`` (the sources only) is not
enough to call a publish a no-op.

Xet is switched off only around calls to a loopback endpoint (the sandbox serves plain LFS) and
restored after them (:data:`_XET`), so a process that also talks to the real Hub uploads the way
the real Hub expects.

``huggingface_hub`` is imported inside the functions that call it (the lines marked
``# start-up``): it takes about 0.3 s to import (``python -X importtime``), which
``import vmeval_hf.hub`` and the commands that never reach the Hub should not pay.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from ._shared.fs import CHUNK, sha256_file
from ._shared.labels import ordered_after
from .config import Settings
from .errors import (
    ConfigError,
    HubAuthError,
    HubConflictError,
    HubError,
    HubNotFoundError,
    IntegrityError,
    LocalFileError,
    VersionConflictError,
    VmevalError,
)
from .release.release_manifest import (
    RELEASE_MANIFEST,
    Mismatch,
    ReleaseManifest,
    check_content,
    check_release_files,
    load_release,
    manifest_text,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
KEEP = {".gitattributes"}
#: prefix of the branch a release is committed on before its tag exists (see the module docstring)
STAGING_PREFIX = "vmeval-staging-"
#: file changes per commit by default: the Hub recommends fewer than about 100 files per commit
#: (its "Repository limitations and recommendations" page), 10,000 entries per folder at most
FILES_PER_COMMIT = 100
#: committed last, in this order: a branch holds this release's manifest only once it holds the rest
_LAST = ("README.md", RELEASE_MANIFEST)
#: socket-level errors that mean the network, not this machine's disk (all are OSError subclasses)
_NETWORK_ERRORS = (ConnectionError, TimeoutError, socket.gaierror, socket.herror, ssl.SSLError)


@dataclass
class HubResult:
    repo_id: str
    version: str
    commit: str  # the tagged commit
    uri: str
    url: str
    noop: bool = False
    tag_moved: bool = False
    main_moved: bool = False  # main was moved to this release's files by this call


def hf_uri(repo_id: str, version: str) -> str:
    return f"hf://datasets/{repo_id}@{version}"


def release_sha256(manifest: ReleaseManifest) -> str:
    """The release's own hash: sha256 of its manifest in canonical form. Two releases with the same
    hash have the same version, sources and release files (card, shards, previews), byte for byte."""
    return hashlib.sha256(manifest_text(manifest).encode("utf-8")).hexdigest()


# -- Xet, scoped to loopback calls -----------------------------------------------------------------


class _XetScope:
    """``HF_HUB_DISABLE_XET`` is one process-wide setting that huggingface_hub reads at call time.
    It is set only while at least one call to a loopback endpoint runs (counted, so overlapping
    calls from threads restore it once, when the last one ends), and put back as it was after.

    Limit: a call to a real endpoint made by another thread *while* a loopback call runs sees
    Xet off; one process does not talk to both at the same moment.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = False

    @contextlib.contextmanager
    def plain_lfs(self, settings: Settings) -> Iterator[None]:
        if not settings.hub_is_local:
            yield
            return
        from huggingface_hub import constants  # start-up: see the module docstring

        with self._lock:
            if self._depth == 0:
                self._saved = constants.HF_HUB_DISABLE_XET
                constants.HF_HUB_DISABLE_XET = True
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    constants.HF_HUB_DISABLE_XET = self._saved


_XET = _XetScope()


# -- errors: the one translation boundary ----------------------------------------------------------


@dataclass(frozen=True)
class _Where:
    settings: Settings
    repo: str
    version: str | None
    what: str | None

    @property
    def repo_text(self) -> str:
        return f"{self.repo} on {self.settings.hub_endpoint}"

    @property
    def doing(self) -> str:
        return f" ({self.what})" if self.what else ""


@contextlib.contextmanager
def _translate(settings: Settings, repo_id: str, version: str | None = None,
               what: str | None = None) -> Iterator[None]:
    """Run the block with Xet scoped (:data:`_XET`) and its errors translated (:func:`_hub_error`)."""
    try:
        with _XET.plain_lfs(settings):
            yield
    except VmevalError:
        raise
    except Exception as exc:
        mapped = _hub_error(exc, _Where(settings, repo_id, version, what))
        if mapped is None:
            raise
        raise mapped from exc


def _hub_error(exc: BaseException, at: _Where) -> VmevalError | None:
    """Our error for a huggingface_hub / HTTP / OS error, with what to do next; None: not ours to map."""
    from huggingface_hub.errors import (  # start-up: see the module docstring
        HfHubHTTPError,
        LocalEntryNotFoundError,
        LocalTokenNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo, version = at.repo, at.version
    if isinstance(exc, RevisionNotFoundError):
        return HubNotFoundError(f"{at.repo_text}: revision {version or ''} not found{at.doing}; publish it first "
                                "(`vmeval-hf publish`)", repo=repo, version=version)
    if isinstance(exc, RepositoryNotFoundError):
        return HubNotFoundError(f"{at.repo_text}: dataset repo not found (or not visible with this token); check "
                                "--repo / VMEVAL_HF_REPO and HF_TOKEN", repo=repo)
    if isinstance(exc, RemoteEntryNotFoundError):
        return HubNotFoundError(f"{at.repo_text}: file not found at {version}: {exc}", repo=repo)
    if isinstance(exc, LocalEntryNotFoundError):
        # hf_hub_download had no answer from the Hub (and no cached copy): its cause says why. It
        # subclasses EntryNotFoundError, but it never means "the file does not exist".
        cause = exc.__cause__
        if isinstance(cause, HfHubHTTPError):
            return _http_error(cause, at)
        return _unreachable(cause if isinstance(cause, BaseException) else exc, at)
    if isinstance(exc, LocalTokenNotFoundError):
        return HubAuthError("no Hub token: set HF_TOKEN (or run `hf auth login`)", repo=repo)
    if isinstance(exc, HfHubHTTPError):
        return _http_error(exc, at)
    if isinstance(exc, _NETWORK_ERRORS) or type(exc).__module__.startswith("httpx"):
        return _unreachable(exc, at)
    if isinstance(exc, OSError):
        return _local_error(exc, at)
    return None


def _http_error(exc: Any, at: _Where) -> HubError:
    status = exc.response.status_code if exc.response is not None else None
    repo = at.repo
    if status in (401, 403):
        return HubAuthError(f"{at.repo_text}{at.doing}: the Hub refused the token (HTTP {status}); set HF_TOKEN "
                            "to a token with write access to this repo", repo=repo, status=status)
    if status in (409, 412):
        return HubConflictError(f"{at.repo_text}{at.doing}: another publish changed the repo at the same time "
                                f"(HTTP {status}); re-run the same command", repo=repo, status=status)
    return HubError(f"{at.repo_text}{at.doing}: Hub request failed (HTTP {status}): {_first_line(exc)}; re-run "
                    "the same command to resume", repo=repo, status=status)


def _unreachable(exc: BaseException, at: _Where) -> HubError:
    return HubError(f"cannot reach the Hub at {at.settings.hub_endpoint}{at.doing} ({type(exc).__name__}); check "
                    "HF_ENDPOINT and the network, then re-run the same command to resume", repo=at.repo)


def _local_error(exc: OSError, at: _Where) -> LocalFileError:
    path = exc.filename
    reason = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded"}.get(
        exc.errno or 0, exc.strerror or type(exc).__name__)
    return LocalFileError(f"{path or 'a local file'}: {reason}{at.doing}; a problem on this machine, not the Hub: "
                          "free space or fix the file or folder, then re-run the same command", path=path)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _transient(exc: HubError) -> bool:
    if isinstance(exc, HubConflictError):
        return True
    if isinstance(exc, (HubAuthError, HubNotFoundError)):
        return False
    status = exc.status
    return status is None or status >= 500 or status == 429


def _call(settings: Settings, repo_id: str, version: str | None, what: str, fn: Callable[[], T], *,
          conflicts: bool = True) -> T:
    """Run ``fn`` with its errors translated (:func:`_translate`); retry transient Hub failures
    (5xx, 429, network, commit races) with backoff, ``settings.hub_attempts`` tries in all
    (``VMEVAL_HUB_ATTEMPTS``). A local disk error (:class:`LocalFileError`) is raised at once.

    ``conflicts=False`` raises a 409/412 at once: creating a tag that exists fails every time.
    """
    delay = 0.5
    attempts = settings.hub_attempts
    for attempt in range(1, attempts + 1):
        try:
            with _translate(settings, repo_id, version, what):
                return fn()
        except HubError as exc:
            if attempt == attempts or not _transient(exc) or (not conflicts and isinstance(exc, HubConflictError)):
                raise
            log.warning("%s failed (%s); retrying in %.1fs", what, exc, delay)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def hub_api(settings: Settings) -> Any:
    """An ``HfApi`` for the configured endpoint. Xet is left as the process has it: the calls of
    this module switch it off around loopback requests only (:data:`_XET`)."""
    from huggingface_hub import HfApi  # start-up: see the module docstring
    from huggingface_hub.utils import disable_progress_bars  # start-up: see the module docstring

    disable_progress_bars()  # the library never prints; callers get progress from our own callbacks
    return HfApi(endpoint=settings.hub_endpoint, token=settings.hf_token)


def _tags(api: Any, repo_id: str) -> dict[str, str]:
    return _tag_map(api.list_repo_refs(repo_id, repo_type="dataset"))


def _tag_map(refs: Any) -> dict[str, str]:
    """``{tag: commit}`` of a ``list_repo_refs`` answer."""
    return {t.name: t.target_commit for t in refs.tags}


def _fetch(settings: Settings, repo_id: str, filename: str, revision: str) -> bytes:
    """The bytes of ``filename`` at ``revision``: one GET through huggingface_hub's own session, URL
    and error mapping (a missing file is its ``RemoteEntryNotFoundError``). Not ``hf_hub_download``:
    after a failed metadata HEAD it retries on its own for about 25 s, which would multiply
    ``VMEVAL_HUB_ATTEMPTS`` (:func:`_call` retries), and it reports a Hub it could not reach as
    ``LocalEntryNotFoundError``, an ``EntryNotFoundError``. For small files: the release manifest
    and the non-LFS files ``verify`` hashes."""
    from huggingface_hub import constants, hf_hub_url  # start-up: see the module docstring
    from huggingface_hub.utils import (  # start-up: see the module docstring
        build_hf_headers,
        get_session,
        hf_raise_for_status,
    )

    url = hf_hub_url(repo_id, filename, repo_type="dataset", revision=revision, endpoint=settings.hub_endpoint)
    response = get_session().get(url, headers=build_hf_headers(token=settings.hf_token), follow_redirects=True,
                                 timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT)
    hf_raise_for_status(response)
    return bytes(response.content)


def remote_manifest(settings: Settings, repo_id: str, revision: str) -> ReleaseManifest | None:
    """The ``vmeval_release.json`` at ``revision``, or None if that revision has none.

    Only the Hub's own answer "no such file" is None; a Hub that fails or cannot be reached is a
    :class:`HubError` (huggingface_hub's ``LocalEntryNotFoundError`` subclasses
    ``EntryNotFoundError`` but means "no answer": never read as "no manifest"). Retried like every
    Hub call (:func:`_call`).
    """
    from huggingface_hub.errors import (  # start-up: see the module docstring
        RemoteEntryNotFoundError,
    )

    def once() -> ReleaseManifest | None:
        try:
            raw = _fetch(settings, repo_id, RELEASE_MANIFEST, revision)
        except RemoteEntryNotFoundError:
            return None
        try:
            doc = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _altered(repo_id, revision, f"not valid JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise _altered(repo_id, revision, f"not a JSON object ({type(doc).__name__})")
        return doc  # type: ignore[return-value]

    return _call(settings, repo_id, revision, "reading the release manifest", once)


def _altered(repo_id: str, revision: str, why: str) -> IntegrityError:
    """The refusal of a ``vmeval_release.json`` on the Hub that is no release manifest at all."""
    where = f"hf://datasets/{repo_id}@{revision}/{RELEASE_MANIFEST}"
    return IntegrityError(f"{where}: {why}; the copy there was altered after publishing, re-publish that version",
                          path=where)


@dataclass(frozen=True)
class _Damaged:
    """A revision's ``vmeval_release.json`` that is no release manifest (:func:`remote_manifest`
    refused it): not this release, and said so in a conflict's message."""

    why: str

    @classmethod
    def of(cls, exc: IntegrityError) -> _Damaged:
        """What :func:`remote_manifest` refused, in its words without the address it names."""
        return cls(exc.message.removeprefix(f"{exc.path}: "))


def fetch_release_manifest(settings: Settings, repo_id: str, revision: str, dest: str | Path) -> Path | None:
    """Download the ``vmeval_release.json`` at ``revision`` into the folder ``dest``, a chunk at a
    time (about 70 MB at 100,000 questions: never held), and return its path; None if that revision
    has none. Errors and retries as :func:`remote_manifest`; the file is written under a temporary
    name and renamed, so a download cut short leaves no manifest."""
    from huggingface_hub import constants, hf_hub_url  # start-up: see the module docstring
    from huggingface_hub.errors import (  # start-up: see the module docstring
        RemoteEntryNotFoundError,
    )
    from huggingface_hub.utils import (  # start-up: see the module docstring
        build_hf_headers,
        get_session,
        hf_raise_for_status,
    )

    target = Path(dest) / RELEASE_MANIFEST
    partial = target.with_name(target.name + ".part")
    url = hf_hub_url(repo_id, RELEASE_MANIFEST, repo_type="dataset", revision=revision,
                     endpoint=settings.hub_endpoint)

    def once() -> Path | None:
        with get_session().stream("GET", url, headers=build_hf_headers(token=settings.hf_token),
                                  follow_redirects=True, timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT) as response:
            try:
                hf_raise_for_status(response)
            except RemoteEntryNotFoundError:
                return None
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(partial, "wb") as f:
                for chunk in response.iter_bytes(CHUNK):
                    f.write(chunk)
        os.replace(partial, target)
        return target

    return _call(settings, repo_id, revision, "reading the release manifest", once)


# -- publishing ------------------------------------------------------------------------------------


def check_files_per_commit(files_per_commit: object) -> int:
    """``files_per_commit`` (``--files-per-commit``) if it is a whole number of at least 1, else a
    :class:`ConfigError` saying so, raised before anything is built or sent."""
    if isinstance(files_per_commit, bool) or not isinstance(files_per_commit, int) or files_per_commit < 1:
        raise ConfigError(f"--files-per-commit must be a whole number of at least 1, not {files_per_commit!r}; "
                          f"the default, {FILES_PER_COMMIT}, is about the most files the Hub recommends per commit")
    return files_per_commit


def publish_to_hub(release_dir: str | Path, *, settings: Settings, repo_id: str | None = None,
                   force: bool = False, private: bool | None = None, commit_message: str | None = None,
                   commit_description: str | None = None, files_per_commit: int = FILES_PER_COMMIT,
                   manifest: ReleaseManifest | None = None) -> HubResult:
    """Publish the release at ``release_dir`` as one tagged commit on ``main`` (see the module
    docstring for the rule, the batches and the staging branch a version ``main`` may not take uses).

    ``settings``: endpoint and token. ``repo_id``: the dataset repo (default ``settings.hf_repo``;
    created if missing, ``private`` if given). ``force``: see below. ``commit_message`` /
    ``commit_description`` default to ``Release <version>`` and the content hash.
    ``files_per_commit``: the most file changes one commit carries (:func:`check_files_per_commit`);
    a release with more is committed in several commits, and only the last one is tagged.
    ``manifest``: the release's manifest when the caller holds it already (``publish_version``,
    right after its build, read without its source list), so it is not read and parsed a second
    time; by default it is read.

    The version already tagged with this very release (every file the same:
    :func:`release_sha256`): a no-op reporting the existing commit (``main`` follows it if it
    lags). Anything else under the tag, other questions or the same questions built into other
    files (another card date, another library version), is refused with a
    :class:`VersionConflictError` saying which, unless ``force``, which commits this release and
    moves the tag to it (``tag_moved``).

    Before any request, every release file must be there, readable and of its size; its bytes are
    then hashed once against the manifest, and the manifest's source list checked against its
    ``content_sha256``, beside the first requests (which only read), and both are awaited before
    anything is created or committed: a release edited since its build writes nothing. The commit
    reuses those hashes (``huggingface_hub`` would hash each file again).
    """
    per_commit = check_files_per_commit(files_per_commit)
    release = Path(release_dir)
    repo = repo_id or settings.hf_repo
    try:  # before any request: every file there, readable, of its size (a local problem is not retried)
        manifest = manifest if manifest is not None else load_release(release, sources=False, content=False)
        bad = check_release_files(release, manifest, contents=False)
    except OSError as exc:
        raise _local_error(exc, _Where(settings, repo, None, f"reading the release {release}")) from exc
    if bad:
        raise IntegrityError(f"{release}: release files changed since the build ({bad[0]}); rebuild it",
                             path=release)
    push = _Push(hub_api(settings), settings, repo, release, manifest,
                 commit_message or f"Release {manifest['version']}",
                 commit_description or f"vmeval-hf release {manifest['version']}, content "
                 f"sha256:{manifest['content_sha256']}", per_commit, force)
    with ThreadPoolExecutor(1, thread_name_prefix="check") as pool:
        # every byte against the manifest, beside the first requests (reads); awaited before anything is
        # created or committed (_Push.require_intact)
        push.intact = pool.submit(_intact, release, manifest)
        return push.run(private)


def _intact(release: Path, manifest: ReleaseManifest) -> list[str]:
    """:func:`check_release_files` of every byte (on its threads: ``hashlib`` lets go of the GIL),
    with the manifest's source list checked against ``content_sha256`` meanwhile on this one
    (:func:`check_content`: an :class:`IntegrityError`)."""
    with ThreadPoolExecutor(1, thread_name_prefix="hash") as pool:
        files = pool.submit(check_release_files, release, manifest)
        check_content(manifest, release)
        return files.result()


@dataclass
class _Push:
    """One :func:`publish_to_hub`: the release, where it goes, and its three steps."""

    api: Any
    settings: Settings
    repo: str
    release: Path
    manifest: ReleaseManifest
    message: str
    description: str
    per_commit: int = FILES_PER_COMMIT
    force: bool = False
    intact: Future[list[str]] | None = None  # check_release_files of every byte, running (publish_to_hub)

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @cached_property
    def release_ids(self) -> tuple[str, str]:
        """The sha256 (:func:`release_sha256`) and the git blob sha1 of this release's manifest in
        canonical form: the file's, which the build writes so (a manifest read without its sources
        is taken as its file), else the text re-encoded."""
        sha, blob = _file_ids(self.release / RELEASE_MANIFEST)
        if "sources" in self.manifest and sha != release_sha256(self.manifest):  # not as the build writes it
            text = manifest_text(self.manifest).encode("utf-8")
            sha, blob = _file_ids(text)
        return sha, blob

    @property
    def release_id(self) -> str:
        return self.release_ids[0]

    def holds_release(self, revision: str) -> tuple[bool, ReleaseManifest | _Damaged | None]:
        """Whether ``revision`` holds this very release, and its manifest when it was read.

        Settled by the hash the Hub lists for its ``vmeval_release.json`` (its LFS sha256, or git
        blob sha1) against :attr:`release_ids`, with nothing downloaded: the no-op re-publish, and a
        publisher that met another's tag of this same release. Only a manifest with other bytes is
        downloaded and parsed, to say how it differs (or to find the same release written otherwise)."""
        found = self.api.get_paths_info(self.repo, [RELEASE_MANIFEST], repo_type="dataset", revision=revision)
        entry = next((e for e in found if getattr(e, "path", None) == RELEASE_MANIFEST and hasattr(e, "blob_id")),
                     None)
        if entry is None:
            return False, None
        sha, blob = self.release_ids
        if (entry.lfs.sha256 if entry.lfs else entry.blob_id) == (sha if entry.lfs else blob):
            return True, None
        try:
            theirs = remote_manifest(self.settings, self.repo, revision)
        except IntegrityError as exc:
            return False, _Damaged.of(exc)
        return theirs is not None and release_sha256(theirs) == sha, theirs

    @property
    def staging_prefix(self) -> str:
        return f"{STAGING_PREFIX}{self.version}-"

    @property
    def staging(self) -> str:
        return f"{self.staging_prefix}{self.release_id[:12]}"

    def later(self, tags: dict[str, str]) -> list[str]:
        """The tags that order after this version (``main`` may not take it then), sorted."""
        return sorted(t for t in tags if ordered_after(t, self.version))

    def call(self, what: str, fn: Callable[[], T], *, conflicts: bool = True) -> T:
        return _call(self.settings, self.repo, self.version, what, fn, conflicts=conflicts)

    def result(self, commit: str, **flags: bool) -> HubResult:
        url = f"{self.settings.hub_endpoint}/datasets/{self.repo}/tree/{self.version}"
        return HubResult(self.repo, self.version, commit, hf_uri(self.repo, self.version), url, **flags)

    def conflict(self, held: str, theirs: ReleaseManifest | _Damaged | None, *, just_now: bool
                 ) -> VersionConflictError:
        """The refusal for a tag that names another release, saying how it differs and what to do
        (a release edited since its build is refused as that first: :meth:`require_intact`)."""
        self.require_intact()
        what, same_questions = _difference(theirs, self.manifest)
        when = "was just published by another publisher" if just_now else "is already published"
        if same_questions:
            todo = (f"if this resumes an earlier publish, rebuild it as that run did; or pass --force to publish "
                    f"these files as {self.version} (a new commit; the tag moves to it)")
        elif just_now:
            todo = "publish this content as a new version"
        else:
            todo = "publish as a new version, or pass --force to move the tag"
        return VersionConflictError(f"version {self.version} {when} on {self.repo} (commit {held[:12]}) with {what}; "
                                    f"{todo}", version=self.version, repo=self.repo)

    def run(self, private: bool | None) -> HubResult:
        """The publish after the release's files are found: the tags, then the release on ``main``
        (or staged, for a version ``main`` may not take), then its tag."""
        from huggingface_hub.errors import (  # start-up: see the module docstring
            RepositoryNotFoundError,
        )

        def refs() -> Any:
            try:
                return self.api.list_repo_refs(self.repo, repo_type="dataset")
            except RepositoryNotFoundError:
                self.require_intact()  # nothing is created for a release that fails its check
                self.api.create_repo(self.repo, repo_type="dataset", exist_ok=True, private=private)
                return self.api.list_repo_refs(self.repo, repo_type="dataset")

        listed = self.call("listing tags", refs)
        tags = _tag_map(listed)
        held = tags.get(self.version)
        if held is not None and (done := self.against_tag(held)) is not None:
            return done
        on_main = None if self.later(tags) else self.commit_on_main(held, listed)
        if on_main is not None:
            sha, moved = on_main
            result = self.tag(sha, move=held is not None)
            result.main_moved = moved
            if any(b.name.startswith(self.staging_prefix) for b in listed.branches):
                self.drop_staging()  # left by a run of this release that committed on the staging branch
            return result
        sha = self.stage()
        return self.finish(self.tag(sha, move=held is not None))

    def require_intact(self) -> None:
        """Every release file's bytes match the manifest (:attr:`intact`, waited for here), else an
        :class:`IntegrityError`; an unreadable file is a :class:`LocalFileError`."""
        if self.intact is None:
            return
        try:
            bad = self.intact.result()
        except OSError as exc:
            raise _local_error(exc, _Where(self.settings, self.repo, None,
                                           f"reading the release {self.release}")) from exc
        if bad:
            raise IntegrityError(f"{self.release}: release files changed since the build ({bad[0]}); rebuild it",
                                 path=self.release)

    def commit(self, branch: str, head: str, changes: _Changes, description: str | None = None) -> str:
        """:func:`_commit_batches` of ``changes`` on ``branch``, once the files are known intact."""
        self.require_intact()
        return _commit_batches(self.api, self.repo, branch, head, self.release, changes, self.per_commit,
                               self.message, description or self.description)

    def against_tag(self, held: str) -> HubResult | None:
        """The version is tagged at ``held`` already: this very release is a no-op (``main`` follows
        it if it lags, :meth:`finish`); another one a :class:`VersionConflictError`, unless ``force``
        (None: go on and move the tag)."""
        same, theirs = self.call("reading the release manifest", lambda: self.holds_release(held))
        if same:
            log.info("%s@%s already published at %s", self.repo, self.version, held)
            return self.finish(self.result(held, noop=True))
        if not self.force:
            raise self.conflict(held, theirs, just_now=False)
        return None

    def commit_on_main(self, held: str | None, refs: Any) -> tuple[str, bool] | None:
        """Step 1 when ``main`` may take this version: the release commits on ``main`` itself (only
        what it lacks, :func:`_changes`, in batches, :func:`_commit_batches`). The sha to tag, and
        whether a commit was made (none: ``main`` already held exactly this release, a run stopped
        before its tag). None: a later version was tagged meanwhile, so ``main`` may not take this
        one (the caller stages it instead).

        ``main``'s head and the tags come from ``refs`` (the caller's ``list_repo_refs``) on the
        first try, and from a new listing on a retry: a refused parent (412, another writer moved
        ``main``) is retried by :func:`_call` from the top. ``held``: what the tag named when
        listed; a tag created meanwhile is another publisher's, settled here."""
        listed = [refs]

        def once() -> tuple[str, bool] | None:
            now_refs = listed.pop() if listed else self.api.list_repo_refs(self.repo, repo_type="dataset")
            head = next((b.target_commit for b in now_refs.branches if b.name == "main"), None)
            if head is None:  # not listed (never seen from the Hub): ask for it
                head = self.api.repo_info(self.repo, repo_type="dataset", revision="main").sha
            tags = _tag_map(now_refs)
            now = tags.get(self.version)
            if now != held and now is not None:  # tagged by another publisher since the listing
                same, theirs = self.holds_release(now)
                if same:
                    return now, False  # this very release: tag() finds it tagged, a no-op
                raise self.conflict(now, theirs, just_now=True)
            if self.later(tags):
                return None
            changes = _changes(self.api, self.repo, head, self.release, self.manifest)
            if changes.stale_manifest and head not in tags.values():
                self.refuse_unfinished(head)
            sha = self.commit("main", head, changes)
            return sha, sha != head

        return self.call("committing the release on main", once)

    def refuse_unfinished(self, head: str) -> None:
        """``main``'s head holds another release no tag names. If it is a release of this very
        version, another publisher is publishing it now (or stopped before its tag): refused unless
        ``force``. A release of another version there (a run stopped before its tag, or ``main``
        as an earlier vmeval-hf left it) is simply followed."""
        if self.force:
            return
        self.require_intact()  # a release edited since its build is refused as that first
        try:
            theirs = remote_manifest(self.settings, self.repo, head)
        except IntegrityError:
            return  # no release at all there: followed, as main without a manifest is
        if theirs is None or theirs.get("version") != self.version:
            return
        what, _ = _difference(theirs, self.manifest)
        raise VersionConflictError(
            f"main of {self.repo} holds version {self.version} (commit {head[:12]}) that no tag names yet, with "
            f"{what}: another publisher is publishing {self.version} now, or a publish of it stopped before its "
            f"tag. Re-run that publish to finish it (and publish this content as a new version), or pass --force "
            f"to publish this release as {self.version}", version=self.version, repo=self.repo)

    def stage(self) -> str:
        """Step 1 for a version ``main`` may not take (a later version is tagged): the release commits
        on the staging branch; the sha of the last, the one to tag. A
        branch left by a run of the same release is reused: only what it lacks is sent
        (:func:`_changes`), in batches (:func:`_commit_batches`); a branch holding every file
        already gets no commit."""
        from huggingface_hub.errors import (  # start-up: see the module docstring
            RevisionNotFoundError,
        )

        def once() -> str:
            for attempt in range(3):
                try:
                    self.api.create_branch(self.repo, branch=self.staging, repo_type="dataset", exist_ok=True)
                    head = self.api.repo_info(self.repo, repo_type="dataset", revision=self.staging).sha
                    changes = _changes(self.api, self.repo, head, self.release, self.manifest)
                    return self.commit(self.staging, head, changes)
                except RevisionNotFoundError:
                    # a publisher of this same release finished and deleted the branch: start it again
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

        return self.call("committing the release", once)

    def tag(self, sha: str, *, move: bool) -> HubResult:
        """Step 2: tag ``sha`` (``move``: the tag exists and is moved). Another publisher's tag,
        found on creating ours: a no-op when it names this release, else :class:`VersionConflictError`."""
        try:
            if move:
                self.move_tag(sha)
            else:
                self.call(f"tagging commit {sha[:12]} as {self.version}", lambda: self.create_tag(sha),
                          conflicts=False)
        except HubConflictError as exc:
            current = self.call("listing tags", lambda: _tags(self.api, self.repo)).get(self.version)
            if current == sha:  # ours: a retried request that had already landed
                return self.result(sha, tag_moved=move)
            if current is None:
                raise
            same, theirs = self.call("reading the release manifest", lambda: self.holds_release(current))
            if same:
                return self.result(current, noop=True)
            self.drop_staging()
            raise self.conflict(current, theirs, just_now=True) from exc
        return self.result(sha, tag_moved=move)

    def create_tag(self, sha: str) -> None:
        self.api.create_tag(self.repo, tag=self.version, revision=sha, repo_type="dataset",
                            tag_message=f"vmeval-hf release {self.version}")

    def move_tag(self, sha: str) -> None:
        """Delete the tag, then create it at ``sha`` at once: the Hub has no atomic move, so the
        version has no tag between the two requests only. A tag already gone (a move that failed
        half-way before) is simply created; a failed creation says the tag is missing and that
        re-running the same command creates it."""
        from huggingface_hub.errors import (  # start-up: see the module docstring
            RevisionNotFoundError,
        )

        def delete() -> None:
            try:
                self.api.delete_tag(self.repo, tag=self.version, repo_type="dataset")
            except RevisionNotFoundError:
                log.info("tag %s of %s was already gone; creating it", self.version, self.repo)

        self.call(f"deleting tag {self.version} to move it (--force); the tag is unchanged", delete)
        try:
            self.call(f"creating tag {self.version} at commit {sha[:12]}", lambda: self.create_tag(sha),
                      conflicts=False)
        except HubConflictError:
            raise
        except HubError as exc:
            raise type(exc)(f"{exc}. Tag {self.version} was deleted to be moved and is missing now: re-run the "
                            f"same command to create it at commit {sha[:12]}", repo=self.repo, version=self.version,
                            status=exc.status) from exc

    def finish(self, result: HubResult) -> HubResult:
        """After a staged release's tag, or a no-op: ``main`` follows the tagged release if it may and
        lags (:meth:`follow_main`); the staging branch goes."""
        try:
            result.main_moved = self.follow_main(result.commit)
        except HubError as exc:
            raise type(exc)(f"{exc}. Version {self.version} is tagged (commit {result.commit[:12]}) but main was "
                            "not moved to it: re-run the same command to move it", repo=self.repo,
                            version=self.version, status=exc.status) from exc
        self.drop_staging()
        return result

    def follow_main(self, tagged: str) -> bool:
        """Move ``main`` to this release's files if the tag still names ``tagged`` and no tag orders
        after this version; whether a commit was made. ``main`` is read before the tags, and each
        commit names the head before it as its parent, so a publisher that moved ``main`` meanwhile
        makes the Hub refuse it (412) and the retry looks again (tags first, then what ``main`` lacks).

        Only the files ``main`` lacks are sent, batched like the staging branch. One commit would
        keep ``main`` from ever holding a mix of two releases, and its LFS content is already on the
        Hub (no bytes are re-uploaded either way), but the Hub's "fewer than about 100 files per
        commit" guidance counts files in a commit, not bytes uploaded: a big commit can time out on
        the Hub's side. So ``main`` is batched: while it follows (or if a run stops half-way) it may
        hold a mix, never a release manifest that does not describe its files (it goes in the last
        commit, the old one is deleted in the first), and ``main`` is no version: versions are tags.
        Re-running the same command finishes it."""
        def once() -> bool:
            head = self.api.repo_info(self.repo, repo_type="dataset", revision="main").sha
            tags = _tags(self.api, self.repo)
            later = self.later(tags)
            if tags.get(self.version) != tagged or later:
                log.info("main stays at %s: %s", head[:12], f"tag {later[-1]} is later" if later else
                         f"tag {self.version} no longer names {tagged[:12]}")
                return False
            changes = _changes(self.api, self.repo, head, self.release, self.manifest)
            if not changes:
                return False
            self.commit("main", head, changes, f"main follows version {self.version} (tag {self.version} = commit "
                        f"{tagged}).\n\n{self.description}")
            return True

        return self.call(f"moving main to version {self.version}", once)

    def drop_staging(self) -> None:
        """Delete the staging branch, if there is one (another publisher of this release may have
        deleted it first). Failing to delete it leaves a stray branch, never a wrong version: logged."""
        from huggingface_hub.errors import (  # start-up: see the module docstring
            RevisionNotFoundError,
        )

        def delete() -> None:
            with contextlib.suppress(RevisionNotFoundError):  # already gone: nothing to do
                self.api.delete_branch(self.repo, branch=self.staging, repo_type="dataset")

        try:
            self.call(f"deleting the staging branch {self.staging}", delete)
        except HubError as exc:
            log.warning("could not delete the staging branch %s (%s); delete it by hand", self.staging, exc)


def _difference(theirs: ReleaseManifest | _Damaged | None, ours: ReleaseManifest) -> tuple[str, bool]:
    """How the release ``theirs`` (on the Hub) differs from ``ours``, and whether the questions are the same."""
    if theirs is None:
        return "a commit that holds no vmeval_release.json", False
    if isinstance(theirs, _Damaged):
        return f"a vmeval_release.json that is no release manifest ({theirs.why})", False
    if theirs.get("content_sha256") != ours["content_sha256"]:
        return (f"different content (sha256:{str(theirs.get('content_sha256'))[:12]}, this release has "
                f"sha256:{ours['content_sha256'][:12]})"), False
    held = {f.get("path"): f.get("sha256") for f in theirs.get("files") or []}
    mine = {f["path"]: f["sha256"] for f in ours["files"]}
    changed = sorted(p for p in set(held) | set(mine) if held.get(p) != mine.get(p))
    same = f"the same questions (content sha256:{ours['content_sha256'][:12]}) but other release files"
    if changed == ["README.md"]:
        return (f"{same}: only the card (README.md) differs. Its Versions table dates each version and lists "
                "the ones before it, so a publish resumed on another day builds another card: pass the same "
                "--date as the run that published it"), True
    if changed:
        names = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        return (f"{same} ({names}): built by another vmeval-hf or pyarrow version, or with another --date or "
                "--max-shard-size"), True
    return f"{same}: the release manifests differ ({theirs.get('version')!r} vs {ours['version']!r})", True


@dataclass(frozen=True)
class _Changes:
    """What a revision lacks of a release (:func:`_changes`), and the commits that send it."""

    add: list[str]          # missing or with other bytes, sorted
    delete: list[str]       # held but not in the release (``.gitattributes`` kept), sorted
    stale_manifest: bool    # holds a vmeval_release.json of another release
    sha256: dict[str, str]  # every release file's sha256, as the manifest records it (not the manifest's own)

    def __bool__(self) -> bool:
        return bool(self.add or self.delete)

    def batches(self, per_commit: int) -> list[list[tuple[str, str]]]:
        """``("add" | "delete", path)`` in commits of at most ``per_commit``, in a fixed order:
        deletions, then additions by path, ``README.md`` and ``vmeval_release.json`` last. Cut from
        the end, so the last commit is full and holds both (``per_commit`` >= 2). With more than one
        commit, a stale ``vmeval_release.json`` is deleted in the first."""
        ops = [("delete", p) for p in self.delete] + [("add", p) for p in self.add if p not in _LAST]
        ops += [("add", p) for p in _LAST if p in self.add]
        if len(ops) > per_commit and self.stale_manifest:
            ops.insert(0, ("delete", RELEASE_MANIFEST))
        first = len(ops) % per_commit or per_commit
        return [ops[:first]] + [ops[i:i + per_commit] for i in range(first, len(ops), per_commit)] if ops else []


def _changes(api: Any, repo: str, revision: str, release: Path, manifest: ReleaseManifest) -> _Changes:
    """What ``revision`` lacks to hold exactly the release's files (``.gitattributes`` aside): each
    file compared by its LFS sha256, or its git blob sha1 for a file stored in git."""
    held = {e.path: e for e in api.list_repo_tree(repo, repo_type="dataset", revision=revision, recursive=True)
            if hasattr(e, "blob_id") and e.path not in KEEP}
    wanted = {f["path"]: f["sha256"] for f in manifest["files"]}

    def same(path: str) -> bool:
        entry = held[path]
        if not entry.lfs:
            return bool(entry.blob_id == _git_blob_sha1(release / path))
        return bool(entry.lfs.sha256 == (wanted.get(path) or sha256_file(release / path)))

    paths = sorted([*wanted, RELEASE_MANIFEST])
    add = [p for p in paths if p not in held or not same(p)]
    return _Changes(add, sorted(set(held) - set(paths)), RELEASE_MANIFEST in held and RELEASE_MANIFEST in add,
                    wanted)


def _commit_batches(api: Any, repo: str, branch: str, head: str, release: Path, changes: _Changes,
                    per_commit: int, message: str, description: str) -> str:
    """Commit ``changes`` on ``branch``, whose head is ``head``, in commits of at most ``per_commit``
    (:meth:`_Changes.batches`): each commit names the one before as its parent (a concurrent
    writer is refused, 412). The sha of the last commit; ``head`` when there is nothing to commit.

    Each release file's sha256 is given to ``huggingface_hub`` (``changes.sha256``: the release
    manifest's, which the caller has checked against the files, :meth:`_Push.require_intact`), which
    would otherwise read and hash every file again. The manifest's own is left to it: it hashes a file
    only to send it through LFS, and one the Hub takes inline (the manifest below 10 MB, about 15,000
    questions) is never hashed."""
    from huggingface_hub import (  # start-up: see the module docstring
        CommitOperationAdd,
        CommitOperationDelete,
    )

    def add(path: str) -> Any:
        op = CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(release / path))
        if path in changes.sha256:
            op.upload_info.sha256 = bytes.fromhex(changes.sha256[path])
        return op

    batches = changes.batches(per_commit)
    for number, batch in enumerate(batches, start=1):
        ops = [add(p) if kind == "add" else CommitOperationDelete(path_in_repo=p) for kind, p in batch]
        title = message if number == len(batches) else f"{message} (part {number} of {len(batches)})"
        info = api.create_commit(repo, ops, commit_message=title, commit_description=description,
                                 repo_type="dataset", revision=branch, parent_commit=head)
        head = str(info.oid)
        log.info("%s: commit %d of %d on %s (%d files): %s", repo, number, len(batches), branch, len(ops), head[:12])
    return head


def _git_blob_sha1(source: Path | bytes) -> str:
    """git's blob id of a file (or of bytes): how the Hub names a file it stores in git, not LFS."""
    return _hashed(source, hashlib.sha1(b"blob %d\0" % _size(source)))[0]


def _file_ids(source: Path | bytes) -> tuple[str, str]:
    """The sha256 and the git blob sha1 of a file (read a chunk at a time) or of bytes, in one pass."""
    sha256, sha1 = _hashed(source, hashlib.sha256(), hashlib.sha1(b"blob %d\0" % _size(source)))
    return sha256, sha1


def _size(source: Path | bytes) -> int:
    return source.stat().st_size if isinstance(source, Path) else len(source)


def _hashed(source: Path | bytes, *hashes: Any) -> list[str]:
    """The hex digests of ``hashes`` once fed ``source`` (a file, read a chunk at a time, or bytes)."""
    if isinstance(source, Path):
        with open(source, "rb") as f:
            while chunk := f.read(CHUNK):
                for h in hashes:
                    h.update(chunk)
    else:
        for h in hashes:
            h.update(source)
    return [h.hexdigest() for h in hashes]


# -- verifying and pulling -------------------------------------------------------------------------


def verify_hub(*, settings: Settings, repo_id: str, version: str, expected: ReleaseManifest,
               expected_commit: str | None = None, expected_file: Path | None = None) -> list[Mismatch]:
    """Compare the tagged revision's files (sizes, sha256) with the release manifest; every difference.

    ``expected_file``: a file holding exactly ``expected``'s canonical text (the build's, or a copy
    whose bytes were checked against the logged ``release_sha256``); needed for an ``expected``
    read without its source list (:func:`~vmeval_hf.release.release_manifest.load_release` with
    ``sources=False``). The tagged ``vmeval_release.json`` is compared with its bytes, with no
    second copy of the manifest as text."""
    api = hub_api(settings)
    where = f"hf://datasets/{repo_id}@{version}"
    tags = _call(settings, repo_id, version, "listing tags", lambda: _tags(api, repo_id))
    if version not in tags:
        return [Mismatch(where, "missing", f"tag {version} does not exist")]
    sha = tags[version]
    out: list[Mismatch] = []
    if expected_commit and sha != expected_commit:
        out.append(Mismatch(where, "moved", f"tag points at {sha[:12]}, the log recorded {expected_commit[:12]}"))

    def listing() -> list[Any]:
        return [e for e in api.list_repo_tree(repo_id, repo_type="dataset", revision=sha, recursive=True)
                if hasattr(e, "blob_id")]

    remote = {e.path: e for e in _call(settings, repo_id, version, "listing files", listing)}
    want = {e["path"]: e for e in expected["files"]}
    for path, entry in sorted(want.items()):
        got = remote.get(path)
        if got is None:
            out.append(Mismatch(f"{where}/{path}", "missing", "not in the tagged revision"))
        elif got.size != entry["size"]:
            out.append(Mismatch(f"{where}/{path}", "size", f"{got.size} bytes, expected {entry['size']}"))
        else:
            digest = got.lfs.sha256 if got.lfs else hashlib.sha256(_call(
                settings, repo_id, version, f"downloading {path}",
                lambda p=path: _fetch(settings, repo_id, p, sha))).hexdigest()
            if digest != entry["sha256"]:
                out.append(Mismatch(f"{where}/{path}", "sha256", f"sha256 {digest[:12]}, expected "
                                    f"{entry['sha256'][:12]}"))
    out += _manifest_mismatches(settings, repo_id, sha, where, remote, expected, expected_file)
    for path in sorted(set(remote) - set(want) - KEEP - {RELEASE_MANIFEST}):
        out.append(Mismatch(f"{where}/{path}", "extra", "in the tagged revision but not in the release"))
    return out


def _manifest_mismatches(settings: Settings, repo_id: str, sha: str, where: str, remote: dict[str, Any],
                         expected: ReleaseManifest, expected_file: Path | None) -> list[Mismatch]:
    """The tagged ``vmeval_release.json`` against the recorded release: every byte, then its content.

    The release manifest is written in canonical form (:func:`manifest_text`), so the file of the
    recorded release has known bytes (``expected``'s canonical text, or ``expected_file``'s bytes
    when ``expected`` was read without its sources): the tree listing's hash of the tagged file (its
    LFS sha256, or its git blob sha1) settles the common case with nothing downloaded or parsed (a
    manifest of 100,000 questions is about 70 MB of JSON). Only a file with other bytes is
    downloaded, to say how it differs (another content, or the same content in another manifest)."""
    at = f"{where}/{RELEASE_MANIFEST}"
    entry = remote.get(RELEASE_MANIFEST)
    if entry is None:
        return [Mismatch(at, "missing", "not in the tagged revision")]
    if expected_file is not None:
        ours, blob = _file_ids(expected_file)
    elif "sources" in expected:
        text = manifest_text(expected).encode("utf-8")
        ours, blob = _file_ids(text)
        del text
    else:
        raise ValueError("verify_hub: a manifest read without its sources needs expected_file")
    if (entry.lfs.sha256 if entry.lfs else entry.blob_id) == (ours if entry.lfs else blob):
        return []
    try:
        theirs = remote_manifest(settings, repo_id, sha) or {}
    except IntegrityError as exc:
        return [Mismatch(at, "sha256", f"not a release manifest: {_Damaged.of(exc).why}")]
    if theirs.get("content_sha256") != expected["content_sha256"]:
        return [Mismatch(at, "sha256", "content_sha256 differs from the recorded release")]
    if release_sha256(theirs) != ours:  # type: ignore[arg-type]
        return [Mismatch(at, "sha256", "the same content, but the manifest differs from the recorded release")]
    return []


def pull_hub(*, settings: Settings, repo_id: str, version: str, dest: str | Path,
             sources: bool = True) -> ReleaseManifest:
    """Download the tagged release into ``dest`` and check every file's sha256 against its manifest;
    the manifest (``sources=False``: without its source list, streamed to check it, not kept)."""
    from huggingface_hub import snapshot_download  # start-up: see the module docstring

    dest_path = Path(dest)

    def fetch() -> None:  # a retry resumes: files already in local_dir are not downloaded again
        hub_api(settings)
        snapshot_download(repo_id, repo_type="dataset", revision=version, local_dir=dest_path,
                          endpoint=settings.hub_endpoint, token=settings.hf_token)

    _call(settings, repo_id, version, f"downloading the release into {dest_path}", fetch)
    manifest = load_release(dest_path, sources=sources)
    bad = check_release_files(dest_path, manifest)
    if bad:
        raise IntegrityError(f"{dest_path}: downloaded release does not match its manifest ({bad[0]}); "
                             "delete the folder and pull again", path=dest_path)
    return manifest


# -- reading versions from the Hub alone (vmeval_hf.versions.hub_tags) ---------------------------


def list_tags(settings: Settings, repo_id: str) -> dict[str, str]:
    """Every tag of the dataset repo ``repo_id`` with the commit it points at (no token needed for a
    public repo)."""
    api = hub_api(settings)
    return _call(settings, repo_id, None, "listing tags", lambda: _tags(api, repo_id))


def commit_dates(settings: Settings, repo_id: str, revision: str = "main") -> dict[str, str]:
    """``{commit sha: "YYYY-MM-DDTHH:MM:SSZ"}`` for ``revision`` and every commit before it (UTC)."""
    api = hub_api(settings)

    def history() -> dict[str, str]:
        commits = api.list_repo_commits(repo_id, repo_type="dataset", revision=revision)
        return {c.commit_id: time.strftime("%Y-%m-%dT%H:%M:%SZ", c.created_at.utctimetuple()) for c in commits}

    return _call(settings, repo_id, revision, "listing commits", history)
