"""Big releases on the real Hub: ``--files-per-commit`` commits a release in batches, tags the last.

The Hub recommends fewer than about 100 files per commit. A release with more file changes than
``--files-per-commit`` goes to ``main`` in several commits (each naming the one before as its
parent), and only the last is tagged. These tests use
``--files-per-commit 3`` and ``--max-shard-size 1KB`` so that a five-question tree makes a release
of nine files, three commits. Outcomes are read through the clients on the other side: the
commits and trees the sandbox Hub holds, rows from ``datasets.load_dataset``, ``verify``, and the
requests a proxy saw (what a re-run after a crash sends).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import ok, run
from tests.support.hub import disable_parquet_export
from tests.support.reliability import Stage
from tests.support.trees import make_tree
from vmeval_hf.config import Settings
from vmeval_hf.errors import ConfigError
from vmeval_hf.sandbox import HubServer

BATCHED = ("--files-per-commit", "3", "--max-shard-size", "1KB")
DOMAINS = {"chess": 3, "maze": 2}
HOLD = 60.0  # a held request outlives the publisher: it is killed long before


def _api(settings: Settings) -> Any:
    from vmeval_hf.hub import hub_api

    return hub_api(settings)


def _files(api: Any, repo: str, revision: str) -> dict[str, str]:
    """``{path: LFS sha256 or git blob sha1}`` at ``revision``."""
    entries = api.list_repo_tree(repo, repo_type="dataset", revision=revision, recursive=True)
    return {e.path: e.lfs.sha256 if e.lfs else e.blob_id for e in entries if hasattr(e, "blob_id")}


def _history(api: Any, repo: str, revision: str) -> list[tuple[str, str, set[str]]]:
    """``(sha, title, paths changed against the commit before)`` for each commit of ``revision``
    after the repo's initial commit, oldest first."""
    commits = list(reversed(api.list_repo_commits(repo, repo_type="dataset", revision=revision)))
    out = []
    for parent, commit in zip(commits, commits[1:]):
        before, after = _files(api, repo, parent.commit_id), _files(api, repo, commit.commit_id)
        out.append((commit.commit_id, commit.title, {p for p in before.keys() | after.keys()
                                                     if before.get(p) != after.get(p)}))
    return out


def _refs(api: Any, repo: str) -> tuple[dict[str, str], list[str]]:
    refs = api.list_repo_refs(repo, repo_type="dataset")
    return {t.name: t.target_commit for t in refs.tags}, sorted(b.name for b in refs.branches)


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub_repo: str, hub_server: HubServer) -> Path:
    """A data tree (chess x3, maze x2) in an empty working folder; the CLI publishes to ``hub_repo``."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("VMEVAL_HF_REPO", hub_repo)
    return make_tree(tmp_path / "data", DOMAINS)


def _release_paths(data: Path) -> set[str]:
    manifest = json.loads((data / "releases" / "1.0" / "vmeval_release.json").read_text(encoding="utf-8"))
    return {f["path"] for f in manifest["files"]} | {"vmeval_release.json"}


def test_a_batched_publish_is_several_commits_one_tag_and_loads_and_verifies(
        tree: Path, hub_repo: str, fresh_hf_cache: Path) -> None:
    ok("publish", "--data-dir", tree, "--no-s3", "--log", *BATCHED)
    api = _api(Settings.from_env())
    release = _release_paths(tree)
    assert len(release) == 9  # README, 2 previews, 5 shards, the manifest

    tags, branches = _refs(api, hub_repo)
    assert list(tags) == ["1.0"] and branches == ["main"]  # one tag, no other branch
    staged = _history(api, hub_repo, "1.0")
    assert [len(changed) for _, _, changed in staged] == [3, 3, 3]
    assert staged[-1][0] == tags["1.0"]  # the last commit is the tagged one ...
    assert {"README.md", "vmeval_release.json"} <= staged[-1][2]  # ... and the only one with the manifest
    assert all("vmeval_release.json" not in changed for _, _, changed in staged[:-1])
    assert set().union(*(changed for _, _, changed in staged)) == release
    assert [title for _, title, _ in staged] == ["Release 1.0 (part 1 of 3)", "Release 1.0 (part 2 of 3)",
                                                 "Release 1.0"]
    # the commits are main's own: three in all for the version, main's head is the tagged commit
    assert _history(api, hub_repo, "main") == staged

    import datasets

    disable_parquet_export()
    rows = datasets.load_dataset(hub_repo, revision="1.0", split="test")
    prompts = {p.parent.name: p.read_text(encoding="utf-8") for p in (tree / "questions").glob("*_task/*/prompt.txt")}
    assert dict(zip(rows["id"], rows["prompt"])) == prompts and len(prompts) == 5
    assert ok("verify", "1.0", "--data-dir", tree).stdout.strip() == "version 1.0: verified"
    listed = json.loads(ok("versions", "summary", "--source", "hub", "--repo", hub_repo, "--json",
                           "--data-dir", tree).stdout)["versions"]
    assert [(v["version"], v["hf_commit"]) for v in listed] == [("1.0", tags["1.0"])]


def test_verify_reads_the_tagged_tree_not_main(tree: Path, hub_repo: str) -> None:
    """After a batched publish, another writer breaks ``main``: the version still verifies, because
    ``verify`` checks the commit the tag names."""
    from huggingface_hub import CommitOperationDelete

    ok("publish", "--data-dir", tree, "--no-s3", "--log", *BATCHED)
    api = _api(Settings.from_env())
    shard = sorted(p for p in _files(api, hub_repo, "main") if p.endswith(".parquet"))[0]
    api.create_commit(hub_repo, [CommitOperationDelete(shard)], commit_message="someone else", repo_type="dataset")
    assert shard not in _files(api, hub_repo, "main")
    assert ok("verify", "1.0", "--data-dir", tree).stdout.strip() == "version 1.0: verified"


def test_the_default_commits_a_small_release_once(tree: Path, hub_repo: str) -> None:
    """One commit and one tag per version: the tag names ``main``'s head, no other branch is made."""
    ok("publish", "--data-dir", tree, "--no-s3", "--max-shard-size", "1KB")
    api = _api(Settings.from_env())
    tags, branches = _refs(api, hub_repo)
    ((sha, title, changed),) = _history(api, hub_repo, "1.0")
    assert sha == tags["1.0"] and title == "Release 1.0" and changed == _release_paths(tree)
    assert _history(api, hub_repo, "main") == [(sha, title, changed)] and branches == ["main"]


@pytest.mark.parametrize("value", ["0", "-1", "2.5", "many"])
def test_a_bad_files_per_commit_is_refused_before_anything(tree: Path, hub_repo: str, hub_server: HubServer,
                                                           value: str) -> None:
    before = hub_server.requests
    result = run("publish", "--data-dir", tree, "--no-s3", "--log", "--files-per-commit", value)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '--files-per-commit': '{value}' is not a whole number of at least 1" in result.stderr
    assert "Traceback" not in result.output
    assert hub_server.requests == before  # nothing asked of the Hub, not even a repo
    assert not (tree / "releases").exists() and not (tree / "data_logging").exists()


@pytest.mark.parametrize("value", [0, -3, 2.5, "3", True])
def test_the_library_refuses_a_bad_files_per_commit_before_anything(tree: Path, hub_repo: str,
                                                                    hub_server: HubServer, value: Any) -> None:
    from vmeval_hf.hub import publish_to_hub
    from vmeval_hf.publish import publish_version
    from vmeval_hf.release.build import build_release

    settings = Settings.from_env()
    before = hub_server.requests
    with pytest.raises(ConfigError, match=r"--files-per-commit must be a whole number of at least 1"):
        publish_version(tree, settings=settings, s3=False, files_per_commit=value)
    assert not (tree / "releases").exists()
    built = build_release(tree, tree.parent / "release", version="1.0", repo_id=hub_repo)
    with pytest.raises(ConfigError, match=r"--files-per-commit must be a whole number of at least 1"):
        publish_to_hub(built.out, settings=settings, repo_id=hub_repo, files_per_commit=value)
    assert hub_server.requests == before


# -- a crash between batches --------------------------------------------------------------------------


_LFS_PUT = re.compile(r"^/__lfs/([0-9a-f]{64})")


def _lfs_puts(stage: Stage) -> list[str]:
    """The sha256 of every LFS object the publisher sent (PUT) through the Hub proxy so far."""
    return [m.group(1) for r in stage.hub_proxy.records
            if r.method == "PUT" and r.outcome == "forwarded" and (m := _LFS_PUT.match(r.path))]


@pytest.mark.slow
def test_a_crash_between_batches_then_a_rerun_sends_only_what_is_missing(stage: Stage) -> None:
    args = stage.publish_args(*BATCHED)
    # hold the second commit on main: the first has landed, the second's LFS objects are up
    stage.hub_proxy.add("stall", stall=HOLD, method="POST", path=r"/commit/main(\?|$)", skip=1)
    proc = stage.spawn(*args)
    stage.kill_when(proc, lambda: stage.hub_proxy.count(outcome="stall") > 0)
    sent_before = set(_lfs_puts(stage))

    # no version: no tag, nothing listed or verified; main holds the first batch only, and no release
    # manifest (it goes in the last commit)
    stage.assert_no_half_version("1.0")
    api = stage.api()
    tags, branches = _refs(api, stage.repo)
    assert tags == {} and branches == ["main"]
    listed = stage.run("versions", "summary", "--source", "hub", "--json")
    assert listed.returncode == 0 and "1.0" not in listed.stdout, listed.stderr[-2000:]
    refused = stage.run("verify", "1.0", "--source", "hub")
    assert refused.returncode != 0 and "1.0" in refused.stderr
    landed = _files(api, stage.repo, "main")
    before = [sha for sha, _, _ in _history(api, stage.repo, "main")]
    assert len(before) == 1 and "vmeval_release.json" not in landed
    assert len(set(landed) - {".gitattributes"}) == 3  # the first batch

    stage.hub_proxy.clear()
    again = stage.run(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    stage.assert_published("1.0")
    tagged = stage.tags()["1.0"]
    release = _files(api, stage.repo, tagged)
    history = _history(api, stage.repo, tagged)
    assert [sha for sha, _, _ in history[:1]] == before  # the re-run built on the crashed run's commit
    resent = [changed for _, _, changed in history[1:]]
    missing = {p for p in release if p != ".gitattributes" and landed.get(p) != release[p]}
    assert len(resent) == 2 and all(len(c) <= 3 for c in resent)
    assert set().union(*resent) == missing and not missing & set(landed)  # only the missing files
    # and no LFS object went up twice: the re-run sent only objects of missing files the crashed run had not
    release_dir = stage.data / "releases" / "1.0"
    sizes = {release[p]: (release_dir / p).stat().st_size for p in missing}
    rerun = _lfs_puts(stage)
    assert rerun and len(rerun) == len(set(rerun)) and set(rerun) <= set(sizes) - sent_before
    assert stage.hub_proxy.sent_bytes("PUT", r"^/__lfs/") == sum(sizes[sha] for sha in rerun)
    assert _refs(api, stage.repo) == ({"1.0": tagged}, ["main"])  # main is the tagged commit
