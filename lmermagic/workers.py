"""Work spread over worker processes, each with its own R.

A job is a list of tasks and two module-level functions: ``setup(payload)``
runs once in each process and returns its state (start R there, load what the
payload names: the data are shipped once, not with every task), and
``work(state, task)`` runs once per task. Workers are fresh interpreters
(multiprocessing "spawn": forking a process that runs R is unsafe) that import
lmermagic and start their own R; only what pickles crosses, never an R object.
Results come back as they complete; with one worker everything runs here, in
task order, and nothing is pickled.

The number of workers must not change a result: draw random numbers before
the work is split (the bootstrap simulates every response first) or seed each
task from the task itself, never from the process that runs it.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib.util
import math
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = ["chunks", "progress", "run_tasks"]

P = TypeVar("P")
S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")


def chunks(n: int, pieces: int) -> list[tuple[int, int]]:
    """Items 1..n as about ``pieces`` runs ``(first, last)``, 1-based and inclusive."""
    size = max(1, math.ceil(n / pieces))
    return [(a, min(a + size - 1, n)) for a in range(1, n + 1, size)]


def run_tasks(work: Callable[[S, T], R], tasks: Sequence[T], done: Callable[[T, R], None], *,
              setup: Callable[[P], S], payload: P, workers: int = 1) -> None:
    """Call ``done(task, work(state, task))`` for every task, as each completes.

    ``state`` is ``setup(payload)``, computed once per process. With
    ``workers > 1``, ``work``, ``setup`` and ``payload`` must pickle (functions
    at module level). An error in a task or in ``done``, or Ctrl-C, cancels
    the tasks not yet started and is raised once the running ones have
    finished; no worker process outlives the call.
    """
    if workers == 1:
        state = setup(payload)
        for task in tasks:
            done(task, work(state, task))
        return
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_start,
                                initargs=(setup, payload)) as pool:
        futures = {pool.submit(_work, work, task): task for task in tasks}
        try:
            for fut in cf.as_completed(futures):
                done(futures[fut], fut.result())
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


# The state of this worker process, set once by _start().
_STATE: dict[str, Any] = {}


def _start(setup: Callable[[Any], Any], payload: Any) -> None:
    _STATE["state"] = setup(payload)


def _work(work: Callable[[Any, Any], Any], task: Any) -> Any:
    return work(_STATE["state"], task)


class _NoBar:
    def update(self, n: int) -> None:
        pass


@contextmanager
def progress(total: int, desc: str, unit: str = "fit") -> Iterator[Any]:
    """A progress bar with ``update(n)``: tqdm's notebook widget, else its text
    bar, else (tqdm not installed) none."""
    try:
        # tqdm.auto picks the notebook widget, which needs ipywidgets (without
        # it, tqdm warns "IProgress not found"): then the text bar.
        if importlib.util.find_spec("ipywidgets") is not None:
            from tqdm.auto import tqdm
        else:
            from tqdm import tqdm
    except ImportError:  # tqdm is optional: no bar
        yield _NoBar()
        return
    bar = tqdm(total=total, desc=desc, unit=unit)
    try:
        yield bar
    finally:
        bar.close()
