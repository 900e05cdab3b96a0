"""lmermagic.clmm's input rules: the ordered response, link and threshold
names, unsafe formulas, the caller's frame untouched, R usable after a
failure, and the %clmm magic."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
import pytest

import lmermagic
from tests.conftest import run_cell

FORMULA = "rating ~ temp + contact + (1 | judge)"


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    return lmermagic.datasets.load("wine", package="ordinal")


def _words(wine: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """wine with the ratings as words, in ``order`` (lowest first)."""
    words = dict(zip("12345", ["awful", "poor", "fair", "good", "great"]))
    out = wine.copy()
    out["rating"] = pd.Categorical(wine["rating"].astype(str).map(words), categories=order,
                                   ordered=True)
    return out


def test_ordered_categorical_keeps_its_non_alphabetical_order(wine: pd.DataFrame,
                                                              rref: Any) -> None:
    """awful < poor < fair < good < great is not alphabetical: R's ordered factor
    gets pandas' order, so the fit is ordinal's on the numbers 1-5."""
    df = _words(wine, ["awful", "poor", "fair", "good", "great"])
    m = lmermagic.clmm(FORMULA, df)
    assert m.levels == ["awful", "poor", "fair", "good", "great"]
    assert list(m.thresholds.index) == ["awful|poor", "poor|fair", "fair|good", "good|great"]
    ref = rref("m <- ordinal::clmm(rating ~ temp + contact + (1 | judge), data = ordinal::wine)"
               "\nc(m$alpha, m$beta)")
    np.testing.assert_allclose(np.r_[m.thresholds["estimate"], m.coefs["estimate"]], ref,
                               rtol=1e-10)
    # the reverse order is another model: thresholds negated and reversed, effects negated
    rev = lmermagic.clmm(FORMULA, _words(wine, ["great", "good", "fair", "poor", "awful"]))
    assert rev.levels[0] == "great"
    np.testing.assert_allclose(rev.coefs["estimate"], -m.coefs["estimate"].to_numpy(),
                               rtol=1e-5)
    np.testing.assert_allclose(rev.thresholds["estimate"],
                               -m.thresholds["estimate"].to_numpy()[::-1], rtol=1e-5)


def test_unused_response_level_is_dropped_as_ordinal_does(wine: pd.DataFrame) -> None:
    df = _words(wine, ["dreadful", "awful", "poor", "fair", "good", "great"])
    m = lmermagic.clmm(FORMULA, df)
    assert m.levels == ["awful", "poor", "fair", "good", "great"]
    assert list(m.predict_proba().columns) == m.levels


@pytest.mark.parametrize("make", [
    lambda s: s.cat.as_unordered(),
    lambda s: s.astype(str),
    lambda s: s.astype(int),
    lambda s: s.astype(float),
    lambda s: s.astype(str).astype("string"),
], ids=["unordered", "str", "int", "float", "string"])
def test_a_response_that_is_not_ordered_is_refused_with_the_fix(wine: pd.DataFrame,
                                                                make: Any) -> None:
    df = wine.assign(rating=make(wine["rating"]))
    with pytest.raises(lmermagic.DataError, match=r"ordered=True") as info:
        lmermagic.clmm(FORMULA, df)
    text = str(info.value)
    assert "'rating'" in text
    if isinstance(df["rating"].dtype, pd.CategoricalDtype):
        assert "unordered Categorical" in text and "cat.as_ordered()" in text
    else:
        assert "pd.Categorical(" in text


def test_an_expression_response_that_is_not_ordered_is_refused_by_r(
        wine: pd.DataFrame) -> None:
    """The response checked where R evaluates it, too (an expression is no column)."""
    df = wine.assign(text=wine["rating"].astype(str))
    with pytest.raises(lmermagic.DataError, match=r"'as.factor\(text\)' is an unordered factor"):
        lmermagic.clmm("as.factor(text) ~ temp + (1 | judge)", df)
    # ordered() in the formula states the order: allowed
    df = wine.assign(score=wine["rating"].astype(int))
    m = lmermagic.clmm("ordered(score) ~ temp + (1 | judge)", df)
    assert m.levels == ["1", "2", "3", "4", "5"]


@pytest.mark.parametrize(("option", "value"), [
    ("link", "identity"), ("link", "logit'); system('touch /tmp/x')"), ("link", "Logit x"),
    ("link", None), ("link", 1), ("threshold", "flexible\x00"), ("threshold", "ordered"),
    ("threshold", ["flexible"]),
])
def test_bad_link_and_threshold_names_are_refused_before_r(wine: pd.DataFrame, option: str,
                                                           value: Any) -> None:
    with pytest.raises(lmermagic.DataError, match=f"{option}=.*not one of ordinal's"):
        lmermagic.clmm(FORMULA, wine, **{option: value})


def test_link_names_are_case_and_space_insensitive(wine: pd.DataFrame) -> None:
    m = lmermagic.clmm(FORMULA, wine, link=" Probit", threshold="EQUIDISTANT")
    assert (m.link, m.threshold) == ("probit", "equidistant")


@pytest.mark.parametrize("formula", [
    'rating ~ temp + system("touch {flag}") + (1 | judge)',
    'rating ~ temp + (1 | base::system("touch {flag}"))',
    '{{system("touch {flag}"); rating}} ~ temp + (1 | judge)',
    'rating ~ temp + (1 | judge); system("touch {flag}")',
    'rating ~ temp + eval(parse(text = "system(\'touch {flag}\')")) + (1 | judge)',
])
def test_unsafe_formulas_are_refused_and_run_nothing(wine: pd.DataFrame, tmp_path: Any,
                                                     formula: str) -> None:
    flag = tmp_path / "ran"
    with pytest.raises(lmermagic.FormulaError):
        lmermagic.clmm(formula.format(flag=flag), wine)
    assert not os.path.exists(flag)


def test_a_name_that_is_not_a_column_is_not_looked_up_in_r(wine: pd.DataFrame) -> None:
    with pytest.raises(lmermagic.FormulaError, match=r"'tmep' is not a column.*temp"):
        lmermagic.clmm("rating ~ tmep + (1 | judge)", wine)


def test_the_callers_frame_is_not_changed(wine: pd.DataFrame) -> None:
    df = _words(wine, ["awful", "poor", "fair", "good", "great"])
    df.loc[3, "temp"] = np.nan
    before = df.copy(deep=True)
    dtypes = df.dtypes.copy()
    m = lmermagic.clmm(FORMULA, df)
    m.predict_proba(df)
    assert m.nobs == 71 and list(m.dropped) == [3]
    assert np.isnan(m.fitted.loc[3]) and m.missing == {"temp": 1}
    bad = df.assign(rating=df["rating"].cat.as_unordered())
    bad_before = bad.copy(deep=True)
    with pytest.raises(lmermagic.DataError):
        lmermagic.clmm(FORMULA, bad)
    pd.testing.assert_frame_equal(df, before)
    pd.testing.assert_frame_equal(bad, bad_before)
    assert df.dtypes.equals(dtypes) and df["rating"].cat.ordered


def test_r_is_usable_after_failed_fits(wine: pd.DataFrame) -> None:
    one_judge = wine[wine["judge"] == "1"]
    with pytest.raises(lmermagic.DataError, match="only one level"):
        lmermagic.clmm(FORMULA, one_judge)
    with pytest.raises(lmermagic.DataError, match="no random-effect term"):
        lmermagic.clmm("rating ~ temp", wine)
    with pytest.raises(lmermagic.FitError, match="degree"):  # R's own error, in the fit
        lmermagic.clmm("rating ~ poly(response, 80) + (1 | judge)", wine)
    m = lmermagic.clmm(FORMULA, wine)
    assert m.coefs.loc["tempwarm", "estimate"] == pytest.approx(3.062997, abs=1e-5)


def test_no_rows_and_not_a_frame(wine: pd.DataFrame) -> None:
    with pytest.raises(lmermagic.DataError, match="no rows"):
        lmermagic.clmm(FORMULA, wine.iloc[:0])
    with pytest.raises(lmermagic.DataError, match="not a DataFrame"):
        lmermagic.clmm(FORMULA, wine.to_dict())


def test_clmm_magic(shell: Any, wine: pd.DataFrame, rref: Any) -> None:
    shell.user_ns["wine"] = wine
    m = run_cell(shell, "%clmm -d wine -o wm --link probit --threshold equidistant "
                        "rating ~ temp + contact + (1 | judge)")
    assert m is shell.user_ns["wm"] and m.name == "wm" and m.data_name == "wine"
    ref = rref('m <- ordinal::clmm(rating ~ temp + contact + (1 | judge), '
               'data = ordinal::wine, link = "probit", threshold = "equidistant")\n'
               'c(m$alpha, m$beta)')
    np.testing.assert_allclose(np.r_[m.thresholds["estimate"], m.coefs["estimate"]], ref,
                               rtol=1e-8)
    cell = run_cell(shell, "%%clmm -d wine -q -o wc\n# a comment\nrating ~ temp + (1 | judge)")
    assert cell is None and shell.user_ns["wc"].formula == "rating ~ temp + (1 | judge)"
    table = run_cell(shell, "__import__('lmermagic').anova(wc, wm)")
    assert sorted(table.index) == ["wc", "wm"]  # rows by number of parameters
    with pytest.raises(lmermagic.DataError, match="link="):
        run_cell(shell, "%clmm -d wine --link identity rating ~ temp + (1 | judge)")
    with pytest.raises(lmermagic.DataError, match="-d/--data is required"):
        run_cell(shell, "%clmm rating ~ temp + (1 | judge)")
    with pytest.raises(lmermagic.DataError, match="ordered"):
        shell.user_ns["plain"] = wine.assign(rating=wine["rating"].astype(int))
        run_cell(shell, "%clmm -d plain rating ~ temp + (1 | judge)")


def test_wine_loads_without_naming_ordinal() -> None:
    wine = lmermagic.datasets.load("wine")
    assert wine.shape == (72, 6) and wine["rating"].cat.ordered


def test_the_session_cache_returns_the_same_fit_with_its_own_tables(
        wine: pd.DataFrame, empty_fit_cache: Any) -> None:
    m1 = lmermagic.clmm(FORMULA, wine)
    m2 = lmermagic.clmm(FORMULA, wine.copy())
    assert (m1.meta["cache"], m2.meta["cache"]) == ("miss", "memory")
    assert m2.r_object is m1.r_object
    m1.coefs.loc["tempwarm", "estimate"] = 0.0
    assert m2.coefs.loc["tempwarm", "estimate"] == pytest.approx(3.062997, abs=1e-5)
    # another link, another threshold, other data: other fits
    assert lmermagic.clmm(FORMULA, wine, link="probit").meta["cache"] == "miss"
    assert lmermagic.clmm(FORMULA, wine, threshold="equidistant").meta["cache"] == "miss"
    changed = wine.copy()
    changed.loc[0, "contact"] = "yes"
    assert lmermagic.clmm(FORMULA, changed).meta["cache"] == "miss"
    lmermagic.clear_cache()
    assert lmermagic.clmm(FORMULA, wine).meta["cache"] == "miss"


def test_a_polars_enum_response_keeps_its_order(wine: pd.DataFrame) -> None:
    pl = pytest.importorskip("polars")
    order = ["awful", "poor", "fair", "good", "great"]
    df = _words(wine, order)
    frame = pl.DataFrame({"temp": df["temp"].astype(str).tolist(),
                          "contact": df["contact"].astype(str).tolist(),
                          "judge": df["judge"].astype(str).tolist(),
                          "rating": pl.Series(df["rating"].astype(str).tolist(),
                                              dtype=pl.Enum(order))})
    m = lmermagic.clmm(FORMULA, frame)
    assert m.levels == order
    np.testing.assert_allclose(m.coefs["estimate"],
                               lmermagic.clmm(FORMULA, df).coefs["estimate"], rtol=1e-12)
    plain = frame.with_columns(pl.col("rating").cast(pl.String))
    with pytest.raises(lmermagic.DataError, match=r"pl\.Enum"):
        lmermagic.clmm(FORMULA, plain)
