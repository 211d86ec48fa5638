"""What both Ray engines share (``create --engine ray``, ``build --engine ray``): starting or
joining Ray, waiting for tasks, and the one place Ray's errors become ours.

Ray is an optional extra (``pip install 'vmeval-hf[ray]'``), imported only here, inside
:func:`import_ray`, so the package imports without it; without it, asking for the Ray engine is
a :class:`~vmeval_hf.errors.ConfigError` that says how to install it.

:func:`ray_session` joins the Ray instance this process has already started (``ray.init()`` by
the caller), or the cluster ``RAY_ADDRESS`` names, or starts a local instance; it shuts down only
what it started. The question tree and the output must be on a filesystem every worker sees at
the same path: the engines pass paths, not bytes.

Retries: each task is submitted with ``max_retries`` (:data:`MAX_RETRIES`), which Ray uses when
the worker process or its node dies; exceptions raised by our code are not retried (a problem
in the tree, a full disk: running again gives the same answer). A task writes under a name of
its own and renames into place, so a retried task overwrites what a killed attempt left with
the same bytes.

:data:`CRASH_ENV` is a test hook: when it names a folder holding a file named after a point in a
task (:func:`crash_point`), the first task to reach that point takes the file and kills its own
worker process with SIGKILL, so the tests see Ray retry a task that died mid-way.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from ..errors import ConfigError, VmevalError

log = logging.getLogger(__name__)
T = TypeVar("T")

INSTALL_HINT = "ray is not installed; install it with: pip install 'vmeval-hf[ray]'"
#: how often Ray reruns a task whose worker died (killed, out of memory, node lost)
MAX_RETRIES = 3
#: test hook (see the module docstring); read in the worker processes, which inherit it from ``ray.init``
CRASH_ENV = "VMEVAL_HF_RAY_CRASH_DIR"


#: where the work runs: this machine (forked processes where that pays), or Ray tasks
ENGINES = ("local", "ray")


def check_engine(engine: str) -> None:
    """:class:`ConfigError` unless ``engine`` is one of :data:`ENGINES` and, for ``ray``, Ray imports."""
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
    if engine == "ray":
        import_ray()


def import_ray() -> Any:
    """The ``ray`` module, or :class:`ConfigError` saying how to install it."""
    try:
        import ray  # start-up: the optional extra, ~0.8 s, only for --engine ray
    except ImportError as exc:
        raise ConfigError(INSTALL_HINT) from exc
    return ray


@contextmanager
def ray_session(num_cpus: int | None = None) -> Iterator[Any]:
    """Ray, ready for tasks: the instance this process already joined, else the cluster at
    ``RAY_ADDRESS`` (Ray's own variable), else a new local instance with ``num_cpus`` CPUs
    (default: all). Shuts Ray down on leaving only if it was started here."""
    ray = import_ray()
    if ray.is_initialized():
        log.info("ray: using the Ray instance this process already joined")
        yield ray
        return
    address = os.environ.get("RAY_ADDRESS")
    unreachable = _unreachable(address) if address else None
    if unreachable:  # else ray.init keeps trying for minutes
        raise ConfigError(f"cannot reach the Ray cluster at {address} (RAY_ADDRESS): {unreachable}; start it "
                          "with `ray start --head` and set RAY_ADDRESS to its address, or unset RAY_ADDRESS "
                          "to run on a local Ray instance")
    try:
        if address:
            log.info("ray: connecting to the cluster at %s (RAY_ADDRESS)", address)
            ray.init(address=address, log_to_driver=False)
        else:
            log.info("ray: starting a local instance with %s CPUs", num_cpus or os.cpu_count())
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address} (RAY_ADDRESS)" if address else "a local Ray instance"
        raise ConfigError(f"cannot start or join {where}: {exc}; start the cluster with `ray start --head` "
                          "and set RAY_ADDRESS to its address, or unset RAY_ADDRESS to run locally") from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def _unreachable(address: str) -> str | None:
    """Why nothing answers at a ``host:port`` address, or None (also for ``ray://`` and ``auto``,
    left to ``ray.init``)."""
    if "://" in address or ":" not in address:
        return None
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except ValueError:
        return f"{port!r} is not a port number"
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def gather(ray: Any, refs: Sequence[Any], what: str, error: type[VmevalError]) -> list[Any]:
    """``ray.get(refs)``, with Ray's errors translated: an error our code raised in a task is
    raised as itself; a task that failed otherwise (its worker died more than
    :data:`MAX_RETRIES` times, the cluster went away) is ``error`` naming ``what``."""
    try:
        return list(ray.get(list(refs)))
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, VmevalError):
            raise exc.cause from None
        raise error(f"a Ray task for {what} failed: {type(exc.cause).__name__}: {exc.cause}; "
                    "fix the cause and run again (the worker logs are under /tmp/ray/session_latest/logs)"
                    ) from exc
    except ray.exceptions.RayError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise error(f"a Ray task for {what} did not finish ({type(exc).__name__}: {first}); "
                    f"it is retried {MAX_RETRIES} times when its worker dies: check the cluster's memory, "
                    "disks and nodes, then run again") from exc


def as_completed(ray: Any, pending: dict[Any, T], what: Callable[[T], str], error: type[VmevalError]
                 ) -> Iterator[tuple[T, Any]]:
    """``(key, result)`` for each of the ``{ref: key}`` tasks ``pending``, as they finish; the
    first failure is raised as :func:`gather` does (``what(key)`` names the task), and the tasks
    still running then are cancelled, so nothing more writes into a folder about to be removed."""
    pending = dict(pending)
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            key = pending[ready[0]]
            value = gather(ray, ready, what(key), error)[0]
            del pending[ready[0]]
            yield key, value
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)


def crash_point(name: str) -> None:
    """The test hook: kill this worker if the folder in :data:`CRASH_ENV` holds a file ``name``
    (taken first, by rename, so exactly one attempt dies)."""
    folder = os.environ.get(CRASH_ENV)
    if not folder:
        return
    try:
        os.rename(os.path.join(folder, name), os.path.join(folder, f"{name}.taken"))
    except OSError:
        return
    os.kill(os.getpid(), signal.SIGKILL)
