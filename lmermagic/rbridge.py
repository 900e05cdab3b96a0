"""The one module that talks to R.

R starts lazily at the first call, not at import. Every call into R holds one
process-wide lock (two threads in R crash the process) and runs with R's
console output captured, so that nothing R prints lands in the notebook raw.
Only rpy2's low-level ``rinterface`` is used: values cross as buffers, and no
conversion context is needed (new threads lose rpy2's).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import pandas as pd

from . import _rpy2, packed
from .convert import NA_INTEGER, RColumn
from .errors import (
    DataError,
    FitError,
    LmerError,
    LmerTimeoutError,
    RPackageMissingError,
)

__all__ = ["R", "RFrame", "RObject", "Serialized", "Watcher", "frame_to_pandas", "get_r",
           "held", "stack_problem", "time_left", "time_limit", "timeout_error", "to_py",
           "to_py_frames",
           "unpack", "watched", "watching"]

_R_SOURCE = Path(__file__).with_name("R")

# Debian package, conda-forge package, R package.
PACKAGE_ADVICE = {
    "lme4": "apt-get install r-cran-lme4  |  conda install -c conda-forge r-lme4  |  "
    "in R: install.packages('lme4')",
    "lmerTest": "apt-get install r-cran-lmertest  |  conda install -c conda-forge r-lmertest  |  "
    "in R: install.packages('lmerTest')",
    "numDeriv": "apt-get install r-cran-numderiv  |  conda install -c conda-forge r-numderiv  |  "
    "in R: install.packages('numDeriv') (lmerTest depends on it)",
    "pbkrtest": "apt-get install r-cran-pbkrtest  |  conda install -c conda-forge r-pbkrtest  |  "
    "in R: install.packages('pbkrtest')",
    "emmeans": "apt-get install r-cran-emmeans  |  conda install -c conda-forge r-emmeans  |  "
    "in R: install.packages('emmeans')",
    "geepack": "apt-get install r-cran-geepack  |  conda install -c conda-forge r-geepack  |  "
    "in R: install.packages('geepack')",
    "car": "apt-get install r-cran-car  |  conda install -c conda-forge r-car  |  "
    "in R: install.packages('car')",
}
R_ADVICE = (
    "Install R and rpy2: on Debian/Ubuntu `apt-get install r-base-core r-cran-lme4 "
    "r-cran-lmertest` then `pip install rpy2` (R >= 4.5) or "
    f"`pip install '{_rpy2.RPY2_FOR_OLD_R}'` (R 4.2 - 4.4); with conda "
    "`conda install -c conda-forge r-lme4 r-lmertest rpy2`; on macOS/Windows install R "
    "from CRAN, then in R install.packages(c('lme4','lmerTest')), then pip install rpy2."
)



def stack_problem(r_version: str | None = None) -> tuple[str | None, str]:
    """(what is known not to work with the fix, or None; the installed rpy2
    distributions in words). Without ``r_version``, R's version is asked of
    the ``R`` command."""
    dists = _rpy2.distributions()
    words = ", ".join(f"{name} {version}" for name, version in dists.items() if version)
    if r_version is None:
        r_version = _rpy2.r_version_outside()
    return _rpy2.known_problem(r_version, dists), words or "not installed"


_lock = threading.RLock()
_instance: R | None = None


class _Limit:
    """One fit's time limit: its R calls and its waits count against it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.waited: dict[str, float] = {}  # seconds spent waiting, per thing waited for

    def left(self) -> float:
        return self.end - time.monotonic()

    def expired(self, stopped: str = "", subject: str = "the fit") -> LmerTimeoutError:
        """The error for this limit: what the fit waited for, if it did, and
        ``stopped``, what was stopped (R, the worker)."""
        return LmerTimeoutError(
            f"{subject} was stopped at its time limit of {self.seconds:g} s{self.waits()}"
            f"{stopped}. Raise timeout= (or %config LmerMagics.timeout).")

    def waits(self) -> str:
        """`` (1.2 s of it waiting for R, busy with another thread's fit)``, or ''."""
        waits = [f"{sec:.1f} s waiting for {what}" for what, sec in self.waited.items()
                 if sec >= 0.05]
        return f" ({', '.join(waits)}, busy with another thread's fit)" if waits else ""


_local = threading.local()


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[_Limit | None]:
    """Count every R call this thread makes inside the block, and every wait for
    R's lock (another thread's fit) or for a :func:`held` lock, against one limit
    of ``seconds``; an R call then gets only the time left. Nested blocks keep
    the outer limit. Yields the limit (its ``waits()``: the waits in words)."""
    if seconds is None or seconds <= 0 or getattr(_local, "limit", None) is not None:
        yield getattr(_local, "limit", None)
        return
    _local.limit = limit = _Limit(seconds)
    try:
        yield limit
    finally:
        _local.limit = None


def time_left() -> float | None:
    """Seconds left under this thread's :func:`time_limit` (None: no limit);
    LmerTimeoutError when none are."""
    limit: _Limit | None = getattr(_local, "limit", None)
    if limit is None:
        return None
    left = limit.left()
    if left <= 0:
        raise limit.expired()
    return left


def timeout_error(stopped: str, subject: str = "the fit") -> LmerTimeoutError | None:
    """The error for this thread's :func:`time_limit`, naming what the fit
    waited for and ``stopped``; None outside a limit."""
    limit: _Limit | None = getattr(_local, "limit", None)
    return None if limit is None else limit.expired(stopped, subject)


@contextlib.contextmanager
def held(lock: Any = None, what: str = "R") -> Iterator[None]:
    """Hold ``lock`` (default: R's). Under a :func:`time_limit` the wait ends
    with the limit, as LmerTimeoutError saying the fit waited for ``what``; the
    wait is interruptible (Ctrl-C raises KeyboardInterrupt here, nothing else
    is touched)."""
    lock = _lock if lock is None else lock
    limit: _Limit | None = getattr(_local, "limit", None)
    if limit is None:
        lock.acquire()
    else:
        start = time.monotonic()
        try:
            got = lock.acquire(timeout=max(0.0, limit.left()))
        finally:
            limit.waited[what] = limit.waited.get(what, 0.0) + time.monotonic() - start
        if not got:
            raise limit.expired()
    try:
        yield
    finally:
        lock.release()


def get_r() -> R:
    """Return the process-wide R session, starting R on first use."""
    global _instance
    if _instance is None:
        with _lock:
            if _instance is None:
                _instance = R()
    return _instance


@dataclass(frozen=True)
class RFrame:
    """Columns to become one R data.frame inside the locked call."""

    columns: Sequence[RColumn]
    nrow: int


# R objects whose Python handle died, waiting to be released under the lock.
_graveyard: list[Any] = []


def _drain_graveyard() -> None:
    while _graveyard:
        _graveyard.pop()


class RObject:
    """A handle on an R object that is safe to drop from any thread.

    rpy2 releases an R object when its Python wrapper is freed; doing that
    while another thread runs R corrupts rpy2's bookkeeping. The handle parks
    the wrapper instead, and the next call into R frees it under the lock.
    """

    __slots__ = ("sexp",)

    def __init__(self, sexp: Any) -> None:
        self.sexp = sexp

    def __del__(self) -> None:
        try:
            _graveyard.append(self.sexp)
        except Exception:  # interpreter shutdown: module globals are gone
            pass

    def __repr__(self) -> str:
        return f"<R object {type(self.sexp).__name__}>"


class Serialized:
    """R objects that came from another process's R as R's own serialisation
    (``serialize()``, bytes): made R objects in this R by ``unserialize()`` the
    first time one is needed, then kept. Nothing is unpickled.

    ``handle(name)`` is a handle that goes wherever an :class:`RObject` goes.
    ``reader`` is the R function that unserializes ``raw`` into a named list
    (one of lmermagic's, which may also check what it read and stop);
    ``args`` are passed to it after ``raw``.
    """

    def __init__(self, raw: bytes, names: Sequence[str],
                 reader: str = "lmm_unserialize", args: Sequence[Any] = ()) -> None:
        self._raw: bytes | None = raw
        self._names = tuple(names)
        self._reader = reader
        self._args = tuple(args)
        self._objects: dict[str, RObject] = {}

    @property
    def nbytes(self) -> int:
        return len(self._raw or b"")

    def handle(self, name: str) -> _Deferred:
        return _Deferred(self, name)

    def get(self, name: str) -> RObject:
        with held():
            if self._raw is not None:
                value = get_r().run(self._reader, self._raw, *self._args, keep=self._names)
                self._objects = {n: value[n] for n in self._names}
                self._raw = None  # the R objects hold it all now
            return self._objects[name]


class _Deferred:
    """One object of a :class:`Serialized` bundle, unserialized on first use."""

    __slots__ = ("_bundle", "_name")

    def __init__(self, bundle: Serialized, name: str) -> None:
        self._bundle = bundle
        self._name = name

    @property
    def sexp(self) -> Any:
        return self._bundle.get(self._name).sexp

    def __repr__(self) -> str:
        state = "serialized" if self._bundle.nbytes else "unserialized"
        return f"<R object {self._name!r}, {state}>"


class _Stop:
    """Why R was asked to stop during one call, if it was."""

    def __init__(self) -> None:
        self.reason: str | None = None


class Watcher(Protocol):
    """Follows R while it computes (see :func:`watching`)."""

    def consume(self, text: str) -> bool:
        """Take what R printed if it is progress output (True), else leave it."""

    def tick(self) -> None:
        """Called many times a second while R computes, in R's thread."""


# Thread id -> the watcher of the R calls that thread makes.
_watchers: dict[int, Watcher] = {}


@contextlib.contextmanager
def watching(watcher: Watcher) -> Iterator[None]:
    """Let ``watcher`` see R's console output first and tick while R computes,
    for the R calls this thread makes inside the block. Watcher methods run
    in R's callbacks: they must be quick and must not raise or call R."""
    key = threading.get_ident()
    previous = _watchers.get(key)
    _watchers[key] = watcher
    try:
        yield
    finally:
        if previous is None:
            _watchers.pop(key, None)
        else:
            _watchers[key] = previous


def watched() -> bool:
    """Whether R calls of this thread are being watched (fits then report progress)."""
    return threading.get_ident() in _watchers


class _Console:
    """Collects what R writes to its console while we hold the lock."""

    def __init__(self) -> None:
        self.chunks: list[str] = []

    def write(self, text: str) -> None:
        self.chunks.append(text)

    @property
    def text(self) -> str:
        return "".join(self.chunks)


class R:
    """A handle on the embedded R with lmermagic's R code loaded."""

    def __init__(self) -> None:
        rpy2 = _rpy2.load(R_ADVICE)
        self.ri = rpy2.ri
        self._rpy2 = rpy2
        self._RRuntimeError = rpy2.RRuntimeError
        self._openrlib = rpy2.openrlib
        self._allowed: dict[tuple[tuple[str, tuple[str, ...]], ...], RObject] = {}
        with _lock:
            rpy2.start()
            self.env = self._load_code()
        self.versions = self.run("lmm_versions")
        self._stack: dict[str, str] | None = None
        self.require("lme4")

    # -- low level ------------------------------------------------------------

    def _load_code(self) -> Any:
        ri = self.ri
        base = ri.baseenv
        with self._captured():
            env = base["new.env"](parent=base["baseenv"]())
            # R/*.R and R/toolbox/*.R, in a fixed order; every file only defines.
            for path in sorted(_R_SOURCE.rglob("*.R")):
                base["sys.source"](ri.StrSexpVector([str(path)]), envir=env)
        return env

    @contextlib.contextmanager
    def _captured(self) -> Iterator[_Console]:
        console = _Console()
        watcher = _watchers.get(threading.get_ident())
        if watcher is None:
            with self._rpy2.console_to(console.write):
                yield console
            return

        def write(text: str) -> None:
            if not watcher.consume(text):
                console.write(text)

        with self._rpy2.console_to(write), self._rpy2.events_to(watcher.tick):
            yield console

    def to_r(self, value: Any) -> Any:
        """Python scalar/list/None/bytes/RColumn -> R object (never R source text)."""
        ri = self.ri
        if value is None:
            return ri.NULL
        if isinstance(value, (RObject, _Deferred)):
            return value.sexp
        if isinstance(value, bytes):
            # One memmove into a new raw vector (rpy2's from_memoryview copies
            # byte by byte: 0.4 s for a 25 MB fit).
            vec = ri.baseenv["raw"](ri.FloatSexpVector([float(len(value))]))
            self._openrlib.ffi.memmove(vec._R_GET_PTR(vec.__sexp__._cdata), value, len(value))
            return vec
        if isinstance(value, RFrame):
            return self.frame(value)
        if isinstance(value, (bool, np.bool_)):
            return ri.BoolSexpVector([bool(value)])
        if isinstance(value, (int, np.integer)):
            return ri.IntSexpVector([int(value)])
        if isinstance(value, (float, np.floating)):
            return ri.FloatSexpVector([float(value)])
        if isinstance(value, str):
            return ri.StrSexpVector([_text(value)])
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return ri.StrSexpVector([_text(v) for v in value])
        if isinstance(value, dict):
            out = ri.ListSexpVector([self.to_r(v) for v in value.values()])
            out.do_slot_assign("names", ri.StrSexpVector([_text(str(k)) for k in value]))
            return out
        if isinstance(value, np.ndarray):
            if value.dtype == np.float64:
                return ri.FloatSexpVector.from_memoryview(_buffer(value))
            if value.dtype == np.int32:
                return ri.IntSexpVector.from_memoryview(_buffer(value))
        raise TypeError(f"cannot send {type(value).__name__} to R")

    def run(self, name: str, *args: Any, keep: Sequence[str] = (),
            convert: Callable[[Any], Any] | None = None, timeout: float | None = None,
            packed: bool = False, **kwargs: Any) -> Any:
        """Call one of lmermagic's R functions and return Python values.

        Arguments may be Python scalars, lists of str, dicts (named lists),
        :class:`RFrame` (built into a data.frame here) or :class:`RObject`.
        The result goes through ``convert`` (default :func:`to_py`); elements
        of a named-list result whose names are in ``keep`` come back as
        :class:`RObject` handles instead. ``packed=True`` has R flatten the
        result first (``lmm_pack``), so that a result of many small tables
        crosses in a few vectors (same Python values as :func:`to_py`, except
        that factors arrive as their labels). Every rpy2 object is created
        and dropped while the lock is held: rpy2's bookkeeping of R objects is
        not thread-safe.

        Ctrl-C (SIGINT, a kernel interrupt) stops R and raises
        KeyboardInterrupt; after ``timeout`` seconds R is stopped the same way
        and :class:`~lmermagic.errors.LmerTimeoutError` is raised.
        """
        with held():
            _drain_graveyard()
            limit: _Limit | None = getattr(_local, "limit", None)
            # Under the fit's time limit (time_limit), R gets what the waits left.
            left = time_left()
            if left is not None and (timeout is None or left < timeout):
                timeout = left
            else:
                limit = None
            with self._captured() as console, self._interruptible(timeout) as stop, \
                    self._rpy2.stack_guard():
                try:
                    out = self._run_locked(console, name, args, kwargs, keep, convert,
                                           packed)
                except FitError:
                    if stop.reason is None:
                        raise
                    out = None
                # rpy2's error text after an interrupt is stale or empty: trust
                # our own flag, never R's message.
                if stop.reason == "interrupt":
                    raise KeyboardInterrupt
                if stop.reason == "timeout":
                    if limit is not None:
                        raise limit.expired("; R is usable again") from None
                    raise LmerTimeoutError(
                        f"R was stopped after the time limit of {timeout:g} s; R is "
                        "usable again. Raise timeout= (or %config LmerMagics.timeout)."
                    )
                return out

    @contextlib.contextmanager
    def _interruptible(self, timeout: float | None) -> Iterator[_Stop]:
        """Make SIGINT and the timeout set R's own interrupt flag.

        rpy2 loses a KeyboardInterrupt raised inside its callbacks (rpy2 issue
        831), and R ignores Python's signals: setting R_interrupts_pending makes
        R stop at its next interrupt check.
        """
        rlib = self._openrlib.rlib
        stop = _Stop()
        # A timer that fires as the call ends must not leave R's flag set for
        # the next call, another thread's maybe. Reentrant: the SIGINT handler
        # runs in the main thread, which may hold it in the finally below.
        guard = threading.RLock()
        active = [True]

        def trip(reason: str) -> None:
            with guard:
                if not active[0]:
                    return
                if stop.reason is None:
                    stop.reason = reason
                rlib.R_interrupts_pending = 1

        previous = None
        if _main_thread():
            previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, lambda signum, frame: trip("interrupt"))
        timer = None
        if timeout is not None and timeout > 0:
            timer = threading.Timer(timeout, trip, ("timeout",))
            timer.daemon = True
            timer.start()
        try:
            yield stop
        finally:
            if timer is not None:
                timer.cancel()
            with guard:
                active[0] = False
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            rlib.R_interrupts_pending = 0

    def _run_locked(self, console: _Console, name: str, args: Sequence[Any],
                    kwargs: dict[str, Any], keep: Sequence[str],
                    convert: Callable[[Any], Any] | None, packed: bool) -> Any:
        fn = self.env[name]
        rargs = [self.to_r(a) for a in args]
        rkwargs = {k: self.to_r(v) for k, v in kwargs.items()}
        try:
            result = fn(*rargs, **rkwargs)
            if packed:
                result = self.env["lmm_pack"](result, self.ri.StrSexpVector(list(keep)))
        except self._RRuntimeError as exc:
            text = console.text.strip() or str(exc)
            raise FitError(f"R error in {name}: {text}", r_message=text) from None
        if packed:
            return unpack(result)
        if convert is not None:
            return convert(result)
        if keep and isinstance(result, self.ri.ListSexpVector):
            names = _names(result) or []
            return {n: (RObject(v) if n in keep else to_py(v)) for n, v in zip(names, result)}
        return to_py(result)

    def allowed(self, extra: Sequence[str] = ()) -> RObject:
        """The formula allowlist (``request.allowlist(extra)``) as an R object,
        built once per distinct list: it goes with every fit."""
        from .request import allowlist

        spec = allowlist(tuple(extra))
        key = tuple((pkg, tuple(names)) for pkg, names in spec.items())
        obj = self._allowed.get(key)
        if obj is None:
            with held():
                obj = RObject(self.to_r(spec))
            if len(self._allowed) >= 64:
                self._allowed.clear()
            self._allowed[key] = obj
        return obj

    def raw_bytes(self, handle: RObject) -> bytes:
        """An R raw vector's bytes (R's ``serialize()`` output)."""
        with held():
            return _numpy(handle.sexp, np.uint8, copy=False).tobytes()

    def stack_versions(self) -> dict[str, str]:
        """What a result depends on: lmermagic, R, lme4, lmerTest, Matrix and rpy2
        (installed versions; a package that is not installed is left out). Read
        once per R session, as R's own are (importlib.metadata parses every
        installed package's metadata: 3 ms a fit when it was read per fit)."""
        if self._stack is None:
            out = {"lmermagic": _own_version()}
            out.update({k: str(self.versions[k]) for k in ("R", "lme4", "lmerTest", "Matrix")
                        if self.versions.get(k) is not None})
            dists = _rpy2.distributions()
            rpy2 = dists.get("rpy2") or dists.get("rpy2-rinterface")
            if rpy2:
                out["rpy2"] = rpy2
            self._stack = out
        return dict(self._stack)

    def require(self, package: str) -> None:
        if self.versions.get(package) is None:
            advice = PACKAGE_ADVICE.get(package, f"in R: install.packages('{package}')")
            raise RPackageMissingError(
                f"R package '{package}' is not installed: {advice}"
            )

    # -- data -----------------------------------------------------------------

    def column(self, col: RColumn) -> Any:
        """One encoded column -> R vector (one buffer copy)."""
        ri = self.ri
        if col.kind == "double":
            return ri.FloatSexpVector.from_memoryview(_buffer(col.values))
        if col.kind == "integer":
            return ri.IntSexpVector.from_memoryview(_buffer(col.values))
        if col.kind == "logical":
            return ri.BoolSexpVector.from_memoryview(_buffer(col.values))
        if col.kind == "factor":
            codes = ri.IntSexpVector.from_memoryview(_buffer(col.values))
            return self.env["lmm_factor"](
                codes, ri.StrSexpVector([_text(v) for v in col.levels]),
                ri.BoolSexpVector([col.sort_levels]), ri.BoolSexpVector([col.ordered]))
        if col.kind == "posixct":
            vec = ri.FloatSexpVector.from_memoryview(_buffer(col.values))
            vec.do_slot_assign("class", ri.StrSexpVector(["POSIXct", "POSIXt"]))
            vec.do_slot_assign("tzone", ri.StrSexpVector(["UTC"]))
            return vec
        raise LmerError(f"internal: unknown column kind {col.kind}")

    def frame(self, spec: RFrame) -> Any:
        """Encoded columns -> an R data.frame (names kept verbatim). Lock held."""
        ri = self.ri
        vectors = ri.ListSexpVector([self.column(c) for c in spec.columns])
        names = ri.StrSexpVector([_text(c.name) for c in spec.columns])
        return self.env["lmm_frame"](vectors, names, ri.IntSexpVector([spec.nrow]))


def _own_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("lmermagic")
    except metadata.PackageNotFoundError:  # run from a source tree
        return "unknown"


def _text(value: str) -> str:
    """A string for R, which ends text at a NUL: the checks before R name where
    a NUL came from; this is the last line behind them."""
    if "\x00" in value:
        raise DataError(f"a text value for R contains a NUL character (\\x00): "
                        f"{value[:60]!r}; R would cut it there. Remove it.")
    return value


def _buffer(arr: np.ndarray) -> memoryview:
    """A contiguous array as the buffer rpy2 copies into a new R vector.

    The buffer's format is the plain one rpy2 checks for ('d', 'i'): an array
    rebuilt from pickle protocol 5 buffers (Dask ships data that way) reports
    '=d', which rpy2 refuses."""
    arr = np.ascontiguousarray(arr)
    raw: Any = memoryview(cast(Any, arr)).cast("B")
    return cast(memoryview, raw.cast(arr.dtype.char))


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _attr(obj: Any, name: str) -> Any:
    """An attribute read in C (rpy2's ``.names`` would call R's names())."""
    try:
        return obj.do_slot(name)
    except LookupError:
        return None


def _names(obj: Any) -> list[str] | None:
    names = _attr(obj, "names")
    if names is None:
        return None
    return [str(n) for n in names]


def _atomic(obj: Any) -> Any:
    import rpy2.rinterface as ri

    if isinstance(obj, ri.StrSexpVector):
        return [None if v is ri.NA_Character else str(v) for v in obj]
    if isinstance(obj, ri.FloatSexpVector):
        arr = _numpy(obj, np.float64)
    elif isinstance(obj, ri.IntSexpVector):
        arr = _numpy(obj, np.int32)
    elif isinstance(obj, ri.BoolSexpVector):
        return packed.logical(_numpy(obj, np.int32))
    else:
        raise TypeError(type(obj).__name__)
    dim = _attr(obj, "dim")
    if dim is not None:
        shape = tuple(int(d) for d in dim)
        arr = arr.reshape(shape, order="F")
    return arr


def to_py(obj: Any) -> Any:
    """Convert an R result (nested named lists of vectors) to Python.

    Named lists become dicts, unnamed lists lists; numeric vectors numpy arrays
    (matrices keep their shape); named atomic vectors dicts; character vectors
    lists of str (NA -> None); raw vectors bytes. Scalars stay length-one arrays: callers index.
    """
    import rpy2.rinterface as ri

    if obj is ri.NULL or type(obj).__name__ == "NULLType":
        return None
    if isinstance(obj, ri.ListSexpVector):
        names = _names(obj)
        items = [to_py(v) for v in obj]
        return dict(zip(names, items)) if names is not None else items
    if isinstance(obj, ri.ByteSexpVector):  # R's raw vector, e.g. serialize()'s
        return _numpy(obj, np.uint8).tobytes()
    if isinstance(obj, (ri.StrSexpVector, ri.FloatSexpVector, ri.IntSexpVector,
                        ri.BoolSexpVector)):
        values = _atomic(obj)
        names = _names(obj) if _attr(obj, "dim") is None else None
        if names is not None:
            return dict(zip(names, list(values)))
        return values
    return obj


def to_py_frames(obj: Any, keep: Sequence[str] = ()) -> Any:
    """As :func:`to_py`, but data.frames become pandas DataFrames and elements
    of named lists whose names are in ``keep`` become :class:`RObject` handles.
    Lock held (a ``convert=`` of :meth:`R.run`)."""
    import rpy2.rinterface as ri

    if isinstance(obj, ri.ListSexpVector):
        klass = _attr(obj, "class")
        if klass is not None and "data.frame" in [str(c) for c in klass]:
            return frame_to_pandas(obj)
        names = _names(obj)
        if names is None:
            return [to_py_frames(v, keep) for v in obj]
        return {n: (RObject(v) if n in keep else to_py_frames(v, keep))
                for n, v in zip(names, obj)}
    return to_py(obj)


def _numpy(vec: Any, dtype: Any, copy: bool = True) -> np.ndarray:
    """An R numeric/integer/logical vector as a numpy array: a copy, or with
    ``copy=False`` a view valid only while the R object is alive and the lock
    is held.

    Reads R's memory through the same cffi buffer rpy2's ``memoryview()``
    uses; ``memoryview()`` itself retries an import that fails on every call
    (0.1 ms each, several per fit), so it is only the fallback.
    """
    try:
        from rpy2.rinterface_lib import openrlib

        ptr = vec._R_GET_PTR(vec.__sexp__._cdata)
        size = np.dtype(dtype).itemsize * len(vec)
        view = np.frombuffer(openrlib.ffi.buffer(ptr, size), dtype=dtype)
        return view.copy() if copy else view
    except AttributeError:
        return np.array(vec.memoryview(), dtype=dtype)


def unpack(obj: Any) -> Any:
    """Rebuild what R's ``lmm_pack`` flattened (:func:`lmermagic.packed.build`).

    Arrays are copies (never views into R's memory); kept elements become
    :class:`RObject` handles. Lock held.
    """
    import rpy2.rinterface as ri

    spec_v, dbl_v, int_v, chr_v, nbytes_v, kept_v, vecs_v = obj
    strs = packed.strings(str(chr_v[0]).encode("utf-8"),
                          _numpy(nbytes_v, np.int32).tolist())
    # The pools are read in place (R's result is alive during this call); every
    # value taken from them is a copy.
    vecs = [_numpy(v, np.float64 if isinstance(v, ri.FloatSexpVector) else np.int32)
            for v in vecs_v]
    return packed.build(_numpy(spec_v, np.int32), _numpy(dbl_v, np.float64, copy=False),
                        _numpy(int_v, np.int32, copy=False), strs, vecs,
                        kept=[RObject(v) for v in kept_v])


def frame_to_pandas(obj: Any) -> pd.DataFrame:
    """An R data.frame -> pandas, factors as Categoricals with R's level order."""
    import rpy2.rinterface as ri

    names = _names(obj) or []
    data: dict[str, Any] = {}
    for name, col in zip(names, obj):
        levels_attr = _attr(col, "levels")
        if levels_attr is not None and isinstance(col, ri.IntSexpVector):
            levels = [str(v) for v in levels_attr]
            codes = _numpy(col, np.int32).astype(np.int64)
            codes = np.where(codes == NA_INTEGER, -1, codes - 1)
            klass = [str(c) for c in col.do_slot("class")]
            data[name] = pd.Categorical.from_codes(codes, categories=levels,
                                                   ordered="ordered" in klass)
        elif isinstance(col, ri.IntSexpVector):
            raw = _numpy(col, np.int32)
            na = raw == NA_INTEGER
            data[name] = pd.array(np.where(na, 0, raw), dtype="Int64") if na.any() else \
                raw.astype(np.int64)
            if na.any():
                data[name][na] = pd.NA
        elif isinstance(col, ri.FloatSexpVector):
            data[name] = _numpy(col, np.float64)
        else:
            data[name] = _atomic(col)
    return pd.DataFrame(data)

