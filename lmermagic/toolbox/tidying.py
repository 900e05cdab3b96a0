"""Tidy tables of a fit: broom.mixed's ``tidy()``, ``glance()`` and ``augment()``
with snake_case column names.

``tidy`` and ``glance`` are built in Python from the model's fields, which the
fit already checked against R (``coefs``, ``varcorr``, ``ranef``, ``loglik``,
...): no call into R, a few hundred microseconds per model, so that code
fitting many models can build them in its worker processes. Their dict forms,
:func:`tidy_columns` and :func:`glance_values`, skip the DataFrame for code
that stacks thousands of them. Only ``effects="ran_vals"`` (conditional SDs),
``augment`` (hat values, Cook's distances, lme4's response module) and
glance's R² and ICC columns (``goodness``, once per model) ask R.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from .. import convert, tables
from ..errors import DataError
from ..fitted import FittedModel
from . import goodness, standardize as _standardize
from ._common import call, check_model, r_columns
from ._student import normal_quantile, t_quantile
from .goodness import GOODNESS_COLUMNS
from .random_effects import ranef_table

__all__ = ["AUGMENT_COLUMNS", "EFFECTS", "GLANCE_COLUMNS", "augment", "glance",
           "glance_values", "tidy", "tidy_columns"]

# broom.mixed's effect kinds, in the order its tables list them.
EFFECTS = ("fixed", "ran_pars", "ran_vals", "ran_coefs")
_STATS = ("estimate", "std_error", "statistic", "df", "p_value")
GLANCE_COLUMNS = ("nobs", "sigma", "loglik", "aic", "bic", "reml_crit", "deviance",
                  "df_residual", "converged", "singular", "n_warnings", *GOODNESS_COLUMNS)
# broom.mixed's names, kept: the leading dot keeps them apart from data columns.
AUGMENT_COLUMNS = (".fitted", ".resid", ".hat", ".cooksd", ".fixed", ".mu", ".offset",
                   ".sqrtXwt", ".sqrtrwt", ".weights", ".wtres", ".eta")
_SCALES = {"sdcor": ("sd", "cor"), "vcov": ("var", "cov")}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _effects(effects: str | Iterable[str]) -> tuple[str, ...]:
    wanted = (effects,) if isinstance(effects, str) else tuple(effects)
    unknown = [e for e in wanted if e not in EFFECTS]
    if unknown or not wanted:
        raise DataError(f"effects={effects!r}: choose among {', '.join(EFFECTS)}.")
    return tuple(e for e in EFFECTS if e in wanted)


def _float_columns(frame: pd.DataFrame, names: tuple[str, ...]) -> list[np.ndarray]:
    block = frame.to_numpy()
    return [block[:, frame.columns.get_loc(n)].astype(float) for n in names]


def _fixed(coefs: pd.DataFrame, kind: str, ddf: str, conf_int: bool, conf_level: float,
           exponentiate: bool) -> dict[str, Any]:
    # One block of floats read once: pandas' per-column access would cost more
    # than the rest of the table.
    est, se, stat, df, p_value = _float_columns(
        coefs, ("estimate", "std_error", "statistic", "df", "p_value"))
    # broom.mixed reports no df for z tests (glmer) and lme4's plain t values.
    wald = kind != "lmer" or ddf == "lme4"
    if wald:
        df = np.full(len(est), np.nan)
    out: dict[str, Any] = {"term": coefs.index.tolist(), "estimate": est,
                           "std_error": se, "statistic": stat, "df": df, "p_value": p_value}
    if conf_int:
        # Wald limits: a t quantile at the model's df (Satterthwaite or
        # Kenward-Roger), as broom.mixed for lmerTest fits; normal otherwise.
        p = (1.0 + conf_level) / 2.0
        q = normal_quantile(p) if wald else t_quantile(p, df)
        out["conf_low"], out["conf_high"] = est - q * se, est + q * se
    if exponentiate:
        out["estimate"] = np.exp(est)
        out["std_error"] = se * out["estimate"]
        if conf_int:
            out["conf_low"], out["conf_high"] = np.exp(out["conf_low"]), np.exp(out["conf_high"])
    return out


def _ran_pars(vc: pd.DataFrame, scales: str) -> dict[str, Any]:
    """The variance parameters per group in the lower triangle's order (column
    by column: sd of a term, its correlations with the later terms, the next sd),
    whatever order R's as.data.frame(VarCorr()) gave them in."""
    block = vc.to_numpy(dtype=object).T
    groups, var1, var2, values = (block[vc.columns.get_loc(n)].tolist() for n in
                                  ("group", "var1", "var2", scales))
    sd_prefix, cor_prefix = _SCALES[scales]
    sds: dict[str, list[int]] = {}
    pairs: dict[tuple[str, str, str], int] = {}
    for i, (g, a, b) in enumerate(zip(groups, var1, var2)):
        if _missing(b):
            sds.setdefault(g, []).append(i)
        else:
            pairs[(g, a, b)] = pairs[(g, b, a)] = i
    rows: list[int] = []
    names: list[str] = []
    for g, idx in sds.items():
        terms = [var1[i] for i in idx]
        for j, i in enumerate(idx):
            rows.append(i)
            names.append(f"{sd_prefix}__{'Observation' if _missing(var1[i]) else var1[i]}")
            for later in terms[j + 1:]:
                rows.append(pairs[(g, terms[j], later)])
                names.append(f"{cor_prefix}__{terms[j]}.{later}")
    n = len(rows)
    return {"group": [groups[i] for i in rows], "term": names,
            "estimate": np.array([values[i] for i in rows], dtype=float),
            **{k: np.full(n, np.nan) for k in _STATS[1:]}}


def _ran_vals(m: FittedModel, conf_int: bool, conf_level: float) -> dict[str, Any]:
    rt = ranef_table(m)
    est, se = rt["condval"].to_numpy(), rt["condsd"].to_numpy()
    n = len(est)
    out: dict[str, Any] = {"group": rt["group"].tolist(), "level": rt["level"].tolist(),
                           "term": rt["term"].tolist(), "estimate": est, "std_error": se,
                           **{k: np.full(n, np.nan) for k in _STATS[2:]}}
    if conf_int:
        q = normal_quantile((1.0 + conf_level) / 2.0)
        out["conf_low"], out["conf_high"] = est - q * se, est + q * se
    return out


def _ran_coefs(m: FittedModel) -> dict[str, Any]:
    """As R's coef(m): per group, the fixed effects plus the level's random
    effects (0 for a random term with no fixed effect), term by term."""
    fixef = dict(zip(m.coefs.index.tolist(), m.coefs["estimate"].tolist()))
    group: list[str] = []
    level: list[str] = []
    term: list[str] = []
    estimate: list[np.ndarray] = []
    for g, re in m.ranef.items():
        levels = [str(v) for v in re.index]
        for t in list(fixef) + [t for t in re.columns if t not in fixef]:
            col = re[t].to_numpy(dtype=float) if t in re.columns else np.zeros(len(levels))
            estimate.append(fixef.get(t, 0.0) + col)
            group += [g] * len(levels)
            level += levels
            term += [t] * len(levels)
    n = len(term)
    return {"group": group, "level": level, "term": term,
            "estimate": np.concatenate(estimate) if estimate else np.zeros(0),
            **{k: np.full(n, np.nan) for k in _STATS[1:]}}


def tidy_columns(m: FittedModel, effects: str | Iterable[str] = ("fixed", "ran_pars"),
                 conf_int: bool = True, conf_level: float = 0.95, scales: str = "sdcor",
                 exponentiate: bool = False) -> dict[str, Any]:
    """:func:`tidy`'s table as a dict of equal-length columns (lists and arrays).

    For stacking many models' tables cheaply; same arguments and columns as
    :func:`tidy`. Pure Python on the model's fields unless ``effects`` includes
    ``"ran_vals"``.
    """
    wanted = _effects(effects)
    if scales not in _SCALES:
        raise DataError(f"scales={scales!r}: choose 'sdcor' (sd, cor) or 'vcov' (var, cov).")
    if not 0.0 < conf_level < 1.0:
        raise DataError(f"conf_level must lie between 0 and 1; got {conf_level!r}.")
    parts = []
    for effect in wanted:
        if effect == "fixed":
            part = _fixed(m.coefs, m.kind, m.ddf, conf_int, conf_level, exponentiate)
            part["group"] = [None] * len(part["term"])
        elif effect == "ran_pars":
            part = _ran_pars(m.varcorr, scales)
        elif effect == "ran_vals":
            part = _ran_vals(m, conf_int, conf_level)
        else:
            part = _ran_coefs(m)
        parts.append((effect, part))
    with_level = "ran_vals" in wanted or "ran_coefs" in wanted
    columns = ["group", *(["level"] if with_level else []), "term", *_STATS,
               *(["conf_low", "conf_high"] if conf_int else [])]
    out: dict[str, Any] = {"effect": [e for e, p in parts for _ in p["term"]]}
    for col in columns:
        pieces = [p.get(col) for _, p in parts]
        if col in ("group", "level", "term"):
            out[col] = [v for p, piece in zip(parts, pieces)
                        for v in (piece if piece is not None else [None] * len(p[1]["term"]))]
        else:
            out[col] = np.concatenate([
                np.asarray(piece, dtype=float) if piece is not None
                else np.full(len(p[1]["term"]), np.nan) for p, piece in zip(parts, pieces)])
    return out


def tidy(m: FittedModel, effects: str | Iterable[str] = ("fixed", "ran_pars"),
         conf_int: bool = True, conf_level: float = 0.95, scales: str = "sdcor",
         exponentiate: bool = False, standardize: str | None = None) -> pd.DataFrame:
    """The model's parameters, one row each, as broom.mixed's ``tidy(m)``.

    Parameters
    ----------
    m : LmerModel
        A model from :func:`lmermagic.lmer` or :func:`lmermagic.glmer`.
    effects : str or sequence of str
        Any of ``"fixed"`` (fixed effects), ``"ran_pars"`` (standard deviations
        and correlations of the random effects, and the residual standard
        deviation), ``"ran_vals"`` (conditional modes per level, with their
        conditional SDs: asks R), ``"ran_coefs"`` (per-level coefficients, as
        R's ``coef(m)``). Rows come in that order whatever the order given.
    conf_int : bool
        Add ``conf_low, conf_high``: Wald limits with a t quantile at the
        model's df for lmer with Satterthwaite or Kenward-Roger df, a normal
        quantile for glmer and ``ddf="lme4"``; normal for ran_vals; NaN for
        ran_pars and ran_coefs (as broom.mixed's default Wald method).
    conf_level : float
        Confidence level of the limits.
    scales : {"sdcor", "vcov"}
        ran_pars as standard deviations and correlations (``sd__``, ``cor__``)
        or variances and covariances (``var__``, ``cov__``).
    exponentiate : bool
        Fixed effects as ``exp(estimate)`` with exponentiated limits and the
        delta-method standard error ``exp(estimate) * std_error`` (and the
        standardized columns exponentiated).
    standardize : {None, "refit", "basic"}
        Add standardized fixed effects, as effectsize's
        ``standardize_parameters(m, method=)`` (computed by lmermagic, see
        :mod:`lmermagic.toolbox.standardize`): ``std_estimate`` and, with
        ``conf_int``, ``std_conf_low, std_conf_high`` (effectsize's Wald
        limits: t at ``df.residual(m)`` for lmer, normal for glmer). NaN on
        rows other than fixed effects. ``"refit"`` fits the model again.

    Returns
    -------
    pandas.DataFrame
        Columns ``effect, group, [level,] term, estimate, std_error, statistic,
        df, p_value[, conf_low, conf_high]``; ``level`` with ran_vals or
        ran_coefs. Variance parameters are named as broom.mixed names them:
        ``sd__(Intercept)``, ``cor__(Intercept).Days``, and the residual's
        ``sd__Observation`` in group ``Residual``. ``group`` is missing for
        fixed effects; ran_pars rows carry only an estimate. See docs/schema.md.
    """
    check_model(m)
    if standardize is not None:
        _standardize.check_method(standardize)
    out = pd.DataFrame(tidy_columns(m, effects, conf_int, conf_level, scales, exponentiate))
    if standardize is None:
        return out
    return _standardize.std_columns(m, out, standardize, conf_int, conf_level, exponentiate)


def glance_values(m: FittedModel) -> dict[str, Any]:
    """:func:`glance`'s one row as a dict (column -> scalar), from the model's
    fields: broom.mixed's columns and lmermagic's, without the R² and ICC
    columns, which need R (:func:`glance` adds them)."""
    return {"nobs": int(m.nobs), "sigma": float(m.sigma), "loglik": float(m.loglik),
            "aic": float(m.aic), "bic": float(m.bic),
            "reml_crit": float(m.reml_criterion) if m.reml else math.nan,
            "deviance": float(m.deviance), "df_residual": int(m.nobs) - int(m.df_model),
            "converged": bool(m.converged), "singular": bool(m.singular),
            "n_warnings": len(m.warnings)}


def glance(m: FittedModel) -> pd.DataFrame:
    """The model's fit statistics in one row, as broom.mixed's ``glance(m)``.

    Returns
    -------
    pandas.DataFrame
        One row: ``nobs`` (int), ``sigma, loglik, aic, bic`` (float),
        ``reml_crit`` (float; broom.mixed's ``REMLcrit``, NaN for ML fits),
        ``deviance`` (float; R's ``deviance(m)`` for ML fits and glmer, where
        broom.mixed reports it; for REML fits the ML deviance at the REML
        estimates, lmermagic's ``m.deviance``), ``df_residual`` (int), and
        lmermagic's ``converged, singular`` (bool), ``n_warnings`` (int),
        ``r2_marginal, r2_conditional`` (float; Nakagawa & Schielzeth's R², as
        :meth:`~lmermagic.LmerModel.r2`) and ``icc`` (float; the adjusted ICC,
        as :meth:`~lmermagic.LmerModel.icc`). The last three ask R once per
        model (a log-link Poisson or negative binomial model fits its null
        model then) and are NaN where those methods give NaN, without their
        warning (the ``singular`` column says why).
    """
    check_model(m)
    values = {**glance_values(m), **goodness.glance_values(m)}
    return pd.DataFrame({k: [v] for k, v in values.items()})


def augment(m: FittedModel) -> pd.DataFrame:
    """The model's data with per-observation results, as broom.mixed's ``augment(m)``.

    Returns
    -------
    pandas.DataFrame
        On the caller's index, every row of the caller's data (rows R dropped
        for missing values hold NaN in the added columns, as ``m.fitted``):
        the caller's columns the model uses, then broom.mixed's columns under
        its names: ``.fitted`` (with the random effects, on the link scale),
        ``.resid`` (R's ``residuals(m)``: response residuals for lmer, deviance
        residuals for glmer), ``.hat``, ``.cooksd``, ``.fixed`` (fixed effects
        only, link scale), and lme4's response module's ``.mu, .offset,
        .sqrtXwt, .sqrtrwt, .weights, .wtres, .eta`` (``.eta`` is ``.mu`` for
        lmer, whose link is the identity).
    """
    check_model(m)
    value = call("lmm_tb_augment", m.r_object, what="augment")
    index = m.fitted.index
    dropped = np.asarray(value["dropped"] if value["dropped"] is not None else [],
                         dtype=np.int64)
    out = pd.DataFrame(index=index)
    if m.data is not None:
        data = convert.as_pandas(m.data, m.data_name)
        used = set(r_columns(m))
        for col in (c for c in data.columns if c in used):
            out[col] = data[col].array  # the caller's dtype (categories kept)
    cols = value["columns"]
    for name in AUGMENT_COLUMNS:
        out[name] = tables.on_caller_index(np.asarray(cols[name], dtype=float), dropped,
                                           index, name)
    return out
