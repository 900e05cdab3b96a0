"""The Python API: ``lmer`` and ``glmer``. The magics call these."""

from __future__ import annotations

import os
from typing import Any

from . import cache
from .fitting import issue_warnings
from .isolation import fit_any
from .model import LmerModel
from .request import FitRequest

__all__ = ["clear_cache", "fit", "glmer", "lmer"]


def lmer(
    formula: str,
    data: Any,
    *,
    reml: bool = True,
    ddf: str = "satterthwaite",
    factors: str | list[str] | None = None,
    weights: str | None = None,
    offset: str | None = None,
    contrasts: dict[str, Any] | str | None = None,
    control: dict[str, Any] | None = None,
    family: str | None = None,
    allow_functions: list[str] | tuple[str, ...] = (),
    timeout: float | None = None,
    allow_large: bool = False,
    isolate: bool = False,
    memory_limit: float | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> LmerModel:
    """Fit a linear mixed model with R's ``lme4::lmer``, with lmerTest's t tests.

    Parameters
    ----------
    formula : str
        An lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``. Every
        variable must be a column of ``data``; every function an allowed one.
    data : pandas.DataFrame or polars.DataFrame
        Only the columns the formula (and ``weights``) use are sent to R.
    reml : bool
        REML (default) or maximum likelihood.
    ddf : {"satterthwaite", "kenward-roger", "lme4"}
        Denominator degrees of freedom for the t tests; ``"lme4"`` gives no
        df and no p-values.
    factors : list of str or str, optional
        Columns to turn into R factors, as ``as.factor()`` in R.
    weights : str, optional
        Name of a column of prior weights.
    offset : str, optional
        Name of a column to use as offset (``offset()`` in the formula works too).
    contrasts : dict, optional
        Column -> ``"treatment"``, ``"sum"``, ``"helmert"``, ``"poly"``, ``"SAS"``
        or ``"treatment:LEVEL"`` (reference level), as R's ``contrasts=``.
    control : dict, optional
        ``optimizer`` (bobyqa, Nelder_Mead, nloptwrap, nlminbwrap), ``maxfun``,
        ``calc_derivs`` and lme4's ``check.*`` settings ("ignore", "warning",
        "message", "stop"), as ``lmerControl()``.
    family : str, optional
        If given, fit a GLMM with :func:`glmer` instead.
    allow_functions : sequence of str
        Functions to allow in the formula beyond the built-in allowlist.
    timeout : float, optional
        Seconds after which R is stopped and LmerTimeoutError raised.
    allow_large : bool
        Fit even a design that the pre-flight check refuses (fixed-effects
        matrices over half the available memory, or a rank check estimated
        at over 5 minutes): see docs/reliability.md.
    isolate : bool
        Fit in a worker process with its own R: Ctrl-C and ``timeout`` end it
        within about a second whatever R is doing, and running out of memory
        ends the worker, not the notebook. For large or unfamiliar designs and
        long-running notebooks.
    memory_limit : float, optional
        With ``isolate``: the worker's memory limit in GB (default 80 % of the
        memory available when the fit starts); past it, WorkerMemoryError.
    cache_dir : str or path, optional
        Also keep the fit in this directory (created private to the user), so
        that the same request on the same data comes back after a restart
        without refitting. Fits are always remembered in memory for the
        session; ``model.meta["cache"]`` says whether this one came from
        ``"memory"``, ``"disk"`` or was fitted (``"miss"``).

    Returns
    -------
    LmerModel

    Examples
    --------
    >>> import lmermagic
    >>> sleep = lmermagic.datasets.load("sleepstudy")
    >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    >>> round(m.coefs.loc["Days", "estimate"], 4)
    10.4673
    """
    if family is not None:
        return glmer(formula, data, family=family, factors=factors, weights=weights,
                     offset=offset, contrasts=contrasts, control=control,
                     allow_functions=allow_functions, timeout=timeout,
                     allow_large=allow_large, isolate=isolate, memory_limit=memory_limit,
                     cache_dir=cache_dir)
    request = FitRequest.build(formula, kind="lmer", reml=reml, ddf=ddf, factors=factors,
                               weights=weights, offset=offset, contrasts=contrasts,
                               control=control, extra_functions=tuple(allow_functions),
                               timeout=timeout, allow_large=allow_large, isolate=isolate,
                               memory_limit=memory_limit, cache_dir=cache_dir)
    return fit(request, data)


def glmer(
    formula: str,
    data: Any,
    *,
    family: str = "binomial",
    factors: str | list[str] | None = None,
    weights: str | None = None,
    offset: str | None = None,
    contrasts: dict[str, Any] | str | None = None,
    control: dict[str, Any] | None = None,
    nagq: int | None = None,
    allow_functions: list[str] | tuple[str, ...] = (),
    timeout: float | None = None,
    allow_large: bool = False,
    isolate: bool = False,
    memory_limit: float | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> LmerModel:
    """Fit a generalized linear mixed model with R's ``lme4::glmer``.

    Parameters
    ----------
    formula : str
        e.g. ``"cbind(incidence, size - incidence) ~ period + (1 | herd)"``.
    data : pandas.DataFrame or polars.DataFrame
    family : str
        ``"binomial"``, ``"poisson"``, ``"Gamma(link='log')"``,
        ``"inverse.gaussian"``, ``"gaussian(link='log')"``, or
        ``"negative_binomial"`` (lme4's ``glmer.nb``).
    nagq : int, optional
        Adaptive Gauss-Hermite quadrature points (lme4's ``nAGQ``).
    factors, weights, offset, contrasts, control, allow_functions, timeout
    allow_large, isolate, memory_limit, cache_dir
        As for :func:`lmer`.

    Returns
    -------
    LmerModel
        ``coefs`` has z statistics and ``df = inf``.
    """
    request = FitRequest.build(formula, kind="glmer", family=family, factors=factors,
                               weights=weights, offset=offset, contrasts=contrasts,
                               control=control, nagq=nagq,
                               extra_functions=tuple(allow_functions), timeout=timeout,
                               allow_large=allow_large, isolate=isolate,
                               memory_limit=memory_limit, cache_dir=cache_dir)
    return fit(request, data)


def fit(request: FitRequest, data: Any) -> LmerModel:
    """Fit ``request`` on ``data`` in R and return the model."""
    fields = fit_any(request, data)
    issue_warnings(fields["warnings"])
    return LmerModel(**fields)


def clear_cache(cache_dir: str | os.PathLike[str] | None = None) -> int:
    """Forget the fits remembered in memory and, with ``cache_dir``, delete the
    fits stored there. Returns how many were deleted from ``cache_dir``."""
    return cache.clear(cache_dir)
