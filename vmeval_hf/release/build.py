"""Compile a question tree into a release folder: Parquet shards, dataset card, release manifest.

Layout written (atomically and durably: built in a temp folder beside ``out``, fsynced, then
swapped in under a lock by :func:`~vmeval_hf._shared.fs.replace_dir`, so a crash or a power cut
leaves the previous release or this one, complete)::

    README.md                                   dataset card; its YAML is the loading config
    assets/<domain>_preview.png                 first | final frame of one question per domain
    data/<domain>/test-00000-of-0000N.parquet   rows sorted by id; images embedded byte for byte
    vmeval_release.json                         sources, shards, files, content_sha256

One pass: :class:`~vmeval_hf.tree.checker.Checker` reads each file once to validate it and
hands the same bytes to the domain's writer (:mod:`vmeval_hf.release.shards`), which hashes them
and streams them into row groups of about 100 rows, so memory does not grow with the
tree. If any question fails,
nothing is moved into place: the temp folder is deleted and ``ValidationError`` lists
every problem. Domains are compiled in two forked worker processes when the tree is big
enough to pay for them (scripts/bench_build.py has the figures).
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property, partial
from glob import escape as glob_escape
from pathlib import Path
from typing import Any

from .._shared.forked import folder_count, plan_workers, run_forked
from .._shared.fs import parse_size, recover_dir, replace_dir, sha256_file
from .._shared.labels import validate_label
from .._shared.ray_runtime import check_engine
from ..errors import BuildError, ConfigError
from ..tree.checker import Checker
from ..tree.model import (
    FINAL,
    FIRST,
    Listed,
    Problem,
    id_sort_key,
    question_name_re,
    resolve_questions_dir,
)
from ..tree.records import StoredManifest, store_manifest, tree_records
from ..tree.validate import frame_verdicts, tree_problems
from ..tree.verdicts import Verdicts
from . import card  # card.render_card is looked up per call (a test replaces it)
from .card import PreviewSource, load_renderer
from .changes import History
from .ray_engine import compile_on_ray
from .release_manifest import (
    RELEASE_MANIFEST,
    SCHEMA,
    FileEntry,
    ReleaseManifest,
    ShardEntry,
    SourceRows,
    SourceRun,
    content_sha256_runs,
    load_release,
    read_runs,
    write_release_manifest,
)
from .shards import DomainWriter

log = logging.getLogger(__name__)

DEFAULT_MAX_SHARD_SIZE = "500MB"
#: where workers leave their domain's source list for the release manifest, inside the temp
#: release folder; removed once the manifest is written
SCRATCH = ".sources"


@dataclass
class BuildResult:
    out: Path
    version: str
    questions: int
    domains: dict[str, int]
    shards: list[ShardEntry]
    content_sha256: str
    size_bytes: int
    #: frames whose image data was checked (``decode_images``), and frames passed by earlier verdicts
    frames_checked: int = 0
    frames_cached: int = 0

    @cached_property
    def manifest(self) -> ReleaseManifest:
        """The release manifest, read (and checked) from ``out`` when first asked for: it lists
        every source file, so the build itself never holds it whole."""
        return load_release(self.out)


@dataclass
class _DomainResult:
    """What compiling one domain gives back (picklable: it crosses from a worker process)."""

    domain: str
    shards: list[ShardEntry]
    sources: SourceRun | None  # every source file, sorted by path, in two files under ``SCRATCH``
    num_bytes: int
    difficulties: dict[str, int]
    problems: list[Problem]
    listed: list[Listed]  # the valid questions, in id order
    folders: Mapping[str, str]
    first: PreviewSource | None  # the first question, for the card's preview
    frames: tuple[int, int] = (0, 0)  # frames checked, frames passed by the verdict cache
    #: the file :meth:`stash` moved ``listed`` and ``folders`` to, or None: they are here
    stashed: Path | None = None

    def stash(self, path: Path) -> None:
        """Move ``listed`` and ``folders`` (a record per question) to the file ``path``: a forked
        worker's result then reaches the parent without them, so the parent holds no domain's
        listings while the others compile (and the workers forked after it do not inherit them),
        only once every domain is in, to check them (:meth:`unstash`)."""
        path.parent.mkdir(parents=True, exist_ok=True)  # a domain that wrote no source rows made no scratch folder
        with open(path, "wb") as f:
            pickle.dump((self.listed, self.folders), f, protocol=pickle.HIGHEST_PROTOCOL)
        self.listed, self.folders, self.stashed = [], {}, path

    def unstash(self) -> None:
        """Read back what :meth:`stash` moved to its file, and remove the file."""
        if self.stashed is not None:
            with open(self.stashed, "rb") as f:
                self.listed, self.folders = pickle.load(f)
            self.stashed.unlink()
            self.stashed = None


def _compile_domain(qdir: Path, decode_images: bool, ddir: str, domain: str, root: Path,
                    limit: int, hash_shards: bool = False, verdicts: Verdicts | None = None) -> _DomainResult:
    """Validate one domain's questions and stream the valid ones into its shards; with
    ``hash_shards``, also hash the shards (else :func:`_hash_shards` does, later); ``verdicts``:
    frames known to pass the pixel check."""
    checker = Checker(qdir, decode_images=decode_images, verdicts=verdicts)
    writer = DomainWriter(root, domain, limit, checker, SourceRows(root / SCRATCH / domain))
    checker.on_question = writer.add
    checker.buffer_for = writer.buffer_for
    try:
        checker.check_domain(ddir, domain)
        shards = writer.finish()
    finally:
        writer.close()
    if hash_shards:
        _hash_shards(root, shards)
    report = checker.report
    sources = writer.sources.run()
    return _DomainResult(domain, shards, sources, writer.num_bytes, dict(writer.difficulties),
                         report.problems, checker.listed, report.folders, writer.first,
                         (report.frames_checked, report.frames_cached))


@dataclass
class _EarlyWork:
    """What this process does while the last workers run: the card's previews (None: draw them
    again from the workers' results), and storing the dataset manifest for the tree-wide checks
    (:func:`~vmeval_hf.tree.records.store_manifest`, into ``manifest_file``) once only the last
    worker is left (None: not stored yet)."""

    manifest_file: Path | None = None
    previews: list[dict[str, str]] | None = None
    done: bool = False
    manifest: StoredManifest | None = None


def _compile_all(checker: Checker, root: Path, limit: int, workers: int | None, manifest_file: Path | None = None
                 ) -> tuple[list[_DomainResult], _EarlyWork]:
    """Every domain, in domain order; in forked worker processes when
    :func:`~vmeval_hf._shared.forked.plan_workers` says so.

    Each domain gets a fresh child (biggest domains first), so memory stays that of one
    domain. Once the last child has started, this process hashes each finished domain's
    shards and draws the card's previews from each domain's first question folder (on a valid
    tree, the first question); the previews are returned too, and so is the dataset manifest,
    stored into ``manifest_file`` once only the last child is left (if given). The last child
    hashes its own shards: nothing else is left to overlap with them.
    """
    domains = checker.domains()
    args = (checker.qdir, checker.decode_images)
    sizes = {domain: folder_count(ddir) for ddir, domain in domains}
    n = plan_workers(workers, sizes)
    if n == 1:
        return [_compile_domain(*args, ddir, domain, root, limit, False, checker.verdicts)
                for ddir, domain in domains], _EarlyWork()
    import pyarrow.parquet  # noqa: F401  # start-up: ~250 ms, imported once here and inherited by the forks

    order = sorted(domains, key=lambda d: -sizes[d[1]])
    jobs = [(f"domain {domain!r}", partial(_in_worker, partial(_compile_domain, *args, ddir, domain, root, limit,
                                                               i == len(order) - 1, checker.verdicts),
                                           root / SCRATCH / f"{domain}.listed"))
            for i, (ddir, domain) in enumerate(order)]
    early = _EarlyWork(manifest_file)
    results = run_forked(jobs, n, on_idle=partial(_while_idle, checker.qdir, root, domains, early),
                         on_start=load_renderer)
    by_domain = {r.domain: r for r in results}
    return [by_domain[domain] for _, domain in domains], early


def _in_worker(job: Callable[[], _DomainResult], listed: Path) -> _DomainResult:
    """In a forked worker: ``job``, its result's listings stashed in the file ``listed``
    (:meth:`_DomainResult.stash`).

    First, every object this worker inherited is moved out of its garbage collector's reach
    (:func:`gc.freeze`). The parent froze its objects before the first fork, but made more after
    it (the card renderer's modules): a worker forked later would have its collector visit each
    of those, writing to every page they are on, which then stops being shared and is copied
    into the worker."""
    gc.freeze()
    result = job()
    result.stash(listed)
    return result


def _hash_shards(root: Path, shards: list[ShardEntry]) -> None:
    """Fill in the sha256 of every shard not hashed yet.

    Workers mostly leave it to this process: hashing a finished domain's shards here, while
    the last domain is still compiling, uses a core that would otherwise idle.
    """
    for shard in shards:
        if not shard["sha256"]:
            shard["sha256"] = sha256_file(root / shard["path"])


def _while_idle(qdir: Path, root: Path, domains: list[tuple[str, str]], early: _EarlyWork,
                finished: list[_DomainResult]) -> None:
    """This process's share while the last workers run: the finished domains' shards, then
    (once) the previews, then (once only the last worker is left) the dataset manifest."""
    _hash_shards(root, [s for r in finished for s in r.shards])
    if not early.done:
        early.done = True
        early.previews = _early_previews(root, domains)
    if early.manifest_file is not None and early.manifest is None and len(finished) == len(domains) - 1 \
            and qdir.is_dir():
        early.manifest = store_manifest(qdir, early.manifest_file)


def _early_previews(root: Path, domains: list[tuple[str, str]]) -> list[dict[str, str]] | None:
    """Previews of each domain's first question folder in id order, or None if any cannot be drawn
    (the workers' findings decide what is wrong; the previews are drawn again from their results)."""
    examples = {}
    try:
        for ddir, domain in domains:
            name_re = question_name_re(domain)
            with os.scandir(ddir) as it:
                names = [e.name for e in it if name_re.match(e.name) and e.is_dir(follow_symlinks=False)]
            if names:
                folder = Path(ddir) / min(names, key=id_sort_key)
                final = folder / FINAL
                examples[domain] = (folder.name, folder / FIRST, final if final.is_file() else None)
        return card.write_previews(root, examples)
    except Exception:  # noqa: BLE001  (a broken frame is reported by validation, in the workers)
        return None


def _remove_abandoned_builds(out: Path) -> None:
    """Delete temp build folders for ``out`` left by a build process that no longer runs (killed)."""
    prefix = f".{out.name}.building-"
    for folder in out.parent.glob(f"{glob_escape(prefix)}*"):
        pid = folder.name[len(prefix):].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        log.info("removing %s, left by an interrupted build", folder)
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def build_release(
    data_dir: str | Path | None = None,
    out: str | Path | None = None,
    *,
    version: str,
    repo_id: str = "org/vmevalkit-questions",
    questions_dir: str | Path | None = None,
    max_shard_size: str | int = DEFAULT_MAX_SHARD_SIZE,
    workers: int | None = None,
    license: str = "mit",
    decode_images: bool = False,
    history: History | None = None,
    frame_cache: bool | str | Path = True,
    engine: str = "local",
) -> BuildResult:
    """Validate the tree and compile the release folder at ``out``, in one pass.

    If validation fails, :class:`ValidationError` lists every problem and nothing is left
    behind: ``out`` is untouched and the temp folder (and any parent folder this call
    created) is removed. The same tree, version and repo id give a byte-identical folder.
    Frames are checked for PNG structure and CRCs; ``decode_images``: also every frame's image data
    (as ``validate`` and ``publish`` do: :func:`~vmeval_hf.tree.png.pixel_problem`, ~0.2 ms a frame),
    but frames that passed before (``frame_cache``: as for :func:`~vmeval_hf.tree.validate.validate_tree`).

    ``data_dir`` (or ``questions_dir``): the tree; ``out``: the release folder (default
    ``<data_dir>/releases/<version>``); ``version`` and ``repo_id``: named in the card's load
    snippets; ``max_shard_size``: the largest Parquet shard; ``workers``: processes to compile
    the domains in (default: 2 for trees of 400+ questions on 2+ cores); ``license``: the card's
    license; ``history``: the versions before this one, for the card's "Versions" table (none
    without it; ``publish`` passes the log's), an input like the tree, so the same inputs still
    give the same bytes. ``engine``: ``local`` (this process and forked workers) or ``ray`` (one
    task per shard on Ray: ``ray.init()``, with ``workers`` CPUs, or the cluster at ``RAY_ADDRESS``;
    the tree and ``out`` must be where every worker sees them), the same bytes either way.
    """
    check_engine(engine)
    version = validate_label(version)  # the canonical label (v1.0 -> 1.0): it names the folder, a Hub tag, a log entry
    limit = parse_size(max_shard_size, "--max-shard-size")
    _check_workers(workers)
    qdir = resolve_questions_dir(data_dir, questions_dir)
    out_path = Path(out) if out is not None else qdir.parent / "releases" / version

    tmp, created = _temp_release_dir(out_path)
    try:
        results, early, frames = _compile_tree(qdir, tmp, limit, workers, engine, decode_images, frame_cache)
        _hash_shards(tmp, [s for r in results for s in r.shards])
        summary = _finish_release(tmp, results, early.previews, version=version, repo_id=repo_id, license=license,
                                  history=history)
        # measured before the swap: once the lock is released another build may be swapping out_path
        size = sum(f["size"] for f in summary["files"]) + (tmp / RELEASE_MANIFEST).stat().st_size
        replace_dir(tmp, out_path)  # fsynced, then swapped in under a lock: never a half-written release
    except BaseException as exc:
        _discard(tmp, created)
        if isinstance(exc, OSError):  # writing failed (reading problems are ValidationError)
            raise _write_error(out_path, exc) from exc
        raise
    log.info("built %s: %d questions, %d shards", out_path, summary["questions"], len(summary["shards"]))
    return BuildResult(out_path, version, summary["questions"], summary["domains"], summary["shards"],
                       summary["content_sha256"], size, *frames)


def _check_workers(workers: int | None) -> None:
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"--workers must be a whole number of processes, 1 or more, got {workers!r}")


def _temp_release_dir(out: Path) -> tuple[Path, list[Path]]:
    """The temp folder the release is built in, beside ``out`` (after removing those of killed
    builds, and putting back or removing what a crashed swap left: :func:`recover_dir`), and the
    parent folders created for it, outermost first."""
    try:
        created = _make_parents(out.parent)
        recover_dir(out)
        _remove_abandoned_builds(out)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-{os.getpid()}-", dir=out.parent))
    except OSError as exc:
        raise _write_error(out, exc) from exc
    return tmp, created


def _compile_tree(qdir: Path, root: Path, limit: int, workers: int | None, engine: str, decode_images: bool,
                  frame_cache: bool | str | Path) -> tuple[list[_DomainResult], _EarlyWork, tuple[int, int]]:
    """:func:`_compile_valid` with a checker of its own (``decode_images``, ``frame_cache``: as for
    :func:`build_release`), and the frames it checked and passed by earlier verdicts. The checker
    goes on return: its report names every folder of the tree, not held while the release is written."""
    checker = Checker(qdir, decode_images=decode_images,
                      verdicts=frame_verdicts(frame_cache) if decode_images else None)
    results, early = _compile_valid(checker, root, limit, workers, engine)
    return results, early, (checker.report.frames_checked, checker.report.frames_cached)


def _compile_valid(checker: Checker, root: Path, limit: int, workers: int | None, engine: str = "local"
                   ) -> tuple[list[_DomainResult], _EarlyWork]:
    """Compile every domain into ``root`` (on Ray with ``engine="ray"``) and check the whole tree;
    :class:`ValidationError` with every problem if anything is wrong. Returns the domains that have questions.

    The tree-wide checks read records kept on disk, as validation's do
    (:mod:`vmeval_hf.tree.records`): each domain's listings go there as its result is taken in,
    so no record per question of the whole tree is held here."""
    report = checker.report
    with tree_records() as records:
        if engine == "ray":
            compiled = compile_on_ray(checker, root, limit, root / SCRATCH, num_cpus=workers)
            results, early = [_DomainResult(**domain) for domain in compiled], _EarlyWork()
        else:
            results, early = _compile_all(checker, root, limit, workers, records.manifest_file)
        with_questions = []
        for r in results:
            r.unstash()
            report.problems.extend(r.problems)
            records.add_checked(r.domain, r.folders, r.listed)
            if r.listed:
                with_questions.append(r)
            r.listed, r.folders = [], {}
            report.frames_checked += r.frames[0]
            report.frames_cached += r.frames[1]
        records.order()
        checker.conclude(records.valid_count(), records.repeated())
        tree_problems(report, records, early.manifest)
    early.manifest = None
    report.raise_for_errors()
    return with_questions, early


def _discard(tmp: Path, created: list[Path]) -> None:
    """Remove the temp folder and the (now empty) parent folders this build created."""
    shutil.rmtree(tmp, ignore_errors=True)
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            break


def _write_error(out: Path, exc: OSError) -> BuildError:
    reason = f"{exc.filename}: {exc.strerror or exc}" if exc.filename else (exc.strerror or str(exc))
    return BuildError(f"cannot write the release at {out} ({reason}); nothing was left behind; "
                      "check free space and permissions, or pass --out elsewhere", path=out)


def _make_parents(folder: Path) -> list[Path]:
    """``mkdir -p folder``; returns the folders it created, outermost first."""
    missing = []
    for p in [folder, *folder.parents]:
        if p.exists():
            break
        missing.append(p)
    folder.mkdir(parents=True, exist_ok=True)
    return missing[::-1]


def _finish_release(tmp: Path, results: list[_DomainResult], previews: list[dict[str, str]] | None, *,
                    version: str, repo_id: str, license: str, history: History | None) -> dict[str, Any]:
    """Previews (unless drawn already from the right questions), card and release manifest beside
    the shards already in ``tmp``; returns the manifest but its source list."""
    # Every path of a domain starts "<domain>_task/", so the domains' sorted runs, taken in that
    # order, are the sorted list (checked as they are joined).
    runs = [r.sources for r in sorted(results, key=lambda r: f"{r.domain}_task/") if r.sources is not None]
    shards = [s for r in results for s in r.shards]
    domains = {r.domain: sum(s["rows"] for s in r.shards) for r in results}
    digest = content_sha256_runs(runs)
    firsts = {r.domain: r.first for r in results if r.first is not None}
    if previews is None or {p["domain"]: p["id"] for p in previews} != {d: f[0] for d, f in firsts.items()}:
        shutil.rmtree(tmp / "assets", ignore_errors=True)
        previews = card.write_previews(tmp, firsts)
    card_text = card.render_card(
        repo_id=repo_id, version=version, license=license,
        domains=domains, difficulties={r.domain: r.difficulties for r in results},
        num_bytes={r.domain: r.num_bytes for r in results},
        download_size={r.domain: sum(s["size"] for s in r.shards) for r in results},
        previews=previews, content_sha256=digest,
        versions=history.rows(version, sum(domains.values()), digest, read_runs(runs)) if history else None,
    )
    (tmp / "README.md").write_text(card_text, encoding="utf-8")
    hashed = {s["path"]: s for s in shards}  # shards were hashed as they were written
    files: list[FileEntry] = []
    for p in sorted(tmp.rglob("*")):
        rel = p.relative_to(tmp).as_posix()
        if p.is_file() and not rel.startswith(f"{SCRATCH}/"):
            if rel in hashed:
                files.append({"path": rel, "size": hashed[rel]["size"], "sha256": hashed[rel]["sha256"]})
            else:
                files.append({"path": rel, "size": p.stat().st_size, "sha256": sha256_file(p)})
    summary: dict[str, Any] = {
        "schema": SCHEMA, "version": version, "questions": sum(domains.values()), "domains": domains,
        "shards": shards, "files": files, "content_sha256": digest,
    }
    # No temp file needed: tmp/ is swapped in whole.
    write_release_manifest(tmp / RELEASE_MANIFEST, summary, runs)
    shutil.rmtree(tmp / SCRATCH, ignore_errors=True)
    return summary
