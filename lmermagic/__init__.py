"""lmermagic: R's lme4 and lmerTest mixed models as IPython magics and a pandas API.

R starts at the first fit, not at import::

    %load_ext lmermagic
    %lmer -d dietox -o m  Weight ~ Time + (1 + Time | Pig)
    m.coefs
"""

from __future__ import annotations

from typing import Any

from . import datasets
from .api import glmer, lmer
from .errors import (
    ConversionError,
    ConvergenceWarning,
    DataError,
    FitError,
    FormulaError,
    LmerError,
    LmerTimeoutError,
    LmerWarning,
    RNotAvailableError,
    RPackageMissingError,
    SingularFitWarning,
    UnsafeFormulaError,
)
from .model import LmerModel
from .request import ALLOWED_FUNCTIONS

__version__ = "0.1.0"

__all__ = [
    "lmer",
    "glmer",
    "datasets",
    "LmerModel",
    "ALLOWED_FUNCTIONS",
    "LmerError",
    "FormulaError",
    "UnsafeFormulaError",
    "DataError",
    "ConversionError",
    "FitError",
    "LmerTimeoutError",
    "RNotAvailableError",
    "RPackageMissingError",
    "LmerWarning",
    "ConvergenceWarning",
    "SingularFitWarning",
    "load_ipython_extension",
    "__version__",
]


def load_ipython_extension(ipython: Any) -> None:
    """Register %lmer, %%lmer, %glmer and %%glmer (called by %load_ext)."""
    from .magics import LmerMagics

    magics = LmerMagics(shell=ipython)
    ipython.register_magics(magics)
    # %config LmerMagics.timeout = ... reaches the instance through this list.
    if magics not in ipython.configurables:
        ipython.configurables.append(magics)
