"""AICc, delta AICc and Akaike weights in the model comparison table and in the
glance of a formula grid: against the formula computed live in R from
``logLik()`` everywhere, and against MuMIn's ``AICc()`` and ``model.sel()``
where MuMIn is installed (Debian unstable)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic.toolbox.selection import aicc, akaike_weights

FORMULAS = {"m0": "Reaction ~ 1 + (Days | Subject)",
            "m1": "Reaction ~ Days + (1 | Subject)",
            "m2": "Reaction ~ Days + (Days | Subject)"}

# R's AICc from logLik(), MuMIn's definition written out: k = logLik's df, n = nobs.
R_AICC = """
aicc <- function(m) { k <- attr(logLik(m), "df"); n <- nobs(m)
                      AIC(m) + 2 * k * (k + 1) / (n - k - 1) }
wts <- function(ic) { d <- ic - min(ic); list(aicc = ic, delta = d,
                      weight = exp(-d / 2) / sum(exp(-d / 2))) }
d <- lme4::sleepstudy
fits <- list(m0 = lme4::lmer(Reaction ~ 1 + (Days | Subject), d),
             m1 = lme4::lmer(Reaction ~ Days + (1 | Subject), d),
             m2 = lme4::lmer(Reaction ~ Days + (Days | Subject), d))
"""

HAS_MUMIN = "as.integer(requireNamespace('MuMIn', quietly = TRUE))"


@pytest.fixture(scope="module")
def sleep_models():
    sleep = lmermagic.datasets.load("sleepstudy")
    return {k: lmermagic.lmer(f, sleep) for k, f in FORMULAS.items()}


def _compare(models, refit=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lmermagic.anova(**models, refit=refit)


def _check(table: pd.DataFrame, ref: dict) -> None:
    np.testing.assert_allclose(table["aicc"], ref["aicc"], rtol=1e-9)
    np.testing.assert_allclose(table["delta_aicc"], ref["delta"], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(table["weight"], ref["weight"], rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("refit", [True, False])
def test_compare_table_has_aicc_and_weights(sleep_models, rref, refit):
    tab = _compare(sleep_models, refit=refit)
    assert list(tab.columns[-3:]) == ["aicc", "delta_aicc", "weight"]
    # R's anova() orders the rows by npar and refits REML fits with ML first.
    prep = "lapply(fits, lme4::refitML)" if refit else "fits"
    ref = rref(R_AICC + f"""
    fits <- {prep}
    ic <- sapply(fits, aicc)[c({", ".join(repr(n) for n in tab.index)})]
    wts(ic)""")
    _check(tab, ref)
    assert tab["weight"].sum() == pytest.approx(1.0)
    assert tab["delta_aicc"].min() == 0.0


def test_compare_agrees_with_mumin(sleep_models, rref):
    if not rref(HAS_MUMIN)[0]:
        pytest.skip("MuMIn is not installed (Debian unstable has r-cran-mumin)")
    for refit in (True, False):
        tab = _compare(sleep_models, refit=refit)
        ref = rref(R_AICC + f"""
        fits <- {"lapply(fits, lme4::refitML)" if refit else "fits"}
        sel <- MuMIn::model.sel(fits)
        sel <- sel[c({", ".join(repr(n) for n in tab.index)}), ]
        list(aicc = sapply(fits, MuMIn::AICc)[c({", ".join(repr(n) for n in tab.index)})],
             delta = sel$delta, weight = as.numeric(sel$weight))""")
        _check(tab, ref)


def test_magic_compare_has_the_columns(shell):
    shell.user_ns["sleep"] = lmermagic.datasets.load("sleepstudy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = shell.run_cell("%%lmer -d sleep --compare -q -o cmp\n"
                             "a = Reaction ~ 1 + (1 | Subject)\n"
                             "b = Reaction ~ Days + (1 | Subject)\n")
    res.raise_error()
    cmp = shell.user_ns["cmp"]
    assert cmp["weight"].sum() == pytest.approx(1.0)
    assert cmp.loc["b", "delta_aicc"] == 0.0


GRID = {"slope": "Reaction ~ Days + (Days | Subject)",
        "intercept": "Reaction ~ Days + (1 | Subject)",
        "flat": "Reaction ~ 1 + (1 | Subject)"}


def test_formula_grid_glance_has_aicc_and_weights(rref):
    """A REML grid: each fit's own (REML) likelihood, as MuMIn by default."""
    sleep = lmermagic.datasets.load("sleepstudy")
    mm = lmermagic.lmer_many(GRID, sleep, progress=False)
    g = mm.glance.set_index("model")
    ref = rref(R_AICC + """
    fits <- list(slope = lme4::lmer(Reaction ~ Days + (Days | Subject), d),
                 intercept = lme4::lmer(Reaction ~ Days + (1 | Subject), d),
                 flat = lme4::lmer(Reaction ~ 1 + (1 | Subject), d))
    wts(sapply(fits, aicc))""")
    _check(g.loc[list(GRID)], ref)
    assert list(mm.glance.columns[-3:]) == ["aicc", "delta_aicc", "weight"]


def test_formula_grid_by_subset_weights_within_each_subset(rref):
    sleep = lmermagic.datasets.load("sleepstudy")
    data = sleep.assign(half=(sleep.Subject.cat.codes >= 9).astype(int))
    mm = lmermagic.lmer_many(GRID, data, by="half", reml=False, progress=False)
    for half in (0, 1):
        g = mm.glance[mm.glance.half == half].set_index("model").loc[list(GRID)]
        ref = rref(R_AICC + f"""
        d$half <- as.integer(as.integer(d$Subject) > 9L)
        s <- droplevels(d[d$half == {half}L, ])
        fits <- list(lme4::lmer(Reaction ~ Days + (Days | Subject), s, REML = FALSE),
                     lme4::lmer(Reaction ~ Days + (1 | Subject), s, REML = FALSE),
                     lme4::lmer(Reaction ~ 1 + (1 | Subject), s, REML = FALSE))
        wts(sapply(fits, aicc))""")
        _check(g, ref)
        assert g["weight"].sum() == pytest.approx(1.0)


def test_formula_grid_agrees_with_mumin(rref):
    if not rref(HAS_MUMIN)[0]:
        pytest.skip("MuMIn is not installed (Debian unstable has r-cran-mumin)")
    cbpp = lmermagic.datasets.load("cbpp")
    grid = {"period": "cbind(incidence, size - incidence) ~ period + (1 | herd)",
            "null": "cbind(incidence, size - incidence) ~ 1 + (1 | herd)"}
    mm = lmermagic.glmer_many(grid, cbpp, family="binomial", progress=False)
    g = mm.glance.set_index("model").loc[list(grid)]
    ref = rref("""
    d <- lme4::cbpp
    fits <- list(period = lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                      d, family = binomial),
                 null = lme4::glmer(cbind(incidence, size - incidence) ~ 1 + (1 | herd),
                                    d, family = binomial))
    sel <- MuMIn::model.sel(fits)[c("period", "null"), ]
    list(aicc = sapply(fits, MuMIn::AICc), delta = sel$delta, weight = as.numeric(sel$weight))""")
    _check(g, ref)


def test_per_response_glance_has_aicc_but_no_weights(rref):
    """Models of different responses are no rivals: no delta, no weight."""
    sleep = lmermagic.datasets.load("sleepstudy")
    data = sleep.assign(R2=sleep.Reaction * 2.0)
    mm = lmermagic.lmer_many("~ Days + (1 | Subject)", data, responses=["Reaction", "R2"],
                             progress=False)
    ref = rref(R_AICC + """
    d$R2 <- d$Reaction * 2
    c(aicc(lme4::lmer(Reaction ~ Days + (1 | Subject), d)),
      aicc(lme4::lmer(R2 ~ Days + (1 | Subject), d)))""")
    np.testing.assert_allclose(mm.glance["aicc"], ref, rtol=1e-9)
    assert mm.glance["delta_aicc"].isna().all() and mm.glance["weight"].isna().all()


@pytest.mark.parametrize(("aic", "k", "n", "expected"), [
    (100.0, 3, 20, 100.0 + 2 * 3 * 4 / 16),
    (100.0, 1, 10, 100.0 + 2 * 1 * 2 / 8),
    (100.0, 4, 5, np.inf),                 # n = k + 1: R's 2k(k+1)/0
    (100.0, 5, 5, 100.0 + 2 * 5 * 6 / -1),  # as MuMIn: the formula as it stands
])
def test_aicc_formula(aic, k, n, expected):
    assert aicc(aic, k, n) == pytest.approx(expected)


def test_weights_skip_missing_criteria():
    delta, weight = akaike_weights(np.array([10.0, np.nan, 12.0]))
    np.testing.assert_allclose(delta, [0.0, np.nan, 2.0])
    w = np.exp(-1.0)
    np.testing.assert_allclose(weight, [1 / (1 + w), np.nan, w / (1 + w)])
