"""The exception and warning tree of lmermagic.

Every error raised by the package derives from :class:`LmerError`; each also
derives from the builtin a user would naturally catch (``ValueError`` for bad
input, ``ImportError`` for a missing R package, ``RuntimeError`` for a failed
fit).
"""

from __future__ import annotations

import difflib
import inspect
import warnings
from collections.abc import Iterable

__all__ = [
    "CacheWarning",
    "ConvergenceWarning",
    "ConversionError",
    "DataError",
    "DesignTooLargeError",
    "FitError",
    "FormulaError",
    "LmerError",
    "LmerTimeoutError",
    "LmerWarning",
    "ModelFileError",
    "OptionalDependencyError",
    "RNotAvailableError",
    "RPackageMissingError",
    "SingularFitWarning",
    "UnsafeFormulaError",
    "WorkerMemoryError",
]


class LmerError(Exception):
    """Root of all lmermagic errors."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a full traceback: one clear message.
        name = type(self).__name__
        return [f"\x1b[31m{name}\x1b[0m: {line}" if i == 0 else line
                for i, line in enumerate(str(self).splitlines() or [""])]


class FormulaError(LmerError, ValueError):
    """The formula cannot be parsed, or names something that is not a column."""


class UnsafeFormulaError(FormulaError):
    """The formula calls a function outside the allowlist."""


class DataError(LmerError, ValueError):
    """The data argument, a column or an option is not usable."""


class ConversionError(DataError):
    """A column cannot be handed to R faithfully."""


class DesignTooLargeError(DataError):
    """The model's matrices would not fit in memory, or building them would take
    longer than the limit: refused before R builds them (``allow_large=True``
    fits anyway)."""


class FitError(LmerError, RuntimeError):
    """R raised an error while fitting or evaluating a model.

    Attributes
    ----------
    r_message : str
        R's own error message, verbatim.
    """

    def __init__(self, message: str, r_message: str = "") -> None:
        super().__init__(message)
        self.r_message = r_message


class WorkerMemoryError(FitError, MemoryError):
    """An isolated fit's worker process ran out of memory (or was killed, as
    the operating system kills a process that takes too much); the notebook
    is unharmed."""


class ModelFileError(LmerError, ValueError):
    """A file given to :func:`lmermagic.load_model` is not a whole model saved
    by this or an older lmermagic (or holds what lmermagic does not write)."""


class LmerTimeoutError(LmerError, TimeoutError):
    """A fit ran longer than its ``timeout``; R was stopped and stays usable."""


class RNotAvailableError(LmerError, ImportError):
    """R itself, or rpy2, cannot be loaded."""


class RPackageMissingError(LmerError, ImportError):
    """An R package lmermagic needs is not installed."""


class OptionalDependencyError(LmerError, ImportError):
    """A Python package behind an optional feature is not installed (the
    message names the ``pip install`` that adds it)."""


class LmerWarning(UserWarning):
    """A warning or message R emitted while fitting."""


class ConvergenceWarning(LmerWarning):
    """The optimizer did not converge cleanly."""


class SingularFitWarning(LmerWarning):
    """The fit is singular (a variance estimate on the boundary)."""


class CacheWarning(UserWarning):
    """The fit cache could not use a directory or an entry; the model was fitted."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for close matches of ``name``, else ``""``."""
    pool = [c for c in candidates if isinstance(c, str)]
    close = difflib.get_close_matches(name, pool, n=3, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in pool}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    if not close:
        return ""
    quoted = " or ".join(f"'{c}'" for c in close)
    return f" Did you mean {quoted}?"


# R's error text can hold a dump of data values: messages show its start,
# ``r_message`` all of it.
_MAX_R_MESSAGE = 600
# Frames of these packages are not the user's line: lmermagic's own, and
# IPython's dispatch between a notebook cell and a magic.
_NOT_THE_CALLER = ("lmermagic", "IPython")


def excerpt(msg: str) -> str:
    """R's message, cut to its first 600 characters."""
    return msg if len(msg) <= _MAX_R_MESSAGE else msg[:_MAX_R_MESSAGE] + " [...]"


def warning_class(text: str) -> type[LmerWarning]:
    """The warning class for one of R's warnings or messages."""
    low = text.lower()
    if "singular" in low:
        return SingularFitWarning
    if "converge" in low or "eigenvalue" in low or "gradient" in low:
        return ConvergenceWarning
    return LmerWarning


def caller_stacklevel() -> int:
    """``warnings.warn``'s stacklevel, for a warning issued by this function's
    caller, that points at the user's line: the script's call, or the
    notebook cell, past lmermagic's frames and IPython's magic dispatch."""
    level = 1
    frame = inspect.currentframe()
    try:
        f = frame.f_back if frame is not None else None
        while f is not None and str(f.f_globals.get("__name__", "")).startswith(
                _NOT_THE_CALLER):
            f = f.f_back
            level += 1
        return level
    finally:
        del frame


def reissue(texts: Iterable[str], prefix: str = "", limit: int | None = None) -> None:
    """Re-issue R's warnings and messages (each text once) as lmermagic's
    warning classes, at the user's line; past ``limit``, one warning says how
    many more there were."""
    unique = [t for t in dict.fromkeys(texts) if t]
    level = caller_stacklevel()
    for text in unique[:limit]:
        warnings.warn(prefix + text, warning_class(text), stacklevel=level)
    if limit is not None and len(unique) > limit:
        warnings.warn(f"{prefix}... and {len(unique) - limit} more R warnings: see "
                      "model.warnings", LmerWarning, stacklevel=level)
