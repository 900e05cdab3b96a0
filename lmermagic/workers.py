"""Work spread over worker processes, each with its own R.

A job is a list of tasks and two module-level functions: ``setup(payload)``
runs once in each process and returns its state (start R there, load what the
payload names: the data are shipped once, not with every task), and
``work(state, task)`` runs once per task. Workers are fresh interpreters
(multiprocessing "spawn": forking a process that runs R is unsafe) that import
lmermagic and start their own R; only what pickles crosses, never an R object.
Results come back as they complete; with one worker everything runs here, in
task order, and nothing is pickled.

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
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar

from .tally import progress

__all__ = ["Worker", "WorkerDied", "chunks", "progress", "run_tasks"]

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
    at module level) and each worker is a :class:`Worker`; ``idle()`` is called at
    least four times a second while the workers run (a progress line's clock:
    ``bar.refresh``). An error in a task or in ``done``, Ctrl-C, or ``timeout``
    seconds (TimeoutError) end every worker process at once, whatever it is
    doing (the tasks they were running are lost), and the error is raised: no
    worker outlives the call. A worker that dies during a task raises
    :class:`WorkerDied`, or, with ``died``, is reported as ``died(task, exc)``
    and replaced, and the other tasks go on.
    """
    if workers == 1:
        state = setup(payload)
        for task in tasks:
            done(task, work(state, task))
        return
    todo = list(reversed(tasks))
    pool = [Worker(setup, payload) for _ in range(max(1, min(workers, len(todo))))]
    busy: dict[Worker, T] = {}
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        for w in pool:
            w.start()
        while todo or busy:
            for w in pool:
                if w._ready and w not in busy and todo:
                    task = todo.pop()
                    assert w._conn is not None
                    w._conn.send((work, task, None))
                    busy[w] = task
            handles: dict[Any, Worker] = {}
            for w in pool:
                if w in busy or not w._ready:
                    handles[w._conn] = w
                    handles[w._proc.sentinel] = w
            left = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
            if left <= 0:
                raise TimeoutError(f"the worker processes were stopped after {timeout:g} s")
            for h in wait(list(handles), left):
                w = handles[h]
                if not w.alive and (w._conn is None or not w._conn.poll()):
                    _replace_dead(w, busy, died)
                    continue
                if h is not w._conn:
                    continue
                try:
                    status, value = w._conn.recv()
                except EOFError:
                    _replace_dead(w, busy, died)
                    continue
                if not w._ready:
                    if status != "ok":
                        raise value
                    w._ready = True
                    continue
                task = busy.pop(w)
                if status != "ok":
                    raise value
                done(task, value)
            if idle is not None:
                idle()
    finally:
        for w in pool:
            w.stop()


def _replace_dead(w: Worker, busy: dict[Worker, Any],
                  died: Callable[[Any, WorkerDied], None] | None) -> None:
    """A worker's process ended: report its task (or raise), start another."""
    proc = w._proc
    if proc is not None:
        proc.join(1)
    exc = WorkerDied(None if proc is None else proc.exitcode)
    if w not in busy or died is None:
        raise exc
    died(busy.pop(w), exc)
    w.stop()
    w.start()


def _end(proc: Any) -> None:
    """End a process now, whatever it is doing: SIGTERM, then SIGKILL."""
    if proc.is_alive():
        proc.terminate()
        proc.join(0.5)
        if proc.is_alive():
            proc.kill()
    proc.join()


class WorkerDied(RuntimeError):
    """The worker process ended during a task: ``signal`` is the signal that
    ended it (SIGKILL: the operating system's out-of-memory killer, most
    likely), or None."""

    def __init__(self, exitcode: int | None) -> None:
        self.exitcode = exitcode
        self.signal = -exitcode if exitcode is not None and exitcode < 0 else None
        how = (f"was killed by {signal.Signals(self.signal).name}" if self.signal
               else f"exited with code {exitcode}")
        super().__init__(f"the worker process {how}")


class Worker:
    """One spawned process that runs tasks one at a time and can be ended at
    any moment.

    ``setup(payload)`` runs once when the process starts; ``call(work, task)``
    returns ``work(state, task)`` computed there. The wait for the result is
    interruptible: Ctrl-C, or ``timeout`` seconds, kill the process (SIGTERM,
    then SIGKILL) and raise KeyboardInterrupt or TimeoutError in the caller.
    ``memory`` bytes limit the process's address space during the task (a
    task that needs more gets MemoryError, or R's "cannot allocate"). A
    process that dies raises :class:`WorkerDied`. After any of these the next
    call starts a new process. The process is in a process group of its own
    (a terminal's or Jupyter's Ctrl-C is the caller's to handle) and, on Linux,
    dies with its parent.
    """

    def __init__(self, setup: Callable[[Any], Any], payload: Any = None) -> None:
        self._setup = setup
        self._payload = payload
        self._proc: Any = None
        self._conn: Connection | None = None
        self._ready = False

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the process (``call`` does when none runs)."""
        if self.alive:
            return
        self.stop()
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(theirs, self._setup, self._payload),
                           daemon=True, name="lmermagic-worker")
        proc.start()
        theirs.close()
        self._proc, self._conn, self._ready = proc, ours, False

    def stop(self) -> None:
        """End the process now, whatever it is doing."""
        proc, conn = self._proc, self._conn
        self._proc, self._conn, self._ready = None, None, False
        if proc is not None:
            _end(proc)
            proc.close()
        if conn is not None:
            conn.close()

    def call(self, work: Callable[[Any, Any], Any], task: Any, *, timeout: float | None = None,
             memory: float | None = None) -> Any:
        """``work(state, task)`` in the worker process; its exception re-raised here."""
        self.start()
        try:
            if not self._ready:  # the process's start does not count against timeout
                status, value = self._receive(None)
                if status != "ok":
                    raise value
                self._ready = True
            assert self._conn is not None
            self._conn.send((work, task, None if memory is None else int(memory)))
            status, value = self._receive(timeout)
        except BaseException:
            self.stop()
            raise
        if status != "ok":  # the task's own exception: the process lives on
            raise value
        return value

    def _receive(self, timeout: float | None) -> tuple[str, Any]:
        conn, proc = self._conn, self._proc
        assert conn is not None and proc is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
            if left <= 0:
                raise TimeoutError(f"the worker process was stopped after {timeout:g} s")
            ready = wait([conn, proc.sentinel], left)
            if conn in ready:
                try:
                    reply: tuple[str, Any] = conn.recv()
                except EOFError:
                    proc.join(1)
                    raise WorkerDied(proc.exitcode) from None
                return reply
            if proc.sentinel in ready:
                proc.join(1)
                raise WorkerDied(proc.exitcode)


def _serve(conn: Connection, setup: Callable[[Any], Any], payload: Any) -> None:
    """A worker process's life: set up, then one task per message until the
    pipe closes."""
    import resource

    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:  # die with the parent (PR_SET_PDEATHSIG), even when it is killed
            import ctypes

            ctypes.CDLL(None).prctl(1, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
    try:
        state = setup(payload)
    except BaseException as exc:
        _reply(conn, "error", exc)
        return
    _reply(conn, "ok", None)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    while True:
        try:
            work, task, memory = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if memory is not None:
                cap = memory if hard == resource.RLIM_INFINITY else min(memory, hard)
                resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
            try:
                status, value = "ok", work(state, task)
            finally:
                resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        except BaseException as exc:
            status, value = "error", exc
        _reply(conn, status, value)


def _reply(conn: Connection, status: str, value: Any) -> None:
    try:
        conn.send((status, value))
    except Exception as exc:  # the value does not pickle: say what it was
        conn.send(("error", RuntimeError(f"{type(value).__name__}: {value} "
                                         f"(could not be sent back: {exc})")))
