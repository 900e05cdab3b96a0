"""The schema of glmmTMB's and ordinal's tables (docs/schema.md, "Beyond lme4"), on
every stack of the matrix: columns, their order and dtypes, whatever the installed
glmmTMB, ordinal or broom.mixed call them. The values are compared with R in
test_glmmtmb.py and test_clmm.py."""

from __future__ import annotations

import warnings

import pytest

import lmermagic

from tests.test_schema import BOOL, CAT, FLOAT, INT, STR, _check

COEFS = {"estimate": FLOAT, "std_error": FLOAT, "statistic": FLOAT, "p_value": FLOAT,
         "conf_low": FLOAT, "conf_high": FLOAT}
LRT = {"npar": FLOAT, "aic": FLOAT, "bic": FLOAT, "loglik": FLOAT, "deviance": FLOAT,
       "chisq": FLOAT, "df": FLOAT, "p_value": FLOAT, "aicc": FLOAT, "delta_aicc": FLOAT,
       "weight": FLOAT}
VARCORR = {"group": STR, "var1": STR, "var2": STR, "vcov": FLOAT, "sdcor": FLOAT}
RANEF = {"group": STR, "term": STR, "level": STR, "condval": FLOAT, "condsd": FLOAT}


@pytest.fixture(scope="module")
def tmb():
    sal = lmermagic.datasets.load("Salamanders", package="glmmTMB")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = lmermagic.glmmtmb("count ~ mined + (1 | site)", sal, family="nbinom2",
                              ziformula="~ mined")
        m0 = lmermagic.glmmtmb("count ~ 1 + (1 | site)", sal, family="nbinom2",
                               ziformula="~ mined")
    return m, m0


@pytest.fixture(scope="module")
def ordinal():
    wine = lmermagic.datasets.load("wine")
    m = lmermagic.clmm("rating ~ temp + contact + (1 | judge)", wine)
    m0 = lmermagic.clmm("rating ~ temp + (1 | judge)", wine)
    return m, m0, wine


def test_glmmtmb_tables(tmb):
    m, m0 = tmb
    _check(m.coefs, None, {"component": STR, "term": STR, **COEFS})
    assert set(m.coefs["component"]) == {"cond", "zi"}
    _check(m.varcorr, None, {"component": STR, **VARCORR})
    _check(m.ranef_table, None, {"component": STR, **RANEF})
    _check(m.tidy(), None, {"effect": STR, "component": STR, "group": STR, "term": STR,
                            **COEFS})
    _check(m.glance(), None, {"nobs": INT, "sigma": FLOAT, "loglik": FLOAT, "aic": FLOAT,
                              "bic": FLOAT, "df_resid": INT})
    _check(m.augment(), None, {"count": INT, "mined": CAT, "site": CAT, "fitted": FLOAT,
                               "se_fit": FLOAT, "resid": FLOAT})
    _check(m.confint(), "term", {"conf_low": FLOAT, "conf_high": FLOAT, "estimate": FLOAT})
    _check(lmermagic.anova(m0, m), "model", LRT)


def test_clmm_tables(ordinal):
    m, m0, wine = ordinal
    _check(m.coefs, "term", COEFS)
    _check(m.thresholds, "term", COEFS)
    assert list(m.thresholds.index) == ["1|2", "2|3", "3|4", "4|5"]
    _check(m.varcorr, None, VARCORR)
    _check(m.ranef_table, None, RANEF)
    _check(m.tidy(), None, {"term": STR, **COEFS, "coef_type": STR})
    _check(m.glance(), None, {"edf": INT, "aic": FLOAT, "bic": FLOAT, "loglik": FLOAT,
                              "nobs": INT, "cond_h": FLOAT, "max_grad": FLOAT,
                              "converged": BOOL, "n_warnings": INT})
    proba = m.predict_proba(wine.head())
    _check(proba, None, dict.fromkeys(["1", "2", "3", "4", "5"], FLOAT))
    assert proba.columns.name == "level"
    _check(lmermagic.anova(m0, m), "model",
           {k: v for k, v in LRT.items() if k not in ("bic", "deviance")})
