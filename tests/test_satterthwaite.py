"""lmermagic/R/satterthwaite.R against lmerTest itself.

Every model is fitted in R with lme4::lmer (for ours) and lmerTest::lmer (the
reference). The engine computes the exact derivatives (tests/test_satterthwaite_exact.py
holds it to 1e-7 of analytic ones); lmerTest's numerical derivatives are off by up to
~1.5e-6 in df, so the df of every coefficient and of random contrasts
(lmerTest::contest) must agree within that error (2e-6), and p-values to 1e-4
relative below 1e-10, else with summary()'s printed digits. Nothing is mocked.

Set LMERMAGIC_SKIP_SLOW=1 to skip the InstEval comparison (~30-50 s).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ro = pytest.importorskip("rpy2.robjects")

R_FILE = Path(__file__).resolve().parents[1] / "lmermagic" / "R" / "satterthwaite.R"
# the engine's files: satterthwaite.R, its derivatives, and compat.R (lme4 2.x's
# covariance parameters)
R_FILES = [R_FILE, R_FILE.with_name("satterthwaite_derivs.R"), R_FILE.with_name("compat.R")]


def _r_paths() -> str:
    """R_FILES as an R character vector."""
    return "c(" + ", ".join("'" + str(f).replace("\\", "/").replace("'", "\\'") + "'"
                            for f in R_FILES) + ")"
REL_TOL = 2e-6  # lmerTest's own error in df
P_TINY_TOL = 1e-4  # p < 1e-10
# lmerTest's own route (the fallback) is lmerTest's numbers to rounding.
EXACT_TOL = 1e-9

# R-side helpers. Everything is called through namespaces: nothing gets attached.
R_HELPERS = r"""
local({
  sat <- new.env(parent = baseenv())
  for (f in %(path)s) sys.source(f, envir = sat)

  dat <- new.env(parent = emptyenv())
  utils::data("dietox", package = "geepack", envir = dat)
  dat$sleepstudy <- lme4::sleepstudy
  dat$Penicillin <- lme4::Penicillin
  dat$Pastes <- lme4::Pastes
  dat$cake <- lme4::cake
  dat$dietox$Evit <- factor(dat$dietox$Evit)
  dat$dietox$Cu <- factor(dat$dietox$Cu)

  set.seed(20240611)
  cr <- expand.grid(a = factor(1:15), b = factor(1:12), rep = 1:2)
  cr$x <- stats::rnorm(nrow(cr))
  ua <- stats::rnorm(15, sd = 1.2); ub <- stats::rnorm(12, sd = 0.7)
  cr$y <- 2 + 0.5 * cr$x + ua[cr$a] + ub[cr$b] + stats::rnorm(nrow(cr))
  dat$crossed <- cr

  ne <- expand.grid(school = factor(1:12), cls = factor(1:4), pupil = 1:6)
  ne$x <- stats::rnorm(nrow(ne))
  ne$trt <- factor(as.integer(ne$school) %%%% 2)
  ne$sc <- interaction(ne$school, ne$cls)
  us <- stats::rnorm(12); uc <- stats::rnorm(48, sd = 0.5); usl <- stats::rnorm(12, sd = 0.3)
  ne$y <- 1 + 0.3 * ne$x + 0.5 * (ne$trt == "1") + us[ne$school] + usl[ne$school] * ne$x +
    uc[as.integer(ne$sc)] + stats::rnorm(nrow(ne), sd = 0.8)
  dat$nested <- ne

  # (1 | g) with no group signal: the fit is singular (theta on the boundary, 0)
  set.seed(1)
  sg <- data.frame(g = factor(rep(1:8, each = 6)), x = stats::rnorm(48))
  sg$y <- 1 + sg$x + stats::rnorm(48)
  dat$singular <- sg

  # covariate on a large scale: small theta for its slope
  ss <- lme4::sleepstudy
  ss$Hours <- ss$Days * 24
  ss$X12 <- ss$Days * 12
  set.seed(7)
  ss$w <- stats::runif(nrow(ss), 0.5, 2)
  dat$sleep_hours <- ss

  # random slope whose variance is estimated as zero: singular 2x2 (correlation -1 or 1)
  set.seed(5)
  sv <- data.frame(g = factor(rep(1:12, each = 10)), x = rep(0:9, 12))
  u <- stats::rnorm(12)
  sv$y <- 1 + 0.2 * sv$x + u[sv$g] + stats::rnorm(120)
  dat$singular_slope <- sv

  # rank-deficient X (lme4 drops D2) and an offset
  rd <- lme4::sleepstudy
  rd$D2 <- rd$Days * 2
  set.seed(11)
  rd$off <- stats::rnorm(nrow(rd))
  dat$sleep_extra <- rd
  dat$grouseticks <- lme4::grouseticks

  quiet <- function(expr) suppressMessages(suppressWarnings(expr))

  compare <- function(formula, data, REML, nL = 3L) {
    form <- stats::as.formula(formula)
    d <- dat[[data]]
    m1 <- quiet(lme4::lmer(form, data = d, REML = REML))
    m2 <- quiet(lmerTest::lmer(form, data = d, REML = REML))
    res <- compare_fits(m1, m2, nL)
    res$singular <- lme4::isSingular(m1)
    res
  }

  compare_fits <- function(m1, m2, nL) {
    t0 <- proc.time()[["elapsed"]]
    s <- quiet(sat$lmm_satterthwaite(m1))
    t_ours <- proc.time()[["elapsed"]] - t0
    co <- quiet(summary(m2))$coefficients
    p <- nrow(co)
    set.seed(99)
    L <- matrix(stats::rnorm(nL * p), nL, p)
    df_L_ours <- sat$lmm_satterthwaite_df(s, L)
    df_L_ref <- vapply(seq_len(nL), function(i)
      quiet(lmerTest::contest(m2, L[i, ], joint = FALSE))$df, numeric(1))
    list(df = unname(s$df), df_ref = unname(co[, "df"]),
         p = unname(s$p), p_ref = unname(co[, "Pr(>|t|)"]),
         se = unname(s$se), se_ref = unname(co[, "Std. Error"]),
         t = unname(s$t), t_ref = unname(co[, "t value"]),
         names = names(s$df), names_ref = rownames(co),
         df_L = df_L_ours, df_L_ref = df_L_ref,
         method = s$method, n_evals = s$n_devfun_evals, seconds = t_ours)
  }

  modular <- function() {
    # lme4's modular API keeps the deviance function; pass it in, check the fit
    # is left as it was.
    form <- Reaction ~ Days + (Days | Subject)
    lf <- lme4::lFormula(form, data = dat$sleepstudy)
    devfun <- do.call(lme4::mkLmerDevfun, lf)
    opt <- lme4::optimizeLmer(devfun)
    fit <- lme4::mkMerMod(environment(devfun), opt, lf$reTrms, fr = lf$fr)
    before <- list(theta = fit@theta + 0, b = fit@pp$b(1), dev = devfun(fit@theta + 0),
                   re = lme4::ranef(fit)[[1]], vc = as.matrix(stats::vcov(fit)))
    s <- quiet(sat$lmm_satterthwaite(fit, devfun = devfun))
    after <- list(theta = fit@theta + 0, b = fit@pp$b(1), dev = devfun(fit@theta + 0),
                  re = lme4::ranef(fit)[[1]], vc = as.matrix(stats::vcov(fit)))
    ref <- quiet(summary(lmerTest::lmer(form, data = dat$sleepstudy)))$coefficients
    s2 <- quiet(sat$lmm_satterthwaite(fit))
    list(df = unname(s$df), df_ref = unname(ref[, "df"]), df_nodevfun = unname(s2$df),
         unchanged = identical(before, after), method = s$method, n_evals = s$n_devfun_evals)
  }

  fallback <- function() {
    m1 <- quiet(lme4::lmer(Reaction ~ Days + (Days | Subject), data = dat$sleepstudy))
    m2 <- quiet(lmerTest::lmer(Reaction ~ Days + (Days | Subject), data = dat$sleepstudy))
    s <- quiet(sat$lmm_satterthwaite(m1, force_fallback = TRUE))
    co <- quiet(summary(m2))$coefficients
    list(df = unname(s$df), df_ref = unname(co[, "df"]), method = s$method,
         n_evals = s$n_devfun_evals,
         vv_equal = isTRUE(all.equal(unname(s$vcov_varpar), unname(m2@vcov_varpar),
                                      tolerance = 1e-12)))
  }

  insteval <- function() {
    # lmerTest::lmer is lme4::lmer followed by lmerTest's derivatives; its result
    # is also the lme4 fit we hand to lmm_satterthwaite (one 10-20 s fit, not two).
    form <- y ~ service + (1 | s) + (1 | d) + (1 | dept)
    m2 <- quiet(lmerTest::lmer(form, data = lme4::InstEval, REML = TRUE))
    compare_fits(m2, m2, 2L)
  }

  env <- environment()
  env
})
"""


def _rel(a, b):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    return np.abs(a / b - 1.0)


def _to_py(x):
    out = {}
    for name in x.names:
        v = x.rx2(name)
        vals = list(v)
        out[name] = vals[0] if len(vals) == 1 and name not in {
            "df", "df_ref", "p", "p_ref", "se", "se_ref", "t", "t_ref", "names",
            "names_ref", "df_L", "df_L_ref", "df_nodevfun"} else vals
    return out


@pytest.fixture(scope="module")
def R():
    ro.r("suppressMessages({loadNamespace('lme4'); loadNamespace('lmerTest')})")
    return ro.r(R_HELPERS % {"path": _r_paths()})


def _check(res, tol=REL_TOL):
    assert res["names"] == res["names_ref"]
    np.testing.assert_allclose(res["se"], res["se_ref"], rtol=1e-10)
    np.testing.assert_allclose(res["t"], res["t_ref"], rtol=1e-10)
    df_err = _rel(res["df"], res["df_ref"])
    assert df_err.max() <= tol, (res["names"], res["df"], res["df_ref"])
    p, p_ref = np.asarray(res["p"]), np.asarray(res["p_ref"])
    tiny = p_ref < 1e-10
    assert np.all(_rel(p[tiny], p_ref[tiny]) <= max(tol, P_TINY_TOL)), (p, p_ref)
    # summary()'s printed digits (printCoefmat: format.pval, digits = 4)
    pr = [f"{v:.3g}" for v in p[~tiny]]
    pr_ref = [f"{v:.3g}" for v in p_ref[~tiny]]
    assert pr == pr_ref or _rel(p[~tiny], p_ref[~tiny]).max() <= 1e-6, (p, p_ref)
    assert _rel(res["df_L"], res["df_L_ref"]).max() <= tol
    return df_err.max(), _rel(p, p_ref).max()


MODELS = [
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy", True),
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy", False),
    ("Reaction ~ Days + (1 | Subject)", "sleepstudy", True),
    ("Reaction ~ Days + (1 | Subject)", "sleepstudy", False),
    ("Reaction ~ Days + (Days || Subject)", "sleepstudy", True),
    ("Weight ~ Time + (1 + Time | Pig)", "dietox", True),
    ("Weight ~ Time + Evit + Cu + (1 + Time | Pig)", "dietox", True),
    ("Weight ~ Time + Evit + Cu + (1 + Time | Pig)", "dietox", False),
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin", True),
    ("strength ~ 1 + (1 | batch/cask)", "Pastes", True),
    ("strength ~ 1 + (1 | batch/cask)", "Pastes", False),
    ("angle ~ recipe * temperature + (1 | recipe:replicate)", "cake", True),
    ("y ~ x + (1 | a) + (1 | b)", "crossed", True),
    ("y ~ x + (1 | a) + (1 | b)", "crossed", False),
    ("y ~ x + trt + (1 | school/cls)", "nested", True),
    ("y ~ x + trt + (1 + x | school) + (1 | sc)", "nested", False),
    ("y ~ x + (1 | g)", "singular", True),
    ("y ~ x + (x | g)", "singular_slope", True),
    ("Reaction ~ Days + D2 + (Days | Subject)", "sleep_extra", True),
    ("Reaction ~ Days + offset(off) + (1 | Subject)", "sleep_extra", False),
    ("log(TICKS + 1) ~ YEAR + HEIGHT + (1 | BROOD) + (1 | LOCATION)", "grouseticks", True),
    ("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", "sleepstudy", True),
    ("Reaction ~ X12 + (X12 | Subject)", "sleep_hours", True),
    # 3x3 random effect (6 theta), Hessian condition number ~1e4 with small
    # theta for the Time^2 terms: lmerTest's numDeriv Jacobian (steps ~1e-4 *
    # theta) is ~1.5e-6 relative off the exact derivative in df here, which the
    # intercept's p-value of 4e-50 turns into ~8e-5.
    ("Weight ~ Time + I(Time^2) + (Time + I(Time^2) | Pig)", "dietox", True),
    # Badly scaled: lme4 stops at a singular point where the Hessian has a
    # negative eigenvalue (lmerTest warns about it) -> we must fall back.
    ("Reaction ~ Hours + (Hours | Subject)", "sleep_hours", True),
]
FALLBACK = {"Reaction ~ Hours + (Hours | Subject)"}


@pytest.mark.parametrize(
    "formula,data,reml", MODELS, ids=[f"{d}:{f}:{'REML' if r else 'ML'}" for f, d, r in MODELS]
)
def test_matches_lmertest(R, formula, data, reml):
    res = _to_py(R["compare"](formula, data, reml))
    _check(res)
    if data.startswith("singular"):
        assert res["singular"]
    assert res["method"] == ("lmerTest-fallback" if formula in FALLBACK else "lmermagic")
    if formula == "Reaction ~ Days + (Days | Subject)":
        # k = 3 theta: lme4's deriv12 points (1 + 2k^2, its convergence check's)
        # and 2k(k + 1) Richardson points; lmerTest's numDeriv calls make 113.
        assert res["n_evals"] == 1 + 2 * 9 + 2 * 3 * 4


def test_weighted_fit(R):
    code = r"""
    function(env) {
      d <- env$dat$sleep_hours
      m1 <- suppressWarnings(lme4::lmer(Reaction ~ Days + (Days | Subject), d, weights = w))
      m2 <- suppressWarnings(lmerTest::lmer(Reaction ~ Days + (Days | Subject), d, weights = w))
      env$compare_fits(m1, m2, 3L)
    }
    """
    res = _to_py(ro.r(code)(R))
    _check(res)
    assert res["method"] == "lmermagic"


def test_supplied_devfun_and_fit_untouched(R):
    res = _to_py(R["modular"]())
    assert res["method"] == "lmermagic"
    assert res["unchanged"]
    assert _rel(res["df"], res["df_ref"]).max() <= REL_TOL
    np.testing.assert_allclose(res["df"], res["df_nodevfun"], rtol=1e-12)


def test_fallback_is_lmertest(R):
    res = _to_py(R["fallback"]())
    assert res["method"] == "lmerTest-fallback"
    assert res["vv_equal"]
    assert _rel(res["df"], res["df_ref"]).max() <= 1e-10
    assert res["n_evals"] > 100  # lmerTest's numDeriv: Hessian + Jacobian


def test_contrast_df_shapes(R):
    code = r"""
    function(env) {
      m <- suppressMessages(lme4::lmer(Weight ~ Time + Evit + (1 + Time | Pig), env$dat$dietox))
      s <- env$sat$lmm_satterthwaite(m)
      L <- diag(length(s$df))
      list(rows = env$sat$lmm_satterthwaite_df(s, L), per = unname(s$df),
           na = env$sat$lmm_satterthwaite_df(s, c(1, NA, 0, 0)),
           bad = inherits(try(env$sat$lmm_satterthwaite_df(s, c(1, 0)), silent = TRUE),
                          "try-error"))
    }
    """
    res = ro.r(code)(R)
    np.testing.assert_allclose(list(res.rx2("rows")), list(res.rx2("per")), rtol=1e-14)
    assert np.isnan(res.rx2("na")[0])
    assert res.rx2("bad")[0]


@pytest.mark.skipif(os.environ.get("LMERMAGIC_SKIP_SLOW") == "1", reason="LMERMAGIC_SKIP_SLOW=1")
def test_insteval_slow(R):
    # Accuracy only: speed is measured in benchmarks/, never asserted in a test.
    res = _to_py(R["insteval"]())
    # The intercept's p-value is ~1e-24: 45 times as sensitive as its df.
    assert min(res["p_ref"]) < 1e-20
    _check(res)
    assert res["method"] == "lmermagic"
    assert res["n_evals"] == 1 + 2 * 9 + 2 * 3 * 4


def test_installed_lme4_internals_are_known(R):
    # Every stack of the compatibility matrix runs this: the engine reads lme4's
    # internals only where they are the ones it was checked against.
    assert ro.r("function(env) is.null(env$sat$.lmm_sat_unknown_internals())")(R)[0]


def test_unknown_internals_are_detected():
    code = r"""
    function(path) {
      sat <- new.env(parent = baseenv())
      for (f in path) sys.source(f, envir = sat)
      sat$.lmm_sat_known$native[["merPredDCreate"]] <- 18L
      sat$.lmm_sat_known$native[["lmer_NoSuchEntry"]] <- 1L
      sat$.lmm_sat_known$pp <- c(sat$.lmm_sat_known$pp, "noSuchField")
      sat$.lmm_sat_unknown_internals()
    }
    """
    reason = ro.r(code)(ro.StrVector([str(f) for f in R_FILES]))[0]
    assert "internals not recognised" in reason
    assert "merPredDCreate takes 17 arguments, not 18" in reason
    assert "no C++ entry point lmer_NoSuchEntry" in reason
    assert "merPredD has no field noSuchField" in reason


def test_unknown_internals_use_lmertests_route(R):
    # An lme4 whose internals are not the known ones: nothing of its inside is
    # read, lmerTest computes from lme4's own devfun, and that is recorded.
    code = r"""
    function(env) {
      st <- env$sat$.lmm_sat_state
      assign("reason", "lme4 9.9-9 internals not recognised (test)", envir = st)
      on.exit(rm("reason", envir = st))
      m1 <- suppressMessages(lme4::lmer(Reaction ~ Days + (Days | Subject), env$dat$sleepstudy))
      m2 <- suppressMessages(lmerTest::lmer(Reaction ~ Days + (Days | Subject),
                                            env$dat$sleepstudy))
      s <- suppressWarnings(env$sat$lmm_satterthwaite(m1))
      co <- summary(m2)$coefficients
      list(df = unname(s$df), df_ref = unname(co[, "df"]), p = unname(s$p),
           p_ref = unname(co[, "Pr(>|t|)"]), method = s$method,
           reason = s$fallback_reason)
    }
    """
    res = _to_py(ro.r(code)(R))
    assert res["method"] == "lmerTest-fallback"
    assert res["reason"] == "lme4 9.9-9 internals not recognised (test)"
    assert _rel(res["df"], res["df_ref"]).max() <= EXACT_TOL
    assert _rel(res["p"], res["p_ref"]).max() <= EXACT_TOL
    assert ro.r("function(env) is.null(env$sat$.lmm_sat_unknown_internals())")(R)[0]
