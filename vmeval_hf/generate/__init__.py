"""Question generators: five puzzle domains whose answers are checked by code before writing.

:func:`create_dataset` builds ``<domain>_task/<domain>_NNNN/`` folders (first_frame.png,
final_frame.png, prompt.txt, question_metadata.json) and the master manifest in a
temp folder beside the output, validates the result, then moves it into place.

Each domain module (:mod:`.chess`, :mod:`.maze`, :mod:`.sudoku`, :mod:`.rotation`,
:mod:`.raven`) exposes::

    generate(rng: random.Random, index: int, difficulty: str) -> GeneratedQuestion
    check(metadata: dict) -> None        # re-derives the answer; raises ValidationError if wrong
    dedupe_key(metadata: dict) -> str    # two questions with the same key are the same puzzle

Determinism: every domain draws from its own ``random.Random`` seeded with
``sha256(f"{seed}:{domain}")`` (never ``hash()``, which is salted per process), and
nothing written depends on the clock, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._shared.fs import replace_dir
from .._shared.ray_runtime import check_engine
from ..errors import ConfigError, ValidationError, VmevalError
from ..tree.manifest_sync import write_manifest
from ..tree.model import DATASET_MANIFEST
from ..tree.validate import validate_tree
from .base import DOMAINS, Domain, GeneratedQuestion
from .ray_engine import generate_on_ray
from .sequence import (
    DIFFICULTIES,
    DIFFICULTY_CHOICES,
    ProgressCallback,
    domain_seed,
    resolve_difficulty,
    write_questions,
)

__all__ = [
    "DIFFICULTIES",
    "DOMAINS",
    "CreateResult",
    "Domain",
    "GeneratedQuestion",
    "create_dataset",
    "domain_seed",
    "generate_question",
    "resolve_difficulty",
]

_TASK_DIR_RE = re.compile(r"^[a-z0-9_]+_task$")


@dataclass(frozen=True)
class CreateResult:
    """What :func:`create_dataset` wrote."""

    output_dir: Path
    counts: dict[str, int]
    manifest_path: Path
    seed: int
    difficulty: str
    difficulties: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "output_dir": str(self.output_dir),
            "manifest_path": str(self.manifest_path),
            "total_questions": self.total,
            "domains": dict(self.counts),
            "difficulties": dict(self.difficulties),
            "seed": self.seed,
            "difficulty": self.difficulty,
        }


def generate_question(domain: str, rng: random.Random, index: int, difficulty: str) -> GeneratedQuestion:
    """Generate one question of ``domain`` and check its answer (raises ValidationError if wrong)."""
    module = _domain(domain).load()
    question: GeneratedQuestion = module.generate(rng, index, difficulty)
    module.check(question.metadata)
    return question


def _domain(name: str) -> Domain:
    try:
        return DOMAINS[name]
    except KeyError:
        raise ConfigError(f"unknown domain {name!r}; choose from {', '.join(DOMAINS)}") from None


def _check_output(output_dir: Path, overwrite: bool) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise VmevalError(f"{output_dir} exists and is not a folder; choose another --output-dir",
                          path=output_dir)
    if not output_dir.is_dir():
        return
    entries = sorted(p.name for p in output_dir.iterdir())
    if entries and not overwrite:
        raise VmevalError(
            f"{output_dir} is not empty; pass --overwrite to replace the whole folder, "
            "or choose another --output-dir", path=output_dir)
    # --overwrite deletes the folder: only ever do that to something that is a question tree.
    foreign = [n for n in entries if not (n.startswith(".") or n == DATASET_MANIFEST or
                                          (_TASK_DIR_RE.match(n) and (output_dir / n).is_dir()))]
    if foreign:
        raise VmevalError(
            f"{output_dir} does not look like a questions folder (it holds {foreign[0]!r}); "
            "--overwrite only replaces question trees, so move that away or choose another --output-dir",
            path=output_dir)


def _build_domain(root: Path, domain: str, count: int, seed: int, difficulty: str,
                  created_at: str | None, progress: ProgressCallback | None) -> dict[str, int]:
    rng = random.Random(domain_seed(seed, domain))
    return write_questions(root, domain, rng, set(), range(count), count, difficulty, created_at, progress)


def create_dataset(output_dir: str | os.PathLike[str] = "data/questions", *, pairs_per_domain: int = 15,
                   domains: Sequence[str] | None = None, seed: int = 42, difficulty: str = "mixed",
                   overwrite: bool = False, progress: ProgressCallback | None = None,
                   created_at: str | None = None, engine: str = "local") -> CreateResult:
    """Generate ``pairs_per_domain`` checked questions per domain into ``output_dir`` and write the manifest.

    Refuses (``VmevalError``) a non-empty ``output_dir`` unless ``overwrite``; with it the
    whole folder is replaced, so no stale question folders survive. The tree is built in a
    temp folder beside ``output_dir``, validated (``ValidationError`` if anything is wrong)
    and renamed into place. ``domains``: which generators (default: all five); ``difficulty``:
    ``easy``, ``medium``, ``hard`` or ``mixed`` (cycles the three); ``progress``: called as
    ``progress(domain, done, total)`` after each question.
    ``created_at`` (a fixed string) is written into every metadata file and the manifest;
    by default no timestamp is written, so the same ``seed`` gives byte-identical files.
    ``engine``: ``local`` (this process) or ``ray`` (tasks on Ray: ``ray.init()``, or the cluster at
    ``RAY_ADDRESS``; ``output_dir`` must be where every worker sees it), the same files either way.
    """
    if pairs_per_domain < 1:
        raise ConfigError(f"--pairs-per-domain must be at least 1 (got {pairs_per_domain})")
    if difficulty not in DIFFICULTY_CHOICES:
        raise ConfigError(f"unknown difficulty {difficulty!r}; use one of {', '.join(DIFFICULTY_CHOICES)}")
    check_engine(engine)
    names = list(dict.fromkeys(domains)) if domains else list(DOMAINS)
    for name in names:
        _domain(name)
    shown = Path(output_dir)
    output_dir = Path(os.path.abspath(shown))  # so ".", "..", "x/." have a real name and parent
    _check_output(output_dir, overwrite)
    output_dir.parent.mkdir(parents=True, exist_ok=True)

    build = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.create-", dir=output_dir.parent))
    try:
        counts: dict[str, int] = {}
        difficulties: dict[str, int] = {}
        per_domain = generate_on_ray(build, names, pairs_per_domain, seed=seed, difficulty=difficulty,
                                     created_at=created_at, progress=progress) if engine == "ray" else {
            name: _build_domain(build, name, pairs_per_domain, seed, difficulty, created_at, progress)
            for name in names}
        for name, labels in per_domain.items():
            counts[name] = pairs_per_domain
            for level, n in labels.items():
                difficulties[level] = difficulties.get(level, 0) + n
        _write_and_validate_manifest(build, seed=seed, pairs_per_domain=pairs_per_domain,
                                     difficulty=difficulty, domains=names, created_at=created_at)
        _check_output(output_dir, overwrite)  # someone may have written there meanwhile
        try:
            replace_dir(build, output_dir)
        except OSError as exc:
            raise VmevalError(f"could not move the new tree into {output_dir} ({exc.strerror or exc}); "
                              "check that nothing else is writing there and try again", path=output_dir) from exc
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return CreateResult(output_dir=shown, counts=counts, manifest_path=shown / DATASET_MANIFEST, seed=seed,
                        difficulty=difficulty, difficulties=dict(sorted(difficulties.items())))


def _write_and_validate_manifest(build: Path, *, seed: int, pairs_per_domain: int, difficulty: str,
                                 domains: list[str], created_at: str | None) -> None:
    write_manifest(questions_dir=build, created_at=created_at, generation_info={
        "random_seed": seed,
        "pairs_per_domain": pairs_per_domain,
        "difficulty": difficulty,
        "domains": domains,
        "generator": "vmeval-hf",
    })
    report = validate_tree(questions_dir=build, check_data_folders=False)
    if not report.ok:
        first = report.errors[0]
        raise ValidationError(
            f"generated tree failed validation: {first.path}: {first.message}; nothing was written "
            "(this is a bug in the generator, please report it)", problems=report.problems)
