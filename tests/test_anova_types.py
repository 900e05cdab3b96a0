"""anova() beyond lmerTest: car's Type II/III tests and emmeans' joint tests, for
glmer and lmer models, each against the same R call computed live."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic.errors import DataError
from lmermagic.toolbox._anova import plan

TOL = 1e-8

CBPP_R = ("g <- lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), "
          "lme4::cbpp, family = binomial)")
TICKS = "TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD)"
TICKS_R = f"g <- lme4::glmer({TICKS}, lme4::grouseticks, family = poisson)"
TICKS_SUM_R = (f"g <- lme4::glmer({TICKS}, lme4::grouseticks, family = poisson, "
               "contrasts = list(YEAR = 'contr.sum'))")
HAM = ("Informed.liking ~ Product * Information + Gender + (1 | Consumer) "
       "+ (1 | Consumer:Product)")
HAM_R = ('e <- new.env(); utils::data("ham", package = "lmerTest", envir = e)\n'
         f"g <- lme4::lmer({HAM}, e$ham)")
SLEEP_R = "g <- lme4::lmer(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)"

# R's columns of each table -> ours
CAR_CHISQ = {"Chisq": "chisq", "Df": "df", "Pr(>Chisq)": "p_value"}
CAR_F = {"F": "f_value", "Df": "num_df", "Df.res": "den_df", "Pr(>F)": "p_value"}
JOINT = {"df1": "num_df", "df2": "den_df", "F.ratio": "f_ratio", "p.value": "p_value"}


@pytest.fixture(scope="module", autouse=True)
def _r_packages(rref):
    has = rref('c(car = requireNamespace("car", quietly = TRUE), '
               'emmeans = requireNamespace("emmeans", quietly = TRUE))')
    if not all(has):
        pytest.skip("these tests compare with R's car and emmeans")


@pytest.fixture(scope="module")
def ticks():
    return lmermagic.datasets.load("grouseticks")


@pytest.fixture(scope="module")
def poisson_model(ticks):
    return lmermagic.glmer(TICKS, ticks, family="poisson")


@pytest.fixture(scope="module")
def ham_model():
    ham = lmermagic.datasets.load("ham", package="lmerTest")
    return lmermagic.lmer(HAM, ham)


@pytest.fixture(scope="module")
def sleep_model():
    return lmermagic.lmer("Reaction ~ Days + (Days | Subject)",
                          lmermagic.datasets.load("sleepstudy"))


def _r_table(rref, setup: str, expr: str, columns: dict[str, str]) -> pd.DataFrame:
    """R's table `a <- expr` as a frame with our column names, R's row names."""
    names = ", ".join(f'`{c}` = a[["{c}"]]' for c in columns)
    ref = rref(f"{setup}\na <- {expr}\nlist(rows = rownames(a), {names})")
    rows = ref.pop("rows")
    return pd.DataFrame({columns[c]: np.asarray(v, dtype=float) for c, v in ref.items()},
                        index=pd.Index(rows, name="term"))


def _joint_ref(rref, setup: str, args: str = "") -> pd.DataFrame:
    """emmeans::joint_tests(g), with its chi-square column where every df2 is
    infinite (newer emmeans print it; older ones get F.ratio * df1, its formula)."""
    ref = rref(f"""{setup}
        j <- emmeans::joint_tests(g{args})
        chisq <- if (!is.null(j$Chisq)) j$Chisq else j$F.ratio * j$df1
        list(rows = j[["model term"]], df1 = j$df1, df2 = j$df2, F.ratio = j$F.ratio,
             chisq = chisq, p.value = j$p.value, all_inf = all(is.infinite(j$df2)))""")
    rows, all_inf, chisq = ref.pop("rows"), bool(ref.pop("all_inf")[0]), ref.pop("chisq")
    out = pd.DataFrame({JOINT[c]: np.asarray(v, dtype=float) for c, v in ref.items()},
                       index=pd.Index(rows, name="term"))
    if all_inf:
        out.insert(3, "chisq", np.asarray(chisq, dtype=float))
    return out[[c for c in ["num_df", "den_df", "f_ratio", "chisq", "p_value"] if c in out]]


def _same(out: pd.DataFrame, ref: pd.DataFrame) -> float:
    """Same rows, columns and numbers (relative 1e-8); returns the largest difference."""
    assert list(out.index) == list(ref.index)
    assert list(out.columns) == list(ref.columns)
    np.testing.assert_allclose(out.to_numpy(dtype=float), ref.to_numpy(dtype=float),
                               rtol=TOL, atol=0)
    finite = np.isfinite(ref.to_numpy(dtype=float))
    return float(np.max(np.abs(out.to_numpy(dtype=float)[finite]
                               - ref.to_numpy(dtype=float)[finite])))


# ---------------------------------------------------------------------------
# glmer: joint_tests by default, car's Wald chi-square for Type II/III
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["binomial", "poisson"])
def test_glmer_default_is_joint_tests(which, cbpp_model, poisson_model, rref):
    g, setup = (cbpp_model, CBPP_R) if which == "binomial" else (poisson_model, TICKS_R)
    out = g.anova()
    _same(out, _joint_ref(rref, setup))
    assert list(out.columns) == ["num_df", "den_df", "f_ratio", "chisq", "p_value"]
    assert out["num_df"].dtype == np.int64 and np.isinf(out["den_df"]).all()
    np.testing.assert_allclose(out["chisq"], out["f_ratio"] * out["num_df"], rtol=1e-12)
    pd.testing.assert_frame_equal(g.anova(engine="joint_tests"), out)


@pytest.mark.parametrize("type_", [2, 3])
@pytest.mark.parametrize("which", ["binomial", "poisson"])
def test_glmer_car_wald_chisq(which, type_, cbpp_model, poisson_model, rref):
    g, setup = (cbpp_model, CBPP_R) if which == "binomial" else (poisson_model, TICKS_R)
    out = g.anova(type=type_)
    roman = "II" if type_ == 2 else "III"
    _same(out, _r_table(rref, setup, f'car::Anova(g, type = "{roman}")', CAR_CHISQ))
    assert f"Type {roman} Wald chisquare" in out.attrs["heading"]
    pd.testing.assert_frame_equal(g.anova(type=roman, engine="car", statistic="chisq"), out)
    pd.testing.assert_frame_equal(lmermagic.anova(g, type=type_), out)


def test_glmer_car_default_type_is_car_default(poisson_model, rref):
    out = poisson_model.anova(engine="car")
    _same(out, _r_table(rref, TICKS_R, "car::Anova(g)", CAR_CHISQ))


def test_glmer_car_type3_with_the_models_own_contrasts(ticks, rref):
    """Type III with sum-to-zero contrasts: car uses the model's contrasts as fitted."""
    g = lmermagic.glmer(TICKS, ticks, family="poisson", contrasts={"YEAR": "sum"})
    out = g.anova(type=3)
    _same(out, _r_table(rref, TICKS_SUM_R, 'car::Anova(g, type = "III")', CAR_CHISQ))
    treatment = lmermagic.glmer(TICKS, ticks, family="poisson").anova(type=3)
    assert out.loc["(Intercept)", "chisq"] != pytest.approx(
        treatment.loc["(Intercept)", "chisq"], rel=1e-3)


def test_glmer_type1_is_still_lme4s_sequential_table(cbpp_model, rref):
    out = cbpp_model.anova(type=1)
    ref = rref(f"{CBPP_R}\na <- anova(g); list(f = a[['F value']], s = a[['Sum Sq']])")
    np.testing.assert_allclose(out.loc["period", ["f_value", "sum_sq"]].to_numpy(float),
                               [ref["f"][0], ref["s"][0]], rtol=TOL)


# ---------------------------------------------------------------------------
# lmer: lmerTest by default; car's Kenward-Roger F or Wald chi-square; joint_tests
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("type_", [2, 3])
def test_lmer_car_kenward_roger_f(type_, ham_model, rref):
    out = ham_model.anova(type=type_, engine="car")
    roman = "II" if type_ == 2 else "III"
    ref = _r_table(rref, HAM_R, f'car::Anova(g, type = "{roman}", test.statistic = "F")',
                   CAR_F)
    _same(out, ref)
    assert list(out.columns) == ["f_value", "num_df", "den_df", "p_value"]
    assert out["num_df"].dtype == np.int64
    assert "Kenward-Roger" in out.attrs["heading"]
    pd.testing.assert_frame_equal(
        ham_model.anova(type=type_, engine="car", statistic="F", ddf="kr"), out)


@pytest.mark.parametrize("type_", [2, 3])
def test_lmer_car_wald_chisq(type_, sleep_model, rref):
    out = sleep_model.anova(type=type_, engine="car", statistic="Chisq")
    roman = "II" if type_ == 2 else "III"
    _same(out, _r_table(rref, SLEEP_R,
                        f'car::Anova(g, type = "{roman}", test.statistic = "Chisq")',
                        CAR_CHISQ))


def test_lmer_default_stays_lmertest(sleep_model):
    out = sleep_model.anova()
    pd.testing.assert_frame_equal(out, sleep_model.anova(type=3, ddf="satterthwaite",
                                                         engine="lmerTest"))
    assert "Satterthwaite" in out.attrs["heading"]


@pytest.mark.parametrize("ddf", [None, "satterthwaite", "asymptotic"])
def test_lmer_joint_tests(ddf, ham_model, rref):
    out = ham_model.anova(engine="joint_tests", ddf=ddf)
    args = "" if ddf is None else f', lmer.df = "{ddf}"'
    ref = _joint_ref(rref, HAM_R, args)
    _same(out, ref)
    assert ("chisq" in out) == (ddf == "asymptotic")


# ---------------------------------------------------------------------------
# bad inputs: a DataError saying what to use, before R runs
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"type": "4"}, "use 3"),
    ({"engine": "spss"}, "'lmerTest', 'car' or 'joint_tests'"),
    ({"statistic": "t", "engine": "car"}, "'F' or 'Chisq'"),
    ({"statistic": "F"}, "engine='car'"),
    ({"engine": "joint_tests", "type": 3}, "engine='car'"),
    ({"engine": "joint_tests", "ddf": "lme4"}, "asymptotic"),
    ({"engine": "car", "type": 1}, "type=2 or 3"),
    ({"engine": "car", "ddf": "satterthwaite"}, "Kenward-Roger"),
    ({"engine": "car", "statistic": "chisq", "ddf": "kr"}, "drop ddf"),
])
def test_bad_lmer_arguments(kwargs, match):
    with pytest.raises(DataError, match=match):
        plan(False, **{"type": None, "ddf": None, "engine": None, "statistic": None,
                       **kwargs})


@pytest.mark.parametrize("kwargs, match", [
    ({"engine": "car", "statistic": "F"}, "statistic='Chisq'.*joint_tests"),
    ({"type": 3, "statistic": "F"}, "statistic='Chisq'"),
    ({"engine": "lmerTest"}, "joint_tests"),
    ({"ddf": "kenward-roger"}, "asymptotic"),
    ({"type": 2, "ddf": "kenward-roger"}, "drop ddf"),
    ({"type": 1, "ddf": "satterthwaite"}, "drop ddf"),
])
def test_bad_glmer_arguments(kwargs, match, cbpp_model):
    with pytest.raises(DataError, match=match):
        cbpp_model.anova(**kwargs)


def test_car_f_needs_reml(sleep_model):
    ml = sleep_model.update(reml=False)
    with pytest.raises(DataError, match="REML"):
        ml.anova(engine="car")
    assert list(ml.anova(engine="car", statistic="chisq").columns) == ["chisq", "df",
                                                                       "p_value"]


def test_model_without_terms(cbpp):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g0 = lmermagic.glmer("cbind(incidence, size - incidence) ~ 1 + (1 | herd)", cbpp)
    for kwargs in ({}, {"type": 2}):
        with pytest.raises(DataError, match="none besides the intercept"):
            g0.anova(**kwargs)
    assert list(g0.anova(type=3).index) == ["(Intercept)"]


def test_module_level_anova_passes_every_option(cbpp_model):
    out = lmermagic.anova(cbpp_model, type=3, engine="car", statistic="Chisq")
    pd.testing.assert_frame_equal(out, cbpp_model.anova(type=3))
    with pytest.raises(DataError, match="statistic="):
        lmermagic.anova(cbpp_model, stat="F")


def test_joint_tests_of_an_empty_cell_keep_emmeans_note(tmp_path, rref):
    """An empty A:B cell: emmeans reduces df1, flags it in a note column and adds a
    (confounded) row; ours keeps both, the note without emmeans' padding."""
    rng = np.random.default_rng(3)
    d = pd.DataFrame({"A": rng.choice(list("abc"), 240), "B": rng.choice(list("xy"), 240),
                      "g": rng.choice([f"g{i}" for i in range(12)], 240)})
    d = d[~((d["A"] == "c") & (d["B"] == "y"))].reset_index(drop=True)
    d["y"] = rng.normal(size=len(d)) + (d["A"] == "b")
    path = tmp_path / "cells.csv"
    d.to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rank deficient, singular
        out = lmermagic.lmer("y ~ A * B + (1 | g)", d).anova(engine="joint_tests")
    setup = (f'd <- utils::read.csv("{path}", stringsAsFactors = TRUE)\n'
             "g <- suppressMessages(lme4::lmer(y ~ A * B + (1 | g), d))")
    ref = _joint_ref(rref, setup)
    _same(out.drop(columns="note"), ref)
    note = rref(f"{setup}\ntrimws(emmeans::joint_tests(g)$note)")
    assert list(out["note"]) == note
    assert "(confounded)" in out.index and "e" in list(out["note"])
    assert "non-estimability" in out.attrs["heading"]
