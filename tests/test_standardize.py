"""m.tidy(standardize="refit" | "basic") against R, live.

Everywhere: against a hand computation in R (scale the data with R's mean/sd,
refit with lme4; beta * sd(model-matrix column) / sd(response)), with
effectsize's Wald limits (t at df.residual(m) for lmer, normal for glmer).
Where R's effectsize is installed (Debian 12 and unstable, not 13): against
effectsize::standardize_parameters() itself.

Tolerance 1e-8, except the refitted glmer's limits: glmer's standard errors
come from a finite-difference Hessian, which moves by ~1e-7 when the data move
by one unit in the last place (measured: a 2e-16 relative change of one column
moved a SE by 1.7e-7), and lmermagic's and datawizard's standardized columns
can differ in that last place.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic.errors import DataError

TOL = 1e-8
GLMER_REFIT_CI_TOL = 2e-6

# Per case: Python fit, R data set-up, R fit call, weights expression (NULL: none).
CASES = {
    "sleepstudy": ("lmer", "Reaction ~ Days + (Days | Subject)", {},
                   "d <- lme4::sleepstudy",
                   "lme4::lmer(Reaction ~ Days + (Days | Subject), d)"),
    # A factor, an interaction, and missing values in Feed (rows R drops: the
    # centres and SDs are over the rows the model uses).
    "dietox": ("lmer", "Weight ~ Time * Evit + Feed + (1 | Pig)", {"factors": ["Evit"]},
               "d <- geepack::dietox; d$Evit <- factor(d$Evit)",
               "lme4::lmer(Weight ~ Time * Evit + Feed + (1 | Pig), d)"),
    # cbind() binomial: the response is not scaled; the weights are the trials.
    "cbpp": ("glmer", "cbind(incidence, size - incidence) ~ period + x + (1 | herd)",
             {"family": "binomial"},
             "d <- lme4::cbpp; i <- 0:(nrow(d) - 1); d$x <- (i * 7) %% 13 + i / 10",
             ("lme4::glmer(cbind(incidence, size - incidence) ~ period + x + (1 | herd), d, "
              "family = binomial)")),
    # weights=: datawizard's weighted means and SDs; the weights stay as they are.
    "weighted": ("lmer", "Reaction ~ Days + (1 | Subject)", {"weights": "w"},
                 "d <- lme4::sleepstudy; i <- 0:(nrow(d) - 1); d$w <- 1 + (i * 5) %% 7",
                 "lme4::lmer(Reaction ~ Days + (1 | Subject), d, weights = w)"),
}

# The hand computation: fit, the refit on scale()d data, and basic's factors.
HAND_R = """
linear <- inherits(m, "lmerMod")
mf <- model.frame(m)
keep <- rownames(d) %in% rownames(mf)
wsd <- function(x) if (is.null(w)) sd(x) else {
    ww <- w[keep] / sum(w[keep]); c <- sum(ww * x); sqrt(sum(ww * (x - c)^2) / (1 - sum(ww^2)))
}
wmean <- function(x) if (is.null(w)) mean(x) else weighted.mean(x, w[keep])
ds <- d[keep, ]
for (v in cols) ds[[v]] <- (ds[[v]] - wmean(ds[[v]])) / wsd(ds[[v]])
m2 <- update(m, data = ds)
q <- if (linear) qt(0.975, df.residual(m)) else qnorm(0.975)
b2 <- lme4::fixef(m2); s2 <- sqrt(diag(as.matrix(vcov(m2))))
X <- lme4::getME(m, "X")
f <- apply(X, 2, wsd) / (if (linear) wsd(mf[[1]]) else 1)
f[colnames(X) == "(Intercept)"] <- 0
b <- lme4::fixef(m); s <- sqrt(diag(as.matrix(vcov(m))))
out <- list(terms = names(b), refit = unname(b2), refit_low = unname(b2 - q * s2),
            refit_high = unname(b2 + q * s2), basic = unname(b * f),
            basic_low = unname((b - q * s) * f), basic_high = unname((b + q * s) * f))
if (requireNamespace("effectsize", quietly = TRUE)) {
    for (meth in c("refit", "basic")) {
        e <- suppressWarnings(suppressMessages(
            effectsize::standardize_parameters(m, method = meth)))
        out[[paste0("es_", meth)]] <- list(est = e$Std_Coefficient, low = e$CI_low,
                                           high = e$CI_high, par = e$Parameter)
    }
}
out
"""

# The columns scaled, and the weights (R's weights(m): the trials of a cbind() binomial).
COLS = {"sleepstudy": ('c("Reaction", "Days")', "NULL"),
        "dietox": ('c("Weight", "Time", "Feed")', "NULL"),
        "cbpp": ('"x"', "d$size"), "weighted": ('c("Reaction", "Days")', "d$w")}


def _data(name: str) -> pd.DataFrame:
    if name == "sleepstudy":
        return lmermagic.datasets.load("sleepstudy", package="lme4")
    if name == "dietox":
        return lmermagic.datasets.load("dietox", package="geepack")
    if name == "weighted":
        d = lmermagic.datasets.load("sleepstudy", package="lme4")
        d["w"] = 1 + (np.arange(len(d), dtype=float) * 5) % 7
        return d
    d = lmermagic.datasets.load("cbpp", package="lme4")
    i = np.arange(len(d), dtype=float)
    d["x"] = (i * 7) % 13 + i / 10
    return d


@pytest.fixture(scope="module", params=list(CASES))
def case(request, rref):
    kind, formula, opts, setup, fit_r = CASES[request.param]
    data = _data(request.param)
    fit = lmermagic.lmer if kind == "lmer" else lmermagic.glmer
    m = fit(formula, data, **opts)
    ref = rref(f"{setup}\nm <- {fit_r}\ncols <- {COLS[request.param][0]}\n"
               f"w <- {COLS[request.param][1]}\n{HAND_R}")
    return request.param, m, ref


def _fixed(m, method: str) -> pd.DataFrame:
    t = m.tidy(standardize=method)
    return t[t["effect"] == "fixed"].set_index("term")


@pytest.mark.parametrize("method", ["refit", "basic"])
def test_matches_hand_computation_in_r(case, method):
    name, m, ref = case
    got = _fixed(m, method).loc[ref["terms"]]
    ci_tol = GLMER_REFIT_CI_TOL if (name == "cbpp" and method == "refit") else TOL
    np.testing.assert_allclose(got["std_estimate"], ref[method], rtol=0, atol=TOL)
    np.testing.assert_allclose(got["std_conf_low"], ref[f"{method}_low"], rtol=0, atol=ci_tol)
    np.testing.assert_allclose(got["std_conf_high"], ref[f"{method}_high"], rtol=0,
                               atol=ci_tol)


@pytest.mark.parametrize("method", ["refit", "basic"])
def test_matches_effectsize(case, method):
    name, m, ref = case
    if f"es_{method}" not in ref:
        pytest.skip("R package effectsize is not installed")
    es = dict(ref[f"es_{method}"])
    got = _fixed(m, method).loc[es["par"]]
    if method == "basic" and name == "cbpp":
        # A GLMM's intercept under "basic": effectsize 0.8 gives 0 (beta times the
        # SD of a constant column), newer releases NA. lmermagic keeps 0 on every
        # stack; the other rows must agree.
        keep = [p != "(Intercept)" for p in es["par"]]
        assert got.loc["(Intercept)", "std_estimate"] == 0
        got = got[keep]
        es = {k: (np.asarray(v)[keep] if k != "par" else v) for k, v in es.items()}
    ci_tol = GLMER_REFIT_CI_TOL if (name == "cbpp" and method == "refit") else TOL
    np.testing.assert_allclose(got["std_estimate"], es["est"], rtol=0, atol=TOL)
    np.testing.assert_allclose(got["std_conf_low"], es["low"], rtol=0, atol=ci_tol)
    np.testing.assert_allclose(got["std_conf_high"], es["high"], rtol=0, atol=ci_tol)


def test_other_columns_unchanged_and_ran_pars_nan(case):
    _, m, _ = case
    plain = m.tidy()
    for method in ("refit", "basic"):
        t = m.tidy(standardize=method)
        assert list(t.columns) == [*plain.columns, "std_estimate", "std_conf_low",
                                   "std_conf_high"]
        pd.testing.assert_frame_equal(t[plain.columns], plain)
        other = t["effect"] != "fixed"
        assert other.any() and t.loc[other, "std_estimate"].isna().all()
        assert t.loc[~other, "std_estimate"].notna().all()
    t = m.tidy(standardize="basic", conf_int=False)
    assert "std_conf_low" not in t.columns and "std_estimate" in t.columns


def test_caller_frame_not_mutated():
    d = _data("dietox")
    before = d.copy(deep=True)
    m = lmermagic.lmer("Weight ~ Time + Feed + (1 | Pig)", d)
    m.tidy(standardize="refit")
    pd.testing.assert_frame_equal(d, before)


def test_exponentiate_and_level(rref):
    d = _data("cbpp")
    m = lmermagic.glmer("cbind(incidence, size - incidence) ~ period + x + (1 | herd)", d,
                        family="binomial")
    a = m.tidy(standardize="basic", conf_level=0.9)
    b = m.tidy(standardize="basic", conf_level=0.9, exponentiate=True)
    np.testing.assert_allclose(b["std_estimate"], np.exp(a["std_estimate"]), rtol=1e-12)
    fixed = a[a["effect"] == "fixed"]
    ref = rref("""d <- lme4::cbpp; i <- 0:(nrow(d) - 1); d$x <- (i * 7) %% 13 + i / 10
m <- lme4::glmer(cbind(incidence, size - incidence) ~ period + x + (1 | herd), d,
                 family = binomial)
b <- lme4::fixef(m)[["x"]]; s <- sqrt(diag(as.matrix(vcov(m))))[["x"]]
w <- d$size / sum(d$size); c <- sum(w * d$x); f <- sqrt(sum(w * (d$x - c)^2) / (1 - sum(w^2)))
(b - qnorm(0.95) * s) * f""")
    assert fixed.set_index("term").loc["x", "std_conf_low"] == pytest.approx(ref[0], abs=TOL)


@pytest.mark.parametrize("bad", ["foo", "Refit", 1, True])
def test_unknown_method_is_data_error(case, bad):
    _, m, _ = case
    with pytest.raises(DataError, match="standardize="):
        m.tidy(standardize=bad)


@pytest.mark.parametrize("formula", ["Reaction ~ log(Days + 1) + (1 | Subject)",
                                     "log(Reaction) ~ Days + (1 | Subject)",
                                     "Reaction ~ poly(Days, 2) + (1 | Subject)"])
def test_refit_refuses_transformed_variables(formula):
    m = lmermagic.lmer(formula, _data("sleepstudy"))
    with pytest.raises(DataError, match="plain columns"):
        m.tidy(standardize="refit")
    # basic scales the model matrix, whatever the formula made of the columns.
    assert m.tidy(standardize="basic")["std_estimate"].notna().sum() >= 2


def test_refit_refuses_offset():
    d = _data("sleepstudy")
    d["off"] = d["Days"] / 10
    m = lmermagic.lmer("Reaction ~ Days + (1 | Subject)", d, offset="off")
    with pytest.raises(DataError, match="offset"):
        m.tidy(standardize="refit")
