"""On-disk storage of the sandbox Hub: content-addressed blobs, immutable commits, movable refs.

Layout under ``root`` (every JSON file carries ``schema`` and is written atomically)::

    store.json                              {"schema": 1, "kind": "vmeval-hub-store"}
    blobs/<sha256[:2]>/<sha256>             file contents, named by their sha256
    repos/<type>/<ns>/<name>/repo.json      privacy, branches, tags, pull requests
    repos/<type>/<ns>/<name>/commits/<sha>.json   one immutable commit: parent, message, full tree

A commit's tree maps every file path to ``{"sha256", "size", "lfs", "gitOid"}``. Commits are never
deleted, so every sha stays resolvable; branches move, tags do not. Every mutation runs under one
lock, because the HTTP server is threaded.

Errors are :class:`StoreError`, an :class:`~vmeval_hf.sandbox.http.HTTPError` carrying the HTTP
status and the Hub's ``X-Error-Code``; the server turns them into responses. Nothing here ever maps
a logic error to a 5xx.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._shared.fs import atomic_write_json
from .http import HTTPError

SCHEMA = 1
REPO_TYPES = ("model", "dataset", "space")
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
_LFS_SPEC = "https://git-lfs.github.com/spec/v1"
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_PR_REF = re.compile(r"^refs/pr/([1-9][0-9]*)$")

# The Hub's default .gitattributes for a new repo (trimmed): these patterns are stored with LFS.
_LFS_PATTERNS = (
    "*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.lz4 *.mds *.mlmodel "
    "*.model *.msgpack *.npy *.npz *.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar "
    "*.safetensors saved_model/**/* *.tar.* *.tar *.tflite *.tgz *.wasm *.xz *.zip *.zst *tfevents* "
    "*.mp3 *.ogg *.wav *.flac *.jpg *.jpeg *.png *.webp *.gif *.bmp *.tiff *.mp4 *.webm"
).split()
DEFAULT_GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in _LFS_PATTERNS)


class StoreError(HTTPError):
    """A request the store refuses, with the HTTP ``status``.

    ``code`` and ``commit`` go out as the ``X-Error-Code`` and ``X-Repo-Commit`` headers.
    """

    def __init__(self, status: int, message: str, code: str | None = None,
                 commit: str | None = None) -> None:
        headers: dict[str, str] = {}
        if code:
            headers["X-Error-Code"] = code
        if commit:
            headers["X-Repo-Commit"] = commit
        super().__init__(status, message, headers)
        self.code = code
        self.commit = commit


def now_iso() -> str:
    """UTC time in the Hub's format (``2024-01-31T12:00:00.000Z``)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def git_blob_oid(data: bytes) -> str:
    """The git blob sha1 of ``data`` (what ``git hash-object`` prints)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version {_LFS_SPEC}\noid sha256:{sha256}\nsize {size}\n".encode()


def file_entry(sha256: str, size: int, lfs: bool, data: bytes | None = None) -> dict[str, Any]:
    """A tree entry; ``gitOid`` is the blob sha1 of the content, or of the LFS pointer."""
    git_oid = git_blob_oid(lfs_pointer(sha256, size) if lfs else data or b"")
    return {"sha256": sha256, "size": size, "lfs": lfs, "gitOid": git_oid}


# -- validation ---------------------------------------------------------------------------------


def check_repo_id(namespace: str, name: str) -> str:
    for part in (namespace, name):
        if not _NAME.match(part) or ".." in part or part.endswith(".git"):
            raise StoreError(400, f"Invalid repo id {namespace}/{name!r}: use letters, digits, '-', '_', '.'")
    return f"{namespace}/{name}"


def check_path(path: str, allow_root: bool = False) -> str:
    """Return a clean repo path, or raise 400 on traversal, absolute paths, backslashes or NUL."""
    if path == "" and allow_root:
        return path
    bad = (
        not path or len(path) > 1024 or path.startswith("/") or "\\" in path
        or any(ord(c) < 32 for c in path)
        or any(seg in ("", ".", "..", ".git") for seg in path.split("/"))
    )
    if bad:
        raise StoreError(400, f"Invalid path in repo: {path!r}")
    return path


def check_revision(rev: str) -> str:
    bad = (
        not rev or len(rev) > 255 or rev.startswith("/") or rev.endswith("/") or "\\" in rev
        or ".." in rev or "//" in rev or any(ord(c) < 32 or c in " ~^:?*[" for c in rev)
    )
    if bad:
        raise StoreError(400, f"Invalid revision: {rev!r}")
    return rev


def check_ref_name(name: str, kind: str) -> str:
    check_revision(name)
    if name.startswith("refs/") or _HEX40.match(name) or name.endswith(".lock"):
        raise StoreError(400, f"Invalid {kind} name {name!r}: refs/... names and 40-hex shas are reserved")
    return name


# -- directory views over a flat tree --------------------------------------------------------------


def _dir_oid(tree: dict[str, dict[str, Any]], folder: str) -> str:
    prefix = folder + "/" if folder else ""
    h = hashlib.sha1(b"tree\0")
    for path in sorted(p for p in tree if p.startswith(prefix)):
        h.update(f"{path[len(prefix):]}\0{tree[path]['gitOid']}\n".encode())
    return h.hexdigest()


def is_dir(tree: dict[str, dict[str, Any]], path: str) -> bool:
    prefix = path + "/" if path else ""
    return any(p.startswith(prefix) for p in tree)


def entry_json(tree: dict[str, dict[str, Any]], path: str) -> dict[str, Any] | None:
    """The Hub's JSON for one path (file or directory) in ``tree``, or None if it is absent."""
    f = tree.get(path)
    if f is not None:
        out: dict[str, Any] = {"type": "file", "oid": f["gitOid"], "size": f["size"], "path": path}
        if f["lfs"]:
            pointer = lfs_pointer(f["sha256"], f["size"])
            out["lfs"] = {"oid": f["sha256"], "size": f["size"], "pointerSize": len(pointer)}
        return out
    if path and is_dir(tree, path):
        return {"type": "directory", "oid": _dir_oid(tree, path), "size": 0, "path": path}
    return None


def list_dir(tree: dict[str, dict[str, Any]], folder: str, recursive: bool) -> list[str]:
    """Paths (files and folders) below ``folder``: direct children, or all descendants."""
    prefix = folder + "/" if folder else ""
    found: set[str] = set()
    for path in tree:
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix):].split("/")
        if not recursive:
            found.add(prefix + parts[0])
            continue
        for i in range(1, len(parts) + 1):
            found.add(prefix + "/".join(parts[:i]))
    return sorted(found)


def lfs_by_gitattributes(tree: dict[str, dict[str, Any]], read: Any, path: str) -> bool:
    """True when ``.gitattributes`` in ``tree`` routes ``path`` to LFS (``filter=lfs``)."""
    entry = tree.get(".gitattributes")
    if entry is None:
        return False
    text = read(entry["sha256"]).decode("utf-8", "replace")
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2 or fields[0].startswith("#") or "filter=lfs" not in fields[1:]:
            continue
        pattern = fields[0]
        target = path if "/" in pattern else path.rsplit("/", 1)[-1]
        if fnmatch.fnmatchcase(target, pattern):
            return True
    return False


# -- the store ----------------------------------------------------------------------------------


class HubStore:
    """Repositories, commits, refs and blobs under one directory; safe to share between threads."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.lock = threading.RLock()
        self._repos: dict[tuple[str, str], dict[str, Any]] = {}
        self._commits: dict[str, dict[str, Any]] = {}
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(exist_ok=True)
        marker = self.root / "store.json"
        if not marker.exists():
            atomic_write_json(marker, {"schema": SCHEMA, "kind": "vmeval-hub-store"})

    def forget_cached_state(self) -> None:
        """Drop cached repo states so the next read comes from disk."""
        with self.lock:
            self._repos.clear()

    # blobs ---------------------------------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256

    def has_blob(self, sha256: str, size: int | None = None) -> bool:
        if not _HEX64.match(sha256):
            return False
        path = self.blob_path(sha256)
        return path.is_file() and (size is None or path.stat().st_size == size)

    def read_blob(self, sha256: str) -> bytes:
        return self.blob_path(sha256).read_bytes()

    def put_bytes(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        return self.put_stream([data], expected_sha256=sha)[0]

    def put_stream(self, chunks: Iterable[bytes], expected_sha256: str | None = None,
                   expected_size: int | None = None) -> tuple[str, int]:
        """Store a stream as a blob; 400 if it does not hash to ``expected_sha256``."""
        h, size = hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(dir=self.root / "tmp", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    h.update(chunk)
                    size += len(chunk)
                    fh.write(chunk)
            sha = h.hexdigest()
            if expected_sha256 is not None and sha != expected_sha256:
                raise StoreError(400, f"Uploaded content has sha256 {sha}, expected {expected_sha256}")
            if expected_size is not None and size != expected_size:
                raise StoreError(400, f"Uploaded content has {size} bytes, expected {expected_size}")
            target = self.blob_path(sha)
            target.parent.mkdir(exist_ok=True)
            os.replace(tmp, target)
            return sha, size
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def regular_entry(self, data: bytes) -> dict[str, Any]:
        return file_entry(self.put_bytes(data), len(data), lfs=False, data=data)

    def lfs_entry(self, sha256: str, size: int | None, path: str) -> dict[str, Any]:
        if not self.has_blob(sha256):
            raise StoreError(422, f"LFS object {sha256} for {path!r} was never uploaded: "
                                  "upload it through the LFS batch endpoint before committing")
        real = self.blob_path(sha256).stat().st_size
        if size is not None and size != real:
            raise StoreError(422, f"LFS object {sha256} for {path!r} has {real} bytes, not {size}")
        return file_entry(sha256, real, lfs=True)

    # repos ---------------------------------------------------------------------------------------

    def _repo_dir(self, repo_type: str, repo_id: str) -> Path:
        return self.root / "repos" / repo_type / repo_id

    def _save_repo(self, repo: dict[str, Any]) -> None:
        atomic_write_json(self._repo_dir(repo["type"], repo["id"]) / "repo.json", repo)

    def get_repo(self, repo_type: str, repo_id: str) -> dict[str, Any]:
        """The repo's state (refs, privacy); 404 ``RepoNotFound`` if it does not exist."""
        with self.lock:
            repo = self._repos.get((repo_type, repo_id))
            if repo is None:
                path = self._repo_dir(repo_type, repo_id) / "repo.json"
                if not path.is_file():
                    raise StoreError(404, f"Repository {repo_id} not found", code="RepoNotFound")
                repo = json.loads(path.read_text("utf-8"))
                self._repos[(repo_type, repo_id)] = repo
            return repo

    def create_repo(self, repo_type: str, repo_id: str, private: bool) -> bool:
        """Create the repo with an initial commit holding ``.gitattributes``; False if it exists."""
        with self.lock:
            try:
                self.get_repo(repo_type, repo_id)
                return False
            except StoreError:
                pass
            stamp = now_iso()
            repo = {"schema": SCHEMA, "type": repo_type, "id": repo_id, "private": private,
                    "createdAt": stamp, "counter": 0, "branches": {}, "tags": {}, "prs": {}}
            data = DEFAULT_GITATTRIBUTES.encode()
            tree = {".gitattributes": self.regular_entry(data)}
            sha = self._write_commit(repo, None, tree, "initial commit", "")
            repo["branches"]["main"] = sha
            self._save_repo(repo)
            self._repos[(repo_type, repo_id)] = repo
            return True

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        with self.lock:
            self.get_repo(repo_type, repo_id)
            trash = self.root / "tmp" / f"deleted-{uuid.uuid4().hex}"
            os.replace(self._repo_dir(repo_type, repo_id), trash)
            self._repos.pop((repo_type, repo_id), None)
        shutil.rmtree(trash, ignore_errors=True)

    def set_private(self, repo_type: str, repo_id: str, private: bool) -> None:
        with self.lock:
            repo = self.get_repo(repo_type, repo_id)
            repo["private"] = private
            self._save_repo(repo)

    # commits and revisions -----------------------------------------------------------------------

    def _write_commit(self, repo: dict[str, Any], parent: str | None, tree: dict[str, Any],
                      summary: str, description: str) -> str:
        repo["counter"] += 1
        tree_id = hashlib.sha1(json.dumps(tree, sort_keys=True).encode()).hexdigest()
        seed = f"{repo['type']}/{repo['id']}\n{parent}\n{tree_id}\n{summary}\n{description}\n{repo['counter']}\n{time.time_ns()}"
        sha = hashlib.sha1(seed.encode()).hexdigest()
        commit = {"schema": SCHEMA, "id": sha, "parent": parent, "title": summary,
                  "message": description, "date": now_iso(), "authors": ["vmeval"], "tree": tree}
        atomic_write_json(self._repo_dir(repo["type"], repo["id"]) / "commits" / f"{sha}.json", commit)
        self._commits[sha] = commit
        return sha

    def get_commit(self, repo: dict[str, Any], sha: str) -> dict[str, Any]:
        commit = self._commits.get(sha)
        if commit is None:
            path = self._repo_dir(repo["type"], repo["id"]) / "commits" / f"{sha}.json"
            commit = json.loads(path.read_text("utf-8"))
            self._commits[sha] = commit
        return commit

    def _has_commit(self, repo: dict[str, Any], sha: str) -> bool:
        return (self._repo_dir(repo["type"], repo["id"]) / "commits" / f"{sha}.json").is_file()

    def resolve(self, repo: dict[str, Any], rev: str) -> str:
        """The commit sha a branch, tag, ``refs/...`` name or full sha points at."""
        check_revision(rev)
        with self.lock:
            if rev.startswith("refs/heads/"):
                rev = rev[len("refs/heads/"):]
            elif rev.startswith("refs/tags/") and rev[len("refs/tags/"):] in repo["tags"]:
                return repo["tags"][rev[len("refs/tags/"):]]["commit"]
            if rev in repo["branches"]:
                return repo["branches"][rev]
            if rev in repo["tags"]:
                return repo["tags"][rev]["commit"]
            pr = _PR_REF.match(rev)
            if pr and pr.group(1) in repo["prs"]:
                return repo["prs"][pr.group(1)]
            if _HEX40.match(rev) and self._has_commit(repo, rev):
                return rev
        raise StoreError(404, f"Invalid rev id: {rev}", code="RevisionNotFound")

    def tree_at(self, repo: dict[str, Any], rev: str) -> tuple[str, dict[str, dict[str, Any]]]:
        sha = self.resolve(repo, rev)
        return sha, self.get_commit(repo, sha)["tree"]

    def history(self, repo: dict[str, Any], sha: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        current: str | None = sha
        while current is not None:
            commit = self.get_commit(repo, current)
            out.append(commit)
            current = commit["parent"]
        return out

    def last_commit(self, repo: dict[str, Any], sha: str, path: str) -> dict[str, Any]:
        """The newest commit (from ``sha`` back) that changed ``path``."""
        def signature(tree: dict[str, Any]) -> str | None:
            entry = tree.get(path)
            return entry["gitOid"] if entry else (_dir_oid(tree, path) if is_dir(tree, path) else None)

        commits = self.history(repo, sha)
        for newer, older in zip(commits, commits[1:], strict=False):
            if signature(newer["tree"]) != signature(older["tree"]):
                return newer
        return commits[-1]

    def commit(self, repo_type: str, repo_id: str, rev: str, ops: list[tuple[str, str, Any]],
               summary: str, description: str = "", parent: str | None = None,
               create_pr: bool = False) -> tuple[str, int | None]:
        """Apply ``ops`` (``("add", path, entry)``, ``("delete", path, None)``,
        ``("delete_folder", path, None)``) on branch ``rev`` as one new commit.

        Returns ``(sha, pr_number)``; ``pr_number`` is set when ``create_pr`` opened a pull request.
        """
        with self.lock:
            repo = self.get_repo(repo_type, repo_id)
            branch = rev[len("refs/heads/"):] if rev.startswith("refs/heads/") else rev
            pr = _PR_REF.match(branch)
            if branch in repo["branches"]:
                head = repo["branches"][branch]
            elif pr and pr.group(1) in repo["prs"]:
                head = repo["prs"][pr.group(1)]
            elif branch in repo["tags"] or rev.startswith("refs/tags/"):
                raise StoreError(400, f"Cannot commit to tag {branch!r}: commits go to branches only")
            else:
                sha_target = self._has_commit(repo, rev) if _HEX40.match(rev) else False
                if sha_target:
                    raise StoreError(400, f"Cannot commit to commit {rev}: commits go to branches only")
                raise StoreError(404, f"Branch {rev!r} not found", code="RevisionNotFound")
            if parent and not (len(parent) >= 5 and head.startswith(parent.lower())):
                raise StoreError(412, f"A commit has happened since {parent}: the head of {rev!r} is "
                                      f"now {head}. Fetch the new head and retry.")
            tree = dict(self.get_commit(repo, head)["tree"])
            for kind, path, entry in ops:
                if kind == "add":
                    tree[path] = entry
                elif kind == "delete":
                    if tree.pop(path, None) is None:
                        raise StoreError(404, f"Cannot delete {path!r}: no such file", code="EntryNotFound", commit=head)
                else:
                    doomed = [p for p in tree if p.startswith(path + "/")]
                    if not doomed:
                        raise StoreError(404, f"Cannot delete folder {path!r}: no such folder", code="EntryNotFound", commit=head)
                    for p in doomed:
                        del tree[p]
            for path in tree:
                parts = path.split("/")
                for i in range(1, len(parts)):
                    if "/".join(parts[:i]) in tree:
                        raise StoreError(400, f"{path!r} conflicts with the file {'/'.join(parts[:i])!r}")
            sha = self._write_commit(repo, head, tree, summary, description)
            number = None
            if create_pr:
                number = len(repo["prs"]) + 1
                repo["prs"][str(number)] = sha
            elif pr:
                repo["prs"][pr.group(1)] = sha
            else:
                repo["branches"][branch] = sha
            self._save_repo(repo)
            return sha, number

    # refs ----------------------------------------------------------------------------------------

    def create_tag(self, repo_type: str, repo_id: str, tag: str, rev: str, message: str = "") -> str:
        with self.lock:
            repo = self.get_repo(repo_type, repo_id)
            check_ref_name(tag, "tag")
            sha = self.resolve(repo, rev)
            if tag in repo["tags"]:
                raise StoreError(409, f"Tag {tag!r} already exists")
            if tag in repo["branches"]:
                raise StoreError(409, f"A branch named {tag!r} exists: pick another tag name")
            repo["tags"][tag] = {"commit": sha, "message": message, "date": now_iso()}
            self._save_repo(repo)
            return sha

    def delete_tag(self, repo_type: str, repo_id: str, tag: str) -> None:
        with self.lock:
            repo = self.get_repo(repo_type, repo_id)
            if repo["tags"].pop(tag, None) is None:
                raise StoreError(404, f"Tag {tag!r} not found", code="RevisionNotFound")
            self._save_repo(repo)

    def create_branch(self, repo_type: str, repo_id: str, branch: str, start: str | None) -> str:
        with self.lock:
            repo = self.get_repo(repo_type, repo_id)
            check_ref_name(branch, "branch")
            sha = self.resolve(repo, start or "main")
            if branch in repo["branches"]:
                raise StoreError(409, f"Branch {branch!r} already exists")
            if branch in repo["tags"]:
                raise StoreError(409, f"A tag named {branch!r} exists: pick another branch name")
            repo["branches"][branch] = sha
            self._save_repo(repo)
            return sha

    def delete_branch(self, repo_type: str, repo_id: str, branch: str) -> None:
        with self.lock:
            repo = self.get_repo(repo_type, repo_id)
            if branch == "main":
                raise StoreError(400, "Cannot delete the default branch 'main'")
            if repo["branches"].pop(branch, None) is None:
                raise StoreError(404, f"Branch {branch!r} not found", code="RevisionNotFound")
            self._save_repo(repo)

    def refs(self, repo: dict[str, Any], include_prs: bool) -> dict[str, Any]:
        with self.lock:
            def ref(name: str, full: str, sha: str) -> dict[str, str]:
                return {"name": name, "ref": full, "targetCommit": sha}

            out: dict[str, Any] = {
                "branches": [ref(b, f"refs/heads/{b}", s) for b, s in sorted(repo["branches"].items())],
                "tags": [ref(t, f"refs/tags/{t}", v["commit"]) for t, v in sorted(repo["tags"].items())],
                "converts": [],
            }
            if include_prs:
                out["pullRequests"] = [ref(f"refs/pr/{n}", f"refs/pr/{n}", s) for n, s in sorted(repo["prs"].items())]
            return out

    # preupload -----------------------------------------------------------------------------------

    def upload_mode(self, tree: dict[str, dict[str, Any]], path: str, size: int, sample_b64: str) -> str:
        """"lfs" for .gitattributes LFS patterns, files over 10 MiB and binary samples; else "regular"."""
        try:
            sample = base64.b64decode(sample_b64 or "", validate=False)
        except ValueError:
            sample = b""
        if size > LFS_SIZE_THRESHOLD or b"\0" in sample or lfs_by_gitattributes(tree, self.read_blob, path):
            return "lfs"
        return "regular"
