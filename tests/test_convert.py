"""Columns cross to R faithfully, or are refused with the column named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic.convert import NA_INTEGER, as_pandas, check_labels, encode_column
from lmermagic.rbridge import RFrame, _lock, get_r


def in_r(series: pd.Series) -> dict:
    """What R sees for this column: class, levels, values as text, NA positions."""
    import rpy2.robjects as ro

    r = get_r()
    with _lock:
        frame = r.frame(RFrame([encode_column("x", series)], len(series)))
        inspect = ro.r("""function(d) {
            x <- d$x
            list(class = class(x), levels = if (is.factor(x)) levels(x) else character(),
                 text = {t <- if (is.factor(x)) as.character(x) else
                                     format(x, digits = 17, trim = TRUE)
                         ifelse(is.na(t), "NA", t)},
                 na = which(is.na(x)) - 1L, nan = if (is.double(x)) which(is.nan(x)) - 1L
                 else integer(), tz = if (inherits(x, "POSIXct")) attr(x, "tzone") else "")
        }""")(frame)
        out = {k: list(v) for k, v in zip(inspect.names, inspect)}
        del frame, inspect
        return out


def test_numeric_with_missing_values_become_na_not_nan():
    got = in_r(pd.Series([1.5, np.nan, None, 4.0]))
    assert got["class"] == ["numeric"] and got["na"] == [1, 2] and got["nan"] == []


@pytest.mark.parametrize("series, klass", [
    (pd.Series([1, 2, 3], dtype="int64"), "integer"),
    (pd.Series([1, None, 3], dtype="Int64"), "integer"),
    (pd.Series([1.0, None], dtype="Float64"), "numeric"),
    (pd.Series([True, False]), "logical"),
    (pd.Series([True, None], dtype="boolean"), "logical"),
    (pd.Series([-2147483648, 0], dtype="int64"), "numeric"),
    (pd.Series([2**40, 1], dtype="int64"), "numeric"),
    (pd.Series([1, 2], dtype="uint8"), "integer"),
])
def test_numeric_classes(series, klass):
    got = in_r(series)
    assert got["class"] == [klass]
    expected = ["NA" if pd.isna(v) else (str(bool(v)).upper()
                                         if isinstance(v, (bool, np.bool_))
                                         else str(int(v))) for v in series]
    assert got["text"] == expected


def test_int_min_stays_a_number():
    got = in_r(pd.Series([-2147483648, 5]))
    assert got["text"] == ["-2147483648", "5"] and got["na"] == []


def test_strings_become_factor_sorted_as_r_does(rref):
    s = pd.Series(["b", "a", None, "c", "a"], dtype=object)
    got = in_r(s)
    assert got["class"] == ["factor"]
    assert got["levels"] == rref('levels(factor(c("b", "a", NA, "c", "a")))')
    assert got["text"][:2] == ["b", "a"] and got["na"] == [2]
    assert in_r(s.astype("string"))["levels"] == got["levels"]


def test_categorical_keeps_pandas_level_order_and_unused_levels():
    s = pd.Series(pd.Categorical(["lo", "hi", "mid", None],
                                 categories=["lo", "mid", "hi", "unused"]))
    got = in_r(s)
    assert got["levels"] == ["lo", "mid", "hi", "unused"]
    assert got["text"] == ["lo", "hi", "mid", "NA"]


def test_ordered_categorical_is_ordered_factor():
    s = pd.Series(pd.Categorical(["a", "b"], categories=["b", "a"], ordered=True))
    assert in_r(s)["class"] == ["ordered", "factor"]


def test_integer_categories_keep_their_order():
    s = pd.Series(pd.Categorical([10, 2, 1], categories=[1, 2, 10]))
    got = in_r(s)
    assert got["levels"] == ["1", "2", "10"] and got["text"] == ["10", "2", "1"]
    f = pd.Series(pd.Categorical([0.5, 1.0], categories=[1.0, 0.5]))
    assert in_r(f)["levels"] == ["1", "0.5"]


def test_naive_datetimes_do_not_shift():
    s = pd.Series(pd.to_datetime(["2024-03-01 12:00:00", None]))
    got = in_r(s)
    assert got["class"] == ["POSIXct", "POSIXt"] and got["tz"] == ["UTC"]
    assert got["text"][0] == "2024-03-01 12:00:00" and got["na"] == [1]


@pytest.mark.parametrize("series, match", [
    (pd.Series(["a", 1, 2.5], dtype=object), "mixes values of types"),
    (pd.Series([2**60, 1], dtype="int64"), "beyond"),
    (pd.Series([2**63], dtype="uint64"), "beyond"),
    (pd.Series(pd.to_datetime(["2024-01-01"]).tz_localize("UTC")), "time-zone-aware"),
    (pd.Series([1.0, np.inf]), "infinite"),
    (pd.Series([pd.Timedelta(1, "s")]), "does not send"),
])
def test_unfaithful_columns_are_refused(series, match):
    with pytest.raises(lmermagic.ConversionError, match=match) as info:
        encode_column("col", series)
    assert "'col'" in str(info.value)


def test_only_used_columns_are_checked(sleepstudy):
    df = sleepstudy.assign(junk=pd.Series([object()] * len(sleepstudy), dtype=object))
    m = lmermagic.lmer("Reaction ~ Days + (1 | Subject)", df)
    assert m.nobs == 180


@pytest.mark.parametrize("columns, match", [
    (pd.MultiIndex.from_tuples([("a", "y"), ("a", "x"), ("b", "g")]), "MultiIndex"),
    (["y", "y", "g"], "more than one column named 'y'"),
    (["y", 1, "g"], "not a string"),
    (["y", "", "g"], "empty name"),
])
def test_bad_labels(columns, match):
    df = pd.DataFrame(np.zeros((3, 3)), columns=columns)
    with pytest.raises(lmermagic.DataError, match=match):
        check_labels(df)


def test_odd_column_names_work(sleepstudy, rref):
    df = sleepstudy.rename(columns={"Reaction": "reaction time (ms)", "Days": "if",
                                    "Subject": "sübject.id"})
    m = lmermagic.lmer("`reaction time (ms)` ~ `if` + (1 | `sübject.id`)", df)
    ref = rref("coef(summary(lme4::lmer(Reaction ~ Days + (1 | Subject), lme4::sleepstudy)))")
    np.testing.assert_allclose(m.fixef, np.asarray(ref)[:, 0], rtol=1e-8)
    assert list(m.coefs.index) == ["(Intercept)", "`if`"] or "if" in m.coefs.index[1]
    assert set(m.ngroups) == {"sübject.id"}


def test_injection_through_column_name_is_inert(sleepstudy):
    import os

    evil = 'x` + system("touch /tmp/lmermagic-col") + `x'
    df = sleepstudy.assign(**{evil: np.arange(180) % 3 + 1.0, "d2": sleepstudy["Days"]})
    # pasted into a formula unescaped, the name is code: refused before R runs it
    with pytest.raises(lmermagic.UnsafeFormulaError):
        lmermagic.lmer(f"Reaction ~ `{evil}` + (1 | Subject)", df)
    # as a name handed over by option, it is only ever a name
    m = lmermagic.lmer("Reaction ~ Days + (1 | Subject)", df, weights=evil)
    escaped = evil.replace("`", "\\`")
    m2 = lmermagic.lmer(f"Reaction ~ `{escaped}` + d2 + (1 | Subject)", df, factors=[evil])
    assert not os.path.exists("/tmp/lmermagic-col")
    assert m.nobs == 180 and m2.nobs == 180


def test_polars_frames_are_accepted(sleepstudy):
    pl = pytest.importorskip("polars")
    pdf = pl.DataFrame({
        "Reaction": sleepstudy["Reaction"].to_numpy(),
        "Days": sleepstudy["Days"].to_numpy(),
        "Subject": pl.Series(sleepstudy["Subject"].astype(str).tolist()).cast(pl.Categorical),
    })
    m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", pdf)
    ref = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    pd.testing.assert_frame_equal(m.coefs, ref.coefs)
    assert isinstance(as_pandas(pdf), pd.DataFrame)


def test_missing_values_drop_rows_and_fitted_keeps_index(sleepstudy):
    df = sleepstudy.copy()
    df.index = [f"row{i}" for i in range(len(df))]
    df.loc["row3", "Reaction"] = np.nan
    df["Days"] = df["Days"].astype("Float64")
    df.loc["row7", "Days"] = pd.NA
    m = lmermagic.lmer("Reaction ~ Days + (1 | Subject)", df)
    assert m.nobs == 178 and list(m.dropped) == ["row3", "row7"]
    assert m.fitted.index.equals(df.index) and m.fitted[["row3", "row7"]].isna().all()
    assert m.residuals.notna().sum() == 178


def test_na_integer_constant():
    assert NA_INTEGER == -(2**31)


def _same(a, b, path=""):
    assert type(a) is type(b), path
    if isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            _same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        np.testing.assert_array_equal(a, b, err_msg=path)
    elif isinstance(a, pd.api.extensions.ExtensionArray):
        assert list(a.isna()) == list(b.isna()) and list(a.fillna(False)) == list(b.fillna(False))
    else:
        assert (a is b) or a == b or (a != a and b != b), path


def test_packed_results_are_what_the_plain_conversion_gives():
    # Fit results cross as six vectors (lmm_pack); nothing may change on the way.
    import rpy2.rinterface as ri

    from lmermagic.rbridge import to_py, unpack

    code = """list(a = 1:3, b = c(x = 1.5, y = NA), c = list(), d = NULL,
        e = c("p", NA, "\u00e9"), f = matrix(as.double(1:6), 2), g = c(TRUE, NA),
        h = c(TRUE, FALSE), i = list(list(z = "q"), 2L, NULL),
        k = matrix(1:4, 2, dimnames = list(c("a", "b"), NULL)), l = character(),
        m = numeric(), n = c(a = TRUE), o = matrix(numeric(0), 0, 3),
        p = setNames(list(), character()), q = c(-Inf, NaN, 1e-300),
        r = c(a = NA_integer_, b = 2L), s = list(fit = 1, data = 2),
        t = c(a = "x", b = NA), u = as.double(1:5000) / 7, v = matrix(1:10000, 100),
        w = c(a = TRUE, b = NA))"""
    r = get_r()
    with _lock:
        value = ri.baseenv["eval"](ri.parse(code))
        plain = to_py(value)
        packed = unpack(r.env["lmm_pack"](value, ri.StrSexpVector([])))
        kept = unpack(r.env["lmm_pack"](value, ri.StrSexpVector(["f", "s"])))
        # the disk cache's form of the same: bytes that Python alone reads back
        raw = to_py(r.env["lmm_pack_raw"](value))
    _same(plain, packed)
    _same(plain, lmermagic.packed.from_bytes(raw))
    assert np.signbit(packed["q"][0]) and np.isnan(packed["q"][1])
    assert type(kept["f"]).__name__ == "RObject" and type(kept["s"]).__name__ == "RObject"
    _same(kept["i"], packed["i"])
    with _lock:
        factor = unpack(r.env["lmm_pack"](ri.baseenv["eval"](ri.parse("factor(c('u', 'v'))")),
                                          ri.StrSexpVector([])))
    assert factor == ["u", "v"]


def packed_bytes() -> bytes:
    r = get_r()
    return r.run("lmm_pack_raw", {"a": np.arange(3, dtype=np.int32), "b": ["x", "\u00e9"],
                                  "c": {"d": 1.5}, "long": np.arange(5000.0)})


def test_packed_bytes_of_python_values_come_back():
    value = lmermagic.packed.from_bytes(packed_bytes())
    assert value["b"] == ["x", "\u00e9"] and value["c"] == {"d": [1.5]}
    np.testing.assert_array_equal(value["a"], [0, 1, 2])
    np.testing.assert_array_equal(value["long"], np.arange(5000.0))


def _set_int(raw: bytes, at: int, value: int) -> bytes:
    return raw[:at] + value.to_bytes(4, "little", signed=True) + raw[at + 4:]


# Bytes that are not a whole lmm_pack_raw result, each as the disk cache could
# meet it only through lmermagic's own mistake (its MAC verified).
@pytest.mark.parametrize("broken", [
    lambda raw: raw[:-1],                          # truncated
    lambda raw: raw + b"\0",                       # padded
    lambda raw: b"LMMPACK2" + raw[8:],             # another layout
    lambda raw: b"",
    lambda raw: _set_int(raw, 8, 7),               # a node table not in sixes
    lambda raw: _set_int(raw, 12, 10**6),          # more doubles than there are
    lambda raw: _set_int(raw, 12, -1),             # a negative count
    lambda raw: _set_int(raw, 32, 3),              # a long vector of an unknown kind
    lambda raw: _set_int(raw, 40 + 6 * 4 + 8, 10**6),   # a node outside its pool
    lambda raw: _set_int(raw, 40 + 4, 99),         # a list with more elements than nodes
])
def test_broken_packed_bytes_are_refused(broken):
    raw = packed_bytes()
    assert int.from_bytes(raw[28:32], "little") == 1  # one long vector: spec at 40
    with pytest.raises(lmermagic.packed.PackError):
        lmermagic.packed.from_bytes(broken(raw))


def test_dropped_models_release_their_r_objects_without_the_cycle_collector(sleepstudy):
    # A model holds R objects (the fit, its data); dropping the model must let R
    # free them at the next call, even when Python's cyclic GC never runs.
    import gc

    from rpy2.rinterface_lib import _rinterface_capi as capi

    lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    get_r().run("lmm_versions")
    before = len(capi._R_PRESERVED)
    gc.disable()
    try:
        for _ in range(5):
            m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
            del m
        get_r().run("lmm_versions")  # frees what dropped handles parked
        after = len(capi._R_PRESERVED)
    finally:
        gc.enable()
    assert after <= before
