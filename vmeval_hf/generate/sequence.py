"""One domain's question sequence: its seed, the difficulty labels, the redraws of duplicates,
the files each question is written as.

The questions of a domain come from one ``random.Random`` in order, so question ``i`` depends
on every draw before it. Both engines write them with :func:`write_questions`: the local engine
over the whole range, the Ray engine over batches, each started from the generator's state and
the dedupe keys that :func:`plan_batches` recorded at the batch's first question; so a batch's
questions are the same bytes as the local engine's.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .._shared.fs import canonical_json
from ..errors import ConfigError
from ._render import png_bytes
from .base import DOMAINS, GeneratedQuestion

DIFFICULTIES = ("easy", "medium", "hard")
DIFFICULTY_CHOICES = (*DIFFICULTIES, "mixed")
#: How many times a domain may redraw a puzzle that duplicates an earlier one.
MAX_DUPLICATE_DRAWS = 200

ProgressCallback = Callable[[str, int, int], None]


def domain_seed(seed: int, domain: str) -> int:
    """A stable 64-bit seed for one domain (same on every run, process and machine)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{domain}".encode()).digest()[:8], "big")


def resolve_difficulty(difficulty: str, index: int) -> str:
    """The label for question ``index``: ``mixed`` cycles easy, medium, hard."""
    if difficulty == "mixed":
        return DIFFICULTIES[index % len(DIFFICULTIES)]
    if difficulty not in DIFFICULTIES:
        raise ConfigError(f"unknown difficulty {difficulty!r}; use one of {', '.join(DIFFICULTY_CHOICES)}")
    return difficulty


def write_question(root: Path, question: GeneratedQuestion) -> Path:
    """Write ``question`` as ``<root>/<domain>_task/<id>/``; returns the folder."""
    meta = question.metadata
    folder = root / f"{meta['domain']}_task" / meta["id"]
    folder.mkdir(parents=True)
    # Plain writes are enough: the whole tree becomes visible at once when the
    # build folder is renamed into place.
    (folder / "first_frame.png").write_bytes(png_bytes(question.first_frame))
    (folder / "final_frame.png").write_bytes(png_bytes(question.final_frame))
    (folder / "prompt.txt").write_bytes(question.prompt.encode("utf-8"))
    (folder / "question_metadata.json").write_bytes(canonical_json(meta).encode("utf-8"))
    return folder


def _draw(module: ModuleType, rng: random.Random, seen: set[str], domain: str, index: int, level: str,
          count: int) -> tuple[GeneratedQuestion, str]:
    """Question ``index``: drawn again while it duplicates one in ``seen``; and its dedupe key."""
    for _ in range(MAX_DUPLICATE_DRAWS):
        question: GeneratedQuestion = module.generate(rng, index, level)
        key = module.dedupe_key(question.metadata)
        if key not in seen:
            return question, key
    raise ConfigError(
        f"could not draw {count} distinct {level} {domain} puzzles; ask for fewer with "
        "--pairs-per-domain, or use --difficulty mixed")


def write_questions(root: Path, domain: str, rng: random.Random, seen: set[str], indices: range, count: int,
                    difficulty: str, created_at: str | None, progress: ProgressCallback | None) -> dict[str, int]:
    """Draw, check and write questions ``indices`` of ``domain`` (of ``count``) into ``root``,
    from the state ``rng`` and ``seen`` (the earlier questions' dedupe keys) are in; returns how
    many of each difficulty. ``progress(domain, done, count)`` after each question."""
    module = DOMAINS[domain].load()
    labels: dict[str, int] = {}
    for index in indices:
        level = resolve_difficulty(difficulty, index)
        question, key = _draw(module, rng, seen, domain, index, level, count)
        seen.add(key)
        module.check(question.metadata)
        if created_at is not None:
            question.metadata["created_at"] = created_at
        write_question(root, question)
        labels[level] = labels.get(level, 0) + 1
        if progress is not None:
            progress(domain, index + 1, count)
    return labels


@dataclass(frozen=True)
class BatchPlan:
    """Where each batch of one domain starts: the generator's state at each batch's first
    question, and the dedupe keys of every question in order (a batch starting at ``i`` has
    seen ``keys[:i]``)."""

    domain: str
    count: int
    starts: list[tuple[int, Any]]  # (first index, random.Random state)
    keys: list[str]

    def batch(self, number: int) -> tuple[range, random.Random, set[str]]:
        """Batch ``number``'s indices, and a generator and dedupe set as they are at its start."""
        first, state = self.starts[number]
        stop = self.starts[number + 1][0] if number + 1 < len(self.starts) else self.count
        rng = random.Random()
        rng.setstate(state)
        return range(first, stop), rng, set(self.keys[:first])


def plan_batches(domain: str, count: int, seed: int, difficulty: str, batch_size: int) -> BatchPlan:
    """Replay ``domain``'s draws (no checks, no files) and record where each batch of
    ``batch_size`` questions starts. Costs about the drawing half of generating the domain."""
    module = DOMAINS[domain].load()
    rng = random.Random(domain_seed(seed, domain))
    seen: set[str] = set()
    keys: list[str] = []
    starts: list[tuple[int, Any]] = []
    for index in range(count):
        if index % batch_size == 0:
            starts.append((index, rng.getstate()))
            if index + batch_size >= count:
                break  # the last batch: no later batch needs its draws
        _, key = _draw(module, rng, seen, domain, index, resolve_difficulty(difficulty, index), count)
        seen.add(key)
        keys.append(key)
    return BatchPlan(domain, count, starts, keys)
