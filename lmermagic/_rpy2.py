"""Every difference between the rpy2 lines lmermagic supports, in one place.

rpy2 3.5 ships as one distribution; 3.6 splits into ``rpy2-rinterface`` and
``rpy2-robjects`` and drops ``rinterface.initr_simple``. ``rpy2-rinterface``
3.6.6 and later link against ``R_getVar``, which R only has from 4.5 on, so
on R 4.2 - 4.4 it fails at import with an ``undefined symbol`` error. Only
:mod:`lmermagic.rbridge` imports this module; nothing else knows rpy2 exists.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from .errors import RNotAvailableError

__all__ = ["Rpy2", "distributions", "known_problem", "load", "r_version_outside"]

# The rinterface release from which R >= 4.5 is needed (it links R_getVar).
_NEEDS_R_4_5 = (3, 6, 6)
# What to install for an R older than 4.5: the last rpy2 line that loads there.
RPY2_FOR_OLD_R = "rpy2==3.5.17"


@dataclass(frozen=True)
class Rpy2:
    """rpy2's low-level modules, as both lines spell them."""

    ri: Any  # rpy2.rinterface
    callbacks: Any  # rpy2.rinterface_lib.callbacks
    embedded: Any  # rpy2.rinterface_lib.embedded
    openrlib: Any  # rpy2.rinterface_lib.openrlib

    @property
    def RRuntimeError(self) -> type[Exception]:
        return self.embedded.RRuntimeError  # type: ignore[no-any-return]

    def _swapped(self, **callbacks: Callable[..., None]) -> contextlib.ExitStack:
        """rpy2's callbacks replaced by ``callbacks`` while the returned context
        is open. rpy2 3.6 renamed ``obj_in_module`` to ``replace_in_module``
        and warns on every use of the old name."""
        cb = self.callbacks
        swap = getattr(cb, "replace_in_module", None) or cb.obj_in_module
        stack = contextlib.ExitStack()
        for name, fn in callbacks.items():
            stack.enter_context(swap(cb, name, fn))
        return stack

    def console_to(self, write: Callable[[str], None]) -> contextlib.ExitStack:
        """Send what R prints (output and warnings/errors) to ``write`` inside
        the block."""
        return self._swapped(consolewrite_print=write, consolewrite_warnerror=write)

    def events_to(self, tick: Callable[[], None]) -> contextlib.ExitStack:
        """Call ``tick`` when R processes events (R does so at its interrupt
        checks, many times a second while it computes) inside the block."""
        return self._swapped(processevents=tick)

    @contextlib.contextmanager
    def stack_guard(self) -> Iterator[None]:
        """R's C stack check on, for this thread's stack, inside the block.

        rpy2 turns the check off (``R_CStackLimit = -1``): R may be called from
        any thread, and R only knows the stack of the thread that started it.
        Without it, deep recursion in R (a formula hundreds of terms long walked
        by lme4) overflows the stack and ends the process with a segmentation
        fault. Inside the block R measures against the calling thread's own
        stack, as Rscript does against its one: "C stack usage is too close to
        the limit" becomes an ordinary R error. Outside, rpy2's setting is put
        back, for other callers of R (the lock is held meanwhile).
        """
        bounds = _thread_stack()
        if bounds is None:
            yield
            return
        low, size = bounds
        lib, ffi = self.openrlib.rlib, self.openrlib.ffi
        try:
            saved = (lib.R_CStackStart, lib.R_CStackLimit)
        except AttributeError:  # not in this rpy2's declarations
            yield
            return
        # R compares the stack used since R_CStackStart with R_CStackLimit
        # (the stack grows down from low + size); 10 % stays for C code that
        # runs between R's checks.
        lib.R_CStackStart = ffi.cast("uintptr_t", low + size)
        lib.R_CStackLimit = ffi.cast("uintptr_t", int(size * 0.9))
        try:
            yield
        finally:
            lib.R_CStackStart, lib.R_CStackLimit = saved

    def start(self) -> None:
        """Start the embedded R once, keeping the caller's SIGINT handler.

        Both lines install their own SIGINT handler while R starts. 3.5 has
        ``initr_simple`` (no environment checks, no subprocess); 3.6 only
        ``initr``, which does what ``initr_simple`` did plus those checks.
        """
        if self.embedded.isready():
            return
        main = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGINT) if main else None
        # rpy2 prepends R's library directories (/usr/lib/x86_64-linux-gnu
        # among them) to LD_LIBRARY_PATH: too late for this process, as its
        # own comment says, but every child process inherits it, and a Python
        # linked to its own libpython (pyenv's) then loads the system's:
        # spawned workers and kernels ran 3.11.2's core under 3.11.7's stdlib.
        lib_path = os.environ.get("LD_LIBRARY_PATH")
        init = getattr(self.ri, "initr_simple", None) or self.ri.initr
        init()
        if lib_path is None:
            os.environ.pop("LD_LIBRARY_PATH", None)
        else:
            os.environ["LD_LIBRARY_PATH"] = lib_path
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


_MAIN_STACK: list[tuple[int, int] | None] = []
_LIBC: list[Any] = []


def _thread_stack() -> tuple[int, int] | None:
    """(lowest address, size) of the calling thread's stack (glibc's
    pthread_getattr_np), or None where that cannot be asked. The main
    thread's is asked once (glibc reads /proc for it); another thread's every
    time, as a thread id can come back with another stack."""
    main = threading.current_thread() is threading.main_thread()
    if main and _MAIN_STACK:
        return _MAIN_STACK[0]
    out: tuple[int, int] | None = None
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            if not _LIBC:
                _LIBC.append(ctypes.CDLL(None))
                _LIBC[0].pthread_self.restype = ctypes.c_ulong
            libc = _LIBC[0]
            attr = ctypes.create_string_buffer(128)  # pthread_attr_t: 56 bytes on glibc
            if libc.pthread_getattr_np(ctypes.c_ulong(libc.pthread_self()), attr) == 0:
                addr, size = ctypes.c_void_p(), ctypes.c_size_t()
                if libc.pthread_attr_getstack(attr, ctypes.byref(addr),
                                              ctypes.byref(size)) == 0 and addr.value:
                    out = (addr.value, size.value)
                libc.pthread_attr_destroy(attr)
        except (OSError, AttributeError):
            out = None
    if main:
        _MAIN_STACK.append(out)
    return out


def load(advice: str) -> Rpy2:
    """Import rpy2's low-level interface, or raise RNotAvailableError that
    says why and what to install (``advice`` is the general install text)."""
    try:
        with _no_library_path_probe():
            import rpy2.rinterface as ri
            from rpy2.rinterface_lib import callbacks, embedded, openrlib
    except Exception as exc:  # ImportError, or OSError when libR is missing
        problem = known_problem(r_version_outside(), distributions(), str(exc))
        text = f"rpy2 could not load R: {exc}"
        raise RNotAvailableError(f"{text}\n{problem or advice}") from exc
    return Rpy2(ri=ri, callbacks=callbacks, embedded=embedded, openrlib=openrlib)


@contextlib.contextmanager
def _no_library_path_probe() -> Iterator[None]:
    """Keep rpy2 from starting Rscript at import (both lines, 0.1-0.3 s: half
    of R's start-up when a fit comes from the disk cache) only to read R's
    LD_LIBRARY_PATH: rpy2 puts that into os.environ when R starts, where it
    is too late for this process, and :meth:`Rpy2.start` removes it again
    (see there). Without the probe rpy2 adds an empty entry instead."""
    if "rpy2.rinterface_lib.openrlib" in sys.modules:
        yield
        return
    try:
        import rpy2.situation as situation
    except Exception:  # load() reports what is missing
        yield
        return
    probe = getattr(situation, "r_ld_library_path_from_subprocess", None)
    if probe is None:
        yield
        return
    situation.r_ld_library_path_from_subprocess = lambda r_home: ""
    try:
        yield
    finally:
        situation.r_ld_library_path_from_subprocess = probe


def distributions() -> dict[str, str | None]:
    """Installed versions of rpy2's distributions (None where absent)."""
    out: dict[str, str | None] = {}
    for name in ("rpy2", "rpy2-rinterface", "rpy2-robjects"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _tuple(version: str | None) -> tuple[int, ...]:
    if not version:
        return ()
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def rinterface_version(dists: dict[str, str | None]) -> str | None:
    """The version of the code behind ``rpy2.rinterface``: its own
    distribution on 3.6, rpy2 itself on 3.5."""
    return dists.get("rpy2-rinterface") or dists.get("rpy2")


def known_problem(r_version: str | None, dists: dict[str, str | None],
                  error: str = "") -> str | None:
    """A combination of R and rpy2 known not to work, with the fix; None if
    the combination is not known to fail."""
    rinterface = rinterface_version(dists)
    if rinterface is None:
        return ("rpy2 is not installed: pip install rpy2 (R >= 4.5) or "
                f"pip install '{RPY2_FOR_OLD_R}' (R 4.2 - 4.4)")
    old_r = bool(r_version) and _tuple(r_version) < (4, 5)
    if (old_r and _tuple(rinterface) >= _NEEDS_R_4_5) or "R_getVar" in error:
        return (f"rpy2-rinterface {rinterface} needs R >= 4.5 (it links R_getVar), "
                f"and this R is {r_version or 'older'}: pip install '{RPY2_FOR_OLD_R}' "
                "(or upgrade R to 4.5 or later)")
    return None


def r_version_outside() -> str | None:
    """R's version asked of the ``R`` command, for when rpy2 cannot load R
    (so it cannot be asked from inside). None without an R on PATH."""
    exe = shutil.which("R")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True,
                             timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"R version (\d+\.\d+\.\d+)", out)
    return found.group(1) if found else None
