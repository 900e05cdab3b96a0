"""lmermagic's table schema: the same columns, names and dtypes whatever R calls them.

lme4 and lmerTest rename columns between releases (lme4 1.1-37 calls the
likelihood-ratio table's ``deviance`` ``-2*log(L)``; lme4 2.x orders confint's
rows differently). Users read our tables by name, so every table is checked here
against the schema in docs/schema.md, on every stack of the compatibility matrix.
The values themselves are compared with R in the other test files.
"""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

import lmermagic

FLOAT, INT, BOOL, STR, CAT = "float", "int", "bool", "str", "category"


def _kind(dtype) -> str:
    if isinstance(dtype, pd.CategoricalDtype):
        return CAT
    if pd.api.types.is_bool_dtype(dtype):
        return BOOL
    if pd.api.types.is_integer_dtype(dtype):
        return INT
    if pd.api.types.is_float_dtype(dtype):
        return FLOAT
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        return STR
    return str(dtype)


def _check(df: pd.DataFrame, index: str | None, columns: dict[str, str]) -> None:
    assert df.index.name == index
    assert list(df.columns) == list(columns), list(df.columns)
    assert {c: _kind(t) for c, t in df.dtypes.items()} == columns


COEFS = {"estimate": FLOAT, "std_error": FLOAT, "df": FLOAT, "statistic": FLOAT,
         "p_value": FLOAT, "conf_low": FLOAT, "conf_high": FLOAT}
F_TESTS = {"sum_sq": FLOAT, "mean_sq": FLOAT, "num_df": INT, "den_df": FLOAT,
           "f_value": FLOAT, "p_value": FLOAT}
CI = {"parameter": STR, "estimate": FLOAT, "conf_low": FLOAT, "conf_high": FLOAT}


@pytest.fixture(scope="module")
def models():
    sleep = lmermagic.datasets.load("sleepstudy")
    cbpp = lmermagic.datasets.load("cbpp")
    dietox = lmermagic.datasets.load("dietox", package="geepack")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "m": lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep),
            "m0": lmermagic.lmer("Reaction ~ 1 + (Days | Subject)", sleep),
            "g": lmermagic.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                                 cbpp, family="binomial"),
            "d": lmermagic.lmer("Weight ~ Time + Evit + (1 | Pig)", dietox, factors=["Evit"]),
        }


def test_model_tables(models):
    m, g = models["m"], models["g"]
    _check(m.coefs, "term", COEFS)
    _check(g.coefs, "term", COEFS)
    _check(m.varcorr, None, {"group": STR, "var1": STR, "var2": STR, "vcov": FLOAT,
                             "sdcor": FLOAT})
    _check(m.ranef_table, None, {"group": STR, "term": STR, "level": STR, "condval": FLOAT,
                                 "condsd": FLOAT})
    assert list(m.ranef) == ["Subject"]
    _check(m.ranef["Subject"], m.ranef["Subject"].index.name,
           {"(Intercept)": FLOAT, "Days": FLOAT})
    for series in (m.fitted, m.residuals, m.fixef):
        assert _kind(series.dtype) == FLOAT


def test_toolbox_tables(models):
    m, m0 = models["m"], models["m0"]
    _check(m.anova(), "term", F_TESTS)
    _check(m.drop1(), "term", F_TESTS)
    _check(m.ranova(), "term", {"npar": INT, "loglik": FLOAT, "aic": FLOAT, "lrt": FLOAT,
                                "df": FLOAT, "p_value": FLOAT})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        comparison = lmermagic.anova(m0, m)
    _check(comparison, "model", {"npar": FLOAT, "aic": FLOAT, "bic": FLOAT, "loglik": FLOAT,
                                 "deviance": FLOAT, "chisq": FLOAT, "df": FLOAT,
                                 "p_value": FLOAT, "aicc": FLOAT, "delta_aicc": FLOAT,
                                 "weight": FLOAT})
    _check(m.simulate(2, seed=1), None, {"sim_1": FLOAT, "sim_2": FLOAT})
    check_cols = {"check": STR, "term": STR, "statistic": STR, "value": FLOAT,
                  "adjusted": FLOAT, "df": FLOAT, "p_value": FLOAT, "observed": FLOAT,
                  "expected": FLOAT, "ok": BOOL, "verdict": STR}
    for model in (m, models["g"]):
        _check(model.check(), None, check_cols)
    _check(models["d"].emmeans("Evit"), None, {"Evit": CAT, "emmean": FLOAT,
                                               "std_error": FLOAT, "df": FLOAT,
                                               "conf_low": FLOAT, "conf_high": FLOAT})


TIDY = {"effect": STR, "group": STR, "term": STR, "estimate": FLOAT, "std_error": FLOAT,
        "statistic": FLOAT, "df": FLOAT, "p_value": FLOAT}
CONF = {"conf_low": FLOAT, "conf_high": FLOAT}
GLANCE = {"nobs": INT, "sigma": FLOAT, "loglik": FLOAT, "aic": FLOAT, "bic": FLOAT,
          "reml_crit": FLOAT, "deviance": FLOAT, "df_residual": INT, "converged": BOOL,
          "singular": BOOL, "n_warnings": INT, "r2_marginal": FLOAT, "r2_conditional": FLOAT,
          "icc": FLOAT}
AUGMENT = dict.fromkeys((".fitted", ".resid", ".hat", ".cooksd", ".fixed", ".mu", ".offset",
                         ".sqrtXwt", ".sqrtrwt", ".weights", ".wtres", ".eta"), FLOAT)


@pytest.mark.parametrize("name", ["m", "g"])
def test_tidy_tables(models, name):
    model = models[name]
    _check(model.tidy(), None, {**TIDY, **CONF})
    _check(model.tidy(conf_int=False), None, TIDY)
    with_level = {"effect": STR, "group": STR, "level": STR, **dict(list(TIDY.items())[2:])}
    _check(model.tidy(effects=["ran_vals", "ran_coefs"]), None, {**with_level, **CONF})
    _check(model.glance(), None, GLANCE)
    for series, index in ((model.r2(), ["r2_marginal", "r2_conditional"]),
                          (model.icc(), ["icc_adjusted", "icc_unadjusted"])):
        assert list(series.index) == index and _kind(series.dtype) == FLOAT
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        augmented = model.augment()
    # The model's columns with the caller's own dtypes.
    used = {"m": ["Reaction", "Days", "Subject"],
            "g": ["herd", "incidence", "size", "period"]}[name]
    data = {c: _kind(model.data[c].dtype) for c in used}
    _check(augmented, augmented.index.name, {**data, **AUGMENT})
    # Names as broom.mixed writes them, whatever lme4 calls the parameters.
    terms = model.tidy(effects="ran_pars")["term"].tolist()
    assert terms == {"m": ["sd__(Intercept)", "cor__(Intercept).Days", "sd__Days",
                           "sd__Observation"], "g": ["sd__(Intercept)"]}[name]


# lmermagic's order of the variance parameters: per random-effect term, its
# standard deviations then its correlations, then sigma, then the fixed effects
# (lme4 1.1's order; lme4 2.x's confint lists all standard deviations first).
CI_ROWS = [(".sig01", "sd_(Intercept)|Subject"), (".sig02", "cor_Days.(Intercept)|Subject"),
           (".sig03", "sd_Days|Subject"), (".sigma", "sigma"),
           ("(Intercept)", "(Intercept)"), ("Days", "Days")]


@pytest.mark.parametrize("method", ["wald", "profile"])
def test_confint_rows(models, method):
    ci = models["m"].confint(method=method)
    _check(ci, "term", CI)
    assert list(zip(ci.index, ci["parameter"])) == CI_ROWS


def test_allfit_columns(models):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        af = models["m"].allfit()
    _check(af, "optimizer", {
        "(Intercept)": FLOAT, "Days": FLOAT, "sd_(Intercept)|Subject": FLOAT,
        "sd_Days|Subject": FLOAT, "cor_(Intercept).Days|Subject": FLOAT, "sigma": FLOAT,
        "loglik": FLOAT, "converged": BOOL, "messages": STR, "feval": FLOAT,
        "seconds": FLOAT})


def test_many_models_glance():
    sleep = lmermagic.datasets.load("sleepstudy")
    grid = lmermagic.lmer_many({"a": "Reaction ~ Days + (1 | Subject)",
                                "b": "Reaction ~ 1 + (1 | Subject)"}, sleep, progress=False)
    _check(grid.glance, None, {
        "model": STR, "nobs": INT, "sigma": FLOAT, "loglik": FLOAT, "aic": FLOAT,
        "bic": FLOAT, "deviance": FLOAT, "converged": BOOL, "singular": BOOL,
        "n_warnings": INT, "r2_marginal": FLOAT, "r2_conditional": FLOAT, "icc": FLOAT,
        "aicc": FLOAT, "delta_aicc": FLOAT, "weight": FLOAT})
