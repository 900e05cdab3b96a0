"""What every toolbox module shares: calling the lmm_tb_* functions of
R/toolbox/*.R, R's tables to DataFrames with our column names, R's warnings
and errors to ours, and the checks of common arguments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

import pandas as pd

from .. import errors
from ..errors import DataError, FitError, excerpt
from ..fitted import FittedModel
from ..rbridge import get_r, to_py_frames

# R's column names -> ours. Columns not listed (factor columns of emmeans
# tables, emmean, response, prob, rate, ratio, contrast, ...) keep R's name.
COLUMN_NAMES = {
    "Sum Sq": "sum_sq",
    "Mean Sq": "mean_sq",
    "NumDF": "num_df",
    "DenDF": "den_df",
    "F value": "f_value",
    "Pr(>F)": "p_value",
    "logLik": "loglik",
    "AIC": "aic",
    "BIC": "bic",
    "LRT": "lrt",
    "Df": "df",
    "Chisq": "chisq",
    "Pr(>Chisq)": "p_value",
    "Pr(Chi)": "p_value",
    "SE": "std_error",
    "lower.CL": "conf_low",
    "upper.CL": "conf_high",
    "asymp.LCL": "conf_low",
    "asymp.UCL": "conf_high",
    "t.ratio": "t_ratio",
    "z.ratio": "z_ratio",
    "p.value": "p_value",
    "odds.ratio": "odds_ratio",
}

# R messages that only report progress.
_CHATTER = ("Computing profile confidence intervals", "Computing bootstrap confidence",
            "Loading required namespace")


def call(name: str, *args: Any, what: str, keep: Sequence[str] = (), **kwargs: Any) -> Any:
    """Run an lmm_tb_* function, re-issue R's warnings, raise R's error."""
    res = get_r().run(name, *args, convert=lambda obj: to_py_frames(obj, keep), **kwargs)
    reissue(list(res.get("warnings") or []) + list(res.get("messages") or []), what)
    if "error" in res:
        raise_r_error(what, str(res["error"][0]))
    return res.get("value")


def raise_r_error(what: str, msg: str) -> NoReturn:
    raise FitError(f"R could not compute {what}: {excerpt(msg)}", r_message=msg)


def reissue(texts: Sequence[str], what: str) -> None:
    """R's warnings and messages of a toolbox call, without R's progress chatter."""
    errors.reissue((t for t in texts if not t.startswith(_CHATTER)), prefix=f"{what}: ")


def r_options(m: FittedModel) -> dict[str, Any]:
    if m.r_object is None or m.r_data is None or m.request is None:
        raise DataError("this model has no R fit attached; fit it with lmermagic.lmer/glmer.")
    opts: dict[str, Any] = m.request.r_options()
    return opts


def table(value: dict[str, Any], index_name: str | None = "term") -> pd.DataFrame:
    """lmm_tb_table()'s list -> DataFrame with our column names, R's row names."""
    df: pd.DataFrame = value["table"]
    df = df.rename(columns={c: COLUMN_NAMES.get(c, c) for c in df.columns})
    rows = value.get("rows") or []
    if index_name is not None and len(rows) == len(df):
        df.index = pd.Index([str(r) for r in rows], name=index_name)
    heading = value.get("heading") or []
    df.attrs["heading"] = "\n".join(str(h).strip("\n") for h in heading)
    return df


def cached_call(m: FittedModel, key: str, name: str, *args: Any, what: str) -> dict[str, Any]:
    """``call(name, *args)``'s result, computed once per model (kept in ``m.meta[key]``);
    a copy of it, so that callers may change theirs."""
    got = m.meta.get(key)
    if got is None:
        got = call(name, *args, what=what)
        m.meta[key] = got
    return dict(got)


def r_columns(m: FittedModel) -> list[str]:
    """Names of the columns of the model's R data (cached on the model)."""
    cols = m.meta.get("_r_columns")
    if cols is None:
        cols = call("lmm_tb_columns", m.r_data, what="the model's columns")
        m.meta["_r_columns"] = list(cols)
    return list(cols)


def lmertest_fit(m: FittedModel) -> Any:
    """lmerTest's object for an lmer model (its Hessian computed once, kept on m)."""
    handle = m.meta.get("_lmertest")
    if handle is None:
        handle = call("lmm_tb_as_lmertest", m.r_object, m.r_data, r_options(m),
                      what="lmerTest's df", keep=("fit",))["fit"]
        m.meta["_lmertest"] = handle
    return handle


def caller_index(m: FittedModel) -> pd.Index:
    return m.fitted.index


def check_model(m: FittedModel) -> None:
    if not isinstance(m, FittedModel):
        raise DataError(f"expected a model from lmermagic.lmer/glmer, got {type(m).__name__}.")


def positive_int(value: Any, what: str) -> int:
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise DataError(f"{what}={value!r} is not a whole number.") from None
    if out < 1 or out != value:
        raise DataError(f"{what} must be a positive whole number; got {value!r}.")
    return out


def seed_arg(seed: Any) -> int | None:
    if seed is None:
        return None
    try:
        out = int(seed)
    except (TypeError, ValueError):
        raise DataError(f"seed={seed!r} is not a whole number.") from None
    if out != seed or abs(out) > 2**31 - 1:
        raise DataError(f"seed must be a whole number within ±2**31; got {seed!r}.")
    return out
