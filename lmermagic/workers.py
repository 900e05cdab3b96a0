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
import signal
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar

from .spawn import Process
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
                    busy[w] = task
                    try:
                        w._send((work, task, None))
                    except WorkerDied:
                        _replace_dead(w, busy, died)
            handles: dict[Any, Worker] = {}
            for w in pool:
                if w in busy or not w._ready:
                    handles.update(dict.fromkeys(w._handles(), w))
            left = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
            if left <= 0:
                raise TimeoutError(f"the worker processes were stopped after {timeout:g} s")
            for h in wait(list(handles), left):
                w = handles[h]
                assert w._conn is not None
                if not w.alive and not w._conn.poll():
                    _replace_dead(w, busy, died)
                    continue
                if h is not w._conn:
                    continue
                try:
                    status, value = w._conn.recv()
                except (EOFError, ConnectionResetError):
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


class WorkerDied(RuntimeError):
    """The worker process ended during a task: ``signal`` is the signal that
    ended it (SIGKILL: the operating system's out-of-memory killer, most
    likely), or None; ``message`` replaces the default text (a Dask worker's
    death, whose exit code this process never sees)."""

    def __init__(self, exitcode: int | None, message: str | None = None) -> None:
        self.exitcode = exitcode
        self.signal = -exitcode if exitcode is not None and exitcode < 0 else None
        how = (f"was killed by {signal.Signals(self.signal).name}" if self.signal
               else f"exited with code {exitcode}")
        super().__init__(message or f"the worker process {how}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.exitcode, str(self))


class Worker:
    """One process of lmermagic's own that runs tasks one at a time and can be
    ended at any moment.

    ``setup(payload)`` runs once when the process starts; ``call(work, task)``
    returns ``work(state, task)`` computed there. The wait for the result is
    interruptible: Ctrl-C, or ``timeout`` seconds, kill the process (SIGTERM,
    then SIGKILL) and raise KeyboardInterrupt or TimeoutError in the caller.
    ``memory`` bytes limit the process's address space during the task (a
    task that needs more gets MemoryError, or R's "cannot allocate"). A
    process that dies, while starting or during a task, raises
    :class:`WorkerDied`. After any of these the next call starts a new
    process. The process is in a session of its own (a terminal's or
    Jupyter's Ctrl-C is the caller's to handle) and, on Linux, dies with its
    parent. It starts from lmermagic's entry point (:mod:`lmermagic.spawn`),
    never from the caller's ``__main__``: ``work`` and ``setup`` must be
    importable from a module.
    """

    def __init__(self, setup: Callable[[Any], Any], payload: Any = None) -> None:
        self._setup = setup
        self._payload = payload
        self._proc: Process | None = None
        self._conn: Connection | None = None
        self._ready = False

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the process (``call`` does when none runs); its start-up data
        are sent while the caller goes on."""
        if self.alive:
            return
        self.stop()
        self._proc = Process((self._setup, self._payload))
        self._conn, self._ready = self._proc.conn, False

    def stop(self) -> None:
        """End the process now, whatever it is doing."""
        proc = self._proc
        self._proc, self._conn, self._ready = None, None, False
        if proc is not None:
            proc.end()

    def _handles(self) -> list[Any]:
        """What :func:`multiprocessing.connection.wait` watches for this worker."""
        assert self._proc is not None and self._conn is not None
        sentinel = self._proc.sentinel
        return [self._conn] if sentinel is None else [self._conn, sentinel]

    def _send(self, message: Any) -> None:
        """Send a message; a process that died meanwhile raises WorkerDied."""
        assert self._conn is not None and self._proc is not None
        try:
            self._conn.send(message)
        except (BrokenPipeError, ConnectionResetError):
            self._proc.join(1)
            raise WorkerDied(self._proc.exitcode) from None

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
            self._send((work, task, None if memory is None else int(memory)))
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
            ready = wait(self._handles(), left)
            if conn in ready:
                try:
                    reply: tuple[str, Any] = conn.recv()
                except (EOFError, ConnectionResetError):
                    proc.join(1)
                    raise WorkerDied(proc.exitcode) from None
                return reply
            if ready:  # the process ended
                proc.join(1)
                raise WorkerDied(proc.exitcode)
