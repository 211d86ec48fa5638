"""``vmeval-hf results publish``: the results dataset on the session's Hub server and a moto bucket.

The real commands run through ``CliRunner``; the outcome is read back through the other side's
clients: tags on the Hub, objects in the bucket, rows from the unmodified ``datasets.load_dataset``
(fresh cache, both the default and a per-evaluator config), the version log's bytes.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from tests.support.cli import ok, run
from tests.support.experiments import (
    DOMAINS,
    EXPERIMENT,
    GPT,
    HUMAN,
    QUESTIONS_PER_DOMAIN,
    Experiment,
    write_experiment,
    write_json,
)
from tests.support.hub import disable_parquet_export
from tests.support.s3 import raw_client
from tests.support.trees import make_tree
from vmeval_hf.config import Settings
from vmeval_hf.release.build import build_release
from vmeval_hf.sandbox import HubServer

LABEL = f"{EXPERIMENT}-1.0"
DAY = "20250115"


class Env:
    def __init__(self, exp: Experiment, settings: Settings, hub: HubServer) -> None:
        self.exp, self.data, self.settings, self.hub = exp, exp.data, settings, hub

    @property
    def log_path(self) -> Path:
        return self.data / "data_logging" / "version_log.json"

    def keys(self, prefix: str = "") -> dict[str, int]:
        pages = raw_client(self.settings).get_paginator("list_objects_v2").paginate(
            Bucket=self.settings.s3_bucket, Prefix=prefix)
        return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", ())}

    def tags(self, repo: str) -> dict[str, str]:
        from vmeval_hf.hub import hub_api

        refs = hub_api(self.settings).list_repo_refs(repo, repo_type="dataset")
        return {t.name: t.target_commit for t in refs.tags}


@pytest.fixture
def env(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_settings: Settings,
        hub_repo: str, hub_server: HubServer) -> Env:
    """Questions (5 domains x 2) and experiment exp1 (in the layout with evaluator folders unless the
    test asks for another) in a fresh working folder; fresh repos and bucket."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VMEVAL_HF_REPO", hub_repo)
    monkeypatch.setenv("VMEVAL_RESULTS_REPO", f"{hub_repo}-results")
    data = make_tree(tmp_path / "data", {d: QUESTIONS_PER_DOMAIN for d in DOMAINS})
    return Env(write_experiment(data, getattr(request, "param", "folders")), Settings.from_env(), hub_server)


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_publish_mirror_load_both_configs_verify_and_log(env: Env, fresh_hf_cache: Path) -> None:
    ok("publish", "--data-dir", env.data, "--log", "--date", DAY)  # questions 1.0, the version the run was on
    out = ok("results", "publish", "--data-dir", env.data, "--experiment", EXPERIMENT, "--log", "--json")
    entry = json.loads(out.stdout)
    repo = env.settings.results_repo
    day = f"{datetime.now(timezone.utc):%Y%m%d}-{LABEL}"
    assert entry == json.loads(env.log_path.read_text())["versions"][-1]
    assert (entry["kind"], entry["version"], entry["experiment"], entry["date"]) == ("results", LABEL, EXPERIMENT, day)
    assert (entry["hf_repo"], entry["hf_revision"], entry["hf_uri"]) == (repo, LABEL, f"hf://datasets/{repo}@{LABEL}")
    assert entry["hf_commit"] == env.tags(repo)[LABEL]
    assert entry["s3_uri"] == f"s3://{env.settings.s3_bucket}/{day}/data"
    assert (entry["rows"], entry["question_version"], entry["evaluators"]) == (30, "1.0", {GPT: 20, HUMAN: 10})

    # S3: the experiment's folders of the data tree byte for byte, the release, then MANIFEST.json
    release = env.data / "releases" / LABEL
    want = {f"{day}/release/{p}" for p in files_under(release)} | {f"{day}/MANIFEST.json"}
    for folder in ("evaluations/gpt4o-eval/exp1", "evaluations/human-eval/exp1", "outputs/exp1"):
        want |= {f"{day}/data/{folder}/{p}" for p in files_under(env.data / folder)}
    assert set(env.keys(f"{day}/")) == want
    assert entry["files"] == len(want) - 1

    import datasets

    disable_parquet_export()
    every = datasets.load_dataset(repo, revision=LABEL, split="test")
    human = datasets.load_dataset(repo, HUMAN, revision=LABEL, split="test")
    assert len(every) == 30 and len(human) == 10 and set(human["evaluator"]) == {HUMAN}
    scores = {(r["model"], r["task_id"], r["evaluator"]): (r["score"], r["success"], r["status"]) for r in every}
    assert scores == {(r["model"], r["task_id"], r["evaluator"]): (r["score"], r["success"], r["status"])
                      for r in env.exp.rows}
    assert every.features["score"].dtype == "int64" and every.features["success"].dtype == "bool"

    assert ok("verify", LABEL, "--data-dir", env.data).stdout.strip() == f"version {LABEL}: verified"
    assert ok("verify", "1.0", "--data-dir", env.data).stdout.strip() == "version 1.0: verified"
    summary = ok("versions", "--data-dir", env.data).stdout.splitlines()
    assert summary[0].startswith("v1.0 (") and summary[2].startswith(f"results {LABEL} (")
    assert ok("versions", "latest", "--data-dir", env.data).stdout.startswith("Latest: v1.0 ")


def _local_questions(env: Env) -> None:
    build_release(env.data, version="1.0")  # built here, not published: --questions-version 1.0 reads it


def _publish(env: Env, *args: str) -> Result:
    return run("results", "publish", "--data-dir", env.data, "--experiment", EXPERIMENT, "--questions-version",
               "1.0", "--date", DAY, *args)


def test_a_rerun_is_a_noop_and_other_content_is_refused(env: Env) -> None:
    _local_questions(env)
    first = _publish(env, "--log", "--json")
    assert first.exit_code == 0, first.stderr
    repo, log_bytes = env.settings.results_repo, env.log_path.read_bytes()
    tags, objects = env.tags(repo), env.keys()
    again = _publish(env, "--log", "--version", LABEL)  # (the default would be the next label)
    assert again.exit_code == 0, again.stderr
    assert f"results {LABEL} are already published with this content; nothing to do" in again.stdout
    assert (env.tags(repo), env.keys(), env.log_path.read_bytes()) == (tags, objects, log_bytes)

    path = env.exp.files[f"model-b/chess_0001/{GPT}"]
    write_json(path, {"metadata": {}, "result": {"solution_correctness_score": 5, "status": "completed"}})
    requests = env.hub.requests
    refused = _publish(env, "--log", "--version", LABEL)
    assert refused.exit_code == 1
    (line,) = [x for x in refused.stderr.splitlines() if x.startswith("ERROR:")]
    assert LABEL in line and f"{EXPERIMENT}-1.1" in line and "--force" in line
    assert env.hub.requests == requests  # refused before the Hub was asked anything
    assert (env.tags(repo), env.keys(), env.log_path.read_bytes()) == (tags, objects, log_bytes)
    # the next label takes the new content, on its own S3 prefix
    nxt = _publish(env, "--log", "--version", f"{EXPERIMENT}-1.1", "--date", f"{DAY}-b", "--json")
    assert nxt.exit_code == 0, nxt.stderr
    assert json.loads(nxt.stdout)["content_sha256"] != json.loads(first.stdout)["content_sha256"]
    assert set(env.tags(repo)) == {LABEL, f"{EXPERIMENT}-1.1"}


@pytest.mark.parametrize("bad", ["malformed", "out of range"])
def test_bad_evaluations_publish_nothing(env: Env, bad: str) -> None:
    _local_questions(env)
    path = env.exp.files[f"model-a/maze_0001/{GPT}"]
    if bad == "malformed":
        path.write_text('{"metadata": {}, "result": ', encoding="utf-8")
    else:
        write_json(path, {"metadata": {}, "result": {"solution_correctness_score": 6, "status": "completed"}})
    requests = env.hub.requests
    result = _publish(env, "--log")
    assert result.exit_code == 1
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("ERROR:")]
    assert str(path) in line and "results validate --experiment exp1" in line
    assert env.hub.requests == requests and env.keys() == {}
    assert not env.log_path.exists() and not (env.data / "releases" / LABEL).exists()
    listed = json.loads(run("results", "validate", "--data-dir", env.data, "--experiment", EXPERIMENT,
                            "--questions-version", "1.0", "--json").stdout)
    code = "evaluation_invalid_json" if bad == "malformed" else "score_out_of_range"
    assert {"path": str(path), "code": code, "severity": "error"} in [
        {k: p[k] for k in ("path", "code", "severity")} for p in listed]


@pytest.mark.parametrize("env", ["flat"], indirect=True)
def test_the_s3_side_is_verified_as_the_release_records_it(env: Env) -> None:
    """The layout without evaluator folders, mirrored and verified; a results source deleted on S3 is caught."""
    _local_questions(env)
    assert _publish(env, "--log").exit_code == 0
    mirrored = env.keys(f"{DAY}/data/")
    assert {k.split("/")[2:4] == ["evaluations", EXPERIMENT] or k.split("/")[2:4] == ["outputs", EXPERIMENT]
            for k in mirrored} == {True}
    assert len(mirrored) == len(env.exp.rows) + 19  # every evaluation file and the 19 videos
    assert ok("verify", LABEL, "--data-dir", env.data).stdout.strip() == f"version {LABEL}: verified"
    client, bucket = raw_client(env.settings), env.settings.s3_bucket
    victim = f"{DAY}/data/" + env.exp.files[f"model-a/chess_0000/{GPT}"].relative_to(env.data).as_posix()
    client.delete_object(Bucket=bucket, Key=victim)
    report: dict[str, Any] = json.loads(run("verify", LABEL, "--data-dir", env.data, "--json").stdout)
    assert report["ok"] is False
    assert (victim, "missing") in {(m["where"], m["problem"]) for m in report["mismatches"]}
    assert os.path.isdir(env.data / "releases" / LABEL)


def test_results_go_to_the_hub_in_batches_of_files_per_commit(env: Env) -> None:
    """``results publish --files-per-commit``: the release in commits of at most that many files,
    only the last tagged; it verifies. A bad value is a usage error before anything is built."""
    from vmeval_hf.hub import hub_api

    _local_questions(env)
    bad = _publish(env, "--files-per-commit", "0")
    assert bad.exit_code == 2 and "--files-per-commit" in bad.stderr
    assert not (env.data / "releases" / LABEL).exists()
    assert _publish(env, "--files-per-commit", "2", "--log").exit_code == 0
    repo = env.settings.results_repo
    files = len(json.loads((env.data / "releases" / LABEL / "vmeval_release.json").read_text())["files"]) + 1
    commits = hub_api(env.settings).list_repo_commits(repo, repo_type="dataset", revision=LABEL)
    release_commits = [c for c in commits if c.title.startswith(f"Results {LABEL}")]
    assert len(release_commits) == -(-files // 2) >= 2
    assert release_commits[0].title == f"Results {LABEL}"  # the newest, tagged, is the whole title
    assert all(c.title.endswith(f"of {len(release_commits)})") for c in release_commits[1:])
    assert ok("verify", LABEL, "--data-dir", env.data).stdout.strip() == f"version {LABEL}: verified"
