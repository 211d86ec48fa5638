"""Experiments: incremental snapshots, ``archive``, ``restore`` and ``experiments``, against a moto
server over HTTP (bytes and requests counted by the :class:`~tests.support.s3.FaultProxy`).

The data tree holds a few questions and experiments in both upstream layouts
(:mod:`tests.support.experiments`): ``exp1`` with evaluator folders, ``exp2`` flat, plus videos of
a few hundred KB so that copies and uploads are told apart by the bytes sent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import ok, run
from tests.support.experiments import EXPERIMENT, write_experiment, write_json
from tests.support.files import killable_env, snapshot
from tests.support.s3 import keys_in, raw_client
from tests.support.trees import make_tree
from vmeval_hf._shared.fs import sha256_file
from vmeval_hf.config import Settings
from vmeval_hf.errors import ConfigError, IntegrityError, S3UnreachableError
from vmeval_hf.experiments import archive_experiment, list_experiments, restore_experiment
from vmeval_hf.publish import sync_data_tree
from vmeval_hf.s3.mirror import mirror_version, read_manifest
from vmeval_hf.s3.read import verify_s3
from vmeval_hf.versions import VersionLog

REPO = Path(__file__).resolve().parents[1]
D1, D2, D3 = "20250110", "20250111", "20250112"
VIDEO = "video/generated_video.mp4"


@pytest.fixture
def faults(s3_faults: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``s3_faults``, with the environment the CLI reads pointing at the proxy too."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_faults.proxy.url)
    return s3_faults


def make_data(root: Path) -> Path:
    """Questions, ``exp1`` (evaluator folders) and ``exp2`` (flat), with 300 KB videos for exp1."""
    data = make_tree(root / "data", {"chess": 2, "maze": 1})
    write_experiment(data, "folders")
    for i, video in enumerate(sorted((data / "outputs" / EXPERIMENT).rglob("*.mp4"))):
        video.write_bytes(os.urandom(300_000 + i))
    other = data / "outputs" / "exp2" / "model-c" / "chess_task" / "chess_0000"
    (other / "video").mkdir(parents=True)
    (other / "video" / "out.mp4").write_bytes(b"exp2 video")
    write_json(data / "evaluations" / "exp2" / "model-c" / "chess_task" / "chess_0000" / "GPT4OEvaluator.json",
               {"metadata": {}, "result": {"solution_correctness_score": 3, "status": "completed"}})
    return data


def tree_bytes(data: Path) -> dict[str, bytes]:
    """What a snapshot of ``data`` must hold: every mirrored file, by its key under ``<D>/``."""
    return {f"data/{k}": v for k, v in snapshot(data, skip_hidden=True).items()
            if k.split("/")[0] in ("questions", "outputs", "evaluations")}


def experiment_files(data: Path, name: str = EXPERIMENT) -> dict[str, bytes]:
    tree = snapshot(data, skip_hidden=True)
    return {k: v for k, v in tree.items() if k.startswith(f"outputs/{name}/")
            or k.startswith(f"evaluations/{name}/") or k.split("/")[2:3] == [name]}


# -- incremental snapshots ---------------------------------------------------------------------


def test_a_second_snapshot_uploads_only_changed_files_and_is_complete_and_verifiable(tmp_path: Path,
                                                                                    faults: Any) -> None:
    settings, proxy = faults.settings, faults.proxy
    data = make_data(tmp_path)
    first = sync_data_tree(data, settings=settings, date=D1).mirror
    assert (first.uploaded, first.copied, first.copied_from) == (first.files, 0, None)

    videos = sorted((data / "outputs" / EXPERIMENT).rglob("*.mp4"))
    videos[0].write_bytes(os.urandom(videos[0].stat().st_size))  # same size, other bytes
    added = data / "evaluations" / "gpt4o-eval" / EXPERIMENT / "model-b" / "maze_task" / "maze_0001" / "Extra.json"
    write_json(added, {"metadata": {}, "result": {"solution_correctness_score": 2, "status": "completed"}})
    (data / "outputs" / "exp2" / "model-c" / "chess_task" / "chess_0000" / "video" / "out.mp4").unlink()
    changed = videos[0].stat().st_size + added.stat().st_size
    proxy.clear()
    second = sync_data_tree(data, settings=settings, date=D2).mirror

    assert second.copied_from == f"s3://{settings.s3_bucket}/{D1}/"
    assert (second.uploaded, second.uploaded_bytes) == (2, changed)
    assert second.copied == second.files - 2 and second.copied_bytes == second.bytes - changed
    # only new or changed bytes left the machine: the copies carry no body
    assert proxy.sent_bytes("PUT", rf"/{D2}/data/") == changed
    assert proxy.sent_bytes("PUT", rf"/{D2}/") - proxy.sent_bytes("PUT", rf"/{D2}/data/") < 100_000  # MANIFEST
    # complete (every file present under the new prefix, byte for byte), and verifiable
    held = keys_in(faults.settings, f"{D2}/")
    assert held.pop(f"{D2}/MANIFEST.json") and {k.removeprefix(f"{D2}/"): v for k, v in held.items()} == tree_bytes(data)
    assert verify_s3(settings=settings, date=D2) == []
    # --full forces uploads
    proxy.clear()
    third = json.loads(ok("sync", "--data-dir", data, "--date", D3, "--full", "--json").stdout)
    assert (third["uploaded"], third["copied"]) == (third["files"], 0)
    assert proxy.sent_bytes("PUT", rf"/{D3}/data/") == third["bytes"]


def test_large_files_are_copied_in_parts_and_an_altered_source_is_not_copied(tmp_path: Path, faults: Any) -> None:
    """A file above ``copy_max`` is copied with UploadPartCopy; its composite is the local file's.
    A source object altered since its prefix was completed is refused by its server checksum and
    the file is uploaded instead."""
    settings, proxy = faults.settings, faults.proxy
    data = make_tree(tmp_path / "data", {"chess": 1})
    big = data / "outputs" / "e" / "m" / "chess_task" / "chess_0000" / VIDEO
    big.parent.mkdir(parents=True)
    big.write_bytes(os.urandom(12 * 2**20))
    small = data / "outputs" / "e" / "m" / "chess_task" / "chess_0000" / "metadata.json"
    small.write_text('{"status": "completed"}')
    kw: dict[str, Any] = {"multipart_threshold": "5MiB", "multipart_chunksize": "5MiB", "copy_max": 5 * 2**20}
    mirror_version(data, settings=settings, date=D1, incremental=True, **kw)
    raw_client(settings).put_object(Bucket=settings.s3_bucket, Key=f"{D1}/data/outputs/e/m/chess_task/chess_0000/"
                                    "metadata.json", Body=b'{"status": "tampered"}')  # same size, other bytes
    proxy.clear()
    second = mirror_version(data, settings=settings, date=D2, incremental=True, **kw)
    assert (second.copied, second.uploaded) == (second.files - 1, 1)  # the tampered source was not used
    assert proxy.count("PUT", r"partNumber=") == 3 and proxy.sent_bytes("PUT", r"generated_video") == 0
    entry = next(f for f in read_manifest(settings=settings, date=D2)["files"] if f["key"].endswith(".mp4"))
    assert entry["sha256"] == sha256_file(big) and entry["composite_sha256"].endswith("-3")
    assert verify_s3(settings=settings, date=D2) == []
    assert keys_in(settings, f"{D2}/data/outputs/")[f"{D2}/data/outputs/e/m/chess_task/chess_0000/metadata.json"] \
        == small.read_bytes()


# -- archive and restore -----------------------------------------------------------------------


def test_archive_then_restore_gives_byte_identical_files(tmp_path: Path, faults: Any) -> None:
    settings = faults.settings
    data = make_data(tmp_path)
    before, others = experiment_files(data), experiment_files(data, "exp2")
    result = archive_experiment(EXPERIMENT, data, settings=settings, date=D1)
    assert result.deleted == result.files == len(before) and result.snapshot is not None
    assert experiment_files(data) == {} and not (data / "outputs" / EXPERIMENT).exists()
    assert experiment_files(data, "exp2") == others  # another experiment is left alone
    (record,) = [e for e in VersionLog(data_dir=data).entries() if e.get("kind") == "archive"]
    assert (record["experiment"], record["date"], record["files"]) == (EXPERIMENT, D1, len(before))
    assert record["s3_uri"] == f"s3://{settings.s3_bucket}/{D1}/data" and record["version"].startswith("archive-exp1-")
    assert VersionLog(data_dir=data).latest() is None  # an archive record is not a question version
    again = archive_experiment(EXPERIMENT, data, settings=settings)
    assert again.already_archived and again.entry == record

    restored = restore_experiment(EXPERIMENT, data, settings=settings)
    assert (restored.dates, restored.files, restored.downloaded) == ([D1], len(before), len(before))
    assert experiment_files(data) == before
    assert restore_experiment(EXPERIMENT, data, settings=settings).skipped == len(before)  # resumable


def test_restore_of_one_model_and_domain_never_overwrites_a_differing_local_file(tmp_path: Path,
                                                                                 faults: Any) -> None:
    settings, proxy = faults.settings, faults.proxy
    data = make_data(tmp_path)
    before = experiment_files(data)
    archive_experiment(EXPERIMENT, data, settings=settings, date=D1)
    mine = data / "outputs" / EXPERIMENT / "model-a" / "chess_task" / "chess_0001" / "local-notes.txt"
    target = next(k for k in before if k.startswith("outputs/exp1/model-a/chess_task/chess_0000/"))
    (data / target).parent.mkdir(parents=True, exist_ok=True)
    (data / target).write_bytes(b"someone's newer file")
    mine.parent.mkdir(parents=True, exist_ok=True)
    mine.write_text("kept")
    proxy.clear()
    refused = run("restore", EXPERIMENT, "--model", "model-a", "--domain", "chess", "--data-dir", data)
    assert refused.exit_code == 1 and str(data / target) in refused.stderr and "never overwritten" in refused.stderr
    assert proxy.count("GET", r"/data/") == 0 and (data / target).read_bytes() == b"someone's newer file"
    (data / target).unlink()
    out = json.loads(ok("restore", EXPERIMENT, "--model", "model-a", "--domain", "chess", "--from", D1,
                        "--data-dir", data, "--json").stdout)
    wanted = {k: v for k, v in before.items() if "/model-a/chess_task/" in k}
    assert out["files"] == len(wanted) and {k: v for k, v in experiment_files(data).items()
                                            if "/model-a/chess_task/" in k and "notes" not in k} == wanted
    assert mine.read_text() == "kept" and not [k for k in experiment_files(data) if "model-b" in k]


def test_archive_refuses_to_delete_a_file_edited_after_the_snapshot(tmp_path: Path, faults: Any) -> None:
    data = make_data(tmp_path)
    before = experiment_files(data)
    video = sorted((data / "outputs" / EXPERIMENT).rglob("*.mp4"))[3]

    def edit_after_the_snapshot(stage: str, detail: str) -> None:
        if stage == "verify":
            video.write_bytes(b"re-rendered" + video.read_bytes()[11:])

    with pytest.raises(IntegrityError) as err:
        archive_experiment(EXPERIMENT, data, settings=faults.settings, date=D1, progress=edit_after_the_snapshot)
    assert str(video) in str(err.value) and "nothing was deleted" in str(err.value) and "\n" not in str(err.value)
    after = experiment_files(data)
    assert after.keys() == before.keys() and after[str(video.relative_to(data))].startswith(b"re-rendered")
    assert [e for e in VersionLog(data_dir=data).entries() if e.get("kind") == "archive"] == []


def test_a_fault_mid_archive_deletes_nothing_and_the_rerun_resumes(tmp_path: Path, faults: Any) -> None:
    settings, proxy = faults.settings.with_(s3_attempts=1), faults.proxy
    data = make_data(tmp_path)
    before = experiment_files(data)
    proxy.add(500, method="PUT", path=r"/data/outputs/", skip=6)  # the snapshot stops part-way
    with pytest.raises(S3UnreachableError):
        archive_experiment(EXPERIMENT, data, settings=settings, date=D1)
    assert experiment_files(data) == before and not (data / "data_logging").exists()
    landed = [k for k in keys_in(faults.settings, f"{D1}/") if "/outputs/" in k]
    assert 6 <= len(landed) and read_manifest(settings=faults.settings, date=D1) is None
    proxy.clear()
    result = archive_experiment(EXPERIMENT, data, settings=settings, date=D1)
    assert result.snapshot is not None and result.snapshot.skipped >= len(landed)  # resumed, not re-sent
    assert proxy.count("PUT", r"/data/outputs/") == result.snapshot.uploaded - proxy.count("PUT", r"/data/(questions|evaluations)/")
    assert result.deleted == len(before) and experiment_files(data) == {}


_KILL_AFTER_THREE_DELETIONS = """
import os, signal, sys
from vmeval_hf.config import Settings
from vmeval_hf.experiments import archive_experiment
deleted = []
def progress(stage, detail):
    if stage == "deleted":
        deleted.append(detail)
        if len(deleted) == 3:
            os.kill(os.getpid(), signal.SIGKILL)
archive_experiment(sys.argv[1], sys.argv[2], settings=Settings.from_env(), date=sys.argv[3], progress=progress)
"""


def test_sigkill_during_deletion_the_rerun_completes_and_the_record_is_right(tmp_path: Path, s3_settings: Settings,
                                                                            ) -> None:
    data = make_data(tmp_path)
    before = experiment_files(data)
    killed = subprocess.run([sys.executable, "-c", _KILL_AFTER_THREE_DELETIONS, EXPERIMENT, str(data), D1],
                            cwd=REPO, capture_output=True, text=True, timeout=300,
                            env=killable_env(tmp_path, PYTHONPATH=str(REPO)))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert len(experiment_files(data)) == len(before) - 3
    (record,) = [e for e in VersionLog(data_dir=data).entries() if e.get("kind") == "archive"]
    out = json.loads(ok("archive", EXPERIMENT, "--data-dir", data, "--json").stdout)
    assert out["deleted"] == len(before) - 3 and out["snapshot"] is None and out["date"] == D1
    assert [e for e in VersionLog(data_dir=data).entries() if e.get("kind") == "archive"] == [record]
    assert record["files"] == len(before)  # the record names every file archived, not the rest
    restore_experiment(EXPERIMENT, data, settings=s3_settings)
    assert experiment_files(data) == before


# -- listing, bad input, the CLI ---------------------------------------------------------------


def test_experiments_json_lists_a_local_and_an_archived_experiment(tmp_path: Path, s3_settings: Settings) -> None:
    data = make_data(tmp_path)
    local = {e.name: e.local for e in list_experiments(data)}
    assert local[EXPERIMENT]["models"] == ["model-a", "model-b"] and local[EXPERIMENT]["tasks_with_video"] == 19
    assert local[EXPERIMENT]["evaluations"] == {"GPT4OEvaluator": 20, "human-eval": 10}
    ok("archive", EXPERIMENT, "--data-dir", data, "--date", D1)
    listed = {e["name"]: e for e in json.loads(ok("experiments", "--data-dir", data, "--json").stdout)}
    assert listed[EXPERIMENT]["status"] == "archived" and listed[EXPERIMENT]["local"] is None
    (where,) = listed[EXPERIMENT]["archives"]
    assert where["s3_uri"] == f"s3://{s3_settings.s3_bucket}/{D1}/data" and where["summary"] == local[EXPERIMENT]
    assert listed["exp2"]["status"] == "local" and listed["exp2"]["local"]["models"] == ["model-c"]
    human = ok("experiments", "--data-dir", data).stdout
    assert f"{EXPERIMENT} (archived)" in human and f"archived in s3://{s3_settings.s3_bucket}/{D1}/data" in human
    assert "exp2 (local)" in human


def test_bad_outputs_are_warnings_naming_the_path_and_links_are_never_followed(tmp_path: Path,
                                                                               faults: Any) -> None:
    data = make_data(tmp_path)
    task = data / "outputs" / EXPERIMENT / "model-a" / "maze_task" / "maze_0000"
    for video in task.rglob("*.mp4"):
        video.unlink()  # a run folder without a video (its metadata saved, as upstream does on failure)
        (video.parents[1] / "metadata.json").write_text('{"inference": {"status": "failed"}}')
    bare = data / "outputs" / EXPERIMENT / "model-b" / "maze_task" / "maze_0009"
    bare.mkdir(parents=True)
    (bare / "metadata.json").write_text("{}")  # a task without video/
    orphan = data / "evaluations" / "human-eval" / EXPERIMENT / "model-b" / "sudoku_task" / "sudoku_0007" / "human-eval.json"
    write_json(orphan, {"metadata": {}, "result": {"solution_correctness_score": 1}})
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(b"outside the tree")
    link = data / "outputs" / EXPERIMENT / "model-a" / "chess_task" / "chess_0000" / "leak.mp4"
    link.symlink_to(outside)
    found = {(p.code, p.path) for e in list_experiments(data) for p in e.warnings}
    run_folder = next(p for p in task.iterdir() if p.is_dir())
    assert {("missing_video", str(run_folder)), ("missing_video", str(bare)), ("orphan_evaluation", str(orphan)),
            ("path_escape", str(link))} <= found
    shown = run("experiments", "--data-dir", data)
    assert shown.exit_code == 0 and f"path_escape: {link}" in shown.stderr and f"missing_video: {bare}" in shown.stderr
    refused = run("archive", EXPERIMENT, "--data-dir", data)
    assert refused.exit_code == 1 and str(link) in refused.stderr and "outside" in refused.stderr
    assert faults.proxy.count() == 0 and link.is_symlink() and outside.read_bytes() == b"outside the tree"


def test_archive_dry_run_writes_and_deletes_nothing_and_a_model_can_be_archived_alone(tmp_path: Path,
                                                                                     faults: Any) -> None:
    data = make_data(tmp_path)
    before = experiment_files(data)
    plan = json.loads(ok("archive", EXPERIMENT, "--dry-run", "--data-dir", data, "--json").stdout)
    assert plan["dry_run"] and plan["files"] == len(before) and plan["snapshot"]["uploaded"] > 0
    assert keys_in(faults.settings, "") == {} and experiment_files(data) == before
    one = archive_experiment(EXPERIMENT, data, settings=faults.settings, models=["model-b"], date=D1)
    left = experiment_files(data)
    assert one.deleted == len(before) - len(left) and left and not [k for k in left if "/model-b/" in k]
    assert one.entry["models"] == ["model-b"]
    with pytest.raises(ConfigError, match="never archived"):
        archive_experiment("no-such-experiment", data, settings=faults.settings)


def test_an_experiment_archived_in_two_parts_is_restored_whole(tmp_path: Path, faults: Any) -> None:
    data = make_data(tmp_path)
    before = experiment_files(data)
    archive_experiment(EXPERIMENT, data, settings=faults.settings, models=["model-b"], date=D1)
    rest = archive_experiment(EXPERIMENT, data, settings=faults.settings, date=D2)
    # the first snapshot holds the rest, but with model-b beside it: a new (incremental) one pins the rest alone
    assert rest.date == D2 and rest.snapshot.uploaded == 0 and rest.snapshot.copied == rest.snapshot.files
    assert experiment_files(data) == {} and len(
        [e for e in VersionLog(data_dir=data).entries() if e.get("kind") == "archive"]) == 2
    restored = json.loads(ok("restore", EXPERIMENT, "--data-dir", data, "--json").stdout)
    assert restored["files"] == len(before) == restored["downloaded"] and experiment_files(data) == before
