"""The Python API of glmmTMB fits: ``glmmtmb()``. The magics call it."""

from __future__ import annotations

import os
from typing import Any

from .fitting import issue_warnings
from .rbridge import time_limit
from .tmb_fit import tmb_fields
from .tmb_model import TmbModel
from .tmb_request import TMB_FAMILIES, TmbRequest

__all__ = ["TMB_FAMILIES", "TmbModel", "glmmtmb"]


def glmmtmb(
    formula: str,
    data: Any,
    *,
    family: str = "gaussian",
    ziformula: str | None = None,
    dispformula: str | None = None,
    reml: bool = False,
    weights: str | None = None,
    offset: str | None = None,
    factors: str | list[str] | None = None,
    allow_functions: list[str] | tuple[str, ...] = (),
    timeout: float | None = None,
    isolate: bool = False,
    memory_limit: float | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    data_name: str | None = None,
    name: str | None = None,
) -> TmbModel:
    """Fit a generalized linear mixed model with R's ``glmmTMB::glmmTMB``.

    Parameters
    ----------
    formula : str
        The conditional model, lme4's formula language:
        ``"count ~ mined + (1 | site)"``.
    data : pandas.DataFrame or polars.DataFrame
        Only the columns the formulas (and ``weights``, ``offset``) use are sent
        to R; the frame is not changed.
    family : str
        One of gaussian, binomial, poisson, nbinom1, nbinom2, Gamma,
        beta_family, tweedie, truncated_poisson, truncated_nbinom2, optionally
        with a link as glmmTMB names it: ``"Gamma(link='log')"``.
    ziformula : str, optional
        The zero-inflation model, one-sided: ``"~ mined"``, ``"~ 1"``. With a
        truncated family it is the hurdle (zero) part.
    dispformula : str, optional
        The dispersion model, one-sided: ``"~ x"``.
    reml : bool
        REML instead of maximum likelihood.
    weights, offset : str, optional
        Column names.
    factors : list of str or str, optional
        Columns to turn into R factors.
    allow_functions : sequence of str
        Functions to allow in the formulas beyond the built-in allowlist.
    timeout : float, optional
        Seconds after which R is stopped and LmerTimeoutError raised.
    isolate, memory_limit : bool, float
        Fit in a worker process with its own R (memory_limit GB at most), as
        for :func:`lmermagic.lmer`: Ctrl-C and ``timeout`` end the worker,
        not the notebook.
    cache_dir : str or path, optional
        Also keep the fit in this directory, as for :func:`lmermagic.lmer`;
        fits are always remembered in memory for the session, and
        ``model.meta["cache"]`` says whether this one came from ``"memory"``,
        ``"disk"`` or was fitted (``"miss"``).
    data_name, name : str, optional
        The data's name (shown, and in ``r_code()``) and the model's.

    Returns
    -------
    TmbModel

    Examples
    --------
    >>> sal = lmermagic.datasets.load("Salamanders", package="glmmTMB")
    >>> m = lmermagic.glmmtmb("count ~ mined + (1 | site)", sal, family="nbinom2",
    ...                       ziformula="~ mined")
    >>> m.coefs          # component cond / zi
    """
    request = TmbRequest.build(formula, family=family, ziformula=ziformula,
                               dispformula=dispformula, reml=reml, weights=weights,
                               offset=offset, factors=factors,
                               data_name=data_name or getattr(data, "name", None) or "data",
                               name=name, extra_functions=tuple(allow_functions),
                               timeout=timeout, isolate=isolate,
                               memory_limit=memory_limit, cache_dir=cache_dir)
    return fit_tmb(request, data)


def fit_tmb(request: TmbRequest, data: Any) -> TmbModel:
    """Fit ``request`` on ``data`` and return the model (R's warnings issued)."""
    with time_limit(request.timeout):
        fields = tmb_fields(request, data)
    issue_warnings(fields["warnings"])
    return TmbModel(**fields)
