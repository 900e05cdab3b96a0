"""m.tidy(), m.glance(), m.augment() against broom.mixed's tables, computed live in R.

Every number broom.mixed reports is compared by row key (effect, group, level,
term) and by column; where broom.mixed has no column (df of a z test) ours
must be missing. broom.mixed is Debian's r-cran-broom.mixed.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic.errors import DataError
from lmermagic.toolbox import tidying
from lmermagic.toolbox._student import t_quantile

RTOL = 1e-6

# broom.mixed's column names -> ours.
NAMES = {"std.error": "std_error", "p.value": "p_value", "conf.low": "conf_low",
         "conf.high": "conf_high", "logLik": "loglik", "AIC": "aic", "BIC": "bic",
         "REMLcrit": "reml_crit", "df.residual": "df_residual"}

# An R table as a list of plain vectors (character NA -> None in Python).
TAB_R = """tab <- function(x) {
    x <- as.data.frame(x)
    lapply(x, function(v) if (is.numeric(v)) as.numeric(v) else as.character(v))
}
dots <- function(a) as.data.frame(a)[grepl("^[.]", names(a))]"""

CASES = {
    "sleep_reml": ("lmer", "Reaction ~ Days + (Days | Subject)", "sleepstudy", {},
                   "lmerTest::lmer(Reaction ~ Days + (Days | Subject), d)"),
    "sleep_ml": ("lmer", "Reaction ~ Days + (Days | Subject)", "sleepstudy", {"reml": False},
                 "lmerTest::lmer(Reaction ~ Days + (Days | Subject), d, REML = FALSE)"),
    "penicillin": ("lmer", "diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin", {},
                   "lmerTest::lmer(diameter ~ 1 + (1 | plate) + (1 | sample), d)"),
    "cbpp": ("glmer", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp",
             {"family": "binomial"},
             ("lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), d, "
              "family = binomial)")),
    "poisson": ("glmer", "TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | LOCATION)",
                "grouseticks", {"family": "poisson"},
                ("lme4::glmer(TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | LOCATION), "
                 "d, family = poisson)")),
}


def _fit(kind: str, formula: str, data: pd.DataFrame, options: dict) -> lmermagic.LmerModel:
    fit = lmermagic.lmer if kind == "lmer" else lmermagic.glmer
    return fit(formula, data, **options)


@pytest.fixture(scope="module", params=list(CASES))
def case(request, rref):
    """(lmermagic's model, broom.mixed's tables for the same fit in R)."""
    kind, formula, dataset, options, r_fit = CASES[request.param]
    model = _fit(kind, formula, lmermagic.datasets.load(dataset), options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # hatvalues' note on GLMMs
        ref = rref(f"""{TAB_R}
d <- lme4::{dataset}
m <- {r_fit}
list(tidy = tab(broom.mixed::tidy(m, conf.int = TRUE)),
     glance = tab(broom.mixed::glance(m)),
     augment = tab(dots(suppressWarnings(broom.mixed::augment(m)))),
     ran_vals = tab(broom.mixed::tidy(m, effects = "ran_vals", conf.int = TRUE)),
     ran_coefs = tab(broom.mixed::tidy(m, effects = "ran_coefs")),
     ml_deviance = lme4:::deviance.merMod(m, REML = FALSE),
     singular = lme4::isSingular(m),
     resp = lapply(c(.mu = "mu", .offset = "offset", .sqrtXwt = "sqrtXwt",
                     .sqrtrwt = "sqrtrwt", .weights = "weights", .wtres = "wtres",
                     .eta = "eta"),
                   function(f) tryCatch(as.numeric(m@resp[[f]]), error = function(e) NULL)))""")
    return model, ref


def _keys(df: pd.DataFrame, cols: list[str]) -> list[tuple]:
    return [tuple("" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                  for v in row) for row in df[cols].itertuples(index=False)]


def _compare(ours: pd.DataFrame, ref: dict, numeric: tuple[str, ...]) -> None:
    """The same rows, every numeric column equal or both missing; a column
    broom.mixed leaves out must be missing in ours. Rows are matched by key:
    broom.mixed's order of a group's variance parameters follows lme4's
    as.data.frame(VarCorr()), which lme4 2.x changed (every sd first), while
    lmermagic keeps one order on every release (test_ran_pars_order)."""
    theirs = pd.DataFrame(ref).rename(columns=NAMES)
    keys = [c for c in ("effect", "group", "level", "term") if c in theirs.columns]
    mine_keys, their_keys = _keys(ours, keys), _keys(theirs, keys)
    assert len(set(mine_keys)) == len(mine_keys)
    assert sorted(mine_keys) == sorted(their_keys)
    theirs = theirs.iloc[[their_keys.index(k) for k in mine_keys]].reset_index(drop=True)
    if "group" not in theirs:  # broom.mixed's fixed-only table
        assert ours["group"].isna().all()
    for col in numeric:
        mine = ours[col].to_numpy(dtype=float)
        if col not in theirs:
            assert np.isnan(mine).all(), col
            continue
        np.testing.assert_allclose(mine, theirs[col].to_numpy(dtype=float), rtol=RTOL,
                                   atol=0, equal_nan=True, err_msg=col)


STATS = ("estimate", "std_error", "statistic", "df", "p_value", "conf_low", "conf_high")


def test_ran_pars_order_is_the_same_on_every_lme4(sleep_fit_for_order):
    """Per group, the lower triangle column by column: a term's sd, its
    correlations with the later terms, the next sd; the residual last."""
    got = sleep_fit_for_order.tidy(effects="ran_pars")["term"].tolist()
    assert got == ["sd__(Intercept)", "cor__(Intercept).Days", "sd__Days", "sd__Observation"]


@pytest.fixture(scope="module")
def sleep_fit_for_order():
    return lmermagic.lmer("Reaction ~ Days + (Days | Subject)",
                          lmermagic.datasets.load("sleepstudy"))


def test_tidy_matches_broom_mixed(case):
    model, ref = case
    ours = model.tidy()
    assert list(ours.columns) == ["effect", "group", "term", *STATS]
    _compare(ours, ref["tidy"], STATS)
    # The Wald limits must not be NaN where broom.mixed has numbers.
    fixed = ours[ours["effect"] == "fixed"]
    assert fixed[["conf_low", "conf_high"]].notna().all().all()


def test_ran_vals_and_ran_coefs_match_broom_mixed(case):
    model, ref = case
    _compare(model.tidy(effects="ran_vals"), ref["ran_vals"], STATS)
    coefs = model.tidy(effects="ran_coefs", conf_int=False)
    assert list(coefs.columns) == ["effect", "group", "level", "term", *STATS[:5]]
    _compare(coefs, ref["ran_coefs"], STATS[:5])


def test_glance_matches_broom_mixed(case):
    model, ref = case
    ours = model.glance()
    assert list(ours.columns) == list(tidying.GLANCE_COLUMNS)
    assert len(ours) == 1
    theirs = pd.DataFrame(ref["glance"]).rename(columns=NAMES)
    assert set(theirs.columns) <= set(ours.columns)
    for col in theirs.columns:
        np.testing.assert_allclose(float(ours[col].iloc[0]), float(theirs[col].iloc[0]),
                                   rtol=RTOL, err_msg=col)
    if model.reml:
        # broom.mixed reports REMLcrit only; ours adds the ML deviance at the REML fit.
        np.testing.assert_allclose(ours["deviance"].iloc[0], ref["ml_deviance"][0],
                                   rtol=RTOL)
    else:
        assert np.isnan(ours["reml_crit"].iloc[0])
    assert bool(ours["singular"].iloc[0]) == bool(ref["singular"][0])
    assert bool(ours["converged"].iloc[0]) is True
    assert int(ours["n_warnings"].iloc[0]) == len(model.warnings)


def test_augment_matches_broom_mixed(case):
    model, ref = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # R's note that hat values of GLMMs may not make sense
        ours = model.augment()
    assert list(ours.columns[-len(tidying.AUGMENT_COLUMNS):]) == list(tidying.AUGMENT_COLUMNS)
    assert ours.index.equals(model.fitted.index)
    theirs = pd.DataFrame(ref["augment"])
    for col in tidying.AUGMENT_COLUMNS:
        expected = theirs[".mu" if col == ".eta" and col not in theirs else col]
        mine = ours[col].to_numpy(dtype=float)
        theirs_v = expected.to_numpy(dtype=float)
        broken = np.isnan(theirs_v) & ~np.isnan(mine)
        if broken.any() and col in ref["resp"]:
            # broom.mixed 0.2.9.7 on lme4 2.x gives NA for 53 of cbpp's 56 .mu
            # values and puts the first three of lme4's in other rows: its column
            # is broken there, so ours must equal lme4's own response field
            expected = pd.Series(ref["resp"][col])
        np.testing.assert_allclose(ours[col].to_numpy(dtype=float),
                                   expected.to_numpy(dtype=float), rtol=RTOL, atol=1e-12,
                                   err_msg=col)
    data_cols = [c for c in ours.columns if not c.startswith(".")]
    assert data_cols and all(c in model.data.columns for c in data_cols)
    for col in data_cols:
        assert ours[col].astype(str).tolist() == model.data[col].astype(str).tolist()


def test_augment_spreads_over_the_callers_rows(sleepstudy, rref):
    data = sleepstudy.copy()
    data.index = [f"r{i}" for i in range(len(data))]
    data.loc[["r2", "r49"], "Reaction"] = np.nan
    model = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", data)
    ours = model.augment()
    ref = rref(f"""{TAB_R}
d <- lme4::sleepstudy
d$Reaction[c(3, 50)] <- NA
tab(dots(broom.mixed::augment(lmerTest::lmer(Reaction ~ Days + (Days | Subject), d))))""")
    assert ours.index.equals(data.index)
    assert ours.loc[["r2", "r49"], list(tidying.AUGMENT_COLUMNS)].isna().all().all()
    kept = ours.drop(index=["r2", "r49"])
    for col in (".fitted", ".resid", ".hat", ".cooksd", ".fixed"):
        np.testing.assert_allclose(kept[col].to_numpy(), ref[col], rtol=RTOL, err_msg=col)


def test_scales_vcov_and_exponentiate_match_broom_mixed(sleepstudy, cbpp_model, rref):
    model = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    ref = rref(f"""{TAB_R}
m <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
tab(broom.mixed::tidy(m, effects = c("ran_pars", "fixed"), scales = c("vcov", NA)))""")
    ours = model.tidy(conf_int=False, scales="vcov")
    assert ours["term"].tolist()[2:] == ["var__(Intercept)", "cov__(Intercept).Days",
                                        "var__Days", "var__Observation"]
    _compare(ours, ref, STATS[:5])
    ref = rref(f"""{TAB_R}
g <- lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), lme4::cbpp,
                 family = binomial)
tab(broom.mixed::tidy(g, effects = "fixed", conf.int = TRUE, exponentiate = TRUE))""")
    _compare(cbpp_model.tidy(effects="fixed", exponentiate=True), ref, STATS)


@pytest.mark.parametrize("ddf, r_ddf", [("kenward-roger", "Kenward-Roger"),
                                        ("satterthwaite", "Satterthwaite")])
def test_other_levels_and_ddf_match_broom_mixed(sleepstudy, rref, ddf, r_ddf):
    model = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy, ddf=ddf)
    ref = rref(f"""{TAB_R}
m <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
tab(broom.mixed::tidy(m, effects = "fixed", conf.int = TRUE, conf.level = 0.8,
                      ddf.method = "{r_ddf}"))""")
    _compare(model.tidy(effects="fixed", conf_level=0.8), ref, STATS)


def test_plain_lme4_t_values_have_normal_limits_as_broom_mixed(sleepstudy, rref):
    model = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy, ddf="lme4")
    ref = rref(f"""{TAB_R}
m <- lme4::lmer(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
tab(broom.mixed::tidy(m, effects = "fixed", conf.int = TRUE, conf.level = 0.9))""")
    _compare(model.tidy(effects="fixed", conf_level=0.9), ref, STATS)


def test_three_term_covariance_in_broom_mixeds_order(sleepstudy, rref):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lme4's gradient check; R fits the same
        model = lmermagic.lmer("Reaction ~ Days + (Days + I(Days^2) | Subject)", sleepstudy)
    ref = rref(f"""{TAB_R}
m <- suppressWarnings(lme4::lmer(Reaction ~ Days + (Days + I(Days^2) | Subject),
                                 lme4::sleepstudy))
tab(broom.mixed::tidy(m, effects = "ran_pars"))""")
    _compare(model.tidy(effects="ran_pars", conf_int=False), ref, STATS[:5])


def test_t_quantile_matches_r(rref):
    df = np.array([0.3, 0.5, 1, 2, 3, 5.4866, 16.9997, 30, 100, 999.5, 2500, 1e5, 1e6, 1e9])
    for p in (0.55, 0.9, 0.975, 0.995, 0.9995):
        expected = rref(f"qt({p}, c({', '.join(repr(float(d)) for d in df)}))")
        np.testing.assert_allclose(t_quantile(p, df), expected, rtol=1e-11, err_msg=str(p))
    z = rref("qnorm(0.975)")[0]
    assert t_quantile(0.975, np.array([np.inf]))[0] == pytest.approx(z, rel=1e-15)
    assert np.isnan(t_quantile(0.975, np.array([np.nan, 0.0, -1.0]))).all()


def test_bad_arguments_are_refused(cbpp_model):
    with pytest.raises(DataError, match="ran_vals"):
        cbpp_model.tidy(effects="random")
    with pytest.raises(DataError, match="vcov"):
        cbpp_model.tidy(scales="sd")
    with pytest.raises(DataError, match="conf_level"):
        cbpp_model.tidy(conf_level=95)


def test_builders_are_fast_and_need_no_r(sleepstudy):
    """The many-models code builds these per model: no R, sub-millisecond."""
    model = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    fields = lmermagic.fitted.FittedModel(**{
        f: getattr(model, f) for f in lmermagic.fitted.FittedModel.__dataclass_fields__
        if f not in ("r_object", "r_data", "request", "data")})
    cols = tidying.tidy_columns(fields)
    assert pd.DataFrame(cols).equals(model.tidy())
    # glance() adds the R² and ICC columns, which ask R (goodness.py).
    row = model.glance().iloc[0].to_dict()
    assert list(row) == [*tidying.glance_values(fields), "r2_marginal", "r2_conditional", "icc"]
    assert tidying.glance_values(fields) == {k: row[k] for k in tidying.glance_values(fields)}
    n = 200
    start = time.perf_counter()
    for _ in range(n):
        tidying.tidy_columns(fields)
        tidying.glance_values(fields)
    assert (time.perf_counter() - start) / n < 2e-3
