"""``vmeval-hf demo``: the whole flow end to end on the sandbox, no credentials, no network.

create questions -> publish --log 1.0 -> change a few questions -> publish --log 1.1 ->
a tiny experiment's evaluations on 1.1 -> results publish --log demo-1.0 ->
load all three back with the unmodified ``datasets`` client in a fresh process (1.1 must serve
the edited prompts and the changed frame, 1.0 the originals) -> verify all three -> report,
with the leaderboard.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PIL import Image

from .config import Settings
from .errors import ConfigError, VerifyError
from .generate import create_dataset
from .publish import PublishResult, publish_version, verify_version
from .results.leaderboard import leaderboard_lines
from .results.publish import publish_results
from .sandbox.local import Sandbox, moto_server
from .tree.manifest_sync import write_manifest

MARKER = ".vmeval-demo"

_LOAD_BACK = r"""
import hashlib, json, sys
import datasets
out = {}
for arg in sys.argv[1:]:
    repo, _, rev = arg.rpartition("@")
    ds = datasets.load_dataset(repo, revision=rev, split="test")
    out[rev] = {"rows": len(ds)}
    if "first_frame" in ds.column_names:
        raw = ds.select_columns(["id", "first_frame"]).cast_column("first_frame", datasets.Image(decode=False))
        out[rev].update(ids=sorted(ds["id"]), prompts=dict(zip(ds["id"], ds["prompt"])),
                        first_frame_size=list(ds[0]["first_frame"].size),
                        first_frames={r["id"]: hashlib.sha256(r["first_frame"]["bytes"]).hexdigest() for r in raw})
print(json.dumps(out))
"""
#: the demo's experiment: two models, GPT-4o on up to two questions per domain, a human on the first
EXPERIMENT, MODELS = "demo", ("model-a", "model-b")


def _prepare(workdir: Path) -> None:
    """The demo owns its work folder: start clean, but never delete a folder it did not create."""
    if workdir.exists() and any(workdir.iterdir()):
        if not (workdir / MARKER).exists():
            raise ConfigError(f"{workdir} exists and is not a demo folder; pass --workdir with a new or "
                              "empty folder")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text("created by `vmeval-hf demo`; safe to delete\n", encoding="utf-8")


@dataclass
class _Changes:
    """What 1.1 changed, for checking each revision as loaded back: question id -> (as in 1.0,
    as in 1.1), for prompts and for first frames (their sha256)."""

    lines: list[str] = field(default_factory=list)
    prompts: dict[str, tuple[str, str]] = field(default_factory=dict)
    first_frames: dict[str, tuple[str, str]] = field(default_factory=dict)


def _change_questions(questions_dir: Path) -> _Changes:
    """Edit the prompt of the first question of two domains, turn the first frame of the first
    one upside down, and drop the last question of one domain."""
    changes = _Changes()
    domains = sorted(p for p in questions_dir.iterdir() if p.is_dir())
    for domain_dir in domains[:2]:
        folder = sorted(p for p in domain_dir.iterdir() if p.is_dir())[0]
        before = (folder / "prompt.txt").read_text(encoding="utf-8")
        prompt = before + " Explain each step."
        (folder / "prompt.txt").write_text(prompt, encoding="utf-8")
        meta_path = folder / "question_metadata.json"
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        meta["prompt"] = prompt
        meta_path.write_text(json.dumps(meta, indent=2), encoding="utf-8")
        changes.prompts[folder.name] = (before, prompt)
        changes.lines.append(f"edited {folder.name}")
    frame = sorted(p for p in domains[0].iterdir() if p.is_dir())[0] / "first_frame.png"
    before_sha = hashlib.sha256(frame.read_bytes()).hexdigest()
    with Image.open(frame) as im:
        im.transpose(Image.Transpose.ROTATE_180).save(frame, format="PNG")
    changes.first_frames[frame.parent.name] = (before_sha, hashlib.sha256(frame.read_bytes()).hexdigest())
    changes.lines.append(f"turned the first frame of {frame.parent.name}")
    last_domain = sorted(p for p in domains[-1].iterdir() if p.is_dir())
    if len(last_domain) > 1:
        shutil.rmtree(last_domain[-1])
        changes.lines.append(f"removed {last_domain[-1].name}")
    return changes


def _check_revisions(loaded: dict[str, Any], changes: _Changes) -> None:
    """1.1 as loaded back serves the edited prompts and the changed frame, and 1.0 the ones
    before the change: :class:`VerifyError` naming the revision, the question and what differs."""
    for version, side, other_version in (("1.0", 0, "1.1"), ("1.1", 1, "1.0")):
        got = loaded[version]
        for what, expected, served in (("prompt", changes.prompts, got["prompts"]),
                                       ("first frame", changes.first_frames, got["first_frames"])):
            for qid, values in expected.items():
                if served.get(qid) != values[side]:
                    which = (f"published as {other_version}" if served.get(qid) == values[1 - side]
                             else "published in neither version")
                    raise VerifyError(f"revision {version} serves the {what} of {qid} that was {which}, not the "
                                      f"one published as {version}: the Hub's revisions do not hold what was "
                                      "published; re-run the demo, and if it fails again the sandbox Hub serves "
                                      "revisions wrongly", version=version)


def _write_experiment(data: Path) -> int:
    """Evaluations (and stand-in output videos) of the demo experiment on the current questions,
    in upstream's layout: GPT-4o scores (one skipped) and a human score; how many files."""
    written = 0
    for d, domain_dir in enumerate(sorted((data / "questions").glob("*_task"))):
        domain = domain_dir.name[: -len("_task")]
        for i, task in enumerate(sorted(p.name for p in domain_dir.iterdir() if p.is_dir())[:2]):
            for m, model in enumerate(MODELS):
                where = Path(model) / domain_dir.name / task
                video = data / "outputs" / EXPERIMENT / where / f"{model}_{task}_20250101_000000" / "video"
                video.mkdir(parents=True)
                (video / "video.mp4").write_bytes(f"stand-in video: {model} on {task}".encode())
                score = 5 - (d + i + 2 * m) % 4
                result: dict[str, Any] = ({"error": "no frames", "status": "skipped"} if (d, i, m) == (1, 1, 1) else
                                          {"solution_correctness_score": score, "explanation": "demo",
                                           "evaluation_type": "final_frame_comparison", "status": "completed"})
                evaluations = {"gpt4o-eval/GPT4OEvaluator": result}
                if i == 0:
                    evaluations["human-eval/human-eval"] = {"solution_correctness_score": max(1, score - m),
                                                            "comments": "demo"}
                for name, res in evaluations.items():
                    folder, evaluator = name.split("/")
                    path = data / "evaluations" / folder / EXPERIMENT / where / f"{evaluator}.json"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    meta = {"evaluator": evaluator, "model_name": model, "task_id": task, "task_type": domain}
                    path.write_text(json.dumps({"metadata": meta, "result": res}, indent=2), encoding="utf-8")
                    written += 1
    return written


def _load_back(env: dict[str, str], targets: list[tuple[str, str]], cache: Path) -> dict[str, Any]:
    """Load each (repo, revision) with the unmodified ``datasets`` in a fresh process, as a researcher would."""
    child_env = {**os.environ, **env, "HF_HOME": str(cache), "HF_DATASETS_CACHE": str(cache / "datasets"),
                 "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    proc = subprocess.run([sys.executable, "-c", _LOAD_BACK, *(f"{r}@{v}" for r, v in targets)], env=child_env,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise VerifyError(f"loading {', '.join(r for r, _ in targets)} back with datasets failed: {tail[0]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run_demo(workdir: str | Path = "vmeval-demo", *, pairs_per_domain: int = 3,
             progress: Callable[[str, str], None] | None = None) -> dict[str, Any]:
    """Run the demo in ``workdir``; return a report (``lines`` holds the human-readable text)."""

    def stage(name: str, detail: str) -> None:
        if progress is not None:
            progress(name, detail)

    moto_server()  # without the sandbox extra: say so before creating anything
    start = time.monotonic()
    work = Path(workdir)
    _prepare(work)
    data = work / "data"
    stage("create", f"{pairs_per_domain} questions per domain in {data / 'questions'}")
    created = create_dataset(data / "questions", pairs_per_domain=pairs_per_domain, seed=42)
    with Sandbox(work / "sandbox") as box:
        settings = box.settings()
        stage("sandbox", f"Hub {box.hub.url}, S3 {box.s3_url}")
        results, changes = _publish_questions(data, settings, stage, progress)
        stage("experiment", f"{_write_experiment(data)} evaluation files of experiment {EXPERIMENT!r} on 1.1")
        scored = publish_results(data, experiment=EXPERIMENT, settings=settings, questions_version="1.1",
                                 log_entry=True, progress=progress)
        rows = {v: r.questions for v, r in results.items()} | {scored.version: scored.build.rows}
        stage("load", "every revision with datasets.load_dataset, fresh process and cache")
        loaded = _load_back(box.env(), [(box.repo, v) for v in results] + [(box.results_repo, scored.version)],
                            work / "hf-cache")
        for version, count in rows.items():
            if loaded[version]["rows"] != count:
                raise VerifyError(f"revision {version} loaded {loaded[version]['rows']} rows, published {count}")
        _check_revisions(loaded, changes)
        stage("verify", "Hub revisions and S3 prefixes against their manifests")
        problems = {v: verify_version(v, settings=settings, data_dir=data) for v in rows}
        if any(problems.values()):
            found = [str(p) for ps in problems.values() for p in ps]
            raise VerifyError(f"demo verification failed: {found[0]}", mismatches=found)
    elapsed = time.monotonic() - start
    lines = [f"demo finished in {elapsed:.1f} s (work folder {work})",
             f"created {sum(created.counts.values())} questions in {len(created.counts)} domains"]
    lines += _entry_lines({v: r.entry or {} for v, r in results.items()} | {scored.version: scored.entry or {}},
                          loaded)
    lines.append(f"  1.1 serves the edited prompts of {', '.join(changes.prompts)} and the turned first frame of "
                 f"{', '.join(changes.first_frames)}; 1.0 serves them as they were")
    lines += ["", *leaderboard_lines(scored.build.leaderboard), "",
              f"version log: {data / 'data_logging' / 'version_log.json'}"]
    return {"workdir": str(work), "seconds": round(elapsed, 2),
            "versions": {v: r.entry for v, r in results.items()}, "results": scored.entry,
            "leaderboard": scored.build.leaderboard,
            "loaded": {v: {"rows": x["rows"]} for v, x in loaded.items()},
            "checked": {"prompts": sorted(changes.prompts), "first_frames": sorted(changes.first_frames)},
            "lines": lines}


def _publish_questions(data: Path, settings: Settings, stage: Callable[[str, str], None],
                       progress: Callable[[str, str], None] | None) -> tuple[dict[str, PublishResult], _Changes]:
    """Versions 1.0, then 1.1 after changing a few questions, each on its own S3 prefix; and the changes."""
    today = datetime.now(timezone.utc).strftime("%Y%m%d")
    results = {}
    changes = _Changes()
    for version, day in (("1.0", today), ("1.1", f"{today}-b")):
        if version == "1.1":
            changes = _change_questions(data / "questions")
            write_manifest(data)
            stage("change", ", ".join(changes.lines))
        stage("publish", f"version {version}")
        results[version] = publish_version(data, settings=settings, version=version, log_entry=True, date=day,
                                           progress=progress)
    return results, changes


def _entry_lines(entries: dict[str, dict[str, Any]], loaded: dict[str, Any]) -> list[str]:
    lines = []
    for version, e in entries.items():
        what = (f"results {version}: {e.get('rows')} evaluations of questions {e.get('question_version')}"
                if e.get("kind") == "results" else f"{version}: {e.get('questions')} questions")
        lines += [f"  {what}, {e.get('files')} files, {e.get('size_mb', 0):.2f} MB, "
                  f"content sha256:{str(e.get('content_sha256'))[:12]}",
                  f"       {e.get('hf_uri')} (commit {str(e.get('hf_commit'))[:12]})",
                  f"       {e.get('s3_uri')}",
                  f"       load_dataset(revision={version!r}) -> {loaded[version]['rows']} rows; verified"]
    return lines
