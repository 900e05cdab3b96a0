"""m.r2() and m.icc() (Nakagawa & Schielzeth's R², the ICC) against R.

Two referees. Everywhere: the same numbers recomputed in the test from lme4's
own pieces (fixef, getME, VarCorr, sigma, the null model fitted by lme4), by
another route than goodness.R (Johnson's term from the terms' model matrices,
mmList, not from Zt). Where R's performance package is installed:
performance::r2_nakagawa() and performance::icc() themselves. performance
changed its distribution-specific variances with insight 0.20.2 (Poisson and
negative binomial: the null model's random variance in mu; cbind() binomial:
divided by the mean number of trials; Gamma log link: log(1 + sigma^2)); with
an older insight (Debian 12) only the cases computed alike are compared whole,
the others by insight's fixed and random variances.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic.errors import SingularFitWarning

RTOL = 1e-8
SLEEP_HI = "transform(lme4::sleepstudy, hi = as.integer(Reaction > 300))"

# name: (lmermagic call, formula, data (R expression), options, R's fit of d,
#        R code for the distribution-specific variance of m (and its null model))
CASES = {
    "sleepstudy_slopes": (
        "lmer", "Reaction ~ Days + (Days | Subject)", "lme4::sleepstudy", {},
        "lme4::lmer(Reaction ~ Days + (Days | Subject), d)",
        "stats::sigma(m)^2"),
    "penicillin_crossed": (
        "lmer", "diameter ~ 1 + (1 | plate) + (1 | sample)", "lme4::Penicillin", {},
        "lme4::lmer(diameter ~ 1 + (1 | plate) + (1 | sample), d)",
        "stats::sigma(m)^2"),
    "cbpp_logit": (
        "glmer", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "lme4::cbpp",
        {"family": "binomial"},
        ("lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), d, "
         "family = binomial)"),
        "pi^2 / 3 / mean(d$size)"),
    "cbpp_probit": (
        "glmer", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "lme4::cbpp",
        {"family": "binomial(link='probit')"},
        ("lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), d, "
         "family = binomial(link = 'probit'))"),
        "1 / mean(d$size)"),
    "bernoulli_probit": (
        "glmer", "hi ~ Days + (1 | Subject)", SLEEP_HI,
        {"family": "binomial(link='probit')"},
        "lme4::glmer(hi ~ Days + (1 | Subject), d, family = binomial(link = 'probit'))",
        "1"),
    "poisson": (
        "glmer", "TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | LOCATION)",
        "lme4::grouseticks", {"family": "poisson"},
        ("lme4::glmer(TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | LOCATION), d, "
         "family = poisson)"),
        """n0 <- lme4::glmer(TICKS ~ (1 | BROOD) + (1 | LOCATION), d, family = poisson)
           mu <- exp(lme4::fixef(n0)[[1]] + 0.5 * sum(sapply(lme4::VarCorr(n0), c)))
           log1p(1 / mu)"""),
    "negative_binomial": (
        "glmer", "TICKS ~ YEAR + scale(HEIGHT) + (1 | LOCATION)", "lme4::grouseticks",
        {"family": "negative_binomial"},
        "lme4::glmer.nb(TICKS ~ YEAR + scale(HEIGHT) + (1 | LOCATION), d)",
        """theta <- lme4::getME(m, "glmer.nb.theta")
           n0 <- lme4::glmer(TICKS ~ (1 | LOCATION), d,
                             family = MASS::negative.binomial(theta = theta))
           mu <- exp(lme4::fixef(n0)[[1]] + 0.5 * sum(sapply(lme4::VarCorr(n0), c)))
           log1p(1 / mu + 1 / theta)"""),
    "gamma_log": (
        "glmer", "Reaction ~ Days + (1 | Subject)", "lme4::sleepstudy",
        {"family": "Gamma(link='log')"},
        "lme4::glmer(Reaction ~ Days + (1 | Subject), d, family = Gamma(link = 'log'))",
        "log1p(stats::sigma(m)^2)"),
}
# Computed alike by performance before and after insight 0.20.2.
ALIKE_ON_OLD_INSIGHT = {"sleepstudy_slopes", "penicillin_crossed", "bernoulli_probit"}

# Johnson's variance of every random-effect term from its own model matrix.
NATIVE_R = """
z <- lme4::getME(m, "mmList")
vc <- lme4::VarCorr(m)
var_random <- sum(vapply(seq_along(vc), function(k) {
    mean(rowSums((z[[k]] %*% vc[[k]]) * z[[k]]))
}, 0))
var_fixed <- stats::var(as.vector(lme4::getME(m, "X") %*% lme4::fixef(m)))
var_dist <- local({{ {dist} }})
total <- var_fixed + var_random + var_dist
list(r2_marginal = var_fixed / total, r2_conditional = (var_fixed + var_random) / total,
     icc_adjusted = var_random / (var_random + var_dist),
     icc_unadjusted = var_random / total)
"""

PERFORMANCE_R = """
has <- requireNamespace("performance", quietly = TRUE)
if (!has) return(list(installed = FALSE))
new <- utils::packageVersion("insight") >= "0.20.2"
r2 <- suppressWarnings(performance::r2_nakagawa(m, tolerance = 1e-8))
icc <- suppressWarnings(performance::icc(m, tolerance = 1e-8))
v <- suppressWarnings(insight::get_variance(m, tolerance = 1e-8))
t0 <- proc.time()[[3]]
for (i in 1:5) suppressWarnings(performance::r2_nakagawa(m, tolerance = 1e-8))
list(installed = TRUE, new_insight = new,
     r2_marginal = unname(r2$R2_marginal), r2_conditional = unname(r2$R2_conditional),
     icc_adjusted = icc$ICC_adjusted, icc_unadjusted = icc$ICC_unadjusted,
     var_fixed = v$var.fixed, var_random = v$var.random,
     seconds = (proc.time()[[3]] - t0) / 5)
"""


def _fit(kind: str, formula: str, data: pd.DataFrame, options: dict) -> lmermagic.LmerModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lmermagic.lmer if kind == "lmer" else lmermagic.glmer
        return fit(formula, data, **options)


def _frame(rref, expr: str) -> pd.DataFrame:
    """An R data frame (numbers and factors) as pandas, factors as categories."""
    cols = rref(f"""d <- {expr}
lapply(d, function(v) if (is.factor(v)) list(levels(v), as.integer(v)) else v)""")
    out = {}
    for name, v in cols.items():
        if isinstance(v, list):
            levels, codes = v
            out[name] = pd.Categorical.from_codes(np.asarray(codes, dtype=int) - 1, levels)
        else:
            out[name] = v
    return pd.DataFrame(out)


@pytest.fixture(scope="module", params=list(CASES))
def case(request, rref):
    kind, formula, expr, options, r_fit, dist = CASES[request.param]
    model = _fit(kind, formula, _frame(rref, expr), options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        native = rref(f"d <- {expr}\nm <- suppressWarnings({r_fit})\n"
                      + NATIVE_R.replace("{{ {dist} }}", "{" + dist + "}"))
        perf = rref(f"d <- {expr}\nm <- suppressWarnings({r_fit})\n{PERFORMANCE_R}")
    return request.param, model, native, perf


def _ours(model) -> dict[str, float]:
    return {**model.r2().to_dict(), **model.icc().to_dict()}


def test_r2_icc_match_lme4_pieces(case):
    """On every stack: the definition recomputed from lme4's own pieces."""
    name, model, native, _ = case
    ours = _ours(model)
    for key, value in native.items():
        np.testing.assert_allclose(ours[key], float(value[0]), rtol=RTOL, err_msg=key)
    assert 0 < ours["r2_marginal"] < ours["r2_conditional"] < 1 or name == "penicillin_crossed"


def test_r2_icc_match_performance(case):
    name, model, _, perf = case
    if not bool(perf["installed"][0]):
        pytest.skip("R package performance is not installed")
    ours = _ours(model)
    v = model.r2().attrs["variances"]
    np.testing.assert_allclose(v["var_fixed"], float(perf["var_fixed"][0]), rtol=RTOL)
    np.testing.assert_allclose(v["var_random"], float(perf["var_random"][0]), rtol=RTOL)
    if bool(perf["new_insight"][0]) or name in ALIKE_ON_OLD_INSIGHT:
        for key in ("r2_marginal", "r2_conditional", "icc_adjusted", "icc_unadjusted"):
            np.testing.assert_allclose(ours[key], float(perf[key][0]), rtol=RTOL,
                                       err_msg=key)


def test_pieces_are_kept_on_the_model(sleepstudy):
    model = _fit("lmer", "Reaction ~ Days + (Days | Subject)", sleepstudy, {})
    first = model.r2()
    assert "_goodness" in model.meta
    assert model.r2().equals(first)
    assert list(first.index) == ["r2_marginal", "r2_conditional"]
    assert list(model.icc().index) == ["icc_adjusted", "icc_unadjusted"]
    row = model.glance().iloc[0]
    assert row["r2_marginal"] == first["r2_marginal"]
    assert row["r2_conditional"] == first["r2_conditional"]
    assert row["icc"] == model.icc()["icc_adjusted"]


SINGULAR_DATA = """set.seed({seed}); d <- data.frame(x = rnorm(100), g = factor(rep(1:10, 10)))
d$y <- d$x + rnorm(100); d$c <- rpois(100, exp(0.5 + 0.3 * d$x))"""


@pytest.fixture(scope="module")
def singular(rref):
    """A Gaussian and a Poisson fit whose random-intercept variance is 0."""
    frames = {}
    for label, seed in (("gaussian", 5), ("poisson", 3)):
        cols = rref(SINGULAR_DATA.replace("{seed}", str(seed))
                    + "\nlist(x = d$x, y = d$y, c = d$c, g = as.integer(d$g))")
        frames[label] = pd.DataFrame({"x": cols["x"], "y": cols["y"], "c": cols["c"],
                                      "g": pd.Categorical(cols["g"].astype(int))})
    gauss = _fit("lmer", "y ~ x + (1 | g)", frames["gaussian"], {})
    pois = _fit("glmer", "c ~ x + (1 | g)", frames["poisson"], {"family": "poisson"})
    assert gauss.theta[0] == 0 and pois.theta[0] < 1e-8
    return gauss, pois


def test_singular_fit(singular, rref):
    gauss, pois = singular
    with pytest.warns(SingularFitWarning, match="singular"):
        r2 = gauss.r2()
    with pytest.warns(SingularFitWarning):
        icc = gauss.icc()
    assert math.isnan(r2["r2_conditional"]) and icc.isna().all()
    # No random-effect variance: the fixed effects' share of fixed + residual,
    # as performance (and from lme4's pieces where it is not installed).
    ref = rref(SINGULAR_DATA.replace("{seed}", "5") + """
m <- suppressMessages(lme4::lmer(y ~ x + (1 | g), d))
f <- stats::var(as.vector(lme4::getME(m, "X") %*% lme4::fixef(m)))
native <- f / (f + stats::sigma(m)^2)
if (!requireNamespace("performance", quietly = TRUE)) return(list(native = native))
r2 <- suppressWarnings(performance::r2_nakagawa(m, tolerance = 1e-8))
list(native = native, performance = unname(r2$R2_marginal),
     conditional_na = is.na(r2$R2_conditional),
     icc_na = all(is.na(suppressWarnings(performance::icc(m, tolerance = 1e-8)))))""")
    np.testing.assert_allclose(r2["r2_marginal"], float(ref["native"][0]), rtol=RTOL)
    if "performance" in ref:
        np.testing.assert_allclose(r2["r2_marginal"], float(ref["performance"][0]), rtol=RTOL)
        assert bool(ref["conditional_na"][0]) and bool(ref["icc_na"][0])
    assert math.isnan(r2.attrs["variances"]["var_random"])
    with pytest.warns(SingularFitWarning):
        assert pois.r2().isna().all()
    # No null model is fitted when its numbers are not used.
    assert math.isnan(pois.meta["_goodness"]["null_intercept"])
    row = gauss.glance().iloc[0]
    assert bool(row["singular"]) and math.isnan(row["icc"])


def test_many_glance_has_the_models_r2(sleepstudy):
    data = sleepstudy.copy()
    rng = np.random.default_rng(7)
    for i in range(3):
        data[f"y{i}"] = data["Reaction"] + rng.normal(0, 25, len(data))
    mm = lmermagic.lmer_many("~ Days + (Days | Subject)", data, responses=["y0", "y1", "y2"])
    glance = mm.glance.set_index("response")
    for i in range(3):
        one = _fit("lmer", f"y{i} ~ Days + (Days | Subject)", data, {})
        r2, icc = one.r2(), one.icc()
        row = glance.loc[f"y{i}"]
        np.testing.assert_allclose(row["r2_marginal"], r2["r2_marginal"], rtol=1e-12)
        np.testing.assert_allclose(row["r2_conditional"], r2["r2_conditional"], rtol=1e-12)
        np.testing.assert_allclose(row["icc"], icc["icc_adjusted"], rtol=1e-12)


def test_many_glance_poisson_by_group(rref):
    """Per-group Poisson models: each chunk fits each model's null model on its rows."""
    ticks = _frame(rref, "lme4::grouseticks")
    ticks["h"] = (ticks["HEIGHT"] - ticks["HEIGHT"].mean()) / ticks["HEIGHT"].std()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mm = lmermagic.glmer_many("TICKS ~ h + (1 | LOCATION)", ticks, by="YEAR",
                                  family="poisson")
    glance = mm.glance.set_index("YEAR")
    assert len(glance) == 3
    for year in glance.index:
        one = _fit("glmer", "TICKS ~ h + (1 | LOCATION)", ticks[ticks["YEAR"] == year],
                   {"family": "poisson"})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r2 = one.r2()
        assert not math.isnan(one.meta["_goodness"]["null_intercept"])
        np.testing.assert_allclose(glance.loc[year, "r2_marginal"], r2["r2_marginal"],
                                   rtol=1e-10)
        np.testing.assert_allclose(glance.loc[year, "r2_conditional"], r2["r2_conditional"],
                                   rtol=1e-10)


def test_every_random_term_counts(sleepstudy, rref):
    """Johnson's variance of every term, also a second term of one grouping
    factor (``||``) and a random slope that is no fixed effect. performance
    drops both (it matches terms to fixed-effect columns by name); lmermagic
    does not."""
    for formula in ("Reaction ~ Days + (Days || Subject)", "Reaction ~ 1 + (Days | Subject)"):
        model = _fit("lmer", formula, sleepstudy, {})
        ref = rref(f"m <- lme4::lmer({formula}, lme4::sleepstudy)\n" + NATIVE_R.replace(
            "{{ {dist} }}", "{stats::sigma(m)^2}"))
        ours = _ours(model)
        for key, value in ref.items():
            np.testing.assert_allclose(ours[key], float(value[0]), rtol=RTOL, err_msg=key)
        slope = model.varcorr.query("var1 == 'Days' and var2.isna()")["vcov"].iloc[0]
        days = sleepstudy["Days"].to_numpy(dtype=float)
        # The slope's share: its variance times the mean of Days².
        assert model.r2().attrs["variances"]["var_random"] > slope * np.mean(days ** 2)
