"""Satterthwaite df against the EXACT derivatives, and lme4's convergence check.

The reference is analytic: the Hessian of lmerTest's deviance in (theta, sigma) and
the Jacobian of vcov(beta), from the marginal covariance V = sigma^2 (W^-1 + Z Lambda
Lambda' Z') in dense algebra (REML: tr(P V_ij) - tr(P V_i P V_j) + 2 y'P V_i P V_j P y
- y'P V_ij P y). The engine's df must be within 1e-7 of it; lmerTest's within its own
error (2e-6 in df, p-values with summary()'s printed digits).

The fit is made with calc.derivs = FALSE and lme4's checkConv run afterwards on the
engine's deviance evaluations: the warnings and @optinfo must be lme4's own.
Nothing is mocked. InstEval and a 100k design: LMERMAGIC_SLOW=1 only.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ro = pytest.importorskip("rpy2.robjects")

ROOT = Path(__file__).resolve().parents[1]
EXACT_TOL = 1e-7

R_HELPERS = r"""
local({
  sat <- new.env(parent = baseenv())
  for (f in %(path)s) sys.source(f, envir = sat)
  dat <- new.env(parent = emptyenv())
  utils::data("dietox", package = "geepack", envir = dat)
  ss <- lme4::sleepstudy
  set.seed(7); ss$w <- stats::runif(180, 0.5, 2); ss$off <- stats::rnorm(180)
  ss$Days5 <- ss$Days * 1e5; ss$D1000 <- ss$Days * 1000
  dat$ss <- ss
  set.seed(5)
  sv <- data.frame(g = factor(rep(1:12, each = 10)), x = rep(0:9, 12))
  u <- stats::rnorm(12)
  sv$y <- 1 + 0.2 * sv$x + 0.05 * u[sv$g] + stats::rnorm(120)
  dat$nearsing <- sv
  dat$Penicillin <- lme4::Penicillin

  exact <- function(fit) {
    reml <- lme4::isREML(fit); theta <- fit@theta; sigma <- stats::sigma(fit)
    X <- lme4::getME(fit, "X"); Z <- as.matrix(lme4::getME(fit, "Z"))
    y <- lme4::getME(fit, "y") - fit@resp$offset; w <- fit@resp$weights
    Lind <- lme4::getME(fit, "Lind")
    Lt <- methods::as(lme4::getME(fit, "Lambdat"), "TsparseMatrix")
    k <- length(theta); n <- nrow(X); q <- ncol(Lt)
    Lam <- t(as.matrix(Lt))
    dLam <- lapply(seq_len(k), function(i) {
      s <- Lind == i; M <- matrix(0, q, q); M[cbind(Lt@j[s] + 1L, Lt@i[s] + 1L)] <- 1; M })
    B <- diag(1 / w, n) + Z %%*%% tcrossprod(Lam) %%*%% t(Z)
    Vd <- c(lapply(dLam, function(D) {
              A <- D %%*%% t(Lam); sigma^2 * Z %%*%% (A + t(A)) %%*%% t(Z) }),
            list(2 * sigma * B))
    Vdd <- function(i, j) {
      if (i <= k && j <= k) {
        A <- dLam[[i]] %%*%% t(dLam[[j]]); return(sigma^2 * Z %%*%% (A + t(A)) %%*%% t(Z)) }
      if (i > k && j > k) return(2 * B)
      Vd[[min(i, j)]] * 2 / sigma
    }
    Vi <- solve(sigma^2 * B); C <- solve(t(X) %%*%% Vi %%*%% X)
    P <- Vi - Vi %%*%% X %%*%% C %%*%% t(X) %%*%% Vi
    Q <- if (reml) P else Vi
    Py <- P %%*%% y
    QV <- lapply(Vd, function(M) Q %%*%% M)
    H <- matrix(0, k + 1, k + 1)
    for (i in 1:(k + 1)) for (j in i:(k + 1)) {
      Vij <- Vdd(i, j)
      H[i, j] <- H[j, i] <- sum(Q * Vij) - sum(t(QV[[i]]) * QV[[j]]) +
        2 * sum(Py * (Vd[[i]] %%*%% (P %%*%% (Vd[[j]] %%*%% Py)))) - sum(Py * (Vij %%*%% Py))
    }
    J <- lapply(Vd, function(M) C %%*%% t(X) %%*%% Vi %%*%% M %%*%% Vi %%*%% X %%*%% C)
    sat$.lmm_sat_df_core(diag(ncol(X)), C, J, 2 * solve(H))
  }

  fitpair <- function(formula, data, weights = FALSE) {
    form <- stats::as.formula(formula); d <- dat[[data]]
    q <- function(e) suppressMessages(suppressWarnings(e))
    m1 <- if (weights) q(lme4::lmer(form, d, weights = w)) else q(lme4::lmer(form, d))
    m2 <- if (weights) q(lmerTest::lmer(form, d, weights = w)) else q(lmerTest::lmer(form, d))
    s <- q(sat$lmm_satterthwaite(m1))
    co <- q(summary(m2))$coefficients
    # summary()'s printed p-values (printCoefmat's digits)
    pr <- function(p) format.pval(p, digits = max(3L, getOption("digits") - 3L))
    list(df = unname(s$df), df_exact = unname(exact(m1)), df_lt = unname(co[, "df"]),
         p = unname(s$p), p_lt = unname(co[, "Pr(>|t|)"]),
         p_print = pr(unname(s$p)), p_lt_print = pr(unname(co[, "Pr(>|t|)"])),
         method = s$method, n_evals = s$n_devfun_evals,
         derivs_same = identical(s$derivs, m1@optinfo$derivs))
  }

  # One fit through lmermagic's route (fitting.R) vs lme4's own lmer(): the
  # warnings, messages and @optinfo must be identical.
  conv <- function(formula, data, maxfun = 0L) {
    opts <- list(kind = "lmer", reml = TRUE, ddf = "satterthwaite",
                 control = if (maxfun > 0L) list(maxfun = maxfun) else list())
    d <- dat[[data]]
    # lmm_fit's route: the check deferred where this lme4 allows it (lme4 1.1;
    # lme4 2.x computes its own derivatives, and there the two routes are one)
    defer <- sat$lmm_compat_defer_derivs()
    ours <- sat$lmm_with_conditions(function() {
      o <- opts
      if (defer) o$control$calc_derivs <- FALSE
      todo <- sat$lmm_fit_call(d, stats::as.formula(formula), o)
      fit <- eval(todo$call, todo$env)
      if (!defer) return(fit)
      # lmerTest's own warnings on a fallback are not lme4's check's
      s <- suppressWarnings(sat$lmm_satterthwaite(fit))
      sat$lmm_compat_conv_check(fit, s$derivs, todo$env$control)
    })
    theirs <- sat$lmm_with_conditions(function() {
      todo <- sat$lmm_fit_call(d, stats::as.formula(formula), opts)
      eval(todo$call, todo$env)
    })
    a <- ours$value@optinfo; b <- theirs$value@optinfo
    list(w_ours = ours$warnings, w_lme4 = theirs$warnings,
         m_ours = ours$messages, m_lme4 = theirs$messages,
         optinfo_same = identical(a, b),
         conv_same = identical(a$conv, b$conv), derivs_same = identical(a$derivs, b$derivs))
  }
  environment()
})
"""


@pytest.fixture(scope="module")
def R():
    ro.r("suppressMessages({loadNamespace('lme4'); loadNamespace('lmerTest')})")
    env = ro.r("new.env(parent = baseenv())")
    for f in sorted((ROOT / "lmermagic" / "R").glob("*.R")):
        ro.r["sys.source"](str(f), envir=env)
    path = "c(" + ", ".join("'" + str(ROOT / "lmermagic" / "R" / f).replace("'", "\\'") + "'"
                            for f in ("satterthwaite.R", "satterthwaite_derivs.R")) + ")"
    helpers = ro.r(R_HELPERS % {"path": path})
    # the whole R/ directory, so lmm_fit_call and compat are there too
    ro.r("function(h, e) h$sat <- e")(helpers, env)
    return helpers


def _py(x):
    return {n: list(x.rx2(n)) for n in x.names}


MODELS = [
    ("Reaction ~ Days + (Days | Subject)", "ss", False),
    ("Weight ~ Time + (1 + Time | Pig)", "dietox", False),
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin", False),
    ("y ~ x + (1 | g)", "nearsing", False),
    ("Reaction ~ Days + (Days | Subject)", "ss", True),
    ("Reaction ~ Days + offset(off) + (1 | Subject)", "ss", False),
    ("Weight ~ Time + I(Time^2) + (Time + I(Time^2) | Pig)", "dietox", False),
]


@pytest.mark.parametrize("formula,data,weights", MODELS,
                         ids=[f"{d}:{f}{':w' if w else ''}" for f, d, w in MODELS])
def test_df_exact_and_within_lmertest(R, formula, data, weights):
    res = _py(R["fitpair"](formula, data, weights))
    assert res["method"] == ["lmermagic"]
    assert res["derivs_same"] == [True]  # lme4's deriv12, bit for bit
    df, ex, lt = (np.asarray(res[k]) for k in ("df", "df_exact", "df_lt"))
    assert np.max(np.abs(df / ex - 1)) <= EXACT_TOL, (df, ex)
    assert np.max(np.abs(df / lt - 1)) <= 2e-6, (df, lt)
    assert res["p_print"] == res["p_lt_print"]
    p, plt = np.asarray(res["p"]), np.asarray(res["p_lt"])
    tiny = plt < 1e-10
    assert np.all(np.abs(p[tiny] / plt[tiny] - 1) <= 1e-4)


def test_refit_of_a_reml_fit(R):
    # lme4 1.1's refit() leaves its response module's REML at 1 (its criterion
    # divides by n - 1, not n - p): the engine must not take the criterion for
    # lmerTest's (the df were 0.7 % off, 16.99 for the exact 16.87).
    res = _py(ro.r("""function(h) {
        m <- suppressWarnings(lme4::lmer(Reaction ~ Days + (Days | Subject), lme4::sleepstudy))
        m2 <- lme4::refit(m, sqrt(lme4::sleepstudy$Reaction) * 10)
        s <- h$sat$lmm_satterthwaite(m2)
        list(df = unname(s$df), exact = unname(h$exact(m2)), method = s$method,
             reml_field = m2@resp$REML)
    }""")(R))
    # 1 on lme4 1.1 (2 = p on lme4 2.x, which sets it as a fresh fit does)
    assert res["method"] == ["lmermagic"] and res["reml_field"][0] in (1, 2)
    df, ex = np.asarray(res["df"]), np.asarray(res["exact"])
    assert np.max(np.abs(df / ex - 1)) <= EXACT_TOL, (df, ex)


def test_evaluations_shared_with_lme4_check(R):
    res = _py(R["fitpair"]("Reaction ~ Days + (Days | Subject)", "ss"))
    # k = 3: lme4's deriv12 (1 + 2k^2) and the Richardson stencil 2k(k + 1)
    assert res["n_evals"] == [1 + 2 * 9 + 2 * 3 * 4]


CONV = [
    ("Reaction ~ Days + (Days | Subject)", "ss", 0),        # no warning
    ("Reaction ~ Days5 + (Days5 | Subject)", "ss", 0),      # rescale; singular
    ("Reaction ~ D1000 + (D1000 | Subject)", "ss", 0),      # rescale, max|grad|, eigenvalues
    ("Weight ~ Time + I(Time^2) + (Time + I(Time^2) | Pig)", "dietox", 0),  # max|grad|
    ("Reaction ~ Days + (Days | Subject)", "ss", 20),       # maxfun: optimizer + gradient
    ("y ~ x + (x | g)", "nearsing", 0),                     # singular: lme4's message only
]


@pytest.mark.parametrize("formula,data,maxfun", CONV, ids=[f"{f}:{m}" for f, _, m in CONV])
def test_convergence_warnings_are_lme4s(R, formula, data, maxfun):
    res = _py(R["conv"](formula, data, maxfun))
    assert res["w_ours"] == res["w_lme4"]
    assert res["m_ours"] == res["m_lme4"]
    assert res["derivs_same"] == [True]
    assert res["conv_same"] == [True]
    assert res["optinfo_same"] == [True]


def test_conv_warnings_are_triggered(R):
    # the cases above do reach lme4's checks (else the comparison proves little)
    w = _py(R["conv"]("Reaction ~ D1000 + (D1000 | Subject)", "ss", 0))["w_lme4"]
    assert any("rescaling" in x for x in w)
    assert any("very large eigenvalue" in x and "eigenvalue ratio" in x for x in w)
    w = _py(R["conv"]("Weight ~ Time + I(Time^2) + (Time + I(Time^2) | Pig)", "dietox", 0))
    assert any("max|grad|" in x for x in w["w_lme4"])


# For designs too large for the dense analytic reference: a high-accuracy numerical
# one, computed in the test. lmerTest's own deviance in (theta, sigma) and its
# vcov(beta) as functions of them, differentiated by numDeriv's Richardson
# extrapolation with more levels (r = 6) than lmerTest uses (r = 4), from the same
# first step (d = 0.1). Smaller first steps are worse, not better: on Penicillin
# d = 1e-3 puts the df 1.4e-4 off, the deviance's rounding over the step.
NUMERIC_REF = r"""function(env, form, data) {
  m <- suppressMessages(lme4::lmer(form, data = data))
  s <- env$sat$lmm_satterthwaite(m)
  devfun <- stats::update(m, devFunOnly = TRUE)
  reml <- lme4::isREML(m)
  vp <- c(m@theta, stats::sigma(m))
  args <- list(d = 0.1, r = 6)
  H <- numDeriv::hessian(function(x) lmerTest:::devfun_vp(x, devfun, reml), vp,
                         method.args = args)
  Jl <- numDeriv::jacobian(function(x) as.vector(lmerTest:::get_covbeta(x, devfun)), vp,
                           method.args = args)
  p <- length(lme4::fixef(m))
  J <- lapply(seq_along(vp), function(i) array(Jl[, i], c(p, p)))
  C <- as.matrix(stats::vcov(m))
  ref <- env$sat$.lmm_sat_df_core(diag(p), C, J, 2 * solve(H))
  lt <- summary(lmerTest::as_lmerModLmerTest(m))$coefficients
  pr <- function(p) format.pval(p, digits = max(3L, getOption("digits") - 3L))
  list(df = unname(s$df), df_ref = unname(ref), df_lt = unname(lt[, "df"]),
       p = unname(s$p), p_lt = unname(lt[, "Pr(>|t|)"]), method = s$method,
       p_print = pr(unname(s$p)), p_lt_print = pr(unname(lt[, "Pr(>|t|)"])))
}"""

BIG = {
    "InstEval": "function() list(y ~ service + (1 | s) + (1 | d) + (1 | dept), lme4::InstEval)",
    # the benchmarks' 100k crossed design, made here in R (seeded)
    "100k": """function() {
      set.seed(20240611); n <- 100000L
      g1 <- sample.int(2000L, n, TRUE); g2 <- sample.int(300L, n, TRUE)
      cond <- sample.int(3L, n, TRUE)
      d <- data.frame(x1 = stats::rnorm(n), x2 = stats::runif(n),
                      cond = factor(c("A", "B", "C")[cond]),
                      g1 = factor(g1), g2 = factor(g2))
      d$y <- 2 + 0.5 * d$x1 - d$x2 + c(0, 0.3, -0.2)[cond] + stats::rnorm(2000L)[g1] +
        stats::rnorm(300L, 0, 0.5)[g2] + stats::rnorm(n, 0, 2)
      list(y ~ x1 + x2 + cond + (1 | g1) + (1 | g2), d)
    }""",
}


@pytest.mark.skipif(os.environ.get("LMERMAGIC_SLOW") != "1", reason="LMERMAGIC_SLOW=1 only")
@pytest.mark.parametrize("name", list(BIG))
def test_big_designs_against_a_numerical_reference(R, name):
    form, data = ro.r(BIG[name])()
    res = _py(ro.r(NUMERIC_REF)(R, form, data))
    assert res["method"] == ["lmermagic"]
    df, ref, lt = (np.asarray(res[k]) for k in ("df", "df_ref", "df_lt"))
    # The reference's own error grows with the deviance (about 2.4e5 here: its rounding
    # over numDeriv's steps): measured 4.6e-6 (InstEval) and 6.3e-6 (100k) from the
    # engine, which agrees with lmerTest to 4.9e-7 and 2.2e-6; 1e-5 holds both.
    assert np.max(np.abs(df / ref - 1)) <= 1e-5, (df, ref)
    assert np.max(np.abs(lt / ref - 1)) <= 1e-5, (lt, ref)
    p, plt = np.asarray(res["p"]), np.asarray(res["p_lt"])
    # A p-value of 1e-294 (the 100k design's intercept, t about 37) moves by about
    # t^2/df times the df's relative error: 2e-3 for lmerTest's 2.2e-6. Relative 1e-4
    # is asked down to 1e-100; below it both routes must give the same printed digits.
    big = plt > 1e-100
    assert np.all(np.abs(p[big] / plt[big] - 1) <= 1e-4), (p, plt)
    assert res["p_print"] == res["p_lt_print"]


@pytest.mark.skipif(os.environ.get("LMERMAGIC_SLOW") != "1", reason="LMERMAGIC_SLOW=1 only")
def test_insteval_within_lmertest(R):
    code = r"""function(env) {
      form <- y ~ service + (1 | s) + (1 | d) + (1 | dept)
      m2 <- suppressMessages(lmerTest::lmer(form, data = lme4::InstEval))
      s <- env$sat$lmm_satterthwaite(m2)
      co <- summary(m2)$coefficients
      list(df = unname(s$df), df_lt = unname(co[, "df"]), p = unname(s$p),
           p_lt = unname(co[, "Pr(>|t|)"]))
    }"""
    res = _py(ro.r(code)(R))
    df, lt = np.asarray(res["df"]), np.asarray(res["df_lt"])
    assert np.max(np.abs(df / lt - 1)) <= 2e-6
    p, plt = np.asarray(res["p"]), np.asarray(res["p_lt"])
    assert np.all(np.abs(p / plt - 1) <= 1e-4)
