"""What a user does with an ordinal mixed model (``ordinal::clmm``) after the
fit: category probabilities for new data, the likelihood-ratio comparison of
nested fits, broom's tidy and glance tables, the R script behind the fit.

R's half is ``R/clmm.R``. Works on :class:`~lmermagic.clmm_fit.ClmmFitted`
(the fields), as the toolbox works on ``FittedModel``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from . import convert
from .clmm_fit import ClmmFitted
from .errors import DataError, FitError, did_you_mean
from .rbridge import RFrame, get_r
from .rsyntax import r_string
from .toolbox._common import call
from .toolbox.rcode import _args, script, script_data
from .toolbox.selection import lr_table

__all__ = ["compare", "glance", "predict_proba", "r_code", "summary_text", "tidy"]


def _check(m: Any) -> ClmmFitted:
    if not isinstance(m, ClmmFitted):
        raise DataError(f"expected a model from lmermagic.clmm, got {type(m).__name__}.")
    if m.r_object is None or m.r_data is None:
        raise DataError("this model has no R fit attached; fit it with lmermagic.clmm.")
    return m


def _model_columns(m: ClmmFitted) -> list[str]:
    cols = m.meta.get("_r_columns")
    if cols is None:
        cols = m.meta["_r_columns"] = list(call("lmm_tb_columns", m.r_data,
                                               what="the model's columns"))
    return list(cols)


def predict_proba(m: ClmmFitted, newdata: Any = None) -> pd.DataFrame:
    """Predicted probability of each response category, random effects at zero.

    For each row, ``P(Y <= j) = F(theta_j - x'beta)`` with the fit's
    thresholds ``theta`` (``m.theta``), location effects ``beta`` and the
    link's distribution function ``F``; the probability of category ``j`` is
    ``P(Y <= j) - P(Y <= j-1)``. This is what ``ordinal``'s
    ``predict(<clm>, newdata, type = "prob")`` gives for a clm with the clmm's
    fixed parameters: the prediction for a new or typical group (random
    effects 0), not for the groups of the data.

    Parameters
    ----------
    newdata : DataFrame, optional
        The predictors (the response, if present, is not used). Default: the
        model's own data.

    Returns
    -------
    pandas.DataFrame
        One column per response level (``m.levels``, in order), rows summing
        to 1, on ``newdata``'s index (the caller's data's index by default);
        rows with a missing predictor are NaN.
    """
    _check(m)
    columns = _model_columns(m)
    if newdata is None:
        rnew: Any = m.r_data
        index = m.fitted.index
    else:
        df = convert.as_pandas(newdata, "newdata")
        convert.check_labels(df, "newdata")
        index = df.index
        if not len(df):
            return pd.DataFrame({lev: np.array([], dtype=float) for lev in m.levels},
                                index=index)
        used = [c for c in df.columns if c in columns]
        rnew = RFrame([convert.encode_column(c, df[c]) for c in used], len(df))
    try:
        value = call("lmm_clmm_predict", m.r_object, rnew, what="predict_proba")
    except FitError as exc:
        msg = exc.r_message
        hit = re.search(r"object '([^']+)' not found", msg)
        if newdata is not None and hit and hit.group(1) in columns:
            name = hit.group(1)
            raise DataError(f"newdata has no column '{name}', which the model uses."
                            + did_you_mean(name, [str(c) for c in
                                                  convert.as_pandas(newdata).columns])
                            ) from None
        if "has new level" in msg:
            raise DataError(f"newdata has levels the model was not fitted with: R says "
                            f"'{msg.strip()}'.") from None
        raise
    prob = np.asarray(value["prob"], dtype=float).reshape(len(index), len(m.levels))
    out = pd.DataFrame(prob, index=index, columns=pd.Index(list(m.levels), name="level"))
    return out


def tidy(m: ClmmFitted, conf_int: bool = True, conf_level: float = 0.95,
         exponentiate: bool = False) -> pd.DataFrame:
    """One row per threshold and location effect, as broom's ``tidy(<clmm>)``.

    Columns ``term, estimate, std_error, statistic, p_value`` (Wald z, as
    ``coef(summary(m))``), with ``conf_int`` also ``conf_low, conf_high``
    (Wald, as broom's ``conf.int = TRUE``, which calls ``confint(m)``), then
    ``coef_type``: ``"intercept"`` for the thresholds, ``"location"`` for the
    effects. Thresholds first, as R orders them. ``exponentiate`` applies
    ``exp`` to ``estimate`` and the bounds, as broom does.
    """
    _check(m)
    if not (isinstance(conf_level, (int, float)) and 0 < conf_level < 1):
        raise DataError(f"conf_level={conf_level!r}: give a number between 0 and 1.")
    parts = [(m.thresholds, "intercept"), (m.coefs, "location")]
    out = pd.concat([t.assign(coef_type=kind) for t, kind in parts]).reset_index()
    z = NormalDist().inv_cdf(0.5 + conf_level / 2)
    out["conf_low"] = out["estimate"] - z * out["std_error"]
    out["conf_high"] = out["estimate"] + z * out["std_error"]
    cols = ["term", "estimate", "std_error", "statistic", "p_value"]
    if conf_int:
        cols += ["conf_low", "conf_high"]
    out = out[[*cols, "coef_type"]]
    if exponentiate:
        for c in ("estimate", "conf_low", "conf_high"):
            if c in out:
                out[c] = np.exp(out[c])
    return out


def glance(m: ClmmFitted) -> pd.DataFrame:
    """The fit statistics in one row: broom's ``glance(<clmm>)`` columns ``edf,
    aic, bic, loglik, nobs``, then lmermagic's ``cond_h`` (the Hessian's
    condition number, as ``summary(m)`` reports it), ``max_grad``,
    ``converged`` and ``n_warnings``."""
    _check(m)
    values = {"edf": int(m.edf), "aic": float(m.aic), "bic": float(m.bic),
              "loglik": float(m.loglik), "nobs": int(m.nobs), "cond_h": float(m.cond_h),
              "max_grad": float(m.max_grad), "converged": bool(m.converged),
              "n_warnings": len(m.warnings)}
    return pd.DataFrame({k: [v] for k, v in values.items()})


def compare(models: Sequence[Any], labels: Sequence[str]) -> pd.DataFrame:
    """Likelihood-ratio tests of nested clmm fits, as ordinal's ``anova(m0, m1)``.

    Rows sorted by the number of parameters (R's order), labelled ``labels``
    (one per model, in the order given); columns ``npar, aic, loglik, chisq,
    df, p_value`` (ordinal's ``no.par, AIC, logLik, LR.stat, df,
    Pr(>Chisq)``), then ``aicc, delta_aicc, weight`` as for lmer models.
    """
    if len(models) < 2:
        raise DataError("anova() of one clmm fit is not defined (ordinal: 'anova not "
                        "implemented for a single clmm fit'); compare nested fits: "
                        "lmermagic.anova(m0, m1).")
    for m in models:
        _check(m)
    keys = [f"m{i}" for i in range(len(models))]
    value = call("lmm_clmm_compare", {k: m.r_object for k, m in zip(keys, models)},
                 {k: m.r_data for k, m in zip(keys, models)}, list(labels),
                 what="the model comparison")
    df = lr_table(value, labels, models[0].nobs)
    df["npar"] = df["npar"].astype(float)  # as lmer's comparison table
    return df


def summary_text(m: ClmmFitted) -> str:
    """R's ``summary(m)`` printed, as text."""
    _check(m)
    text = get_r().run("lmm_clmm_summary_text", m.r_object, m.data_name)
    return str(text[0] if isinstance(text, list) else text)


def r_code(m: ClmmFitted, path: str | os.PathLike[str] | None = None,
           write: bool = False) -> str:
    """A self-contained R script that reproduces the fit: the model's columns
    read from ``path`` (CSV; ``write=True`` writes them), the response an
    ordered factor with the fit's levels, and the ``ordinal::clmm`` call."""
    _check(m)
    where, spec = script_data(m, path, write)
    req = m.request
    fun = "ordinal::clmm"
    pairs = [("", req.formula), ("data", "data"), ("link", r_string(req.link)),
             ("threshold", r_string(req.threshold))]
    libs = ["ordinal"] + (["splines"] if re.search(r"\b(ns|bs)\s*\(", req.formula) else [])
    return script(m, where, spec, package="ordinal", libs=libs,
                  fit=f"fit <- {fun}({_args(pairs, len(fun) + 8)})",
                  versions=f", ordinal {m.versions.get('ordinal', '?')}")
