"""``--engine ray`` on a real local Ray instance (2 CPUs, started once, for this file): create and
build give the bytes the local engine gives, also when a task's worker is killed mid-way and Ray
runs the task again; an invalid tree fails with the same problems; without ray installed the
engine is one line saying how to install it. How fast it is belongs to the benchmarks.

Ray binds its servers to the machine's network address, not to 127.0.0.1, so where a
loopback-only network namespace can be made, this file runs in one, started by
``tests/test_ray_loopback.py`` (and is skipped in the suite's own processes)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from click.testing import CliRunner

from tests.support import netns
from vmeval_hf._shared.ray_runtime import CRASH_ENV, INSTALL_HINT, gather
from vmeval_hf.cli import cli
from vmeval_hf.errors import BuildError, ConfigError, ValidationError
from vmeval_hf.generate import create_dataset
from vmeval_hf.release.build import build_release
from vmeval_hf.release.ray_engine import _write_shard, plan_shards

if not netns.inside() and netns.available():
    pytest.skip("run by tests/test_ray_loopback.py in a loopback-only network namespace", allow_module_level=True)

PAIRS = 6  # per domain: 4 batches of 2 on Ray (vmeval_hf.generate.ray_engine.batch_size)
SEED = 11
SHARD = "120KB"  # a few questions per shard: several shards per domain


@pytest.fixture(scope="module")
def ray_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The one local 2-CPU Ray instance of the run; the folder its workers look in for the crash hook.

    Started once, for this file (the only one using Ray), and shut down at its end: a process that
    has joined Ray runs Ray's threads, and the build forks its workers only from a single-threaded
    process, so the files a pytest-xdist worker runs after this one must not inherit them."""
    crash_dir = tmp_path_factory.mktemp("ray-crash")
    before = os.environ.get(CRASH_ENV)
    threads = set(threading.enumerate())
    os.environ[CRASH_ENV] = str(crash_dir)  # before ray.init: the workers inherit it
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield crash_dir
    finally:
        ray.shutdown()
        assert set(threading.enumerate()) <= threads, "Ray left threads running"
        if before is None:
            os.environ.pop(CRASH_ENV, None)
        else:
            os.environ[CRASH_ENV] = before


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data folder of a tree made by the local engine, and its release built locally."""
    data = tmp_path_factory.mktemp("local")
    create_dataset(data / "questions", pairs_per_domain=PAIRS, seed=SEED)
    run("build", "--data-dir", data, "--out", data / "release", "--version", "1.0", "--repo", "org/q",
        "--max-shard-size", SHARD, "--json")
    return data


def run(*args: object) -> dict:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if "--json" in args else {}


def files(root: Path) -> dict[str, str]:
    """Every file under ``root`` (hidden ones too) and the sha256 of its bytes."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def create_on_ray(out: Path) -> None:
    run("create", "--engine", "ray", "--pairs-per-domain", PAIRS, "--seed", SEED, "--output-dir", out)


def build_on_ray(data: Path, out: Path) -> dict:
    return run("build", "--engine", "ray", "--data-dir", data, "--out", out, "--version", "1.0", "--repo", "org/q",
               "--max-shard-size", SHARD, "--json")


def test_create_on_ray_writes_the_local_engines_bytes(ray_instance: Path, local: Path, tmp_path: Path) -> None:
    create_on_ray(tmp_path / "questions")
    mine = files(tmp_path / "questions")
    assert mine == files(local / "questions")
    assert len(mine) == 5 * PAIRS * 4 + 1  # four files per question, and the manifest: no work folders left


def test_build_on_ray_writes_the_local_engines_bytes(ray_instance: Path, local: Path, tmp_path: Path) -> None:
    summary = build_on_ray(local, tmp_path / "release")
    assert files(tmp_path / "release") == files(local / "release")
    manifest = json.loads((local / "release" / "vmeval_release.json").read_text())
    assert summary["content_sha256"] == manifest["content_sha256"]
    assert summary["shards"] == len(manifest["shards"]) > 2 * 5  # several shards per domain: one task each
    assert [p.name for p in tmp_path.iterdir()] == ["release"]  # no temp folder left beside it


def test_a_task_killed_mid_way_is_run_again_with_the_same_bytes(ray_instance: Path, local: Path,
                                                                tmp_path: Path) -> None:
    for point in ("create-batch", "build-shard"):  # each: the first task to get there SIGKILLs its worker
        (ray_instance / point).touch()
    create_on_ray(tmp_path / "data" / "questions")
    summary = build_on_ray(tmp_path / "data", tmp_path / "release")
    # the worker did die (after moving a question folder, after renaming a shard into place) ...
    assert sorted(p.name for p in ray_instance.iterdir()) == ["build-shard.taken", "create-batch.taken"]
    # ... and Ray ran its task again, over what it left
    assert files(tmp_path / "data" / "questions") == files(local / "questions")
    assert files(tmp_path / "release") == files(local / "release")
    assert summary["content_sha256"] == json.loads((local / "release" / "vmeval_release.json").read_text())[
        "content_sha256"]
    for name in os.listdir(ray_instance):
        os.remove(ray_instance / name)


def test_an_invalid_tree_fails_on_ray_with_the_local_engines_problems(ray_instance: Path, local: Path,
                                                                     tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(local / "questions", data / "questions")
    (data / "questions" / "maze_task" / "maze_0003" / "first_frame.png").write_bytes(b"\x89PNG not a frame")
    (data / "questions" / "sudoku_task" / "sudoku_0001" / "prompt.txt").write_bytes(b"")
    found = []
    for engine in ("local", "ray"):
        with pytest.raises(ValidationError) as err:
            build_release(data, tmp_path / engine, version="1.0", max_shard_size=SHARD, engine=engine)
        found.append([(p.path, p.code, p.severity) for p in err.value.problems])
    assert found[0] == found[1] and len(found[0]) >= 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # nothing left behind


def test_a_shard_whose_questions_changed_since_the_listing_is_refused(local: Path, tmp_path: Path) -> None:
    qdir = tmp_path / "questions"
    shutil.copytree(local / "questions", qdir)
    folders = sorted(str(p) for p in (qdir / "maze_task").iterdir())
    plan = plan_shards(folders, "maze", 10**9)[0]
    scratch = tmp_path / "release" / ".sources"
    (qdir / "maze_task" / "maze_0002" / "prompt.txt").write_text("Move the dot to the flag, quickly.")
    with pytest.raises(BuildError, match=r"^the questions of data/maze/test-00000-of-00001.parquet changed while"):
        _write_shard(qdir, False, None, tmp_path / "release", scratch, plan, 10**9)
    plan = plan_shards(folders, "maze", 10**9)[0]  # one shard, but the writer is given a smaller limit
    with pytest.raises(BuildError, match=r"did not come out as planned .*: a bug in the Ray engine"):
        _write_shard(qdir, False, None, tmp_path / "release", scratch, plan, 50_000)
    assert not (tmp_path / "release" / "data").exists()  # nothing was renamed into place


def test_a_tasks_error_is_ours_and_others_are_translated(ray_instance: Path) -> None:
    def refuses() -> None:
        raise ValidationError("maze_0003: not a PNG", domain="maze")

    def breaks() -> None:
        raise KeyError("width")

    ours = ray.remote(max_retries=0)(refuses).remote()
    with pytest.raises(ValidationError, match="^maze_0003: not a PNG$") as err:
        gather(ray, [ours], "shard data/maze/x.parquet", BuildError)
    assert err.value.domain == "maze"
    other = ray.remote(max_retries=0)(breaks).remote()
    with pytest.raises(BuildError, match=r"^a Ray task for shard data/maze/x.parquet failed: KeyError: 'width'; "):
        gather(ray, [other], "shard data/maze/x.parquet", BuildError)


def test_a_task_whose_worker_dies_every_time_is_one_error_naming_it(ray_instance: Path) -> None:
    """Ray reruns a task whose worker died; when every attempt dies, the retries run out: the error
    is ours, names the task and says what to check (not Ray's traceback)."""
    import signal

    def dies() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    crashed = ray.remote(max_retries=1)(dies).remote()
    with pytest.raises(BuildError, match=r"^a Ray task for shard data/maze/x.parquet did not finish \("
                                         r"WorkerCrashedError: .*it is retried 3 times when its worker dies: "
                                         r"check the cluster's memory"):
        gather(ray, [crashed], "shard data/maze/x.parquet", BuildError)


def test_an_unknown_engine_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown engine 'spark'; use one of local, ray"):
        create_dataset(tmp_path / "q", pairs_per_domain=1, engine="spark")
    with pytest.raises(ConfigError, match="unknown engine 'spark'"):
        build_release(tmp_path, tmp_path / "r", version="1.0", engine="spark")
    assert list(tmp_path.iterdir()) == []


#: the CLI in a Python where ``import ray`` fails, as it does where the extra is not installed
_WITHOUT_RAY = ("import sys; sys.modules['ray'] = None; from vmeval_hf.cli import main; "
                "sys.argv[0] = 'vmeval-hf'; main()")


@pytest.mark.parametrize("command", ["create", "build"])
def test_without_ray_the_engine_is_one_line_saying_how_to_install_it(command: str, local: Path,
                                                                    tmp_path: Path) -> None:
    args = {"create": ["create", "--pairs-per-domain", "1", "--output-dir", str(tmp_path / "q")],
            "build": ["build", "--data-dir", str(local), "--out", str(tmp_path / "r"), "--version", "1.0"]}[command]
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    out = subprocess.run([sys.executable, "-c", _WITHOUT_RAY, *args, "--engine", "ray"], capture_output=True,
                         text=True, timeout=120, env=env)
    assert out.returncode == 1
    assert out.stderr == f"ERROR: {INSTALL_HINT}\n"
    assert out.stdout == ""
    assert list(tmp_path.iterdir()) == []  # nothing was started


def test_build_joins_the_cluster_ray_address_names(local: Path, tmp_path: Path) -> None:
    """A Ray cluster of its own (a head node started for this test, stopped after it), named by
    ``RAY_ADDRESS``: ``build --engine ray`` in another process joins it, says so, and writes the
    local engine's bytes."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    address = cluster.address
    try:
        env = {**{k: v for k, v in os.environ.items() if k != CRASH_ENV}, "RAY_ADDRESS": address}
        out = subprocess.run([sys.executable, "-m", "vmeval_hf", "--debug", "build", "--engine", "ray",
                              "--data-dir", str(local), "--out", str(tmp_path / "release"), "--version", "1.0",
                              "--repo", "org/q", "--max-shard-size", SHARD], capture_output=True, text=True,
                             timeout=300, env=env)
    finally:
        cluster.shutdown()
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"ray: connecting to the cluster at {address} (RAY_ADDRESS)" in out.stderr
    assert files(tmp_path / "release") == files(local / "release")


def test_a_cluster_that_does_not_answer_is_one_line(local: Path, tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if k != CRASH_ENV}, "RAY_ADDRESS": "127.0.0.1:1"}
    out = subprocess.run([sys.executable, "-m", "vmeval_hf", "build", "--engine", "ray", "--data-dir", str(local),
                          "--out", str(tmp_path / "r"), "--version", "1.0"], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 1
    assert out.stderr.startswith("ERROR: cannot reach the Ray cluster at 127.0.0.1:1 (RAY_ADDRESS): ")
    assert out.stderr.count("\n") == 1 and "unset RAY_ADDRESS" in out.stderr
    assert list(tmp_path.iterdir()) == []
