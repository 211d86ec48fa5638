#!/usr/bin/env python3
"""Publishing a release to the Hub: ours against ``HfApi.upload_folder`` and ``datasets``' ``push_to_hub``.

    python scripts/bench_hub.py --questions 2000 10000 --repeat 3

For each N the synthetic tree of ``scripts/bench_scale.py`` (cached under ``--cache-dir``) is
built once into a release folder (``vmeval-hf build``). Then, ``--repeat`` times, in rotating
order, each contender runs as a child process against the project's Hub server
(``vmeval_hf.sandbox.HubServer``, in a process of its own on 127.0.0.1, ``scripts/bench_servers.py``):

- ``ours``: ``vmeval_hf.hub.publish_to_hub(release)``, the Hub side of ``vmeval-hf publish``
  (the release commit on a staging branch, the tag, ``main`` following);
- ``upload_folder``: ``HfApi.create_repo`` + ``HfApi.upload_folder`` of the same release folder;
- ``push_to_hub``: the release's Parquet loaded with ``datasets.Dataset.from_parquet`` (before the
  clock), then ``Dataset.push_to_hub`` of those rows;
- ``ours no-op``: ``publish_to_hub`` of the same release again, on the repo ``ours`` just made;
- with ``--attribute``, also ``ours unchecked``: ``publish_to_hub`` with its release check taken
  out, to measure what the check costs: the manifest read before the clock, and the check of every
  byte against it (``check_release_files``, ``check_content``) replaced by a pass. Not a mode of
  the product; a diagnostic of where ``ours`` spends the time ``upload_folder`` does not. And
  ``ours cold``: ``ours`` with an empty cache folder (``VMEVAL_CACHE_DIR``), so the manifest's
  source list is walked, as on a machine that neither built the release nor checked it before.

The build and every contender share a cache folder of the run's own (``VMEVAL_CACHE_DIR``): the
build remembers the source list it wrote (:func:`vmeval_hf.release.release_manifest.write_release_manifest`),
as it does on a maintainer's machine, so ``ours`` checks the manifest by its bytes' hash.

The Hub server stores blobs by content, shared between repos: a second upload of the same shards
would send nothing. So every contender gets a server with an empty store of its own (the no-op
re-publish reuses ``ours``' server, which is its point). Xet is off (``HF_HUB_DISABLE_XET=1``,
as ``vmeval-hf sandbox`` sets it): the server speaks plain LFS.

Before each run the page cache's dirty pages are written out (``os.sync``): the server writes what
it receives, hundreds of MB per run at 10,000 questions, and the disk's write-back of one run
would otherwise fall on the next.

Per run: ``call s`` and ``CPU s`` (user + sys of the client process, all threads) around the
upload call alone, imports and loading done before; ``proc s``, the whole child; what the server
received (``HubServer.traffic``): file content (LFS uploads + inline file contents) and every
request's line, headers and body; commits the server made, and after the run the commits new in
``main``'s history and the tags (``HfApi.list_repo_commits``, ``list_repo_refs``). Medians; for ours against
``upload_folder`` also the median of each round's own ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_build import measure  # noqa: E402
from bench_scale import ensure_tree  # noqa: E402
from bench_servers import Servers  # noqa: E402

CONTENDERS = ("ours", "upload_folder", "push_to_hub")
VERSION = "1.0"


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child(kind: str, release: Path, repo: str) -> None:
    """One contender's upload; prints ``{"call", "call_cpu"}`` as the last line."""
    from huggingface_hub import HfApi

    extra: dict[str, Any] = {}
    if kind in ("ours", "ours-noop", "ours-unchecked"):
        from vmeval_hf import hub
        from vmeval_hf.config import Settings

        settings = Settings.from_env()
        manifest = None
        if kind == "ours-unchecked":  # a diagnostic of --attribute: the release check taken out
            manifest = hub.load_release(release, sources=False, content=False)
            hub._intact = lambda *_: []  # type: ignore[assignment]
            hub.check_release_files = lambda *_, **__: []  # type: ignore[assignment]
        t0, c0 = time.perf_counter(), _cpu()
        result = hub.publish_to_hub(release, settings=settings, repo_id=repo, manifest=manifest)
        extra = {"noop": result.noop}
    elif kind == "upload_folder":
        api = HfApi()
        t0, c0 = time.perf_counter(), _cpu()
        api.create_repo(repo, repo_type="dataset", exist_ok=True)
        api.upload_folder(folder_path=str(release), repo_id=repo, repo_type="dataset",
                          commit_message=f"Release {VERSION}")
    else:
        import datasets

        datasets.disable_progress_bars()
        files = sorted(str(p) for p in release.glob("data/**/*.parquet"))
        ds = datasets.Dataset.from_parquet(files, split="test")
        assert isinstance(ds, datasets.Dataset)
        t0, c0 = time.perf_counter(), _cpu()
        ds.push_to_hub(repo, split="test", commit_message=f"Release {VERSION}")
        extra = {"rows": len(ds)}
    print(json.dumps({"call": time.perf_counter() - t0, "call_cpu": _cpu() - c0, **extra}))


def _history(url: str, token: str, repo: str) -> dict[str, int]:
    from huggingface_hub import HfApi

    api = HfApi(endpoint=url, token=token)
    main = api.list_repo_commits(repo, repo_type="dataset", revision="main")
    refs = api.list_repo_refs(repo, repo_type="dataset")
    return {"main_commits": len(main) - 1,  # the repo's initial commit (.gitattributes) is not the upload's
            "tags": len(refs.tags), "branches": len(refs.branches)}


def run_one(kind: str, release: Path, scratch: Path, n: int, rep: int,
            noop_after: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """A fresh server, one contender (and, for ``ours`` with ``noop_after``, the re-publish)."""
    root = Path(tempfile.mkdtemp(prefix=f"hub-{kind}-", dir=scratch))
    out = []
    try:
        with Servers(root) as servers:
            repo = f"bench/{kind.replace('_', '-')}-{n}-{rep}"
            cache = root / "cold-cache" if kind == "ours-cold" else scratch / "cache"
            env = {**os.environ, **servers.env(repo=repo, hf_home=root / "hf"), "VMEVAL_CACHE_DIR": str(cache)}
            kinds = [kind, "ours-noop"] if noop_after else [kind]
            for k in kinds:
                before = servers.hub_traffic()
                cmd = [sys.executable, str(Path(__file__).resolve()), "--_run", "ours" if k == "ours-cold" else k,
                       "--_release", str(release), "--_repo", repo]
                os.sync()  # the last run's writes reach the disk before this one starts, not during it
                r = measure(cmd, cwd=root, env=env)
                after = servers.hub_traffic()
                sent = {key: after[key] - before[key] for key in after}
                assert servers.hub is not None
                r.update(sent, content_bytes=sent["lfs_bytes"] + sent["inline_bytes"],
                         **_history(servers.hub.url, servers.token, repo))
                out.append(({"ours-noop": "ours no-op", "ours-unchecked": "ours unchecked",
                             "ours-cold": "ours cold"}.get(k, k), r))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


def bench(n: int, repeat: int, cache_dir: Path, attribute: bool = False) -> dict[str, Any]:
    data = ensure_tree(cache_dir, n)
    scratch = Path(tempfile.mkdtemp(prefix=f"hub-{n}-", dir=cache_dir))
    try:
        release = scratch / "release"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "VMEVAL_CACHE_DIR": str(scratch / "cache")}
        subprocess.run([str(Path(sys.executable).with_name("vmeval-hf")), "build", "--data-dir", str(data),
                        "--out", str(release), "--version", VERSION, "--repo", "bench/vmeval", "--json"],
                       cwd=scratch, env=env, check=True, stdout=subprocess.DEVNULL)
        size = sum(p.stat().st_size for p in release.rglob("*") if p.is_file())
        nfiles = sum(1 for p in release.rglob("*") if p.is_file())
        runs: dict[str, list[dict[str, Any]]] = {}
        kinds = (*CONTENDERS, "ours-unchecked", "ours-cold") if attribute else CONTENDERS
        for rep in range(repeat):
            order = kinds[rep % len(kinds):] + kinds[:rep % len(kinds)]
            for kind in order:
                for name, r in run_one(kind, release, scratch, n, rep, noop_after=kind == "ours"):
                    runs.setdefault(name, []).append(r)
        med = {}
        for name, rs in runs.items():
            med[name] = {k: statistics.median(r[k] for r in rs) for k in rs[0]
                         if isinstance(rs[0][k], (int, float)) and not isinstance(rs[0][k], bool)}
            med[name]["call_min"], med[name]["call_max"] = min(r["call"] for r in rs), max(r["call"] for r in rs)
            med[name]["noop_flags"] = [r.get("noop") for r in rs]
        return {"questions": n, "release_mb": size / 1e6, "release_files": nfiles, "repeat": repeat,
                "median": med, "runs": runs}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def report(res: dict[str, Any]) -> list[str]:
    med = res["median"]
    ref = med.get("upload_folder", {}).get("call")
    lines = [f"N = {res['questions']:,}: release of {res['release_files']} files, {res['release_mb']:.1f} MB; "
             f"medians of {res['repeat']}",
             f"{'contender':14} {'call s':>7} {'range':>11} {'proc s':>7} {'CPU s':>6} {'content MB':>11} "
             f"{'sent MB':>8} {'requests':>8} {'commits':>7} {'main':>5} {'tags':>5} {'call / upload_folder':>21}"]
    for name, m in med.items():
        vs = f"{m['call'] / ref:.2f}x" if ref else "-"
        lines.append(f"{name:14} {m['call']:7.2f} {m['call_min']:5.2f}-{m['call_max']:<5.2f} {m['wall']:7.2f} "
                     f"{m['call_cpu']:6.2f} {m['content_bytes'] / 1e6:11.3f} {m['request_bytes'] / 1e6:8.3f} "
                     f"{m['requests']:8.0f} {m['commits']:7.0f} {m['main_commits']:5.0f} {m['tags']:5.0f} {vs:>21}")
    return lines


def paired(res: dict[str, Any], a: str, b: str) -> float:
    """The median of ``a``'s call time over ``b``'s in each round (the two ran minutes apart at
    most, in the same rotation): less swayed than the ratio of medians by a slow stretch of the
    machine that fell on one contender's runs."""
    return statistics.median(x["call"] / y["call"] for x, y in zip(res["runs"][a], res["runs"][b], strict=True))


def targets(res: dict[str, Any]) -> list[str]:
    med, n, out = res["median"], res["questions"], []
    if {"ours", "upload_folder", "push_to_hub"} <= med.keys():
        a, b, c = med["ours"]["call"], med["upload_folder"]["call"], med["push_to_hub"]["call"]
        pair = paired(res, "ours", "upload_folder")
        verdict = "ok" if max(a / b, pair) <= 1 else "MISSED" if min(a / b, pair) > 1 else "at the boundary"
        out.append(f"N={n}: ours / upload_folder = {a / b:.3f} of the medians, {pair:.3f} the median of each "
                   f"round's own ratio (target <= 1): {verdict}")
        out.append(f"N={n}: ours / push_to_hub = {a / c:.2f} (target < 1): {'ok' if a < c else 'MISSED'}")
    if "ours" in med:
        m = med["ours"]
        ok = m["commits"] == 1 and m["tags"] == 1
        out.append(f"N={n}: ours made {m['commits']:.0f} commits ({m['main_commits']:.0f} new on main) and "
                   f"{m['tags']:.0f} tag (target: exactly 1 commit, 1 tag): {'ok' if ok else 'MISSED'}")
    if {"ours", "ours unchecked", "upload_folder"} <= med.keys():
        a, u, b = med["ours"]["call"], med["ours unchecked"]["call"], med["upload_folder"]["call"]
        out.append(f"N={n}: the release check costs ours {a - u:.2f} s; without it, ours / upload_folder = "
                   f"{u / b:.2f} (a diagnostic, not a target)")
    if {"ours cold", "upload_folder"} <= med.keys():
        a, b = med["ours cold"]["call"], med["upload_folder"]["call"]
        out.append(f"N={n}: with an empty cache folder (the source list walked), ours / upload_folder = "
                   f"{a / b:.2f} (a diagnostic, not a target)")
    if "ours no-op" in med:
        m = med["ours no-op"]
        ok = m["content_bytes"] == 0 and m["commits"] == 0
        out.append(f"N={n}: no-op re-publish: {m['content_bytes']:.0f} bytes of file content, {m['commits']:.0f} "
                   f"commits, {m['call']:.2f} s (target: 0 bytes, no commit): {'ok' if ok else 'MISSED'}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, nargs="+", default=[2000], metavar="N",
                    help="tree sizes (default 2000)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per contender (default 3; medians reported)")
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "vmeval-scale",
                    help="where generated trees are kept between runs (default /tmp/vmeval-scale, shared "
                         "with bench_scale.py)")
    ap.add_argument("--attribute", action="store_true",
                    help="also run `ours unchecked`, publish_to_hub with its release check taken out (a "
                         "diagnostic of what the check costs, not a mode of the product), and `ours cold`, "
                         "with an empty cache folder")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--_run", choices=("ours", "ours-noop", "ours-unchecked", *CONTENDERS[1:]),
                    help=argparse.SUPPRESS)
    ap.add_argument("--_release", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--_repo", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._run:
        child(args._run, args._release, args._repo)
        return 0
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for n in args.questions:
        res = bench(n, args.repeat, args.cache_dir, args.attribute)
        results.append(res)
        if not args.json:
            print("\n".join(report(res) + targets(res)) + "\n", flush=True)
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k != "runs"} | {"targets": targets(r)} for r in results],
                         indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
