"""The release commands end to end: ``publish``, ``verify``, ``pull``, ``sync``, ``versions``, ``demo``.

The real commands run through click's ``CliRunner`` against the session's sandbox Hub and a
fresh moto bucket; ``Settings.from_env()`` sees them through the (monkeypatched) environment.
Outcomes are checked through the clients on the other side: tags and commits on the Hub,
objects in the bucket, rows from ``datasets.load_dataset``, and the bytes of the version log.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from tests.support.cli import ok, run
from tests.support.files import snapshot
from tests.support.hub import disable_parquet_export
from tests.support.reliability import error_lines
from tests.support.s3 import FaultProxy, raw_client
from tests.support.trees import change_tree, make_tree
from vmeval_hf.config import Settings
from vmeval_hf.sandbox import HubServer
from vmeval_hf.versions import VersionLog, log_version

DAY, DAY_B = "20250115", "20250115-b"
HEX40, HEX64 = re.compile(r"^[0-9a-f]{40}$"), re.compile(r"^[0-9a-f]{64}$")


@dataclass
class Env:
    data: Path
    repo: str
    direct: Settings            # the CLI's Hub and bucket, without the proxy: for set-up and inspection
    hub: HubServer
    proxy: FaultProxy | None    # with the ``counted`` fixture: every S3 request the CLI sends

    @property
    def log_path(self) -> Path:
        return self.data / "data_logging" / "version_log.json"

    def entries(self) -> list[dict[str, Any]]:
        return [dict(e) for e in VersionLog(data_dir=self.data).entries()]

    def keys(self, prefix: str = "") -> dict[str, int]:
        pages = raw_client(self.direct).get_paginator("list_objects_v2").paginate(
            Bucket=self.direct.s3_bucket, Prefix=prefix)
        return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", ())}

    def tags(self) -> dict[str, str]:
        from vmeval_hf.hub import hub_api

        refs = hub_api(self.direct).list_repo_refs(self.repo, repo_type="dataset")
        return {t.name: t.target_commit for t in refs.tags}

    def commits(self) -> list[str]:
        from vmeval_hf.hub import hub_api

        api = hub_api(self.direct)
        return [c.commit_id for c in api.list_repo_commits(self.repo, repo_type="dataset")]

    def s3_sent(self, method: str | None = None) -> int:
        assert self.proxy is not None, "use the `counted` fixture to count S3 requests"
        return self.proxy.count(method)

    def remote_counts(self) -> tuple[int, int]:
        """(requests the Hub server has handled, requests sent to S3)."""
        return self.hub.requests, self.s3_sent()


def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub_repo: str, hub_server: HubServer,
         s3_url: str, proxy: FaultProxy | None) -> Env:
    monkeypatch.chdir(tmp_path)  # no stray .env, and default paths land in the test folder
    monkeypatch.setenv("VMEVAL_HF_REPO", hub_repo)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url if proxy else s3_url)
    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    direct = Settings.from_env().with_(aws_endpoint_url=s3_url)
    return Env(data, hub_repo, direct, hub_server, proxy)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_settings: Settings, hub_repo: str,
        hub_server: HubServer) -> Env:
    """A data tree (chess x2, maze x1) in an empty working folder; a fresh Hub repo and bucket."""
    return _env(tmp_path, monkeypatch, hub_repo, hub_server, s3_settings.aws_endpoint_url or "", None)


@pytest.fixture
def counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_faults: Any, hub_repo: str,
            hub_server: HubServer) -> Env:
    """Like ``env``, but the CLI reaches S3 through a proxy that counts every request."""
    return _env(tmp_path, monkeypatch, hub_repo, hub_server, s3_faults.proxy.upstream, s3_faults.proxy)


def publish(env: Env, *args: str | Path) -> Result:
    return run("publish", "--data-dir", env.data, *args)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- publish end to end ----------------------------------------------------------------------------


@pytest.mark.slow
def test_publish_twice_then_load_both_verify_and_read_the_log(env: Env, fresh_hf_cache: Path) -> None:
    first = publish(env, "--log", "--date", DAY)  # --version defaults to 1.0 on an empty log
    assert first.exit_code == 0, first.stderr
    assert "version   1.0" in first.stdout and f"s3://{env.direct.s3_bucket}/{DAY}/data" in first.stdout
    v10_prompts = {p.parent.name: p.read_text(encoding="utf-8")
                   for p in (env.data / "questions").glob("*_task/*/prompt.txt")}
    change_tree(env.data)  # chess_0000's prompt: "A changed prompt"; maze_0005 added
    second = publish(env, "--log", "--date", DAY_B, "--json")  # then the next minor, 1.1
    assert second.exit_code == 0, second.stderr
    printed = json.loads(second.stdout)

    e10, e11 = env.entries()
    assert printed == e11  # --json prints the log entry as stored
    tags = env.tags()
    for entry, version, day in ((e10, "1.0", DAY), (e11, "1.1", DAY_B)):
        assert entry["version"] == version and entry["date"] == day
        assert entry["s3_uri"] == f"s3://{env.direct.s3_bucket}/{day}/data"
        assert entry["hf_uri"] == f"hf://datasets/{env.repo}@{version}"
        assert (entry["hf_repo"], entry["hf_revision"]) == (env.repo, version)
        assert HEX40.match(entry["hf_commit"]) and entry["hf_commit"] == tags[version]
        assert HEX64.match(entry["content_sha256"])
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", entry["timestamp"])
        # sizes: what the S3 prefix holds, MANIFEST.json aside
        objects = {k: v for k, v in env.keys(f"{day}/").items() if not k.endswith("/MANIFEST.json")}
        assert entry["files"] == len(objects)
        assert entry["size_mb"] == round(sum(objects.values()) / 2**20, 3) > 0
    assert (e10["questions"], e10["domains"]) == (3, {"chess": 2, "maze": 1})
    assert (e11["questions"], e11["domains"]) == (4, {"chess": 2, "maze": 2})
    assert e10["content_sha256"] != e11["content_sha256"] and e10["hf_commit"] != e11["hf_commit"]

    import datasets

    disable_parquet_export()
    ds10 = datasets.load_dataset(env.repo, revision="1.0", split="test")
    ds11 = datasets.load_dataset(env.repo, revision="1.1", split="test")
    assert dict(zip(ds10["id"], ds10["prompt"])) == v10_prompts
    assert sorted(ds11["id"]) == ["chess_0000", "chess_0001", "maze_0000", "maze_0005"]
    assert dict(zip(ds11["id"], ds11["prompt"]))["chess_0000"] == "A changed prompt"

    assert ok("versions", "latest", "--data-dir", env.data).stdout.startswith("Latest: v1.1 ")
    for version in ("1.0", "1.1"):
        assert ok("verify", version, "--data-dir", env.data).stdout.strip() == f"version {version}: verified"


def test_rerun_of_a_logged_version_is_a_noop(counted: Env) -> None:
    ok("publish", "--data-dir", counted.data, "--log", "--date", DAY)
    commits, log_bytes = counted.commits(), counted.log_path.read_bytes()
    assert counted.proxy is not None
    counted.proxy.clear()
    again = publish(counted, "--log", "--version", "1.0")
    assert again.exit_code == 0, again.stderr
    assert "already published with this content; nothing to do" in again.stdout
    # the first run's check left its verdicts: no frame is inflated again (issue 21)
    assert re.search(r"^frames    0 checked, [1-9][0-9]* passed before$", again.stdout, re.M), again.stdout
    assert counted.commits() == commits
    assert counted.s3_sent("PUT") == counted.s3_sent("POST") == 0
    assert counted.log_path.read_bytes() == log_bytes


def test_republishing_an_unchanged_tree_under_the_default_label_is_a_noop(counted: Env) -> None:
    """``publish --log`` again on the same questions does not make 1.1 a copy of 1.0: it reports 1.0,
    sends nothing, leaves no releases/1.1; naming the label publishes the copy on purpose."""
    ok("publish", "--data-dir", counted.data, "--log", "--date", DAY)
    commits, log_bytes = counted.commits(), counted.log_path.read_bytes()
    assert counted.proxy is not None
    counted.proxy.clear()
    again = publish(counted, "--log")
    assert again.exit_code == 0, again.stderr
    assert "version 1.0 is already published with this content; nothing to do" in again.stdout
    assert counted.commits() == commits
    assert counted.s3_sent("PUT") == counted.s3_sent("POST") == 0
    assert counted.log_path.read_bytes() == log_bytes
    assert not (counted.data / "releases" / "1.1").exists()
    named = publish(counted, "--log", "--version", "1.1", "--date", DAY_B)
    assert named.exit_code == 0, named.stderr
    assert [e["version"] for e in json.loads(counted.log_path.read_text())["versions"]] == ["1.0", "1.1"]


def test_other_content_under_a_logged_version_is_refused(counted: Env) -> None:
    ok("publish", "--data-dir", counted.data, "--log", "--date", DAY)
    commits, tags, objects = counted.commits(), counted.tags(), counted.keys()
    log_bytes = counted.log_path.read_bytes()
    change_tree(counted.data)
    hub_before, s3_before = counted.remote_counts()
    refused = publish(counted, "--log", "--version", "1.0", "--date", DAY_B)
    assert refused.exit_code == 1
    (line,) = error_lines(refused.stderr)
    assert "1.0" in line and "publish as 1.1" in line and "--force" in line
    assert counted.remote_counts() == (hub_before, s3_before)  # refused before anything remote
    assert (counted.commits(), counted.tags(), counted.keys()) == (commits, tags, objects)
    assert counted.log_path.read_bytes() == log_bytes


@pytest.mark.parametrize("side", ["hub", "s3"])
def test_one_side_only_is_published_and_logged(counted: Env, side: str) -> None:
    hub_before = counted.hub.requests
    flag = "--no-s3" if side == "hub" else "--no-hub"
    result = publish(counted, "--log", "--date", DAY, flag, "--json")
    assert result.exit_code == 0, result.stderr
    (entry,) = counted.entries()
    assert json.loads(result.stdout) == entry
    if side == "hub":
        assert entry["s3_uri"] is None and counted.keys() == {} and counted.s3_sent() == 0
        assert entry["hf_commit"] == counted.tags()["1.0"]
        assert entry["files"] == len(snapshot(counted.data / "releases" / "1.0", skip_hidden=True))
    else:
        assert all(entry[k] is None for k in ("hf_uri", "hf_repo", "hf_revision", "hf_commit"))
        assert counted.hub.requests == hub_before
        assert f"{DAY}/MANIFEST.json" in counted.keys()
    assert ok("verify", "1.0", "--data-dir", counted.data).stdout.strip() == "version 1.0: verified"
    summary = ok("versions", "--data-dir", counted.data).stdout
    assert ("hf://datasets/" in summary) == (side == "hub") and ("s3://" in summary) == (side == "s3")


def test_no_hub_and_no_s3_together_is_refused(counted: Env) -> None:
    before = counted.remote_counts()
    result = publish(counted, "--no-hub", "--no-s3")
    assert result.exit_code == 1 and "publish nothing" in error_lines(result.stderr)[0]
    assert counted.remote_counts() == before


# --- refusals before anything remote ---------------------------------------------------------------


CORRUPT_LOGS = {
    "truncated": (b'{"schema": 1, "versions": [\n  {"version": "1.0",\n   "date": "2025', 3),
    "wrong-shape": (b'{\n  "schema": 1,\n  "versions": {"1.0": {}}\n}\n', 3),
    "duplicate": (b'{"versions": [\n {"version": "1.0"},\n {"version": "1.0"}\n]}\n', 3),
}


@pytest.mark.parametrize(("kind", "version"), [("truncated", None), ("wrong-shape", "1.1"), ("duplicate", None)])
def test_corrupt_log_is_reported_untouched_and_nothing_is_uploaded(counted: Env, kind: str,
                                                                    version: str | None) -> None:
    text, line = CORRUPT_LOGS[kind]
    counted.log_path.parent.mkdir(parents=True)
    counted.log_path.write_bytes(text)
    before = counted.remote_counts()
    result = publish(counted, "--log", "--date", DAY, *(["--version", version] if version else []))
    assert result.exit_code == 1
    (message,) = error_lines(result.stderr)
    assert f"{counted.log_path}:{line}:" in message
    assert counted.log_path.read_bytes() == text
    assert counted.remote_counts() == before
    assert counted.keys() == {}
    assert not (counted.data / "releases").exists()  # detected before the build, too


@pytest.mark.parametrize("label", ["1.0 beta", "../1.0", "v1.0\n"])
def test_a_bad_version_label_is_refused_before_anything_is_written(counted: Env, label: str) -> None:
    before = counted.remote_counts()
    result = publish(counted, "--log", "--date", DAY, "--version", label)
    assert result.exit_code == 1
    assert "invalid version label" in error_lines(result.stderr)[0]
    assert counted.remote_counts() == before
    assert not counted.log_path.exists() and not (counted.data / "releases").exists()
    assert sorted(p.name for p in counted.data.parent.iterdir()) == ["data"]


def test_dry_run_uploads_nothing(counted: Env) -> None:
    before = counted.remote_counts()
    result = publish(counted, "--log", "--date", DAY, "--dry-run")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "dry run: version 1.0, 3 questions, nothing uploaded"
    assert any(x.startswith("hub: ") and counted.repo in x for x in lines)
    assert any(x.startswith("s3: ") and f"s3://{counted.direct.s3_bucket}/{DAY}/" in x for x in lines)
    as_json = json.loads(ok("publish", "--data-dir", counted.data, "--dry-run", "--json").stdout)
    assert as_json["dry_run"] is True and as_json["version"] == "1.0" and len(as_json["plan"]) == 2
    assert counted.remote_counts() == before
    assert not counted.log_path.exists() and not (counted.data / "releases").exists()


@pytest.mark.slow
def test_unreachable_hub_is_one_error_and_a_resume_finishes(counted: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("HF_ENDPOINT", dead)
    failed = publish(counted, "--log", "--date", DAY)
    assert failed.exit_code == 1
    assert error_lines(failed.stderr) == failed.stderr.strip().splitlines()  # one line, no traceback
    (line,) = error_lines(failed.stderr)
    assert "Hub" in line and dead in line and "re-run" in line
    assert not counted.log_path.exists()
    assert counted.keys() == {} and counted.s3_sent("PUT") == counted.s3_sent("POST") == 0  # nothing sent to S3

    monkeypatch.setenv("HF_ENDPOINT", counted.direct.hub_endpoint)
    resumed = publish(counted, "--log", "--date", DAY, "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert [e["version"] for e in counted.entries()] == ["1.0"]
    assert json.loads(resumed.stdout)["hf_commit"] == counted.tags()["1.0"]


def test_diff_from_an_unreachable_hub_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Hub not answering is an outage, not "does not exist" (huggingface_hub's
    LocalEntryNotFoundError is an EntryNotFoundError, and was read as "no manifest here")."""
    monkeypatch.chdir(tmp_path)
    dead = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("HF_ENDPOINT", dead)
    monkeypatch.setenv("VMEVAL_HUB_ATTEMPTS", "1")
    data = tmp_path / "data"
    for version, commit in (("1.0", "a" * 40), ("1.1", "b" * 40)):
        log_version(version, None, data_dir=data, hf_repo="o/r", hf_commit=commit, content_sha256="c" * 64)
    result = run("diff", "1.0", "1.1", "--from", "hub", "--data-dir", data)
    assert result.exit_code == 1
    (line,) = error_lines(result.stderr)
    assert f"cannot reach the Hub at {dead}" in line and "does not exist" not in line


# --- verify and pull -------------------------------------------------------------------------------


def test_verify_lists_each_tampered_side(env: Env) -> None:
    from huggingface_hub import CommitOperationAdd

    from vmeval_hf.hub import hub_api

    ok("publish", "--data-dir", env.data, "--log", "--date", DAY)
    clean = json.loads(ok("verify", "1.0", "--data-dir", env.data, "--json").stdout)
    assert clean == {"version": "1.0", "ok": True, "mismatches": []}

    victim = f"{DAY}/data/questions/chess_task/chess_0001/prompt.txt"
    raw_client(env.direct).delete_object(Bucket=env.direct.s3_bucket, Key=victim)
    api = hub_api(env.direct)
    other = api.create_commit(env.repo, [CommitOperationAdd("extra.txt", b"not part of the release")],
                              commit_message="tamper", repo_type="dataset")
    api.delete_tag(env.repo, tag="1.0", repo_type="dataset")
    api.create_tag(env.repo, tag="1.0", revision=other.oid, repo_type="dataset")

    human = run("verify", "1.0", "--data-dir", env.data)
    assert human.exit_code == 1
    assert any(victim in x and "missing" in x for x in human.stdout.splitlines())
    assert any("moved" in x and env.entries()[0]["hf_commit"][:12] in x for x in human.stdout.splitlines())
    report = json.loads(run("verify", "1.0", "--data-dir", env.data, "--json").stdout)
    assert report["ok"] is False
    problems = {(m.get("key") or m.get("where"), m["problem"]) for m in report["mismatches"]}
    assert (victim, "missing") in problems
    assert (f"hf://datasets/{env.repo}@1.0", "moved") in problems
    assert (f"hf://datasets/{env.repo}@1.0/extra.txt", "extra") in problems


def test_verify_of_an_unlogged_version_is_refused(env: Env) -> None:
    result = run("verify", "3.0", "--data-dir", env.data)
    assert result.exit_code == 1 and "not in the version log" in error_lines(result.stderr)[0]


def test_pull_round_trips_from_s3_and_hub(env: Env, tmp_path: Path) -> None:
    ok("publish", "--data-dir", env.data, "--log", "--date", DAY)
    from_s3 = json.loads(ok("pull", "1.0", "--from", "s3", "--dest", tmp_path / "s3", "--data-dir", env.data,
                            "--json").stdout)
    assert from_s3["source"] == "s3"
    assert (snapshot(tmp_path / "s3" / "questions", skip_hidden=True)
            == snapshot(env.data / "questions", skip_hidden=True))
    out = ok("pull", "1.0", "--from", "hub", "--dest", tmp_path / "hub", "--data-dir", env.data).stdout
    assert out.startswith("pulled 1.0 from hub into ") and "verified" in out
    # skip_hidden: the download leaves its .cache/ folder in the target
    assert (snapshot(tmp_path / "hub", skip_hidden=True)
            == snapshot(env.data / "releases" / "1.0", skip_hidden=True))
    # --release from S3: the same release files as on the Hub
    ok("pull", "1.0", "--release", "--dest", tmp_path / "rel", "--data-dir", env.data)
    assert snapshot(tmp_path / "rel", skip_hidden=True) == snapshot(tmp_path / "hub", skip_hidden=True)


# --- sync and versions -----------------------------------------------------------------------------


def test_sync_mirrors_the_data_tree_only(env: Env) -> None:
    (env.data / "outputs" / "exp1").mkdir(parents=True)
    (env.data / "outputs" / "exp1" / "result.json").write_text("{}", encoding="utf-8")
    hub_before = env.hub.requests
    first = json.loads(ok("sync", "--data-dir", env.data, "--date", DAY, "--json").stdout)
    assert first["s3_uri"] == f"s3://{env.direct.s3_bucket}/{DAY}/data"
    keys = set(env.keys())
    assert keys == {f"{DAY}/MANIFEST.json", f"{DAY}/data/outputs/exp1/result.json",
                    *(f"{DAY}/data/questions/{k}" for k in snapshot(env.data / "questions", skip_hidden=True))}
    assert first["uploaded"] == first["files"] == len(keys) - 1
    assert env.hub.requests == hub_before and not env.log_path.exists()

    again = ok("sync", "--data-dir", env.data, "--date", DAY, "--log")
    assert "(0 uploaded," in again.stdout
    (entry,) = env.entries()
    assert (entry["version"], entry["date"], entry["s3_uri"]) == ("1.0", DAY, first["s3_uri"])
    assert entry["files"] == first["files"]


def test_a_logged_data_tree_mirror_verifies_against_its_manifests_recorded_hash(env: Env) -> None:
    """``sync --log`` records the sha256 of ``MANIFEST.json``'s canonical JSON, computed from the
    stream: the same as the whole document's, whatever the object's formatting; verify passes,
    and fails naming MANIFEST.json once a field of it changes."""
    import hashlib

    ok("sync", "--data-dir", env.data, "--date", DAY, "--log")
    (entry,) = env.entries()
    client, key = raw_client(env.direct), f"{DAY}/MANIFEST.json"
    body = client.get_object(Bucket=env.direct.s3_bucket, Key=key)["Body"].read()
    doc = json.loads(body)
    canonical = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert entry["mirror_manifest_sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert json.loads(ok("verify", "1.0", "--data-dir", env.data, "--json").stdout)["ok"] is True

    # the same document in other formatting (compact, keys in another order): still the same manifest
    client.put_object(Bucket=env.direct.s3_bucket, Key=key,
                      Body=json.dumps({k: doc[k] for k in reversed(list(doc))}, separators=(",", ":")).encode())
    assert json.loads(ok("verify", "1.0", "--data-dir", env.data, "--json").stdout)["ok"] is True

    client.put_object(Bucket=env.direct.s3_bucket, Key=key, Body=json.dumps({**doc, "tool": "vmeval-hf 0.0"}).encode())
    got = json.loads(run("verify", "1.0", "--data-dir", env.data, "--json").stdout)
    assert got["ok"] is False
    assert [(m["where"], m["problem"]) for m in got["mismatches"]] == [
        (f"s3://{env.direct.s3_bucket}/{key}", "sha256")]


@pytest.mark.parametrize("case", ["corrupt", "taken"])
def test_sync_log_problems_are_found_before_any_upload(counted: Env, case: str) -> None:
    counted.log_path.parent.mkdir(parents=True)
    if case == "corrupt":
        counted.log_path.write_bytes(b'{"versions": [\n  {"version": "1.0"}\n  {"version": "1.1"}]}\n')
        args: tuple[str, ...] = ()
    else:
        log_version("1.0", "s3://b/20250101/data", data_dir=counted.data)
        args = ("--version", "1.0")
    text = counted.log_path.read_bytes()
    result = run("sync", "--data-dir", counted.data, "--date", DAY, "--log", *args)
    assert result.exit_code == 1
    (line,) = error_lines(result.stderr)
    assert f"{counted.log_path}:3:" in line if case == "corrupt" else "1.0 is already in the version log" in line
    assert counted.log_path.read_bytes() == text
    assert counted.s3_sent() == 0 and counted.keys() == {}


def test_versions_summary_latest_show(env: Env) -> None:
    data = env.data
    empty = run("versions", "latest", "--data-dir", data)
    assert empty.exit_code == 1 and empty.stdout.strip() == "No versions logged yet."
    assert ok("versions", "--data-dir", data).stdout.strip() == "No versions logged yet."
    log_version("1.0", "s3://b/20250115/data", {"size_mb": 1.5, "files": 10}, data_dir=data, questions=3)
    log_version("1.1", None, data_dir=data, hf_uri="hf://datasets/o/r@1.1", hf_commit="a" * 40)

    summary = ok("versions", "summary", "--data-dir", data).stdout.splitlines()
    assert summary[0].startswith("v1.0 (") and summary[0].endswith("→ s3://b/20250115/data")
    assert summary[1] == "  1.5MB, 10 files, 3 questions"
    assert summary[2].endswith("→ hf://datasets/o/r@1.1")
    assert json.loads(ok("versions", "summary", "--json", "--data-dir", data).stdout) == VersionLog(
        data_dir=data).load()
    assert ok("versions", "latest", "--data-dir", data).stdout.strip() == "Latest: v1.1 → hf://datasets/o/r@1.1"
    assert json.loads(ok("versions", "latest", "--json", "--data-dir", data).stdout)["version"] == "1.1"
    shown = ok("versions", "show", "1.0", "--data-dir", data).stdout
    assert "version   1.0" in shown and "s3://b/20250115/data" in shown
    assert json.loads(ok("versions", "show", "v1.0", "--json", "--data-dir", data).stdout)["files"] == 10
    missing = run("versions", "show", "9.9", "--data-dir", data)
    assert missing.exit_code == 1 and "9.9" in error_lines(missing.stderr)[0]
    assert run("versions", "show", "--data-dir", data).exit_code == 2


# --- demo ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_demo_runs_green_from_a_clean_folder(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "AWS_", "HUGGING", "VMEVAL_",
                                                                        "S3_"))}
    clean["HOME"] = str(tmp_path / "home")
    workdir = tmp_path / "demo"
    exe = shutil.which("vmeval-hf", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "vmeval_hf.cli"]
    proc = subprocess.run([*cmd, "demo", "--workdir", str(workdir), "--pairs-per-domain", "2"],
                          cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("demo finished in ") and lines[1] == "created 10 questions in 5 domains"
    for version in ("1.0", "1.1", "demo-1.0"):
        assert any(x.strip().startswith((f"{version}: ", f"results {version}: ")) for x in lines)
        assert any(f"load_dataset(revision='{version}')" in x and x.endswith("verified") for x in lines)
    assert any(x.strip().startswith("results demo-1.0: ") and "evaluations of questions 1.1" in x for x in lines)
    assert "GPT4OEvaluator" in lines and "human-eval" in lines  # the leaderboard, one table per evaluator
    log = workdir / "data" / "data_logging" / "version_log.json"
    assert lines[-1] == f"version log: {log}"
    entries = json.loads(log.read_text(encoding="utf-8"))["versions"]
    assert [e["version"] for e in entries] == ["1.0", "1.1", "demo-1.0"]
    assert [e.get("kind") for e in entries] == [None, None, "results"]
    assert all(e["hf_commit"] and e["s3_uri"] for e in entries)
    assert entries[0]["content_sha256"] != entries[1]["content_sha256"]


_WITHOUT_MOTO = """
import sys
sys.modules["moto"] = None  # as on a plain install, without the sandbox extra
from vmeval_hf.cli import main
sys.argv = ["vmeval-hf", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("command", [["demo", "--workdir", "work"], ["sandbox"]])
def test_sandbox_without_its_extra_is_one_error_line_and_creates_nothing(tmp_path: Path, command: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-c", _WITHOUT_MOTO, *command], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("ERROR: ") and "vmeval-hf[sandbox]" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no work folder, no sandbox storage
