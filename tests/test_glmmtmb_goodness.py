"""m.r2() and m.icc() of glmmTMB fits against R.

Two referees, as tests/test_goodness.py for lmer. On every stack: the
definition recomputed in the test from glmmTMB's own pieces by another route
(the null model written out by hand and fitted by glmmTMB, Johnson's term
from the term's model matrix, not from Z). Where R's performance package is
installed: performance::r2() / icc() themselves. lmermagic follows
insight >= 0.20.2; with an older insight (the host's 0.19) the
distribution-specific variances of count, cbind() binomial, Gamma-log,
tweedie and hurdle Poisson models differ, and only the fixed and random variances
are compared for them.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic.errors import LmerWarning, SingularFitWarning

RTOL = 1e-7
SAL = 'data("Salamanders", package = "glmmTMB", envir = environment()); d <- Salamanders\n'
SLEEP = "d <- lme4::sleepstudy\n"
CBPP = "d <- lme4::cbpp\n"
F = "count ~ mined + (1 | site)"
N0 = "glmmTMB::glmmTMB(count ~ (1 | site), d, family = {fam}{zi})"
COUNT_MU = "mu <- exp(glmmTMB::fixef(n0)$cond[[1]] + 0.5 * glmmTMB::VarCorr(n0)$cond$site[1])\n"
ZI_P = ("p <- predict(m, type = 'zprob'); mc <- predict(m, type = 'conditional')\n")

# name: (lmermagic options, R prelude, R fit, R code giving var_dist)
CASES: dict[str, tuple[dict[str, Any], str, str, str]] = {
    "gaussian_slopes": (
        {"formula": "Reaction ~ Days + (Days | Subject)", "data": "sleep"}, SLEEP,
        "glmmTMB::glmmTMB(Reaction ~ Days + (Days | Subject), d)", "sigma(m)^2"),
    "binomial_cbind": (
        {"formula": "cbind(incidence, size - incidence) ~ period + (1 | herd)",
         "data": "cbpp", "family": "binomial"}, CBPP,
        ("glmmTMB::glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), d, "
         "family = binomial)"), "pi^2 / 3 / mean(d$size)"),
    "gamma_log": (
        {"formula": "Reaction ~ Days + (1 | Subject)", "data": "sleep",
         "family": "Gamma(link='log')"}, SLEEP,
        "glmmTMB::glmmTMB(Reaction ~ Days + (1 | Subject), d, family = Gamma(link = 'log'))",
        "log1p(sigma(m)^2)"),
    "poisson": (
        {"family": "poisson"}, SAL, "glmmTMB::glmmTMB(" + F + ", d, family = poisson)",
        "n0 <- " + N0.format(fam="poisson", zi="") + "\n" + COUNT_MU + "log1p(1 / mu)"),
    "nbinom2": (
        {"family": "nbinom2"}, SAL, "glmmTMB::glmmTMB(" + F + ", d, family = glmmTMB::nbinom2)",
        "n0 <- " + N0.format(fam="glmmTMB::nbinom2", zi="") + "\n" + COUNT_MU
        + "log1p(1 / mu + 1 / sigma(m))"),
    "nbinom1": (
        {"family": "nbinom1"}, SAL, "glmmTMB::glmmTMB(" + F + ", d, family = glmmTMB::nbinom1)",
        "n0 <- " + N0.format(fam="glmmTMB::nbinom1", zi="") + "\n" + COUNT_MU
        + "log1p(1 / mu + 1 / sigma(m))"),
    "zip": (
        {"family": "poisson", "ziformula": "~ mined"}, SAL,
        "glmmTMB::glmmTMB(" + F + ", d, family = poisson, ziformula = ~ mined)",
        "n0 <- " + N0.format(fam="poisson", zi=", ziformula = ~ 1") + "\n" + COUNT_MU + ZI_P
        + "log1p(mean((1 - p) * (mc + p * mc^2)) / mu)"),
    "zinb": (
        {"family": "nbinom2", "ziformula": "~ mined"}, SAL,
        "glmmTMB::glmmTMB(" + F + ", d, family = glmmTMB::nbinom2, ziformula = ~ mined)",
        "n0 <- " + N0.format(fam="glmmTMB::nbinom2", zi=", ziformula = ~ 1") + "\n"
        + COUNT_MU + ZI_P + "k <- sigma(m)\n"
        + "log1p(1 / mu + 1 / mean((1 - p) * mc * (1 + mc / k) + mc^2 * (p^2 + p)))"),
    "hurdle_nbinom2": (
        {"family": "truncated_nbinom2", "ziformula": "~ mined"}, SAL,
        "glmmTMB::glmmTMB(" + F + ", d, family = glmmTMB::truncated_nbinom2, "
        "ziformula = ~ mined)",
        "n0 <- " + N0.format(fam="glmmTMB::truncated_nbinom2", zi=", ziformula = ~ 1")
        + "\nmu <- exp(glmmTMB::fixef(n0)$cond[[1]])\n"
        + "log1p(family(m)$variance(mu, sigma(m)) / mu^2)"),
    "hurdle_poisson": (
        {"family": "truncated_poisson", "ziformula": "~ mined"}, SAL,
        "glmmTMB::glmmTMB(" + F + ", d, family = glmmTMB::truncated_poisson, "
        "ziformula = ~ mined)",
        "n0 <- " + N0.format(fam="glmmTMB::truncated_poisson", zi=", ziformula = ~ 1")
        + "\nmu <- exp(glmmTMB::fixef(n0)$cond[[1]])\n"
        + "log1p(family(m)$variance(mu) / mu^2)"),
    "tweedie": (
        {"family": "tweedie"}, SAL, "glmmTMB::glmmTMB(" + F + ", d, family = glmmTMB::tweedie)",
        "n0 <- " + N0.format(fam="glmmTMB::tweedie", zi="") + "\n" + COUNT_MU
        + "pw <- 1 + plogis(m$fit$par[['psi']])\nlog1p(sigma(m) * mu^pw / mu^2)"),
}
# Computed alike by performance before and after insight 0.20.2.
ALIKE_ON_OLD_INSIGHT = {"gaussian_slopes", "hurdle_nbinom2"}

# Johnson's variance of the conditional model's random terms from their own
# model matrices (glmmTMB's VarCorr in term order; every term here has its
# grouping factor's full design).
NATIVE_R = """
m <- suppressWarnings({fit})
vc <- glmmTMB::VarCorr(m)$cond
mf <- model.frame(m)
bars <- lme4::findbars(formula(m))
var_random <- sum(vapply(seq_along(bars), function(k) {{
    z <- model.matrix(as.formula(paste("~", deparse(bars[[k]][[2]]))), mf)
    s <- as.matrix(vc[[k]])
    mean(rowSums((z %*% s) * z))
}}, 0))
var_fixed <- var(as.vector(model.matrix(lme4::nobars(formula(m)), mf) %*%
                 glmmTMB::fixef(m)$cond))
var_dist <- local({{ {dist} }})
total <- var_fixed + var_random + var_dist
list(r2_marginal = var_fixed / total, r2_conditional = (var_fixed + var_random) / total,
     icc_adjusted = var_random / (var_random + var_dist),
     icc_unadjusted = var_random / total)
"""

PERFORMANCE_R = """
if (!requireNamespace("performance", quietly = TRUE)) return(list(installed = FALSE))
# the data in the fit's call, so that insight's null model (update()) finds it
m <- suppressWarnings(eval(do.call(substitute, list(quote({fit}), list(d = d)))))
r2 <- suppressWarnings(performance::r2(m, tolerance = 1e-8))
icc <- suppressWarnings(performance::icc(m, tolerance = 1e-8))
v <- suppressWarnings(insight::get_variance(m, tolerance = 1e-8))
list(installed = TRUE, new_insight = utils::packageVersion("insight") >= "0.20.2",
     r2_marginal = unname(r2$R2_marginal), r2_conditional = unname(r2$R2_conditional),
     icc_adjusted = icc$ICC_adjusted, icc_unadjusted = icc$ICC_unadjusted,
     var_fixed = v$var.fixed, var_random = v$var.random)
"""


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return {"sal": lmermagic.datasets.load("Salamanders", package="glmmTMB"),
            "sleep": lmermagic.datasets.load("sleepstudy"),
            "cbpp": lmermagic.datasets.load("cbpp")}


@pytest.fixture(scope="module", params=list(CASES))
def case(request: Any, frames: dict[str, pd.DataFrame], rref: Any) -> Any:
    opts, prelude, fit, dist = CASES[request.param]
    opts = dict(opts)
    formula = opts.pop("formula", F)
    data = frames[opts.pop("data", "sal")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = lmermagic.glmmtmb(formula, data, **opts)
        native = rref(prelude + NATIVE_R.format(fit=fit, dist=dist))
        perf = rref(prelude + PERFORMANCE_R.format(fit=fit))
    return request.param, model, native, perf


def _ours(model: Any) -> dict[str, float]:
    return {**model.r2().to_dict(), **model.icc().to_dict()}


def test_r2_icc_match_glmmtmb_pieces(case: Any) -> None:
    """On every stack (no performance needed): the definition from glmmTMB's pieces."""
    _, model, native, _ = case
    ours = _ours(model)
    for key, value in native.items():
        np.testing.assert_allclose(ours[key], float(value[0]), rtol=RTOL, err_msg=key)
    assert 0 < ours["r2_marginal"] < ours["r2_conditional"] < 1
    assert list(model.r2().index) == ["r2_marginal", "r2_conditional"]
    assert list(model.icc().index) == ["icc_adjusted", "icc_unadjusted"]
    assert model.r2().dtype == float and model.r2().name == "r2"


def test_r2_icc_match_performance(case: Any) -> None:
    name, model, _, perf = case
    if not bool(perf["installed"][0]):
        pytest.skip("R package performance is not installed (the test above is the referee)")
    ours = _ours(model)
    v = model.r2().attrs["variances"]
    np.testing.assert_allclose(v["var_fixed"], float(perf["var_fixed"][0]), rtol=RTOL)
    np.testing.assert_allclose(v["var_random"], float(perf["var_random"][0]), rtol=RTOL)
    if bool(perf["new_insight"][0]) or name in ALIKE_ON_OLD_INSIGHT:
        for key in ("r2_marginal", "r2_conditional", "icc_adjusted", "icc_unadjusted"):
            np.testing.assert_allclose(ours[key], float(perf[key][0]), rtol=RTOL,
                                       err_msg=key)


def test_dispersion_formula_gives_nan_as_performance(frames: dict[str, pd.DataFrame],
                                                     rref: Any) -> None:
    """A Gaussian model with a dispersion formula has no one residual variance:
    NaN with a warning saying why (performance returns NA)."""
    m = lmermagic.glmmtmb("Reaction ~ Days + (1 | Subject)", frames["sleep"],
                          dispformula="~ Days")
    with pytest.warns(LmerWarning, match="dispersion formula"):
        r2 = m.r2()
    assert r2.isna().all()
    ref = rref(SLEEP + """
if (!requireNamespace("performance", quietly = TRUE)) return(list(installed = FALSE))
m <- glmmTMB::glmmTMB(Reaction ~ Days + (1 | Subject), d, dispformula = ~ Days)
r2 <- suppressWarnings(performance::r2(m, tolerance = 1e-8))
list(installed = TRUE, na = is.na(r2$R2_marginal) && is.na(r2$R2_conditional))""")
    if bool(ref["installed"][0]):
        assert bool(ref["na"][0])


def test_singular_fit(rref: Any) -> None:
    """A random-intercept variance of zero: NaN for the random share, the
    marginal R² from fixed + residual, a SingularFitWarning."""
    cols = rref("""set.seed(5); d <- data.frame(x = rnorm(100), g = rep(1:10, 10))
d$y <- d$x + rnorm(100); list(x = d$x, y = d$y, g = d$g)""")
    data = pd.DataFrame({"x": cols["x"], "y": cols["y"],
                         "g": pd.Categorical(np.asarray(cols["g"], dtype=int))})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = lmermagic.glmmtmb("y ~ x + (1 | g)", data)
    with pytest.warns(SingularFitWarning, match="singular"):
        r2 = m.r2()
    assert math.isnan(r2["r2_conditional"])
    v = r2.attrs["variances"]
    assert r2["r2_marginal"] == pytest.approx(v["var_fixed"] / (v["var_fixed"] + m.sigma ** 2))
    with pytest.warns(SingularFitWarning):
        assert m.icc().isna().all()


def test_pieces_kept_on_the_model(frames: dict[str, pd.DataFrame]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = lmermagic.glmmtmb(F, frames["sal"], family="poisson")
        first = m.r2()
        assert "_tmb_goodness" in m.meta
        assert m.r2().equals(first)
