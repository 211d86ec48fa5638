"""The shared version log: every version usable from any machine (issue 16).

Against the session's Hub server and moto server over HTTP: versions published from folder A are
listed, pulled and verified from folder B (no ``data/``), and from the Hub alone; the put-once
records under ``s3://<bucket>/versions/`` keep concurrent publishers' entries, refuse a second
content for one label, survive local writes, and are named by key when corrupt; ``versions sync``
reports what disagrees. Loading is in ``test_load_version.py``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from tests.support.cli import ok, run
from tests.support.files import snapshot
from tests.support.hub import HUB_TOKEN
from tests.support.published import S3_VARS, World, publish_world
from tests.support.s3 import raw_client
from tests.support.trees import change_tree, make_tree
from vmeval_hf.config import Settings
from vmeval_hf.errors import VersionConflictError, VersionLogError
from vmeval_hf.publish import publish_version
from vmeval_hf.sandbox import HubServer
from vmeval_hf.versions import VersionLog, complete_entry, log_version
from vmeval_hf.versions.lookup import list_versions
from vmeval_hf.versions.remote import RemoteLog, record_body

HEX = "0123456789abcdef"


def error_line(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert result.exit_code == 1 and len(lines) == 1, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return lines[0]


def entry(version: str, content: str, **fields: Any) -> dict[str, Any]:
    """A complete log entry for ``version`` whose content hash is ``content`` repeated."""
    return complete_entry({"version": version, "s3_uri": None, "content_sha256": (content * 64)[:64], **fields})


# --- the second machine -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(moto_server: str, hub_server: HubServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with publish_world(tmp_path_factory.mktemp("shared"), moto_server) as published:
        yield published


@pytest.fixture
def in_b(world: World, monkeypatch: pytest.MonkeyPatch, fresh_hf_cache: Path) -> World:
    monkeypatch.chdir(world.b)
    return world


def test_b_lists_shows_and_finds_the_latest_of_both_versions(in_b: World) -> None:
    assert not (in_b.b / "data").exists()
    as_json = json.loads(ok("versions", "summary", "--json").stdout)
    assert as_json == {"schema": 1, "versions": [in_b.entries["1.0"], in_b.entries["1.1"]]}
    text = ok("versions").stdout.splitlines()
    assert text[0].startswith("v1.0 (20250115) → s3://") and text[0].endswith(f"hf://datasets/{in_b.repo}@1.0")
    assert text[2].startswith("v1.1 (20250116) → s3://")
    shown = ok("versions", "show", "1.0").stdout
    assert "version   1.0" in shown and shown.rstrip().endswith("from      s3")
    assert ok("versions", "latest").stdout.startswith("Latest: v1.1 → s3://")
    assert not (in_b.b / "data").exists()  # reading never creates a local log


def test_b_pulls_verified_copies_from_s3_and_the_hub(in_b: World) -> None:
    out = json.loads(ok("pull", "1.0", "--from", "s3", "--dest", "q10", "--json").stdout)
    assert out["source"] == "s3"
    assert snapshot(in_b.b / "q10" / "questions") == in_b.questions_10
    ok("pull", "1.0", "--from", "hub", "--dest", "hub10")
    assert snapshot(in_b.b / "hub10", skip_hidden=True) == snapshot(in_b.release("1.0"), skip_hidden=True)
    ok("pull", "1.1", "--release", "--dest", "rel11")
    assert snapshot(in_b.b / "rel11", skip_hidden=True) == snapshot(in_b.release("1.1"), skip_hidden=True)


def test_b_verifies_both_versions(in_b: World) -> None:
    for version in ("1.1", "1.0"):
        assert ok("verify", version).stdout.strip() == f"version {version}: verified"
    assert "not in the version log" in error_line(run("verify", "7.0"))


def test_the_hub_alone_lists_pulls_and_verifies_without_s3_settings_or_a_token(
        in_b: World, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*S3_VARS, "HF_TOKEN", "VMEVAL_HF_REPO"):
        monkeypatch.delenv(name, raising=False)
    listed = json.loads(ok("versions", "summary", "--repo", in_b.repo, "--json").stdout)["versions"]
    assert [e["version"] for e in listed] == ["1.0", "1.1"]
    for got in listed:
        published = in_b.entries[got["version"]]
        for key in ("hf_commit", "hf_repo", "hf_uri", "questions", "domains", "content_sha256"):
            assert got[key] == published[key], key
        assert got["s3_uri"] is None and got["date"] == got["timestamp"][:10].replace("-", "")
    text = ok("versions", "--repo", in_b.repo).stdout.splitlines()
    e11 = in_b.entries["1.1"]
    assert text[3:6] == [f"v1.1 ({listed[1]['date']}) → hf://datasets/{in_b.repo}@1.1",
                         f"  {listed[1]['size_mb']:.1f}MB, {listed[1]['files']} files, 4 questions",
                         f"  commit {e11['hf_commit'][:12]}, content sha256:{e11['content_sha256'][:12]}"]
    monkeypatch.setenv("VMEVAL_HF_REPO", in_b.repo)
    ok("pull", "1.1", "--from", "hub", "--dest", "hub11")
    assert snapshot(in_b.b / "hub11", skip_hidden=True) == snapshot(in_b.release("1.1"), skip_hidden=True)
    assert ok("verify", "1.0").stdout.strip() == "version 1.0: verified"
    assert "was not mirrored to S3" in error_line(run("pull", "1.0", "--from", "s3"))


# --- the records themselves -------------------------------------------------------------------------


@pytest.fixture
def settings(s3_settings: Settings, hub_server: HubServer, hub_repo: str, monkeypatch: pytest.MonkeyPatch,
             tmp_path: Path) -> Settings:
    """A fresh bucket and Hub repo; the environment matches, the working folder is empty."""
    monkeypatch.setenv("VMEVAL_HF_REPO", hub_repo)
    monkeypatch.chdir(tmp_path)
    return s3_settings.with_(hf_endpoint=hub_server.url, hf_token=HUB_TOKEN, hf_repo=hub_repo)


def test_a_record_is_put_once_canonical_json_with_its_checksum(settings: Settings) -> None:
    remote = RemoteLog(settings)
    first = remote.record(entry("1.0", "a"))
    assert first.written and first.record.key == "versions/1.0/000.json" and first.replaced is None
    client = raw_client(settings)
    body = client.get_object(Bucket=settings.s3_bucket, Key=first.record.key)["Body"].read()
    assert body == record_body(entry("1.0", "a") | {"timestamp": first.record.entry["timestamp"],
                                                     "date": first.record.entry["date"]})
    assert json.loads(body)["kind"] == "vmeval-version-record" and json.loads(body)["schema"] == 1
    head = client.head_object(Bucket=settings.s3_bucket, Key=first.record.key, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"]
    # the same content again: nothing written; other content: refused, naming both hashes
    assert not remote.record(entry("1.0", "a")).written
    with pytest.raises(VersionConflictError, match=r"sha256:aaaaaaaaaaaa.*sha256:bbbbbbbbbbbb.*publish this "
                                                   r"content as 1\.1, or pass --force") as err:
        remote.record(entry("1.0", "b"))
    assert err.value.version == "1.0"
    replaced = remote.record(entry("1.0", "b"), replace=True)
    assert replaced.written and replaced.record.key == "versions/1.0/001.json"
    assert replaced.replaced is not None and replaced.replaced.key == "versions/1.0/000.json"
    assert [r.revision for r in remote.history("1.0")] == [0, 1]
    assert remote.current("1.0").entry["content_sha256"] == "b" * 64  # type: ignore[union-attr]
    assert client.get_object(Bucket=settings.s3_bucket, Key=first.record.key)["Body"].read() == body


def _race(n: int, work: Any) -> list[Any]:
    """Run ``work(i)`` in ``n`` threads released together; each result or exception."""
    gate, results = threading.Barrier(n), [None] * n

    def one(i: int) -> None:
        gate.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_racers_for_one_label_have_exactly_one_winner(settings: Settings) -> None:
    outcomes = _race(8, lambda i: RemoteLog(settings).record(entry("2.0", HEX[i])))
    won = [o for o in outcomes if not isinstance(o, Exception)]
    lost = [o for o in outcomes if isinstance(o, Exception)]
    assert len(won) == 1 and won[0].written and len(lost) == 7
    winner = won[0].record.entry["content_sha256"][:12]
    for exc in lost:
        assert isinstance(exc, VersionConflictError) and winner in str(exc)
    assert list(RemoteLog(settings).labels()) == ["2.0"] and RemoteLog(settings).revisions("2.0") == [0]
    # the same content from every racer: one write, the others find it and succeed
    same = _race(6, lambda i: RemoteLog(settings).record(entry("2.1", "c")))
    assert [o.written for o in same].count(True) == 1 and not any(isinstance(o, Exception) for o in same)


def test_concurrent_forces_never_overwrite_a_record(settings: Settings) -> None:
    RemoteLog(settings).record(entry("3.0", "a"))
    outcomes = _race(6, lambda i: RemoteLog(settings).record(entry("3.0", HEX[i + 1]), replace=True))
    won = [o for o in outcomes if not isinstance(o, Exception)]
    assert won and all(isinstance(o, VersionConflictError) for o in outcomes if o not in won)
    history = RemoteLog(settings).history("3.0")
    assert [r.revision for r in history] == list(range(len(won) + 1))  # one record per winner, no gap
    assert sorted(o.record.revision for o in won) == list(range(1, len(won) + 1))
    assert history[0].entry["content_sha256"] == "a" * 64


CORRUPT = {
    "not-json": b"{\"schema\": 1, \"kind\": \"vmeval-version-rec",
    "foreign": b'{"name": "something else", "version": "1.0"}',
    "wrong-version": record_body(entry("9.9", "a")),
    "newer-schema": json.dumps({"schema": 7, "kind": "vmeval-version-record", "entry": {"version": "1.0"}}).encode(),
    "a-field-of-another-type": record_body({**entry("1.0", "a"), "s3_uri": 20250115}),
}


@pytest.mark.parametrize("kind", list(CORRUPT))
def test_a_corrupt_or_foreign_record_is_named_by_key_and_never_overwritten(settings: Settings, kind: str) -> None:
    key = "versions/1.0/000.json"
    client = raw_client(settings)
    client.put_object(Bucket=settings.s3_bucket, Key=key, Body=CORRUPT[kind])
    with pytest.raises(VersionLogError) as err:
        list_versions(settings=settings, data_dir="data")
    assert err.value.key == key and f"s3://{settings.s3_bucket}/{key}" in str(err.value)
    assert "\n" not in str(err.value)
    assert f"s3://{settings.s3_bucket}/{key}" in error_line(run("versions", "summary"))
    data = make_tree(Path("data"), {"chess": 1})
    refused = run("publish", "--data-dir", data, "--version", "1.0", "--log", "--date", "20250115")
    assert key in error_line(refused)
    assert client.get_object(Bucket=settings.s3_bucket, Key=key)["Body"].read() == CORRUPT[kind]
    assert RemoteLog(settings).bucket.list_sizes("versions/") == {key: len(CORRUPT[kind])}
    assert not (data / "data_logging").exists()


def test_a_stray_object_beside_the_records_is_skipped_with_a_warning(settings: Settings) -> None:
    RemoteLog(settings).record(entry("1.0", "a"))
    raw_client(settings).put_object(Bucket=settings.s3_bucket, Key="versions/README.txt", Body=b"notes")
    result = ok("versions", "summary")
    assert result.stdout.startswith("v1.0 (")
    assert f"WARNING: s3://{settings.s3_bucket}/versions/README.txt is not a version record" in result.stderr


# --- the local log and the records ------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_s3_down_the_local_log_answers_with_a_warning(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    log_version("1.0", f"s3://{settings.s3_bucket}/20250115/data", data_dir="data", content_sha256="a" * 64)
    down = settings.with_(aws_endpoint_url=f"http://127.0.0.1:{closed_port()}", s3_attempts=1)
    listing = list_versions(settings=down)
    assert [e["version"] for e in listing.entries] == ["1.0"] and listing.sources == ["local"]
    (warning,) = listing.warnings
    assert f"s3://{settings.s3_bucket}/versions/" in warning and "answering without them" in warning
    monkeypatch.setenv("AWS_ENDPOINT_URL", down.aws_endpoint_url or "")
    monkeypatch.setenv("VMEVAL_S3_ATTEMPTS", "1")
    result = ok("versions", "summary")
    assert result.stdout.startswith("v1.0 (") and result.stderr.startswith("WARNING: could not read the S3 records")
    assert "cannot reach" in error_line(run("versions", "summary", "--source", "s3"))


def test_a_label_no_version_can_have_is_refused_before_any_remote_is_asked(settings: Settings) -> None:
    """``../x`` is not looked for on S3 or the Hub (both unreachable here, so a request would fail
    otherwise): one line saying what a label may be, from verify, diff and pull alike. A spelling
    only a hand-written local log holds is still found there."""
    from vmeval_hf.errors import ConfigError
    from vmeval_hf.versions.lookup import find_version

    down = settings.with_(aws_endpoint_url=f"http://127.0.0.1:{closed_port()}", s3_attempts=1,
                          hf_endpoint=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(ConfigError, match=r"invalid version label '\.\./x'"):
        find_version("../x", settings=down)
    for args in (("verify", "../x"), ("diff", "1.0", "../x"), ("pull", "../x", "--from", "hub", "--dest", "p")):
        assert "invalid version label '../x'" in error_line(run(*args))
    Path("data/data_logging").mkdir(parents=True)
    Path("data/data_logging/version_log.json").write_text(json.dumps({"versions": [{"version": "1.0 (first)"}]}))
    assert find_version("1.0 (first)", settings=down).source == "local"


def test_a_remote_only_version_survives_local_writes_and_sync_restores_it(settings: Settings) -> None:
    data = make_tree(Path("data"), {"chess": 2, "maze": 1})
    first = publish_version(data, settings=settings, log_entry=True, date="20250115")
    log = VersionLog(data_dir=data)
    log.path.unlink()  # the publisher's log is lost (or this is another machine with an old tree)
    change_tree(data)
    hub_before = _tags(settings)
    # the default label comes from the (now empty) local log: 1.0, recorded with other content on
    # S3, so it is refused before the Hub is touched, naming the next free label
    with pytest.raises(VersionConflictError, match=r"versions/1\.0/000\.json .* publish this content as 1\.1"):
        publish_version(data, settings=settings, log_entry=True, date="20250116")
    assert _tags(settings) == hub_before
    publish_version(data, settings=settings, version="1.1", log_entry=True, date="20250116")
    log_version("9.0", None, data_dir=data)  # and a seed-style local write
    assert [e["version"] for e in log.entries()] == ["1.1", "9.0"]
    listed = list_versions(settings=settings, data_dir=data)
    assert [e["version"] for e in listed.entries if e["version"] != "9.0"] == ["1.0", "1.1"]
    assert listed.get("1.0") == first.entry
    report = json.loads(ok("versions", "sync", "--data-dir", data, "--json").stdout)
    assert report["added"] == ["1.0"] and report["ok"] and report["local_only"] == ["9.0"]
    doc = json.loads(log.path.read_text(encoding="utf-8"))
    assert set(doc) == {"schema", "versions"} and doc["versions"][-1] == first.entry
    assert ok("versions", "sync", "--data-dir", data, "--push").stdout.splitlines()[1] == "recorded on S3: 9.0"
    assert sorted(RemoteLog(settings).labels()) == ["1.0", "1.1", "9.0"]


def _tags(settings: Settings) -> dict[str, str]:
    from vmeval_hf.hub import list_tags

    return list_tags(settings, settings.hf_repo)


def test_one_version_with_other_content_locally_and_on_s3_is_an_error_naming_both(settings: Settings) -> None:
    log_version("1.0", None, data_dir="data", content_sha256="a" * 64)
    RemoteLog(settings).record(entry("1.0", "b"))
    with pytest.raises(VersionConflictError, match="content sha256:aaaaaaaaaaaa in the local log but content "
                                                   "sha256:bbbbbbbbbbbb"):
        list_versions(settings=settings)
    line = error_line(run("versions"))
    assert "aaaaaaaaaaaa" in line and "bbbbbbbbbbbb" in line
    before = VersionLog(data_dir="data").path.read_bytes()
    synced = run("versions", "sync", "--source", "s3")
    assert synced.exit_code == 1
    assert any(x.startswith("conflict: s3://") and "aaaaaaaaaaaa" in x and "bbbbbbbbbbbb" in x
               for x in synced.stdout.splitlines())
    assert VersionLog(data_dir="data").path.read_bytes() == before
    assert ok("versions", "show", "1.0", "--source", "s3").stdout.rstrip().endswith("from      s3")


def test_force_replaces_the_record_says_so_and_a_stale_machine_catches_up(settings: Settings) -> None:
    data = make_tree(Path("data"), {"chess": 2})
    ok("publish", "--data-dir", data, "--log", "--date", "20250115")
    stale = Path("stale")
    (stale / "data_logging").mkdir(parents=True)
    (stale / "data_logging" / "version_log.json").write_bytes(VersionLog(data_dir=data).path.read_bytes())
    change_tree(data, add=("chess", 7))
    refused = run("publish", "--data-dir", data, "--version", "1.0", "--log", "--date", "20250116")
    assert "--force" in error_line(refused)
    forced = ok("publish", "--data-dir", data, "--version", "1.0", "--log", "--date", "20250116", "--force")
    bucket = settings.s3_bucket
    assert (f"replaced the shared record s3://{bucket}/versions/1.0/000.json with "
            f"s3://{bucket}/versions/1.0/001.json (--force)") in forced.stdout
    new = VersionLog(data_dir=data).get("1.0")
    assert new is not None and RemoteLog(settings).current("1.0").entry == new  # type: ignore[union-attr]
    seen = run("versions", "--data-dir", stale)  # the old entry, replaced elsewhere
    assert seen.exit_code == 0 and "replaced on S3 (--force elsewhere)" in seen.stderr
    assert "20250116" in seen.stdout
    assert ok("versions", "sync", "--data-dir", stale, "--source", "s3").stdout.startswith(
        f"synced {stale / 'data_logging' / 'version_log.json'} from s3: 0 added, 1 updated (1.0)")
    assert VersionLog(data_dir=stale).get("1.0") == new


# --- two publishers at once -------------------------------------------------------------------------


def _spawn(folder: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "vmeval_hf", "publish", "--data-dir", str(folder / "data"),
                             "--log", *args], cwd=folder, env=dict(os.environ), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _two_trees(root: Path) -> tuple[Path, Path]:
    one, two = root / "one", root / "two"
    make_tree(one / "data", {"chess": 2})
    make_tree(two / "data", {"chess": 2}, difficulty="hard")  # other content
    return one, two


@pytest.mark.slow
def test_two_machines_publishing_two_versions_at_once_both_keep_their_entry(settings: Settings,
                                                                             tmp_path: Path) -> None:
    one, two = _two_trees(tmp_path)
    procs = [_spawn(one, "--version", "2.0", "--date", "20250115"), _spawn(two, "--version", "2.1", "--date",
                                                                          "20250116")]
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-3000:]
    (tmp_path / "third").mkdir()
    for machine in (one, two, tmp_path / "third"):
        listed = json.loads(ok("versions", "--data-dir", machine / "data", "--json").stdout)["versions"]
        assert sorted(e["version"] for e in listed) == ["2.0", "2.1"], machine  # in publishing order
    assert ok("verify", "2.0", "--data-dir", two / "data").stdout.strip() == "version 2.0: verified"


@pytest.mark.slow
@pytest.mark.parametrize("hub", ["hub", "no-hub"])
def test_two_machines_publishing_one_version_with_other_content_leave_one_entry(settings: Settings, tmp_path: Path,
                                                                                hub: str) -> None:
    one, two = _two_trees(tmp_path)
    extra = ("--no-hub",) if hub == "no-hub" else ()
    procs = [_spawn(one, "--version", "3.0", "--date", "20250115", *extra),
             _spawn(two, "--version", "3.0", "--date", "20250116", *extra)]
    results = [(proc, *proc.communicate(timeout=240)) for proc in procs]
    assert sorted(p.returncode for p, _, _ in results) == [0, 1], [err[-2000:] for _, _, err in results]
    (loser_err,) = [err for p, _, err in results if p.returncode == 1]
    (line,) = [x for x in loser_err.splitlines() if x.startswith("ERROR:")]
    # refused by whichever check saw the winner first: the tag (at the pre-check or the tag race),
    # or the record (at the pre-check before the Hub, or the put-once race)
    assert "3.0" in line and ("different content" in line or "this one has" in line), line
    assert RemoteLog(settings).revisions("3.0") == [0]  # exactly one record
    record = RemoteLog(settings).current("3.0")
    assert record is not None
    logged = [VersionLog(data_dir=m / "data").get("3.0") for m in (one, two)]
    assert [e for e in logged if e is not None] == [record.entry]  # the winner's local line, no other
    if hub == "hub":
        from vmeval_hf.hub import list_tags

        assert list_tags(settings, settings.hf_repo)["3.0"] == record.entry["hf_commit"]


# --- versions sync ----------------------------------------------------------------------------------


def test_versions_sync_reports_a_moved_tag_an_unlogged_prefix_and_a_tag_without_prefix(settings: Settings) -> None:
    from huggingface_hub import CommitOperationAdd

    from vmeval_hf.hub import hub_api

    data = make_tree(Path("data"), {"chess": 2})
    ok("publish", "--data-dir", data, "--log", "--date", "20250115")
    logged = VersionLog(data_dir=data).get("1.0")
    assert logged is not None
    api = hub_api(settings)  # the tag is moved by hand
    other = api.create_commit(settings.hf_repo, [CommitOperationAdd("notes.txt", b"hand edit")],
                              commit_message="hand edit", repo_type="dataset")
    api.delete_tag(settings.hf_repo, tag="1.0", repo_type="dataset")
    api.create_tag(settings.hf_repo, tag="1.0", revision=other.oid, repo_type="dataset")
    ok("sync", "--data-dir", data, "--date", "20250120")  # a data-tree mirror nobody logged
    change_tree(data)
    ok("publish", "--data-dir", data, "--version", "1.1", "--no-s3")  # a tag nobody logged

    result = run("versions", "sync", "--data-dir", data)
    assert result.exit_code == 1, result.stderr
    lines = result.stdout.splitlines()
    assert any(x.startswith(f"moved-tag: hf://datasets/{settings.hf_repo}@1.0: tag 1.0 points at commit "
                            f"{other.oid[:12]}") and logged["hf_commit"][:12] in x for x in lines), lines
    assert any(x.startswith(f"prefix-without-entry: s3://{settings.s3_bucket}/20250120/") for x in lines), lines
    assert any(x.startswith(f"tag-without-prefix: hf://datasets/{settings.hf_repo}@1.1") for x in lines), lines
    assert lines[-1] == "3 disagreement(s)"
    report = json.loads(run("versions", "sync", "--data-dir", data, "--json").stdout)
    assert {d["kind"] for d in report["disagreements"]} == {"moved-tag", "prefix-without-entry"}
    added = VersionLog(data_dir=data).get("1.1")  # the first run added the Hub's 1.1
    assert added is not None and added["s3_uri"] is None and added["hf_commit"]


def test_versions_sync_finds_an_unlogged_version_by_its_prefix_and_warns_of_a_foreign_manifest(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A version published without ``--log`` (no entry, no record): sync adds it from its tag with
    the prefix whose ``MANIFEST.json`` holds that release (tag-without-record). Each prefix's
    manifest is read as a stream from a temporary copy, removed after. A prefix whose
    ``MANIFEST.json`` is not ours is a warning naming it, not a finding; once the logged prefix
    loses its manifest, the entry's prefix is missing-prefix."""
    import tempfile

    data = make_tree(Path("data"), {"chess": 2})
    ok("publish", "--data-dir", data, "--date", "20250115")  # neither logged nor recorded
    assert VersionLog(data_dir=data).get("1.0") is None and RemoteLog(settings).current("1.0") is None
    client = raw_client(settings)
    client.put_object(Bucket=settings.s3_bucket, Key="20250301/MANIFEST.json", Body=b'{"schema": 99, "files": []}')
    private = tmp_path / "tmp"  # this test's own temporary folder: other tests' come and go in parallel
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    made: list[str] = []
    real_mkdtemp = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *a, **k: made.append(real_mkdtemp(*a, **k)) or made[-1])

    result = run("versions", "sync", "--data-dir", data)
    assert result.exit_code == 1, result.stderr
    lines = result.stdout.splitlines()
    assert any(x.startswith(f"tag-without-record: hf://datasets/{settings.hf_repo}@1.0: published on the Hub and "
                            f"mirrored to s3://{settings.s3_bucket}/20250115/") for x in lines), lines
    assert lines[-1] == "1 disagreement(s)"
    assert (f"WARNING: s3://{settings.s3_bucket}/20250301/MANIFEST.json is not a schema-1 vmeval-hf manifest"
            in result.stderr), result.stderr
    assert any(Path(m).name.startswith("vmeval-manifest-") for m in made), made  # streamed from a copy
    assert list(private.iterdir()) == []
    added = VersionLog(data_dir=data).get("1.0")
    assert added is not None and added["s3_uri"] == f"s3://{settings.s3_bucket}/20250115/data"

    client.delete_object(Bucket=settings.s3_bucket, Key="20250115/MANIFEST.json")
    again = run("versions", "sync", "--data-dir", data)
    assert again.exit_code == 1, again.stderr
    assert f"missing-prefix: s3://{settings.s3_bucket}/20250115/: the log names this prefix" in again.stdout


def test_sync_log_is_shared_and_verifiable_from_another_machine(settings: Settings, tmp_path: Path) -> None:
    data = make_tree(Path("data"), {"chess": 1})
    logged = json.loads(ok("sync", "--data-dir", data, "--date", "20250115", "--log", "--json").stdout)["entry"]
    assert RemoteLog(settings).current("1.0").entry == logged  # type: ignore[union-attr]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert ok("verify", "1.0", "--data-dir", elsewhere / "data").stdout.strip() == "version 1.0: verified"
    refused = run("sync", "--data-dir", elsewhere / "data", "--date", "20250116", "--log", "--version", "1.0")
    assert "already recorded" in error_line(refused) and "--version 1.1" in error_line(refused)
