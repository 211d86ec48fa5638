"""The leaderboard: success rate and mean score per model, overall and per domain, per evaluator.

One table per evaluator (a GPT-4o score and a human score of the same video are two
measurements, never averaged together). A cell counts the model's evaluations (``evaluations``),
those with a score (``scored``: status ``completed``), and among them the successes (score 4 or
5); ``success_rate`` = successes / scored and ``mean_score`` = mean of the scores, both ``None``
when nothing was scored. Models are ranked by success rate, then mean score (ties share a rank).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..config import Settings
from .model import SUCCESS_MIN_SCORE, Evaluation
from .scan import validate_results


def cell(evaluations: Iterable[Evaluation]) -> dict[str, Any]:
    """The numbers of one group of evaluations."""
    rows = list(evaluations)
    scores = [e.score for e in rows if e.score is not None]
    successes = sum(1 for s in scores if s >= SUCCESS_MIN_SCORE)
    return {"evaluations": len(rows), "scored": len(scores), "successes": successes,
            "success_rate": successes / len(scores) if scores else None,
            "mean_score": sum(scores) / len(scores) if scores else None}


def leaderboard(evaluations: Iterable[Evaluation], *, experiment: str, question_version: str) -> dict[str, Any]:
    """The leaderboard of ``evaluations`` (see the module docstring for its numbers), as data."""
    by_evaluator: dict[str, list[Evaluation]] = {}
    for e in evaluations:
        by_evaluator.setdefault(e.evaluator, []).append(e)
    tables = []
    for evaluator in sorted(by_evaluator):
        rows = by_evaluator[evaluator]
        domains = sorted({e.domain for e in rows})
        models = []
        for model in sorted({e.model for e in rows}):
            mine = [e for e in rows if e.model == model]
            models.append({"model": model, "overall": cell(mine),
                           "domains": {d: cell(e for e in mine if e.domain == d) for d in domains}})
        _rank(models)
        tables.append({"evaluator": evaluator, "domains": domains, "models": models,
                       "all_models": {"overall": cell(rows),
                                      "domains": {d: cell(e for e in rows if e.domain == d) for d in domains}}})
    return {"experiment": experiment, "question_version": question_version,
            "success_min_score": SUCCESS_MIN_SCORE, "evaluators": tables}


def _rank(models: list[dict[str, Any]]) -> None:
    """Sort by success rate, then mean score (unscored last), then name; equal numbers share a rank."""
    def key(m: dict[str, Any]) -> tuple[float, float]:
        o = m["overall"]
        return (-1.0 if o["success_rate"] is None else o["success_rate"],
                -1.0 if o["mean_score"] is None else o["mean_score"])

    models.sort(key=lambda m: (tuple(-x for x in key(m)), m["model"]))
    for m in models:
        m["rank"] = 1 + sum(1 for other in models if key(other) > key(m))


def show_results(data_dir: str | Path = "data", *, experiment: str, settings: Settings,
                 questions_version: str | None = None) -> dict[str, Any]:
    """The leaderboard of ``experiment``'s evaluations in the data tree ``data_dir``, checked as ``results build``
    checks them (:class:`~vmeval_hf.errors.ValidationError` on any error).

    ``questions_version``: the question version the evaluations refer to (default: the latest
    logged). ``settings`` reach its release manifest when it is not built locally.
    """
    report = validate_results(data_dir, experiment=experiment, settings=settings,
                              questions_version=questions_version)
    report.raise_for_errors()
    return leaderboard(report.evaluations, experiment=experiment, question_version=report.questions.version)


def percent(c: dict[str, Any]) -> str:
    """``66.7% (4/6)``, or ``-`` when nothing was scored."""
    if not c["scored"]:
        return "-"
    return f"{100 * c['success_rate']:.1f}% ({c['successes']}/{c['scored']})"


def leaderboard_lines(board: dict[str, Any]) -> list[str]:
    """The leaderboard as terminal text: one aligned table per evaluator."""
    lines = [f"experiment {board['experiment']} on questions {board['question_version']}: success = score "
             f"{board['success_min_score']}-5, over the scored evaluations"]
    for table in board["evaluators"]:
        header = ["#", "model", "success", "mean", "scored", "unscored", *table["domains"]]
        body = []
        for m in table["models"]:
            o = m["overall"]
            body.append([str(m["rank"]), m["model"], percent(o),
                         "-" if o["mean_score"] is None else f"{o['mean_score']:.2f}", str(o["scored"]),
                         str(o["evaluations"] - o["scored"]), *(percent(m["domains"][d]) for d in table["domains"])])
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
        lines += ["", table["evaluator"]]
        lines += ["  " + "  ".join(text.ljust(w) if i < 2 else text.rjust(w)
                                   for i, (text, w) in enumerate(zip(row, widths))).rstrip()
                  for row in [header, *body]]
    return lines
