"""``vmeval-hf diff`` / ``diff_versions``: what changed between two versions, from each source.

Version 1.0 is published (Hub + S3, logged); then one prompt is edited, one image replaced, one
question deleted and one added, and 1.1 is published. The diff must name exactly those ids and
parts, read from the local release folders, the S3 prefixes and the Hub revisions alike.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.pngs import png_bytes
from tests.support.trees import make_question, make_tree
from vmeval_hf.cli import cli
from vmeval_hf.config import Settings
from vmeval_hf.diff import diff_manifests, diff_versions
from vmeval_hf.errors import ConfigError, IntegrityError
from vmeval_hf.publish import publish_version
from vmeval_hf.release.changes import PARTS, diff_sources
from vmeval_hf.release.release_manifest import RELEASE_MANIFEST, load_release
from vmeval_hf.sandbox import HubServer
from vmeval_hf.tree.manifest_sync import write_manifest
from vmeval_hf.tree.model import id_sort_key
from vmeval_hf.versions import VersionLog

EXPECTED = {
    "from": "1.0",
    "to": "1.1",
    "added": ["maze_0002"],
    "removed": ["chess_0002"],
    "changed": {"chess_0000": ["prompt"], "maze_0001": ["first_frame"]},
    "domains": {
        "chess": {"added": 0, "removed": 1, "changed": 1, "unchanged": 1},
        "maze": {"added": 1, "removed": 0, "changed": 1, "unchanged": 1},
    },
}


def _edit(data: Path) -> None:
    """Edit one prompt (prompt.txt only), replace one image, delete one question, add one."""
    q = data / "questions"
    (q / "chess_task/chess_0000/prompt.txt").write_text("An edited prompt.", encoding="utf-8")
    (q / "maze_task/maze_0001/first_frame.png").write_bytes(png_bytes(4242))
    shutil.rmtree(q / "chess_task/chess_0002")
    make_question(q, "maze", 2)
    write_manifest(data)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, hub_server: HubServer, moto_server: str):
    """1.0 and 1.1 published to a fresh repo and bucket, logged; yields (data dir, settings)."""
    import uuid

    import boto3

    from tests.support.s3 import TEST_ACCESS_KEY, TEST_REGION, TEST_SECRET_KEY

    root = tmp_path_factory.mktemp("diff")
    bucket = f"diff-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=moto_server, region_name=TEST_REGION, aws_access_key_id=TEST_ACCESS_KEY,
                 aws_secret_access_key=TEST_SECRET_KEY).create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": TEST_REGION})
    settings = Settings.from_env().with_(
        hf_repo=f"test-org/diff-{uuid.uuid4().hex[:8]}", s3_bucket=bucket, aws_endpoint_url=moto_server,
        aws_region=TEST_REGION, aws_access_key_id=TEST_ACCESS_KEY, aws_secret_access_key=TEST_SECRET_KEY)
    data = make_tree(root / "data", {"chess": 3, "maze": 2})
    publish_version(data, settings=settings, version="1.0", date="20250101", log_entry=True)
    _edit(data)
    publish_version(data, settings=settings, version="1.1", date="20250102", log_entry=True,
                    message="Fixed a prompt, redrew a maze")
    return data, settings


@pytest.mark.slow
@pytest.mark.parametrize("source", ["local", "s3", "hub"])
def test_diff_names_exactly_the_changed_ids_and_parts_from_each_source(published, source):
    data, settings = published
    assert diff_versions("1.0", "1.1", settings=settings, data_dir=data, source=source).as_dict() == EXPECTED


@pytest.mark.slow
def test_diff_json_from_the_cli(published, monkeypatch):
    data, settings = published
    for name, value in {"AWS_ENDPOINT_URL": settings.aws_endpoint_url, "S3_BUCKET": settings.s3_bucket,
                        "VMEVAL_HF_REPO": settings.hf_repo, "AWS_ACCESS_KEY_ID": settings.aws_access_key_id,
                        "AWS_SECRET_ACCESS_KEY": settings.aws_secret_access_key,
                        "AWS_DEFAULT_REGION": settings.aws_region}.items():
        monkeypatch.setenv(name, value)
    for source in ("local", "s3", "hub"):
        result = CliRunner().invoke(cli, ["diff", "1.0", "1.1", "--from", source, "--data-dir", str(data), "--json"])
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout) == EXPECTED
    human = CliRunner().invoke(cli, ["diff", "1.0", "1.1", "--data-dir", str(data)])
    assert human.exit_code == 0
    assert "  ~ maze_0001: first_frame" in human.stdout and "  + maze_0002" in human.stdout
    assert "  - chess_0002" in human.stdout


@pytest.mark.slow
def test_an_altered_s3_copy_of_a_release_manifest_is_named_never_diffed(published):
    """One source entry of 1.1's manifest on S3 edited (the object replaced, its old bytes put back
    after): the diff from S3 refuses it, naming the object, and the other sources still diff."""
    from tests.support.s3 import raw_client

    data, settings = published
    client = raw_client(settings)
    key = f"20250102/release/{RELEASE_MANIFEST}"
    good = client.get_object(Bucket=settings.s3_bucket, Key=key)["Body"].read()
    doc = json.loads(good)
    doc["sources"][0]["sha256"] = "0" * 64
    client.put_object(Bucket=settings.s3_bucket, Key=key, Body=json.dumps(doc, indent=2).encode())
    try:
        with pytest.raises(IntegrityError) as err:
            diff_versions("1.0", "1.1", settings=settings, data_dir=data, source="s3")
        assert str(err.value).startswith(f"s3://{settings.s3_bucket}/{key}: content_sha256 does not match")
        assert "re-publish that version" in str(err.value)
    finally:
        client.put_object(Bucket=settings.s3_bucket, Key=key, Body=good)
    for source in ("local", "hub"):
        assert diff_versions("1.0", "1.1", settings=settings, data_dir=data, source=source).as_dict() == EXPECTED


def test_a_diff_holds_neither_source_list(tmp_path):
    """Two versions of 20,000 source entries each (about 2.7 MB of JSON apiece), 100 questions
    changed: the diff walks both lists from their files, so its traced peak stays a small part of
    one file; reading either list whole would take several times the file."""
    import hashlib
    import tracemalloc

    from vmeval_hf._shared.fs import canonical_json
    from vmeval_hf.release.build import build_release
    from vmeval_hf.release.release_manifest import content_sha256

    data = make_tree(tmp_path / "data", {"chess": 1})
    template = load_release(build_release(data, version="1.0", repo_id="o/r").out)
    sizes = []
    for version, changed in (("1.0", set()), ("1.1", set(range(0, 5000, 50)))):
        sources = [{"path": f"chess_task/chess_{q:05d}/{name}", "size": 10,
                    "sha256": hashlib.sha256(b"%d/%s/%d" % (q, name.encode(), q in changed)).hexdigest()}
                   for q in range(5000) for name in ("final_frame.png", "first_frame.png", "prompt.txt",
                                                     "question_metadata.json")]
        doc = {**template, "version": version, "sources": sources, "content_sha256": content_sha256(sources)}
        folder = data / "releases" / version
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RELEASE_MANIFEST).write_text(canonical_json(doc), encoding="utf-8")
        sizes.append((folder / RELEASE_MANIFEST).stat().st_size)
    tracemalloc.start()
    try:
        got = diff_versions("1.0", "1.1", settings=Settings(), data_dir=data, source="local")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(got.changed) == 100 and not got.added and not got.removed
    assert set(got.changed["chess_00050"]) == {"prompt", "first_frame", "final_frame", "metadata"}
    assert peak < min(sizes) / 4, (peak, sizes)


def test_a_diff_with_itself_is_empty(tmp_path):
    data = make_tree(tmp_path / "data", {"chess": 2})
    from vmeval_hf.release.build import build_release

    manifest = load_release(build_release(data, version="1.0", repo_id="o/r").out)
    same = diff_manifests(manifest, manifest)
    assert same.empty and same.summary() == "no question changed since 1.0"
    assert same.domains == {"chess": {"added": 0, "removed": 0, "changed": 0, "unchanged": 2}}


def test_every_part_is_named(tmp_path):
    from vmeval_hf.release.build import build_release

    data = make_tree(tmp_path / "data", {"chess": 1})
    old = load_release(build_release(data, version="1.0", repo_id="o/r").out)
    folder = data / "questions/chess_task/chess_0000"
    (folder / "prompt.txt").write_text("new", encoding="utf-8")
    (folder / "first_frame.png").write_bytes(png_bytes(77))
    (folder / "final_frame.png").write_bytes(png_bytes(78))
    meta = json.loads((folder / "question_metadata.json").read_text())
    (folder / "question_metadata.json").write_text(json.dumps({**meta, "difficulty": "hard"}))
    (folder / "goal.txt").write_text("reach the goal", encoding="utf-8")
    write_manifest(data)
    new = load_release(build_release(data, version="1.1", repo_id="o/r").out)
    assert diff_manifests(old, new).changed == {
        "chess_0000": ["prompt", "first_frame", "final_frame", "metadata", "goal"]}


def test_an_unknown_version_is_one_line_saying_what_to_do(tmp_path):
    data = make_tree(tmp_path / "data", {"chess": 1})
    from vmeval_hf.release.build import build_release

    build_release(data, version="1.0", repo_id="o/r")
    with pytest.raises(ConfigError, match=r"releases/9\.9/vmeval_release\.json does not exist: version 9\.9 "
                                          r"was not built here; build it, or diff with --from s3 or --from hub"):
        diff_versions("1.0", "9.9", settings=Settings(), data_dir=data, source="local")
    result = CliRunner().invoke(cli, ["diff", "1.0", "9.9", "--from", "local", "--data-dir", str(data)])
    assert result.exit_code == 1
    assert [line for line in result.stderr.splitlines() if line] == [
        line for line in result.stderr.splitlines() if line.startswith("ERROR: ")]


def test_a_manifest_that_fails_its_own_hash_check_is_named_never_diffed(tmp_path):
    from vmeval_hf.release.build import build_release

    data = make_tree(tmp_path / "data", {"chess": 2})
    build_release(data, version="1.0", repo_id="o/r")
    build_release(data, version="1.1", repo_id="o/r")
    path = data / "releases/1.1/vmeval_release.json"
    doc = json.loads(path.read_text())
    doc["sources"][0]["sha256"] = "0" * 64  # a hand edit: the list no longer matches content_sha256
    path.write_text(json.dumps(doc))
    with pytest.raises(IntegrityError, match=r"releases/1\.1/vmeval_release\.json: content_sha256 does not match"):
        diff_versions("1.0", "1.1", settings=Settings(), data_dir=data, source="local")


def test_two_versions_of_different_repos_are_refused(tmp_path):
    data = tmp_path / "data"
    log = VersionLog(data_dir=data)
    log.append({"version": "1.0", "hf_repo": "org/a", "s3_uri": None})
    log.append({"version": "1.1", "hf_repo": "org/b", "s3_uri": None})
    with pytest.raises(ConfigError, match=r"version 1\.0 was published to org/a and 1\.1 to org/b"):
        diff_versions("1.0", "1.1", settings=Settings(), data_dir=data)


@pytest.mark.slow
def test_the_change_note_is_in_the_log_and_the_hub_commit(published):
    data, settings = published
    from vmeval_hf.hub import hub_api

    entry = VersionLog(data_dir=data).get("1.1")
    assert entry["message"] == "Fixed a prompt, redrew a maze"
    assert entry["changes"] == {"from": "1.0", "added": 1, "removed": 1, "changed": 2}
    commits = hub_api(settings).list_repo_commits(settings.hf_repo, repo_type="dataset", revision="1.1")
    assert commits[0].title == "Release 1.1: Fixed a prompt, redrew a maze"
    assert "1 added, 1 removed, 2 changed since 1.0" in (commits[0].message or "")


@pytest.mark.slow
def test_the_card_of_each_version_lists_the_versions_up_to_it(published, tmp_path):
    data, settings = published
    from huggingface_hub import hf_hub_download

    card = Path(hf_hub_download(settings.hf_repo, "README.md", repo_type="dataset", revision="1.1",
                                local_dir=tmp_path / "c11")).read_text(encoding="utf-8")
    rows = [line for line in card.splitlines() if line.startswith("| 1.")]
    log = {e["version"]: e for e in VersionLog(data_dir=data).entries()}
    assert rows == [
        f"| 1.0 | 2025-01-01 | 5 | `{log['1.0']['content_sha256'][:12]}` |  | first version |",
        f"| 1.1 | 2025-01-02 | 5 | `{log['1.1']['content_sha256'][:12]}` | Fixed a prompt, redrew a maze "
        "| 1 added, 1 removed, 2 changed |",
    ]
    old = Path(hf_hub_download(settings.hf_repo, "README.md", repo_type="dataset", revision="1.0",
                               local_dir=tmp_path / "c10")).read_text(encoding="utf-8")
    assert [line for line in old.splitlines() if line.startswith("| 1.")] == rows[:1]


@pytest.mark.slow
def test_diff_on_a_machine_without_the_log_reads_the_shared_records_then_the_hub(published, tmp_path):
    """A folder with no data/: the versions are found in S3's shared records (the prefixes), and
    with no S3 settings at all, in the Hub's tags."""
    _, settings = published
    elsewhere = tmp_path / "other" / "data"
    assert diff_versions("1.0", "1.1", settings=settings, data_dir=elsewhere).as_dict() == EXPECTED
    hub_only = Settings(hf_endpoint=settings.hf_endpoint, hf_repo=settings.hf_repo)
    assert diff_versions("1.0", "1.1", settings=hub_only, data_dir=elsewhere).as_dict() == EXPECTED
    assert not elsewhere.exists()  # reading wrote nothing


# -- the diff walks two source lists side by side ---------------------------------------------------


def _reference_diff(old, new):
    """The diff as it was computed before it streamed: every question of both lists in dicts."""
    def questions(sources):
        out = {}
        for s in sources:
            parts = s["path"].split("/")
            if len(parts) == 3 and parts[0].endswith("_task"):
                out.setdefault(parts[1], (parts[0][:-5], {}))[1][PARTS.get(parts[2], parts[2])] = \
                    f"{s['size']}:{s['sha256']}"
        return out

    before, after = questions(old), questions(new)
    added = [q for q in after if q not in before]
    removed = [q for q in before if q not in after]
    changed = {q: sorted((p for p in before[q][1].keys() | after[q][1].keys()
                          if before[q][1].get(p) != after[q][1].get(p)),
                         key=lambda p: (list(PARTS.values()).index(p) if p in PARTS.values() else 99, p))
               for q in before if q in after}
    return (sorted(added, key=id_sort_key), sorted(removed, key=id_sort_key),
            {q: p for q, p in sorted(changed.items(), key=lambda kv: id_sort_key(kv[0])) if p})


def _random_sources(rng, ids):
    rows = []
    for domain, n in ids:
        for i in n:
            for name in rng.sample(["prompt.txt", "first_frame.png", "final_frame.png", "question_metadata.json",
                                    "goal.txt"], rng.randint(1, 5)):
                rows.append({"path": f"{domain}_task/{domain}_{i:04d}/{name}", "size": rng.randint(1, 3),
                             "sha256": rng.choice("ab") * 64})
    rows.append({"path": "README.md", "size": 1, "sha256": "c" * 64})  # not a question's: skipped
    return sorted(rows, key=lambda s: s["path"])


@pytest.mark.parametrize("seed", range(25))
def test_the_streamed_diff_matches_the_whole_list_diff(seed):
    import random

    rng = random.Random(seed)
    old = _random_sources(rng, [("chess", rng.sample(range(60), 30)), ("maze", rng.sample(range(60), 20))])
    new = _random_sources(rng, [("chess", rng.sample(range(60), 30)), ("raven", rng.sample(range(60), 10))])
    got = diff_sources("1.0", iter(old), "1.1", (s for s in new))  # one pass over each, as from a file
    assert (got.added, got.removed, got.changed) == _reference_diff(old, new)
    counted = {d: sum(c.values()) for d, c in got.domains.items()}
    assert counted == {d: len({s["path"].split("/")[1] for s in old + new if s["path"].startswith(f"{d}_task/")})
                       for d in ("chess", "maze", "raven")}


def test_a_source_list_out_of_path_order_is_refused_by_the_walk_and_sorted_from_a_manifest(tmp_path):
    from vmeval_hf.release.build import build_release

    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 1})
    manifest = load_release(build_release(data, version="1.0", repo_id="o/r").out)
    shuffled = {**manifest, "version": "0.9", "sources": list(reversed(manifest["sources"]))}
    with pytest.raises(ValueError, match="not in path order"):
        diff_sources("0.9", shuffled["sources"], "1.0", manifest["sources"])
    assert diff_manifests(shuffled, manifest).empty  # a document's list is sorted first


def test_a_manifest_read_without_its_sources_is_diffed_from_its_file(tmp_path):
    from vmeval_hf.release.build import build_release
    from vmeval_hf.release.changes import History

    data = make_tree(tmp_path / "data", {"chess": 2, "maze": 2})
    old_dir = build_release(data, tmp_path / "r1", version="1.0", repo_id="o/r").out
    (data / "questions/maze_task/maze_0001/prompt.txt").write_text("other", encoding="utf-8")
    new_dir = build_release(data, tmp_path / "r2", version="1.1", repo_id="o/r").out
    whole = diff_manifests(load_release(old_dir), load_release(new_dir))
    light = diff_manifests(load_release(old_dir, sources=False), load_release(new_dir, sources=False),
                           old_file=old_dir / RELEASE_MANIFEST, new_file=new_dir / RELEASE_MANIFEST)
    assert light == whole and whole.changed == {"maze_0001": ["prompt"]}
    history = History(previous=load_release(old_dir, sources=False), previous_file=old_dir / RELEASE_MANIFEST)
    assert history.changes("1.1", load_release(new_dir)["sources"]) == whole
