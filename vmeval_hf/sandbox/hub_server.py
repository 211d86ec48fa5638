"""A local, loopback-only HTTP server that the unmodified ``huggingface_hub`` and ``datasets``
clients accept as a Hugging Face Hub (set ``HF_ENDPOINT`` to :attr:`HubServer.url`).

It speaks the slice of the Hub protocol those clients use to create dataset repos, commit files
(inline or through classic Git LFS; run clients with ``HF_HUB_DISABLE_XET=1``), tag, list and
download them, with ``X-Error-Code`` semantics the clients map to their exception classes.
Storage lives in :mod:`vmeval_hf.sandbox.hub_store`, the HTTP plumbing (bodies, byte ranges,
error responses) in :mod:`vmeval_hf.sandbox.http`.

Routes are matched on the raw request target, split on ``/`` and then percent-decoded segment by
segment, so revisions such as ``refs%2Fconvert%2Fparquet`` stay one segment.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from filelock import FileLock, Timeout

from .http import _BaseHandler, _HTTPServer, _Reply
from .hub_store import (
    HubStore,
    StoreError,
    check_path,
    check_repo_id,
    check_revision,
    entry_json,
    is_dir,
    list_dir,
)

__all__ = ["HubServer"]

log = logging.getLogger(__name__)

USERNAME = "vmeval"
_URL_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)^---[ \t]*$", re.DOTALL | re.MULTILINE)
_PAGE = 1000
_TRAFFIC = ("request_bytes", "body_bytes", "lfs_bytes", "inline_bytes", "commits")
_PAGE_EXPANDED = 50


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes")


class HubServer:
    """A Hub-compatible server on 127.0.0.1, storing repos under ``storage_dir``.

    With ``token`` set, every write and every read of a private repo needs
    ``Authorization: Bearer <token>``. Use as a context manager, or ``start()``/``stop()``.
    """

    def __init__(self, storage_dir: str | Path, token: str | None = None, host: str = "127.0.0.1",
                 port: int = 0, max_body_bytes: int = 2 * 1024**3) -> None:
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError(f"HubServer binds to 127.0.0.1 only, not {host!r}")
        self.store = HubStore(storage_dir)
        self.token = token
        self.host = "127.0.0.1"
        self.port = port
        self.max_body_bytes = max_body_bytes
        self._secret = secrets.token_bytes(32)
        self._count = 0
        self._count_lock = threading.Lock()
        self._traffic = dict.fromkeys(_TRAFFIC, 0)
        self._httpd: _HubHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._dir_lock: FileLock | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("HubServer is not running: call start() first")
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> int:
        """How many HTTP requests the server has handled since it was created."""
        return self._count

    @property
    def traffic(self) -> dict[str, int]:
        """What clients have sent since the server was created, in bytes (and ``requests``):
        ``request_bytes`` (request lines, headers and bodies), ``body_bytes`` (bodies alone),
        ``lfs_bytes`` (LFS object uploads), ``inline_bytes`` (file contents inlined in commits,
        decoded), ``commits`` (commits made). File content sent = ``lfs_bytes + inline_bytes``."""
        with self._count_lock:
            return {"requests": self._count, **self._traffic}

    def start(self) -> HubServer:
        if self._httpd is not None:
            return self
        # One live server per storage dir: each keeps the repo state in memory.
        dir_lock = FileLock(self.store.root / "server.lock")
        try:
            dir_lock.acquire(timeout=0)
        except Timeout:
            raise RuntimeError(f"{self.store.root} is already served by another HubServer; "
                               "stop it first or use another storage_dir") from None
        self._dir_lock = dir_lock
        self.store.forget_cached_state()
        try:
            self._httpd = _HubHTTPServer((self.host, self.port), _Handler)
        except OSError:
            dir_lock.release()
            raise
        self._httpd.hub = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"hub-server-{self.port}",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        log.info("Hub sandbox serving %s at %s", self.store.root, self.url)
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._dir_lock is not None:
            self._dir_lock.release()
            self._dir_lock = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _counted(self, **traffic: int) -> None:
        with self._count_lock:
            self._count += traffic.pop("requests", 0)
            for key, n in traffic.items():
                self._traffic[key] += n

    def repo_url(self, repo_type: str, repo_id: str) -> str:
        return f"{self.url}/{_PREFIX[repo_type]}{repo_id}"

    def sign(self, oid: str, size: int, expires: int) -> str:
        return hmac.new(self._secret, f"{oid}:{size}:{expires}".encode(), hashlib.sha256).hexdigest()

    def lfs_href(self, oid: str, size: int, action: str = "") -> str:
        expires = int(time.time()) + 3600
        query = urlencode({"size": size, "exp": expires, "sig": self.sign(oid, size, expires)})
        return f"{self.url}/__lfs/{oid}{action}?{query}"


class _HubHTTPServer(_HTTPServer):
    """The HTTP server of one :class:`HubServer`, which its handlers reach as ``hub``."""

    hub: HubServer
    logger = log


class _Handler(_BaseHandler):
    """The Hub's routes, on the generic plumbing of :class:`~vmeval_hf.sandbox.http._BaseHandler`."""

    server_version = "vmeval-hub-sandbox/1"
    service = "Hub sandbox"
    logger = log
    server: _HubHTTPServer

    @property
    def hub(self) -> HubServer:
        return self.server.hub

    def _count_request(self) -> None:
        # the request line and headers as sent: "<line>\r\n", "<key>: <value>\r\n" each, "\r\n"
        head = len(self.requestline) + 4 + sum(len(k) + len(v) + 4 for k, v in self.headers.items())
        self.hub._counted(requests=1, request_bytes=head)

    def _count_body(self, nbytes: int) -> None:
        kind = "lfs_bytes" if self.method == "PUT" and self.raw_path.startswith("/__lfs/") else None
        self.hub._counted(request_bytes=nbytes, body_bytes=nbytes, **({kind: nbytes} if kind else {}))

    def _body_limit(self) -> int:
        return self.hub.max_body_bytes

    # auth ----------------------------------------------------------------------------------------

    def _token_ok(self) -> bool:
        header = self.headers.get("Authorization", "")
        if self.hub.token is None:
            return True
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.hub.token.encode())

    def _require_write(self) -> None:
        if not self._token_ok():
            message = ("Invalid credentials in Authorization header" if self.headers.get("Authorization")
                       else "A write token is required: send Authorization: Bearer <token>")
            raise StoreError(401, message)

    def _repo(self, repo_type: str, ns: str, name: str, write: bool = False) -> dict[str, Any]:
        if write:
            self._require_write()
        repo = self.hub.store.get_repo(repo_type, check_repo_id(ns, name))
        if repo["private"] and not self._token_ok():
            raise StoreError(401, f"Repository {repo['id']} not found or you lack access to it",
                             code="RepoNotFound")
        return repo

    # routing -------------------------------------------------------------------------------------

    def _route(self, method: str, seg: list[str]) -> None:
        if seg[:1] == ["api"]:
            return self._route_api(method, seg[1:])
        if seg[:1] == ["__lfs"] and len(seg) in (2, 3):
            return self._lfs_transfer(method, seg[1], verify=seg[2:] == ["verify"])
        repo_type = "model"
        if seg[:1] in (["datasets"], ["spaces"]):
            repo_type, seg = _URL_TYPES[seg[0]], seg[1:]
        if len(seg) == 6 and seg[1].endswith(".git") and seg[2:] == ["info", "lfs", "objects", "batch"] \
                and method == "POST":
            return self._lfs_batch(repo_type, seg[0], seg[1][: -len(".git")])
        if len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(repo_type, seg[0], seg[1], seg[3], "/".join(seg[4:]))
        raise _Reply(404, {"error": f"Not found: {method} {self.raw_path}"})

    def _route_api(self, method: str, seg: list[str]) -> None:
        route = (method, *seg)
        if route == ("POST", "repos", "create"):
            return self._create_repo()
        if route == ("DELETE", "repos", "delete"):
            return self._delete_repo()
        if route == ("POST", "validate-yaml"):
            return self._validate_yaml()
        if route == ("GET", "whoami-v2"):
            return self._whoami()
        if len(seg) >= 3 and seg[0] in _URL_TYPES:
            repo_type, ns, name, rest = _URL_TYPES[seg[0]], seg[1], seg[2], seg[3:]
            action, args = (rest[0], rest[1:]) if rest else ("", [])
            handler = {
                ("GET", ""): self._info, ("GET", "revision"): self._info,
                ("POST", "preupload"): self._preupload, ("POST", "commit"): self._commit,
                ("POST", "tag"): self._create_tag, ("DELETE", "tag"): self._delete_tag,
                ("POST", "branch"): self._create_branch, ("DELETE", "branch"): self._delete_branch,
                ("GET", "refs"): self._refs, ("GET", "tree"): self._tree,
                ("POST", "paths-info"): self._paths_info, ("GET", "commits"): self._commits,
                ("PUT", "settings"): self._settings,
            }.get((method, action))
            if handler is not None and bool(args) == (action not in ("", "refs", "settings")):
                return handler(repo_type, ns, name, args)
        raise _Reply(404, {"error": f"Not found: {method} {self.raw_path}"})

    # repos ---------------------------------------------------------------------------------------

    def _create_repo(self) -> None:
        self._require_write()
        body = self._json()
        repo_type = body.get("type") or "model"
        if repo_type not in _PREFIX:
            raise StoreError(400, f"Invalid repo type {repo_type!r}")
        repo_id = check_repo_id(body.get("organization") or USERNAME, str(body.get("name") or ""))
        private = bool(body.get("private")) or body.get("visibility") == "private"
        url = self.hub.repo_url(repo_type, repo_id)
        if not self.hub.store.create_repo(repo_type, repo_id, private):
            raise _Reply(409, {"error": f"You already created this {repo_type} repo", "url": url})
        raise _Reply(200, {"url": url, "name": repo_id, "id": repo_id})

    def _delete_repo(self) -> None:
        self._require_write()
        body = self._json()
        repo_type = body.get("type") or "model"
        repo_id = check_repo_id(body.get("organization") or USERNAME, str(body.get("name") or ""))
        self.hub.store.delete_repo(repo_type if repo_type in _PREFIX else "model", repo_id)
        raise _Reply(200, {})

    def _settings(self, repo_type: str, ns: str, name: str, _: list[str]) -> None:
        repo = self._repo(repo_type, ns, name, write=True)
        body = self._json()
        if "private" in body or "visibility" in body:
            private = bool(body.get("private")) or body.get("visibility") == "private"
            self.hub.store.set_private(repo_type, repo["id"], private)
        raise _Reply(200, {})

    def _whoami(self) -> None:
        if self.hub.token is not None and not self._token_ok():
            raise StoreError(401, "Invalid credentials in Authorization header")
        raise _Reply(200, {"type": "user", "id": "0" * 24, "name": USERNAME, "fullname": "vmeval sandbox",
                           "orgs": [], "auth": {"type": "access_token",
                                                "accessToken": {"displayName": "sandbox", "role": "write"}}})

    def _validate_yaml(self) -> None:
        body = self._json()
        match = _FRONT_MATTER.match(str(body.get("content") or ""))
        errors: list[dict[str, str]] = []
        if match:
            import yaml  # start-up: PyYAML ~20 ms; only this one endpoint parses YAML

            try:  # libyaml's parser where PyYAML has it: a card's YAML in 4 ms, not 33 ms in pure Python
                meta = yaml.load(match.group(1), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
                if meta is not None and not isinstance(meta, dict):
                    errors.append({"message": "README.md metadata must be a YAML mapping"})
            except yaml.YAMLError as exc:
                errors.append({"message": f"Invalid YAML in README.md metadata: {exc}"})
        raise _Reply(400 if errors else 200, {"errors": errors, "warnings": []})

    def _info(self, repo_type: str, ns: str, name: str, args: list[str]) -> None:
        rev = "/".join(args)
        repo = self._repo(repo_type, ns, name)
        store = self.hub.store
        sha = store.resolve(repo, rev or "main")
        commit = store.get_commit(repo, sha)
        blobs = _truthy(self._param("blobs"))
        siblings = []
        for path, f in sorted(commit["tree"].items()):
            item: dict[str, Any] = {"rfilename": path}
            if blobs:
                item.update(size=f["size"], blobId=f["gitOid"])
                if f["lfs"]:
                    entry = entry_json(commit["tree"], path) or {}
                    item["lfs"] = {"size": f["size"], "sha256": f["sha256"],
                                   "pointerSize": entry["lfs"]["pointerSize"]}
            siblings.append(item)
        raise _Reply(200, {"_id": repo["id"], "id": repo["id"], "author": repo["id"].split("/")[0],
                           "sha": sha, "private": repo["private"], "gated": False, "disabled": False,
                           "downloads": 0, "likes": 0, "tags": [], "createdAt": repo["createdAt"],
                           "lastModified": commit["date"], "siblings": siblings})

    # uploads -------------------------------------------------------------------------------------

    def _preupload(self, repo_type: str, ns: str, name: str, args: list[str]) -> None:
        rev = "/".join(args)
        repo = self._repo(repo_type, ns, name, write=True)
        body = self._json()
        _, tree = self.hub.store.tree_at(repo, rev)
        files = []
        for item in body.get("files") or []:
            path = check_path(str(item.get("path", "")))
            mode = self.hub.store.upload_mode(tree, path, int(item.get("size") or 0), item.get("sample") or "")
            existing = tree.get(path)
            oid = None if existing is None else existing["sha256" if existing["lfs"] else "gitOid"]
            files.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        raise _Reply(200, {"files": files, "commitOid": self.hub.store.resolve(repo, rev)})

    def _lfs_batch(self, repo_type: str, ns: str, name: str) -> None:
        self._repo(repo_type, ns, name, write=True)
        body = self._json()
        if body.get("operation") != "upload":
            raise StoreError(400, "Only the LFS 'upload' operation is supported")
        objects = []
        for obj in body.get("objects") or []:
            oid, size = str(obj.get("oid", "")), obj.get("size")
            if not _HEX64.match(oid) or not isinstance(size, int) or size < 0:
                objects.append({"oid": oid, "size": size or 0,
                                "error": {"code": 422, "message": "oid must be 64 hex digits and size >= 0"}})
            elif self.hub.store.has_blob(oid, size):
                objects.append({"oid": oid, "size": size})
            else:
                objects.append({"oid": oid, "size": size, "authenticated": True, "actions": {
                    "upload": {"href": self.hub.lfs_href(oid, size)},
                    "verify": {"href": self.hub.lfs_href(oid, size, "/verify")}}})
        raise _Reply(200, {"transfer": "basic", "objects": objects},
                     {"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_transfer(self, method: str, oid: str, verify: bool) -> None:
        try:
            size, expires = int(self._param("size")), int(self._param("exp"))
        except ValueError:
            raise StoreError(403, "LFS link is missing its signature") from None
        expected = self.hub.sign(oid, size, expires)
        if not hmac.compare_digest(expected, self._param("sig")) or expires < time.time():
            raise StoreError(403, "LFS link signature is invalid or expired: ask the batch endpoint again")
        if verify and method == "POST":
            self._body()
            if not self.hub.store.has_blob(oid, size):
                raise StoreError(404, f"LFS object {oid} ({size} bytes) is not on the server")
            raise _Reply(200, {"oid": oid, "size": size})
        if not verify and method == "PUT":
            if not self.hub.store.has_blob(oid, size):
                self.hub.store.put_stream(self._iter_body(), expected_sha256=oid, expected_size=size)
            else:
                for _ in self._iter_body():
                    pass
            raise _Reply(200, {})
        raise _Reply(405, {"error": f"{method} not allowed here"})

    def _commit(self, repo_type: str, ns: str, name: str, args: list[str]) -> None:
        rev = "/".join(args)
        repo = self._repo(repo_type, ns, name, write=True)
        check_revision(rev)
        store = self.hub.store
        header: dict[str, Any] | None = None
        ops: list[tuple[str, str, Any]] = []
        for line in self._body().splitlines():
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                key, value = item["key"], item["value"]
            except (ValueError, KeyError, TypeError):
                raise StoreError(400, "Commit body must be NDJSON lines of {key, value}") from None
            if key == "header":
                header = value
            elif key == "file":
                path = check_path(str(value.get("path", "")))
                try:
                    data = base64.b64decode(value.get("content", ""), validate=True) \
                        if value.get("encoding") == "base64" else str(value.get("content", "")).encode()
                except (binascii.Error, ValueError):
                    raise StoreError(400, f"Content of {path!r} is not valid base64") from None
                self.hub._counted(inline_bytes=len(data))
                ops.append(("add", path, store.regular_entry(data)))
            elif key == "lfsFile":
                path = check_path(str(value.get("path", "")))
                oid = str(value.get("oid", ""))
                if value.get("algo", "sha256") != "sha256" or not _HEX64.match(oid):
                    raise StoreError(400, f"lfsFile {path!r} needs a sha256 oid (64 lowercase hex)")
                ops.append(("add", path, store.lfs_entry(oid, value.get("size"), path)))
            elif key in ("deletedFile", "deletedFolder"):
                path = check_path(str(value.get("path", "")).rstrip("/"))
                ops.append(("delete" if key == "deletedFile" else "delete_folder", path, None))
            else:
                raise StoreError(400, f"Unsupported commit operation {key!r}")
        if not header or not str(header.get("summary") or "").strip():
            raise StoreError(400, "Commit needs a header line with a non-empty summary")
        parent = header.get("parentCommit")
        sha, pr = store.commit(repo_type, repo["id"], rev, ops, str(header["summary"]),
                               str(header.get("description") or ""), parent=parent,
                               create_pr=_truthy(self._param("create_pr")))
        self.hub._counted(commits=1)
        url = self.hub.repo_url(repo_type, repo["id"])
        body = {"success": True, "commitOid": sha, "commitUrl": f"{url}/commit/{sha}",
                "commitMessage": header["summary"], "hookOutput": ""}
        if pr is not None:
            body["pullRequestUrl"] = f"{url}/discussions/{pr}"
        raise _Reply(200, body)

    # refs ----------------------------------------------------------------------------------------

    def _create_tag(self, repo_type: str, ns: str, name: str, args: list[str]) -> None:
        rev = "/".join(args)
        repo = self._repo(repo_type, ns, name, write=True)
        body = self._json()
        sha = self.hub.store.create_tag(repo_type, repo["id"], str(body.get("tag") or ""), rev,
                                        str(body.get("message") or ""))
        raise _Reply(200, {"name": body["tag"], "ref": f"refs/tags/{body['tag']}", "targetCommit": sha})

    def _delete_tag(self, repo_type: str, ns: str, name: str, args: list[str]) -> None:
        tag = "/".join(args)
        repo = self._repo(repo_type, ns, name, write=True)
        self.hub.store.delete_tag(repo_type, repo["id"], tag)
        raise _Reply(200, {})

    def _create_branch(self, repo_type: str, ns: str, name: str, args: list[str]) -> None:
        branch = "/".join(args)
        repo = self._repo(repo_type, ns, name, write=True)
        body = self._json()
        sha = self.hub.store.create_branch(repo_type, repo["id"], branch, body.get("startingPoint"))
        raise _Reply(200, {"name": branch, "ref": f"refs/heads/{branch}", "targetCommit": sha})

    def _delete_branch(self, repo_type: str, ns: str, name: str, args: list[str]) -> None:
        branch = "/".join(args)
        repo = self._repo(repo_type, ns, name, write=True)
        self.hub.store.delete_branch(repo_type, repo["id"], branch)
        raise _Reply(200, {})

    def _refs(self, repo_type: str, ns: str, name: str, _: list[str]) -> None:
        repo = self._repo(repo_type, ns, name)
        raise _Reply(200, self.hub.store.refs(repo, include_prs=_truthy(self._param("include_prs"))))

    def _commits(self, repo_type: str, ns: str, name: str, args: list[str]) -> None:
        rev = "/".join(args)
        repo = self._repo(repo_type, ns, name)
        store = self.hub.store
        formatted = "formatted" in self.query.get("expand[]", [])
        items = []
        for c in store.history(repo, store.resolve(repo, rev)):
            item = {"id": c["id"], "title": c["title"], "message": c["message"], "date": c["date"],
                    "authors": [{"user": a} for a in c["authors"]]}
            if formatted:
                item["formatted"] = {"title": c["title"], "message": c["message"]}
            items.append(item)
        raise _Reply(200, items)

    # reads ---------------------------------------------------------------------------------------

    def _expanded(self, repo: dict[str, Any], sha: str, entry: dict[str, Any]) -> dict[str, Any]:
        last = self.hub.store.last_commit(repo, sha, entry["path"])
        return {**entry, "lastCommit": {"id": last["id"], "title": last["title"], "date": last["date"]}}

    def _tree(self, repo_type: str, ns: str, name: str, args: list[str]) -> None:
        repo = self._repo(repo_type, ns, name)
        rev, path = args[0], check_path("/".join(args[1:]), allow_root=True)
        sha, tree = self.hub.store.tree_at(repo, rev)
        if path in tree:
            paths = [path]
        elif path == "" or is_dir(tree, path):
            paths = list_dir(tree, path, recursive=_truthy(self._param("recursive")))
        else:
            raise StoreError(404, f"{path!r} does not exist at {rev}", code="EntryNotFound", commit=sha)
        expand = _truthy(self._param("expand"))
        page = _PAGE_EXPANDED if expand else _PAGE
        try:
            start = max(0, int(self._param("cursor", "0")))
        except ValueError:
            raise StoreError(400, "Invalid cursor") from None
        entries = [entry_json(tree, p) for p in paths[start:start + page]]
        if expand:
            entries = [self._expanded(repo, sha, e) for e in entries if e]
        headers = {"X-Repo-Commit": sha}
        if start + page < len(paths):
            query = {k: v[0] for k, v in self.query.items()}
            query["cursor"] = str(start + page)
            headers["Link"] = f'<{self.hub.url}{self.raw_path}?{urlencode(query)}>; rel="next"'
        raise _Reply(200, entries, headers)

    def _paths_info(self, repo_type: str, ns: str, name: str, args: list[str]) -> None:
        rev = "/".join(args)
        repo = self._repo(repo_type, ns, name)
        raw = self._body().decode("utf-8", "replace")
        if self.headers.get("Content-Type", "").startswith("application/json"):
            form = json.loads(raw or "{}")
            paths, expand = form.get("paths") or [], _truthy(form.get("expand"))
        else:
            form = parse_qs(raw, keep_blank_values=True)
            paths, expand = form.get("paths", []), _truthy((form.get("expand") or ["false"])[0])
        if len(paths) > 1000:
            raise StoreError(400, "At most 1000 paths per paths-info request")
        sha, tree = self.hub.store.tree_at(repo, rev)
        out = []
        for path in dict.fromkeys(check_path(str(p).rstrip("/")) for p in paths):
            entry = entry_json(tree, path)
            if entry is not None:
                out.append(self._expanded(repo, sha, entry) if expand else entry)
        raise _Reply(200, out, {"X-Repo-Commit": sha})

    def _resolve(self, repo_type: str, ns: str, name: str, rev: str, path: str) -> None:
        repo = self._repo(repo_type, ns, name)
        path = check_path(path)
        sha, tree = self.hub.store.tree_at(repo, rev)
        f = tree.get(path)
        if f is None:
            raise StoreError(404, f"{path!r} does not exist at {rev}", code="EntryNotFound", commit=sha)
        size = f["size"]
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes",
                   "ETag": f'"{f["sha256"] if f["lfs"] else f["gitOid"]}"',
                   "Content-Disposition": f"inline; filename*=UTF-8''{quote(path.rsplit('/', 1)[-1])}"}
        if f["lfs"]:
            headers.update({"X-Linked-Etag": f'"{f["sha256"]}"', "X-Linked-Size": str(size)})
        self._send_file(self.hub.store.blob_path(f["sha256"]), size, headers)
