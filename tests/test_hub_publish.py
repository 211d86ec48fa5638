"""Publishing a release as a Hub revision, against the sandbox Hub over HTTP, clients unmodified."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.hub import HUB_TOKEN, disable_parquet_export
from tests.support.trees import change_tree, make_tree
from vmeval_hf.config import Settings
from vmeval_hf.errors import HubAuthError, HubNotFoundError, IntegrityError, VersionConflictError
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


def test_pull_from_hub_verifies(tmp_path: Path, hub_repo: str, settings: Settings) -> None:
    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    built = _build(data, tmp_path / "a", "1.0", hub_repo)
    publish_to_hub(built.out, settings=settings, repo_id=hub_repo)
    manifest = pull_hub(settings=settings, repo_id=hub_repo, version="1.0", dest=tmp_path / "pulled")
    assert manifest["content_sha256"] == built.content_sha256
    for entry in built.manifest["files"]:
        assert (tmp_path / "pulled" / entry["path"]).read_bytes() == (built.out / entry["path"]).read_bytes()
