"""glmmTMB fits from hostile input: family names, ziformula/dispformula with
R code, the caller's frame, R after a failed fit; and the %glmmtmb magics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic.errors import DataError, FitError, FormulaError, UnsafeFormulaError

FORMULA = "count ~ mined + (1 | site)"


@pytest.fixture(scope="module")
def sal() -> pd.DataFrame:
    return lmermagic.datasets.load("Salamanders", package="glmmTMB")


@pytest.mark.parametrize("family", [
    "nbinom3", "negbin", "gaussian(link='logit')", "nbinom2(link='identity')",
    "system('id')", "beta_family(link=\"log\")", "poisson); system('id'", "", 42,
    "quasipoisson", "binomial(link=logit)(x)"])
def test_bad_family(sal: pd.DataFrame, family: Any) -> None:
    with pytest.raises(DataError) as info:
        lmermagic.glmmtmb(FORMULA, sal, family=family)
    msg = str(info.value)
    assert "nbinom2" in msg or "use log" in msg or "logit" in msg


@pytest.mark.parametrize("family,link", [("NBINOM2", "log"), ("Gamma(link='log')", "log"),
                                         ("beta_family(probit)", "probit"),
                                         ("truncated_poisson", "log")])
def test_family_spellings(family: str, link: str) -> None:
    from lmermagic.tmb_request import parse_tmb_family

    assert parse_tmb_family(family)[1] == link


@pytest.mark.parametrize("option", ["ziformula", "dispformula"])
@pytest.mark.parametrize("payload", [
    "~ system('touch {f}')", "~ mined + eval(parse(text = \"system('touch {f}')\"))",
    "~ base::system('touch {f}')", "~ (1 | system('touch {f}'))",
    "~ {{system('touch {f}'); mined}}", "~ do.call('system', list('touch {f}'))"])
def test_unsafe_side_formulas(sal: pd.DataFrame, tmp_path: Any, option: str,
                              payload: str) -> None:
    target = tmp_path / "pwned"
    with pytest.raises(UnsafeFormulaError):
        lmermagic.glmmtmb(FORMULA, sal, family="poisson",
                          **{option: payload.format(f=target)})
    assert not target.exists()


def test_unsafe_main_formula(sal: pd.DataFrame, tmp_path: Any) -> None:
    target = tmp_path / "pwned"
    with pytest.raises(UnsafeFormulaError):
        lmermagic.glmmtmb(f"count ~ mined + system('touch {target}') + (1 | site)", sal,
                          family="poisson")
    assert not target.exists()


@pytest.mark.parametrize("text,error", [("count ~ mined", DataError),
                                        ("~ nosuchcolumn", FormulaError),
                                        ("~ mined ~ 1", FormulaError),
                                        ("~ (", FormulaError)])
def test_side_formula_shape(sal: pd.DataFrame, text: str, error: type) -> None:
    with pytest.raises(error):
        lmermagic.glmmtmb(FORMULA, sal, family="poisson", ziformula=text)


def test_one_sided_accepted(sal: pd.DataFrame) -> None:
    m = lmermagic.glmmtmb(FORMULA, sal, family="poisson", ziformula="~1",
                          dispformula=None)
    assert list(m.coefs["component"]) == ["cond", "cond", "zi"]


def test_data_not_mutated_and_r_usable_after_failure(sal: pd.DataFrame) -> None:
    df = sal.copy()
    df["sample"] = df["sample"].astype("int64")
    before = df.copy(deep=True)
    # beta_family needs a response in (0, 1): glmmTMB itself refuses the counts
    with pytest.raises(FitError):
        lmermagic.glmmtmb(FORMULA, df, family="beta_family")
    m = lmermagic.glmmtmb("count ~ mined + (1 | site)", df, family="poisson",
                          ziformula="~ mined")
    m2 = lmermagic.glmmtmb("count ~ mined + sample + (1 | site)", df, family="poisson",
                           factors="sample")
    pd.testing.assert_frame_equal(df, before)
    assert m.converged and m2.nobs == len(df)
    assert "sample2" in list(m2.coefs["term"])  # a factor in R, an int64 here


def test_missing_values_and_index(sal: pd.DataFrame) -> None:
    df = sal.copy()
    df.index = df.index + 1000
    df.loc[1003, "count"] = np.nan
    m = lmermagic.glmmtmb(FORMULA, df, family="poisson")
    assert m.nobs == len(df) - 1 and list(m.dropped) == [1003]
    assert np.isnan(m.fitted.loc[1003]) and m.predict().index.equals(df.index)
    assert m.simulate(1, seed=1).index.equals(df.index)


def test_mixed_anova_refused(sal: pd.DataFrame, cbpp: Any) -> None:
    m = lmermagic.glmmtmb(FORMULA, sal, family="poisson")
    g = lmermagic.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                        family="binomial")
    with pytest.raises(DataError, match="glmmTMB"):
        lmermagic.anova(m, g)


def test_magics(shell: Any, sal: pd.DataFrame) -> None:
    shell.user_ns["sal"] = sal
    shell.run_cell('%glmmtmb -d sal -o zinb_m --family nbinom2 --zi "~ mined" '
                   'count ~ mined + (1 | site)', store_history=False).raise_error()
    m = shell.user_ns["zinb_m"]
    ref = lmermagic.glmmtmb(FORMULA, sal, family="nbinom2", ziformula="~ mined")
    pd.testing.assert_frame_equal(m.coefs, ref.coefs)
    assert m.data_name == "sal" and m.name == "zinb_m"
    shell.run_cell("%%glmmtmb -d sal -o hurdle_m --family truncated_poisson --zi ~mined\n"
                   "count ~ mined  # the conditional part\n  + (1 | site)\n",
                   store_history=False).raise_error()
    h = shell.user_ns["hurdle_m"]
    assert h.family == "truncated_poisson" and set(h.coefs["component"]) == {"cond", "zi"}
    with pytest.raises(UnsafeFormulaError):
        shell.run_cell("%glmmtmb -d sal --family poisson --disp ~system('id') "
                       "count ~ mined + (1 | site)", store_history=False).raise_error()
    with pytest.raises(DataError, match="nbinom2"):
        shell.run_cell("%glmmtmb -d sal --family nb3 count ~ mined + (1 | site)",
                       store_history=False).raise_error()


def test_html_and_repr(sal: pd.DataFrame) -> None:
    m = lmermagic.glmmtmb(FORMULA, sal, family="nbinom2", ziformula="~ mined")
    html = m._repr_html_()
    assert "zero-inflation ~ mined" in html and "minedno" in html
    assert "glmmTMB" in repr(m) and m.r_code().endswith("summary(fit)\n")


def test_r_side_checks_side_formulas_too(tmp_path: Any) -> None:
    """R/tmb.R builds ziformula/dispformula through the allowlist itself (a
    second line behind tmb_fit's check): called directly, it refuses."""
    from lmermagic import convert
    from lmermagic.rbridge import RFrame, get_r

    target = tmp_path / "pwned"
    df = pd.DataFrame({"y": [0, 1, 2, 0], "x": [1.0, 2.0, 3.0, 4.0]})
    r = get_r()
    frame = RFrame([convert.encode_column(c, df[c]) for c in df.columns], len(df))
    for part in ("zi", "disp"):
        texts = {"cond": "y ~ x", "zi": "", "disp": "", part: f"~ system('touch {target}')"}
        res = r.run("lmm_tmb_fit", frame, texts, {"family": "poisson", "link": "log"},
                    r.allowed(()), packed=True)
        assert "safety check" in str(res["error"][0])
    assert not target.exists()
