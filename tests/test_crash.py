"""A publisher killed at any point never leaves a wrong or half-published version, and re-running
the same command finishes it; two publishers of one version never mix.

The publisher is a real ``vmeval-hf publish --log`` process. It is stopped with SIGKILL (no
cleanup, no ``finally``) at a chosen point: the tests hold one request at a proxy (a ``stall``
rule, see ``tests/support/reliability.py``) and kill the process as soon as it arrives, so the
crash lands exactly there whatever the timing. Then:

* the version log does not list the version;
* a Hub tag named after it, if any, points at a commit holding exactly the built release;
* an S3 ``MANIFEST.json``, if any, lists only objects present with their sha256;
* the same command, run again, exits 0; the version verifies on both sides and is logged once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.reliability import DAY, Stage, error_lines
from tests.support.trees import make_question

HOLD = 60.0  # a held request outlives the publisher: it is killed long before


def _after_manifest_put(nth_get: int) -> Callable[[str, str], bool]:
    """Match the ``nth_get`` GET of MANIFEST.json after it was PUT (the verify step's reads)."""
    state = {"put": False, "gets": 0}

    def predicate(method: str, path: str) -> bool:
        if not path.split("?")[0].endswith("/MANIFEST.json"):
            return False
        if method == "PUT":
            state["put"] = True
        elif method == "GET" and state["put"]:
            state["gets"] += 1
            return state["gets"] == nth_get
        return False

    return predicate


def _building(stage: Stage) -> Callable[[], bool]:
    releases = stage.data / "releases"

    def condition() -> bool:
        try:
            return any(".building-" in p.name for p in releases.iterdir())
        except FileNotFoundError:
            return False

    return condition


def _hold(side: str, **rule: object) -> Callable[[Stage], Callable[[], bool]]:
    """Arm a crash point: hold the first matching request on ``side``; kill once it is held."""

    def arm(stage: Stage) -> Callable[[], bool]:
        proxy = stage.hub_proxy if side == "hub" else stage.s3_proxy
        kwargs = dict(rule)
        if "predicate" in kwargs:  # a factory: predicates keep state, one per test
            kwargs["predicate"] = kwargs["predicate"]()  # type: ignore[operator]
        proxy.add("stall", stall=HOLD, **kwargs)  # type: ignore[arg-type]
        return lambda: proxy.count(outcome="stall") > 0

    return arm


#: crash point -> how to arm it: returns the condition on which the publisher is killed
CRASH_POINTS: dict[str, Callable[[Stage], Callable[[], bool]]] = {
    # the release folder is being written (a temp folder beside releases/1.0)
    "during-build": _building,
    # the first Parquet/PNG upload to the Hub's LFS storage
    "mid-hub-upload": _hold("hub", method="PUT", path=r"^/__lfs/"),
    # committed, not tagged yet
    "at-hub-tag": _hold("hub", method="POST", path=r"/tag/"),
    # tagged; the mirror's first request, its read of MANIFEST.json (the prefix check before the Hub
    # read it first; the version records on S3 are read before the Hub too, so count MANIFEST reads)
    "between-hub-tag-and-s3": _hold("s3", method="GET", path=r"/MANIFEST\.json", skip=1),
    # about a third of the objects stored
    "mid-s3-upload": _hold("s3", method="PUT", skip=8),
    # every object stored, MANIFEST.json (the completion mark) on its way
    "at-s3-manifest": _hold("s3", method="PUT", path=r"/MANIFEST\.json"),
    # both sides done; the verify step's read of MANIFEST.json held: then only its HEADs, the log write
    "just-before-log-write": _hold("s3", predicate=lambda: _after_manifest_put(1)),
}


@pytest.mark.slow
@pytest.mark.parametrize("point", list(CRASH_POINTS))
def test_sigkill_leaves_no_half_version_and_a_rerun_finishes(stage: Stage, point: str) -> None:
    condition = CRASH_POINTS[point](stage)
    proc = stage.spawn(*stage.publish_args())
    stage.kill_when(proc, condition)

    stage.assert_no_half_version("1.0")
    if point in ("between-hub-tag-and-s3", "mid-s3-upload", "at-s3-manifest", "just-before-log-write"):
        assert "1.0" in stage.tags()  # the crash was after the Hub side, as meant
    if point in ("just-before-log-write",):
        assert stage.s3_manifest() is not None
    if point in ("during-build", "mid-hub-upload", "at-hub-tag"):
        assert stage.keys() == {}  # nothing mirrored before the Hub side finished
    if point == "during-build":  # the killed build's temp folder stays, for the re-run to remove
        assert [p.name for p in (stage.data / "releases").iterdir() if p.name.startswith(".1.0.building-")]

    stage.hub_proxy.clear()
    stage.s3_proxy.clear()
    again = stage.run(*stage.publish_args())
    assert again.returncode == 0, again.stderr[-3000:]
    stage.assert_published("1.0")
    _assert_main_names_the_tagged_release(stage)  # main followed; a killed run's staging branch is gone
    # the re-run left no stray release folders behind, hidden ones included: no .1.0.building-
    # (a killed build's temp folder) and no .1.0.old- (a replaced release)
    assert sorted(p.name for p in (stage.data / "releases").iterdir()) == ["1.0"]


def _assert_main_names_the_tagged_release(stage: Stage, version: str = "1.0") -> None:
    """``main`` holds exactly the files of the commit tag ``version`` names (the loser of a race never
    moves it), and no staging branch is left (see vmeval_hf.hub)."""
    api = stage.api()

    def files(revision: str) -> dict[str, str]:
        entries = api.list_repo_tree(stage.repo, repo_type="dataset", revision=revision, recursive=True)
        return {e.path: e.lfs.sha256 if e.lfs else e.blob_id for e in entries if hasattr(e, "blob_id")}

    assert files("main") == files(stage.tags()[version])
    assert [b.name for b in api.list_repo_refs(stage.repo, repo_type="dataset").branches] == ["main"]


def _wait_all(procs: list[subprocess.Popen[str]]) -> list[tuple[int, str, str]]:
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=240)
        out.append((proc.returncode, stdout, stderr))
    return out


@pytest.mark.slow
def test_two_publishers_of_the_same_version_one_wins_and_nothing_mixes(stage: Stage) -> None:
    """Same tree, same command, two processes at once: both may succeed (the second finds the work
    done) or one fails cleanly; the version is logged once and verifies."""
    results = _wait_all([stage.spawn(*stage.publish_args()) for _ in range(2)])
    codes = sorted(code for code, _, _ in results)
    assert codes[0] == 0, results
    for code, _, stderr in results:
        assert "Traceback" not in stderr, stderr[-3000:]
        if code != 0:
            assert code == 1 and len(error_lines(stderr)) == 1, stderr[-3000:]
    stage.assert_published("1.0")
    _assert_main_names_the_tagged_release(stage)


@pytest.mark.slow
def test_two_publishers_of_one_version_with_different_content_never_mix(stage: Stage, tmp_path: Path) -> None:
    """Two machines (two trees and logs) publish different content as 1.0 to the same repo and
    bucket at once: the Hub tag, the S3 MANIFEST.json and the one log that records 1.0 agree."""
    other = tmp_path / "other"
    shutil.copytree(stage.data / "questions", other / "questions")
    make_question(other / "questions", "maze", 7)
    from vmeval_hf.tree.manifest_sync import write_manifest

    write_manifest(other)
    procs = [stage.spawn(*stage.publish_args()),
             stage.spawn("publish", "--data-dir", other, "--log", "--date", DAY)]
    results = _wait_all(procs)
    winners = [i for i, (code, _, _) in enumerate(results) if code == 0]
    assert len(winners) == 1, results
    loser = results[1 - winners[0]]
    assert loser[0] == 1 and "Traceback" not in loser[2] and len(error_lines(loser[2])) == 1, loser[2][-3000:]

    trees = [stage.data, other]
    won, lost = trees[winners[0]], trees[1 - winners[0]]
    assert not (lost / "data_logging" / "version_log.json").exists()
    (entry,) = json.loads((won / "data_logging" / "version_log.json").read_text(encoding="utf-8"))["versions"]
    from vmeval_hf.hub import remote_manifest
    from vmeval_hf.publish import verify_version

    assert verify_version("1.0", settings=stage.direct, data_dir=won) == []
    tagged = remote_manifest(stage.direct, stage.repo, stage.tags()["1.0"])
    held = stage.s3_manifest()
    assert tagged is not None and held is not None
    assert tagged["content_sha256"] == held["content_sha256"] == entry["content_sha256"]
    _assert_main_names_the_tagged_release(stage)
