"""The Hub side: publish a release folder as one commit + a version tag, verify it, pull it.

This module is the one boundary where ``huggingface_hub`` errors are translated into
:mod:`vmeval_hf.errors` (see :func:`_translate`). A version is one ``create_commit``
holding exactly the release files (files of earlier versions deleted), then
``create_tag(version, revision=<that commit's sha>)``. Xet is disabled only when the
endpoint is a loopback server (the sandbox), never for the real Hub.

``huggingface_hub`` is imported inside the functions that call it (the lines marked
``# start-up``): it takes about 0.3 s to import (``python -X importtime``), which
``import vmeval_hf.hub`` and the commands that never reach the Hub should not pay.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ._shared.fs import sha256_file
from .config import Settings
from .errors import (
    HubAuthError,
    HubConflictError,
    HubError,
    HubNotFoundError,
    IntegrityError,
    VersionConflictError,
)
from .release.release_manifest import (
    RELEASE_MANIFEST,
    Mismatch,
    ReleaseManifest,
    check_release_files,
    load_release,
    release_paths,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
KEEP = {".gitattributes"}


@dataclass
class HubResult:
    repo_id: str
    version: str
    commit: str
    uri: str
    url: str
    noop: bool = False
    tag_moved: bool = False


def hf_uri(repo_id: str, version: str) -> str:
    return f"hf://datasets/{repo_id}@{version}"


@contextlib.contextmanager
def _translate(settings: Settings, repo_id: str, version: str | None = None) -> Iterator[None]:
    """Turn huggingface_hub / HTTP errors into our errors, with what to do next."""
    from huggingface_hub.errors import (  # start-up: see the module docstring
        EntryNotFoundError,
        HfHubHTTPError,
        LocalTokenNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id} on {settings.hub_endpoint}"
    try:
        yield
    except RevisionNotFoundError as exc:
        raise HubNotFoundError(f"{where}: revision {version or ''} not found; publish it first "
                               "(`vmeval-hf publish`)", repo=repo_id, version=version) from exc
    except RepositoryNotFoundError as exc:
        raise HubNotFoundError(f"{where}: dataset repo not found (or not visible with this token); check --repo "
                               "/ VMEVAL_HF_REPO and HF_TOKEN", repo=repo_id) from exc
    except EntryNotFoundError as exc:
        raise HubNotFoundError(f"{where}: file not found at {version}: {exc}", repo=repo_id) from exc
    except LocalTokenNotFoundError as exc:
        raise HubAuthError("no Hub token: set HF_TOKEN (or run `hf auth login`)", repo=repo_id) from exc
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            raise HubAuthError(f"{where}: the Hub refused the token (HTTP {status}); set HF_TOKEN to a token "
                               "with write access to this repo", repo=repo_id) from exc
        if status in (409, 412):
            raise HubConflictError(f"{where}: another publish changed the repo at the same time (HTTP {status}); "
                                   "re-run the same command", repo=repo_id) from exc
        raise HubError(f"{where}: Hub request failed (HTTP {status}): {_first_line(exc)}; re-run the same "
                       "command to resume", repo=repo_id, status=status) from exc
    except (ConnectionError, TimeoutError, OSError) as exc:
        raise HubError(f"cannot reach the Hub at {settings.hub_endpoint} ({type(exc).__name__}); check "
                       "HF_ENDPOINT and the network, then re-run the same command to resume", repo=repo_id) from exc
    except Exception as exc:
        if type(exc).__module__.startswith("httpx"):
            raise HubError(f"cannot reach the Hub at {settings.hub_endpoint} ({type(exc).__name__}); check "
                           "HF_ENDPOINT and the network, then re-run the same command to resume",
                           repo=repo_id) from exc
        raise


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
    (``VMEVAL_HUB_ATTEMPTS``).

    ``conflicts=False`` raises a 409/412 at once: creating a tag that exists fails every time.
    """
    delay = 0.5
    attempts = settings.hub_attempts
    for attempt in range(1, attempts + 1):
        try:
            with _translate(settings, repo_id, version):
                return fn()
        except HubError as exc:
            if attempt == attempts or not _transient(exc) or (not conflicts and isinstance(exc, HubConflictError)):
                raise
            log.warning("%s failed (%s); retrying in %.1fs", what, exc, delay)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def hub_api(settings: Settings) -> Any:
    """An ``HfApi`` for the configured endpoint; plain LFS (no Xet) only against a loopback server."""
    from huggingface_hub import HfApi, constants  # start-up: see the module docstring
    from huggingface_hub.utils import disable_progress_bars  # start-up: see the module docstring

    disable_progress_bars()  # the library never prints; callers get progress from our own callbacks
    if settings.hub_is_local:
        constants.HF_HUB_DISABLE_XET = True
    return HfApi(endpoint=settings.hub_endpoint, token=settings.hf_token)


def _tags(api: Any, repo_id: str) -> dict[str, str]:
    refs = api.list_repo_refs(repo_id, repo_type="dataset")
    return {t.name: t.target_commit for t in refs.tags}


def _download(api: Any, settings: Settings, repo_id: str, filename: str, revision: str, folder: Path) -> Path:
    from huggingface_hub import hf_hub_download  # start-up: see the module docstring

    return Path(hf_hub_download(repo_id, filename, repo_type="dataset", revision=revision, local_dir=folder,
                                endpoint=settings.hub_endpoint, token=settings.hf_token))


def remote_manifest(settings: Settings, repo_id: str, revision: str) -> ReleaseManifest | None:
    """The ``vmeval_release.json`` at ``revision``, or None if that revision has none.

    Retried like every Hub call: the client does not retry the metadata HEAD of a download.
    """
    from huggingface_hub.errors import EntryNotFoundError  # start-up: see the module docstring

    api = hub_api(settings)

    def once() -> ReleaseManifest | None:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = _download(api, settings, repo_id, RELEASE_MANIFEST, revision, Path(tmp))
            except EntryNotFoundError:
                return None
            return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]

    return _call(settings, repo_id, revision, "reading the release manifest", once)


def publish_to_hub(release_dir: str | Path, *, settings: Settings, repo_id: str | None = None,
                   force: bool = False, private: bool | None = None, commit_message: str | None = None,
                   commit_description: str | None = None) -> HubResult:
    """Publish the release at ``release_dir`` as one commit tagged with its version.

    ``commit_message`` / ``commit_description`` default to ``Release <version>`` and the
    content hash.

    Same version + same ``content_sha256`` already tagged: a no-op reporting the existing
    commit. Different content under the tag: :class:`VersionConflictError` unless
    ``force``, which moves the tag (``tag_moved`` in the result).
    """
    release = Path(release_dir)
    manifest = load_release(release)
    bad = check_release_files(release, manifest)
    if bad:
        raise IntegrityError(f"{release}: release files changed since the build ({bad[0]}); rebuild it",
                             path=release)
    repo = repo_id or settings.hf_repo
    version = manifest["version"]
    api = hub_api(settings)
    url = f"{settings.hub_endpoint}/datasets/{repo}/tree/{version}"

    def tagged() -> dict[str, str]:
        api.create_repo(repo, repo_type="dataset", exist_ok=True, private=private)
        return _tags(api, repo)

    tags = _call(settings, repo, version, "listing tags", tagged)
    tag_moved = False
    if version in tags:
        if _same_content(settings, repo, tags[version], manifest):
            log.info("%s@%s already published at %s", repo, version, tags[version])
            return HubResult(repo, version, tags[version], hf_uri(repo, version), url, noop=True)
        if not force:
            raise VersionConflictError(
                f"version {version} is already published on {repo} with different content "
                f"(commit {tags[version][:12]}); publish as a new version, or pass --force to move the tag",
                version=version, repo=repo)
        tag_moved = True
    sha = _call(settings, repo, version, "committing the release",
                lambda: _commit_release(api, repo, release, manifest, commit_message, commit_description))
    return _tag_release(api, settings, repo, manifest, sha, url, tag_moved=tag_moved)


def _same_content(settings: Settings, repo: str, commit: str, manifest: ReleaseManifest) -> bool:
    """Whether the release at ``commit`` has the content of ``manifest`` (same ``content_sha256``)."""
    theirs = remote_manifest(settings, repo, commit)
    return bool(theirs) and theirs.get("content_sha256") == manifest["content_sha256"]


def _commit_release(api: Any, repo: str, release: Path, manifest: ReleaseManifest, message: str | None,
                    description: str | None) -> str:
    """One commit on ``main`` holding exactly the release's files (others deleted); its sha."""
    from huggingface_hub import (  # start-up: see the module docstring
        CommitOperationAdd,
        CommitOperationDelete,
    )

    version = manifest["version"]
    head = api.repo_info(repo, repo_type="dataset", revision="main").sha
    present = set(api.list_repo_files(repo, repo_type="dataset", revision=head))
    wanted = release_paths(manifest)
    ops: list[Any] = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(release / p)) for p in wanted]
    ops += [CommitOperationDelete(path_in_repo=p) for p in sorted(present - set(wanted) - KEEP)]
    info = api.create_commit(repo, ops, commit_message=message or f"Release {version}", repo_type="dataset",
                             parent_commit=head,
                             commit_description=description or f"vmeval-hf release {version}, content "
                             f"sha256:{manifest['content_sha256']}")
    return str(info.oid)


def _tag_release(api: Any, settings: Settings, repo: str, manifest: ReleaseManifest, sha: str, url: str, *,
                 tag_moved: bool) -> HubResult:
    """Tag ``sha`` with the version (moving the tag if ``tag_moved``). If another publisher tagged
    the version first: a no-op when it holds the same content, else :class:`VersionConflictError`."""
    version = manifest["version"]

    def tag() -> None:
        if tag_moved:
            with contextlib.suppress(Exception):
                api.delete_tag(repo, tag=version, repo_type="dataset")
        api.create_tag(repo, tag=version, revision=sha, repo_type="dataset",
                       tag_message=f"vmeval-hf release {version}")

    try:
        _call(settings, repo, version, "tagging the release", tag, conflicts=False)
    except HubConflictError:
        current = _call(settings, repo, version, "listing tags", lambda: _tags(api, repo))
        if version in current and _same_content(settings, repo, current[version], manifest):
            return HubResult(repo, version, current[version], hf_uri(repo, version), url, noop=True)
        if version in current:
            raise VersionConflictError(
                f"version {version} was just published on {repo} with different content by another "
                f"publisher (commit {current[version][:12]}); publish this content as a new version",
                version=version, repo=repo) from None
        raise
    return HubResult(repo, version, sha, hf_uri(repo, version), url, tag_moved=tag_moved)


def verify_hub(*, settings: Settings, repo_id: str, version: str, expected: ReleaseManifest,
               expected_commit: str | None = None) -> list[Mismatch]:
    """Compare the tagged revision's files (sizes, sha256) with the release manifest; every difference."""
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
    with tempfile.TemporaryDirectory() as tmp:
        for path, entry in sorted(want.items()):
            got = remote.get(path)
            if got is None:
                out.append(Mismatch(f"{where}/{path}", "missing", "not in the tagged revision"))
            elif got.size != entry["size"]:
                out.append(Mismatch(f"{where}/{path}", "size", f"{got.size} bytes, expected {entry['size']}"))
            else:
                digest = got.lfs.sha256 if got.lfs else sha256_file(_call(
                    settings, repo_id, version, "downloading",
                    lambda p=path: _download(api, settings, repo_id, p, sha, Path(tmp))))
                if digest != entry["sha256"]:
                    out.append(Mismatch(f"{where}/{path}", "sha256", f"sha256 {digest[:12]}, expected "
                                        f"{entry['sha256'][:12]}"))
        if RELEASE_MANIFEST not in remote:
            out.append(Mismatch(f"{where}/{RELEASE_MANIFEST}", "missing", "not in the tagged revision"))
        else:
            theirs = remote_manifest(settings, repo_id, sha) or {}
            if theirs.get("content_sha256") != expected["content_sha256"]:
                out.append(Mismatch(f"{where}/{RELEASE_MANIFEST}", "sha256",
                                    "content_sha256 differs from the recorded release"))
    for path in sorted(set(remote) - set(want) - KEEP - {RELEASE_MANIFEST}):
        out.append(Mismatch(f"{where}/{path}", "extra", "in the tagged revision but not in the release"))
    return out


def pull_hub(*, settings: Settings, repo_id: str, version: str, dest: str | Path) -> ReleaseManifest:
    """Download the tagged release into ``dest`` and check every file's sha256 against its manifest."""
    from huggingface_hub import snapshot_download  # start-up: see the module docstring

    dest_path = Path(dest)

    def fetch() -> None:  # a retry resumes: files already in local_dir are not downloaded again
        hub_api(settings)
        snapshot_download(repo_id, repo_type="dataset", revision=version, local_dir=dest_path,
                          endpoint=settings.hub_endpoint, token=settings.hf_token)

    _call(settings, repo_id, version, "downloading the release", fetch)
    manifest = load_release(dest_path)
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
