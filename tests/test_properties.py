"""Property tests: random frames and small formulas either fit with the numbers R
gives for the same data built directly in R, or raise LmerError; nothing else,
and nothing changes in the caller's frame or R's global state."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import lmermagic

NAMES = ["x", "x.1", "dose mg", "größe", "if", "T", "a_b"]
GROUP_NAMES = ["g", "subject id", "Gruppe.2"]


def _r_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _r_number(v: float) -> str:
    return "NA" if v is None or (isinstance(v, float) and math.isnan(v)) else repr(float(v))


def r_vector(s: pd.Series) -> str:
    """R code building the column the way the documented conversion rules say."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = [str(c) for c in s.dtype.categories]
        values = ["NA" if pd.isna(v) else _r_string(str(v)) for v in s]
        return (f"factor(c({', '.join(values)}), levels = c({', '.join(map(_r_string, cats))}),"
                f" ordered = {str(bool(s.dtype.ordered)).upper()})")
    if pd.api.types.is_bool_dtype(s.dtype):
        return "c(" + ", ".join("NA" if pd.isna(v) else str(bool(v)).upper() for v in s) + ")"
    if pd.api.types.is_numeric_dtype(s.dtype):
        return "c(" + ", ".join(_r_number(None if pd.isna(v) else float(v)) for v in s) + ")"
    values = ["NA" if pd.isna(v) else _r_string(str(v)) for v in s]
    return f"factor(c({', '.join(values)}))"


@st.composite
def frames(draw):
    n = draw(st.integers(12, 40))
    ngroups = draw(st.sampled_from([4, 5, 3, 6, 2, 1]))
    xname = draw(st.sampled_from(NAMES))
    gname = draw(st.sampled_from(GROUP_NAMES))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    g_codes = rng.integers(0, ngroups, n)
    x_kind = draw(st.sampled_from(["float", "int", "Int64", "bool", "category", "str",
                                   "Float64"]))
    g_kind = draw(st.sampled_from(["str", "category", "int-category", "object-str"]))
    x_num = rng.normal(size=n)
    if x_kind == "float":
        x = pd.Series(x_num)
    elif x_kind == "int":
        x = pd.Series(rng.integers(-3, 4, n))
    elif x_kind == "Int64":
        x = pd.Series(rng.integers(-3, 4, n), dtype="Int64")
    elif x_kind == "Float64":
        x = pd.Series(x_num, dtype="Float64")
    elif x_kind == "bool":
        x = pd.Series(x_num > 0)
    elif x_kind == "category":
        x = pd.Series(pd.Categorical(np.where(x_num > 0, "hi", "lo"), categories=["lo", "hi"]))
    else:
        x = pd.Series(np.where(x_num > 0.3, "b", np.where(x_num < -0.3, "a", "c")))
    labels = np.array([f"G{c}" for c in g_codes], dtype=object)
    if g_kind == "str":
        g = pd.Series(labels).astype("string")
    elif g_kind == "category":
        g = pd.Series(pd.Categorical(labels, categories=sorted(set(labels), reverse=True)))
    elif g_kind == "int-category":
        g = pd.Series(pd.Categorical(g_codes * 10, categories=sorted(set(g_codes * 10))))
    else:
        g = pd.Series(labels)
    y = pd.Series(2 + x_num + rng.normal(size=ngroups)[g_codes] + rng.normal(size=n))
    df = pd.DataFrame({"y": y, xname: x, gname: g})
    # missing values in any column
    for col in df.columns:
        if draw(st.booleans()) and draw(st.booleans()):
            rows = draw(st.lists(st.integers(0, n - 1), max_size=4, unique=True))
            if rows:
                if isinstance(df[col].dtype, pd.CategoricalDtype) or df[col].dtype == object:
                    df.loc[rows, col] = None
                elif pd.api.types.is_bool_dtype(df[col].dtype):
                    df[col] = df[col].astype("boolean")
                    df.loc[rows, col] = pd.NA
                elif pd.api.types.is_integer_dtype(df[col].dtype) and df[col].dtype == "int64":
                    df[col] = df[col].astype("float64")
                    df.loc[rows, col] = np.nan
                else:
                    df.loc[rows, col] = pd.NA if str(df[col].dtype)[0].isupper() else np.nan
    index_kind = draw(st.sampled_from(["range", "str", "dates", "shuffled"]))
    if index_kind == "str":
        df.index = [f"r{i}" for i in range(n)]
    elif index_kind == "dates":
        df.index = pd.date_range("2024-01-01", periods=n, freq="D")
    elif index_kind == "shuffled":
        df.index = rng.permutation(n) * 3
    template = draw(st.sampled_from(["y ~ {x} + (1 | {g})", "y ~ 1 + (1 | {g})",
                                     "log(y + 10) ~ {x} + (1 | {g})"]))
    formula = template.format(x=f"`{xname}`", g=f"`{gname}`")
    return df, formula, xname, gname


def r_state(rref):
    return rref("list(ls(globalenv(), all.names = TRUE), search(), getOption('contrasts'))")


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frames())
def test_random_frames_fit_like_r_or_raise_lmererror(rref, case):
    df, formula, _xname, _gname = case
    before = df.copy(deep=True)
    state = r_state(rref)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lmermagic.LmerWarning)
        try:
            m = lmermagic.lmer(formula, df, ddf="lme4")
        except lmermagic.LmerError as exc:
            event(f"refused: {type(exc).__name__}")
            m = None
    pd.testing.assert_frame_equal(df, before)
    assert r_state(rref) == state
    if m is None:
        return
    event("fitted")
    cols = ", ".join(f"{_r_string(c)} = {r_vector(df[c])}" for c in df.columns)
    ref = rref(f"""
        d <- data.frame({cols}, check.names = FALSE)
        m <- suppressWarnings(suppressMessages(lme4::lmer({formula}, d)))
        list(fe = unname(lme4::fixef(m)), terms = names(lme4::fixef(m)),
             ll = as.numeric(logLik(m)), n = stats::nobs(m))""")
    assert m.nobs == int(ref["n"][0])
    assert [t.replace("`", "") for t in m.coefs.index] == \
        [t.replace("`", "") for t in ref["terms"]]
    np.testing.assert_allclose(m.fixef, ref["fe"], rtol=1e-6, atol=1e-8)
    assert m.loglik == pytest.approx(float(ref["ll"][0]), rel=1e-8)
    assert m.fitted.index.equals(df.index)
    assert int(m.fitted.notna().sum()) == m.nobs
