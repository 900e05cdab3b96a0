"""Many models in one call: ``lmer_many`` and ``glmer_many`` (re-exported by api.py;
the fitting and the tables are the toolbox's many.py and many_tables.py)."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

from . import convert
from .api import fit
from .errors import DataError
from .model import LmerModel
from .rbridge import time_limit
from .request import FitRequest
from .toolbox.many import ManyModels, Plan, fit_many, plan_models

__all__ = ["glmer_many", "lmer_many"]


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
    """Fit many linear mixed models (lme4's ``lmer``) and return one set of tidy tables.

    Each model is fitted as :func:`lmermagic.lmer` fits it (lmerTest's t tests,
    Satterthwaite's df by default), in chunks sent to R once per chunk; only
    the tables come back, not the R fits. Three modes, which combine:

    - ``responses=[...]``: the formula's right-hand side fitted to each
      response column (``formula`` may be one-sided, ``"~ Days + (Days | Subject)"``);
      key column ``response``. Responses with the same missing-value pattern
      share the design, which lme4 then builds once.
    - ``by="col"`` or ``by=[...]``: one model per distinct value (rows with a
      missing ``by`` value are left out); key columns the ``by`` columns.
    - ``formula`` a dict of name -> formula: a formula grid; key column ``model``.

    A model that fails does not stop the others: it gets a row in ``errors``.

    Parameters
    ----------
    formula : str or dict of str to str
        An lme4 formula, or a dict of model name -> formula (a formula grid).
    data : pandas.DataFrame or polars.DataFrame
        The data of every model; only the columns the models use are sent to R.
    responses : list of str, optional
        Response columns, each fitted with the formula's right-hand side.
    by : str or list of str, optional
        Columns whose distinct values (combinations) each get a model, fitted
        to their rows.
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
        batches, see :func:`lmermagic.shutdown_workers`). ``meta["workers_used"]``
        and ``meta["workers_reason"]`` say what ran. With
        ``backend="processes"``: exactly this many processes (default: up to
        4, one per core); with ``backend="dask"``: the LocalCluster's size.
    p_adjust : str, optional
        R's ``p.adjust`` method for ``p_adjusted``, per term across models:
        ``"BH"`` (default), ``"BY"``, ``"holm"``, ``"hochberg"``, ``"hommel"``,
        ``"bonferroni"`` or ``"none"``.
    keep_models : bool, optional
        Also fit each model in the notebook's R and keep it in ``.models``
        (key -> LmerModel): costs a whole fit per model. Default False.
    progress : bool, optional
        Show models done and failed while they run (default True).
    timeout : float, optional
        Seconds for the whole batch; past it every worker is stopped and
        ``LmerTimeoutError`` raised. Default None, no limit.
    chunk_size : int, optional
        Models per task (default: about eight tasks per worker, at most 200).
    **lmer_options : dict, optional
        As for :func:`lmermagic.lmer`: ``reml``, ``ddf`` ("satterthwaite" or
        "lme4"), ``factors``, ``weights``, ``offset``, ``contrasts``,
        ``control``, ``allow_functions``.

    Returns
    -------
    lmermagic.ManyModels
        The tables of every model, each led by the key columns: ``coefs``,
        ``glance``, ``varcorr``, ``errors``, ``warnings``, and ``tidy()``.

    Raises
    ------
    lmermagic.DataError
        ``data`` is not a data frame or has no rows; a ``responses`` or ``by``
        column is not in the data (or a response is not numeric); both a dict
        of formulas and ``responses``; a value ``backend``, ``workers``,
        ``p_adjust`` or an option does not take (``ddf="kenward-roger"``
        among them); or an option of a single fit (``isolate``,
        ``memory_limit``, ``cache_dir``, ``allow_large``).
    lmermagic.FormulaError
        A formula does not parse, or names something that is not a column.
    lmermagic.UnsafeFormulaError
        A formula calls a function outside the allowlist.
    lmermagic.ConversionError
        A column the models use cannot be sent to R faithfully.
    lmermagic.FitError
        R could not run a chunk at all (a single model's failure is a row of
        ``errors`` instead).
    lmermagic.LmerTimeoutError
        The batch took longer than ``timeout``.
    lmermagic.RPackageMissingError
        lmerTest is not installed in R (``ddf`` other than ``"lme4"``).
    ImportError
        ``backend="dask"`` and Dask's distributed is not installed.

    See Also
    --------
    lmermagic.glmer_many : the same for generalized linear mixed models.

    Examples
    --------
    >>> import numpy as np
    >>> import lmermagic
    >>> sleep = lmermagic.datasets.load("sleepstudy")
    >>> sleep["log_rt"] = np.log(sleep["Reaction"])
    >>> mm = lmermagic.lmer_many("~ Days + (Days | Subject)", sleep,
    ...                          responses=["Reaction", "log_rt"], progress=False)
    >>> len(mm), mm.n_failed
    (2, 0)
    >>> days = mm.coefs[mm.coefs["term"] == "Days"].set_index("response")
    >>> print(days["estimate"].round(3).to_dict())
    {'Reaction': 10.467, 'log_rt': 0.034}

    A formula grid, compared by AICc:

    >>> grid = {"intercepts": "Reaction ~ Days + (1 | Subject)",
    ...         "slopes": "Reaction ~ Days + (Days | Subject)"}
    >>> g = lmermagic.lmer_many(grid, sleep, reml=False, progress=False)
    >>> g.glance.loc[g.glance["delta_aicc"] == 0, "model"].tolist()
    ['slopes']

    In worker processes (worth it for many slow models):

    >>> big = lmermagic.lmer_many("~ Days + (Days | Subject)", sleep,
    ...                           responses=["Reaction", "log_rt"],
    ...                           workers=2)  # doctest: +SKIP
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
    """Fit many generalized linear mixed models (lme4's ``glmer``) and return one
    set of tidy tables.

    As :func:`lmermagic.lmer_many` (the same three modes: ``responses``,
    ``by``, a dict of formulas), each model fitted as :func:`lmermagic.glmer`
    fits it: lme4's Wald z tests, ``df = inf``.

    Parameters
    ----------
    formula : str or dict of str to str
        An lme4 formula, or a dict of model name -> formula (a formula grid).
    data : pandas.DataFrame or polars.DataFrame
        The data of every model; only the columns the models use are sent to R.
    family : str, optional
        As for :func:`lmermagic.glmer`: ``"binomial"`` (default),
        ``"poisson"``, ``"Gamma(link='log')"``, ..., ``"negative_binomial"``.
    responses : list of str, optional
        Response columns, each fitted with the formula's right-hand side.
    by : str or list of str, optional
        Columns whose distinct values (combinations) each get a model.
    backend : {"serial", "processes", "dask"} or distributed.Client, optional
        Where the models are fitted, as for :func:`lmermagic.lmer_many`.
    workers : int, optional
        Up to this many local worker processes, as for
        :func:`lmermagic.lmer_many`.
    p_adjust : str, optional
        R's ``p.adjust`` method for ``p_adjusted`` (default ``"BH"``).
    keep_models : bool, optional
        Also fit each model in the notebook's R and keep it in ``.models``.
    progress : bool, optional
        Show models done and failed while they run (default True).
    timeout : float, optional
        Seconds for the whole batch; past it ``LmerTimeoutError``.
    chunk_size : int, optional
        Models per task (default: about eight tasks per worker, at most 200).
    **glmer_options : dict, optional
        As for :func:`lmermagic.glmer`: ``nagq``, ``factors``, ``weights``,
        ``offset``, ``contrasts``, ``control``, ``allow_functions``.

    Returns
    -------
    lmermagic.ManyModels
        The tables of every model, each led by the key columns: ``coefs``
        (z statistics), ``glance``, ``varcorr``, ``errors``, ``warnings``,
        and ``tidy()``.

    Raises
    ------
    lmermagic.DataError
        As for :func:`lmermagic.lmer_many`, and for a ``family`` glmer does
        not take.
    lmermagic.FormulaError
        A formula does not parse, or names something that is not a column.
    lmermagic.UnsafeFormulaError
        A formula calls a function outside the allowlist.
    lmermagic.ConversionError
        A column the models use cannot be sent to R faithfully.
    lmermagic.FitError
        R could not run a chunk at all (a single model's failure is a row of
        ``errors`` instead).
    lmermagic.LmerTimeoutError
        The batch took longer than ``timeout``.
    ImportError
        ``backend="dask"`` and Dask's distributed is not installed.

    Examples
    --------
    >>> import lmermagic
    >>> cbpp = lmermagic.datasets.load("cbpp")
    >>> cbpp["half"] = cbpp["period"].map({"1": "early", "2": "early", "3": "late",
    ...                                    "4": "late"}).astype(str)
    >>> mm = lmermagic.glmer_many("cbind(incidence, size - incidence) ~ 1 + (1 | herd)",
    ...                           cbpp, by="half", progress=False)
    >>> mm.key
    ['half']
    >>> list(mm.coefs.columns)
    ['half', 'term', 'estimate', 'std_error', 'df', 'statistic', 'p_value',
     'p_adjusted', 'conf_low', 'conf_high']
    >>> print(mm.coefs[["half", "estimate"]].round(2).to_string(index=False))
     half  estimate
    early     -1.75
     late     -2.87
    """
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
