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



def predict(m: FittedModel, newdata: Any = None, re_form: str | None = None,
            allow_new_levels: bool = False, type: str = "response") -> pd.Series:
    """Predictions, as lme4's ``predict(m, newdata, re.form, allow.new.levels, type)``.

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

    Returns
    -------
    pandas.Series
        On ``newdata``'s index (or the model data's); rows with missing values
        give NaN.

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
    rnew: Any = None
    index = caller_index(m)
    columns = r_columns(m)
    if newdata is not None:
        df = convert.as_pandas(newdata, "newdata")
        convert.check_labels(df, "newdata")
        used = [c for c in df.columns if c in columns]
        rnew = RFrame([convert.encode_column(c, df[c]) for c in used], len(df))
        index = df.index
    allowed = get_r().allowed(m.request.extra_functions)
    try:
        value = call("lmm_tb_predict", m.r_object, m.r_data, r_options(m), rnew, rf,
                     bool(allow_new_levels), type, allowed, what="predict")
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
    fit = np.asarray(value["fit"], dtype=float)
    if newdata is None:
        dropped = np.asarray(value["dropped"] if value["dropped"] is not None else [],
                             dtype=np.int64)
        return tables.on_caller_index(fit, dropped, index, "predicted")
    return pd.Series(fit, index=index, name="predicted")


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
