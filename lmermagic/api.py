"""The Python API: ``lmer`` and ``glmer``. The magics call these."""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any

from . import cache, convert, savefile, tmb_save, warmstart
from .errors import DataError
from .fitting import issue_warnings
from .isolation import fit_any
from .model import LmerModel
from .rbridge import time_limit
from .request import FitRequest
from .tmb_model import TmbModel
from .toolbox.many import ManyModels, Plan, fit_many, plan_models

__all__ = ["clear_cache", "fit", "glmer", "glmer_many", "lmer", "lmer_many"]


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
    warm_start : bool or {"subsample", "mixedlm"}
        Start lme4's optimizer from a cheap estimate of the variance parameters
        instead of its default: ``"subsample"`` fits the model on a fifth of the
        levels of the largest grouping factor first; ``"mixedlm"`` takes the
        estimate from the Python package mixedlm (optional); True picks mixedlm
        when it is installed. lme4 still optimizes to its own tolerance, so the
        estimates agree with the default start's to about that tolerance
        (benchmarks/WARMSTART.md); ``meta`` reports the start and the
        evaluations. If the estimate cannot be had, the default start is used
        and ``meta["warm_start"]`` says why.

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


def load_model(path: str | os.PathLike[str],
               allow_functions: list[str] | tuple[str, ...] = ()) -> LmerModel | TmbModel:
    """Read a model that ``m.save(path)`` wrote, with every method working.

    Parameters
    ----------
    path : str or path-like
        The file.
    allow_functions : list of str
        Functions beyond lmermagic's allowlist that the model's formula may
        call, as for ``lmer(allow_functions=...)``: given by you, never taken
        from the file.

    Raises
    ------
    ModelFileError
        The file is not a whole model saved by lmermagic (a byte changed, cut
        short, another kind of file), was saved by a newer lmermagic, or holds
        R objects lmermagic does not write (see ``docs/reliability.md``).

    Examples
    --------
    >>> m.save("sleep.lmm")
    >>> m2 = lmermagic.load_model("sleep.lmm")
    """
    tmb = tmb_save.load_fields(path, tuple(allow_functions))  # a glmmTMB model's file
    if tmb is not None:
        return TmbModel(**tmb)
    return LmerModel(**savefile.load_fields(path, tuple(allow_functions)))


def clear_cache(cache_dir: str | os.PathLike[str] | None = None) -> int:
    """Forget the fits remembered in memory and, with ``cache_dir``, delete the
    fits stored there. Returns how many were deleted from ``cache_dir``."""
    return cache.clear(cache_dir)


def lmer_many(
    formula: str | dict[str, str],
    data: Any,
    *,
    responses: list[str] | None = None,
    by: str | list[str] | None = None,
    backend: Any = None,
    workers: int | None = None,
    p_adjust: str = "BH",
    keep_models: bool = False,
    progress: bool = True,
    timeout: float | None = None,
    chunk_size: int | None = None,
    **lmer_options: Any,
) -> ManyModels:
    """Fit many linear mixed models and return one set of tidy tables.

    Three modes, which combine:

    - ``responses=[...]``: the formula's right-hand side fitted to each
      response column (``formula`` may be one-sided, ``"~ Days + (Days | Subject)"``);
      key column ``response``. Responses with the same missing-value pattern
      share the design, which lme4 then builds once.
    - ``by="col"`` or ``by=[...]``: one model per distinct value (rows with a
      missing ``by`` value are left out); key columns the ``by`` columns.
    - ``formula`` a dict of name -> formula: a formula grid; key column ``model``.

    Parameters
    ----------
    formula : str or dict of str
    data : pandas.DataFrame or polars.DataFrame
    responses, by
        As above.
    backend : {"serial", "processes", "dask"} or distributed.Client, optional
        Where the models are fitted: the notebook's own R (default with one
        worker), local worker processes with an R each (default with
        ``workers > 1``), a new Dask LocalCluster of ``workers`` processes, or
        the cluster of a ``distributed.Client``. The tables are the same, bit
        for bit, whatever the backend and number of workers.
    workers : int, optional
        Up to this many local worker processes, used only when they pay off:
        a few models are fitted here and timed first, and the rest go to the
        workers if they would finish sooner, counting the start of each one
        not already warm (about 2 s; the session keeps workers warm between
        batches, see ``lmermagic.shutdown_workers``). ``meta["workers_used"]``
        and ``meta["workers_reason"]`` say what ran. With
        ``backend="processes"``: exactly this many processes (default: up to
        4, one per core); with ``backend="dask"``: the LocalCluster's size.
    p_adjust : str
        R's ``p.adjust`` method for ``p_adjusted``, per term across models:
        ``"BH"`` (default), ``"BY"``, ``"holm"``, ``"hochberg"``, ``"hommel"``,
        ``"bonferroni"`` or ``"none"``.
    keep_models : bool
        Also fit each model in the notebook's R and keep it in ``.models``
        (key -> LmerModel): costs a whole fit per model.
    progress : bool
        Show models done and failed while they run.
    timeout : float, optional
        Seconds for the whole batch; past it every worker is stopped and
        LmerTimeoutError raised.
    chunk_size : int, optional
        Models per task (default: about eight tasks per worker, at most 200).
    **lmer_options
        As for :func:`lmer`: ``reml``, ``ddf`` ("satterthwaite" or "lme4"),
        ``factors``, ``weights``, ``offset``, ``contrasts``, ``control``,
        ``allow_functions``.

    Returns
    -------
    ManyModels
        ``coefs``, ``glance``, ``varcorr``, ``errors``, ``warnings`` and ``tidy()``.
    """
    return _many("lmer", formula, data, responses, by, backend, workers, p_adjust,
                 keep_models, progress, timeout, chunk_size, lmer_options)


def glmer_many(
    formula: str | dict[str, str],
    data: Any,
    *,
    family: str = "binomial",
    responses: list[str] | None = None,
    by: str | list[str] | None = None,
    backend: Any = None,
    workers: int | None = None,
    p_adjust: str = "BH",
    keep_models: bool = False,
    progress: bool = True,
    timeout: float | None = None,
    chunk_size: int | None = None,
    **glmer_options: Any,
) -> ManyModels:
    """Fit many generalized linear mixed models (lme4's ``glmer``) and return
    one set of tidy tables: as :func:`lmer_many`, with ``family`` and the
    options of :func:`glmer` (``nagq`` among them); z tests, ``df = inf``."""
    return _many("glmer", formula, data, responses, by, backend, workers, p_adjust,
                 keep_models, progress, timeout, chunk_size,
                 {**glmer_options, "family": family})


_MANY_REFUSED = ("isolate", "memory_limit", "cache_dir", "allow_large")


def _many(kind: str, formula: str | dict[str, str], data: Any, responses: Any, by: Any,
          backend: Any, workers: int | None, p_adjust: str, keep_models: bool,
          progress: bool, timeout: float | None, chunk_size: int | None,
          options: dict[str, Any]) -> ManyModels:
    for name in _MANY_REFUSED:
        if name in options:
            raise DataError(f"{kind}_many does not take {name}=: the models run in workers "
                            "of their own (backend=, workers=, timeout=).")
    options = dict(options)
    extra = tuple(options.pop("allow_functions", ()))
    template = formula if isinstance(formula, str) else next(iter(formula.values()), "")
    try:
        request = FitRequest.build(template or "~ 1", kind=kind, extra_functions=extra,
                                   data_name=getattr(data, "name", None) or "data",
                                   **options)
    except TypeError as exc:
        raise DataError(f"{kind}_many: {exc}") from None
    df = convert.as_pandas(data, request.data_name)
    convert.check_labels(df, request.data_name)
    if len(df) == 0:
        raise DataError(f"'{request.data_name}' has no rows: there is nothing to fit.")
    with time_limit(timeout):  # planning's wait for R (another thread's fit) counts too
        plan = plan_models(formula, df, request, responses=responses, by=by)
        mm = fit_many(plan, backend=backend, workers=workers, p_adjust=p_adjust,
                      progress_bar=progress, chunk_size=chunk_size, timeout=timeout)
    if keep_models:
        mm.models = _keep(plan, mm, df)
    return mm


def _keep(plan: Plan, mm: ManyModels, df: Any) -> dict[Any, LmerModel]:
    """Each fitted model of the batch, fitted again in the notebook's R."""
    failed = set(map(tuple, mm.errors[mm.key].itertuples(index=False, name=None)))
    out: dict[Any, LmerModel] = {}
    for i, key in enumerate(plan.keys.itertuples(index=False, name=None)):
        if key in failed:
            continue
        data = df if plan.rows is None else df.iloc[plan.rows[i] - 1]
        request = dataclasses.replace(plan.request, formula=plan.formulas[i])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the batch's warnings table has them
            out[key[0] if len(key) == 1 else key] = fit(request, data)
    return out
