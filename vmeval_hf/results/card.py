"""The results dataset's card: README.md whose YAML is the loading config, and a leaderboard people read.

Rendered from ``dataset_card/RESULTS.md`` with huggingface_hub's ``DatasetCard`` (as the question
card is). The YAML holds ``configs`` (``default`` = every evaluator, plus one config per evaluator,
named as its files are, split ``test``) and ``dataset_info`` (features and exact split sizes per
config); the text holds the leaderboard tables, the heatmap, how the scores were made, load
snippets pinned to the revision and the question version the results refer to.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from importlib import resources
from typing import Any

from .._shared.meta import __version__
from ..release.card import load_renderer, size_category
from ..release.schema import SPLIT, features_yaml
from .leaderboard import percent
from .model import COLUMNS, Evaluation
from .questions import QuestionRef

HEATMAP = "assets/leaderboard.png"
LEADERBOARD = "leaderboard.json"

#: how each known evaluator scores (upstream's evaluators); others get a generic line
DESCRIPTIONS = {
    "gpt": "GPT-4o is shown the first frame, the expected final frame and the last frame of the model's "
           "video, with a task-specific guidance line, and scores how well the video solves the task.",
    "human": "Human annotators watch each video against the expected final frame and score it.",
}
GENERIC = "A vision-language model judge compares the video's frames with the expected final state and scores it."


@dataclass(frozen=True)
class CardFacts:
    """What the card says beyond the leaderboard: where the results go and how big each config is."""

    repo_id: str
    version: str
    license: str
    content_sha256: str
    questions: QuestionRef
    questions_repo: str | None  # the Hub repo of the question version, for its load snippet
    with_videos: bool
    num_bytes: dict[str, int]  # per evaluator: the Arrow bytes ``datasets`` counts
    download_size: dict[str, int]  # per evaluator: the shards' bytes


def _template() -> str:
    return resources.files("vmeval_hf.dataset_card").joinpath("RESULTS.md").read_text(encoding="utf-8")


def _info(config: str, rows: int, num_bytes: int, download_size: int) -> dict[str, Any]:
    return {"config_name": config, "features": features_yaml(COLUMNS),  # a fresh list: no YAML anchors
            "splits": [{"name": SPLIT, "num_bytes": num_bytes, "num_examples": rows}],
            "download_size": download_size, "dataset_size": num_bytes}


def card_metadata(facts: CardFacts, rows: dict[str, int], experiment: str) -> dict[str, Any]:
    """The YAML block as a dict: ``rows`` is the number of rows per evaluator."""
    names = sorted(rows)
    configs: list[dict[str, Any]] = [{"config_name": "default", "default": True,
                                      "data_files": [{"split": SPLIT, "path": f"data/*/{SPLIT}-*.parquet"}]}]
    configs += [{"config_name": n, "data_files": [{"split": SPLIT, "path": f"data/{n}/{SPLIT}-*.parquet"}]}
                for n in names]
    infos = [_info("default", sum(rows.values()), sum(facts.num_bytes.values()), sum(facts.download_size.values()))]
    infos += [_info(n, rows[n], facts.num_bytes[n], facts.download_size[n]) for n in names]
    return {
        "license": facts.license, "language": ["en"], "size_categories": [size_category(sum(rows.values()))],
        "tags": ["video-reasoning", "benchmark", "vmevalkit", "leaderboard", "evaluation"],
        "configs": configs, "dataset_info": infos,
        "vmeval": {"kind": "results", "version": facts.version, "repo": facts.repo_id, "experiment": experiment,
                   "question_version": facts.questions.version,
                   "question_content_sha256": facts.questions.content_sha256},
    }


def _tables(board: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for t in board["evaluators"]:
        rows = [{"rank": m["rank"], "model": m["model"], "success": percent(m["overall"]),
                 "mean": "-" if m["overall"]["mean_score"] is None else f"{m['overall']['mean_score']:.2f}",
                 "scored": m["overall"]["scored"], "unscored": m["overall"]["evaluations"] - m["overall"]["scored"],
                 "cells": [percent(m["domains"][d]) for d in t["domains"]]} for m in t["models"]]
        out.append({"evaluator": t["evaluator"], "domains": t["domains"], "rows": rows})
    return out


def _evaluators(evaluations: list[Evaluation]) -> list[dict[str, Any]]:
    """How each evaluator's scores were made, from its files: count, folders, statuses, types, annotators."""
    out = []
    for name in sorted({e.evaluator for e in evaluations}):
        mine = [e for e in evaluations if e.evaluator == name]
        lowered = name.lower()
        kind = next((k for k in DESCRIPTIONS if k in lowered), None)
        statuses = Counter(e.status for e in mine)
        out.append({
            "name": name, "rows": len(mine), "description": DESCRIPTIONS[kind] if kind else GENERIC,
            "folders": ", ".join(sorted({e.evaluator_folder for e in mine if e.evaluator_folder})),
            "statuses": ", ".join(f"{statuses[s]} {s}" for s in sorted(statuses)),
            "types": ", ".join(sorted({e.evaluation_type for e in mine if e.evaluation_type})),
            "annotators": len({e.annotator for e in mine if e.annotator}) or None,
        })
    return out


def render_results_card(facts: CardFacts, board: dict[str, Any], evaluations: list[Evaluation]) -> str:
    """README.md of a results release: its YAML config, the leaderboard and how to load it."""
    load_renderer()
    from huggingface_hub import DatasetCard, DatasetCardData  # start-up: see load_renderer

    rows = Counter(e.evaluator for e in evaluations)
    experiment = board["experiment"]
    pretty_name = f"VMEvalKit Results: {experiment}"
    data = DatasetCardData(pretty_name=pretty_name, **card_metadata(facts, dict(rows), experiment))
    q = facts.questions
    card = DatasetCard.from_template(
        data, template_str=_template(), pretty_name=pretty_name, repo_id=facts.repo_id, version=facts.version,
        split=SPLIT, experiment=experiment, rows=len(evaluations), models=sorted({e.model for e in evaluations}),
        questions=len({e.question for e in evaluations}), domains=sorted({e.domain for e in evaluations}),
        evaluators=_evaluators(evaluations), evaluator_names=sorted(rows), first_evaluator=sorted(rows)[0],
        tables=_tables(board), success_min_score=board["success_min_score"], question_version=q.version,
        question_content_sha256=q.content_sha256, questions_repo=facts.questions_repo,
        content_sha256=facts.content_sha256, with_videos=facts.with_videos, tool_version=__version__,
    )
    return str(card).rstrip("\n") + "\n"
