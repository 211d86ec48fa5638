"""Write a small synthetic experiment (evaluations + output videos) in either upstream layout, and
say what it holds: the expected rows, written down here as the files are, not by the code under test.

The experiment ``exp1``: two models, five domains (2 questions each), a GPT-4o evaluation of every
video (a few ``skipped`` and ``failed``, one model has no video for a skipped one) and a human
evaluation of the first question of each domain, with comments and an annotator.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXPERIMENT = "exp1"
MODELS = ("model-a", "model-b")
DOMAINS = ("chess", "maze", "raven", "rotation", "sudoku")
QUESTIONS_PER_DOMAIN = 2
GPT, HUMAN = "GPT4OEvaluator", "human-eval"
LAYOUTS = ("folders", "flat")  # evaluations/<evaluator-folder>/<exp>/...  or  evaluations/<exp>/...
FOLDER = {GPT: "gpt4o-eval", HUMAN: "human-eval"}

#: GPT-4o's score per (model, domain, question index); "skipped"/"failed" where there is none
GPT_SCORES: dict[tuple[str, str, int], int | str] = {
    ("model-a", "chess", 0): 5, ("model-a", "chess", 1): 4, ("model-a", "maze", 0): 2, ("model-a", "maze", 1): 5,
    ("model-a", "raven", 0): 1, ("model-a", "raven", 1): 3, ("model-a", "rotation", 0): 4,
    ("model-a", "rotation", 1): "skipped", ("model-a", "sudoku", 0): 5, ("model-a", "sudoku", 1): 4,
    ("model-b", "chess", 0): 3, ("model-b", "chess", 1): 1, ("model-b", "maze", 0): 4, ("model-b", "maze", 1): 2,
    ("model-b", "raven", 0): "failed", ("model-b", "raven", 1): 2, ("model-b", "rotation", 0): 1,
    ("model-b", "rotation", 1): 5, ("model-b", "sudoku", 0): 2, ("model-b", "sudoku", 1): "skipped",
}
#: the human score of question 0 of each domain
HUMAN_SCORES = {("model-a", d): s for d, s in zip(DOMAINS, (5, 3, 2, 4, 4))} | {
    ("model-b", d): s for d, s in zip(DOMAINS, (2, 4, 1, 3, 1))}
#: the one task with no output video (its GPT-4o evaluation was skipped for it)
NO_VIDEO = ("model-a", "rotation", 1)


@dataclass
class Experiment:
    data: Path
    layout: str
    rows: list[dict[str, Any]] = field(default_factory=list)  # what each row must hold
    files: dict[str, Path] = field(default_factory=dict)  # "<model>/<task_id>/<evaluator>" -> its file

    def rows_of(self, evaluator: str) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["evaluator"] == evaluator]


def qid(domain: str, i: int) -> str:
    return f"{domain}_{i:04d}"


def evaluation_path(data: Path, layout: str, evaluator: str, model: str, domain: str, task_id: str,
                    experiment: str = EXPERIMENT) -> Path:
    top = data / "evaluations" / (FOLDER[evaluator] if layout == "folders" else "")
    return top / experiment / model / f"{domain}_task" / task_id / f"{evaluator}.json"


def video_path(data: Path, model: str, domain: str, task_id: str, experiment: str = EXPERIMENT) -> Path:
    run = f"{model}_{task_id}_20250110_120000"
    return data / "outputs" / experiment / model / f"{domain}_task" / task_id / run / "video" / "generated_video.mp4"


def write_json(path: Path, doc: Any) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, indent=2)
    path.write_text(text, encoding="utf-8")
    return text


def _gpt_doc(model: str, domain: str, task_id: str, score: int | str) -> dict[str, Any]:
    meta = {"evaluator": "gpt-4o", "timestamp": "2025-01-11T09:00:00", "model_name": model,
            "task_type": f"{domain}_task", "task_id": task_id}
    if isinstance(score, int):
        result: dict[str, Any] = {"solution_correctness_score": score, "explanation": f"{model} {task_id}: {score}",
                                  "evaluation_type": "final_frame_comparison", "status": "completed"}
    else:
        result = {"error": f"{score}: no usable video", "status": score}
    return {"metadata": meta, "result": result}


def write_experiment(data: Path, layout: str) -> Experiment:
    """Write ``exp1`` under ``data`` (which already holds questions/) in ``layout``; return what it holds."""
    exp = Experiment(data, layout)
    for model in MODELS:
        for domain in DOMAINS:
            for i in range(QUESTIONS_PER_DOMAIN):
                task_id = qid(domain, i)
                video = None
                if (model, domain, i) != NO_VIDEO:
                    body = f"not really an mp4: {model} {task_id}".encode()
                    video_path(data, model, domain, task_id).parent.mkdir(parents=True, exist_ok=True)
                    video_path(data, model, domain, task_id).write_bytes(body)
                    video = {"video_key": "data/" + video_path(data, model, domain, task_id).relative_to(data).as_posix(),
                             "video_sha256": hashlib.sha256(body).hexdigest(), "video_bytes": body}
                score = GPT_SCORES[(model, domain, i)]
                _add(exp, GPT, model, domain, task_id, _gpt_doc(model, domain, task_id, score), video,
                     score if isinstance(score, int) else None, "completed" if isinstance(score, int) else score,
                     f"{model} {task_id}: {score}" if isinstance(score, int) else None, None)
                if i == 0:
                    s = HUMAN_SCORES[(model, domain)]
                    doc = {"metadata": {"evaluator": "human", "timestamp": "2025-01-12T10:00:00", "model_name": model,
                                        "task_type": f"{domain}_task", "task_id": task_id, "annotator": "ann-1"},
                           "result": {"solution_correctness_score": s, "comments": f"human says {s}"}}
                    _add(exp, HUMAN, model, domain, task_id, doc, video, s, "completed", f"human says {s}", "ann-1")
    return exp


def _add(exp: Experiment, evaluator: str, model: str, domain: str, task_id: str, doc: dict[str, Any],
         video: dict[str, Any] | None, score: int | None, status: str, explanation: str | None,
         annotator: str | None) -> None:
    path = evaluation_path(exp.data, exp.layout, evaluator, model, domain, task_id)
    text = write_json(path, doc)
    exp.files[f"{model}/{task_id}/{evaluator}"] = path
    exp.rows.append({
        "model": model, "domain": domain, "task_id": task_id, "evaluator": evaluator,
        "evaluator_folder": FOLDER[evaluator] if exp.layout == "folders" else None,
        "score": score, "success": None if score is None else score >= 4, "status": status,
        "explanation": explanation, "annotator": annotator, "evaluation": text,
        "source_path": path.relative_to(exp.data).as_posix(),
        "video_key": video["video_key"] if video else None, "video_sha256": video["video_sha256"] if video else None,
        "video_bytes": video["video_bytes"] if video else None,
        "source_size": len(text.encode()), "source_sha256": hashlib.sha256(text.encode()).hexdigest(),
    })
