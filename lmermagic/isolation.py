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

One warm worker serves the session: it starts (about 2 s: Python, R, lme4)
at the first isolated fit and is replaced after it is killed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from . import preflight
from .errors import FitError, LmerTimeoutError, WorkerMemoryError
from .fitting import Prepared, fit_fields, prepare, result_fields, run_prepared
from .rbridge import Serialized, get_r
from .request import FitRequest
from .workers import Worker, WorkerDied

__all__ = ["fit_any", "fit_isolated", "memory_limit", "stop_worker"]

# R's words for a failed allocation (R itself; C++ code through Rcpp).
_NO_MEMORY = ("cannot allocate", "std::bad_alloc", "memory exhausted")
# Share of the memory available when a fit starts that a worker may take.
_DEFAULT_SHARE = 0.8

_worker: Worker | None = None


def fit_any(request: FitRequest, data: Any) -> dict[str, Any]:
    """A model's fields, fitted in a worker if ``request.isolate``, else here."""
    return fit_isolated(request, data) if request.isolate else fit_fields(request, data)


def memory_limit(request: FitRequest) -> float | None:
    """The worker's address-space limit in bytes for this fit."""
    if request.memory_limit is not None:
        return request.memory_limit * 1e9
    avail = preflight.available_memory()
    return None if avail is None else _DEFAULT_SHARE * avail


def _start_r(_: Any) -> None:
    get_r()


def _fit_in_worker(state: None, task: tuple[Any, ...]) -> tuple[dict[str, Any], bytes | None]:
    request, columns, nrow, options = task
    # The timeout is the parent's to keep: it ends this process.
    res = run_prepared(dataclasses.replace(request, timeout=None), columns, nrow, options,
                       serialized=True)
    raw = res.pop("raw", None)
    return res, None if raw is None else get_r().raw_bytes(raw)


def _get_worker() -> Worker:
    global _worker
    if _worker is None:
        _worker = Worker(_start_r)
    return _worker


def stop_worker() -> None:
    """End the session's worker process, if one runs (the next isolated fit
    starts another)."""
    if _worker is not None:
        _worker.stop()


def fit_isolated(request: FitRequest, data: Any) -> dict[str, Any]:
    """As :func:`lmermagic.fitting.fit_fields`, with R's work in the worker."""
    prep = prepare(request, data)
    limit = memory_limit(request)
    worker = _get_worker()
    try:
        res, raw = worker.call(_fit_in_worker,
                               (request, prep.columns, prep.nrow, prep.options),
                               timeout=request.timeout, memory=limit)
    except TimeoutError:
        raise LmerTimeoutError(
            f"the isolated fit was stopped after the time limit of {request.timeout:g} s "
            "(its worker process was ended; the next fit starts a new one). Raise "
            "timeout= (or %config LmerMagics.timeout).") from None
    except MemoryError:
        worker.stop()
        raise _out_of_memory(limit, "Python could not allocate") from None
    except WorkerDied as exc:
        if exc.signal == 9:  # SIGKILL: the out-of-memory killer, most likely
            raise _out_of_memory(limit, f"{exc} (as the operating system kills a process "
                                 "that takes too much memory)") from None
        raise FitError(f"the isolated fit failed: {exc}; the notebook is unharmed and the "
                       "next fit starts a new worker.") from None
    return _fields(request, data, prep, res, raw, worker, limit)


def _fields(request: FitRequest, data: Any, prep: Prepared, res: dict[str, Any],
            raw: bytes | None, worker: Worker, limit: float | None) -> dict[str, Any]:
    if "error" in res:
        msg = str(res["error"][0])
        if any(s in msg for s in _NO_MEMORY):
            worker.stop()
            raise _out_of_memory(limit, f"R: {msg.strip()}", msg)
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
