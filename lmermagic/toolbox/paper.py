"""Tables for the paper: the model's side of maketables' plug-in protocol.

``maketables.ETable([m1, m2, g])`` builds one publication table of several
models (HTML through great_tables, LaTeX, Word, Typst) from a few dunder
attributes on each model; :class:`lmermagic.LmerModel` hands each of them to a
function here. lmermagic never imports maketables: the protocol is duck-typed,
so the package works without it and the user installs it
(``pip install 'lmermagic[tables]'``).

What each model gives:

- ``coef_table``: the fixed effects, one row per R term: ``b`` (estimate),
  ``se``, ``t`` (t or, for glmer, z), ``p``, ``df``, and Wald intervals
  ``ci95l, ci95u, ci90l, ci90u`` as ``m.tidy()`` computes them (a t quantile
  at the model's Satterthwaite or Kenward-Roger df for lmer, normal for glmer
  and ``ddf="lme4"``).
- statistics by key (:func:`stat`): ``N``, ``aic``, ``bic``, ``ll`` (maketables'
  own keys and labels), ``r2_marginal``, ``r2_conditional``, ``icc`` (from
  ``m.r2()`` and ``m.icc()`` where the model has them), ``estimation`` (REML,
  ML, ML (Laplace) ...), ``df_method``, ``family``, and the random-effects
  block: ``"<group>: groups"`` (number of levels), ``"<group>: SD <term>"``,
  ``"<group>: Cor <term1>, <term2>"`` and ``"Residual SD"``.

maketables' protocol has no random-effects panel: the block is rows of the
statistics panel, whose keys are their labels (maketables takes labels from the
first model only, so a key another model lacks would otherwise show raw). Its
default rows are the union of each model's default keys in the order first
seen, so the keys that differ between models (groups and their terms) come
last; :func:`table_stats` gives every model's keys in a paper's order for
``ETable(..., model_stats=table_stats(models))``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from ..errors import LmerError
from ..fitted import FittedModel
from .tidying import tidy_columns

__all__ = ["STAT_LABELS", "coef_table", "default_stat_keys", "depvar", "random_block",
           "stat", "table_stats", "var_labels"]

# Labels of our own keys; N, aic, bic and ll keep maketables' labels.
STAT_LABELS = {"r2_marginal": "Marginal R²", "r2_conditional": "Conditional R²",
               "icc": "ICC", "estimation": "Estimation", "df_method": "df method",
               "family": "Family"}
_FIT = ["N", "r2_marginal", "r2_conditional", "icc", "aic", "bic", "ll", "estimation",
        "df_method", "family"]
_GOODNESS = {"r2_marginal": ("r2", "r2_marginal"), "r2_conditional": ("r2", "r2_conditional"),
             "icc": ("icc", "icc_adjusted")}
_DF_METHOD = {"satterthwaite": "Satterthwaite", "kenward-roger": "Kenward-Roger",
              "lme4": "none (lme4's t)"}
RESIDUAL = "Residual SD"


def coef_table(m: FittedModel) -> pd.DataFrame:
    """The fixed effects under maketables' column names, indexed by R's term names."""
    wide = tidy_columns(m, effects="fixed", conf_int=True, conf_level=0.95)
    narrow = tidy_columns(m, effects="fixed", conf_int=True, conf_level=0.90)
    out = pd.DataFrame({"b": wide["estimate"], "se": wide["std_error"],
                        "t": wide["statistic"], "p": wide["p_value"],
                        "df": m.coefs["df"].to_numpy(dtype=float),
                        "ci95l": wide["conf_low"], "ci95u": wide["conf_high"],
                        "ci90l": narrow["conf_low"], "ci90u": narrow["conf_high"]},
                       index=pd.Index(wide["term"], name="Coefficient"))
    return out


def depvar(m: FittedModel) -> str:
    """The formula's left-hand side, as written."""
    return m.formula.split("~", 1)[0].strip()


def random_block(m: FittedModel) -> dict[str, float]:
    """The random-effects rows, key -> value, per group in R's order: its number
    of levels, the SD of each term, the correlations; then the residual SD
    (models with a scale: lmer, and glmer families with a dispersion)."""
    return {key: value for _, key, value in _random_rows(m)}


def _random_rows(m: FittedModel) -> list[tuple[str | None, str, float]]:
    """(group, key, value) of the random-effects rows; group None for the residual."""
    vc = m.varcorr
    rows: list[tuple[str | None, str, float]] = []
    residual: float | None = None
    for group, var1, var2, sdcor in zip(vc["group"].tolist(), vc["var1"].tolist(),
                                        vc["var2"].tolist(), vc["sdcor"].tolist()):
        if group == "Residual" and _missing(var1):
            residual = float(sdcor)
            continue
        if group in m.ngroups and not any(r[1] == f"{group}: groups" for r in rows):
            rows.append((group, f"{group}: groups", int(m.ngroups[group])))
        key = f"{group}: SD {var1}" if _missing(var2) else f"{group}: Cor {var1}, {var2}"
        rows.append((group, key, float(sdcor)))
    if residual is not None:
        rows.append((None, RESIDUAL, residual))
    return rows


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _goodness(m: FittedModel, key: str) -> float | None:
    """R² or ICC from ``m.r2()``/``m.icc()`` when the model has them (None if
    not, or if they cannot be computed for this model)."""
    method, name = _GOODNESS[key]
    fn = getattr(m, method, None)
    if not callable(fn):
        return None
    try:
        values = fn()
    except LmerError:
        return None
    value = values.get(name) if hasattr(values, "get") else None
    return None if value is None or np.isnan(value) else float(value)


def estimation(m: FittedModel) -> str:
    if m.kind == "lmer":
        return "REML" if m.reml else "ML"
    nagq = getattr(m.request, "nagq", None)
    if nagq is None or nagq == 1:
        return "ML (Laplace)"
    return "ML (nAGQ = 0)" if nagq == 0 else f"ML (adaptive GH, {nagq} points)"


def df_method(m: FittedModel) -> str:
    if m.kind != "lmer":
        return "Wald z"
    return _DF_METHOD.get(m.ddf, m.ddf)


def stat(m: FittedModel, key: str) -> Any:
    """The statistic ``key`` of the model, or None where it has none (maketables
    shows "-")."""
    simple = {"N": lambda: int(m.nobs), "aic": lambda: float(m.aic),
              "bic": lambda: float(m.bic), "ll": lambda: float(m.loglik),
              "deviance": lambda: float(m.deviance),
              "estimation": lambda: estimation(m), "df_method": lambda: df_method(m),
              "family": lambda: f"{m.family} ({m.link})"}
    if key in simple:
        return simple[key]()
    if key in _GOODNESS:
        return _goodness(m, key)
    return random_block(m).get(key)


def default_stat_keys(m: FittedModel) -> list[str]:
    """The rows shown when ETable is given no ``model_stats``: the fit
    statistics, then the random-effects block (last, so that terms only some
    models have join their group's rows). R² and ICC only where the model has
    ``r2()`` and ``icc()``."""
    fit = [k for k in _FIT if k not in _GOODNESS or callable(getattr(m, _GOODNESS[k][0], None))]
    block = list(random_block(m))
    if RESIDUAL in block:  # the same row for every model with a scale: first
        block.remove(RESIDUAL)
        block.insert(0, RESIDUAL)
    return fit + block


def table_stats(models: Iterable[FittedModel]) -> list[str]:
    """Every model's rows in a paper's order, for ``ETable(models,
    model_stats=table_stats(models))``: the random effects group by group
    (levels, SDs, correlations), the residual SD, then the fit statistics."""
    models = list(models)
    per_group: dict[str, list[str]] = {}
    residual = False
    for m in models:
        for group, key, _ in _random_rows(m):
            if group is None:
                residual = True
                continue
            keys = per_group.setdefault(group, [])
            if key not in keys:
                keys.append(key)
    block: list[str] = []
    for keys in per_group.values():
        block += sorted(keys, key=lambda k: (not k.endswith(": groups"), ": Cor " in k))
    fit: list[str] = []
    for m in models:
        fit += [k for k in default_stat_keys(m) if k in _FIT and k not in fit]
    return block + ([RESIDUAL] if residual else []) + [k for k in _FIT if k in fit]


def var_labels(m: FittedModel) -> dict[str, str] | None:
    """Variable labels the caller's data frame carries (``df.attrs["variable_labels"]``,
    as maketables' ``set_var_labels`` and ``import_dta`` store them)."""
    attrs = getattr(m.data, "attrs", None)
    labels = attrs.get("variable_labels") if isinstance(attrs, dict) else None
    return dict(labels) if isinstance(labels, dict) else None
