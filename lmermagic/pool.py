"""The session's pool of warm worker processes.

A worker process costs about 2 s to start (Python, R, lme4, Matrix,
lmerTest). The pool keeps the workers a job used once it is over, so that the
next job -- a second batch of models, a bootstrap, an isolated fit, a power
simulation -- takes them warm: it only loads its own data (a ``"load"``
message, :class:`lmermagic.spawn.Worker`).

- Workers start on first use (``acquire``), warm ones first, new ones for the
  rest; each starts with :func:`warm_up` (R, and a tiny fit that loads lme4,
  Matrix and lmerTest).
- A job gives its workers back (``release``): a worker is kept only if it is
  alive, idle (no task or load under way; one still starting is kept) and
  smaller than ``max_rss`` bytes (R does not give freed memory back to the
  system, so a worker that grew on a big job is ended rather than kept); its
  job's data are dropped. A worker
  that was busy when its job ended (Ctrl-C, a timeout, an error) is killed by
  the job, never kept.
- Kept workers end after ``idle_timeout`` seconds without work (300 by
  default; ``get_pool().idle_timeout = 60``; 0 keeps none), at interpreter exit, and on
  :func:`shutdown` (``lmermagic.shutdown_workers()``).
- A worker is lent to one job at a time; jobs in several threads get workers
  of their own.

The pool measures each worker's start-up (``start_seconds()``: the median of
the last starts, 2 s before any), which :func:`lmermagic.workers.plan_workers`
weighs against the work left.

:class:`Worker` is one worker process seen from here, kept for tasks one at
a time, that can be ended at any moment. Every process starts from one thread
of lmermagic's that lives as long as the interpreter: Linux's
``PR_SET_PDEATHSIG`` fires when the *thread* that started the child ends, so
a worker started from a short-lived thread (a thread's isolated fit) would
die with it, and a kept worker must outlive the call that started it.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import os
import pickle
import signal
import statistics
import threading
import time
import weakref
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

from .spawn import Process

__all__ = ["Pool", "Worker", "WorkerDied", "get_pool", "shutdown", "warm_up"]

IDLE_TIMEOUT = 300.0
MAX_RSS = 1.5e9
DEFAULT_START = 2.0  # seconds, before any start was measured (docs/scale.md)


_spawner: concurrent.futures.ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def _start_process(start_up: Any) -> Process:
    """A :class:`Process` started from lmermagic's long-lived spawning thread."""
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="lmermagic-worker-spawn")
        future = _spawner.submit(Process, start_up)
    try:
        return future.result()
    except BaseException:  # e.g. Ctrl-C while it started: end it when it has
        future.add_done_callback(_end_when_started)
        raise


def _end_when_started(future: concurrent.futures.Future[Process]) -> None:
    if future.exception() is None:
        future.result().end()


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
    parent. It starts from lmermagic's entry point, never from the caller's
    ``__main__``: ``work`` and ``setup`` must be importable from a module.

    A kept worker (:mod:`lmermagic.pool`) serves several jobs: ``job`` names
    the job whose state it holds (None: only its start-up state), set by
    :meth:`load`; ``start_seconds`` is how long the process took from its
    start to its first answer (its start-up cost, measured).
    """

    def __init__(self, setup: Callable[[Any], Any], payload: Any = None) -> None:
        self._setup = setup
        self._payload = payload
        self._proc: Process | None = None
        self._conn: Connection | None = None
        self._ready = False
        self._started = 0.0
        self.start_seconds: float | None = None
        self.job: object | None = None

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
        self._started, self.start_seconds = time.monotonic(), None
        self._proc = _start_process((self._setup, self._payload))
        self._conn, self._ready = self._proc.conn, False

    def stop(self) -> None:
        """End the process now, whatever it is doing."""
        proc = self._proc
        self._proc, self._conn, self._ready, self.job = None, None, False, None
        if proc is not None:
            proc.end()

    def _answered(self) -> None:
        """The process answered its start-up or a job's load: it is ready."""
        if self.start_seconds is None:
            self.start_seconds = time.monotonic() - self._started
        self._ready = True

    def load(self, message: bytes, job: object) -> None:
        """Send a job's ``("load", setup, payload)``, pickled once by the
        caller; the answer comes as a task's does, and makes it ready again."""
        self._send_bytes(message)
        self._ready, self.job = False, job

    def drop(self) -> None:
        """Tell a ready process to let its job's state go (no answer)."""
        if self.alive and self._ready and self.job is not None:
            try:
                self._send(("drop",))
            except WorkerDied:
                self.stop()
        self.job = None

    def _handles(self) -> list[Any]:
        """What :func:`multiprocessing.connection.wait` watches for this worker."""
        assert self._proc is not None and self._conn is not None
        sentinel = self._proc.sentinel
        return [self._conn] if sentinel is None else [self._conn, sentinel]

    def _send(self, message: Any) -> None:
        """Send a message; a process that died meanwhile raises WorkerDied."""
        self._send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))

    def _send_bytes(self, blob: bytes) -> None:
        assert self._conn is not None and self._proc is not None
        try:
            self._conn.send_bytes(blob)
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
                self._answered()
            self._send(("task", work, task, None if memory is None else int(memory)))
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


def warm_up(_: Any) -> None:
    """A pool worker's start-up: R, then a tiny fit, which loads the R packages
    every job needs (lme4, Matrix, lmerTest: about 1.2 s of the 2 s)."""
    from .rbridge import get_r

    get_r()
    try:
        import pandas as pd

        from .fitting import fit_fields
        from .request import FitRequest

        g = [i % 4 for i in range(16)]
        data = pd.DataFrame({"y": [((i * 7) % 5) + 0.5 * g[i] for i in range(16)],
                             "x": [float(i % 3) for i in range(16)],
                             "g": pd.Categorical([str(v) for v in g])})
        fit_fields(FitRequest.build("y ~ x + (1 | g)"), data)
    except Exception:  # a job that needs these packages says what is missing
        pass


def _rss(pid: int | None) -> float:
    """The process's resident memory in bytes (0 where /proc cannot tell)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0.0


class Pool:
    """Warm worker processes kept between jobs (see the module's text)."""

    def __init__(self) -> None:
        self.idle_timeout = IDLE_TIMEOUT
        self.max_rss = MAX_RSS
        self._lock = threading.Lock()
        self._idle: list[tuple[Worker, float]] = []  # a kept worker, when it was given back
        self._starts: list[float] = []
        self._counted: weakref.WeakSet[Worker] = weakref.WeakSet()
        self._timer: threading.Timer | None = None

    def acquire(self, n: int) -> tuple[list[Worker], int]:
        """``n`` workers lent to the caller, and how many of them were warm.
        New ones are started (their start-up goes on while the caller waits
        for their first answer)."""
        out: list[Worker] = []
        dead: list[Worker] = []
        with self._lock:
            while self._idle and len(out) < n:
                w, _ = self._idle.pop()
                (out if w.alive else dead).append(w)
        for w in dead:
            w.stop()
        warm = len(out)
        try:
            while len(out) < n:
                w = Worker(warm_up)
                out.append(w)
                w.start()
        except BaseException:
            for w in out:
                w.stop()
            raise
        return out, warm

    def release(self, workers: list[Worker]) -> None:
        """Workers given back at the end of a job: the idle ones are kept."""
        now = time.monotonic()
        keep = []
        for w in workers:
            with self._lock:
                if w.start_seconds is not None and w not in self._counted:
                    self._counted.add(w)
                    self._starts = [*self._starts, w.start_seconds][-5:]
            idle = w._ready or w.job is None  # no task or load under way; maybe starting
            if w.alive and idle and _rss(w.pid) <= self.max_rss and self.idle_timeout > 0:
                w.drop()
                keep.append(w)
            else:
                w.stop()
        with self._lock:
            self._idle.extend((w, now) for w in keep if w.alive)
            self._arm()

    def warm(self) -> int:
        """How many warm workers wait for a job."""
        with self._lock:
            return sum(w.alive for w, _ in self._idle)

    def pids(self) -> list[int]:
        """The process ids of the kept workers."""
        with self._lock:
            return [w.pid for w, _ in self._idle if w.pid is not None]

    def start_seconds(self) -> float:
        """A new worker's start-up cost in seconds, as measured on the last ones."""
        return statistics.median(self._starts) if self._starts else DEFAULT_START

    def shutdown(self) -> None:
        """End every kept worker now (the next job starts new ones)."""
        with self._lock:
            idle, self._idle = self._idle, []
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        for w, _ in idle:
            w.stop()

    def _arm(self) -> None:
        """Wake when the oldest kept worker has been idle too long (lock held)."""
        if self._timer is not None or not self._idle:
            return
        oldest = min(t for _, t in self._idle)
        wait = max(0.05, oldest + self.idle_timeout - time.monotonic())
        self._timer = threading.Timer(wait, self._reap)
        self._timer.daemon = True
        self._timer.name = "lmermagic-pool-idle"
        self._timer.start()

    def _reap(self) -> None:
        now = time.monotonic()
        with self._lock:
            self._timer = None
            old = [w for w, t in self._idle if now - t >= self.idle_timeout - 0.01]
            self._idle = [(w, t) for w, t in self._idle if w not in old]
            self._arm()
        for w in old:
            w.stop()


_pool = Pool()


def get_pool() -> Pool:
    """The session's pool of warm workers."""
    return _pool


@atexit.register
def shutdown() -> None:
    """End the session's kept worker processes now; the next job that needs
    workers starts new ones. Runs at interpreter exit too."""
    _pool.shutdown()
