"""Predictions and simulated responses, as lme4's ``predict()`` and ``simulate()``."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

from .. import convert, tables
from ..errors import DataError, FitError, did_you_mean
from ..fitted import FittedModel
from ..rbridge import RFrame, get_r
from ..request import formula_text, raise_formula_problem
from ._common import (
    call,
    caller_index,
    check_model,
    positive_int,
    r_columns,
    r_options,
    seed_arg,
)

__all__ = ["predict", "simulate"]


def _re_form(re_form: Any) -> str | None:
    if re_form is None:
        return None
    if isinstance(re_form, float) and math.isnan(re_form):
        return "NA"
    if not isinstance(re_form, str):
        raise DataError(f"re_form={re_form!r}: use None, '~0' or a formula like "
                        "'~(1 | Subject)'.")
    text = formula_text(re_form, "re_form")
    if text.upper() == "NA" or re.fullmatch(r"~\s*0", text):
        return "NA"
    return text if text.startswith("~") else "~" + text



_BOUNDS = {"confidence": ("conf_low", "conf_high"), "prediction": ("pred_low", "pred_high")}


def _interval_level(interval: Any, level: Any) -> float:
    if interval not in _BOUNDS:
        raise DataError(f"interval={interval!r}: use None, 'confidence' or 'prediction'.")
    if isinstance(level, bool):
        raise DataError(f"level={level!r} is not a number; give e.g. 0.95.")
    try:
        out = float(level)
    except (TypeError, ValueError):
        raise DataError(f"level={level!r} is not a number; give e.g. 0.95.") from None
    if not 0 < out < 1:  # NaN fails too
        raise DataError(f"level must be between 0 and 1 (e.g. 0.95); got {level!r}.")
    return out


def predict(m: FittedModel, newdata: Any = None, re_form: str | None = None,
            allow_new_levels: bool = False, type: str = "response",
            interval: str | None = None, level: float = 0.95) -> pd.Series | pd.DataFrame:
    """Predictions, as lme4's ``predict(m, newdata, re.form, allow.new.levels, type)``,
    optionally with confidence or prediction intervals.

    Parameters
    ----------
    newdata : DataFrame, optional
        Rows to predict; without it, the model's own rows (rows R dropped for
        missing values give NaN). Only the model's columns are used. Text and
        Categorical columns are matched to the model's factor levels by label.
    re_form : str, optional
        ``None``: all random effects (R's ``re.form = NULL``); ``"~0"`` or
        ``"NA"``: population level (``re.form = NA``); or a formula of some of
        the model's random-effect terms, e.g. ``"~(1 | Subject)"``.
    allow_new_levels : bool
        Let grouping-factor levels unseen in the fit predict at population
        level for that term (R's ``allow.new.levels``).
    type : {"response", "link"}
        For glmer: the mean (``"response"``) or the linear predictor.
    interval : {None, "confidence", "prediction"}
        Bounds ``eta -/+ z * sd`` on the link scale, ``z = qnorm((1 + level) / 2)``
        (normal quantile: lme4 gives no t-based ones); with ``type="response"``
        a glmer's bounds go through the inverse link (the bounds, not the SE).
        ``"confidence"``: sd from the fixed effects' covariance alone,
        ``sqrt(diag(X V X'))``; around a conditional prediction (``re_form``
        None or partial) the random effects are taken as known -- their
        conditional variance is not added. ``"prediction"`` (lmer only): a new
        observation, ``X V X' + sigma^2`` plus the variance of the random-effect
        columns the prediction leaves out (all at ``re_form="~0"``, the others
        at a partial ``re_form``, and those of a level new to the fit), e.g.
        ``s0^2 + 2 d s01 + d^2 s1^2`` for ``(1 + Days | Subject)`` at Days = d.
        Weights are taken as 1. A glmer's response has no normal prediction
        interval: DataError (simulate() gives its distribution).
    level : float
        Coverage of the interval, between 0 and 1.

    Returns
    -------
    pandas.Series or pandas.DataFrame
        On ``newdata``'s index (or the model data's); rows with missing values
        give NaN. With ``interval``: a DataFrame with columns ``predicted`` and
        ``conf_low, conf_high`` or ``pred_low, pred_high``.

    Examples
    --------
    >>> new = pd.DataFrame({"Days": [0, 5], "Subject": ["308", "308"]})
    >>> m.predict(new)
    >>> m.predict(new, re_form="~0")
    """
    check_model(m)
    if type not in ("response", "link"):
        raise DataError(f"type={type!r}: use 'response' or 'link'.")
    rf = _re_form(re_form)
    lev = None if interval is None else _interval_level(interval, level)
    rnew: Any = None
    index = caller_index(m)
    columns = r_columns(m)
    if newdata is not None:
        df = convert.as_pandas(newdata, "newdata")
        convert.check_labels(df, "newdata")
        used = [c for c in df.columns if c in columns]
        rnew = RFrame([convert.encode_column(c, df[c]) for c in used], len(df))
        index = df.index
        if not len(df):  # lme4 itself fails on no rows ("Invalid grouping factor")
            names = ["predicted", *(_BOUNDS[interval] if interval is not None else ())]
            empty = pd.DataFrame({n: np.array([], dtype=float) for n in names}, index=index)
            return empty["predicted"] if interval is None else empty
    allowed = get_r().allowed(m.request.extra_functions)
    try:
        value = call("lmm_tb_predict", m.r_object, m.r_data, r_options(m), rnew, rf,
                     bool(allow_new_levels), type, allowed, interval, lev, what="predict")
    except FitError as exc:
        if "new levels detected" in exc.r_message:
            raise DataError(f"newdata has levels the model was not fitted with: R says "
                            f"'{exc.r_message.strip()}'. allow_new_levels=True predicts them "
                            "at the population level for that term.") from None
        hit = re.search(r"object '([^']+)' not found", exc.r_message)
        if newdata is not None and hit and hit.group(1) in columns:
            name = hit.group(1)
            raise DataError(f"newdata has no column '{name}', which the model uses."
                            + did_you_mean(name, list(convert.as_pandas(newdata).columns))
                            ) from None
        raise
    if "check" in value:
        raise_formula_problem(value["check"], str(re_form), columns, what="re_form")
    if "bad_levels" in value:
        bad = "; ".join(value["bad_levels"])
        raise DataError(f"newdata has levels the model was not fitted with ({bad}); a "
                        "fixed effect cannot be predicted for a level it has no estimate for.")
    if "problem" in value:
        raise DataError("interval='prediction' is for lmer fits: a GLMM's response (counts, "
                        "proportions) has no normal prediction interval. Use "
                        "m.simulate(nsim) for its distribution, or interval='confidence' "
                        "for the mean.")
    dropped = np.asarray(value["dropped"] if value["dropped"] is not None else [],
                         dtype=np.int64)
    cols = {"predicted": value["fit"]}
    if interval is not None:
        low, high = _BOUNDS[interval]
        cols.update({low: value["low"], high: value["high"]})
    series = {name: tables.on_caller_index(np.asarray(v, dtype=float), dropped, index, name)
              for name, v in cols.items()}
    if interval is None:
        return series["predicted"]
    out = pd.DataFrame(series, index=index)
    out.attrs.update(interval=interval, level=lev)
    return out


def simulate(m: FittedModel, nsim: int = 1, seed: int | None = None) -> pd.DataFrame:
    """Responses simulated from the fitted model, as R's ``simulate(m, nsim, seed)``.

    New random effects and new noise each time (lme4's ``use.u = FALSE``). With
    ``seed`` the numbers equal R's ``simulate(m, nsim, seed = seed)``, and R's
    random number state is put back afterwards (lme4's own leaves it changed).

    Returns
    -------
    pandas.DataFrame
        Columns ``sim_1 ... sim_<nsim>`` on the model data's index (NaN for rows
        R dropped). For a two-column binomial response (``cbind(successes,
        failures)``) the simulated successes.
    """
    check_model(m)
    nsim = positive_int(nsim, "nsim")
    value = call("lmm_tb_simulate", m.r_object, nsim, seed_arg(seed), what="simulate")
    index = caller_index(m)
    dropped = np.asarray(value["dropped"] if value["dropped"] is not None else [],
                         dtype=np.int64)
    sims = value["sims"]
    cols = sims if isinstance(sims, list) else list(sims.values())
    return pd.DataFrame({name: tables.on_caller_index(np.asarray(col, dtype=float), dropped,
                                                      index, name)
                         for name, col in zip(value["names"], cols)}, index=index)
