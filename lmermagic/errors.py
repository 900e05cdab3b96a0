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
    """Root of all lmermagic errors: ``except lmermagic.LmerError`` catches any of them.

    Raised itself only when a magic runs outside an IPython shell, or for an
    internal inconsistency (the message says so); a failure otherwise raises
    one of its subclasses, which also derive from the builtin a user would
    catch (``ValueError``, ``ImportError``, ``RuntimeError``,
    ``TimeoutError``). In IPython the error shows as one short message,
    without a traceback.
    """

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a full traceback: one clear message.
        name = type(self).__name__
        return [f"\x1b[31m{name}\x1b[0m: {line}" if i == 0 else line
                for i, line in enumerate(str(self).splitlines() or [""])]


class FormulaError(LmerError, ValueError):
    """The formula cannot be parsed, or names something that is not a column.

    Raised before any fit, when R's parser rejects the formula, a variable is
    not a column of the data (the message suggests close names), a
    covariance structure needs a newer lme4, or the formula is too large for
    R. Correct the formula; also a ``ValueError``.
    """


class UnsafeFormulaError(FormulaError):
    """The formula calls a function outside the allowlist.

    Raised before R evaluates anything: a formula is R code, and only
    formula operators and model transformations (``lmermagic.ALLOWED_FUNCTIONS``)
    may run. If you trust the function, allow it with
    ``allow_functions=["name"]`` (the magics' ``--allow NAME``).
    """


class DataError(LmerError, ValueError):
    """The data argument, a column or an option is not usable.

    Raised before R fits anything, for a bad argument value (an unknown
    ``ddf``, a non-positive ``nsim``, ...), a data argument that is not a
    data frame or has no rows, or a column that cannot be used as given. The
    message names the argument and the values it takes; also a ``ValueError``.
    """


class ConversionError(DataError):
    """A column cannot be handed to R faithfully.

    Raised while the data are converted for R, when a value would change on
    the way: infinite values, integers beyond what R stores exactly,
    time-zone-aware datetimes, mixed types in one column, text with a NUL
    character. The message names the column and a conversion to apply first.
    """


class DesignTooLargeError(DataError):
    """The model's matrices would not fit in memory, or building them would take
    too long: refused before R builds them.

    Raised by the pre-flight check of :func:`lmermagic.lmer` and
    :func:`lmermagic.glmer` when the fixed-effects matrix would take over half
    the available memory or its rank check would take over 5 minutes (the
    limits: ``%config LmerMagics.max_memory_share`` and ``max_seconds``). Check
    the design (a factor with many levels as a fixed effect?), or pass
    ``allow_large=True`` to fit anyway (with ``isolate=True`` to keep the
    notebook safe).
    """


class FitError(LmerError, RuntimeError):
    """R raised an error while fitting or evaluating a model.

    The message quotes R's (cut to its first 600 characters); the whole of
    it is in ``r_message``. Raised when lme4 (or lmerTest, emmeans, car, ...)
    stops with an error, or an isolated fit's worker process fails. Read R's
    message: it usually names the problem in the data or the model.

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
    is unharmed.

    Raised by a fit with ``isolate=True`` past its ``memory_limit``. Check
    the design, or raise ``memory_limit=`` if the machine has the memory;
    the next fit starts a new worker. Also a ``MemoryError``.
    """


class ModelFileError(LmerError, ValueError):
    """A file given to :func:`lmermagic.load_model` is not a whole model saved
    by this or an older lmermagic (or holds what lmermagic does not write).

    Raised for a file that was changed or cut short, another kind of file, a
    model saved by a newer lmermagic or an lme4 this R cannot read back, or
    a formula that calls a function not allowed here. Nothing in the file is
    run. Save the model again with ``m.save(path)``, or refit it from its
    data.
    """


class LmerTimeoutError(LmerError, TimeoutError):
    """A fit ran longer than its ``timeout``; R was stopped and stays usable.

    Raised by a fit or a batch of :func:`lmermagic.lmer_many` given
    ``timeout=`` (the magics' ``--timeout``), counting any wait for another
    fit. Raise the timeout, simplify the model, or fit with ``isolate=True``,
    which ends the fit's own process at once. Also a ``TimeoutError``.
    """


class RNotAvailableError(LmerError, ImportError):
    """R itself, or rpy2, cannot be loaded.

    Raised at the first call that needs R (R starts then, not at import),
    when rpy2 is missing, R is not installed or not found (``R_HOME``), or
    rpy2 was built against another R. The message says which; install R and
    rpy2 (``pip install rpy2``) or set ``R_HOME``. Also an ``ImportError``.
    """


class RPackageMissingError(LmerError, ImportError):
    """An R package lmermagic needs is not installed.

    Raised when a call needs an R package this R lacks (lmerTest for
    Satterthwaite tests, pbkrtest for Kenward-Roger, emmeans, car, glmmTMB,
    ordinal, ...). The message names the package and how to install it, e.g.
    ``install.packages('pbkrtest')`` in R. Also an ``ImportError``.
    """


class OptionalDependencyError(LmerError, ImportError):
    """A Python package behind an optional feature is not installed.

    Raised by a feature that needs one (matplotlib for the plots, ...); the
    message names the ``pip install`` that adds it. Also an ``ImportError``.
    """


class LmerWarning(UserWarning):
    """A warning or message R emitted while fitting.

    Issued (never raised) at the user's line, once per distinct text; the
    model keeps them all in ``m.warnings``. Filter with Python's ``warnings``
    module, e.g. ``warnings.simplefilter("ignore", lmermagic.LmerWarning)``.
    """


class ConvergenceWarning(LmerWarning):
    """The optimizer did not converge cleanly.

    Issued when lme4 reports a convergence problem (a large gradient, a
    nearly unidentifiable model). Check the model, rescale predictors, or
    compare optimizers with ``m.allfit()``.
    """


class SingularFitWarning(LmerWarning):
    """The fit is singular (a variance estimate on the boundary).

    Issued when lme4 reports ``boundary (singular) fit``: a variance is
    estimated as zero or a correlation as +-1. Consider a simpler
    random-effects structure.
    """


class CacheWarning(UserWarning):
    """The fit cache could not use a directory or an entry; the model was fitted.

    Issued when ``cache_dir`` cannot be created or opened privately, or an
    entry cannot be read or fails its check (changed or cut short). The result is
    right, only not cached: fix the directory's permissions, or empty it with
    ``lmermagic.clear_cache(cache_dir)``.
    """


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
