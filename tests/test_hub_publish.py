"""Publishing a release as a Hub revision, against the sandbox Hub over HTTP, clients unmodified."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.hub import HUB_TOKEN, disable_parquet_export
from tests.support.trees import change_tree, make_tree
from vmeval_hf.config import Settings
from vmeval_hf.errors import (
    HubAuthError,
    HubError,
    HubNotFoundError,
    IntegrityError,
    LocalFileError,
    VersionConflictError,
)
from vmeval_hf.hub import publish_to_hub, pull_hub, verify_hub
from vmeval_hf.release.build import build_release


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env()


def _build(data: Path, out: Path, version: str, repo: str):  # noqa: ANN202
    return build_release(data, out, version=version, repo_id=repo)


def _change(data: Path) -> None:
    """New content: chess_0000's prompt edited, maze_0007 added, maze_0000 removed."""
    change_tree(data, prompt="A different prompt for 1.1", add=("maze", 7), remove="maze_0000")


def _commits(repo: str, settings: Settings) -> list[str]:
    from vmeval_hf.hub import hub_api

    return [c.commit_id for c in hub_api(settings).list_repo_commits(repo, repo_type="dataset")]


def _load(repo: str, revision: str, config: str | None = None, streaming: bool = False):  # noqa: ANN202
    import datasets

    disable_parquet_export()
    args = (repo, config) if config else (repo,)
    return datasets.load_dataset(*args, revision=revision, split="test", streaming=streaming)


def _raw_bytes(ds) -> dict[str, tuple[bytes, bytes | None, str]]:  # noqa: ANN001
    from datasets import Image

    ds = ds.cast_column("first_frame", Image(decode=False)).cast_column("final_frame", Image(decode=False))
    return {r["id"]: (r["first_frame"]["bytes"], (r["final_frame"] or {}).get("bytes"), r["prompt"]) for r in ds}


def _source_bytes(data: Path) -> dict[str, tuple[bytes, bytes | None, str]]:
    out = {}
    for folder in sorted((data / "questions").glob("*_task/*")):
        final = folder / "final_frame.png"
        out[folder.name] = ((folder / "first_frame.png").read_bytes(),
                            final.read_bytes() if final.exists() else None,
                            (folder / "prompt.txt").read_text(encoding="utf-8"))
    return out


def test_two_versions_load_back_exactly(tmp_path: Path, hub_repo: str, settings: Settings,
                                        fresh_hf_cache: Path) -> None:
    from vmeval_hf.hub import hub_api

    data = make_tree(tmp_path / "data", {"chess": 3, "maze": 2})
    v10_sources = _source_bytes(data)
    r10 = publish_to_hub(_build(data, tmp_path / "r10", "1.0", hub_repo).out, settings=settings, repo_id=hub_repo)
    _change(data)
    v11_sources = _source_bytes(data)
    b11 = _build(data, tmp_path / "r11", "1.1", hub_repo)
    r11 = publish_to_hub(b11.out, settings=settings, repo_id=hub_repo)
    assert r10.commit != r11.commit and not r10.noop and not r11.noop

    assert _raw_bytes(_load(hub_repo, "1.0")) == v10_sources
    assert _raw_bytes(_load(hub_repo, "1.1")) == v11_sources
    maze10 = _load(hub_repo, "1.0", "maze")
    assert sorted(maze10["id"]) == ["maze_0000", "maze_0001"]
    assert sorted(_load(hub_repo, "1.1", "maze")["id"]) == ["maze_0001", "maze_0007"]
    streamed = [row["id"] for row in _load(hub_repo, "1.0", streaming=True)]
    assert sorted(streamed) == sorted(v10_sources)
    assert _load(hub_repo, "1.1")[0]["first_frame"].size == (16, 12)

    api = hub_api(settings)
    refs = api.list_repo_refs(hub_repo, repo_type="dataset")
    assert {t.name: t.target_commit for t in refs.tags} == {"1.0": r10.commit, "1.1": r11.commit}
    main_files = set(api.list_repo_files(hub_repo, repo_type="dataset", revision="main"))
    assert main_files == {".gitattributes", "vmeval_release.json", *(f["path"] for f in b11.manifest["files"])}


def test_republish_same_content_makes_no_commit(tmp_path: Path, hub_repo: str, settings: Settings) -> None:
    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    first = publish_to_hub(_build(data, tmp_path / "a", "1.0", hub_repo).out, settings=settings, repo_id=hub_repo)
    before = _commits(hub_repo, settings)
    # rebuilt in another folder: byte-identical release, so the publish is a no-op
    again = publish_to_hub(_build(data, tmp_path / "b", "1.0", hub_repo).out, settings=settings, repo_id=hub_repo)
    assert again.noop and again.commit == first.commit
    assert _commits(hub_repo, settings) == before


def test_different_content_under_existing_tag_is_refused(tmp_path: Path, hub_repo: str,
                                                         settings: Settings) -> None:
    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    first = publish_to_hub(_build(data, tmp_path / "a", "1.0", hub_repo).out, settings=settings, repo_id=hub_repo)
    before = _commits(hub_repo, settings)
    _change(data)
    changed = _build(data, tmp_path / "b", "1.0", hub_repo).out
    with pytest.raises(VersionConflictError, match=r"1\.0 is already published.*new version.*--force"):
        publish_to_hub(changed, settings=settings, repo_id=hub_repo)
    assert _commits(hub_repo, settings) == before

    moved = publish_to_hub(changed, settings=settings, repo_id=hub_repo, force=True)
    assert moved.tag_moved and moved.commit != first.commit
    assert sorted(_load(hub_repo, "1.0")["id"])[-1] == "maze_0007"


@pytest.mark.parametrize("token", ["hf_wrong_token_abcdef", None])
def test_wrong_or_missing_token_is_refused_and_changes_nothing(tmp_path: Path, hub_repo: str,
                                                               settings: Settings, token: str | None,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    release = _build(data, tmp_path / "a", "1.0", hub_repo).out
    publish_to_hub(release, settings=settings, repo_id=hub_repo)
    before = _commits(hub_repo, settings)
    _change(data)
    other = _build(data, tmp_path / "b", "1.1", hub_repo).out
    if token is None:  # no token at all: also hide any saved login
        monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no-token"))
        monkeypatch.delenv("HF_TOKEN", raising=False)
        from huggingface_hub import constants

        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    bad = settings.with_(hf_token=token) if token else Settings(hf_endpoint=settings.hf_endpoint)
    with pytest.raises(HubAuthError) as err:
        publish_to_hub(other, settings=bad, repo_id=hub_repo)
    assert "HF_TOKEN" in str(err.value)
    assert HUB_TOKEN not in str(err.value) and "hf_wrong_token_abcdef" not in str(err.value)
    assert _commits(hub_repo, settings) == before


def test_verify_hub_reports_replaced_shard_and_moved_tag(tmp_path: Path, hub_repo: str,
                                                         settings: Settings) -> None:
    from huggingface_hub import CommitOperationAdd

    from vmeval_hf.hub import hub_api

    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    built = _build(data, tmp_path / "a", "1.0", hub_repo)
    result = publish_to_hub(built.out, settings=settings, repo_id=hub_repo)
    assert verify_hub(settings=settings, repo_id=hub_repo, version="1.0", expected=built.manifest,
                      expected_commit=result.commit) == []

    api = hub_api(settings)
    shard = built.manifest["shards"][0]["path"]
    evil = api.create_commit(hub_repo, [CommitOperationAdd(shard, b"PAR1 not the real shard PAR1")],
                             commit_message="tamper", repo_type="dataset")
    api.delete_tag(hub_repo, tag="1.0", repo_type="dataset")
    api.create_tag(hub_repo, tag="1.0", revision=evil.oid, repo_type="dataset")
    problems = verify_hub(settings=settings, repo_id=hub_repo, version="1.0", expected=built.manifest,
                          expected_commit=result.commit)
    kinds = {(p.problem, p.where.rsplit("@1.0", 1)[-1]) for p in problems}
    assert ("moved", "") in kinds
    assert ("size", f"/{shard}") in kinds


def test_verify_settles_the_release_manifest_by_its_listed_hash_and_reads_it_only_when_it_differs(
        tmp_path: Path, hub_repo: str, settings: Settings, hub_server) -> None:  # noqa: ANN001
    """The tagged ``vmeval_release.json`` as published: verified from the tree listing's hash, the
    file not downloaded. Re-written in another JSON layout, the same content: downloaded, compared
    by content, verified. Other content under the same name: named."""


    from tests.support.s3 import FaultProxy

    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    built = _build(data, tmp_path / "a", "1.0", hub_repo)
    publish_to_hub(built.out, settings=settings, repo_id=hub_repo)
    manifest_get = r"/resolve/.*vmeval_release\.json"

    def verify(expected: dict) -> tuple[list, int]:
        with FaultProxy(hub_server.url, rewrite_urls=True) as proxy:
            problems = verify_hub(settings=settings.with_(hf_endpoint=proxy.url), repo_id=hub_repo, version="1.0",
                                  expected=expected)
            return problems, proxy.count(method="GET", path=manifest_get)

    assert verify(built.manifest) == ([], 0)

    _retag_relaid(settings, hub_repo, built.manifest)
    assert verify(built.manifest) == ([], 1)

    other = {**built.manifest, "content_sha256": "0" * 64}
    problems, reads = verify(other)
    assert reads == 1
    assert [(p.problem, p.detail) for p in problems if p.where.endswith("vmeval_release.json")] == [
        ("sha256", "content_sha256 differs from the recorded release")]


def test_a_release_manifest_the_repo_keeps_in_lfs_is_compared_by_its_sha256(
        tmp_path: Path, hub_repo: str, settings: Settings, hub_server) -> None:  # noqa: ANN001
    """A repo whose ``.gitattributes`` sends ``vmeval_release.json`` through LFS (as the Hub does
    for any file over 10 MB: the manifest of about 15,000 questions or more): ``main`` holding this
    very release untagged (a publish stopped before its tag) is tagged with nothing sent; another
    release's manifest is replaced, and the version verifies."""
    import hashlib

    from huggingface_hub import CommitOperationAdd

    from vmeval_hf.hub import hub_api

    api = hub_api(settings)
    api.create_repo(hub_repo, repo_type="dataset")
    api.create_commit(hub_repo, [CommitOperationAdd(".gitattributes", b"vmeval_release.json filter=lfs diff=lfs "
                                                    b"merge=lfs -text\n*.parquet filter=lfs diff=lfs merge=lfs -text\n")],
                      commit_message="manifests in LFS", repo_type="dataset")

    def stored(revision: str) -> str | None:
        (entry,) = api.get_paths_info(hub_repo, ["vmeval_release.json"], repo_type="dataset", revision=revision)
        return entry.lfs.sha256 if entry.lfs else None

    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    first = _build(data, tmp_path / "a", "1.0", hub_repo)
    published = publish_to_hub(first.out, settings=settings, repo_id=hub_repo)
    assert stored("1.0") == hashlib.sha256((first.out / "vmeval_release.json").read_bytes()).hexdigest()

    api.delete_tag(hub_repo, tag="1.0", repo_type="dataset")  # main holds the release, untagged
    before, commits = hub_server.traffic, _commits(hub_repo, settings)
    again = publish_to_hub(first.out, settings=settings, repo_id=hub_repo)
    sent = {k: v - before[k] for k, v in hub_server.traffic.items()}
    assert again.commit == published.commit and _tags(hub_repo, settings) == {"1.0": published.commit}
    assert _commits(hub_repo, settings) == commits
    assert (sent["commits"], sent["lfs_bytes"], sent["inline_bytes"]) == (0, 0, 0)

    _change(data)
    other = _build(data, tmp_path / "b", "1.1", hub_repo)
    result = publish_to_hub(other.out, settings=settings, repo_id=hub_repo)
    assert stored("1.1") == hashlib.sha256((other.out / "vmeval_release.json").read_bytes()).hexdigest()
    assert stored("1.1") != stored("1.0")
    assert verify_hub(settings=settings, repo_id=hub_repo, version="1.1", expected=other.manifest,
                      expected_commit=result.commit) == []


def test_a_noop_republish_settles_the_release_by_its_listed_hash_with_nothing_downloaded(
        tmp_path: Path, hub_repo: str, settings: Settings, hub_server) -> None:  # noqa: ANN001
    """The tag names this very release: the re-publish reads the manifest's hash from the Hub's
    listing and downloads no ``vmeval_release.json``. The same content laid out otherwise on the
    Hub is read to find it the same release (still a no-op); other content is read to name it."""
    from typing import Any

    from tests.support.s3 import FaultProxy

    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    built = _build(data, tmp_path / "a", "1.0", hub_repo)
    first = publish_to_hub(built.out, settings=settings, repo_id=hub_repo)
    manifest_get = r"/resolve/.*vmeval_release\.json"

    def again(release: Path) -> tuple[Any, int]:
        with FaultProxy(hub_server.url, rewrite_urls=True) as proxy:
            try:
                result: Any = publish_to_hub(release, settings=settings.with_(hf_endpoint=proxy.url),
                                             repo_id=hub_repo)
            except VersionConflictError as exc:
                result = exc
            return result, proxy.count(method="GET", path=manifest_get)

    result, reads = again(built.out)
    assert result.noop and result.commit == first.commit and reads == 0

    relaid = _retag_relaid(settings, hub_repo, built.manifest)
    result, reads = again(built.out)
    assert result.noop and result.commit == relaid and reads == 1

    (data / "questions/chess_task/chess_0000/prompt.txt").write_text("other", encoding="utf-8")
    result, reads = again(_build(data, tmp_path / "b", "1.0", hub_repo).out)
    assert isinstance(result, VersionConflictError) and "different content" in str(result) and reads == 1


def test_the_release_manifest_is_fetched_to_a_file_byte_for_byte(tmp_path: Path, hub_repo: str,
                                                                  settings: Settings) -> None:
    """``fetch_release_manifest``: the tagged file's bytes, written under a temporary name then
    renamed; None for a revision without one; a missing revision is the Hub's "not found"."""
    from vmeval_hf.hub import fetch_release_manifest, hub_api

    data = make_tree(tmp_path / "data", {"chess": 2})
    built = _build(data, tmp_path / "a", "1.0", hub_repo)
    result = publish_to_hub(built.out, settings=settings, repo_id=hub_repo)
    got = fetch_release_manifest(settings, hub_repo, result.commit, tmp_path / "fetched")
    assert got == tmp_path / "fetched" / "vmeval_release.json"
    assert got.read_bytes() == (built.out / "vmeval_release.json").read_bytes()
    assert sorted(p.name for p in (tmp_path / "fetched").iterdir()) == ["vmeval_release.json"]
    first = hub_api(settings).list_repo_commits(hub_repo, repo_type="dataset")[-1].commit_id  # the repo's creation
    assert fetch_release_manifest(settings, hub_repo, first, tmp_path / "none") is None
    assert not (tmp_path / "none").exists()
    with pytest.raises(HubNotFoundError, match="9.9"):
        fetch_release_manifest(settings, hub_repo, "9.9", tmp_path / "nowhere")


def test_missing_repo_and_revision_are_named(tmp_path: Path, hub_repo: str, settings: Settings) -> None:
    from vmeval_hf.hub import remote_manifest

    with pytest.raises(HubNotFoundError, match=hub_repo):
        remote_manifest(settings, hub_repo, "1.0")
    data = make_tree(tmp_path / "data", {"chess": 1})
    publish_to_hub(_build(data, tmp_path / "a", "1.0", hub_repo).out, settings=settings, repo_id=hub_repo)
    with pytest.raises(HubNotFoundError, match="revision 9.9 not found"):
        remote_manifest(settings, hub_repo, "9.9")


def test_release_edited_after_build_is_not_published(tmp_path: Path, hub_repo: str, settings: Settings,
                                                     hub_server) -> None:  # noqa: ANN001
    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    built = _build(data, tmp_path / "a", "1.0", hub_repo)
    (built.out / built.manifest["shards"][0]["path"]).write_bytes(b"corrupted")
    before = hub_server.requests
    with pytest.raises(IntegrityError, match="rebuild"):
        publish_to_hub(built.out, settings=settings, repo_id=hub_repo)
    assert hub_server.requests == before


def test_a_release_file_changed_in_place_is_caught_before_anything_is_written(
        tmp_path: Path, settings: Settings, hub_server) -> None:  # noqa: ANN001
    """One byte of a shard changed, its size kept: the sizes pass, the hashes (run beside the first
    requests) do not. IntegrityError naming the shard; no repo created, nothing uploaded or committed."""
    from vmeval_hf.hub import hub_api

    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    repo = "test/changed-in-place"
    built = _build(data, tmp_path / "a", "1.0", repo)
    shard = built.out / built.manifest["shards"][0]["path"]
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    shard.write_bytes(bytes(raw))
    before = hub_server.traffic
    with pytest.raises(IntegrityError, match=f"{built.manifest['shards'][0]['path']}: bytes differ.*rebuild"):
        publish_to_hub(built.out, settings=settings, repo_id=repo)
    after = hub_server.traffic
    assert (after["lfs_bytes"], after["inline_bytes"], after["commits"]) == (
        before["lfs_bytes"], before["inline_bytes"], before["commits"])
    assert not hub_api(settings).repo_exists(repo, repo_type="dataset")


@pytest.mark.parametrize("repo_holds", ["nothing", "an earlier version", "this version, other content"])
def test_a_manifest_whose_source_list_was_edited_writes_nothing(tmp_path: Path, settings: Settings, hub_server,  # noqa: ANN001
                                                                repo_holds: str) -> None:
    """The source list is checked against ``content_sha256`` beside the first requests, not before
    them: still nothing is created, uploaded, committed or tagged, whatever the repo holds (a tag of
    this version with other content is refused as the edit, not as a conflict)."""
    from vmeval_hf.hub import hub_api, list_tags

    repo = f"test/edited-sources-{repo_holds.split()[0]}"
    version = "1.1" if repo_holds == "an earlier version" else "1.0"
    if repo_holds != "nothing":
        other = make_tree(tmp_path / "other", {"maze": 1})
        publish_to_hub(_build(other, tmp_path / "o", "1.0", repo).out, settings=settings, repo_id=repo)
    built = _build(make_tree(tmp_path / "data", {"chess": 2}), tmp_path / "a", version, repo)
    path = built.out / "vmeval_release.json"
    doc = json.loads(path.read_text())
    doc["sources"][0]["sha256"] = "0" * 64
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    tags, before = (list_tags(settings, repo) if repo_holds != "nothing" else {}), hub_server.traffic
    with pytest.raises(IntegrityError, match="vmeval_release.json: content_sha256 does not match its source list.*"
                                             "rebuild the release"):
        publish_to_hub(built.out, settings=settings, repo_id=repo)
    after = hub_server.traffic
    assert (after["lfs_bytes"], after["inline_bytes"], after["commits"]) == (
        before["lfs_bytes"], before["inline_bytes"], before["commits"])
    if repo_holds == "nothing":
        assert not hub_api(settings).repo_exists(repo, repo_type="dataset")
    else:
        assert list_tags(settings, repo) == tags


def test_a_manifest_with_a_malformed_source_entry_is_named_and_writes_nothing(tmp_path: Path, settings: Settings,
                                                                            hub_server) -> None:  # noqa: ANN001
    """A source entry without its size: one BuildError naming the manifest and the entry (before: a
    raw KeyError from the hash of the list), and no repo created."""
    from vmeval_hf.errors import BuildError
    from vmeval_hf.hub import hub_api

    repo = "test/malformed-source"
    built = _build(make_tree(tmp_path / "data", {"chess": 2}), tmp_path / "a", "1.0", repo)
    path = built.out / "vmeval_release.json"
    doc = json.loads(path.read_text())
    del doc["sources"][1]["size"]
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    before = hub_server.traffic
    with pytest.raises(BuildError, match=r"vmeval_release.json: source entry 1 is not a \{path, size, sha256\} "
                                         r"entry .*rebuild the release"):
        publish_to_hub(built.out, settings=settings, repo_id=repo)
    assert hub_server.traffic["commits"] == before["commits"]
    assert not hub_api(settings).repo_exists(repo, repo_type="dataset")


@pytest.mark.parametrize("damage", [b"not json {", b'["a list"]'])
def test_a_tag_whose_manifest_is_no_manifest_is_named_by_publish_and_verify(tmp_path: Path, hub_repo: str,
                                                                           settings: Settings, damage: bytes) -> None:
    """Tag 1.0 moved to a commit whose ``vmeval_release.json`` is not JSON, or not an object: a
    publish of 1.0 is refused naming it (and ``--force`` publishes over it); verify reports it as a
    mismatch. Before: ``json``'s own JSONDecodeError, or an AttributeError, from either."""
    from huggingface_hub import CommitOperationAdd

    from vmeval_hf.hub import hub_api, verify_hub

    data = make_tree(tmp_path / "data", {"chess": 2})
    built = _build(data, tmp_path / "a", "1.0", hub_repo)
    publish_to_hub(built.out, settings=settings, repo_id=hub_repo)
    api = hub_api(settings)
    bad = api.create_commit(hub_repo, [CommitOperationAdd("vmeval_release.json", damage)], commit_message="damaged",
                            repo_type="dataset")
    api.delete_tag(hub_repo, tag="1.0", repo_type="dataset")
    api.create_tag(hub_repo, tag="1.0", revision=bad.oid, repo_type="dataset")

    problems = verify_hub(settings=settings, repo_id=hub_repo, version="1.0", expected=built.manifest)
    assert [(p.problem, p.detail.split(" (")[0]) for p in problems if p.key.endswith("vmeval_release.json")] == [
        ("sha256", "not a release manifest: not valid JSON" if damage.startswith(b"not") else
         "not a release manifest: not a JSON object")]
    with pytest.raises(VersionConflictError, match=r"version 1\.0 is already published .* with a vmeval_release\.json "
                                                   r"that is no release manifest .*--force"):
        publish_to_hub(built.out, settings=settings, repo_id=hub_repo)
    forced = publish_to_hub(built.out, settings=settings, repo_id=hub_repo, force=True)
    assert forced.tag_moved and _tags(hub_repo, settings)["1.0"] == forced.commit != bad.oid
    assert verify_hub(settings=settings, repo_id=hub_repo, version="1.0", expected=built.manifest) == []


def test_pull_from_hub_verifies(tmp_path: Path, hub_repo: str, settings: Settings) -> None:
    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    built = _build(data, tmp_path / "a", "1.0", hub_repo)
    publish_to_hub(built.out, settings=settings, repo_id=hub_repo)
    manifest = pull_hub(settings=settings, repo_id=hub_repo, version="1.0", dest=tmp_path / "pulled")
    assert manifest["content_sha256"] == built.content_sha256
    for entry in built.manifest["files"]:
        assert (tmp_path / "pulled" / entry["path"]).read_bytes() == (built.out / entry["path"]).read_bytes()


# --- issue 15, Hub side: tag moves, main, "the same release", local vs remote errors, Xet -----------


def _main_release(repo: str, settings: Settings) -> dict:
    """The release manifest ``main`` holds, and ``main``'s file list must be exactly its files."""
    from vmeval_hf.hub import hub_api, remote_manifest

    manifest = remote_manifest(settings, repo, "main")
    assert manifest is not None, "main holds no release"
    files = set(hub_api(settings).list_repo_files(repo, repo_type="dataset", revision="main"))
    assert files == {".gitattributes", "vmeval_release.json", *(f["path"] for f in manifest["files"])}
    return manifest


def _tags(repo: str, settings: Settings) -> dict[str, str]:
    from vmeval_hf.hub import list_tags

    return list_tags(settings, repo)


def _branches(repo: str, settings: Settings) -> list[str]:
    from vmeval_hf.hub import hub_api

    return sorted(b.name for b in hub_api(settings).list_repo_refs(repo, repo_type="dataset").branches)


def _two_releases(tmp_path: Path, repo: str) -> tuple:  # noqa: ANN202 - (first, other) BuildResults of 1.0
    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    first = _build(data, tmp_path / "a", "1.0", repo)
    _change(data)
    return first, _build(data, tmp_path / "b", "1.0", repo)


def test_force_with_the_tag_delete_refused_says_so_and_keeps_the_tag(tmp_path: Path, hub_repo: str,
                                                                     settings: Settings, hub_server) -> None:  # noqa: ANN001
    """A 403 on deleting the tag is named as such (before: swallowed, then reported as another
    publisher's conflict); the tag still names the published release."""
    from tests.support.s3 import FaultProxy

    first, other = _two_releases(tmp_path, hub_repo)
    published = publish_to_hub(first.out, settings=settings, repo_id=hub_repo)
    with FaultProxy(hub_server.url, rewrite_urls=True) as proxy:
        proxy.add(403, method="DELETE", path=r"/tag/")
        with pytest.raises(HubAuthError) as err:
            publish_to_hub(other.out, settings=settings.with_(hf_endpoint=proxy.url), repo_id=hub_repo, force=True)
    message = str(err.value)
    assert "deleting tag 1.0" in message and "HTTP 403" in message and "tag is unchanged" in message
    assert "another publish" not in message
    assert _tags(hub_repo, settings) == {"1.0": published.commit}
    assert verify_hub(settings=settings, repo_id=hub_repo, version="1.0", expected=first.manifest) == []


def test_force_whose_tag_creation_fails_names_the_missing_tag_and_a_rerun_creates_it(
        tmp_path: Path, hub_repo: str, settings: Settings, hub_server) -> None:  # noqa: ANN001
    from tests.support.s3 import FaultProxy

    first, other = _two_releases(tmp_path, hub_repo)
    publish_to_hub(first.out, settings=settings, repo_id=hub_repo)
    with FaultProxy(hub_server.url, rewrite_urls=True) as proxy:
        proxy.add(500, method="POST", path=r"/tag/")
        flaky = settings.with_(hf_endpoint=proxy.url, hub_attempts=1)
        with pytest.raises(HubError) as err:
            publish_to_hub(other.out, settings=flaky, repo_id=hub_repo, force=True)
        assert proxy.count("DELETE", r"/tag/") == 1 and proxy.count("POST", r"/tag/") == 1  # back to back
    message = str(err.value)
    assert "HTTP 500" in message and "is missing now" in message and "re-run the same command" in message
    assert "1.0" not in _tags(hub_repo, settings)

    again = publish_to_hub(other.out, settings=settings, repo_id=hub_repo, force=True)  # the same command
    assert _tags(hub_repo, settings) == {"1.0": again.commit}
    assert verify_hub(settings=settings, repo_id=hub_repo, version="1.0", expected=other.manifest) == []


def test_force_of_an_older_version_never_rewinds_main(tmp_path: Path, hub_repo: str, settings: Settings) -> None:
    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    publish_to_hub(_build(data, tmp_path / "a", "1.0", hub_repo).out, settings=settings, repo_id=hub_repo)
    change_tree(data, prompt="1.1's prompt")
    v11 = _build(data, tmp_path / "b", "1.1", hub_repo)
    publish_to_hub(v11.out, settings=settings, repo_id=hub_repo)
    change_tree(data, prompt="1.0, republished")
    forced = publish_to_hub(_build(data, tmp_path / "c", "1.0", hub_repo).out, settings=settings, repo_id=hub_repo,
                            force=True)
    assert _main_release(hub_repo, settings) == v11.manifest  # main still holds 1.1, the later version
    assert forced.tag_moved and not forced.main_moved
    assert _tags(hub_repo, settings)["1.0"] == forced.commit
    assert _branches(hub_repo, settings) == ["main"]  # no staging branch left behind


def _race(hub_server, settings: Settings, repo: str, release_a, release_b, *,  # noqa: ANN001
          hold_b: str | None) -> tuple:  # noqa: ANN202 - (A's HubResult, B's exception or result)
    """A publishes ``release_a`` as 1.0; when A's tag request arrives (A has committed on ``main``),
    it waits until B, publishing ``release_b`` as 1.0 in a thread, has finished. ``hold_b``: a path
    pattern of B's request held until A's tag request arrives (B read ``main`` before A committed);
    None: B starts only then."""
    import threading

    from tests.support.s3 import FaultProxy

    a_committed, b_done = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def run_b(url: str) -> None:
        try:
            outcome["b"] = publish_to_hub(release_b.out, settings=settings.with_(hf_endpoint=url), repo_id=repo)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome["b"] = exc
        finally:
            b_done.set()

    def a_tags(method: str, path: str) -> bool:  # A's tag request: first let B run to its end
        if not a_committed.is_set():
            a_committed.set()
            if hold_b is None:
                thread.start()
            assert b_done.wait(120), "B never finished"
        return False

    def b_waits(method: str, path: str) -> bool:
        assert a_committed.wait(120), "A never committed"
        return False

    with FaultProxy(hub_server.url, rewrite_urls=True) as proxy_a, \
            FaultProxy(hub_server.url, rewrite_urls=True) as proxy_b:
        thread = threading.Thread(target=run_b, args=(proxy_b.url,))
        proxy_a.add(500, method="POST", path=r"/tag/", predicate=a_tags)
        if hold_b is not None:
            proxy_b.add(500, method="POST", path=hold_b, predicate=b_waits)
            thread.start()
        winner = publish_to_hub(release_a.out, settings=settings.with_(hf_endpoint=proxy_a.url), repo_id=repo)
        thread.join(120)
    return winner, outcome.get("b")


@pytest.mark.parametrize("hold_b", [None, r"/commit/main(\?|$)"], ids=["b-starts-late", "b-read-main-first"])
def test_a_second_publisher_of_the_version_is_refused_before_it_commits(
        tmp_path: Path, hub_repo: str, settings: Settings, hub_server, hold_b: str | None) -> None:  # noqa: ANN001
    """A and B publish other content as 1.0 at once. A commits on ``main``; before A's tag, B
    either starts (and finds ``main`` holding an untagged 1.0 with other files) or sends the
    commit it prepared from ``main``'s old head (refused, 412; its retry finds the same). B is
    refused with a message saying so and commits nothing; A's release is the version and ``main``,
    in one commit (before: B committed after A and ``main`` held content no version named)."""
    release_a, release_b = _two_releases(tmp_path, hub_repo)
    winner, lost = _race(hub_server, settings, hub_repo, release_a, release_b, hold_b=hold_b)
    assert isinstance(lost, VersionConflictError), lost
    assert "that no tag names yet, with different content" in str(lost)
    assert "another publisher is publishing 1.0 now" in str(lost)
    assert "--force" in str(lost)
    assert _tags(hub_repo, settings) == {"1.0": winner.commit}
    assert _commits(hub_repo, settings)[:-1] == [winner.commit]  # one commit: A's, tagged
    assert _main_release(hub_repo, settings) == release_a.manifest
    assert _branches(hub_repo, settings) == ["main"]


def test_the_same_release_from_two_publishers_is_one_commit(tmp_path: Path, hub_repo: str, settings: Settings,
                                                            hub_server) -> None:  # noqa: ANN001
    """B publishes the very release A has committed and not yet tagged (a re-run on another
    machine): B adds no commit and either tags A's commit or finds it tagged."""
    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    release = _build(data, tmp_path / "a", "1.0", hub_repo)
    winner, other = _race(hub_server, settings, hub_repo, release, release, hold_b=None)
    assert not isinstance(other, BaseException), other
    assert other.commit == winner.commit
    assert _tags(hub_repo, settings) == {"1.0": winner.commit}
    assert _commits(hub_repo, settings)[:-1] == [winner.commit]


def test_the_same_questions_built_into_other_files_are_not_a_noop(tmp_path: Path, hub_repo: str,
                                                                  settings: Settings) -> None:
    """Same sources, another card (the Versions table's date): refused with what to do, then
    published as what it is under ``force`` (before: "already published", the Hub holding other bytes)."""
    from vmeval_hf.release.changes import History

    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    first = build_release(data, tmp_path / "a", version="1.0", repo_id=hub_repo, history=History(date="20250115"))
    published = publish_to_hub(first.out, settings=settings, repo_id=hub_repo)
    later = build_release(data, tmp_path / "b", version="1.0", repo_id=hub_repo, history=History(date="20250116"))
    assert later.content_sha256 == first.content_sha256  # the same questions ...
    before = _commits(hub_repo, settings)
    with pytest.raises(VersionConflictError) as err:
        publish_to_hub(later.out, settings=settings, repo_id=hub_repo)
    message = str(err.value)
    assert "the same questions" in message and "only the card (README.md) differs" in message
    assert "--date" in message and "--force" in message
    assert _commits(hub_repo, settings) == before and _tags(hub_repo, settings) == {"1.0": published.commit}

    forced = publish_to_hub(later.out, settings=settings, repo_id=hub_repo, force=True)
    assert forced.tag_moved and not forced.noop and forced.commit != published.commit
    assert verify_hub(settings=settings, repo_id=hub_repo, version="1.0", expected=later.manifest,
                      expected_commit=forced.commit) == []
    assert _main_release(hub_repo, settings) == later.manifest
    # and the bytes it replaced are not "the same": verifying against the first build finds the card
    problems = verify_hub(settings=settings, repo_id=hub_repo, version="1.0", expected=first.manifest)
    assert {p.where.rsplit("/", 1)[-1] for p in problems} == {"README.md", "vmeval_release.json"}


def test_verify_of_a_hub_version_trusts_a_local_manifest_only_with_the_logged_bytes(
        tmp_path: Path, hub_repo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``verify`` of a version published to the Hub only reads the local release manifest without its
    source list and takes it only if its bytes hash to the logged ``release_sha256``. A copy
    re-written in another layout (the same content) is not the record: the Hub's copy is used,
    and the version still verifies; tampering on the Hub is still found."""
    import json

    from huggingface_hub import CommitOperationDelete

    from vmeval_hf.hub import hub_api
    from vmeval_hf.publish import publish_version, verify_version

    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env().with_(hf_repo=hub_repo)
    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    publish_version(data, settings=settings, log_entry=True, s3=False)
    assert verify_version("1.0", settings=settings, data_dir=data) == []
    local = data / "releases" / "1.0" / "vmeval_release.json"
    local.write_text(json.dumps(json.loads(local.read_text(encoding="utf-8"))), encoding="utf-8")
    assert verify_version("1.0", settings=settings, data_dir=data) == []
    api = hub_api(settings)
    shard = next(p for p in api.list_repo_files(hub_repo, repo_type="dataset") if p.endswith(".parquet"))
    commit = api.create_commit(hub_repo, [CommitOperationDelete(shard)], commit_message="x", repo_type="dataset")
    api.delete_tag(hub_repo, tag="1.0", repo_type="dataset")
    api.create_tag(hub_repo, tag="1.0", revision=commit.oid, repo_type="dataset")
    problems = verify_version("1.0", settings=settings, data_dir=data)
    assert {(p.problem, p.where.rsplit("@1.0/", 1)[-1]) for p in problems} >= {("missing", shard)}


def test_a_publish_stopped_before_its_tag_and_resumed_on_another_day_names_the_date(
        tmp_path: Path, hub_repo: str, settings: Settings, hub_server, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """The tag request refused after the release was committed on ``main``; the re-run a day later
    builds another card. It is refused before it commits (``main`` holds an untagged 1.0), saying
    only the card differs and to pass the same --date; with that date it tags ``main``'s commit."""
    from tests.support.s3 import FaultProxy
    from vmeval_hf.publish import publish_version

    monkeypatch.chdir(tmp_path)
    mine = settings.with_(hf_repo=hub_repo)
    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    with FaultProxy(hub_server.url, rewrite_urls=True) as proxy:
        proxy.add(403, method="POST", path=r"/tag/")
        with pytest.raises(HubAuthError):
            publish_version(data, settings=mine.with_(hf_endpoint=proxy.url), s3=False, date="20250115")
    (stopped,) = _commits(hub_repo, settings)[:-1]
    assert _tags(hub_repo, settings) == {}
    with pytest.raises(VersionConflictError, match=r"no tag names yet.*only the card \(README.md\) differs.*--date"):
        publish_version(data, settings=mine, s3=False, date="20250116")
    assert _commits(hub_repo, settings)[:-1] == [stopped]
    again = publish_version(data, settings=mine, s3=False, date="20250115")
    assert again.hub is not None and again.hub.commit == stopped and not again.hub.main_moved
    assert _tags(hub_repo, settings) == {"1.0": stopped} and _commits(hub_repo, settings)[:-1] == [stopped]


def test_a_resumed_publish_on_another_day_says_to_pass_the_same_date(tmp_path: Path, hub_repo: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """publish_version with the log: a re-run with another --date builds another card; it is not
    reported as published, and the message names the date to pass (the same --date: a no-op)."""
    from vmeval_hf.publish import publish_version

    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env().with_(hf_repo=hub_repo)
    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    first = publish_version(data, settings=settings, log_entry=True, s3=False, date="20250115")
    with pytest.raises(VersionConflictError, match=r"other release files.*--date 20250115.*--force"):
        publish_version(data, settings=settings, version="1.0", log_entry=True, s3=False, date="20250116")
    assert first.entry is not None and first.entry["release_sha256"] == first.release_sha256
    again = publish_version(data, settings=settings, version="1.0", log_entry=True, s3=False, date="20250115")
    assert again.noop and again.entry == first.entry


def test_an_unreachable_hub_is_an_outage_not_a_missing_manifest() -> None:
    """huggingface_hub raises LocalEntryNotFoundError (an EntryNotFoundError) when it gets no answer:
    that is the Hub being down, never "this revision has no manifest" (before: None)."""
    import socket

    from vmeval_hf.hub import remote_manifest

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(HubError, match=r"cannot reach the Hub at http://127\.0\.0\.1:\d+"):
        remote_manifest(Settings(hf_endpoint=dead, hub_attempts=1), "o/r", "1.0")


def test_a_local_folder_problem_is_named_and_not_retried(tmp_path: Path, hub_repo: str, settings: Settings,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """``pull`` into a path that is a file: a local problem, named with its path, tried once (before:
    "cannot reach the Hub", after five tries)."""
    data = make_tree(tmp_path / "data", {"chess": 1})
    publish_to_hub(_build(data, tmp_path / "a", "1.0", hub_repo).out, settings=settings, repo_id=hub_repo)
    dest = tmp_path / "a-file"
    dest.write_text("not a folder", encoding="utf-8")
    with pytest.raises(LocalFileError) as err:
        pull_hub(settings=settings, repo_id=hub_repo, version="1.0", dest=dest)
    assert str(dest) in str(err.value) and "not the Hub" in str(err.value)
    assert not isinstance(err.value, HubError) and "cannot reach" not in str(err.value)
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]


_PULL_WITH_A_FULL_DISK = """
import resource, signal, sys
from vmeval_hf.config import Settings
from vmeval_hf.errors import LocalFileError
from vmeval_hf.hub import pull_hub
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write over the limit fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))
try:
    pull_hub(settings=Settings.from_env(), repo_id=sys.argv[1], version="1.0", dest=sys.argv[2])
except LocalFileError as exc:
    print("LocalFileError:", exc)
"""


def test_a_full_disk_while_pulling_is_a_local_error_tried_once(tmp_path: Path, hub_repo: str,
                                                               settings: Settings) -> None:
    """The disk fills up during a download (a file-size limit stands in for it, in a child process):
    one LocalFileError saying so, no retry warning (before: a Hub outage, retried five times)."""
    import subprocess
    import sys

    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    publish_to_hub(_build(data, tmp_path / "a", "1.0", hub_repo).out, settings=settings, repo_id=hub_repo)
    proc = subprocess.run([sys.executable, "-c", _PULL_WITH_A_FULL_DISK, hub_repo, str(tmp_path / "pulled")],
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.startswith("LocalFileError: ") and "File too large" in proc.stdout, (proc.stdout, proc.stderr)
    assert "not the Hub" in proc.stdout and "retrying" not in proc.stderr


def test_xet_is_switched_off_only_around_loopback_calls(tmp_path: Path, hub_repo: str, settings: Settings,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """With Xet on in the process (as on a real install), a publish to the sandbox goes through (Xet
    is off for its calls: the sandbox has no Xet) and leaves it on for the next endpoint (before:
    switched off for the rest of the process)."""
    from huggingface_hub import constants
    from huggingface_hub.utils._runtime import is_xet_available  # what the upload path asks

    from vmeval_hf.hub import hub_api

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    built = _build(data, tmp_path / "a", "1.0", hub_repo)
    publish_to_hub(built.out, settings=settings, repo_id=hub_repo)
    assert verify_hub(settings=settings, repo_id=hub_repo, version="1.0", expected=built.manifest) == []
    real = Settings(hf_endpoint="https://hub.example.invalid")
    assert not real.hub_is_local
    assert hub_api(real).endpoint == "https://hub.example.invalid"
    assert constants.HF_HUB_DISABLE_XET is False and is_xet_available()


_PUBLISH_AN_UNREADABLE_RELEASE = """
import sys
from vmeval_hf.config import Settings
from vmeval_hf.errors import LocalFileError
from vmeval_hf.hub import publish_to_hub
try:
    publish_to_hub(sys.argv[1], settings=Settings.from_env(), repo_id=sys.argv[2])
except LocalFileError as exc:
    print("LocalFileError:", exc)
"""


def test_an_unreadable_release_file_is_a_local_error_before_any_request(tmp_path: Path, hub_repo: str,
                                                                       hub_server) -> None:  # noqa: ANN001
    """A shard that cannot be read (mode 000, in a process that cannot override file permissions,
    so it holds as root too): one LocalFileError naming it, nothing sent (before: a raw PermissionError)."""
    import subprocess
    import sys

    from tests.support.privileges import without_dac_override

    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    built = _build(data, tmp_path / "a", "1.0", hub_repo)
    shard = built.out / built.manifest["shards"][0]["path"]
    shard.chmod(0)
    before = hub_server.requests
    try:
        proc = subprocess.run([sys.executable, "-c", _PUBLISH_AN_UNREADABLE_RELEASE, str(built.out), hub_repo],
                              capture_output=True, text=True, timeout=120, preexec_fn=without_dac_override)
    finally:
        shard.chmod(0o644)
    assert proc.stdout.startswith(f"LocalFileError: {shard}: Permission denied"), (proc.stdout, proc.stderr)
    assert "not the Hub" in proc.stdout and "Traceback" not in proc.stderr
    assert hub_server.requests == before


def test_a_refused_commit_on_main_tags_nothing_and_a_rerun_publishes(tmp_path: Path, hub_repo: str,
                                                                    settings: Settings, hub_server) -> None:  # noqa: ANN001
    """The release commit on ``main`` is refused (403): the error names the token, no tag exists and
    ``main`` is untouched; the same command then publishes the version in one commit."""
    from tests.support.s3 import FaultProxy

    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    built = _build(data, tmp_path / "a", "1.0", hub_repo)
    with FaultProxy(hub_server.url, rewrite_urls=True) as proxy:
        proxy.add(403, method="POST", path=r"/commit/main(\?|$)")
        with pytest.raises(HubAuthError, match="refused the token"):
            publish_to_hub(built.out, settings=settings.with_(hf_endpoint=proxy.url), repo_id=hub_repo)
    assert _tags(hub_repo, settings) == {} and _commits(hub_repo, settings)[:-1] == []
    again = publish_to_hub(built.out, settings=settings, repo_id=hub_repo)
    assert not again.noop and again.main_moved
    assert _tags(hub_repo, settings) == {"1.0": again.commit} and _commits(hub_repo, settings)[:-1] == [again.commit]
    assert _main_release(hub_repo, settings) == built.manifest and _branches(hub_repo, settings) == ["main"]


def test_a_noop_brings_a_lagging_main_back_and_names_a_refusal(tmp_path: Path, hub_repo: str, settings: Settings,
                                                               hub_server) -> None:  # noqa: ANN001
    """Another writer removed a shard from ``main`` after 1.0 was tagged. Re-publishing 1.0 is a
    no-op for the version that brings ``main`` back to the tagged files; refused (403), the error
    says the version is tagged and ``main`` not moved, and the same command then finishes."""
    from huggingface_hub import CommitOperationDelete

    from tests.support.s3 import FaultProxy
    from vmeval_hf.hub import hub_api

    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    built = _build(data, tmp_path / "a", "1.0", hub_repo)
    tagged = publish_to_hub(built.out, settings=settings, repo_id=hub_repo).commit
    shard = built.manifest["shards"][0]["path"]
    hub_api(settings).create_commit(hub_repo, [CommitOperationDelete(shard)], commit_message="someone else",
                                    repo_type="dataset")
    with FaultProxy(hub_server.url, rewrite_urls=True) as proxy:
        proxy.add(403, method="POST", path=r"/commit/main(\?|$)")
        with pytest.raises(HubAuthError) as err:
            publish_to_hub(built.out, settings=settings.with_(hf_endpoint=proxy.url), repo_id=hub_repo)
    assert f"Version 1.0 is tagged (commit {tagged[:12]}) but main was not moved" in str(err.value)
    again = publish_to_hub(built.out, settings=settings, repo_id=hub_repo)
    assert again.noop and again.main_moved and again.commit == tagged
    assert _main_release(hub_repo, settings) == built.manifest and _branches(hub_repo, settings) == ["main"]


def _retag_relaid(settings: Settings, repo: str, manifest: dict) -> str:
    """Commit ``manifest`` as ``vmeval_release.json`` with the same content in other bytes (compact
    JSON) and move tag 1.0 to that commit, as another tool re-laying the release would; the commit's id."""
    import json

    from huggingface_hub import CommitOperationAdd

    from vmeval_hf.hub import hub_api

    api = hub_api(settings)
    relaid = json.dumps(manifest, separators=(",", ":")).encode()
    commit = api.create_commit(repo, [CommitOperationAdd("vmeval_release.json", relaid)],
                               commit_message="relaid", repo_type="dataset")
    api.delete_tag(repo, tag="1.0", repo_type="dataset")
    api.create_tag(repo, tag="1.0", revision=commit.oid, repo_type="dataset")
    return str(commit.oid)
