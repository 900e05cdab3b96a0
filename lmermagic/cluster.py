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

import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["local_cluster", "require_distributed", "run_on_dask"]

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
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                       processes=True, dashboard_address=None)
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
                idle: Callable[[], None] | None = None) -> None:
    """As :func:`lmermagic.workers.run_tasks`, on the workers of ``client``.

    An error in a task or in ``done``, Ctrl-C or ``timeout`` seconds
    (TimeoutError) cancel every task not yet finished, and the error is
    raised. A task already running on a worker finishes there (Dask cannot
    stop a running task short of restarting the worker, which would end
    other users' work on a shared cluster), so keep tasks short.
    """
    distributed = require_distributed()
    shipped = client.scatter(_Shipped(uuid.uuid4().hex, setup, payload), broadcast=True,
                             hash=False)
    futures = [client.submit(_task, shipped, work, task, pure=False) for task in tasks]
    which = {fut.key: task for fut, task in zip(futures, tasks)}
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        pending = distributed.as_completed(futures, loop=client.loop)
        while not pending.is_empty():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"the Dask tasks were cancelled after {timeout:g} s")
            batch = pending.next_batch(block=False)
            if idle is not None:
                idle()
            if not batch:
                time.sleep(0.05 if left is None else min(0.05, left))
                continue
            for fut in batch:
                done(which[fut.key], fut.result())
    except BaseException:
        client.cancel(futures, force=True)
        raise
    finally:
        client.cancel([shipped], force=True)
