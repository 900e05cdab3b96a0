"""Work spread over a Dask cluster, as :func:`lmermagic.workers.run_tasks`
spreads it over local processes.

Dask's workers are processes of their own (a ``LocalCluster``, or a cluster
on a batch system through dask-jobqueue), so each one starts its own R the
first time a task reaches it. The payload goes to every worker once
(``scatter(..., broadcast=True)``) and ``setup(payload)`` runs once per worker
process and job; each task then sends only its own small description, and
its result comes back as plain Python values. Dask is optional: only this
module imports it, and only when a job is sent to a cluster.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .workers import WorkerDied

__all__ = ["local_cluster", "require_distributed", "run_on_dask"]

# Dask raises one or the other, by release, for a future cancelled.
_CANCELLED = (asyncio.CancelledError, concurrent.futures.CancelledError)

_INSTALL = ("Dask's distributed scheduler is not installed: pip install 'lmermagic[dask]' "
            "(or pip install dask distributed).")


def require_distributed() -> Any:
    """The ``distributed`` module, or ImportError saying what to install."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(_INSTALL) from exc
    return distributed


def local_cluster(workers: int) -> Any:
    """A ``distributed.Client`` on a new ``LocalCluster`` of ``workers``
    processes with one thread each (R runs one call at a time per process).
    The caller closes it, and its cluster with it."""
    distributed = require_distributed()
    # A task that kills its worker fails at once (KilledWorker), and with it
    # only the tasks that worker held, rather than being tried on three more
    # workers, taking their tasks and the job's payload with them;
    # run_on_dask runs the tasks that failed so again, one at a time.
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                       processes=True, dashboard_address=None,
                                       scheduler_kwargs={"allowed_failures": 0})
    return distributed.Client(cluster, set_as_default=False)


@dataclass(frozen=True)
class _Shipped:
    """What every worker receives once: the job's setup and its payload."""

    token: str
    setup: Callable[[Any], Any]
    payload: Any


# The states of the jobs this worker process has set up, newest last: one
# job at a time is the rule, two cover a job starting while one drains.
_STATES: dict[str, Any] = {}
_KEEP_STATES = 2


def _task(shipped: _Shipped, work: Callable[[Any, Any], Any], task: Any) -> Any:
    state = _STATES.get(shipped.token)
    if state is None:
        with warnings.catch_warnings():
            # rpy2 cannot install its Ctrl-C handler outside the main thread; a
            # Dask worker stops its tasks itself.
            warnings.simplefilter("ignore", RuntimeWarning)
            state = shipped.setup(shipped.payload)
        _STATES[shipped.token] = state
        while len(_STATES) > _KEEP_STATES:
            _STATES.pop(next(iter(_STATES)))
    return work(state, task)


def run_on_dask(work: Callable[[Any, Any], Any], tasks: Sequence[Any],
                done: Callable[[Any, Any], None], *, setup: Callable[[Any], Any],
                payload: Any, client: Any, timeout: float | None = None,
                died: Callable[[Any, WorkerDied], None] | None = None,
                idle: Callable[[], None] | None = None) -> None:
    """As :func:`lmermagic.workers.run_tasks`, on the workers of ``client``.

    An error in a task or in ``done``, Ctrl-C or ``timeout`` seconds
    (TimeoutError) cancel every task not yet finished, and the error is
    raised. A task already running on a worker finishes there (Dask cannot
    stop a running task short of restarting the worker, which would end
    other users' work on a shared cluster), so keep tasks short.

    A task whose worker process dies (Dask's KilledWorker, or the shipped
    payload lost with the workers that held it) is not yet to blame: every
    task the dead worker held fails with it. Those tasks run again, the
    payload shipped again if it was lost, and a task that still fails this
    way when it runs alone raises :class:`WorkerDied`, or, with ``died``, is
    reported as ``died(task, exc)`` and the other tasks go on.
    """
    require_distributed()
    job = _Job(client, _Shipped(uuid.uuid4().hex, setup, payload),
               None if timeout is None else time.monotonic() + timeout, timeout, idle)
    try:
        suspects, lost = job.run(work, list(tasks), done)
        if lost:  # cancelled with the lost payload before they ran: once more, together
            again, lost = job.run(work, lost, done)
            suspects += again + lost
        for task in suspects:
            killed, lost = job.run(work, [task], done)
            if killed or lost:
                exc = WorkerDied(None, "the Dask worker process died (it ran this task alone)")
                if died is None:
                    raise exc
                died(task, exc)
    finally:
        job.close()


class _Job:
    """One job's tasks on a cluster, in rounds of tasks run together."""

    def __init__(self, client: Any, shipped: _Shipped, deadline: float | None,
                 timeout: float | None, idle: Callable[[], None] | None) -> None:
        self.client, self.shipped, self.deadline = client, shipped, deadline
        self.timeout, self.idle = timeout, idle
        self.scattered: list[Any] = []

    def payload(self) -> Any:
        """The payload's future on the cluster, shipped again if it was lost."""
        if not self.scattered or self.scattered[-1].status != "finished":
            self.scattered.append(self.client.scatter(self.shipped, broadcast=True, hash=False))
        return self.scattered[-1]

    def run(self, work: Callable[[Any, Any], Any], tasks: list[Any],
            done: Callable[[Any, Any], None]) -> tuple[list[Any], list[Any]]:
        """Run ``tasks`` together; the tasks whose worker died (KilledWorker)
        and those cancelled because the payload was lost, in task order."""
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        client = self.client
        shipped = self.payload()
        futures = [client.submit(_task, shipped, work, task, pure=False) for task in tasks]
        which = {fut.key: i for i, fut in enumerate(futures)}
        killed: list[int] = []
        lost: list[int] = []
        try:
            pending = as_completed(futures, loop=client.loop)
            while not pending.is_empty():
                left = None if self.deadline is None else self.deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"the Dask tasks were cancelled after {self.timeout:g} s")
                batch = pending.next_batch(block=False)
                if self.idle is not None:
                    self.idle()
                if not batch:
                    time.sleep(0.05 if left is None else min(0.05, left))
                    continue
                for fut in batch:
                    i = which[fut.key]
                    try:
                        value = fut.result()
                    except KilledWorker:
                        killed.append(i)
                        continue
                    except _CANCELLED:  # the payload, or the result, was lost with a worker
                        lost.append(i)
                        continue
                    done(tasks[i], value)
        except BaseException:
            client.cancel(futures, force=True)
            raise
        return [tasks[i] for i in sorted(killed)], [tasks[i] for i in sorted(lost)]

    def close(self) -> None:
        self.client.cancel(self.scattered, force=True)
