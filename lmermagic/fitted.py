"""The fields of a fitted model: what R computed, as pandas objects.

The base of :class:`lmermagic.LmerModel` and :class:`lmermagic.TmbModel`, which
add the methods and the display. The modules below the model (the fit machinery,
the toolbox) build and read these fields without knowing the methods that call
them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["FittedModel"]


@dataclass(frozen=True, eq=False, repr=False)
class FittedModel:
    """A fitted model's results; the fields are documented on
    :class:`lmermagic.LmerModel` and :class:`lmermagic.TmbModel`."""

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
        """The fitted R model itself, as an rpy2 object.

        For :class:`lmermagic.LmerModel` lme4's ``lmerMod`` (lmerTest's
        ``lmerModLmerTest`` with Kenward-Roger df) or ``glmerMod``; for
        :class:`lmermagic.TmbModel` glmmTMB's ``glmmTMB`` object. Use it to
        call R functions lmermagic does not wrap, through rpy2
        (``rpy2.robjects``); call them, and drop the object, in the thread
        that uses R.

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> m.robj.rclass[0]
        'lmerMod'
        """
        return self.r_object.sexp

    @property
    def fixef(self) -> pd.Series:
        """The fixed-effect estimates, as R's ``fixef(m)``.

        A Series named ``fixef``, indexed by R's term names: the
        ``estimate`` column of ``m.coefs``.

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> print(m.fixef.round(2).to_string())
        term
        (Intercept)    251.41
        Days            10.47
        """
        return self.coefs["estimate"].rename("fixef")
