"""A worker process's life: how it starts and what it runs.

:class:`Process` starts ``python -c`` on lmermagic's own entry point, with
the parent's interpreter (``sys.executable``), not through multiprocessing's
"spawn", which re-imports the caller's ``__main__`` in the child: a script
without an ``if __name__ == "__main__":`` guard would run again there, and a
script read from stdin cannot be found, and the child dies at once while the
parent stays blocked writing the start-up data into its pipe. Here the child
imports lmermagic from the directory the parent imported it from, takes the
parent's ``sys.path`` as its own (dev and editable installs, the caller's own
modules), and reads its start-up data, ``(setup, payload)``, from a private
socket that a thread of the parent writes: the caller never blocks on a
child that does not read, and a child that dies while starting closes the
socket, which ends that write and wakes whoever waits for the child.

In the child (:func:`child_main`): a session of its own (a terminal's Ctrl-C
or SIGHUP is the parent's to handle) with SIGINT ignored, death with the
parent (Linux: ``PR_SET_PDEATHSIG``), then ``setup(payload)`` once and one
message at a time until the socket closes: a task (``work(state, task)``
under its memory limit, answered), a new job (``state = setup(payload)``,
answered: a kept worker serves one batch after another) or "drop the state"
(not answered).

The parent's side, :class:`lmermagic.pool.Worker`, keeps one such process.
"""

from __future__ import annotations

import atexit
import gc
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

__all__ = ["Process", "child_main"]

# The child's first lines: import lmermagic from the parent's package directory
# (argv[1]) without putting anything before the standard library on sys.path,
# and without the working directory that ``-c`` adds (until the parent's
# sys.path arrives).
_ENTRY = """\
import sys, importlib.util as u
sys.path = [p for p in sys.path if p]
s = u.spec_from_file_location("lmermagic", sys.argv[1] + "/__init__.py",
                              submodule_search_locations=[sys.argv[1]])
sys.modules["lmermagic"] = m = u.module_from_spec(s)
s.loader.exec_module(m)
import lmermagic.spawn
lmermagic.spawn.child_main()
"""
_PACKAGE = str(Path(__file__).resolve().parent)


class Process:
    """A started worker process and the parent's end of its socket (``conn``).

    The interface of :class:`multiprocessing.Process` that the workers use:
    ``pid``, ``sentinel`` (a descriptor readable once the process ended, where
    Linux has ``pidfd_open``; else None, and the socket's end of file tells),
    ``is_alive()``, ``join(timeout)``, ``exitcode`` (minus the signal that
    killed it), and :meth:`end`.
    """

    def __init__(self, start_up: Any) -> None:
        # Pickled here, so that what does not pickle raises in the caller.
        blobs = [pickle.dumps(sys.path), pickle.dumps(start_up, pickle.HIGHEST_PROTOCOL)]
        ours, theirs = socket.socketpair()
        try:
            self._popen = subprocess.Popen(
                [sys.executable, "-c", _ENTRY, _PACKAGE, str(theirs.fileno()), str(os.getpid())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, start_new_session=True)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self.pid = self._popen.pid
        self.sentinel: int | None = None
        if sys.platform == "linux":
            try:
                self.sentinel = os.pidfd_open(self.pid)  # Linux 5.3 and later
            except OSError:
                pass
        _LIVE.add(self)
        self._sender = threading.Thread(target=_send_all, args=(self.conn, blobs),
                                        name="lmermagic-worker-start", daemon=True)
        self._sender.start()

    @property
    def exitcode(self) -> int | None:
        return self._popen.poll()

    def is_alive(self) -> bool:
        return self._popen.poll() is None

    def join(self, timeout: float | None = None) -> None:
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def end(self) -> None:
        """End the process now, whatever it is doing (SIGTERM, SIGKILL after
        0.5 s), and release its socket, its sentinel and the start-up thread."""
        try:  # wakes the start-up thread and the child's read
            with socket.socket(fileno=os.dup(self.conn.fileno())) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self.is_alive():
            self._popen.terminate()
            self.join(0.5)
            if self.is_alive():
                self._popen.kill()
        self._popen.wait()
        self._sender.join()
        self.conn.close()
        _LIVE.discard(self)
        if self.sentinel is not None:
            os.close(self.sentinel)
            self.sentinel = None


# Every process still running when the interpreter exits is ended then.
_LIVE: weakref.WeakSet[Process] = weakref.WeakSet()


@atexit.register
def _end_all() -> None:
    for proc in list(_LIVE):
        proc.end()


def _send_all(conn: Connection, blobs: list[bytes]) -> None:
    try:
        for blob in blobs:
            conn.send_bytes(blob)
    except OSError:  # the process ended, or was ended: its waiter reports it
        pass


def child_main() -> None:
    """The worker process's entry point: ``python -c`` runs it with the
    parent's lmermagic package directory, the socket's descriptor and the
    parent's process id as arguments."""
    fd, parent = int(sys.argv[2]), int(sys.argv[3])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:  # die with the parent (PR_SET_PDEATHSIG), even when it is killed
            import ctypes

            ctypes.CDLL(None).prctl(1, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before this process could ask
        os._exit(1)
    os.set_inheritable(fd, False)  # not for the processes R or the task start
    conn = Connection(fd)
    try:
        sys.path[:] = conn.recv()
        setup, payload = conn.recv()
    except (EOFError, OSError):
        return
    except BaseException as exc:  # e.g. a function defined in the caller's __main__
        _reply(conn, "error", _unloadable(exc))
        return
    _serve(conn, setup, payload)


def _unloadable(exc: BaseException) -> RuntimeError:
    return RuntimeError(
        f"the worker process could not load its job: {type(exc).__name__}: {exc} (the "
        "functions sent to a worker must be importable from a module, not __main__)")


def _serve(conn: Connection, setup: Callable[[Any], Any], payload: Any) -> None:
    """Set up, then one message at a time until the socket closes."""
    import resource

    try:
        state = setup(payload)
    except BaseException as exc:
        _reply(conn, "error", exc)
        return
    _reply(conn, "ok", None)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            kind, *rest = pickle.loads(message)
        except BaseException as exc:  # e.g. a function defined in the caller's __main__
            _reply(conn, "error", _unloadable(exc))
            continue
        try:
            if kind == "drop":  # the batch is over: its data go, no answer
                state = rest = None
                gc.collect()
                continue
            if kind == "load":  # a new batch: its state replaces the last one's
                state = None
                gc.collect()
                state = rest[0](rest[1])
                status, value = "ok", None
            else:
                work, task, memory = rest
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
    except OSError:  # the parent is gone or ended this process
        return
    except Exception as exc:  # the value does not pickle: say what it was
        conn.send(("error", RuntimeError(f"{type(value).__name__}: {value} "
                                         f"(could not be sent back: {exc})")))
