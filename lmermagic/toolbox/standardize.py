"""Standardized fixed effects, as effectsize's ``standardize_parameters(m,
method = "refit" | "basic")``, computed by lmermagic (no effectsize call).

effectsize passes merMod fits to parameters' and datawizard's code; what they
do (parameters 0.20 / datawizard 0.6 and parameters 0.29 / datawizard 1.3
alike) is summarized in R/toolbox/standardize.R, which computes the centres
and scales. Here:

- ``"basic"``: each coefficient times the SD of its model-matrix column over
  the SD of the response (1 for a non-Gaussian model); the intercept is 0.
- ``"refit"``: the numeric columns the model uses (not grouping factors,
  weights, or the response of a non-Gaussian model) are centred and scaled in
  a copy of the data, and the model is refitted through :func:`update`
  (lmermagic's checked fitting path, never R text built from user input).

Both take effectsize's Wald limits: a t quantile at the residual df
(``df.residual(m)``: observations minus all parameters) for lmer, a normal
quantile for glmer, whatever df the model reports. Weights are R's
``weights(m)`` where they vary (for a ``cbind()`` binomial response, the
numbers of trials), as datawizard weights its means and SDs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import convert
from ..errors import DataError
from ..fitted import FittedModel
from ._common import cached_call
from ._student import normal_quantile, t_quantile
from .refitting import update

__all__ = ["METHODS", "check_method", "refit_data", "standardized", "std_columns"]

METHODS = ("refit", "basic")


def check_method(method: Any) -> str:
    if not isinstance(method, str) or method not in METHODS:
        raise DataError(f"standardize={method!r}: choose None, 'refit' (refit on standardized "
                        "data) or 'basic' (scale by the model matrix's SDs), as effectsize's "
                        "standardize_parameters(method=).")
    return method


def _info(m: FittedModel) -> dict[str, Any]:
    return cached_call(m, "_std_info", "lmm_tb_std_info", m.r_object,
                       what="standardized coefficients")


def _quantile(m: FittedModel, info: dict[str, Any], conf_level: float) -> float:
    p = (1.0 + conf_level) / 2.0
    if m.kind == "lmer":
        return float(t_quantile(p, np.array([float(info["df_residual"][0])]))[0])
    return normal_quantile(p)


def _strings(value: Any) -> list[str]:
    return [] if value is None else [str(v) for v in value]


def refit_data(m: FittedModel, info: dict[str, Any]) -> pd.DataFrame:
    """A standardized copy of the model's data (the caller's frame is not touched)."""
    calls = _strings(info.get("calls"))
    if calls:
        raise DataError(
            "standardize='refit' needs the formula's variables as plain columns; this "
            f"formula has {', '.join(dict.fromkeys(calls))}. effectsize would standardize the "
            "column inside the call, which changes what the model means. Standardize the "
            "columns yourself and fit again, or use standardize='basic'.")
    if m.request.offset:
        raise DataError("standardize='refit' with an offset: effectsize would standardize "
                        "the offset with the response. Use standardize='basic'.")
    if m.data is None:
        raise DataError("standardize='refit' needs the model's data; this model has none "
                        "attached.")
    data = convert.as_pandas(m.data, m.data_name).copy(deep=True)
    for col, centre, scale in zip(_strings(info.get("columns")), info["centre"],
                                  info["scale"]):
        values = pd.to_numeric(data[col], errors="coerce").to_numpy(dtype=float,
                                                                    na_value=np.nan)
        with np.errstate(invalid="ignore"):  # missing values stay missing
            data[col] = (values - float(centre)) / float(scale)
    return data


def standardized(m: FittedModel, method: str, conf_level: float = 0.95
                 ) -> dict[str, np.ndarray]:
    """Standardized estimate and Wald limits per fixed-effect term.

    Returns
    -------
    dict
        ``term`` (list), ``std_estimate``, ``std_conf_low``, ``std_conf_high``
        (arrays), in the order of ``m.coefs``.
    """
    method = check_method(method)
    info = _info(m)
    q = _quantile(m, info, conf_level)
    terms = m.coefs.index.tolist()
    if method == "basic":
        factor = dict(zip(_strings(info["terms"]), np.asarray(info["sd_x"], dtype=float)
                          / float(info["sd_y"][0])))
        scale = np.array([factor.get(t, np.nan) for t in terms])
        est = m.coefs["estimate"].to_numpy(dtype=float)
        se = m.coefs["std_error"].to_numpy(dtype=float)
    else:
        new = update(m, data=refit_data(m, info))
        coefs = new.coefs.reindex(terms)
        scale = np.ones(len(terms))
        est = coefs["estimate"].to_numpy(dtype=float)
        se = coefs["std_error"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        return {"term": terms, "std_estimate": est * scale,
                "std_conf_low": (est - q * se) * scale,
                "std_conf_high": (est + q * se) * scale}


def std_columns(m: FittedModel, frame: pd.DataFrame, method: str, conf_int: bool,
                conf_level: float, exponentiate: bool) -> pd.DataFrame:
    """tidy()'s frame with ``std_estimate[, std_conf_low, std_conf_high]`` added:
    values on the fixed rows, NaN on the others."""
    values = standardized(m, method, conf_level)
    names = ["std_estimate", *(["std_conf_low", "std_conf_high"] if conf_int else [])]
    fixed = (frame["effect"] == "fixed").to_numpy()
    by_term = {n: dict(zip(values["term"], values[n])) for n in names}
    out = frame.copy()
    for n in names:
        col = np.full(len(frame), np.nan)
        col[fixed] = [by_term[n].get(t, np.nan) for t in frame["term"][fixed]]
        out[n] = np.exp(col) if exponentiate else col
    return out
