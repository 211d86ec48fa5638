"""Durable writes: a crash or a power cut at any point leaves the old release or the new one, complete.

A power cut cannot be staged in a test, so what it could lose is checked in two ways:

- the order of the steps, recorded in process: every file and folder of the new release is
  fsynced before it is swapped in, the folder holding it right after the swap, and only then is
  the old release deleted (an ``atomic_write_*`` fsyncs the folder after its rename too);
- a real build SIGKILLed at each step of the swap (in a child process, by a wrapper around the
  step), with the renameat2 exchange and with the two-rename fallback: the output is the old
  release or the new one, complete (in the fallback's window, once the next run has put the old
  one back), and the next build leaves nothing else behind.

Two builds into one output swap one after the other (a lock), and ``.old-`` folders left by a
crash are put back or removed by the next build.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.support.files import killable_env
from tests.support.trees import change_tree, make_tree
from vmeval_hf._shared import fs
from vmeval_hf._shared.fs import atomic_write_json, recover_dir
from vmeval_hf.errors import ValidationError
from vmeval_hf.release.build import build_release
from vmeval_hf.release.release_manifest import check_release_files, load_release

REPO = Path(__file__).resolve().parent.parent


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _complete_version(out: Path) -> str:
    """The version of the release at ``out``, which must be complete: every file its manifest lists."""
    manifest = load_release(out)
    assert check_release_files(out, manifest) == []
    return manifest["version"]


def _two_trees(tmp_path: Path) -> tuple[Path, Path]:
    """Two data trees of different content: the old release's and the new one's."""
    old = make_tree(tmp_path / "old", {"chess": 3, "maze": 2})
    new = make_tree(tmp_path / "new", {"chess": 3, "maze": 2})
    change_tree(new)
    return old, new


# --- the order of the steps ----------------------------------------------------------------------


def _real(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(path)


def test_the_release_is_on_disk_before_it_is_swapped_in_and_the_swap_before_the_old_goes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = _two_trees(tmp_path)
    out = tmp_path / "releases" / "current"
    build_release(old, out, version="1.0")
    events: list[tuple[str, Any]] = []
    real_fsync, real_swap, real_rmtree = os.fsync, fs._swap, shutil.rmtree

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def swap(new_dir: Path, target: Path) -> Any:
        tree = [_real(new_dir), *(_real(p) for p in new_dir.rglob("*"))]
        events.append(("swap", tree))
        return real_swap(new_dir, target)

    def rmtree(path: Any, *args: Any, **kwargs: Any) -> None:
        events.append(("rmtree", _real(path)))
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(fs, "_swap", swap, raising=False)  # raising=False: the test also runs before it existed
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    build_release(new, out, version="1.1", workers=1)
    monkeypatch.undo()

    kinds = [kind for kind, _ in events]
    assert kinds.count("swap") == 1, kinds
    at = kinds.index("swap")
    synced_before = {path for kind, path in events[:at] if kind == "fsync"}
    tree = events[at][1]
    assert [p for p in tree if p not in synced_before] == []  # every file and folder of the new release
    after = events[at + 1:]
    parent = _real(out.parent)
    parent_synced = after.index(("fsync", parent))  # the swap itself is made durable...
    removed = [i for i, (kind, path) in enumerate(after) if kind == "rmtree" and path == tree[0]]
    assert removed and removed[0] > parent_synced  # ... before the old release is deleted
    assert _complete_version(out) == "1.1" and _entries(out.parent) == ["current"]


def test_an_atomic_write_fsyncs_the_file_then_its_folder_after_the_rename(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "logs" / "version_log.json"
    atomic_write_json(target, {"a": 1})
    synced: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        synced.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_write_json(target, {"a": 2})
    monkeypatch.undo()
    assert len(synced) == 3 and synced[1:] == ["replace", _real(target.parent)], synced
    assert Path(synced[0]).parent == Path(_real(target.parent))  # the temp file, before the rename
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": 2}


# --- SIGKILL at each step of the swap ---------------------------------------------------------------

_CRASH_CHILD = """
import os, shutil, signal, sys
import vmeval_hf._shared.fs as fs
import vmeval_hf.release.build as build

data, out, version, step, nth, when, exchange = sys.argv[1:8]
nth = int(nth)
if exchange == "fallback":
    fs._exchange = lambda a, b: False  # as on a system or file system without renameat2's exchange
armed = [False]  # counts only the calls made by the swap, not those of the build before it
calls = [0]

def crash(real):
    def wrapper(*args, **kwargs):
        if armed[0]:
            calls[0] += 1
        if armed[0] and calls[0] == nth and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args, **kwargs)
        if armed[0] and calls[0] == nth and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return wrapper

owner = {"rename": os, "unlink": os, "rmtree": shutil}.get(step, fs)
setattr(owner, step, crash(getattr(owner, step)))
real_replace_dir = build.replace_dir

def replace_dir(*args):
    armed[0] = True
    return real_replace_dir(*args)

build.replace_dir = replace_dir
build.build_release(data, out, version=version, workers=1)
print("not killed")
"""

#: (step, its nth call in the swap, before or after it runs, exchange or fallback) -> what the output holds
CRASH_STEPS = {
    "fsyncing-the-files": (("fsync_file", 1, "before", "exchange"), "1.0"),
    "fsyncing-the-folders": (("fsync_dir", 1, "before", "exchange"), "1.0"),
    "before-the-exchange": (("_swap", 1, "before", "exchange"), "1.0"),
    "after-the-exchange": (("_swap", 1, "after", "exchange"), "1.1"),
    "before-removing-the-old": (("rmtree", 1, "before", "exchange"), "1.1"),
    "removing-the-old": (("unlink", 2, "before", "exchange"), "1.1"),
    "fallback-old-moved-aside": (("rename", 1, "after", "fallback"), None),  # the window: no output
    "fallback-new-moved-in": (("rename", 2, "after", "fallback"), "1.1"),
    "fallback-before-removing-the-old": (("rmtree", 1, "before", "fallback"), "1.1"),
    "fallback-removing-the-old": (("unlink", 2, "before", "fallback"), "1.1"),
}


@pytest.mark.slow
@pytest.mark.parametrize("point", list(CRASH_STEPS))
def test_a_build_killed_at_any_step_of_the_swap_leaves_the_old_or_the_new_release(tmp_path: Path,
                                                                                   point: str) -> None:
    (step, nth, when, exchange), expected = CRASH_STEPS[point]
    old, new = _two_trees(tmp_path)
    releases = tmp_path / "releases"
    out = releases / "current"
    build_release(old, out, version="1.0")
    proc = subprocess.run([sys.executable, "-c", _CRASH_CHILD, str(new), str(out), "1.1", step, str(nth), when,
                           exchange], capture_output=True, text=True, timeout=120, cwd=REPO,
                          env=killable_env(tmp_path))
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr[-3000:])

    if expected is None:  # killed between the fallback's two renames: no output until the next run
        assert not out.exists()
        assert any(p.name.startswith(".current.old-") for p in releases.iterdir())
    else:
        assert _complete_version(out) == expected  # as the crash left it, before anything repairs it
    recover_dir(out)  # what the next run does first
    assert _complete_version(out) == (expected or "1.0")
    assert not [p for p in releases.iterdir() if ".old-" in p.name]

    again = build_release(new, out, version="1.2")  # the next build: complete, and nothing else left
    assert again.version == "1.2" and _complete_version(out) == "1.2"
    assert _entries(releases) == ["current"]


# --- two builds, one output ----------------------------------------------------------------------

_CONCURRENT_CHILD = """
import os, sys, time
from pathlib import Path
import vmeval_hf._shared.fs as fs
import vmeval_hf.release.build as build

data, out, version, exchange, meet = sys.argv[1:6]
if exchange == "fallback":
    fs._exchange = lambda a, b: False
name = os.path.basename(out)

def slow(real):  # every rename of the output takes half a second: wide windows to interleave in
    def wrapper(src, dst, *args, **kwargs):
        result = real(src, dst, *args, **kwargs)
        if name in (os.path.basename(os.fspath(src)), os.path.basename(os.fspath(dst))):
            time.sleep(0.5)
        return result
    return wrapper

os.rename, os.replace = slow(os.rename), slow(os.replace)
real_replace_dir = build.replace_dir

def replace_dir(*args):  # both builds reach the swap together
    Path(meet, f"{os.getpid()}").touch()
    deadline = time.monotonic() + 60
    while len(os.listdir(meet)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    return real_replace_dir(*args)

build.replace_dir = replace_dir
build.build_release(data, out, version=version, workers=1)
"""


@pytest.mark.slow
@pytest.mark.parametrize("exchange", ["exchange", "fallback"])
def test_two_builds_into_one_output_swap_one_after_the_other(tmp_path: Path, exchange: str) -> None:
    old, new = _two_trees(tmp_path)
    releases = tmp_path / "releases"
    out = releases / "current"
    build_release(old, out, version="1.0")
    meet = tmp_path / "meet"
    meet.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", _CONCURRENT_CHILD, str(tree), str(out), version, exchange,
                               str(meet)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
             for tree, version in ((old, "1.1"), (new, "1.2"))]
    try:
        results = [(p.wait(timeout=120), p.communicate()[1]) for p in procs]
    finally:  # a timeout must not leave the builds running (their pipes would warn in a later test)
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert [code for code, _ in results] == [0, 0], results
    assert len(os.listdir(meet)) == 2  # both did reach the swap at once
    assert _complete_version(out) in ("1.1", "1.2")
    assert _entries(releases) == ["current"]


# --- what a crash left ----------------------------------------------------------------------------


def test_old_folders_left_by_a_crash_are_removed_or_put_back_by_the_next_build(tmp_path: Path) -> None:
    old, new = _two_trees(tmp_path)
    releases = tmp_path / "releases"
    out = releases / "current"
    build_release(old, out, version="1.0")
    # as the previous replace_dir left them (.current.old-XXXXXXXX/current/), and this one's
    shutil.copytree(out, releases / ".current.old-k2j4xq1z" / "current")
    (releases / ".current.old-4242-a1b2c3" / "current" / "data").mkdir(parents=True)
    (releases / ".other.old-4242-a1b2c3").mkdir()  # another output's: not this build's business
    build_release(new, out, version="1.1")
    assert _entries(releases) == [".other.old-4242-a1b2c3", "current"]
    assert _complete_version(out) == "1.1"

    # a crash between the fallback's two renames left no output: the next build puts it back,
    # even one that then fails
    aside = releases / ".current.old-4343-d4e5f6"
    aside.mkdir()
    os.rename(out, aside / "current")
    (new / "questions" / "chess_task" / "chess_0001" / "first_frame.png").write_bytes(b"not a png")
    with pytest.raises(ValidationError):
        build_release(new, out, version="1.2")
    assert _complete_version(out) == "1.1"
    assert _entries(releases) == [".other.old-4242-a1b2c3", "current"]


def test_an_old_folder_is_left_alone_while_its_owner_holds_the_lock(tmp_path: Path) -> None:
    """An ``.old-`` folder exists only while its owner holds the lock, mid-swap: the owner's
    output is missing then, and must not be "put back" from under it."""
    releases = tmp_path / "releases"
    aside = releases / ".current.old-1-x" / "current"
    aside.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time
        from pathlib import Path
        from vmeval_hf._shared.fs import _locked_parent
        with _locked_parent(Path(sys.argv[1])):
            print("held", flush=True)
            time.sleep(1.5)
            Path(sys.argv[1]).mkdir()  # the owner's swap ends: its new folder is in place
            Path(sys.argv[2]).rmdir()
            Path(sys.argv[2]).parent.rmdir()
    """), str(releases / "current"), str(aside)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        recover_dir(releases / "current")  # waits for the lock: finds the owner's swap finished
    finally:
        holder.communicate(timeout=60)
    assert holder.returncode == 0
    assert _entries(releases) == ["current"] and _entries(releases / "current") == []
