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

    glmmTMB fits by maximum likelihood (Laplace approximation, TMB's automatic
    differentiation) the families lme4 has and more (negative binomial, beta,
    Tweedie, truncated counts), with optional zero-inflation and dispersion
    models. The call equals R's ``glmmTMB(formula, data, family = ...,
    ziformula = ..., dispformula = ..., REML = ...)``. Every formula is checked
    against lmermagic's allowlist before R sees it; only the columns the
    formulas use cross to R. A fit with the same call and column contents is
    taken from the session's fit cache.

    Parameters
    ----------
    formula : str
        The conditional model, in lme4's formula language:
        ``"count ~ mined + (1 | site)"``.
    data : pandas.DataFrame or polars.DataFrame
        The data; the frame is not changed.
    family : str
        One of gaussian, binomial, poisson, nbinom1, nbinom2, Gamma,
        beta_family, tweedie, truncated_poisson, truncated_nbinom2, optionally
        with a link as glmmTMB names it: ``"Gamma(link='log')"``,
        ``"binomial(probit)"``. Default ``"gaussian"``.
    ziformula : str, optional
        The zero-inflation model, one-sided: ``"~ mined"``, ``"~ 1"``. With a
        truncated family it is the hurdle (zero) part.
    dispformula : str, optional
        The dispersion model, one-sided: ``"~ x"``.
    reml : bool
        REML instead of maximum likelihood.
    weights : str, optional
        Name of the column of prior weights.
    offset : str, optional
        Name of the column used as an offset of the conditional model.
    factors : str or list of str, optional
        Columns to turn into R factors (e.g. numeric codes of a group).
    allow_functions : list of str or tuple of str
        Functions to allow in the formulas beyond the built-in allowlist.
    timeout : float, optional
        Seconds after which R is stopped and ``lmermagic.LmerTimeoutError``
        raised.
    isolate : bool
        Fit in a worker process with its own R, as for
        :func:`lmermagic.lmer`: Ctrl-C and ``timeout`` end the worker, not the
        notebook.
    memory_limit : float, optional
        With ``isolate``, the worker's memory limit in GB.
    cache_dir : str or os.PathLike, optional
        Also keep the fit in this directory, as for :func:`lmermagic.lmer`;
        fits are always remembered in memory for the session, and
        ``m.meta["cache"]`` says whether this one came from ``"memory"``,
        ``"disk"`` or was fitted (``"miss"``).
    data_name : str, optional
        The data's name, shown and used by ``r_code()``; default the frame's
        ``name`` attribute, else ``"data"``.
    name : str, optional
        The model's name.

    Returns
    -------
    lmermagic.TmbModel
        The fit; R's warnings are issued as Python warnings and kept in
        ``m.warnings``.

    Raises
    ------
    lmermagic.DataError
        The family or link is not one glmmTMB offers, an option has the wrong
        type, ``data`` is empty or not a data frame, ``factors``, ``weights``
        or ``offset`` names no column of it, or R's checks of the data
        refused it.
    lmermagic.FormulaError
        A formula cannot be parsed, names a variable that is not a column, or
        calls a function outside the allowlist
        (``lmermagic.UnsafeFormulaError`` for code that could run).
    lmermagic.RPackageMissingError
        The R package glmmTMB is not installed.
    lmermagic.FitError
        glmmTMB stopped with an error (R's message is kept in
        ``r_message``); ``lmermagic.WorkerMemoryError`` when an isolated fit
        ran out of its ``memory_limit``.
    lmermagic.LmerTimeoutError
        The fit took longer than ``timeout``.

    See Also
    --------
    lmermagic.TmbModel : The fitted model and its methods.
    lmermagic.glmer : lme4's generalized linear mixed models.

    Examples
    --------
    A zero-inflated negative binomial model, as R's ``glmmTMB(count ~ mined +
    (1 | site), data = sal, family = nbinom2, ziformula = ~ mined)``:

    >>> import lmermagic
    >>> sal = lmermagic.datasets.load("Salamanders", package="glmmTMB")
    >>> m = lmermagic.glmmtmb("count ~ mined + (1 | site)", sal, family="nbinom2",
    ...                       ziformula="~ mined")
    >>> m.coefs[["component", "term"]].values.tolist()
    [['cond', '(Intercept)'], ['cond', 'minedno'], ['zi', '(Intercept)'], ['zi', 'minedno']]
    >>> print(round(m.fixef["minedno"], 2))
    1.47
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
