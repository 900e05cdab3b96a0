"""The fields of a fitted model: what R computed, as pandas objects.

The base of :class:`lmermagic.model.LmerModel`, which adds the methods and the
display. The modules below the model (the fit machinery, the toolbox) build and
read these fields without knowing the methods that call them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["FittedModel"]


@dataclass(frozen=True, eq=False, repr=False)
class FittedModel:
    """A fitted lme4 model's results; the fields are documented on
    :class:`lmermagic.LmerModel`."""

    formula: str
    kind: str
    family: str
    link: str
    reml: bool
    ddf: str
    coefs: pd.DataFrame
    ranef: dict[str, pd.DataFrame]
    varcorr: pd.DataFrame
    fitted: pd.Series
    residuals: pd.Series
    nobs: int
    ngroups: dict[str, int]
    loglik: float
    df_model: int
    aic: float
    bic: float
    deviance: float
    reml_criterion: float
    sigma: float
    converged: bool
    singular: bool
    warnings: list[str]
    dropped: pd.Index
    missing: dict[str, int]
    theta: np.ndarray
    data_name: str
    r_object: Any = field(default=None)
    r_data: Any = field(default=None)
    request: Any = field(default=None)
    data: Any = field(default=None)
    name: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def robj(self) -> Any:
        """The underlying R model (an rpy2 object). Drop it in the thread that uses R."""
        return self.r_object.sexp

    @property
    def fixef(self) -> pd.Series:
        return self.coefs["estimate"].rename("fixef")
