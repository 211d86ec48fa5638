"""``hub_versions``: the versions the Hub's tags alone give, against the project's Hub server.

A repo with a published release (1.0) and hand-made tags: a non-version tag, a version tag on a
commit without a release manifest, one whose manifest names another version, one whose source
list no longer matches its ``content_sha256``, and one whose manifest is not JSON. Each is kept or
skipped with the warning the module promises; the entries carry what the manifests say. Every
manifest is read from a downloaded file without holding its source list (measured at the end)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.trees import make_tree
from vmeval_hf.config import Settings
from vmeval_hf.hub import hf_uri, hub_api, publish_to_hub
from vmeval_hf.release.build import build_release
from vmeval_hf.release.release_manifest import (
    RELEASE_MANIFEST,
    content_sha256,
    load_release,
    manifest_text,
)
from vmeval_hf.versions.hub_tags import hub_versions


def _tag_file(settings: Settings, repo: str, tag: str, body: bytes | None) -> str:
    """A commit of a branch of its own whose ``vmeval_release.json`` is ``body`` (None: deleted),
    tagged ``tag``; its sha."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    api = hub_api(settings)
    branch = f"hand-{tag.replace('+', '-')}"
    api.create_branch(repo, branch=branch, repo_type="dataset", exist_ok=True)
    op = CommitOperationDelete(RELEASE_MANIFEST) if body is None else CommitOperationAdd(RELEASE_MANIFEST, body)
    info = api.create_commit(repo, [op], commit_message=f"hand-made {tag}", repo_type="dataset", revision=branch)
    api.create_tag(repo, tag=tag, revision=info.oid, repo_type="dataset")
    return str(info.oid)


def test_every_tag_is_kept_or_skipped_with_the_warning_it_deserves(tmp_path: Path, hub_repo: str) -> None:
    settings = Settings.from_env().with_(hf_repo=hub_repo)
    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    release = build_release(data, tmp_path / "r10", version="1.0", repo_id=hub_repo).out
    published = publish_to_hub(release, settings=settings, repo_id=hub_repo)
    good = load_release(release)

    def text(**changes: object) -> bytes:
        return manifest_text({**good, **changes}).encode("utf-8")

    edited = [dict(s) for s in good["sources"]]
    edited[0]["sha256"] = "0" * 64
    _tag_file(settings, hub_repo, "build+7", text(version="build+7"))  # not a version label
    _tag_file(settings, hub_repo, "1.1", None)                         # no release there
    named = _tag_file(settings, hub_repo, "1.2", text(version="9.9"))
    broken = _tag_file(settings, hub_repo, "1.3", text(version="1.3", sources=edited))
    _tag_file(settings, hub_repo, "1.4", b'{"schema": 1, "version": "1.4", "sources": [')

    got = hub_versions(settings, hub_repo)
    assert sorted(got.entries) == ["1.0", "1.2", "1.3"]
    entry = got.entries["1.0"]
    assert entry["hf_commit"] == published.commit and entry["content_sha256"] == good["content_sha256"]
    assert (entry["questions"], entry["domains"]) == (good["questions"], good["domains"])
    assert entry["files"] == len(good["files"]) + 1 and entry["s3_uri"] is None
    assert got.entries["1.2"]["hf_commit"] == named and got.entries["1.3"]["hf_commit"] == broken
    w = got.warnings
    assert f"hf://datasets/{hub_repo}: tag 'build+7' is not a version label; skipped" in w
    assert any(x.startswith(f"{hf_uri(hub_repo, '1.1')}: commit ") and x.endswith("not a release, skipped") for x in w)
    assert f"{hf_uri(hub_repo, '1.2')}: tag 1.2 points at the release of version '9.9'" in w
    assert f"{hf_uri(hub_repo, '1.3')}: vmeval_release.json's content_sha256 does not match its source list" in w
    assert any(x.startswith(f"{hf_uri(hub_repo, '1.4')}: commit ") for x in w)
    assert not any(hf_uri(hub_repo, "1.0") in x for x in w)  # the real release: no warning
    assert len(w) == 5, w


@pytest.mark.slow
def test_the_tags_manifests_are_read_without_holding_their_source_lists(tmp_path: Path, hub_repo: str) -> None:
    """Two tags of a release manifest with 60,000 source entries (about 10 MB of JSON each): reading
    both (side by side) peaks at a fraction of what one read whole takes, which is several times
    the file (the download's buffers, a few MB, are all that remains)."""
    import hashlib

    from vmeval_hf.hub import remote_manifest

    settings = Settings.from_env().with_(hf_repo=hub_repo)
    data = make_tree(tmp_path / "data", {"chess": 1})
    template = load_release(build_release(data, tmp_path / "r", version="1.0", repo_id=hub_repo).out)
    sources = [{"path": f"chess_task/chess_{i:05d}/prompt.txt", "size": 10,
                "sha256": hashlib.sha256(b"%d" % i).hexdigest()} for i in range(60_000)]
    api = hub_api(settings)
    api.create_repo(hub_repo, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"x", path_in_repo="README.md", repo_id=hub_repo, repo_type="dataset")
    size = 0
    for tag in ("2.0", "2.1"):
        body = manifest_text({**template, "version": tag, "sources": sources,
                              "content_sha256": content_sha256(sources)}).encode("utf-8")
        size = len(body)
        _tag_file(settings, hub_repo, tag, body)
    hub_versions(settings, hub_repo)  # imports and connections warm, outside the measure

    def peak(read: Callable[[], object]) -> tuple[object, int]:
        tracemalloc.start()
        try:
            return read(), tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    got, both = peak(lambda: hub_versions(settings, hub_repo))
    _, one_whole = peak(lambda: remote_manifest(settings, hub_repo, "2.0"))
    assert sorted(got.entries) == ["2.0", "2.1"] and not got.warnings  # type: ignore[attr-defined]
    assert got.entries["2.1"]["content_sha256"] == content_sha256(sources)  # type: ignore[attr-defined]
    assert one_whole > size and both < one_whole / 4, (both, one_whole, size)
