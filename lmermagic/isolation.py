"""Isolated fits: the fit runs in a worker process with its own R.

In the notebook's own process, R stops for Ctrl-C or a timeout only where it
checks for interrupts, and LAPACK, BLAS and CHOLMOD never do; a fit that needs
more memory than the machine has gets the kernel killed. An isolated fit
runs in a :class:`~lmermagic.workers.Worker`: Ctrl-C and ``timeout=`` kill
that process within about a second, whatever R is doing, and running out of
memory ends that process (limited to ``memory_limit``), not the kernel.

What crosses, both ways over the worker's private pipe: to the worker the
request and the used columns, encoded as for R (numpy arrays, level labels);
back the model's tables as plain Python values (numpy arrays, lists, dicts)
and the fit with its data as the bytes of R's ``serialize()``, which become R
objects in the notebook's R (``unserialize()``) only when a toolbox method
needs them. No R object is pickled; nothing is read from disk.

The worker comes from the session's pool of warm workers
(:mod:`lmermagic.pool`, shared with lmer_many and the bootstrap): lent for
one fit, given back after it, kept only if it is idle and small (a fit that
made R grow ends its worker); the first isolated fit of a session may pay its
start (about 2 s). The memory limit is set for each fit, in the worker, for
that fit only. Isolated fits take turns: one lock covers each exchange
(request, reply, and killing the worker when the fit must end), so that two
fits never hold the limit's share of the available memory at once, a
thread's timeout or Ctrl-C kills only the worker running its own fit, and
every request carries a number the reply must echo, so a reply can only ever
reach the request it answers. The wait counts against the fit's ``timeout``.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from typing import Any

from . import preflight, warmstart
from .errors import FitError, LmerTimeoutError, WorkerMemoryError
from .fitting import Prepared, fit_fields, prepare, result_fields, run_prepared
from .rbridge import Serialized, get_r, held, time_left, time_limit, timeout_error
from .request import FitRequest
from .pool import get_pool
from .workers import Worker, WorkerDied

__all__ = ["fit_any", "fit_isolated", "memory_limit", "run_in_worker", "stop_worker"]

# R's words for a failed allocation (R itself; C++ code through Rcpp).
_NO_MEMORY = ("cannot allocate", "std::bad_alloc", "memory exhausted")
# Share of the memory available when a fit starts that a worker may take.
_DEFAULT_SHARE = 0.8
_WAITING_FOR = "the isolated fits' worker process"

# One exchange with the worker at a time; held while it may be killed.
_exchange = threading.Lock()
_request_ids = itertools.count(1)


def fit_any(request: FitRequest, data: Any) -> dict[str, Any]:
    """A model's fields, fitted in a worker if ``request.isolate``, else here.
    ``request.timeout`` bounds the whole fit, waits for another thread's fit
    (R, the worker) included."""
    with time_limit(request.timeout):
        return fit_isolated(request, data) if request.isolate else fit_fields(request, data)


def memory_limit(request: Any) -> float | None:
    """The worker's address-space limit in bytes for this fit."""
    if request.memory_limit is not None:
        return request.memory_limit * 1e9
    avail = preflight.available_memory()
    return None if avail is None else _DEFAULT_SHARE * avail


def _fit_in_worker(state: None, task: tuple[Any, ...]
                   ) -> tuple[int, dict[str, Any], bytes | None]:
    request_id, request, columns, nrow, options = task
    # The timeout is the parent's to keep: it ends this process.
    res = run_prepared(dataclasses.replace(request, timeout=None), columns, nrow, options,
                       serialized=True)
    raw = res.pop("raw", None)
    return request_id, res, None if raw is None else get_r().raw_bytes(raw)


def stop_worker() -> None:
    """End the worker of the isolated fit under way, if any, and the pool's
    kept workers. An isolated fit running in another thread ends first."""
    with _exchange:
        get_pool().shutdown()


def fit_isolated(request: FitRequest, data: Any) -> dict[str, Any]:
    """As :func:`lmermagic.fitting.fit_fields`, with R's work in the worker."""
    with time_limit(request.timeout):  # called directly, not through fit_any
        prep = prepare(request, data)
        prep = dataclasses.replace(prep, options=warmstart.add_start(
            request, data, prep.options, [c.name for c in prep.columns]))
        res, raw = run_in_worker(_fit_in_worker, (request, prep.columns, prep.nrow,
                                                  prep.options), memory_limit(request))
    return _fields(request, data, prep, res, raw)


def run_in_worker(fn: Any, args: tuple[Any, ...], limit: float | None
                  ) -> tuple[dict[str, Any], bytes | None]:
    """``fn((request_id, *args))`` in a worker of the pool, under the fit's
    time limit and the memory ``limit``: ``fn`` returns (request_id, R's
    result list, R's serialize() bytes or None). Another engine's isolated
    fit (glmmTMB's, tmb_cache.py) comes through here too."""
    with held(_exchange, _WAITING_FOR):
        pool = get_pool()
        worker = pool.acquire(1)[0][0]
        try:
            return _exchange_with(worker, fn, args, limit)
        finally:
            pool.release([worker])  # kept only if alive, idle and small


def _exchange_with(worker: Worker, fn: Any, args: tuple[Any, ...], limit: float | None
                   ) -> tuple[dict[str, Any], bytes | None]:
    request_id = next(_request_ids)
    task = (request_id, *args)
    try:
        got_id, res, raw = worker.call(fn, task, timeout=time_left(), memory=limit)
    except TimeoutError as exc:
        if isinstance(exc, LmerTimeoutError):  # no time left before the call
            raise
        err = timeout_error("; its worker process was ended (the next fit starts a new "
                            "one)", "the isolated fit")
        raise err or LmerTimeoutError(f"the isolated fit was stopped: {exc}") from None
    except MemoryError:
        worker.stop()
        raise _out_of_memory(limit, "Python could not allocate") from None
    except WorkerDied as exc:
        if exc.signal == 9:  # SIGKILL: the out-of-memory killer, most likely
            raise _out_of_memory(limit, f"{exc} (as the operating system kills a process "
                                 "that takes too much memory)") from None
        raise FitError(f"the isolated fit failed: {exc}; the notebook is unharmed and the "
                       "next fit starts a new worker.") from None
    if got_id != request_id:  # never expected: the lock pairs them; refuse, never guess
        worker.stop()
        raise FitError(f"the worker process answered request {got_id} to request "
                       f"{request_id}; the answer was discarded and the worker ended. "
                       "Fit again (a new worker starts).")
    if "error" in res:
        msg = str(res["error"][0])
        if any(s in msg for s in _NO_MEMORY):
            worker.stop()
            raise _out_of_memory(limit, f"R: {msg.strip()}", msg)
    return res, raw


def _fields(request: FitRequest, data: Any, prep: Prepared, res: dict[str, Any],
            raw: bytes | None) -> dict[str, Any]:
    bundle = None if raw is None else Serialized(raw, ("fit", "data"))
    fields = result_fields(request, data, prep, res,
                           None if bundle is None else bundle.handle("fit"),
                           None if bundle is None else bundle.handle("data"))
    fields["meta"]["isolated"] = True
    return fields


def _out_of_memory(limit: float | None, what: str, r_message: str = "") -> WorkerMemoryError:
    cap = "" if limit is None else f" (its limit: {limit / 1e9:.1f} GB)"
    return WorkerMemoryError(
        f"the worker process ran out of memory{cap}: {what}. The notebook is unharmed; the "
        "next fit starts a new worker. Check the design (a factor with many levels as a "
        "fixed effect?) or raise memory_limit= (magic: --memory-limit GB).",
        r_message=r_message)
