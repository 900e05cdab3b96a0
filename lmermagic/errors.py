"""The exception and warning tree of lmermagic.

Every error raised by the package derives from :class:`LmerError`; each also
derives from the builtin a user would naturally catch (``ValueError`` for bad
input, ``ImportError`` for a missing R package, ``RuntimeError`` for a failed
fit).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "ConvergenceWarning",
    "ConversionError",
    "DataError",
    "FitError",
    "FormulaError",
    "LmerError",
    "LmerTimeoutError",
    "LmerWarning",
    "RNotAvailableError",
    "RPackageMissingError",
    "SingularFitWarning",
    "UnsafeFormulaError",
    "did_you_mean",
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


class LmerTimeoutError(LmerError, TimeoutError):
    """A fit ran longer than its ``timeout``; R was stopped and stays usable."""


class RNotAvailableError(LmerError, ImportError):
    """R itself, or rpy2, cannot be loaded."""


class RPackageMissingError(LmerError, ImportError):
    """An R package lmermagic needs is not installed."""


class LmerWarning(UserWarning):
    """A warning or message R emitted while fitting."""


class ConvergenceWarning(LmerWarning):
    """The optimizer did not converge cleanly."""


class SingularFitWarning(LmerWarning):
    """The fit is singular (a variance estimate on the boundary)."""


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
