"""``build --engine ray``: the release's shards compiled on Ray, one task per shard.

Where a domain's shards are cut depends only on the sizes of its valid questions' files, in id
order (:class:`~vmeval_hf.release.shards.DomainWriter` starts a new shard before a question that
would take the shard over ``limit`` bytes, and starts each shard's row groups afresh). So the
driver lists each domain (:meth:`~vmeval_hf.tree.checker.Checker.question_folders`, then one
``stat`` per question file: no file is read), cuts it into shards with the same rule
(:func:`plan_shards`), and each task validates its shard's questions and streams them into one
shard with the local engine's own :class:`~vmeval_hf.tree.checker.Checker` and
:class:`~vmeval_hf.release.shards.DomainWriter`: the same rows in the same row groups, the same
bytes. The task checks that the sizes it read are the ones planned (a tree changed during the
build is a :class:`~vmeval_hf.errors.BuildError`, never a release cut in other places), and
hashes its shard.

On a tree with problems the listing cuts shards as if every question were valid; every question
is still checked, and the build fails with the same problems, in the same order, as the local
engine's. The driver (:func:`~vmeval_hf.release.build.build_release`) then does what it does for
the local engine: the whole-tree checks, the card, the release manifest and the swap.

Each task writes its shard in a folder of its own under the build's scratch folder and renames
it to its final name, so a retried task (Ray reruns one whose worker died) replaces whatever a
killed attempt left, with the same bytes. Its source files (path, size, sha256) go beside that
folder, in sorted chunk files named after it (what a killed attempt wrote is not named in any
result), which the driver merges from disk into each domain's sorted run
(:func:`~vmeval_hf.release.release_manifest.merge_chunks`), as a local worker does with its own.
The tree and the release folder must be on a filesystem every worker sees at the same path.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from .._shared.fs import sha256_file
from .._shared.ray_runtime import MAX_RETRIES, as_completed, crash_point, ray_session
from ..errors import BuildError
from ..tree.checker import Checker
from ..tree.model import KNOWN_FILES, Listed, Problem, Question
from ..tree.verdicts import Verdicts
from .card import PreviewSource
from .release_manifest import ShardEntry, SourceRows, SourceRun, merge_chunks
from .schema import SPLIT
from .shards import DomainWriter

#: the tasks' own folders, inside the build's scratch folder (removed with it)
PARTS = ".ray-parts"


@dataclass(frozen=True)
class ShardPlan:
    """One shard to write: shard ``index`` of ``total`` of ``domain``, its question folders in
    id order and the bytes each was listed with."""

    domain: str
    index: int
    total: int
    folders: list[str]
    sizes: list[int]

    @property
    def path(self) -> str:
        return f"data/{self.domain}/{SPLIT}-{self.index:05d}-of-{self.total:05d}.parquet"


class CompiledDomain(TypedDict):
    """One domain, compiled: the fields of the build's per-domain result."""

    domain: str
    shards: list[ShardEntry]
    sources: SourceRun | None
    num_bytes: int
    difficulties: dict[str, int]
    problems: list[Problem]
    listed: list[Listed]
    folders: dict[str, str]
    first: PreviewSource | None
    frames: tuple[int, int]  # frames checked, frames passed by the verdict cache


def _listed_size(folder: str) -> int:
    """The bytes the checker reads from a question folder: every question file in it."""
    size = 0
    for name in KNOWN_FILES:
        try:
            size += os.stat(os.path.join(folder, name)).st_size
        except OSError:
            pass  # missing or unreadable: the checker reports it
    return size


def plan_shards(folders: list[str], domain: str, limit: int) -> list[ShardPlan]:
    """``domain``'s question ``folders`` cut into shards of at most ``limit`` bytes, as
    :meth:`DomainWriter.add` cuts them (a question over the limit gets a shard of its own)."""
    cuts: list[tuple[list[str], list[int]]] = []
    total = 0
    for folder in folders:
        size = _listed_size(folder)
        if not cuts or (cuts[-1][0] and total + size > limit):
            cuts.append(([], []))
            total = 0
        cuts[-1][0].append(folder)
        cuts[-1][1].append(size)
        total += size
    return [ShardPlan(domain, i, len(cuts), names, sizes) for i, (names, sizes) in enumerate(cuts)]


@dataclass
class _ShardOut:
    """What a shard task gives back."""

    shard: ShardEntry | None  # None when a question failed (the release is discarded)
    sources: list[Path]  # its source files, in sorted chunk files under the scratch folder
    num_bytes: int
    difficulties: Counter[str]
    problems: list[Problem]
    listed: list[Listed]
    first: PreviewSource | None
    frames: tuple[int, int]


def _write_shard(qdir: Path, decode_images: bool, cache: Path | None, root: Path, scratch: Path,
                 plan: ShardPlan, limit: int) -> _ShardOut:
    """A Ray task: check the questions of ``plan`` and write them as its shard, at its final
    name in ``root``, hashed (working in a folder of its own under ``scratch``). ``cache``: the
    folder of the frame verdict cache (each node keeps its own), or None."""
    checker = Checker(qdir, decode_images=decode_images, verdicts=Verdicts(cache) if decode_images else None)
    parts = scratch / PARTS
    parts.mkdir(parents=True, exist_ok=True)
    own = Path(tempfile.mkdtemp(prefix=f"{plan.domain}-{plan.index}-", dir=parts))
    writer = DomainWriter(own, plan.domain, limit, checker, SourceRows(parts / own.name))  # beside own: kept
    sizes: list[int] = []

    def add(question: Question, blobs: dict[str, bytes | memoryview]) -> None:
        sizes.append(sum(len(b) for b in blobs.values()))
        writer.add(question, blobs)

    checker.on_question = add
    checker.buffer_for = writer.buffer_for
    try:
        for folder in plan.folders:
            checker.check_question(folder, plan.domain)
        checker.verdicts.flush()
        written = writer.finish()
    finally:
        writer.close()
    shard = None
    if not checker.failed:
        if sizes != plan.sizes or len(written) != 1:
            raise _unplanned(qdir, plan, sizes)
        (root / plan.path).parent.mkdir(parents=True, exist_ok=True)
        os.replace(own / written[0]["path"], root / plan.path)  # over a killed attempt's: the same bytes
        crash_point("build-shard")
        shard = {**written[0], "path": plan.path, "sha256": sha256_file(root / plan.path)}
    shutil.rmtree(own, ignore_errors=True)
    report = checker.report
    return _ShardOut(shard, writer.sources.chunks(), writer.num_bytes, writer.difficulties, report.problems,
                     checker.listed, writer.first, (report.frames_checked, report.frames_cached))


def _unplanned(qdir: Path, plan: ShardPlan, sizes: list[int]) -> BuildError:
    """The error for a shard that did not come out as planned: the tree changed since it was
    listed, or (if its files are still the sizes listed) the plan and the writer disagree."""
    if [_listed_size(folder) for folder in plan.folders] != plan.sizes:
        return BuildError(f"the questions of {plan.path} changed while the build ran (their files now hold "
                          f"{sum(sizes)} bytes, {sum(plan.sizes)} when listed); run the build again once "
                          "nothing writes to the tree", path=qdir)
    return BuildError(f"{plan.path} did not come out as planned ({len(sizes)} questions, {sum(sizes)} bytes "
                      f"read; {len(plan.sizes)} and {sum(plan.sizes)} listed): a bug in the Ray engine; build "
                      "with --engine local, and please report it", path=qdir)


def compile_on_ray(checker: Checker, root: Path, limit: int, scratch: Path, num_cpus: int | None = None
                   ) -> list[CompiledDomain]:
    """Every domain of ``checker``'s tree compiled into ``root`` on Ray, one task per shard of at
    most ``limit`` bytes, in domain order: what the local engine gives, field for field. Source
    lists go under ``scratch``; ``num_cpus``: the CPUs of a local Ray instance, if one is started
    (default: all)."""
    listings = []
    for ddir, domain in checker.domains():
        lister = Checker(checker.qdir, decode_images=checker.decode_images)  # its problems come first
        listings.append((domain, lister, plan_shards(lister.question_folders(ddir, domain), domain, limit)))
    outs: dict[tuple[str, int], _ShardOut] = {}
    if any(plans for _, _, plans in listings):  # else nothing to start Ray for (the tree is empty)
        with ray_session(num_cpus) as ray:
            task = ray.remote(max_retries=MAX_RETRIES)(_write_shard)
            cache = checker.verdicts.path.parent if checker.verdicts.path is not None else None
            pending = {task.remote(checker.qdir, checker.decode_images, cache, root, scratch, plan, limit): plan
                       for _, _, plans in listings for plan in plans}
            for plan, out in as_completed(ray, pending, lambda plan: f"shard {plan.path}", BuildError):
                outs[plan.domain, plan.index] = out
    return [_domain_result(domain, lister, [outs[domain, plan.index] for plan in plans], scratch)
            for domain, lister, plans in listings]


def _domain_result(domain: str, lister: Checker, outs: list[_ShardOut], scratch: Path) -> CompiledDomain:
    """One domain's shards joined into what the local engine's domain job gives."""
    difficulties: Counter[str] = Counter()
    for out in outs:
        difficulties.update(out.difficulties)  # in shard order: the labels keep the order they are first seen in
    return {
        "domain": domain,
        "shards": [out.shard for out in outs if out.shard is not None],
        "sources": merge_chunks([chunk for out in outs for chunk in out.sources], scratch / domain),
        "num_bytes": sum(out.num_bytes for out in outs),
        "difficulties": dict(difficulties),
        "problems": lister.report.problems + [p for out in outs for p in out.problems],
        "listed": [row for out in outs for row in out.listed],
        "folders": dict(lister.report.folders),
        "first": next((out.first for out in outs if out.first is not None), None),
        "frames": (sum(out.frames[0] for out in outs), sum(out.frames[1] for out in outs)),
    }
