"""The results dataset, local side: reading both evaluation layouts, the rows, the leaderboard numbers,
the release folder and card, and every bad input named with its path (nothing written then).

The experiment is written by tests/support/experiments.py, which also says what each row holds; the
numbers below are computed from those rows here (and a few by hand), never by the code under test.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from tests.support.experiments import (
    DOMAINS,
    EXPERIMENT,
    GPT,
    HUMAN,
    LAYOUTS,
    QUESTIONS_PER_DOMAIN,
    Experiment,
    evaluation_path,
    video_path,
    write_experiment,
    write_json,
)
from tests.support.files import snapshot
from tests.support.trees import make_tree
from vmeval_hf.cli import cli
from vmeval_hf.config import Settings
from vmeval_hf.diff import diff_versions
from vmeval_hf.errors import ConfigError, ValidationError
from vmeval_hf.release.build import build_release
from vmeval_hf.results.build import build_results
from vmeval_hf.results.leaderboard import show_results
from vmeval_hf.results.model import check_results_label, next_results_version
from vmeval_hf.results.publish import publish_results
from vmeval_hf.results.scan import validate_results
from vmeval_hf.versions import VersionLog

LABEL = f"{EXPERIMENT}-1.0"
SETTINGS = Settings()  # the question release is built locally: nothing remote is asked


@pytest.fixture(params=LAYOUTS)
def exp(request: pytest.FixtureRequest, tmp_path: Path) -> Experiment:
    """Questions 1.0 (built here) and ``exp1`` in one of the two upstream layouts."""
    data = make_tree(tmp_path / "data", {d: QUESTIONS_PER_DOMAIN for d in DOMAINS})
    build_release(data, version="1.0")
    return write_experiment(data, request.param)


def build(exp: Experiment, **kwargs: Any) -> Any:
    return build_results(exp.data, experiment=EXPERIMENT, settings=SETTINGS, questions_version="1.0", **kwargs)


def shard_rows(release: Path, evaluator: str | None = None) -> list[dict[str, Any]]:
    """Every row of the release's shards, read with pyarrow alone."""
    pattern = f"data/{evaluator or '*'}/test-*.parquet"
    return [row for p in sorted(release.glob(pattern)) for row in pq.read_table(p).to_pylist()]


def expected_cells(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(evaluator, model, domain or "overall") -> the numbers, counted here from the written rows."""
    acc: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in rows:
        for where in (r["domain"], "overall"):
            c = acc.setdefault((r["evaluator"], r["model"], where),
                               {"evaluations": 0, "scored": 0, "successes": 0, "total": 0})
            c["evaluations"] += 1
            if r["score"] is not None:
                c["scored"] += 1
                c["total"] += r["score"]
                c["successes"] += 1 if r["score"] in (4, 5) else 0
    return {k: {"evaluations": c["evaluations"], "scored": c["scored"], "successes": c["successes"],
                "success_rate": c["successes"] / c["scored"] if c["scored"] else None,
                "mean_score": c["total"] / c["scored"] if c["scored"] else None} for k, c in acc.items()}


# --- rows, numbers, release ------------------------------------------------------------------------


def test_every_row_is_the_evaluation_file_it_came_from(exp: Experiment) -> None:
    built = build(exp)
    assert built.version == LABEL and built.out == exp.data / "releases" / LABEL
    question_manifest = json.loads((exp.data / "releases" / "1.0" / "vmeval_release.json").read_text())
    got = shard_rows(built.out)
    assert len(got) == len(exp.rows) == 30  # 2 models x 5 domains x 2 GPT-4o + 2 x 5 human
    by_key = {(r["model"], r["task_id"], r["evaluator"]): r for r in got}
    for want in exp.rows:
        row = by_key[(want["model"], want["task_id"], want["evaluator"])]
        for name in ("model", "domain", "task_id", "evaluator", "evaluator_folder", "score", "success", "status",
                     "explanation", "annotator", "evaluation", "source_path", "video_key", "video_sha256"):
            assert row[name] == want[name], (name, want["source_path"])
        assert row["question_version"] == "1.0"
        assert row["question_content_sha256"] == question_manifest["content_sha256"]
        assert row["video"] is None  # not without --with-videos
    skipped = by_key[("model-a", "rotation_0001", GPT)]
    assert (skipped["status"], skipped["score"], skipped["success"]) == ("skipped", None, None)
    assert skipped["error"] == "skipped: no usable video" and skipped["video_key"] is None
    # one config per evaluator: a shard folder each, rows in model, domain, natural id order
    for evaluator in (GPT, HUMAN):
        rows = shard_rows(built.out, evaluator)
        assert {r["evaluator"] for r in rows} == {evaluator}
        assert [(r["model"], r["task_id"]) for r in rows] == sorted((r["model"], r["task_id"]) for r in rows)


def test_the_leaderboard_numbers_match_the_rows(exp: Experiment) -> None:
    built = build(exp)
    want = expected_cells(exp.rows)
    for board in (built.leaderboard, json.loads((built.out / "leaderboard.json").read_text()),
                  show_results(exp.data, experiment=EXPERIMENT, settings=SETTINGS, questions_version="1.0")):
        got = {}
        for table in board["evaluators"]:
            for m in table["models"]:
                got[(table["evaluator"], m["model"], "overall")] = m["overall"]
                got.update({(table["evaluator"], m["model"], d): c for d, c in m["domains"].items()})
        assert got.keys() == want.keys()
        for key, cell in want.items():
            assert {k: got[key][k] for k in ("evaluations", "scored", "successes")} == \
                {k: cell[k] for k in ("evaluations", "scored", "successes")}, key
            for k in ("success_rate", "mean_score"):
                assert got[key][k] == pytest.approx(cell[k]), (key, k)
    # a few by hand: GPT-4o scored model-a 5,4,2,5,1,3,4,5,4 (one skipped), model-b 3,1,4,2,2,1,5,2
    gpt = next(t for t in built.leaderboard["evaluators"] if t["evaluator"] == GPT)
    a, b = gpt["models"]
    assert (a["model"], a["rank"], b["model"], b["rank"]) == ("model-a", 1, "model-b", 2)
    assert (a["overall"]["successes"], a["overall"]["scored"], a["overall"]["evaluations"]) == (6, 9, 10)
    assert a["overall"]["mean_score"] == pytest.approx(33 / 9)
    assert (b["overall"]["successes"], b["overall"]["scored"]) == (2, 8)
    assert b["overall"]["mean_score"] == pytest.approx(2.5)
    assert b["domains"]["raven"] == {"evaluations": 2, "scored": 1, "successes": 0, "success_rate": 0.0,
                                     "mean_score": 2.0}


def test_the_release_manifest_names_every_source(exp: Experiment) -> None:
    built = build(exp)
    manifest = json.loads((built.out / "vmeval_release.json").read_text())
    qfile = exp.data / "releases" / "1.0" / "vmeval_release.json"
    want = {r["source_path"]: (r["source_size"], r["source_sha256"]) for r in exp.rows}
    for r in exp.rows:
        if r["video_bytes"] is not None:
            want[r["video_key"].removeprefix("data/")] = (len(r["video_bytes"]), r["video_sha256"])
    want["releases/1.0/vmeval_release.json"] = (qfile.stat().st_size, hashlib.sha256(qfile.read_bytes()).hexdigest())
    assert {s["path"]: (s["size"], s["sha256"]) for s in manifest["sources"]} == want
    listed = json.dumps(sorted(manifest["sources"], key=lambda s: s["path"]), sort_keys=True, separators=(",", ":"))
    assert manifest["content_sha256"] == hashlib.sha256(listed.encode()).hexdigest() == built.content_sha256
    assert (manifest["kind"], manifest["version"], manifest["experiment"]) == ("results", LABEL, EXPERIMENT)
    assert manifest["rows"] == 30 and manifest["evaluators"] == {GPT: 20, HUMAN: 10}
    assert manifest["question_version"] == "1.0" and manifest["questions"] == 10
    on_disk = snapshot(built.out)
    assert sorted(on_disk) == sorted([f["path"] for f in manifest["files"]] + ["vmeval_release.json"])
    for f in manifest["files"]:
        assert (len(on_disk[f["path"]]), hashlib.sha256(on_disk[f["path"]]).hexdigest()) == (f["size"], f["sha256"])
    assert {s["path"]: s["rows"] for s in manifest["shards"]} == {
        f"data/{GPT}/test-00000-of-00001.parquet": 20, f"data/{HUMAN}/test-00000-of-00001.parquet": 10}
    assert sorted(built.folders) == sorted(
        ([f"evaluations/gpt4o-eval/{EXPERIMENT}", f"evaluations/human-eval/{EXPERIMENT}"]
         if exp.layout == "folders" else [f"evaluations/{EXPERIMENT}"]) + [f"outputs/{EXPERIMENT}"])


def test_the_same_inputs_give_the_same_bytes(exp: Experiment, tmp_path: Path) -> None:
    first, second = build(exp, out=tmp_path / "one"), build(exp, out=tmp_path / "two")
    assert snapshot(first.out) == snapshot(second.out)
    with_videos = build(exp, out=tmp_path / "videos", with_videos=True)
    assert with_videos.content_sha256 == first.content_sha256  # the same content, the bytes embedded
    rows = {(r["model"], r["task_id"], r["evaluator"]): r for r in shard_rows(with_videos.out)}
    for want in exp.rows:
        assert rows[(want["model"], want["task_id"], want["evaluator"])]["video"] == want["video_bytes"]


def test_the_card_is_the_loading_config_and_shows_the_leaderboard(exp: Experiment) -> None:
    built = build(exp, repo_id="someone/results")
    text = (built.out / "README.md").read_text(encoding="utf-8")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert [c["config_name"] for c in meta["configs"]] == ["default", GPT, HUMAN]
    assert meta["configs"][0]["data_files"] == [{"split": "test", "path": "data/*/test-*.parquet"}]
    assert meta["configs"][2]["data_files"] == [{"split": "test", "path": f"data/{HUMAN}/test-*.parquet"}]
    sizes = {i["config_name"]: i["splits"][0]["num_examples"] for i in meta["dataset_info"]}
    assert sizes == {"default": 30, GPT: 20, HUMAN: 10}
    assert meta["vmeval"]["question_version"] == "1.0" and meta["vmeval"]["version"] == LABEL
    assert "![success rate per model and domain](assets/leaderboard.png)" in text
    assert f'load_dataset("someone/results", revision="{LABEL}", split="test")' in text
    assert f'load_dataset("someone/results", "{GPT}", revision="{LABEL}", split="test")' in text
    assert 'load_dataset("org/vmevalkit-questions", revision="1.0", split="test")' in text
    assert "| 1 | model-a | 66.7% (6/9) | 3.67 | 9 | 1 |" in text  # GPT-4o's table
    assert "| 1 | model-a | 60.0% (3/5) | 3.60 | 5 | 0 |" in text  # the human table
    with Image.open(io.BytesIO((built.out / "assets" / "leaderboard.png").read_bytes())) as im:
        assert im.format == "PNG" and im.width >= 300 and im.height >= 200


def test_show_prints_one_table_per_evaluator(exp: Experiment) -> None:
    args = ["results", "show", "--data-dir", str(exp.data), "--experiment", EXPERIMENT, "--questions-version", "1.0"]
    human = CliRunner().invoke(cli, args)
    assert human.exit_code == 0, human.output
    lines = human.stdout.splitlines()
    assert lines[0].startswith(f"experiment {EXPERIMENT} on questions 1.0")
    assert GPT in lines and HUMAN in lines
    row = next(x for x in lines[lines.index(GPT):] if "model-b" in x).split()
    assert row[:6] == ["2", "model-b", "25.0%", "(2/8)", "2.50", "8"]
    data = json.loads(CliRunner().invoke(cli, [*args, "--json"]).stdout)
    assert data == json.loads(json.dumps(show_results(exp.data, experiment=EXPERIMENT, settings=SETTINGS,
                                                      questions_version="1.0")))


def test_warnings_do_not_stop_the_build(exp: Experiment) -> None:
    gone = video_path(exp.data, "model-b", "chess", "chess_0000")
    gone.unlink()
    extra = exp.data / "outputs" / EXPERIMENT / "model-a" / "maze_task" / "maze_0000" / "run2" / "video" / "v.mp4"
    extra.parent.mkdir(parents=True)
    extra.write_bytes(b"a second run")
    built = build(exp)
    codes = {(p.code, p.path) for p in built.report.warnings}
    assert ("missing_video", str(gone.parents[2])) in codes
    assert ("multiple_videos", str(extra.parents[2])) in codes
    rows = {(r["model"], r["task_id"], r["evaluator"]): r for r in shard_rows(built.out)}
    assert rows[("model-b", "chess_0000", GPT)]["video_key"] is None
    # the last run by path is the one scored ("run2" sorts after "model-a_maze_0000_...")
    assert rows[("model-a", "maze_0000", GPT)]["video_sha256"] == hashlib.sha256(b"a second run").hexdigest()


# --- bad input: every one named with its path, nothing written -------------------------------------


def _gpt(exp: Experiment, model: str = "model-a", task_id: str = "chess_0000") -> Path:
    return exp.files[f"{model}/{task_id}/{GPT}"]


def _evaluation(score: Any = 4, **result: Any) -> dict[str, Any]:
    return {"metadata": {"evaluator": "gpt-4o", "timestamp": "t"},
            "result": {"solution_correctness_score": score, "status": "completed", **result}}


def _model_folder(exp: Experiment, name: str) -> Path:
    path = evaluation_path(exp.data, exp.layout, GPT, name, "chess", "chess_0000")
    write_json(path, _evaluation())
    return path.parents[2]


def _other_layout(exp: Experiment) -> Path:
    """The same (model, task, evaluator) again, in the other layout."""
    path = evaluation_path(exp.data, "flat" if exp.layout == "folders" else "folders", GPT, "model-a", "chess",
                           "chess_0000")
    write_json(path, _evaluation(5))
    return path


def _linked_model(exp: Experiment) -> Path:
    outside = exp.data.parent / "elsewhere"
    write_json(outside / "chess_task" / "chess_0000" / f"{GPT}.json", _evaluation())
    link = _gpt(exp).parents[3] / "evil"
    link.symlink_to(outside, target_is_directory=True)
    return link


BAD: dict[str, tuple[Any, str]] = {
    "malformed json": (lambda e: _write(_gpt(e), b'{"metadata": {}, "result": {"solution_corr'), "evaluation_invalid_json"),
    "not utf-8": (lambda e: _write(_gpt(e), b"\xff\xfe{}"), "evaluation_invalid_json"),
    "no result object": (lambda e: _write(_gpt(e), b'{"metadata": {}, "result": 5}'), "evaluation_bad_shape"),
    "score 7": (lambda e: _doc(_gpt(e), _evaluation(7)), "score_out_of_range"),
    "score 0": (lambda e: _doc(_gpt(e), _evaluation(0)), "score_out_of_range"),
    "score 4.5": (lambda e: _doc(_gpt(e), _evaluation(4.5)), "bad_score"),
    "score as text": (lambda e: _doc(_gpt(e), _evaluation("5")), "bad_score"),
    "completed without a score": (lambda e: _doc(_gpt(e), {"metadata": {}, "result": {
        "status": "completed", "explanation": "forgot the score"}}), "missing_score"),
    "unknown status": (lambda e: _doc(_gpt(e), _evaluation(4, status="done")), "bad_status"),
    "task id in the wrong folder": (lambda e: _doc(_gpt(e), {"metadata": {"task_id": "chess_0001"}, "result": {
        "solution_correctness_score": 4}}), "metadata_mismatch"),
    "two files for one evaluation": (_other_layout, "duplicate_evaluation"),
    "question not in the version": (lambda e: _doc(evaluation_path(e.data, e.layout, GPT, "model-a", "chess",
                                                                   "chess_0007"), _evaluation()), "unknown_question"),
    "domain not in the version": (lambda e: _doc(evaluation_path(e.data, e.layout, GPT, "model-a", "tetris",
                                                                 "tetris_0000"), _evaluation()), "unknown_question"),
    "model with a space": (lambda e: _model_folder(e, "model a"), "bad_name"),
    "model like an option": (lambda e: _model_folder(e, "-rf"), "bad_name"),
    "model with dots": (lambda e: _model_folder(e, "a..b"), "bad_name"),
    "model not ascii": (lambda e: _model_folder(e, "modèle"), "bad_name"),
    "model with a newline": (lambda e: _model_folder(e, "model\n"), "bad_name"),
    "model linked outside": (_linked_model, "path_escape"),
    "evaluator named default": (lambda e: _doc(_gpt(e).with_name("default.json"), _evaluation()), "bad_name"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _doc(path: Path, doc: Any) -> Path:
    write_json(path, doc)
    return path


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_named_with_its_path_and_nothing_is_written(exp: Experiment, case: str) -> None:
    plant, code = BAD[case]
    path = plant(exp)
    report = validate_results(exp.data, experiment=EXPERIMENT, settings=SETTINGS, questions_version="1.0")
    found = {(p.path, p.code) for p in report.errors}
    if code == "duplicate_evaluation":  # whichever of the two is read second is the duplicate
        first = _gpt(exp)
        assert {(str(path), code), (str(first), code)} & found, found
    else:
        assert (str(path), code) in found, found
    before = sorted(os.listdir(exp.data / "releases"))
    with pytest.raises(ValidationError) as caught:
        build(exp)
    assert {(p.path, p.code) for p in caught.value.problems if p.severity == "error"} == found
    assert "results validate --experiment exp1" in str(caught.value)
    assert sorted(os.listdir(exp.data / "releases")) == before == ["1.0"]


def test_no_evaluations_is_an_error(exp: Experiment) -> None:
    report = validate_results(exp.data, experiment="exp2", settings=SETTINGS, questions_version="1.0")
    assert [(p.code, p.path) for p in report.errors] == [("no_evaluations", str(exp.data / "evaluations"))]


def test_another_experiment_with_a_model_named_like_this_one_is_left_alone(exp: Experiment) -> None:
    """evaluations/other/exp1/chess_task/... is experiment "other"'s model "exp1", not an evaluator folder."""
    write_json(exp.data / "evaluations" / "other" / EXPERIMENT / "chess_task" / "chess_0000" / f"{GPT}.json",
               _evaluation())
    report = validate_results(exp.data, experiment=EXPERIMENT, settings=SETTINGS, questions_version="1.0")
    assert report.problems == [] and len(report.evaluations) == 30


# --- labels and the log ----------------------------------------------------------------------------


def test_labels_are_per_experiment_and_never_a_question_version() -> None:
    entries = [{"version": "1.0"}, {"version": "1.1"},
               {"version": "exp1-1.0", "kind": "results", "experiment": "exp1"},
               {"version": "exp1-1.1", "kind": "results", "experiment": "exp1"},
               {"version": "exp2-1.0", "kind": "results", "experiment": "exp2"}]
    assert next_results_version(entries, "exp1") == "exp1-1.2"
    assert next_results_version(entries, "exp3") == "exp3-1.0"
    assert check_results_label("exp1-2.0", "exp1") == "exp1-2.0"
    for bad in ("1.0", "exp2-1.0", "exp1-", "exp1-../x"):
        with pytest.raises(ConfigError):
            check_results_label(bad, "exp1")


def test_a_bad_experiment_name_is_refused(exp: Experiment) -> None:
    for name in ("../exp1", "exp 1", ""):
        with pytest.raises(ConfigError, match="--experiment"):
            validate_results(exp.data, experiment=name, settings=SETTINGS, questions_version="1.0")


def test_results_entries_are_apart_from_question_versions(tmp_path: Path) -> None:
    log = VersionLog(data_dir=tmp_path)
    log.append({"version": "1.0", "s3_uri": "s3://b/20250115/data", "questions": 10})
    log.append({"version": "exp1-1.0", "kind": "results", "experiment": "exp1", "s3_uri": "s3://b/x/data",
                "rows": 30, "question_version": "1.0"})
    assert log.latest()["version"] == "1.0" and log.next_version() == "1.1"
    lines = log.summary_text().splitlines()
    assert lines[0].startswith("v1.0 (") and lines[1].endswith(", 10 questions")
    assert lines[2].startswith("results exp1-1.0 (") and lines[3].endswith(", 30 evaluations of questions 1.0")
    with pytest.raises(ConfigError, match="exp1-1.0 is a results version"):
        diff_versions("1.0", "exp1-1.0", settings=SETTINGS, data_dir=tmp_path)


def test_questions_default_to_the_latest_logged_version(exp: Experiment) -> None:
    with pytest.raises(ConfigError, match="--questions-version"):
        build_results(exp.data, experiment=EXPERIMENT, settings=SETTINGS)
    VersionLog(data_dir=exp.data).append({"version": "1.0", "content_sha256": json.loads(
        (exp.data / "releases" / "1.0" / "vmeval_release.json").read_text())["content_sha256"]})
    built = build_results(exp.data, experiment=EXPERIMENT, settings=SETTINGS)
    assert built.question_version == "1.0"


def test_a_label_too_long_for_a_date_prefix_asks_for_date_before_any_work(exp: Experiment) -> None:
    label = f"{EXPERIMENT}-1.0-" + "x" * 40
    with pytest.raises(ConfigError, match="pass --date"):
        publish_results(exp.data, experiment=EXPERIMENT, settings=SETTINGS, questions_version="1.0", version=label)
    assert sorted(os.listdir(exp.data / "releases")) == ["1.0"]
