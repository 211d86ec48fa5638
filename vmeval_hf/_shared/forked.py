"""Run jobs in forked child processes, one fresh child per job, at most ``workers`` at a time.

Why not ``ProcessPoolExecutor``: a pool keeps each worker for many jobs, so a worker's
memory is the high-water mark of every job it ran; and with the fork start method the
pool cannot recycle workers (``max_tasks_per_child`` refuses ``fork``). Here a child
compiles one job and exits, so the memory of a job is returned when it ends, and the
children inherit the parent's imported modules without importing them again.

Each child sends back its pickled result (or exception) through a pipe, then closes it, so
the next child can start while this one's memory is torn down (it is reaped at the end). A
child that dies before its whole answer is in (killed, out of memory) raises
:class:`BuildError` naming the job. If
the parent is interrupted, every running child is killed and reaped before the exception
propagates, so no child outlives the call.
"""

from __future__ import annotations

import gc
import os
import pickle
import selectors
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple, TypeVar

from ..errors import BuildError

T = TypeVar("T")


#: below this many question folders, forking workers costs more than it saves (scripts/bench_build.py)
PARALLEL_MIN_QUESTIONS = 400


def plan_workers(requested: int | None, sizes: dict[str, int]) -> int:
    """How many processes to work in: forked workers only where that is safe and pays.

    ``requested``: the caller's ``--workers`` (None: 2 on 2+ cores); ``sizes``: the number of
    entries in each job's folder (a domain). A small tree (under :data:`PARALLEL_MIN_QUESTIONS`
    folders) is done in this process unless workers were asked for, and so is any tree when this
    process runs other threads (see :func:`fork_available`).
    """
    n = requested if requested is not None else min(2, os.cpu_count() or 1)
    if requested is None and sum(sizes.values()) < PARALLEL_MIN_QUESTIONS:
        n = 1
    if n <= 1 or len(sizes) <= 1 or not fork_available():
        return 1
    return min(n, len(sizes))


def folder_count(path: str) -> int:
    """How many entries the folder ``path`` holds (0 if it cannot be listed: the checks say why)."""
    try:
        with os.scandir(path) as it:
            return sum(1 for _ in it)
    except OSError:
        return 0


def fork_available() -> bool:
    """Forking is safe only from a single-threaded process (a fork copies locks held by other threads)."""
    return hasattr(os, "fork") and threading.active_count() == 1


def _child(job: Callable[[], Any], fd: int) -> None:
    """In the child: run ``job``, write the pickled outcome to ``fd``, and leave without
    running any of the parent's clean-up (atexit handlers, buffered output)."""
    code = 0
    try:
        try:
            payload = pickle.dumps((True, job()), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:  # noqa: BLE001  (sent to the parent, which re-raises it)
            code = 1
            try:
                payload = pickle.dumps((False, exc), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # noqa: BLE001  (an exception that cannot be pickled)
                payload = pickle.dumps((False, BuildError(f"{type(exc).__name__}: {exc}")))
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view):]
        os.close(fd)  # the parent sees the end now, not after this process's memory is torn down
    except BaseException:  # noqa: BLE001
        code = 2
    finally:
        os._exit(code)


def run_forked(jobs: Sequence[tuple[str, Callable[[], T]]], workers: int,
               on_idle: Callable[[list[T]], None] | None = None,
               on_start: Callable[[], None] | None = None) -> list[T]:
    """Run each ``(name, job)`` in its own forked child, at most ``workers`` at once, in the
    given order; return the results in that order.

    ``on_idle`` runs here whenever this process would otherwise only wait for children: once
    every job has started, and again after each result that comes in while children still run,
    given the results finished so far (in job order). Work that does not have to happen in the
    children goes there: it shares the cores with the last children instead of following them.
    ``on_start`` runs here once, as soon as the first children have started: for work this
    process would otherwise do after them, such as imports only it needs.
    """
    results: list[Any] = [None] * len(jobs)
    finished: list[int] = []

    def idle() -> None:
        assert on_idle is not None
        on_idle([results[i] for i in sorted(finished)])

    for index, value in _forked(jobs, workers, on_start, idle if on_idle is not None else None):
        results[index] = value
        finished.append(index)
    return results


def run_forked_as_done(jobs: Iterable[tuple[str, Callable[[], T]]], workers: int) -> Iterator[tuple[int, T]]:
    """Run each ``(name, job)`` in its own forked child, at most ``workers`` at once, in the given
    order; yield ``(index, result)`` for each as it finishes (``index``: its place in ``jobs``).

    Unlike :func:`run_forked`, this process holds neither every job nor every result at once:
    a job is taken from ``jobs`` only when a child is (about to be) free for it (so its inputs are
    made then), and each result is handed on as it comes in. For work in many small jobs whose
    inputs and results together grow with the tree. Exhaust or close the iterator: closing it
    early kills and reaps the children still running, as an interruption does.
    """
    return _forked(jobs, workers)


def _forked(jobs: Iterable[tuple[str, Callable[[], T]]], workers: int, on_start: Callable[[], None] | None = None,
            on_idle: Callable[[], None] | None = None) -> Iterator[tuple[int, T]]:
    """What :func:`run_forked` and :func:`run_forked_as_done` share: the children started, at
    most ``workers`` at once, and ``(index, result)`` yielded as each finishes. ``on_start``: once,
    after the first children start; ``on_idle``: once every job has started (one job is taken
    ahead, so that is known as the last starts), and again after each result while children run."""
    todo = iter(enumerate(jobs))
    ahead = next(todo, None)  # the next job to start, taken one early
    running: dict[int, _Running] = {}  # read fd -> the child writing to it
    names: dict[int, str] = {}  # job index -> name, while it runs
    exiting: list[int] = []  # children that answered and are exiting, reaped at the end
    sel = selectors.DefaultSelector()
    # Objects that exist now are shared with every child until written to; the collector would
    # write to all of them (and so copy every page) on its first full pass in a child.
    gc.freeze()
    try:
        idle_seen, done_count = -1, 0  # results when on_idle last ran (-1: not yet); results so far
        while ahead is not None or running:
            while ahead is not None and len(running) < max(1, workers):
                index, (names[index], job) = ahead
                fd, pid = _spawn(job)
                running[fd] = _Running(index, pid, bytearray())
                sel.register(fd, selectors.EVENT_READ)
                del ahead, job  # the job's inputs are the child's now
                ahead = next(todo, None)
            if on_start is not None:
                on_start()
                on_start = None
            if on_idle is not None and ahead is None and idle_seen < done_count:
                idle_seen = done_count
                on_idle()
            for key, _ in sel.select():
                done = _read(key.fd, sel, running)
                if done is not None:
                    exiting[:] = _reap_exited(exiting)  # many jobs: no zombie kept for each to the end
                    exiting.append(done.pid)  # the next child can start while this one exits
                    done_count += 1
                    yield done.index, _outcome(names.pop(done.index), done.data, done.pid)
    except BaseException:  # an interruption, a failed job, or the consumer closing early
        _kill(running)
        raise
    finally:
        sel.close()
        gc.unfreeze()
        _reap(exiting)


class _Running(NamedTuple):
    """A child at work: its job's index, its pid, the bytes of its answer so far."""

    index: int
    pid: int
    data: bytearray


def _spawn(job: Callable[[], Any]) -> tuple[int, int]:
    """Fork a child that runs ``job``; the read end of the pipe it answers through, and its pid."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _child(job, w)
    os.close(w)
    return r, pid


def _read(fd: int, sel: selectors.BaseSelector, running: dict[int, _Running]) -> _Running | None:
    """Read what the child on ``fd`` has sent; once its answer is whole (the pipe is closed), stop
    watching ``fd`` and return the child, no longer running."""
    chunk = os.read(fd, 1 << 20)
    if chunk:
        running[fd].data.extend(chunk)
        return None
    sel.unregister(fd)
    os.close(fd)
    return running.pop(fd)


def _kill(running: dict[int, _Running]) -> None:
    """Kill and reap every child still running (the parent was interrupted)."""
    for fd, child in running.items():
        try:
            os.kill(child.pid, signal.SIGKILL)
            os.waitpid(child.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass  # already gone
        os.close(fd)


def _reap(pids: list[int]) -> None:
    """Wait for children that have answered and are exiting."""
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass  # reaped already (by _outcome)


def _reap_exited(pids: list[int]) -> list[int]:
    """Reap those of ``pids`` that have exited; the others, still exiting."""
    left = []
    for pid in pids:
        try:
            if os.waitpid(pid, os.WNOHANG) == (0, 0):
                left.append(pid)
        except ChildProcessError:
            pass  # reaped already
    return left


def _outcome(name: str, data: bytearray, pid: int) -> Any:
    """The child's answer; a child that died before giving all of it (nothing, or bytes that do
    not unpickle) is a :class:`BuildError` with how it ended."""
    try:
        ok, value = pickle.loads(data)
    except Exception:  # noqa: BLE001  (empty or cut short: the child died while writing)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        raise BuildError(f"the worker process for {name} {how} before finishing; "
                         "check free memory and disk space, then run the command again") from None
    if not ok:
        raise value
    return value
