"""``create --engine ray``: the questions generated on Ray, one task per batch of questions.

A domain's questions come from one random generator in order (question ``i`` depends on every
draw before it, duplicates included), so a batch cannot start until the generator's state at
its first question is known. Per domain, one planning task replays the draws without checking,
encoding or writing anything (:func:`~vmeval_hf.generate.sequence.plan_batches`: about half of
the work of generating, and none for the domain's last batch), and records that state and the
dedupe keys at each batch's start; then one task per batch draws, checks and writes its
questions with the local engine's own loop (:func:`~vmeval_hf.generate.sequence.write_questions`),
so the files are the same bytes. A domain that fits in one batch is not planned at all.

Each batch writes its question folders under a folder of its own, then renames each into the
build folder (replacing what a killed attempt of the same batch left: the same bytes), so Ray
can rerun a task whose worker died (:data:`~vmeval_hf._shared.ray_runtime.MAX_RETRIES`). The
caller (:func:`~vmeval_hf.generate.create_dataset`) writes the manifest, validates the tree and
moves it into place, as for the local engine. ``root`` must be on a filesystem every worker
sees at the same path.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._shared.ray_runtime import MAX_RETRIES, as_completed, crash_point, ray_session
from ..errors import VmevalError
from .sequence import BatchPlan, ProgressCallback, domain_seed, plan_batches, write_questions

#: the most questions in one task (about 50 ms each: a few seconds of work)
BATCH_QUESTIONS = 50
#: a domain is cut into at least this many batches when it has the questions for them
MIN_BATCHES = 4
#: where batches write before renaming into place, inside the build folder; removed when all are in
WORK = ".ray-work"


def batch_size(count: int) -> int:
    """Questions per batch for a domain of ``count``: at most :data:`BATCH_QUESTIONS`, and small
    enough for :data:`MIN_BATCHES` batches. Any size gives the same files."""
    return max(1, min(BATCH_QUESTIONS, -(-count // MIN_BATCHES)))


def _write_batch(root: Path, plan: BatchPlan | None, domain: str, number: int, count: int, seed: int,
                 difficulty: str, created_at: str | None) -> dict[str, int]:
    """A Ray task: write batch ``number`` of ``domain`` into ``root`` (``plan`` None: the domain
    is one batch, from its seed); the difficulty counts of the batch."""
    if plan is None:
        indices, rng, seen = range(count), random.Random(domain_seed(seed, domain)), set()
    else:
        indices, rng, seen = plan.batch(number)
    (root / WORK).mkdir(exist_ok=True)
    own = Path(tempfile.mkdtemp(prefix=f"{domain}-{number}-", dir=root / WORK))
    labels = write_questions(own, domain, rng, seen, indices, count, difficulty, created_at, None)
    target = root / f"{domain}_task"
    target.mkdir(exist_ok=True)
    for folder in sorted((own / f"{domain}_task").iterdir()):
        dest = target / folder.name
        if dest.exists():  # left by an attempt of this batch that was killed: the same bytes
            shutil.rmtree(dest)
        os.rename(folder, dest)
        crash_point("create-batch")
    shutil.rmtree(own)
    return labels


def generate_on_ray(root: Path, domains: Sequence[str], count: int, *, seed: int, difficulty: str,
                    created_at: str | None, progress: ProgressCallback | None) -> dict[str, dict[str, int]]:
    """Write ``count`` questions of each of ``domains`` into ``root`` on Ray (see the module
    docstring); per domain, how many of each difficulty. ``progress(domain, done, count)`` as
    batches finish; ``seed``, ``difficulty``, ``created_at``: as for ``create_dataset``."""
    size = batch_size(count)
    batches = -(-count // size)
    with ray_session() as ray:
        plan_task = ray.remote(max_retries=MAX_RETRIES)(plan_batches)
        batch_task = ray.remote(max_retries=MAX_RETRIES)(_write_batch)
        pending: dict[Any, tuple[str, int]] = {}
        for domain in domains:
            plan = plan_task.remote(domain, count, seed, difficulty, size) if batches > 1 else None
            for number in range(batches):
                ref = batch_task.remote(root, plan, domain, number, count, seed, difficulty, created_at)
                pending[ref] = (domain, number)
        found: dict[tuple[str, int], dict[str, int]] = {}
        done = dict.fromkeys(domains, 0)
        for (domain, number), labels in as_completed(
                ray, pending, lambda key: f"{key[0]} questions (batch {key[1] + 1} of {batches})", VmevalError):
            found[domain, number] = labels
            done[domain] += sum(labels.values())
            if progress is not None:
                progress(domain, done[domain], count)
    shutil.rmtree(root / WORK, ignore_errors=True)
    totals: dict[str, dict[str, int]] = {domain: {} for domain in domains}
    for domain in domains:
        for number in range(batches):
            for level, n in found[domain, number].items():
                totals[domain][level] = totals[domain].get(level, 0) + n
    return totals

