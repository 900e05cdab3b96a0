"""The tables of many models (:class:`ManyModels`), from the stacked columns
R returns for each chunk of models (many.R)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd

from ..rbridge import get_r
from ..tables import COEF_COLUMNS
from .goodness import GOODNESS_COLUMNS, PIECES, from_pieces
from .selection import AICC_COLUMNS, add_aicc_columns
from .tidying import tidy_columns

__all__ = ["GLANCE_COLUMNS", "ManyModels", "assemble"]

GLANCE_COLUMNS = ["nobs", "sigma", "loglik", "aic", "bic", "deviance", "converged",
                  "singular", "n_warnings", *GOODNESS_COLUMNS]
# The columns R returns: GOODNESS_COLUMNS come from goodness.R's pieces.
_R_GLANCE = [*GLANCE_COLUMNS[:-len(GOODNESS_COLUMNS)], *(f"gf_{p}" for p in PIECES)]
_INTS = {"nobs", "n_warnings"}
_BOOLS = {"converged", "singular"}


@dataclass
class ManyModels:
    """The tables of many fitted models, from :func:`lmermagic.lmer_many` and
    :func:`lmermagic.glmer_many`.

    One table per kind of result, each led by the key columns that name the
    model and holding every model's rows: the long tables a ``for`` loop over
    R's ``summary()``, ``glance()`` and ``as.data.frame(VarCorr())`` would
    stack. ``len(mm)`` is the number of models.

    Attributes
    ----------
    key : list of str
        The columns that name a model: ``response``, the ``by`` columns, or
        ``model`` (a formula grid).
    coefs : pandas.DataFrame
        The key, then ``term, estimate, std_error, df, statistic, p_value,
        p_adjusted, conf_low, conf_high``: each fitted model's fixed effects,
        as ``m.coefs`` (lmerTest's t tests for lmer, lme4's z tests for
        glmer; ``conf_low``/``conf_high`` 95 % Wald limits, estimate +-
        1.96 standard errors). ``p_adjusted`` is R's ``p.adjust`` of each
        term's p-values across the models.
    glance : pandas.DataFrame
        The key, then ``nobs, sigma, loglik, aic, bic, deviance, converged,
        singular, n_warnings, r2_marginal, r2_conditional, icc``, then ``aicc,
        delta_aicc, weight``: one row per fitted model. ``r2_marginal,
        r2_conditional, icc`` as ``m.r2()`` and ``m.icc()`` give them,
        computed in the chunk's R (a log-link count model's null model is
        fitted there too, and its warnings are not the model's); ``aicc``
        MuMIn's AICc from each fit's own log-likelihood, REML for REML fits;
        for a formula grid ``delta_aicc`` the difference from the smallest
        AICc and ``weight`` the Akaike weight among the formulas of each
        subset, NaN otherwise.
    varcorr : pandas.DataFrame
        The key, then ``group, var1, var2, vcov, sdcor`` (R's
        ``as.data.frame(VarCorr(m))``).
    errors : pandas.DataFrame
        The key, then ``error_type, message``: one row per model that failed
        (R's error class and message, or ``WorkerDied`` for the models of a
        worker process that died).
    warnings : pandas.DataFrame
        The key, then ``message``: R's warnings and messages, per model.
    meta : dict
        backend, workers (asked for), workers_used (the worker processes
        that fitted models: 0 when every model was fitted here),
        workers_reason (why, in words), workers_estimate (the estimates in
        seconds behind the choice), chunk_size, seconds, p_adjust, kind, ddf.
    n_models : int
        The number of models asked for, fitted or failed (also ``len(mm)``).
    models : dict
        With ``keep_models=True``: key -> the fitted
        :class:`lmermagic.LmerModel` (a tuple key with several key columns);
        empty otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> import lmermagic
    >>> sleep = lmermagic.datasets.load("sleepstudy")
    >>> sleep["log_rt"] = np.log(sleep["Reaction"])
    >>> mm = lmermagic.lmer_many("~ Days + (Days | Subject)", sleep,
    ...                          responses=["Reaction", "log_rt"], progress=False)
    >>> mm.key, len(mm), mm.n_failed
    (['response'], 2, 0)
    >>> mm.coefs[["response", "term"]].values.tolist()
    [['Reaction', '(Intercept)'], ['Reaction', 'Days'], ['log_rt', '(Intercept)'],
     ['log_rt', 'Days']]
    >>> mm.glance["converged"].tolist()
    [True, True]
    """

    key: list[str]
    coefs: pd.DataFrame
    glance: pd.DataFrame
    varcorr: pd.DataFrame
    errors: pd.DataFrame
    warnings: pd.DataFrame
    meta: dict[str, Any]
    n_models: int
    models: dict[Any, Any] = field(default_factory=dict)
    # the model number of each row of coefs and of varcorr (1-based, ascending)
    _coef_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    _varcorr_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64),
                                     repr=False)
    _keys: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def __len__(self) -> int:
        return self.n_models

    @property
    def n_failed(self) -> int:
        """The number of models that failed: the rows of ``errors`` (the rest
        of the ``n_models`` have a row in ``glance``)."""
        return len(self.errors)

    def tidy(self, conf_int: bool = True, conf_level: float = 0.95) -> pd.DataFrame:
        """Each model's ``m.tidy()`` (broom.mixed's table), stacked under the key.

        Computed in Python from ``coefs`` and ``varcorr``, as broom.mixed's
        ``tidy(m)`` with its default ``effects = c("fixed", "ran_pars")``: the
        fixed effects, then the variance parameters (``sd__(Intercept)``,
        ``cor__(Intercept).Days``, ``sd__Observation``). Failed models have
        no rows.

        Parameters
        ----------
        conf_int : bool, optional
            Add ``conf_low, conf_high`` (default True): for the fixed
            effects Wald limits with a t quantile at each row's df (lmer with
            Satterthwaite df) or a normal quantile (glmer, ``ddf="lme4"``);
            NaN for the variance parameters.
        conf_level : float, optional
            Confidence level of the limits, in (0, 1); default 0.95.

        Returns
        -------
        pandas.DataFrame
            The key, then ``effect`` (``"fixed"`` or ``"ran_pars"``),
            ``group`` (the grouping factor or ``"Residual"``; missing for the
            fixed effects), ``term``, ``estimate``, ``std_error``, ``statistic``,
            ``df``, ``p_value``, ``p_adjusted`` (as in ``coefs``; NaN for
            the variance parameters), and ``conf_low, conf_high`` with
            ``conf_int``.

        Raises
        ------
        lmermagic.DataError
            ``conf_level`` is not between 0 and 1.

        Examples
        --------
        >>> import numpy as np
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> sleep["log_rt"] = np.log(sleep["Reaction"])
        >>> mm = lmermagic.lmer_many("~ Days + (Days | Subject)", sleep,
        ...                          responses=["Reaction", "log_rt"], progress=False)
        >>> t = mm.tidy()
        >>> list(t.columns)
        ['response', 'effect', 'group', 'term', 'estimate', 'std_error', 'statistic',
         'df', 'p_value', 'p_adjusted', 'conf_low', 'conf_high']
        >>> t["term"].tolist()[:6]
        ['(Intercept)', 'Days', 'sd__(Intercept)', 'cor__(Intercept).Days', 'sd__Days',
         'sd__Observation']
        >>> mm.tidy(conf_int=False).shape
        (12, 10)
        """
        kind, ddf = self.meta.get("kind", "lmer"), self.meta.get("ddf", "satterthwaite")
        coefs = self.coefs.set_index("term")
        c_at = _bounds(self._coef_ids, self.n_models)
        v_at = _bounds(self._varcorr_ids, self.n_models)
        keys = self._keys.to_numpy(dtype=object)
        columns: dict[str, list[Any]] = {}
        for model in np.union1d(self._coef_ids, self._varcorr_ids).tolist():
            c0, c1 = c_at.get(model, (0, 0))
            v0, v1 = v_at.get(model, (0, 0))
            one = _Tables(coefs.iloc[c0:c1], self.varcorr.iloc[v0:v1], kind, ddf)
            part = tidy_columns(cast(Any, one), conf_int=conf_int, conf_level=conf_level)
            n, n_fixed = len(part["term"]), c1 - c0
            part["p_adjusted"] = np.concatenate([
                coefs["p_adjusted"].to_numpy()[c0:c1], np.full(n - n_fixed, np.nan)])
            for j, k in enumerate(self.key):
                columns.setdefault(k, []).extend([keys[model - 1, j]] * n)
            for name, values in part.items():
                columns.setdefault(name, []).extend(list(values))
        order = [*self.key, "effect", "group", "term", "estimate", "std_error", "statistic",
                 "df", "p_value", "p_adjusted",
                 *(["conf_low", "conf_high"] if conf_int else [])]
        return pd.DataFrame({c: columns.get(c, []) for c in order})

    def __repr__(self) -> str:
        m = self.meta
        return (f"<ManyModels: {self.n_models} {m.get('kind', 'lmer')} models by "
                f"{', '.join(self.key) or 'formula'}; {self.n_models - self.n_failed} fitted, "
                f"{self.n_failed} failed, {int((~self.glance['converged']).sum())} not "
                f"converged, {int(self.glance['singular'].sum())} singular; "
                f"{m.get('seconds', 0):.1f} s {_where(m)}>")

    def _repr_html_(self) -> str:
        head = html.escape(repr(self))
        return (f"<div><p>{head}</p>{self.coefs.head(10).to_html(index=False)}"
                f"<p>coefs: {len(self.coefs)} rows · glance, varcorr, errors, warnings, "
                "tidy()</p></div>")


@dataclass(frozen=True)
class _Tables:
    """One model's tables, as tidy_columns reads them from a fitted model."""

    coefs: pd.DataFrame
    varcorr: pd.DataFrame
    kind: str
    ddf: str


def _bounds(ids: np.ndarray, n: int) -> dict[int, tuple[int, int]]:
    """Model number -> its rows [first, last) in a table sorted by model."""
    models, first = np.unique(ids, return_index=True)
    last = [*first[1:].tolist(), len(ids)]
    return {int(m): (int(a), int(b)) for m, a, b in zip(models, first, last)}


def _column(parts: list[dict[str, Any]], table: str, name: str) -> list[Any]:
    out: list[Any] = []
    for p in parts:
        t = p.get(table) or {}
        v = t.get(name)
        if v is not None:
            out.extend(np.atleast_1d(v).tolist() if not isinstance(v, list) else v)
    return out


def _stack(parts: list[dict[str, Any]], table: str, names: list[str],
           keys: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """One table of every chunk, in model order (rows of a model in R's order),
    and the model number of each row."""
    ids = np.asarray(_column(parts, table, "id"), dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    frame = keys.iloc[ids[order] - 1].reset_index(drop=True)
    for name in names:
        values = np.asarray(_column(parts, table, name), dtype=object)[order] \
            if len(ids) else np.asarray([], dtype=object)
        frame[name] = values
    return frame, ids[order]


def assemble(keys: pd.DataFrame, parts: list[dict[str, Any]], p_adjust: str,
             meta: dict[str, Any]) -> ManyModels:
    """The ManyModels of R's chunk results ``parts``, in any order."""
    key = list(keys.columns)
    coefs, coef_ids = _stack(parts, "coefs", ["terms", *COEF_COLUMNS], keys)
    coefs = coefs.rename(columns={"terms": "term"})
    for c in COEF_COLUMNS:
        coefs[c] = coefs[c].astype(float)
    coefs["term"] = coefs["term"].astype(str)
    coefs.insert(coefs.columns.get_loc("p_value") + 1, "p_adjusted",
                 _p_adjust(coefs["p_value"].to_numpy(), coefs["term"].to_numpy(), p_adjust))
    glance = _goodness(_stack(parts, "glance", _R_GLANCE, keys)[0])
    for c in GLANCE_COLUMNS:
        glance[c] = glance[c].astype(int if c in _INTS else bool if c in _BOOLS else float)
    glance = _with_aicc(glance, key)
    varcorr, varcorr_ids = _stack(parts, "varcorr", ["group", "var1", "var2", "vcov", "sdcor"],
                                  keys)
    for c in ("vcov", "sdcor"):
        varcorr[c] = varcorr[c].astype(float)
    errors = _stack(parts, "errors", ["type", "message"], keys)[0].rename(
        columns={"type": "error_type"})
    warnings = _stack(parts, "warnings", ["message"], keys)[0]
    return ManyModels(key, coefs, glance, varcorr, errors, warnings, meta, len(keys),
                      _coef_ids=coef_ids, _varcorr_ids=varcorr_ids, _keys=keys)


def _goodness(glance: pd.DataFrame) -> pd.DataFrame:
    """The glance with R²/ICC columns from the gf_ pieces, which are dropped."""
    names = [f"gf_{p}" for p in PIECES]
    rows = glance[names].to_numpy(dtype=object) if len(glance) else np.zeros((0, len(names)))
    values = [from_pieces(dict(zip(PIECES, r))) if r[0] else
              dict.fromkeys(("r2_marginal", "r2_conditional", "icc_adjusted"), np.nan)
              for r in rows]
    glance = glance.drop(columns=names)
    for col, key in zip(GOODNESS_COLUMNS, ("r2_marginal", "r2_conditional", "icc_adjusted")):
        glance[col] = np.array([v[key] for v in values], dtype=float)
    return glance


def _with_aicc(glance: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """glance with AICc columns; k (R's logLik df) is recovered from AIC = -2 logLik + 2k.
    Only the formulas of a grid are rivals: delta and weight among those fitted
    to the same subset."""
    if glance.empty:
        return glance.assign(**{c: pd.Series(dtype=float) for c in AICC_COLUMNS})
    k = np.round((glance["aic"].to_numpy() + 2.0 * glance["loglik"].to_numpy()) / 2.0)
    groups = [c for c in key if c != "model"] if "model" in key else None
    return add_aicc_columns(glance, k, glance["nobs"].to_numpy(dtype=float), groups)


def _p_adjust(p: np.ndarray, terms: np.ndarray, method: str) -> np.ndarray:
    """R's p.adjust of each term's p-values across models (NaN stays NaN)."""
    if method == "none" or len(p) == 0:
        return p.astype(float).copy()
    codes, _ = pd.factorize(terms)
    out = get_r().run("lmm_many_p_adjust", np.ascontiguousarray(p, dtype=np.float64),
                      np.ascontiguousarray(codes, dtype=np.int32), method)
    return np.asarray(out, dtype=float)


def _where(m: dict[str, Any]) -> str:
    used = m.get("workers_used", m.get("workers"))
    if m.get("backend") in ("serial", "processes") and not used:
        return "here (no worker processes)"
    return f"on {m.get('backend')} x{used}"
