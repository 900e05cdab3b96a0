"""The Python API: ``lmer``, ``glmer`` and ``fit``. The magics call these; many_api.py's
batches refit their kept models with ``fit``."""

from __future__ import annotations

import os
from typing import Any

from . import warmstart
from .errors import DataError
from .fitting import issue_warnings
from .isolation import fit_any
from .model import LmerModel
from .request import FitRequest

__all__ = ["fit", "glmer", "lmer"]


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
    warm_start: bool | str = False,
) -> LmerModel:
    """Fit a linear mixed model with R's ``lme4::lmer``, with lmerTest's t tests.

    The data's columns that the model uses go to R, where ``lmer(formula, data,
    REML = reml, ...)`` runs in an environment of its own; ``m.coefs`` then holds
    the t tests of lmerTest's ``summary()`` (Satterthwaite's df by default).
    Rows with a missing value in a used column are left out, as R's
    ``na.omit``. R's warnings are re-issued as lmermagic warnings.

    Parameters
    ----------
    formula : str
        An lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``. Every
        variable must be a column of ``data``; every function an allowed one.
    data : pandas.DataFrame or polars.DataFrame
        Only the columns the formula (and ``weights``, ``offset``) use are
        sent to R.
    reml : bool, optional
        REML (default True, R's ``REML = TRUE``) or maximum likelihood.
    ddf : {"satterthwaite", "kenward-roger", "lme4"}, optional
        Denominator degrees of freedom for the t tests (default
        ``"satterthwaite"``); ``"kenward-roger"`` needs R's pbkrtest;
        ``"lme4"`` gives no df and no p-values (and needs no lmerTest).
    factors : str or list of str, optional
        Columns to turn into R factors, as ``as.factor()`` in R.
    weights : str, optional
        Name of a column of prior weights (R's ``weights =``).
    offset : str, optional
        Name of a column to use as offset (``offset()`` in the formula works too).
    contrasts : dict or str, optional
        Column -> ``"treatment"``, ``"sum"``, ``"helmert"``, ``"poly"``, ``"SAS"``
        or ``"treatment:LEVEL"`` (reference level), as R's ``contrasts=``.
    control : dict, optional
        ``optimizer`` (bobyqa, Nelder_Mead, nloptwrap, nlminbwrap), ``maxfun``,
        ``calc_derivs`` and lme4's ``check.*`` settings ("ignore", "warning",
        "message", "stop"), as ``lmerControl()``.
    family : str, optional
        If given, fit a GLMM with :func:`lmermagic.glmer` instead (``reml``
        and ``ddf`` are then ignored).
    allow_functions : list of str, optional
        Functions to allow in the formula beyond the built-in allowlist
        (``lmermagic.ALLOWED_FUNCTIONS``); default none.
    timeout : float, optional
        Seconds after which R is stopped and ``LmerTimeoutError`` raised;
        default None, no limit.
    allow_large : bool, optional
        Fit even a design that the pre-flight check refuses (fixed-effects
        matrices over half the available memory, or a rank check estimated
        at over 5 minutes): see ``docs/reliability.md``. Default False.
    isolate : bool, optional
        Fit in a worker process with its own R (default False): Ctrl-C and
        ``timeout`` end it within about a second whatever R is doing, and
        running out of memory ends the worker, not the notebook. For large or
        unfamiliar designs and long-running notebooks.
    memory_limit : float, optional
        With ``isolate``: the worker's memory limit in GB (default 80 % of the
        memory available when the fit starts); past it, ``WorkerMemoryError``.
    cache_dir : str or os.PathLike, optional
        Also keep the fit in this directory (created private to the user), so
        that the same request on the same data comes back after a restart
        without refitting. Fits are always remembered in memory for the
        session; ``m.meta["cache"]`` says whether this one came from
        ``"memory"``, ``"disk"`` or was fitted (``"miss"``).
    warm_start : bool or {"subsample", "mixedlm"}, optional
        Start lme4's optimizer from a cheap estimate of the variance parameters
        instead of its default (default False): ``"subsample"`` fits the model
        on a fifth of the levels of the largest grouping factor first;
        ``"mixedlm"`` takes the estimate from the Python package mixedlm
        (optional); True picks mixedlm when it is installed, else subsample.
        lme4 still optimizes to its own tolerance, so the estimates agree with
        the default start's to about that tolerance; ``m.meta`` reports the
        start and the evaluations. If the estimate cannot be had, the default
        start is used and ``m.meta["warm_start"]`` says why.

    Returns
    -------
    lmermagic.LmerModel
        The fitted model: ``m.coefs`` (one row per fixed effect: ``estimate,
        std_error, df, statistic, p_value, conf_low, conf_high``),
        ``m.varcorr``, ``m.ranef``, fit statistics, and the toolbox methods.

    Raises
    ------
    lmermagic.FormulaError
        R cannot parse the formula, or it names something that is not a
        column of ``data`` (the message suggests close names).
    lmermagic.UnsafeFormulaError
        The formula calls a function outside the allowlist and
        ``allow_functions``.
    lmermagic.DataError
        ``data`` is not a data frame or has no rows, an option has a value it
        does not take (``ddf``, ``contrasts``, ``control``, ``warm_start``,
        ...), or ``warm_start`` is given with ``family``.
    lmermagic.ConversionError
        A column the model uses cannot be sent to R faithfully.
    lmermagic.DesignTooLargeError
        The pre-flight check refuses the design (unless ``allow_large``).
    lmermagic.FitError
        R's ``lmer`` stopped with an error (quoted), or the isolated worker
        failed.
    lmermagic.WorkerMemoryError
        With ``isolate``: the worker ran out of memory.
    lmermagic.LmerTimeoutError
        The fit took longer than ``timeout``.
    lmermagic.RPackageMissingError
        lmerTest (``ddf`` other than ``"lme4"``) or pbkrtest
        (``"kenward-roger"``) is not installed in R.
    lmermagic.RNotAvailableError
        R or rpy2 cannot be started.

    Warns
    -----
    lmermagic.LmerWarning
        R's warnings and messages (``ConvergenceWarning``,
        ``SingularFitWarning`` among them); all are kept in ``m.warnings``.

    See Also
    --------
    lmermagic.glmer : generalized linear mixed models.
    lmermagic.lmer_many : many models in one call, as tidy tables.

    Examples
    --------
    >>> import lmermagic
    >>> sleep = lmermagic.datasets.load("sleepstudy")
    >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    >>> list(m.coefs.columns)
    ['estimate', 'std_error', 'df', 'statistic', 'p_value', 'conf_low', 'conf_high']
    >>> print(round(float(m.coefs.loc["Days", "estimate"]), 2))
    10.47
    >>> print(round(float(m.coefs.loc["Days", "df"]), 1))
    17.0

    Maximum likelihood, and lme4's own table without df:

    >>> ml = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep, reml=False)
    >>> print(round(ml.loglik, 1))
    -876.0
    >>> plain = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep, ddf="lme4")
    >>> bool(plain.coefs["p_value"].isna().all())
    True
    """
    if family is not None:
        if warm_start:
            raise DataError("warm_start applies to lmer (linear mixed models) only; glmer "
                            "fits start from lme4's default. Leave warm_start unset with "
                            "family=.")
        return glmer(formula, data, family=family, factors=factors, weights=weights,
                     offset=offset, contrasts=contrasts, control=control,
                     allow_functions=allow_functions, timeout=timeout,
                     allow_large=allow_large, isolate=isolate, memory_limit=memory_limit,
                     cache_dir=cache_dir)
    request = FitRequest.build(formula, kind="lmer", reml=reml, ddf=ddf, factors=factors,
                               weights=weights, offset=offset, contrasts=contrasts,
                               control=control, extra_functions=tuple(allow_functions),
                               timeout=timeout, allow_large=allow_large, isolate=isolate,
                               memory_limit=memory_limit, cache_dir=cache_dir,
                               warm_start=warmstart.resolve(warm_start))
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

    Runs ``glmer(formula, data, family = ..., nAGQ = nagq, ...)`` (lme4's
    ``glmer.nb`` for the negative binomial) on the columns the model uses,
    as :func:`lmermagic.lmer` does; the tests are lme4's Wald z tests.

    Parameters
    ----------
    formula : str
        An lme4 formula, e.g.
        ``"cbind(incidence, size - incidence) ~ period + (1 | herd)"``.
    data : pandas.DataFrame or polars.DataFrame
        Only the columns the formula (and ``weights``, ``offset``) use are
        sent to R.
    family : str, optional
        ``"binomial"`` (default), ``"poisson"``, ``"Gamma"``,
        ``"inverse.gaussian"``, ``"gaussian"`` with a link other than identity,
        each optionally with a link (``"Gamma(link='log')"``,
        ``"binomial(probit)"``), or ``"negative_binomial"`` (lme4's
        ``glmer.nb``).
    factors : str or list of str, optional
        Columns to turn into R factors, as ``as.factor()`` in R.
    weights, offset : str, optional
        Names of the columns of prior weights and of an offset.
    contrasts : dict or str, optional
        As for :func:`lmermagic.lmer`.
    control : dict, optional
        As for :func:`lmermagic.lmer`, as ``glmerControl()``.
    nagq : int, optional
        Adaptive Gauss-Hermite quadrature points (lme4's ``nAGQ``; default
        None, lme4's 1: the Laplace approximation).
    allow_functions : list of str, optional
        Functions to allow in the formula beyond the built-in allowlist.
    timeout : float, optional
        Seconds after which R is stopped and ``LmerTimeoutError`` raised.
    allow_large, isolate : bool, optional
        As for :func:`lmermagic.lmer` (default False).
    memory_limit : float, optional
        With ``isolate``: the worker's memory limit in GB.
    cache_dir : str or os.PathLike, optional
        Also keep the fit in this directory, as for :func:`lmermagic.lmer`.

    Returns
    -------
    lmermagic.LmerModel
        The fitted model; ``m.coefs`` has lme4's z statistics, ``df = inf``,
        and Wald intervals on the link scale.

    Raises
    ------
    lmermagic.FormulaError
        R cannot parse the formula, or it names something that is not a
        column of ``data``.
    lmermagic.UnsafeFormulaError
        The formula calls a function outside the allowlist and
        ``allow_functions``.
    lmermagic.DataError
        ``data`` is not a data frame or has no rows, ``family`` is not one of
        those above (``"gaussian"`` with the identity link: use
        :func:`lmermagic.lmer`), ``nagq`` is negative, or another option has
        a value it does not take.
    lmermagic.ConversionError
        A column the model uses cannot be sent to R faithfully.
    lmermagic.DesignTooLargeError
        The pre-flight check refuses the design (unless ``allow_large``).
    lmermagic.FitError
        R's ``glmer`` stopped with an error (quoted), or the isolated worker
        failed.
    lmermagic.WorkerMemoryError
        With ``isolate``: the worker ran out of memory.
    lmermagic.LmerTimeoutError
        The fit took longer than ``timeout``.
    lmermagic.RNotAvailableError
        R or rpy2 cannot be started.

    Warns
    -----
    lmermagic.LmerWarning
        R's warnings and messages; all are kept in ``m.warnings``.

    Examples
    --------
    >>> import lmermagic
    >>> cbpp = lmermagic.datasets.load("cbpp")
    >>> g = lmermagic.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                     cbpp, family="binomial")
    >>> print(round(float(g.coefs.loc["period2", "estimate"]), 2))
    -0.99
    >>> float(g.coefs.loc["period2", "df"])
    inf
    >>> p = lmermagic.glmer("incidence ~ period + offset(log(size)) + (1 | herd)", cbpp,
    ...                     family="poisson")
    >>> p.family, p.link
    ('poisson', 'log')
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
