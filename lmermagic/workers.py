"""Work spread over worker processes, each with its own R.

A job is a list of tasks and two module-level functions: ``setup(payload)``
runs once in each process and returns its state (start R there, load what the
payload names: the data are shipped once, not with every task), and
``work(state, task)`` runs once per task. Workers are fresh interpreters
started from lmermagic's own entry point (:mod:`lmermagic.spawn`; forking a
process that runs R is unsafe, and the caller's ``__main__`` is never
re-imported: a script without a main guard, or read from stdin, works) that
import lmermagic and start their own R; only what pickles crosses, never an R
object.
Results come back as they complete; with one worker everything runs here, in
task order, and nothing is pickled.

The processes come from the session's pool (:mod:`lmermagic.pool`): warm
workers kept from an earlier job first, new ones for the rest; each loads
this job's state (``setup(payload)``) and gives it up when the job is over.
:func:`plan_workers` says whether workers would pay off for the work left,
from a measured time per task and the pool's state. A new job that may run
on workers (a power simulation, say) calls ``run_tasks(..., workers=n)``,
after ``plan_workers`` if it can time a first piece of its work here.

:class:`Worker` is one such process kept for tasks one at a time, that can be
ended at any moment: on Ctrl-C or a timeout the process is killed, whatever
its R is doing (native code included), and the next task starts a new one.

A job's progress: ``with progress(total, desc, unit="fit") as bar`` and
``bar.update(n, failed=k)`` per finished task (:mod:`lmermagic.tally`, shown
through the display the entry layer installs); ``run_tasks(..., idle=bar.refresh)``
keeps its clock moving while worker processes run.

The number of workers must not change a result: draw random numbers before
the work is split (the bootstrap simulates every response first) or seed each
task from the task itself, never from the process that runs it.
"""

from __future__ import annotations

import math
import os
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any, TypeVar

from .pool import Worker, WorkerDied, get_pool
from .tally import progress

__all__ = ["Plan", "Worker", "WorkerDied", "chunks", "get_pool", "plan_workers", "progress",
           "run_tasks"]

P = TypeVar("P")
S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")


def chunks(n: int, pieces: int) -> list[tuple[int, int]]:
    """Items 1..n as about ``pieces`` runs ``(first, last)``, 1-based and inclusive."""
    size = max(1, math.ceil(n / pieces))
    return [(a, min(a + size - 1, n)) for a in range(1, n + 1, size)]


def run_tasks(work: Callable[[S, T], R], tasks: Sequence[T], done: Callable[[T, R], None], *,
              setup: Callable[[P], S], payload: P, workers: int = 1,
              timeout: float | None = None,
              died: Callable[[T, WorkerDied], None] | None = None,
              idle: Callable[[], None] | None = None) -> None:
    """Call ``done(task, work(state, task))`` for every task, as each completes.

    ``state`` is ``setup(payload)``, computed once per process. With
    ``workers > 1``, ``work``, ``setup`` and ``payload`` must pickle (functions
    at module level) and up to ``workers`` processes of the session's pool run
    the tasks (warm ones first); ``idle()`` is called at least four times a
    second while they run (a progress line's clock: ``bar.refresh``). An error
    in a task or in ``done``, Ctrl-C, or ``timeout`` seconds (TimeoutError)
    kill at once every worker process that is running a task or loading the
    job, whatever it is doing (the tasks they were running are lost), and the
    error is raised; idle ones, and ones still starting, go back to the pool.
    A worker that dies during a task raises :class:`WorkerDied`, or, with ``died``, is reported as
    ``died(task, exc)`` and replaced, and the other tasks go on.
    """
    if workers == 1:
        state = setup(payload)
        for task in tasks:
            done(task, work(state, task))
        return
    todo = list(reversed(tasks))
    load = pickle.dumps(("load", setup, payload), pickle.HIGHEST_PROTOCOL)  # fails here
    job = object()
    pool = get_pool()
    team, warm = pool.acquire(max(1, min(workers, len(todo))))
    kept = set(team[:warm])  # a kept worker found dead as the job loads is replaced, once
    busy: dict[Worker, T] = {}
    deadline = None if timeout is None else time.monotonic() + timeout

    def replace(w: Worker, exc: WorkerDied) -> None:
        """A worker's process ended: report its task (or raise), take another."""
        proc = w._proc
        if proc is not None:
            proc.join(1)
        exc = WorkerDied(None if proc is None else proc.exitcode)
        if w in busy and died is not None:
            died(busy.pop(w), exc)
        elif w in busy or w not in kept:
            raise exc
        kept.discard(w)
        w.stop()
        team[team.index(w)] = pool.acquire(1)[0][0]

    try:
        while todo or busy:
            for w in list(team):
                try:
                    if w._ready and w.job is not job and todo:
                        w.load(load, job)
                    elif w._ready and w not in busy and todo:
                        busy[w] = todo.pop()
                        w._send(("task", work, busy[w], None))
                except WorkerDied as exc:
                    replace(w, exc)
            handles: dict[Any, Worker] = {}
            for w in team:
                if w in busy or not w._ready:
                    handles.update(dict.fromkeys(w._handles(), w))
            left = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
            if left <= 0:
                raise TimeoutError(f"the worker processes were stopped after {timeout:g} s")
            for h in wait(list(handles), left):
                w = handles[h]
                if w not in team:
                    continue  # replaced since
                assert w._conn is not None
                if not w.alive and not w._conn.poll():
                    replace(w, WorkerDied(None))
                    continue
                if h is not w._conn:
                    continue
                try:
                    status, value = w._conn.recv()
                except (EOFError, ConnectionResetError):
                    replace(w, WorkerDied(None))
                    continue
                if not w._ready:  # its start-up or this job's load answered
                    if status != "ok":
                        raise value
                    w._answered()
                    continue
                task = busy.pop(w)
                if status != "ok":
                    raise value
                done(task, value)
            if idle is not None:
                idle()
        _finish_loads(team, job)
    finally:
        for w in team:  # a task or a load under way may run long: killed, never kept
            if w in busy or (not w._ready and w.job is not None):
                w.stop()
        pool.release(team)


def _finish_loads(team: list[Worker], job: object) -> None:
    """Workers still loading the job when its last task is done: their answer
    is awaited a moment (1 s in all), so that they stay warm for the next job."""
    grace = time.monotonic() + 1.0
    for w in team:
        if not w._ready and w.job is job and w._conn is not None:
            try:
                if w._conn.poll(max(0.0, grace - time.monotonic())) and \
                        w._conn.recv()[0] == "ok":
                    w._answered()
            except (EOFError, OSError):
                pass


@dataclass(frozen=True)
class Plan:
    """Whether worker processes pay off for the work left: ``workers`` to use
    (0: run it here), why (``reason``), and the estimates in seconds."""

    workers: int
    reason: str
    estimate: dict[str, float] = field(default_factory=dict)


# A task's cost beyond its work: pickling it and its result, one R call.
TASK_SECONDS = 0.008


def plan_workers(left: int, per_task: float, max_workers: int, *, tasks: int | None = None,
                 cpu_share: float = 1.0, load_seconds: float = 0.0) -> Plan:
    """Whether up to ``max_workers`` of the pool's processes would finish
    ``left`` units of work (models, refits, simulations) sooner than this
    process, and how many.

    ``per_task`` is the wall time a unit took here (measured on a first
    piece), ``tasks`` how many tasks the units make (default ``left``),
    ``cpu_share`` the share of a core this process had while it was measured
    (CPU time / wall time: below 1 on a loaded machine) and ``load_seconds``
    what loading the job costs a worker (shipping and reading its data).

    Here: ``left * per_task``. On ``w`` workers: the start-up of the cold ones
    (the pool's measured start-up; warm ones pay none) + ``load_seconds`` +
    the work, spread over ``w`` processes but never over more cores than the
    machine gives (the other processes that compete for them are counted from
    ``cpu_share``) + ``TASK_SECONDS`` per task. Workers are used when the
    best ``w`` saves at least 10 % and 0.2 s."""
    pool = get_pool()
    warm, start = pool.warm(), pool.start_seconds()
    cores = _cores()
    share = min(1.0, max(0.05, cpu_share))
    others = max(0.0, cores / share - 1) if share < 0.9 else 0.0
    here = left * per_task
    tasks = left if tasks is None else tasks
    est = {"here": here, "per_task": per_task, "start": start, "warm": float(warm),
           "cores": float(cores), "cpu_share": share}
    best, best_s = 0, here
    for w in range(2, max_workers + 1) if max_workers >= 2 else ():
        speed = w * min(1.0, cores / (others + w))  # cores' worth the w workers get
        cold = max(0, w - warm)
        secs = ((start if cold else 0.0) + load_seconds
                + (here * share + tasks * TASK_SECONDS) / speed)
        est[f"workers_{w}"] = secs
        if secs < best_s:
            best, best_s = w, secs
    if max_workers < 2:
        return Plan(0, "one worker asked for: fitted here", est)
    if best and best_s <= 0.9 * here and here - best_s >= 0.2:
        warm_used = min(best, warm)
        how = ("warm" if warm_used == best else
               f"{warm_used} warm, {best - warm_used} to start ({start:.1f} s each)")
        return Plan(best, f"{best} workers ({how}): about {best_s:.1f} s against "
                          f"{here:.1f} s here", est)
    return Plan(0, f"here: about {here:.1f} s, workers would take "
                   f"{min(v for k, v in est.items() if k.startswith('workers_')):.1f} s "
                   f"({warm} warm, {start:.1f} s to start one)", est)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
