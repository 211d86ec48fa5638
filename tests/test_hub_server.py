"""The sandbox Hub, driven by the unmodified ``huggingface_hub`` and ``datasets`` clients over HTTP.

Raw ``http.client`` requests appear only where no client would send the request (path traversal,
oversized or chunked bodies, forged LFS links).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    HfFileSystem,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.support.hub import HUB_TOKEN, disable_parquet_export
from vmeval_hf.sandbox import HubServer

DS = "dataset"
README = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
dataset_info:
  features:
  - name: id
    dtype: string
  - name: score
    dtype: int64
  splits:
  - name: train
    num_bytes: 60
    num_examples: 3
---
# Tiny test dataset
"""


def parquet_bytes(rows: int = 3) -> bytes:
    table = pa.table({"id": [f"q{i}" for i in range(rows)], "score": list(range(rows))})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def raw(server: HubServer, method: str, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None, token: str | None = HUB_TOKEN,
        conn: http.client.HTTPConnection | None = None) -> tuple[int, Any, bytes]:
    """One HTTP request exactly as written (no client-side quoting or validation)."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    hdrs = dict(headers or {})
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=body, headers=hdrs, encode_chunked="Transfer-Encoding" in hdrs)
    resp = conn.getresponse()
    data = resp.read()
    if own:
        conn.close()
    return resp.status, resp.headers, data


def ndjson(*lines: dict[str, Any]) -> bytes:
    return b"\n".join(json.dumps(line).encode() for line in lines)


@pytest.fixture
def api() -> HfApi:
    return HfApi()


@pytest.fixture
def published(api: HfApi, hub_repo: str) -> dict[str, Any]:
    """A repo with a Parquet shard (LFS), a README (regular) and a text file, tagged 1.0."""
    api.create_repo(hub_repo, repo_type=DS)
    shard = parquet_bytes()
    info = api.create_commit(hub_repo, [
        CommitOperationAdd("data/train-00000-of-00001.parquet", shard),
        CommitOperationAdd("README.md", README.encode()),
        CommitOperationAdd("notes/hello.txt", b"hello, sandbox\n"),
    ], commit_message="first version", repo_type=DS)
    api.create_tag(hub_repo, tag="1.0", revision=info.oid, repo_type=DS)
    return {"repo": hub_repo, "sha": info.oid, "shard": shard}


# -- repos and commits ----------------------------------------------------------------------------


def test_create_repo_twice(api: HfApi, hub_repo: str, hub_server: HubServer) -> None:
    url = api.create_repo(hub_repo, repo_type=DS)
    assert url == f"{hub_server.url}/datasets/{hub_repo}"
    assert api.create_repo(hub_repo, repo_type=DS, exist_ok=True) == url
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo(hub_repo, repo_type=DS)
    assert exc.value.response.status_code == 409
    info = api.dataset_info(hub_repo)
    assert [s.rfilename for s in info.siblings] == [".gitattributes"]
    assert len(info.sha) == 40 and info.private is False


def test_commit_uses_lfs_for_parquet_and_inline_for_text(api: HfApi, published: dict[str, Any]) -> None:
    repo = published["repo"]
    entries = {e.path: e for e in api.list_repo_tree(repo, repo_type=DS, recursive=True)}
    shard = entries["data/train-00000-of-00001.parquet"]
    assert shard.lfs is not None and shard.lfs.sha256 == hashlib.sha256(published["shard"]).hexdigest()
    assert shard.size == len(published["shard"])
    assert entries["README.md"].lfs is None and entries["notes/hello.txt"].lfs is None
    text = b"hello, sandbox\n"
    assert entries["notes/hello.txt"].blob_id == hashlib.sha1(b"blob %d\0" % len(text) + text).hexdigest()
    assert {"data", "notes"} <= set(entries)
    assert all(getattr(e, "xet_hash", None) is None for e in entries.values())


def test_identical_recommit_makes_no_commit(api: HfApi, published: dict[str, Any]) -> None:
    repo = published["repo"]
    before = api.list_repo_commits(repo, repo_type=DS)
    again = api.create_commit(repo, [
        CommitOperationAdd("data/train-00000-of-00001.parquet", published["shard"]),
        CommitOperationAdd("README.md", README.encode()),
        CommitOperationAdd("notes/hello.txt", b"hello, sandbox\n"),
    ], commit_message="same again", repo_type=DS)
    assert again.oid == published["sha"]
    assert len(api.list_repo_commits(repo, repo_type=DS)) == len(before) == 2


def test_deletes_file_and_folder(api: HfApi, published: dict[str, Any]) -> None:
    repo = published["repo"]
    api.create_commit(repo, [CommitOperationDelete("notes/"), CommitOperationDelete("README.md")],
                      commit_message="prune", repo_type=DS)
    assert set(api.list_repo_files(repo, repo_type=DS)) == {".gitattributes", "data/train-00000-of-00001.parquet"}
    # The tag still sees the old tree.
    assert "notes/hello.txt" in api.list_repo_files(repo, repo_type=DS, revision="1.0")
    with pytest.raises(EntryNotFoundError):
        api.delete_file("README.md", repo, repo_type=DS)


def test_parent_commit_mismatch_is_rejected(api: HfApi, published: dict[str, Any]) -> None:
    repo = published["repo"]
    initial = api.list_repo_commits(repo, repo_type=DS)[-1].commit_id
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_commit(repo, [CommitOperationAdd("x.txt", b"x")], commit_message="stale",
                          repo_type=DS, parent_commit=initial)
    assert exc.value.response.status_code == 412
    ok = api.create_commit(repo, [CommitOperationAdd("x.txt", b"x")], commit_message="fresh",
                           repo_type=DS, parent_commit=published["sha"])
    assert api.dataset_info(repo).sha == ok.oid


def test_commit_targets_branches_only(api: HfApi, published: dict[str, Any]) -> None:
    repo = published["repo"]
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_commit(repo, [CommitOperationAdd("y.txt", b"y")], commit_message="on tag",
                          repo_type=DS, revision="1.0")
    assert exc.value.response.status_code == 400
    with pytest.raises(RevisionNotFoundError):
        api.create_commit(repo, [CommitOperationAdd("y.txt", b"y")], commit_message="nowhere",
                          repo_type=DS, revision="no-such-branch")
    api.create_branch(repo, branch="dev", repo_type=DS)
    dev = api.create_commit(repo, [CommitOperationAdd("y.txt", b"y")], commit_message="on dev",
                            repo_type=DS, revision="dev")
    assert api.dataset_info(repo).sha == published["sha"]
    assert api.dataset_info(repo, revision="dev").sha == dev.oid
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_branch(repo, branch="1.0", repo_type=DS)
    assert exc.value.response.status_code == 409
    pr = api.create_commit(repo, [CommitOperationAdd("z.txt", b"z")], commit_message="proposal",
                           repo_type=DS, create_pr=True)
    assert pr.pr_num == 1
    refs = api.list_repo_refs(repo, repo_type=DS, include_pull_requests=True)
    assert [(r.ref, r.target_commit) for r in refs.pull_requests] == [("refs/pr/1", pr.oid)]
    assert api.file_exists(repo, "z.txt", repo_type=DS, revision="refs/pr/1")
    assert not api.file_exists(repo, "z.txt", repo_type=DS)


@pytest.mark.parametrize(("card", "why"), [(b"---\nfoo: [unclosed\n---\n", "Invalid YAML"),
                                          (b"---\n- a\n- b\n---\n", "must be a YAML mapping")])
def test_invalid_readme_yaml_is_refused(api: HfApi, hub_repo: str, card: bytes, why: str) -> None:
    api.create_repo(hub_repo, repo_type=DS)
    with pytest.raises(ValueError, match=f"(?s)Invalid metadata in README.md.*{why}"):
        api.create_commit(hub_repo, [CommitOperationAdd("README.md", card)], commit_message="bad card", repo_type=DS)
    assert not api.file_exists(hub_repo, "README.md", repo_type=DS)
    api.create_commit(hub_repo, [CommitOperationAdd("README.md", b"---\nlicense: mit\ntags: [a, b]\n---\n# ok\n")],
                      commit_message="good card", repo_type=DS)
    assert api.file_exists(hub_repo, "README.md", repo_type=DS)


def test_concurrent_uploads(api: HfApi, hub_repo: str) -> None:
    api.create_repo(hub_repo, repo_type=DS)
    errors: list[BaseException] = []

    def upload(i: int) -> None:
        try:
            api.create_commit(hub_repo, [
                CommitOperationAdd(f"data/part-{i}.parquet", parquet_bytes(i + 1)),
                CommitOperationAdd(f"notes/{i}.txt", f"note {i}\n".encode()),
            ], commit_message=f"part {i}", repo_type=DS)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    files = set(api.list_repo_files(hub_repo, repo_type=DS))
    assert {f"data/part-{i}.parquet" for i in range(6)} | {f"notes/{i}.txt" for i in range(6)} <= files
    assert len(api.list_repo_commits(hub_repo, repo_type=DS)) == 7


# -- refs and reads -------------------------------------------------------------------------------


def test_tags_refs_and_downloads(api: HfApi, published: dict[str, Any], fresh_hf_cache: Path) -> None:
    repo, sha = published["repo"], published["sha"]
    newer = api.create_commit(repo, [CommitOperationAdd("data/train-00000-of-00001.parquet", parquet_bytes(5))],
                              commit_message="second version", repo_type=DS)
    refs = api.list_repo_refs(repo, repo_type=DS)
    assert [(t.name, t.ref, t.target_commit) for t in refs.tags] == [("1.0", "refs/tags/1.0", sha)]
    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", newer.oid)]
    assert refs.converts == []
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_tag(repo, tag="1.0", revision=newer.oid, repo_type=DS)
    assert exc.value.response.status_code == 409
    api.create_tag(repo, tag="1.0", revision=newer.oid, repo_type=DS, exist_ok=True)  # does not move it
    at_tag = hf_hub_download(repo, "data/train-00000-of-00001.parquet", repo_type=DS, revision="1.0")
    at_sha = hf_hub_download(repo, "data/train-00000-of-00001.parquet", repo_type=DS, revision=sha)
    assert Path(at_tag).read_bytes() == Path(at_sha).read_bytes() == published["shard"]
    assert Path(at_tag).is_relative_to(fresh_hf_cache)
    snapshot = Path(snapshot_download(repo, repo_type=DS, revision="1.0"))
    assert snapshot.name == sha and (snapshot / "notes" / "hello.txt").read_bytes() == b"hello, sandbox\n"
    api.delete_tag(repo, tag="1.0", repo_type=DS)
    assert api.list_repo_refs(repo, repo_type=DS).tags == []
    with pytest.raises(RevisionNotFoundError):
        api.delete_tag(repo, tag="1.0", repo_type=DS)
    # Commits stay resolvable by sha after their tag is gone.
    assert api.revision_exists(repo, sha, repo_type=DS)
    assert not api.revision_exists(repo, "1.0", repo_type=DS)


def test_range_reads(published: dict[str, Any], hub_server: HubServer) -> None:
    repo = published["repo"]
    fs = HfFileSystem()
    with fs.open(f"datasets/{repo}@1.0/notes/hello.txt", "rb", block_size=4) as fh:
        fh.seek(7)
        assert fh.read(7) == b"sandbox"
    path = f"/datasets/{repo}/resolve/1.0/notes/hello.txt"
    status, headers, body = raw(hub_server, "GET", path, headers={"Range": "bytes=7-999"})
    assert (status, body, headers["Content-Range"]) == (206, b"sandbox\n", "bytes 7-14/15")
    status, _, body = raw(hub_server, "GET", path, headers={"Range": "bytes=-3"})
    assert (status, body) == (206, b"ox\n")
    status, headers, _ = raw(hub_server, "GET", path, headers={"Range": "bytes=15-"})
    assert (status, headers["Content-Range"]) == (416, "bytes */15")


def test_resolve_headers(published: dict[str, Any], hub_server: HubServer) -> None:
    repo, sha, shard = published["repo"], published["sha"], published["shard"]
    status, headers, body = raw(hub_server, "HEAD", f"/datasets/{repo}/resolve/1.0/data/train-00000-of-00001.parquet")
    oid = hashlib.sha256(shard).hexdigest()
    assert status == 200 and body == b""
    assert headers["X-Repo-Commit"] == sha and headers["Accept-Ranges"] == "bytes"
    assert headers["ETag"] == headers["X-Linked-Etag"] == f'"{oid}"'
    assert headers["X-Linked-Size"] == headers["Content-Length"] == str(len(shard))
    status, headers, body = raw(hub_server, "GET", f"/datasets/{repo}/resolve/{sha}/missing.txt")
    assert status == 404 and headers["X-Error-Code"] == "EntryNotFound" and headers["X-Repo-Commit"] == sha
    assert "error" in json.loads(body)
    status, headers, _ = raw(hub_server, "GET", f"/datasets/{repo}/resolve/refs%2Fconvert%2Fparquet/README.md")
    assert status == 404 and headers["X-Error-Code"] == "RevisionNotFound"
    status, headers, _ = raw(hub_server, "GET", "/datasets/test-org/no-such-repo/resolve/main/README.md")
    assert status == 404 and headers["X-Error-Code"] == "RepoNotFound"
    assert raw(hub_server, "GET", "/api/agent-harnesses")[0] == 404


def test_tree_and_paths_info(api: HfApi, published: dict[str, Any]) -> None:
    repo = published["repo"]
    top = {e.path for e in api.list_repo_tree(repo, repo_type=DS, revision="1.0")}
    assert top == {".gitattributes", "README.md", "data", "notes"}
    below = [e.path for e in api.list_repo_tree(repo, "notes", repo_type=DS, revision="1.0")]
    assert below == ["notes/hello.txt"]
    one = list(api.list_repo_tree(repo, "notes/hello.txt", repo_type=DS))
    assert [e.path for e in one] == ["notes/hello.txt"]
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree(repo, "nope", repo_type=DS))
    infos = api.get_paths_info(repo, ["README.md", "data", "nope"], repo_type=DS, revision="1.0")
    assert [(type(i).__name__, i.path) for i in infos] == [("RepoFile", "README.md"), ("RepoFolder", "data")]


def test_existence_checks_and_not_found_errors(api: HfApi, published: dict[str, Any], fresh_hf_cache: Path) -> None:
    repo = published["repo"]
    assert api.file_exists(repo, "README.md", repo_type=DS, revision="1.0")
    assert not api.file_exists(repo, "nope.md", repo_type=DS)
    assert api.revision_exists(repo, "1.0", repo_type=DS)
    assert not api.revision_exists(repo, "2.0", repo_type=DS)
    assert api.repo_exists(repo, repo_type=DS) and not api.repo_exists("test-org/absent", repo_type=DS)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo, "README.md", repo_type=DS, revision="2.0")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo, "nope.md", repo_type=DS, revision="1.0")
    with pytest.raises(RepositoryNotFoundError):
        api.dataset_info("test-org/absent")


# -- security -------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["wrong-token", False])
def test_writes_need_the_token(api: HfApi, published: dict[str, Any], token: str | bool) -> None:
    repo = published["repo"]
    intruder = HfApi(token=token)
    before = (api.list_repo_refs(repo, repo_type=DS), api.list_repo_files(repo, repo_type=DS))
    attempts = [
        lambda: intruder.create_commit(repo, [CommitOperationAdd("evil.txt", b"x"),
                                              CommitOperationAdd("evil.parquet", parquet_bytes())],
                                       commit_message="evil", repo_type=DS),
        lambda: intruder.create_tag(repo, tag="evil", repo_type=DS),
        lambda: intruder.delete_tag(repo, tag="1.0", repo_type=DS),
        lambda: intruder.create_branch(repo, branch="evil", repo_type=DS),
        lambda: intruder.delete_file("README.md", repo, repo_type=DS),
        lambda: intruder.create_repo("test-org/evil-" + repo[-8:], repo_type=DS),
    ]
    for attempt in attempts:
        with pytest.raises(HfHubHTTPError) as exc:
            attempt()
        assert exc.value.response.status_code == 401
    assert (api.list_repo_refs(repo, repo_type=DS), api.list_repo_files(repo, repo_type=DS)) == before
    assert not api.repo_exists("test-org/evil-" + repo[-8:], repo_type=DS)


def test_private_repo_needs_the_token(api: HfApi, hub_repo: str, fresh_hf_cache: Path) -> None:
    api.create_repo(hub_repo, repo_type=DS, private=True)
    api.upload_file(path_or_fileobj=b"secret\n", path_in_repo="secret.txt", repo_id=hub_repo, repo_type=DS)
    assert api.dataset_info(hub_repo).private is True
    for token in (False, "wrong-token"):
        with pytest.raises(RepositoryNotFoundError):
            HfApi(token=token).dataset_info(hub_repo)
        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download(hub_repo, "secret.txt", repo_type=DS, token=token)
    assert Path(hf_hub_download(hub_repo, "secret.txt", repo_type=DS)).read_bytes() == b"secret\n"


@pytest.mark.parametrize("path", [
    "/datasets/test-org/{name}/resolve/main/..%2F..%2Fstore.json",
    "/datasets/test-org/{name}/resolve/main/notes/../README.md",
    "/datasets/test-org/{name}/resolve/main/notes%5Chello.txt",
    "/datasets/test-org/{name}/resolve/main/%2Fetc%2Fpasswd",
    "/datasets/test-org/{name}/resolve/main/README.md%00",
    "/datasets/test-org/{name}/resolve/..%2F..%2Fmain/README.md",
    "/datasets/test-org/..%2F..%2F{name}/resolve/main/README.md",
    "/datasets/../{name}/resolve/main/README.md",
    "/api/datasets/test-org/{name}/tree/main/..%2Fnotes",
    "/api/datasets/..%2Fx/{name}/refs",
])
def test_path_traversal_is_rejected(published: dict[str, Any], hub_server: HubServer, path: str) -> None:
    status, _, _ = raw(hub_server, "GET", path.format(name=published["repo"].split("/")[1]))
    assert status == 400


@pytest.mark.parametrize("bad", ["../evil.txt", "/abs.txt", "a\\b.txt", "a/./b.txt", "nul\0.txt"])
def test_commit_with_bad_path_is_rejected(api: HfApi, published: dict[str, Any], hub_server: HubServer,
                                          bad: str) -> None:
    repo = published["repo"]
    body = ndjson({"key": "header", "value": {"summary": "evil"}},
                  {"key": "file", "value": {"path": bad, "content": "eA==", "encoding": "base64"}})
    status, _, _ = raw(hub_server, "POST", f"/api/datasets/{repo}/commit/main", body,
                       {"Content-Type": "application/x-ndjson"})
    assert status == 400
    assert api.dataset_info(repo).sha == published["sha"]


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/api/repos/create", b"[1, 2]"),
    ("POST", "/api/repos/create", b"{not json"),
    ("POST", "/api/datasets/{repo}/preupload/main", b'{"files": [1]}'),
    ("POST", "/api/datasets/{repo}/preupload/main", b'{"files": [{"path": "a", "size": "big"}]}'),
    ("POST", "/api/datasets/{repo}/commit/main", b'{"key": "header", "value": []}'),
    ("POST", "/api/datasets/{repo}/commit/main", b'{"key": "file", "value": {"path": "a", "content": "%%"}}'),
])
def test_malformed_requests_get_400_not_5xx(published: dict[str, Any], hub_server: HubServer,
                                             method: str, path: str, body: bytes) -> None:
    status, _, _ = raw(hub_server, method, path.format(repo=published["repo"]), body)
    assert status == 400


def test_lfs_file_must_be_uploaded_first(api: HfApi, published: dict[str, Any], hub_server: HubServer) -> None:
    repo = published["repo"]
    oid = hashlib.sha256(b"never uploaded").hexdigest()
    body = ndjson({"key": "header", "value": {"summary": "dangling"}},
                  {"key": "lfsFile", "value": {"path": "ghost.parquet", "algo": "sha256", "oid": oid, "size": 14}})
    status, _, data = raw(hub_server, "POST", f"/api/datasets/{repo}/commit/main", body)
    assert status == 422 and b"never uploaded" in data
    assert api.dataset_info(repo).sha == published["sha"]


def test_lfs_links_are_signed(hub_server: HubServer, published: dict[str, Any]) -> None:
    repo = published["repo"]
    data = b"some large object"
    oid = hashlib.sha256(data).hexdigest()
    batch = json.dumps({"operation": "upload", "transfers": ["basic"], "hash_algo": "sha256",
                        "objects": [{"oid": oid, "size": len(data)}]}).encode()
    assert raw(hub_server, "POST", f"/datasets/{repo}.git/info/lfs/objects/batch", batch, token="wrong")[0] == 401
    status, _, body = raw(hub_server, "POST", f"/datasets/{repo}.git/info/lfs/objects/batch", batch)
    href = json.loads(body)["objects"][0]["actions"]["upload"]["href"]
    target = href.removeprefix(hub_server.url)
    assert raw(hub_server, "PUT", target.replace("sig=", "sig=0"), data, token=None)[0] == 403
    assert raw(hub_server, "PUT", target, b"other bytes here!", token=None)[0] == 400
    assert raw(hub_server, "PUT", target, data, token=None)[0] == 200
    status, _, body = raw(hub_server, "POST", f"/datasets/{repo}.git/info/lfs/objects/batch", batch)
    assert "actions" not in json.loads(body)["objects"][0]  # already stored


def test_body_cap_and_chunked_bodies(tmp_path: Path) -> None:
    with HubServer(tmp_path / "store", token=HUB_TOKEN, max_body_bytes=4096) as server:
        assert raw(server, "POST", "/api/repos/create",
                   json.dumps({"name": "capped", "organization": "test-org", "type": DS}).encode())[0] == 200
        big = ndjson({"key": "header", "value": {"summary": "big"}},
                     {"key": "file", "value": {"path": "big.txt", "encoding": "base64",
                                               "content": base64.b64encode(b"x" * 8000).decode()}})
        assert raw(server, "POST", "/api/datasets/test-org/capped/commit/main", big)[0] == 413

        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        small = ndjson({"key": "header", "value": {"summary": "chunked"}},
                       {"key": "file", "value": {"path": "c.txt", "encoding": "base64", "content": "Yw=="}})
        status, _, body = raw(server, "POST", "/api/datasets/test-org/capped/commit/main",
                              iter([small[:10], small[10:]]), {"Transfer-Encoding": "chunked"}, conn=conn)
        assert status == 200 and len(json.loads(body)["commitOid"]) == 40
        status, _, _ = raw(server, "POST", "/api/datasets/test-org/capped/commit/main",
                           iter([big[:3000], big[3000:]]), {"Transfer-Encoding": "chunked"}, conn=conn)
        assert status == 413
        conn.close()
        # Keep-alive: several requests on one connection.
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        for _ in range(3):
            assert raw(server, "GET", "/datasets/test-org/capped/resolve/main/c.txt", conn=conn)[2] == b"c"
        conn.close()


def test_connections_send_without_delay(tmp_path: Path) -> None:
    """Every kept-alive connection has TCP_NODELAY: a response's head and body, written apart, are
    not held back for the client's delayed acknowledgement (up to 40 ms a request on Linux)."""
    with HubServer(tmp_path / "store") as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            for _ in range(2):
                conn.request("GET", "/api/datasets/test-org/none/refs")
                conn.getresponse().read()
            assert server._httpd is not None
            with server._httpd._conns_lock:
                held = list(server._httpd._conns)
            assert held, "the connection was not kept alive"
            assert all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in held)
        finally:
            conn.close()


def test_loopback_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="127.0.0.1"):
        HubServer(tmp_path, host="0.0.0.0")


# -- persistence and datasets ---------------------------------------------------------------------


def test_restart_keeps_repos_tags_and_commits(tmp_path: Path) -> None:
    storage, repo = tmp_path / "store", "test-org/durable"
    with HubServer(storage, token=HUB_TOKEN) as server:
        api = HfApi(endpoint=server.url, token=HUB_TOKEN)
        api.create_repo(repo, repo_type=DS)
        first = api.create_commit(repo, [CommitOperationAdd("data/a.parquet", parquet_bytes())],
                                  commit_message="v1", repo_type=DS)
        api.create_tag(repo, tag="1.0", revision=first.oid, repo_type=DS)
        second = api.create_commit(repo, [CommitOperationAdd("data/a.parquet", parquet_bytes(4))],
                                   commit_message="v2", repo_type=DS)
        with pytest.raises(RuntimeError, match="already served"):
            HubServer(storage).start()
    with HubServer(storage, token=HUB_TOKEN) as server:
        api = HfApi(endpoint=server.url, token=HUB_TOKEN)
        refs = api.list_repo_refs(repo, repo_type=DS)
        assert [(t.name, t.target_commit) for t in refs.tags] == [("1.0", first.oid)]
        assert [(b.name, b.target_commit) for b in refs.branches] == [("main", second.oid)]
        assert [c.commit_id for c in api.list_repo_commits(repo, repo_type=DS)][:2] == [second.oid, first.oid]
        got = api.hf_hub_download(repo, "data/a.parquet", repo_type=DS, revision=first.oid,
                                  cache_dir=tmp_path / "cache")
        assert Path(got).read_bytes() == parquet_bytes()


def test_load_dataset_at_tag(api: HfApi, published: dict[str, Any], fresh_hf_cache: Path,
                             hub_server: HubServer) -> None:
    import datasets

    disable_parquet_export()
    hosts: list[str] = []

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if recording and event in ("socket.connect", "socket.getaddrinfo"):
            target = args[1] if event == "socket.connect" else args[0]
            hosts.append(str(target[0] if isinstance(target, tuple) else target))

    recording, served = True, hub_server.requests
    sys.addaudithook(audit)
    try:
        ds = datasets.load_dataset(published["repo"], revision="1.0")
        streamed = datasets.load_dataset(published["repo"], revision="1.0", streaming=True)
        rows = list(streamed["train"])
    finally:
        recording = False
    assert ds["train"].num_rows == 3 and ds["train"][0] == {"id": "q0", "score": 0}
    assert Path(ds["train"].cache_files[0]["filename"]).is_relative_to(fresh_hf_cache)
    assert rows == [{"id": f"q{i}", "score": i} for i in range(3)]
    # Everything went to the sandbox: no download-count HEAD, no datasets-server lookup.
    assert set(hosts) <= {"127.0.0.1"} and hub_server.requests - served >= 8
    api.delete_tag(published["repo"], tag="1.0", repo_type=DS)
    with pytest.raises(datasets.exceptions.DatasetNotFoundError):
        datasets.load_dataset(published["repo"], revision="1.0")
