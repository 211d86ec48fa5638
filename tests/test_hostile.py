"""Hostile input: broken or malicious question trees, and hostile requests to the sandbox Hub.

Every tree in :data:`CORPUS` is a valid tree (chess x3, maze x2) with one thing broken. Each must
be rejected by ``validate`` and by ``publish --log`` with exit 1 and a message naming the broken
path, before a single request reaches either server (both sit behind counting proxies, and the
Hub servers count what they handle), with no release folder and no log written.
Finer-grained checks of each finding (codes, wording) live in ``tests/test_questions.py``.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest
from click.testing import CliRunner

from tests.support.pngs import png_bomb, png_bytes
from tests.support.privileges import without_dac_override
from tests.support.reliability import (
    AWS_KEY_SECRET,
    AWS_SECRET_SECRET,
    HUB_SECRET,
    Stage,
    error_lines,
)
from tests.support.s3 import TEST_REGION, raw_client
from tests.support.trees import make_tree
from vmeval_hf.cli import cli
from vmeval_hf.config import Settings
from vmeval_hf.sandbox import HubServer

Q = Path("questions")
CHESS1 = Q / "chess_task" / "chess_0001"


# -- the corpus --------------------------------------------------------------------------------------


def _meta(data: Path, folder: Path = CHESS1) -> Path:
    return data / folder / "question_metadata.json"


def _edit_meta(data: Path, **fields: object) -> None:
    path = _meta(data)
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta.update(fields)
    path.write_text(json.dumps(meta), encoding="utf-8")


def _rename(data: Path, new: str, folder: Path = CHESS1) -> Path:
    target = data / folder.parent / new
    os.rename(data / folder, target)
    return target.relative_to(data)


def _write(rel: Path | str, content: bytes) -> Callable[[Path], Path]:
    def corrupt(data: Path) -> Path:
        (data / rel).write_bytes(content)
        return Path(rel)

    return corrupt


def _remove(rel: Path) -> Callable[[Path], Path]:
    def corrupt(data: Path) -> Path:
        (data / rel).unlink()
        return rel

    return corrupt


def _truncate(rel: Path) -> Callable[[Path], Path]:
    def corrupt(data: Path) -> Path:
        raw = (data / rel).read_bytes()
        (data / rel).write_bytes(raw[: len(raw) // 2])
        return rel

    return corrupt


def _symlink_out(data: Path) -> Path:
    outside = data.parent / "outside.png"
    outside.write_bytes(png_bytes(99))
    (data / CHESS1 / "first_frame.png").unlink()
    (data / CHESS1 / "first_frame.png").symlink_to(outside)
    return CHESS1 / "first_frame.png"


def _symlink_etc(data: Path) -> Path:
    (data / CHESS1 / "prompt.txt").unlink()
    (data / CHESS1 / "prompt.txt").symlink_to("/etc/passwd")
    return CHESS1 / "prompt.txt"


def _symlink_loop(data: Path) -> Path:
    (data / CHESS1 / "prompt.txt").unlink()
    (data / CHESS1 / "prompt.txt").symlink_to("loop.txt")
    (data / CHESS1 / "loop.txt").symlink_to("prompt.txt")
    return CHESS1 / "prompt.txt"


def _symlinked_question(data: Path) -> Path:
    elsewhere = data.parent / "elsewhere" / "chess_0001"
    shutil.move(str(data / CHESS1), elsewhere)
    (data / CHESS1).symlink_to(elsewhere, target_is_directory=True)
    return CHESS1


def _fifo(data: Path) -> Path:
    (data / CHESS1 / "prompt.txt").unlink()
    os.mkfifo(data / CHESS1 / "prompt.txt")
    return CHESS1 / "prompt.txt"


def _duplicate_across_domains(data: Path) -> Path:
    shutil.copytree(data / CHESS1, data / Q / "maze_task" / "chess_0001")
    return Q / "maze_task" / "chess_0001"


def _manifest_lists_missing(data: Path) -> Path:
    path = data / Q / "vmeval_dataset.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["questions"].append({"id": "chess_0099", "domain": "chess", "difficulty": "easy",
                             "path": "chess_task/chess_0099"})
    doc["total_pairs"] = len(doc["questions"])
    path.write_text(json.dumps(doc), encoding="utf-8")
    return Q / "vmeval_dataset.json"


def _lookalike_domain(data: Path) -> Path:
    target = data / Q / "\u0441hess_task"  # Cyrillic es: looks like "chess_task"
    os.rename(data / Q / "chess_task", target)
    return target.relative_to(data)


def _outputs_escape(data: Path) -> Path:
    (data / "outputs" / "exp1").mkdir(parents=True)
    (data / "outputs" / "exp1" / "leak").symlink_to("/etc", target_is_directory=True)
    return Path("outputs") / "exp1" / "leak"


def _empty_tree(data: Path) -> Path:
    for domain in ("chess_task", "maze_task"):
        shutil.rmtree(data / Q / domain)
    return Q


CORPUS: dict[str, Callable[[Path], Path]] = {
    "missing-first-frame": _remove(CHESS1 / "first_frame.png"),
    "missing-prompt": _remove(CHESS1 / "prompt.txt"),
    "missing-final-frame-classic": _remove(CHESS1 / "final_frame.png"),
    "truncated-png": _truncate(CHESS1 / "first_frame.png"),
    "truncated-metadata": _truncate(CHESS1 / "question_metadata.json"),
    "jpeg-named-png": _write(CHESS1 / "first_frame.png", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64),
    "text-named-png": _write(CHESS1 / "final_frame.png", b"<html>not an image</html>"),
    "png-decompression-bomb": _write(CHESS1 / "first_frame.png", png_bomb()),
    "huge-prompt": _write(CHESS1 / "prompt.txt", b"Solve it. " * 100_000),
    "invalid-utf8-prompt": _write(CHESS1 / "prompt.txt", b"Solve \xff\xfe\xc3\x28 this"),
    "empty-prompt": _write(CHESS1 / "prompt.txt", b" \n\t "),
    "invalid-json": _write(CHESS1 / "question_metadata.json", b'{"id": "chess_0001", '),
    "deeply-nested-json": _write(CHESS1 / "question_metadata.json", b"[" * 200_000 + b"]" * 200_000),
    "json-not-an-object": _write(CHESS1 / "question_metadata.json", b'["chess_0001"]'),
    "id-with-dotdot": lambda d: (_edit_meta(d, id="../../../etc/passwd"), CHESS1 / "question_metadata.json")[1],
    "id-with-slash": lambda d: (_edit_meta(d, id="chess_task/chess_0001"), CHESS1 / "question_metadata.json")[1],
    "folder-with-dotdot": lambda d: _rename(d, "chess_00..01"),
    "folder-with-space": lambda d: _rename(d, "chess_0001 "),
    "folder-with-fullwidth-digits": lambda d: _rename(d, "chess_\uff10\uff10\uff10\uff11"),
    "domain-with-cyrillic-lookalike": _lookalike_domain,
    "symlink-out-of-tree": _symlink_out,
    "symlink-to-etc-passwd": _symlink_etc,
    "symlink-loop": _symlink_loop,
    "symlinked-question-folder": _symlinked_question,
    "fifo-as-prompt": _fifo,
    "duplicate-id-across-domains": _duplicate_across_domains,
    "manifest-lists-missing-question": _manifest_lists_missing,
    "manifest-invalid-json": _write(Q / "vmeval_dataset.json", b'{"questions": [ '),
    "outputs-symlink-escape": _outputs_escape,
    "empty-tree": _empty_tree,
}


# -- running the commands -----------------------------------------------------------------------------


@pytest.fixture
def hostile(stage: Stage, hub_server: HubServer, monkeypatch: pytest.MonkeyPatch) -> Stage:
    """The stage, with the environment of an in-process CLI pointing at its proxies."""
    monkeypatch.chdir(stage.work)
    for key in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in {"HF_ENDPOINT": stage.hub_proxy.url, "HF_TOKEN": HUB_SECRET,
                       "AWS_ENDPOINT_URL": stage.s3_proxy.url, "AWS_ACCESS_KEY_ID": AWS_KEY_SECRET,
                       "AWS_SECRET_ACCESS_KEY": AWS_SECRET_SECRET, "AWS_DEFAULT_REGION": TEST_REGION,
                       "S3_BUCKET": stage.bucket, "VMEVAL_HF_REPO": stage.repo}.items():
        monkeypatch.setenv(key, value)
    return stage


def _traffic(stage: Stage, hub_server: HubServer) -> tuple[int, int, int, int]:
    return (stage.hub_proxy.count(), stage.s3_proxy.count(), stage.hub.requests, hub_server.requests)


def _assert_rejected(stage: Stage, named: Path, validate: tuple[int, str, str], publish: tuple[int, str, str],
                     validate_json: list[dict[str, str]]) -> None:
    target = str(stage.data / named)
    code, out, _ = validate
    assert code == 1, out
    errors = [p for p in validate_json if p["severity"] == "error"]
    assert any(p["path"] == target for p in errors), (target, validate_json)
    assert named.name in out  # the human report names the file or folder too
    code, out, err = publish
    assert code == 1, (out, err)
    lines = error_lines(err)
    assert len(lines) == 1 and target in lines[0], (target, err)
    assert "Traceback" not in err
    assert not (stage.data / "releases").exists() and not stage.log_path.exists()


@pytest.mark.parametrize("case", list(CORPUS))
def test_hostile_tree_is_rejected_naming_the_path_before_any_request(hostile: Stage, hub_server: HubServer,
                                                                     case: str) -> None:
    named = CORPUS[case](hostile.data)
    before = _traffic(hostile, hub_server)
    runner = CliRunner()
    validate = runner.invoke(cli, ["validate", "--data-dir", str(hostile.data)])
    as_json = runner.invoke(cli, ["validate", "--data-dir", str(hostile.data), "--json"])
    publish = runner.invoke(cli, ["publish", "--data-dir", str(hostile.data), "--log", "--date", "20250115"])
    _assert_rejected(hostile, named, (validate.exit_code, validate.stdout, validate.stderr),
                     (publish.exit_code, publish.stdout, publish.stderr), json.loads(as_json.stdout))
    assert _traffic(hostile, hub_server) == before == (0, 0, before[2], before[3])


def test_unreadable_file_is_rejected_naming_the_path_before_any_request(stage: Stage,
                                                                        hub_server: HubServer) -> None:
    """Run as a process that cannot override file permissions, even when the suite runs as root."""
    named = CHESS1 / "prompt.txt"
    (stage.data / named).chmod(0)
    before = _traffic(stage, hub_server)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(stage.argv(*args), cwd=stage.work, env=stage.env(), capture_output=True, text=True,
                              timeout=120, preexec_fn=without_dac_override)

    try:
        probe = subprocess.run([sys.executable, "-c", f"open({str(stage.data / named)!r}).read()"],
                               capture_output=True, text=True, timeout=60, preexec_fn=without_dac_override)
        assert "PermissionError" in probe.stderr  # such a process really cannot read the file
        as_json = run("validate", "--data-dir", str(stage.data), "--json")
        validate = run("validate", "--data-dir", str(stage.data))
        publish = run("publish", "--data-dir", str(stage.data), "--log", "--date", "20250115")
    finally:
        (stage.data / named).chmod(stat.S_IRUSR | stat.S_IWUSR)
    problems = json.loads(as_json.stdout)
    assert any(p["code"] == "unreadable" for p in problems), problems
    _assert_rejected(stage, named, (validate.returncode, validate.stdout, validate.stderr),
                     (publish.returncode, publish.stdout, publish.stderr), problems)
    assert _traffic(stage, hub_server) == before == (0, 0, before[2], before[3])


def test_the_corpus_is_at_least_twenty_trees() -> None:
    assert len(CORPUS) + 1 >= 20  # + the unreadable file above


# -- hostile requests to the sandbox Hub ------------------------------------------------------------------
# Already covered in tests/test_hub_server.py: writes without / with a wrong token (401, nothing
# changes), traversal in file paths and repo ids of reads (400), bad paths in commits, the body cap
# (413) and loopback-only binding of HubServer. Here: what those leave out.


def _raw(server: HubServer, method: str, path: str, body: bytes = b"", token: str | None = HUB_SECRET,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        sent = {"Content-Type": "application/json", **(headers or {})}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=body or None, headers=sent)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@dataclass
class Published:
    hub: HubServer
    repo: str
    settings: Settings

    def tags(self) -> dict[str, str]:
        from vmeval_hf.hub import hub_api

        refs = hub_api(self.settings).list_repo_refs(self.repo, repo_type="dataset")
        return {t.name: t.target_commit for t in refs.tags}

    def files(self) -> list[str]:
        from vmeval_hf.hub import hub_api

        return sorted(hub_api(self.settings).list_repo_files(self.repo, repo_type="dataset"))

    def stored(self) -> list[str]:
        return sorted(str(p) for p in self.hub.store.root.rglob("*"))


@pytest.fixture(scope="module")
def published(reliability_hub: HubServer, tmp_path_factory: pytest.TempPathFactory) -> Published:
    """A repo on the reliability Hub holding version 1.0 (Hub side only)."""
    from vmeval_hf.publish import publish_version

    data = make_tree(tmp_path_factory.mktemp("safety") / "data", {"chess": 2})
    settings = Settings(hf_token=HUB_SECRET, hf_endpoint=reliability_hub.url,
                        hf_repo=f"rel-org/safety-{uuid.uuid4().hex[:8]}")
    publish_version(data, settings=settings, s3=False)
    return Published(reliability_hub, settings.hf_repo, settings)


@pytest.mark.parametrize("rev", ["..%2F..%2Fstore", "main%2F..%2F..%2Fx", "refs%2F..%2F..%2Fheads", "%2Fetc",
                                 "a%5Cb", "1.0%00"])
def test_hub_rejects_traversal_in_revisions(published: Published, rev: str) -> None:
    repo, before, stored = published.repo, published.tags(), published.stored()
    for method, path, body in [
        ("GET", f"/api/datasets/{repo}/revision/{rev}", b""),
        ("GET", f"/api/datasets/{repo}/tree/{rev}", b""),
        ("GET", f"/datasets/{repo}/resolve/{rev}/README.md", b""),
        ("POST", f"/api/datasets/{repo}/commit/{rev}", b'{"key": "header", "value": {"summary": "evil"}}\n'),
        ("POST", f"/api/datasets/{repo}/tag/main", json.dumps({"tag": unquote(rev)}).encode()),
        ("POST", f"/api/datasets/{repo}/branch/{rev}", b"{}"),
    ]:
        status, _ = _raw(published.hub, method, path, body)
        assert status == 400, (method, path, status)
    assert published.tags() == before and published.stored() == stored


@pytest.mark.parametrize("repo_path", ["..%2Fevil/x", "rel-org/..", "rel-org/x.git", "rel-org/%2E%2E", "a%2Fb/c"])
def test_hub_rejects_traversal_in_repo_ids_of_writes(published: Published, repo_path: str) -> None:
    stored = published.stored()
    body = b'{"key": "header", "value": {"summary": "evil"}}\n'
    assert _raw(published.hub, "POST", f"/api/datasets/{repo_path}/commit/main", body)[0] in (400, 404)
    ns, _, name = (unquote(part) for part in repo_path.partition("/"))
    status, _ = _raw(published.hub, "POST", "/api/repos/create",
                     json.dumps({"type": "dataset", "organization": ns, "name": name}).encode())
    assert status == 400
    assert published.stored() == stored


def test_hub_refuses_every_write_without_the_token_and_caps_bodies_before_reading_them(published: Published) -> None:
    hub, repo = published.hub, published.repo
    org, name = repo.split("/")
    writes = [("POST", "/api/repos/create", json.dumps({"type": "dataset", "name": "x", "organization": "o"})),
              ("POST", f"/api/datasets/{repo}/commit/main", '{"key": "header", "value": {"summary": "x"}}'),
              ("POST", f"/api/datasets/{repo}/preupload/main", '{"files": []}'),
              ("POST", f"/datasets/{repo}.git/info/lfs/objects/batch", '{"operation": "upload", "objects": []}'),
              ("POST", f"/api/datasets/{repo}/tag/main", '{"tag": "evil"}'),
              ("DELETE", f"/api/datasets/{repo}/tag/1.0", ""),
              ("POST", f"/api/datasets/{repo}/branch/evil", "{}"),
              ("PUT", f"/api/datasets/{repo}/settings", '{"private": true}'),
              ("DELETE", "/api/repos/delete", json.dumps({"type": "dataset", "name": name, "organization": org}))]
    before = (published.tags(), published.files(), published.stored())
    for token in (None, "hf_wrong", HUB_SECRET + "x", HUB_SECRET[:-1]):
        for method, path, body in writes:
            status, _ = _raw(hub, method, path, body.encode(), token=token)
            assert status == 401, (token, method, path, status)
    assert (published.tags(), published.files(), published.stored()) == before
    # A body announced over the cap is refused from its headers: the server never reads 10 GB.
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=10)
    try:
        conn.putrequest("POST", f"/api/datasets/{repo}/commit/main")
        conn.putheader("Authorization", f"Bearer {HUB_SECRET}")
        conn.putheader("Content-Length", str(10 * 1024**3))
        conn.endheaders()
        conn.send(b'{"key": "header"')
        assert conn.getresponse().status == 413
    finally:
        conn.close()
    assert published.stored() == before[2]


def _listening(port: int) -> set[str]:
    """The local addresses a TCP socket listens on at ``port`` (from /proc: no traffic sent)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, _, hex_port = local.rpartition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                if len(addr) == 8:
                    found.add(".".join(str(b) for b in reversed(bytes.fromhex(addr))))
                else:
                    found.add(addr)
    return found


def test_sandbox_servers_listen_on_loopback_only(tmp_path: Path) -> None:
    from vmeval_hf.sandbox.local import Sandbox

    with Sandbox(tmp_path / "box") as box:
        env = box.env()
        for url in (env["HF_ENDPOINT"], env["AWS_ENDPOINT_URL"]):
            host, port = url.removeprefix("http://").rsplit(":", 1)
            assert host == "127.0.0.1"
            assert _listening(int(port)) == {"127.0.0.1"}  # not 0.0.0.0, not ::
    with pytest.raises(ValueError, match="127.0.0.1"):
        HubServer(tmp_path / "x", host="0.0.0.0")


# -- tampered remotes: verify finds it, pull refuses it ------------------------------------------------------
# Also covered: library-level verify_hub (size change + moved tag, tests/test_hub_publish.py), verify_s3
# (missing, extra, overwritten: tests/test_mirror.py), CLI verify of a deleted S3 object + moved tag + extra
# Hub file (tests/test_cli_publish.py), pull_s3 of an overwritten object (tests/test_mirror.py).


@pytest.fixture
def released(hostile: Stage) -> Stage:
    """Version 1.0 published and logged (directly, not through the proxies); the CLI env points at it."""
    from vmeval_hf.publish import publish_version

    publish_version(hostile.data, settings=hostile.direct, log_entry=True, date="20250115")
    return hostile


def _hub_commit(stage: Stage, ops: list[object], move_tag: bool = True) -> str:
    api = stage.api()
    info = api.create_commit(stage.repo, ops, commit_message="tamper", repo_type="dataset")
    if move_tag:
        api.delete_tag(stage.repo, tag="1.0", repo_type="dataset")
        api.create_tag(stage.repo, tag="1.0", revision=info.oid, repo_type="dataset")
    return str(info.oid)


def _shard(stage: Stage) -> str:
    return json.loads((stage.data / "releases" / "1.0" / "vmeval_release.json").read_text())["shards"][0]["path"]


def _tamper(stage: Stage, kind: str) -> set[tuple[str, str]]:
    """Tamper with one side; return the (where, problem) pairs verify must report."""
    from huggingface_hub import CommitOperationAdd

    hub_where, day = f"hf://datasets/{stage.repo}@1.0", "20250115"
    client, bucket = raw_client(stage.direct), stage.bucket
    key = f"{day}/data/questions/maze_task/maze_0001/first_frame.png"
    if kind == "hub-shard-replaced":  # same size, other bytes: only the sha256 tells
        shard = _shard(stage)
        body = (stage.data / "releases" / "1.0" / shard).read_bytes()
        _hub_commit(stage, [CommitOperationAdd(shard, body[:8] + bytes(reversed(body[8:-8])) + body[-8:])])
        return {(hub_where, "moved"), (f"{hub_where}/{shard}", "sha256")}
    if kind == "hub-tag-moved":  # to a commit holding the very same release files
        _hub_commit(stage, [CommitOperationAdd(".gitattributes", b"*.parquet filter=lfs diff=lfs merge=lfs -text\n")])
        return {(hub_where, "moved")}
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    evil = body[:-12] + bytes(reversed(body[-12:]))  # same size
    if kind == "s3-overwritten":
        client.put_object(Bucket=bucket, Key=key, Body=evil)
        return {(key, "sha256")}
    if kind == "s3-overwritten-with-checksum":
        client.put_object(Bucket=bucket, Key=key, Body=evil, ChecksumAlgorithm="SHA256")
        return {(key, "sha256")}
    if kind == "s3-overwritten-with-its-manifest-entry":  # a careful forger updates MANIFEST.json too
        client.put_object(Bucket=bucket, Key=key, Body=evil, ChecksumAlgorithm="SHA256")
        held = json.loads(client.get_object(Bucket=bucket, Key=f"{day}/MANIFEST.json")["Body"].read())
        for entry in held["files"]:
            if entry["key"] == key.removeprefix(f"{day}/"):
                entry["sha256"] = hashlib.sha256(evil).hexdigest()
        client.put_object(Bucket=bucket, Key=f"{day}/MANIFEST.json", Body=json.dumps(held).encode())
        return {(f"s3://{bucket}/{key}", "sha256")}
    if kind == "s3-deleted":
        client.delete_object(Bucket=bucket, Key=key)
        return {(key, "missing")}
    assert kind == "s3-added"
    extra = f"{day}/release/data/chess/test-00001-of-00001.parquet"
    client.put_object(Bucket=bucket, Key=extra, Body=b"PAR1 smuggled PAR1")
    return {(extra, "extra")}


@pytest.mark.parametrize("kind", ["hub-shard-replaced", "hub-tag-moved", "s3-overwritten",
                                  "s3-overwritten-with-checksum", "s3-overwritten-with-its-manifest-entry",
                                  "s3-deleted", "s3-added"])
def test_verify_detects_each_tampering(released: Stage, kind: str) -> None:
    runner = CliRunner()
    clean = runner.invoke(cli, ["verify", "1.0", "--data-dir", str(released.data)])
    assert clean.exit_code == 0, clean.output
    expected = _tamper(released, kind)
    result = runner.invoke(cli, ["verify", "1.0", "--data-dir", str(released.data), "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    found = {(m.get("where") or m.get("key"), m["problem"]) for m in report["mismatches"]}
    assert expected <= found, (expected, found)
    human = runner.invoke(cli, ["verify", "1.0", "--data-dir", str(released.data)])
    assert human.exit_code == 1 and all(where.split("/")[-1] in human.stdout for where, _ in expected)


@pytest.mark.parametrize("side", ["s3", "hub"])
def test_pull_refuses_a_corrupted_download(released: Stage, tmp_path: Path, side: str) -> None:
    """The bytes served differ from the recorded ones: nothing is left in place for that file."""
    day, runner = "20250115", CliRunner()
    if side == "s3":
        key = f"{day}/data/questions/maze_task/maze_0001/first_frame.png"
        client = raw_client(released.direct)
        body = client.get_object(Bucket=released.bucket, Key=key)["Body"].read()
        client.put_object(Bucket=released.bucket, Key=key, Body=body[:-1] + bytes([body[-1] ^ 0xFF]))
        target = tmp_path / "pulled" / "questions" / "maze_task" / "maze_0001" / "first_frame.png"
        named = key
    else:  # bit rot in the Hub's storage: the server itself serves other bytes for the shard
        shard = _shard(released)
        sha = next(f["sha256"] for f in json.loads((released.data / "releases" / "1.0" / "vmeval_release.json")
                                                   .read_text())["files"] if f["path"] == shard)
        blob = released.hub.store.blob_path(sha)
        data = blob.read_bytes()
        middle = len(data) // 2
        blob.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:])
        target, named = tmp_path / "pulled" / shard, shard
    try:
        result = runner.invoke(cli, ["pull", "1.0", "--from", side, "--dest", str(tmp_path / "pulled"),
                                     "--data-dir", str(released.data)])
    finally:
        if side == "hub":
            blob.write_bytes(data)
    assert result.exit_code == 1, result.output
    (line,) = error_lines(result.stderr)
    assert named in line and "Traceback" not in result.stderr
    if side == "s3":
        assert not target.exists()


@pytest.mark.parametrize("side", ["s3", "hub"])
def test_pull_never_delivers_content_other_than_the_logged_version(released: Stage, tmp_path: Path,
                                                                   side: str) -> None:
    """A forger replaces a file *and* its manifest entry: pull refuses, or delivers the logged bytes."""
    from huggingface_hub import CommitOperationAdd

    runner = CliRunner()
    questions = released.data / "questions"
    original = (questions / "maze_task" / "maze_0001" / "prompt.txt").read_bytes()
    if side == "s3":
        _tamper(released, "s3-overwritten-with-its-manifest-entry")
    else:  # a whole consistent release of other content, tagged 1.0
        from vmeval_hf.release.build import build_release

        (questions / "maze_task" / "maze_0001" / "prompt.txt").write_text("Forged.", encoding="utf-8")
        meta = questions / "maze_task" / "maze_0001" / "question_metadata.json"
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "prompt": "Forged."}), encoding="utf-8")
        forged = build_release(released.data, tmp_path / "forged", version="1.0", repo_id=released.repo)
        _hub_commit(released, [CommitOperationAdd(p.relative_to(forged.out).as_posix(), p.read_bytes())
                               for p in sorted(forged.out.rglob("*")) if p.is_file()])
    result = runner.invoke(cli, ["pull", "1.0", "--from", side, "--dest", str(tmp_path / "pulled"),
                                 "--data-dir", str(released.data)])
    if result.exit_code == 0:  # then what landed is the logged version, byte for byte
        from vmeval_hf.release.release_manifest import check_release_files, load_release

        if side == "hub":
            manifest = load_release(tmp_path / "pulled")
            assert check_release_files(tmp_path / "pulled", manifest) == []
            logged = json.loads(released.log_path.read_text())["versions"][0]
            assert manifest["content_sha256"] == logged["content_sha256"]
        else:
            assert (tmp_path / "pulled" / "questions" / "maze_task" / "maze_0001" / "prompt.txt").read_bytes() \
                == original
    else:
        assert result.exit_code == 1 and "Traceback" not in result.stderr, result.output
        assert len(error_lines(result.stderr)) == 1
