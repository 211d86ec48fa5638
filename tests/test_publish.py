"""``publish_version`` / ``verify_version`` / ``pull_version``: the release flow through the library API.

Against the session's sandbox Hub and a fresh moto bucket reached through a :class:`FaultProxy`,
so a test can fail chosen S3 requests and count what was sent. The CLI surface of the same
flow is in ``test_cli_publish.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.hub import HUB_TOKEN
from tests.support.s3 import raw_client
from tests.support.trees import change_tree, make_tree
from vmeval_hf.config import Settings
from vmeval_hf.errors import (
    ConfigError,
    IntegrityError,
    RemoteError,
    S3AuthError,
    S3ConflictError,
    VersionConflictError,
    VersionLogError,
)
from vmeval_hf.publish import publish_version, pull_version, verify_version
from vmeval_hf.sandbox import HubServer
from vmeval_hf.versions import VersionLog, log_version

DAY, DAY_B = "20250115", "20250115-b"


@pytest.fixture
def settings(s3_faults: Any, hub_server: HubServer, hub_repo: str) -> Settings:
    """The session Hub (a fresh repo) and a fresh bucket reached through the fault proxy."""
    return s3_faults.settings.with_(hf_endpoint=hub_server.url, hf_token=HUB_TOKEN, hf_repo=hub_repo)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "data", {"chess": 2, "maze": 1})


def _direct(settings: Settings, s3_faults: Any) -> Settings:
    return settings.with_(aws_endpoint_url=s3_faults.proxy.upstream)


def _keys(settings: Settings, prefix: str = "") -> set[str]:
    pages = raw_client(settings).get_paginator("list_objects_v2").paginate(Bucket=settings.s3_bucket,
                                                                            Prefix=prefix)
    return {o["Key"] for page in pages for o in page.get("Contents", ())}


def _hub_state(settings: Settings) -> tuple[list[str], dict[str, str]]:
    """(commits on main, tag -> commit) of the test repo; empty if it does not exist yet."""
    from huggingface_hub.errors import RepositoryNotFoundError

    from vmeval_hf.hub import hub_api

    api = hub_api(settings)
    try:
        commits = [c.commit_id for c in api.list_repo_commits(settings.hf_repo, repo_type="dataset")]
        refs = api.list_repo_refs(settings.hf_repo, repo_type="dataset")
    except RepositoryNotFoundError:
        return [], {}
    return commits, {t.name: t.target_commit for t in refs.tags}


def _log(data: Path) -> Path:
    return data / "data_logging" / "version_log.json"


@pytest.mark.parametrize("where", ["manifest", "data"])
def test_s3_failure_leaves_no_log_entry_and_a_rerun_completes(data: Path, settings: Settings, s3_faults: Any,
                                                              where: str) -> None:
    proxy = s3_faults.proxy
    if where == "manifest":  # everything lands but the MANIFEST.json that marks the prefix complete
        proxy.add(403, method="PUT", path=r"/MANIFEST\.json")
    else:  # the upload stops part-way through the question tree
        proxy.add(403, method="PUT", path=r"/data/questions/", skip=4)
    with pytest.raises(S3AuthError) as err:
        publish_version(data, settings=settings, log_entry=True, date=DAY)
    assert isinstance(err.value, RemoteError) and err.value.side == "s3"
    assert not _log(data).exists()
    direct = _direct(settings, s3_faults)
    landed = _keys(direct, f"{DAY}/")
    assert f"{DAY}/MANIFEST.json" not in landed and landed
    commits, tags = _hub_state(direct)
    assert set(tags) == {"1.0"}  # the Hub side had finished

    proxy.clear()
    stages: list[str] = []
    result = publish_version(data, settings=settings, log_entry=True, date=DAY,
                             progress=lambda stage, detail: stages.append(stage))
    assert stages == ["validate", "build", "hub", "s3", "verify", "log"]
    assert result.hub.noop and _hub_state(direct) == (commits, tags)  # no second Hub commit
    assert result.s3.skipped == len(landed)  # only what was missing is sent
    assert proxy.count("PUT") == result.s3.uploaded + 2  # + MANIFEST.json and the version record
    (entry,) = VersionLog(data_dir=data).entries()
    assert entry == result.entry
    assert entry["hf_commit"] == tags["1.0"] and entry["s3_uri"] == f"s3://{settings.s3_bucket}/{DAY}/data"
    assert verify_version("1.0", settings=settings, data_dir=data) == []


def test_a_log_broken_during_the_publish_is_left_untouched_and_a_rerun_is_a_noop(data: Path, settings: Settings,
                                                                                   s3_faults: Any) -> None:
    broken = b'{"schema": 1, "versions": [\n'

    def progress(stage: str, detail: str) -> None:
        if stage == "verify":  # another hand breaks the log while the upload runs
            _log(data).parent.mkdir(parents=True, exist_ok=True)
            _log(data).write_bytes(broken)

    with pytest.raises(VersionLogError, match=r"version_log\.json:2:"):
        publish_version(data, settings=settings, log_entry=True, date=DAY, progress=progress)
    assert _log(data).read_bytes() == broken
    _log(data).unlink()
    commits_tags = _hub_state(_direct(settings, s3_faults))
    s3_faults.proxy.clear()
    # published and recorded on S3 (the shared record is written before the local line), so the
    # next default version is 1.1: re-running 1.0 finds both sides and the record done, sends
    # nothing, and writes the local line from the record
    again = publish_version(data, settings=settings, version="1.0", log_entry=True, date=DAY)
    assert again.hub.noop and again.s3.already_complete and again.s3.uploaded == 0
    assert again.record is not None and not again.record.written
    assert s3_faults.proxy.count("PUT") == s3_faults.proxy.count("POST") == 0
    assert _hub_state(_direct(settings, s3_faults)) == commits_tags
    (entry,) = VersionLog(data_dir=data).entries()
    assert entry == again.entry and entry["hf_commit"] == commits_tags[1]["1.0"]


def test_taken_prefix_refused_before_the_hub_is_touched_and_force_replaces(data: Path, settings: Settings,
                                                                          s3_faults: Any) -> None:
    first = publish_version(data, settings=settings, log_entry=True, date=DAY)
    direct = _direct(settings, s3_faults)
    hub_before, log_before = _hub_state(direct), _log(data).read_bytes()
    change_tree(data, qid="chess_0001", prompt="Changed.", add=("maze", 3))
    # 1.1 on the day 1.0 was mirrored: the prefix is never overwritten, and the Hub is not half-updated
    with pytest.raises(S3ConflictError, match=f"holds version 1.0 .* --date {DAY_B}"):
        publish_version(data, settings=settings, log_entry=True, date=DAY)
    # other content under 1.0: refused without --force ...
    with pytest.raises(VersionConflictError, match="publish as 1.1, or pass --force"):
        publish_version(data, settings=settings, version="1.0", log_entry=True, date=DAY_B)
    # ... and with --force, still not into 1.0's prefix (the logged date is the default)
    with pytest.raises(S3ConflictError, match=f"--date {DAY_B}"):
        publish_version(data, settings=settings, version="1.0", log_entry=True, force=True)
    assert _hub_state(direct) == hub_before
    assert _log(data).read_bytes() == log_before

    forced = publish_version(data, settings=settings, version="1.0", log_entry=True, date=DAY_B, force=True)
    assert forced.hub.tag_moved and forced.hub.commit != first.hub.commit
    (entry,) = VersionLog(data_dir=data).entries()  # replaced in place, not appended
    assert entry["hf_commit"] == _hub_state(direct)[1]["1.0"] == forced.hub.commit
    assert entry["s3_uri"].endswith(f"/{DAY_B}/data") and entry["questions"] == 4
    assert entry["content_sha256"] == forced.content_sha256 != first.content_sha256
    assert verify_version("1.0", settings=settings, data_dir=data) == []


def test_dry_run_builds_in_a_temporary_folder_only(data: Path, settings: Settings, s3_faults: Any,
                                                   hub_server: HubServer) -> None:
    before = hub_server.requests
    result = publish_version(data, settings=settings, log_entry=True, date=DAY, dry_run=True)
    assert result.dry_run and result.release_dir is None and result.entry is None
    assert [line.split(":")[0] for line in result.plan] == ["hub", "s3"]
    assert hub_server.requests == before and s3_faults.proxy.records == []
    assert not (data / "releases").exists() and not _log(data).exists()


def test_verify_and_pull_need_a_logged_version_and_side(data: Path, settings: Settings, tmp_path: Path,
                                                        hub_server: HubServer) -> None:
    log_version("1.0", "s3://b/20250115/data", data_dir=data)
    log_version("1.1", None, data_dir=data, hf_repo="o/r", hf_commit="a" * 40)
    before = hub_server.requests
    with pytest.raises(ConfigError, match="2.0 is not in the version log"):
        verify_version("2.0", settings=settings, data_dir=data)
    with pytest.raises(ConfigError, match="not in the version log"):
        pull_version("2.0", settings=settings, dest=tmp_path / "x", data_dir=data)
    with pytest.raises(ConfigError, match="not published to the Hub; pull it with --from s3"):
        pull_version("1.0", settings=settings, source="hub", dest=tmp_path / "x", data_dir=data)
    with pytest.raises(ConfigError, match="not mirrored to S3; pull it with --from hub"):
        pull_version("1.1", settings=settings, source="s3", dest=tmp_path / "x", data_dir=data)
    assert hub_server.requests == before and not (tmp_path / "x").exists()


def test_a_tree_edited_between_build_and_mirror_is_refused_and_nothing_is_marked_complete(
        data: Path, settings: Settings, s3_faults: Any) -> None:
    """The S3 mirror checks the tree it sends against the built release's sources before anything
    is sent: no object, no MANIFEST.json (a permanent completion mark over other bytes), no log."""
    prompt = data / "questions" / "maze_task" / "maze_0000" / "prompt.txt"

    def edit_before_the_mirror(stage: str, detail: str) -> None:
        if stage == "s3":  # after the build (and the Hub), before the mirror
            prompt.write_text("Edited after the build.", encoding="utf-8")

    with pytest.raises(IntegrityError) as err:
        publish_version(data, settings=settings, log_entry=True, date=DAY, progress=edit_before_the_mirror)
    assert str(prompt) in str(err.value) and "release 1.0" in str(err.value) and "\n" not in str(err.value)
    direct = _direct(settings, s3_faults)
    assert _keys(direct, f"{DAY}/") == set()  # nothing sent, so nothing marked complete
    assert s3_faults.proxy.count("PUT", rf"/{DAY}/") == s3_faults.proxy.count("POST", rf"/{DAY}/") == 0
    assert not _log(data).exists()


def test_the_same_questions_in_other_release_files_are_never_called_published(data: Path, settings: Settings,
                                                                              s3_faults: Any) -> None:
    """Issue 15 item 5: the same sources cut into other shards are not "already published" (the log
    holds release_sha256, every file); under --force the prefix that holds the first build's files is
    refused before the Hub is touched (a published prefix is never overwritten)."""
    publish_version(data, settings=settings, log_entry=True, date=DAY)
    direct = _direct(settings, s3_faults)
    hub_before, log_before = _hub_state(direct), _log(data).read_bytes()
    with pytest.raises(VersionConflictError, match=r"these questions but other release files.*--force"):
        publish_version(data, settings=settings, version="1.0", log_entry=True, date=DAY, max_shard_size="1KB")
    with pytest.raises(S3ConflictError, match=rf"same questions but other release files.*--date {DAY_B}"):
        publish_version(data, settings=settings, version="1.0", log_entry=True, date=DAY, max_shard_size="1KB",
                        force=True)
    assert _hub_state(direct) == hub_before and _log(data).read_bytes() == log_before
    # releases/1.0 now holds the refused build; verify reads the logged release (the Hub's, at the logged
    # commit), not that copy
    assert verify_version("1.0", settings=settings, data_dir=data) == []


def test_a_machine_without_the_release_verifies_and_pulls_from_the_hubs_copy_streamed(
        data: Path, settings: Settings, s3_faults: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``verify`` and ``pull --from s3`` where ``releases/1.0`` is gone (another machine with the log):
    the Hub's ``vmeval_release.json`` at the logged commit is downloaded to a temporary folder and
    its sources streamed from there (the whole-document read is never called), both sides still
    compared source by source: an S3 ``MANIFEST.json`` entry rewritten is named, nothing pulled."""
    import json
    import shutil

    import vmeval_hf.publish as publish_module
    from vmeval_hf._shared.fs import canonical_json

    publish_version(data, settings=settings, log_entry=True, date=DAY)
    shutil.rmtree(data / "releases")

    def whole_read(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the Hub's manifest was read whole")

    monkeypatch.setattr(publish_module, "remote_manifest", whole_read)
    private = tmp_path / "tmp"  # this test's own temporary folder: other tests' come and go in parallel
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    assert verify_version("1.0", settings=settings, data_dir=data) == []
    assert list(private.iterdir()) == []  # the download is removed
    pulled = pull_version("1.0", settings=settings, dest=tmp_path / "copy", data_dir=data)
    assert pulled["files"] == 3 * 4 + 1  # four files a question and vmeval_dataset.json

    direct = _direct(settings, s3_faults)
    client = raw_client(direct)
    key = f"{DAY}/MANIFEST.json"
    doc = json.loads(client.get_object(Bucket=direct.s3_bucket, Key=key)["Body"].read())
    target = next(f for f in doc["files"] if f["key"].endswith("maze_0000/prompt.txt"))
    target["sha256"] = "0" * 64  # the object and its entry rewritten together: only the release says so
    client.put_object(Bucket=direct.s3_bucket, Key=key, Body=canonical_json(doc).encode())
    problems = verify_version("1.0", settings=settings, data_dir=data)
    assert any(p.where.endswith("maze_0000/prompt.txt") and p.problem == "sha256" for p in problems), problems
    with pytest.raises(IntegrityError, match="maze_0000/prompt.txt"):
        pull_version("1.0", settings=settings, dest=tmp_path / "again", data_dir=data)
    assert not (tmp_path / "again").exists()
