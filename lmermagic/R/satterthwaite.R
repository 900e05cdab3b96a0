# Satterthwaite degrees of freedom for lme4 linear mixed models, from the exact
# derivatives (to ~5e-8 relative in df), with the deviance evaluations that
# lme4's own convergence check makes serving both.
#
# This file is sys.source()d into a private environment: it only defines
# functions, never attaches packages and never writes to the global environment.
# Everything outside base R is called as pkg::fn or pkg:::fn.
#
# What is computed (lmerTest 3.1-3's quantities, as_lmerModLT / devfun_vp /
# get_covbeta / contest1D), with varpar = c(theta, sigma), k = length(theta):
#   D(varpar)   = ldL2 + pwrss / sigma^2 + n log(2 pi sigma^2)
#                 [REML: + log|RX|^2 - p log(2 pi sigma^2)]   (NOT profiled)
#   vcov_varpar = 2 * H^-1,  H = Hessian of D at the fit
#   Jac_list    = Jacobian of sigma^2 (RX'RX)^-1 in varpar
#   df(L)       = 2 (L'VL)^2 / (g' vcov_varpar g),  g_i = L' Jac_i L
#
# How (.lmm_sat_stencil). sigma enters D in closed form: with n' = n - p (REML)
# or n (ML), d(theta) lme4's profiled criterion and gp the gradient of pwrss,
#   H_theta,theta = d'' + gp gp' / (n' sigma^4),  H_theta,sigma = -2 gp / sigma^3,
#   H_sigma,sigma = 4 n' / sigma^2,  dJac/dsigma = 2 sigma (RX'RX)^-1,
# so only d'', gp and d(RX'RX)^-1/dtheta are numerical, all read from the same
# deviance evaluations (each keeps pwrss and (RX'RX)^-1 beside the deviance):
#  1. lme4's deriv12 (its code, step 1e-4): the 1 + 2k^2 points of lme4's
#     convergence check, whose gradient and Hessian are bit for bit lme4's; the
#     fit (fitting.R) is made with calc.derivs = FALSE and checked with them.
#  2. The Hessian's diagonal gives each theta's curvature scale s_i =
#     1/sqrt(d''_ii); second differences along h_i e_i and h_i e_i + h_j e_j at
#     steps h = 0.02 s and 2h, Richardson-extrapolated (error O(h^4)), give d''
#     and, along e_i, gp and the Jacobian: 2k(k + 1) more points.
# 43 evaluations for k = 3 (lmerTest: 113 besides lme4's 19; the previous
# engine, reproducing lmerTest's points: 73), 7 for k = 1. Why not lme4's
# points alone: at step 1e-4 the deviance's rounding (~1e-13 of ~1e3) divided
# by 1e-8 leaves 1e-7 to 1e-4 in df; steps on the curvature scale leave
# <= 5e-8 on every model of tests/test_satterthwaite_exact.py, where lmerTest
# is off by up to ~1.5e-6 (docs/speed.md).

# lme4's C++ entry points (its R methods are thin wrappers around these), with
# the number of arguments each takes, and the fields of lme4's predictor and
# response modules that the engine copies: as lme4 1.1-31 to 2.1-0 have them.
.lmm_sat_known <- list(
  native = c(merPredDCreate = 17L, merPredDsetTheta = 2L, merPredDupdateXwts = 2L,
             merPredDupdateDecomp = 2L, lmer_Create = 7L, lm_updateMu = 2L,
             lmer_setREML = 2L, lmer_Deviance = 3L, merPredDldL2 = 1L,
             merPredDsqrL = 2L, merPredDRX = 1L, merPredDRXi = 1L, lm_wrss = 1L,
             deepcopy = 1L),
  pp = c("X", "Lambdat", "LamtUt", "Lind", "RZX", "Ut", "Utr", "V", "VtV", "Vtr",
         "Xwts", "Zt", "beta0", "delb", "delu", "theta", "u0"),
  resp = c("y", "weights", "offset", "mu", "sqrtXwt", "sqrtrwt", "wtres"))

.lmm_sat_native <- function() {
  mget(names(.lmm_sat_known$native), envir = asNamespace("lme4"))
}

# NULL when the installed lme4's internals are the ones the engine knows, else
# why not. Checked once per session: a later lme4 that renames, drops or
# reshapes any of them sends every fit to lmerTest's own route (recorded in
# model.meta) instead of reading memory laid out in a way we have not checked.
.lmm_sat_state <- new.env(parent = emptyenv())
.lmm_sat_unknown_internals <- function() {
  if (exists("reason", envir = .lmm_sat_state, inherits = FALSE)) {
    return(.lmm_sat_state$reason)
  }
  ns <- asNamespace("lme4")
  k <- .lmm_sat_known
  problems <- character()
  for (nm in names(k$native)) {
    f <- get0(nm, envir = ns, inherits = FALSE)
    if (!inherits(f, "NativeSymbolInfo")) {
      problems <- c(problems, sprintf("no C++ entry point %s", nm))
    } else if (!identical(as.integer(f$numParameters), k$native[[nm]])) {
      problems <- c(problems, sprintf("%s takes %s arguments, not %d", nm,
                                      format(f$numParameters), k$native[[nm]]))
    }
  }
  fields <- function(cls) tryCatch(names(get(cls, envir = ns)$fields()),
                                   error = function(e) character())
  for (m in list(c("merPredD", "pp"), c("lmerResp", "resp"))) {
    gone <- setdiff(k[[m[2]]], fields(m[1]))
    if (length(gone)) {
      problems <- c(problems, sprintf("%s has no field %s", m[1],
                                      paste(gone, collapse = ", ")))
    }
  }
  reason <- if (length(problems)) {
    sprintf("lme4 %s internals not recognised (%s)",
            format(utils::packageVersion("lme4")), paste(problems, collapse = "; "))
  }
  assign("reason", reason, envir = .lmm_sat_state)
  reason
}

# For `python -m lmermagic doctor`: "" when the engine can be used, else why not.
lmm_sat_internals <- function() {
  reason <- .lmm_sat_unknown_internals()
  if (is.null(reason)) "" else reason
}

# A deviance "engine": eval(theta) runs lme4's deviance function and leaves its
# state in the C++ objects behind the external pointers pp and resp; n_evals
# counts the calls.
#
# From a fit: private deep copies of the fit's predictor (merPredD) and
# response (lmerResp) modules, because lme4's C++ code works in place on the
# memory of its modules, so the fit's own must never be used. The copies are
# made as lme4's $copy() and $initializePtr() make them, but as bare C++ objects
# over copied fields: building the reference-class objects costs ~9 ms of S4
# initialisation per fit, more than 70 deviance evaluations of sleepstudy. The
# copied fields are kept in the engine: the C++ objects point into them.
.lmm_sat_engine_from_fit <- function(fit) {
  C <- .lmm_sat_native()
  cp <- function(obj, nm) .Call(C$deepcopy, get(nm, envir = as.environment(obj)))
  f <- lapply(stats::setNames(nm = .lmm_sat_known$pp), cp, obj = fit@pp)
  f$X <- methods::as(f$X, "matrix")
  pp <- .Call(C$merPredDCreate, f$X, f$Lambdat, f$LamtUt, f$Lind, f$RZX, f$Ut, f$Utr,
              f$V, f$VtV, f$Vtr, f$Xwts, f$Zt, f$beta0, f$delb, f$delu, f$theta, f$u0)
  .Call(C$merPredDsetTheta, pp, f$theta)
  .Call(C$merPredDupdateXwts, pp, f$Xwts)
  .Call(C$merPredDupdateDecomp, pp, NULL)
  r <- lapply(stats::setNames(nm = .lmm_sat_known$resp), cp, obj = fit@resp)
  resp <- .Call(C$lmer_Create, r$y, r$weights, r$offset, r$mu, r$sqrtXwt, r$sqrtrwt,
                r$wtres)
  .Call(C$lm_updateMu, resp, r$mu - r$offset)
  .Call(C$lmer_setREML, resp, get("REML", envir = as.environment(fit@resp)))
  e <- new.env(parent = emptyenv())
  e$keep <- list(f, r)
  e$pp <- pp
  e$resp <- resp
  e$n_evals <- 0L
  e$C <- C
  e$eval <- function(theta) {
    e$n_evals <- e$n_evals + 1L
    .Call(C$lmer_Deviance, pp, resp, as.double(theta))
  }
  e
}

# From a caller's lme4 deviance function (e.g. lme4::mkLmerDevfun's): it is
# called as it is, and read through its own modules.
.lmm_sat_engine_from_devfun <- function(devfun) {
  d <- environment(devfun)
  if (is.null(d) || !inherits(d$pp, "merPredD") || !inherits(d$resp, "lmerResp")) {
    stop("'devfun' is not an lme4 lmer deviance function")
  }
  e <- new.env(parent = emptyenv())
  e$pp <- d$pp$ptr()
  e$resp <- d$resp$ptr()
  e$n_evals <- 0L
  e$C <- .lmm_sat_native()
  e$eval <- function(theta) {
    e$n_evals <- e$n_evals + 1L
    devfun(theta)
  }
  e$devfun <- devfun
  e
}

# A reference-class deviance function for lmerTest's own code (the fallback),
# counting its calls into the engine's n_evals: the caller's devfun, or one over
# lme4's $copy() of the fit's modules (same layout as lme4::mkLmerDevfun; like
# lme4 2.x's, a function of par, mapped to theta where they differ: map).
.lmm_sat_devfun_for_lmertest <- function(engine, fit, map = NULL) {
  rho <- new.env(parent = baseenv())
  rho$engine <- engine
  if (is.null(engine$devfun)) {
    rho$pp <- fit@pp$copy()
    rho$resp <- fit@resp$copy()
    rho$lmer_Deviance <- engine$C$lmer_Deviance
    rho$to_theta <- if (is.null(map)) identity else map$to_theta
    inner <- function(par) {
      .Call(lmer_Deviance, pp$ptr(), resp$ptr(), as.double(to_theta(par)))
    }
    environment(inner) <- rho
  } else {
    inner <- engine$devfun
    rho$pp <- environment(inner)$pp
    rho$resp <- environment(inner)$resp
  }
  rho$inner <- inner
  f <- function(theta) {
    engine$n_evals <- engine$n_evals + 1L
    inner(theta)
  }
  environment(f) <- rho
  f
}

# The pieces of the deviance at each theta, kept (key: the exact bits of theta)
# so that a point two stencils share costs one evaluation. They are read with
# the lme4 calls lmerTest makes: U = (RX'RX)^-1 = RXi RXi'.
.lmm_sat_pieces <- function(engine) {
  C <- engine$C
  cache <- new.env(hash = TRUE, parent = emptyenv())
  function(theta) {
    key <- paste(sprintf("%a", theta), collapse = " ")
    v <- cache[[key]]
    if (is.null(v)) {
      dev <- engine$eval(theta)
      pp <- engine$pp
      v <- list(dev = dev, pwrss = .Call(C$lm_wrss, engine$resp) + .Call(C$merPredDsqrL, pp, 1),
                U = tcrossprod(.Call(C$merPredDRXi, pp)))
      assign(key, v, envir = cache)
    }
    v
  }
}

.lmm_sat_qform <- function(x, A) sum(x * (A %*% x))

# Satterthwaite df for the rows of L from the pieces (no sat object needed).
.lmm_sat_df_core <- function(L, vcov_beta, jac, vcov_varpar) {
  if (!is.matrix(L)) L <- matrix(L, nrow = 1L)
  vapply(seq_len(nrow(L)), function(r) {
    l <- L[r, ]
    if (anyNA(l)) return(NA_real_)
    var_con <- .lmm_sat_qform(l, vcov_beta)
    g <- vapply(jac, function(m) .lmm_sat_qform(l, m), numeric(1L))
    2 * var_con^2 / .lmm_sat_qform(g, vcov_varpar)
  }, numeric(1L))
}

lmm_satterthwaite_df <- function(sat, L) {
  p <- nrow(sat$vcov_beta)
  if (is.matrix(L)) {
    if (ncol(L) != p) stop(sprintf("L must have %d columns", p))
  } else {
    if (length(L) != p) stop(sprintf("L must have length %d", p))
  }
  storage.mode(L) <- "double"
  .lmm_sat_df_core(L, sat$vcov_beta, sat$jac, sat$vcov_varpar)
}

# The lmerTest computation itself (lmerTest:::as_lmerModLT) on our devfun.
.lmm_sat_lmertest <- function(fit, devfun) {
  lt <- lmerTest:::as_lmerModLT(fit, devfun)
  list(vcov_varpar = lt@vcov_varpar, jac = lt@Jac_list, vcov_beta = lt@vcov_beta)
}

# fit:    an lme4 lmerMod (REML or ML); lmerTest's lmerModLmerTest works too.
# devfun: optional lme4 deviance function of the same model (e.g. from
#         lme4::mkLmerDevfun); it is put back at the theta it was at (that
#         last call is not in n_devfun_evals). Without it we copy the fit's
#         pp/resp modules (~0.2 s on InstEval) and never touch the fit.
# force_fallback: hand the whole computation to lmerTest (for checking).
# Returns list(vcov_beta, vcov_varpar, jac, df, se, t, p, method,
#   n_devfun_evals, beta, varpar, hessian, derivs, fallback_reason);
#   vcov_varpar and jac are lmerTest's vcov_varpar and Jac_list.
lmm_satterthwaite <- function(fit, devfun = NULL, force_fallback = FALSE) {
  if (!inherits(fit, "lmerMod")) {
    stop("fit must be a linear mixed model from lme4::lmer (class 'lmerMod')")
  }
  reml <- lme4::isREML(fit)
  # A fresh copy: lme4's C++ code writes theta into pp's memory in place, and
  # fit@theta may be that same memory when the fit shares pp with a devfun.
  theta <- as.numeric(fit@theta) + 0
  sigma <- stats::sigma(fit)
  beta <- lme4::fixef(fit)
  # = as.matrix(vcov(fit)), which lmerTest uses, without the dpoMatrix detour
  vcov_beta <- sigma^2 * as.matrix(fit@pp$unsc())
  nms <- names(beta)
  dimnames(vcov_beta) <- list(nms, nms)
  n <- nrow(fit@pp$V)
  p <- length(beta)
  crit <- unname(fit@devcomp$cmp[[if (reml) "REML" else "dev"]])
  same_crit <- function(v) is.finite(v) && abs(v - crit) <= 1e-8 * max(1, abs(crit))

  # The deviance function. A caller's devfun (e.g. from lme4's modular API) is
  # used as is, and put back at the theta it was at (the optimum, normally)
  # afterwards, since it may share its state with the fit.
  if (!is.null(devfun)) {
    theta_before <- as.numeric(environment(devfun)$pp$theta) + 0
    on.exit(devfun(theta_before), add = TRUE)
  }
  reason <- .lmm_sat_unknown_internals()
  map <- lmm_compat_par_map(fit)
  x0 <- if (is.null(map)) theta else map$par
  res <- NULL
  derivs <- NULL
  if (!is.null(reason)) {
    # Nothing of lme4's inside is read: lmerTest gets lme4's own devfun.
    engine <- new.env(parent = emptyenv())
    engine$n_evals <- 0L
    engine$devfun <- if (is.null(devfun)) lme4::getME(fit, "devfun") else devfun
  } else {
    engine <- if (is.null(devfun)) .lmm_sat_engine_from_fit(fit)
              else .lmm_sat_engine_from_devfun(devfun)
    pieces <- .lmm_sat_pieces(engine)
    if (!same_crit(pieces(theta)$dev) && !is.null(devfun)) {
      warning("'devfun' does not reproduce the fit's criterion; using one built from the fit")
      extra <- engine$n_evals
      engine <- .lmm_sat_engine_from_fit(fit)
      engine$n_evals <- extra
      pieces <- .lmm_sat_pieces(engine)
    }
    res <- tryCatch({
      if (isTRUE(force_fallback)) stop("fallback requested")
      if (!same_crit(pieces(theta)$dev)) stop("deviance function does not reproduce the fit")
      # lme4 2.x's cs()/ar1() terms: differences in the model's own parameters
      # (compat.R's lmm_compat_par_map), theta computed from them by lme4.
      if (!is.null(map)) {
        if (!isTRUE(all.equal(map$to_theta(map$par), theta, tolerance = 1e-10))) {
          stop("lme4's covariance parameters do not reproduce the fit's theta")
        }
        at <- function(x) pieces(map$to_theta(x))
      } else {
        at <- pieces
      }
      derivs <- .lmm_sat_deriv12(at, x0)
      st <- .lmm_sat_stencil(at, x0, sigma, n, p, reml, derivs,
                             m = n - .lmm_sat_reml_field(fit, devfun))
      H <- st$hessian
      eig <- eigen(H, symmetric = TRUE)
      # lmerTest warns about eigenvalues within 1e-8 of zero or below, and drops
      # them: leave that case, its warnings included, to lmerTest itself.
      if (!all(is.finite(eig$values)) || any(eig$values <= 1e-8)) {
        stop(sprintf("Hessian of the deviance has eigenvalue %.3g (not positive)",
                     min(eig$values)))
      }
      vcov_varpar <- 2 * (eig$vectors %*% diag(1 / eig$values, nrow = length(eig$values)) %*%
                            t(eig$vectors))
      jac <- st$jac
      list(vcov_varpar = vcov_varpar, jac = jac, hessian = H)
    }, error = function(e) {
      reason <<- conditionMessage(e)
      NULL
    })
  }
  method <- "lmermagic"
  if (is.null(res)) {
    method <- "lmerTest-fallback"
    lt <- .lmm_sat_lmertest(fit, .lmm_sat_devfun_for_lmertest(engine, fit, map))
    res <- list(vcov_varpar = lt$vcov_varpar, jac = lt$jac, hessian = NULL)
  }

  ddf <- .lmm_sat_df_core(diag(p), vcov_beta, res$jac, res$vcov_varpar)
  se <- sqrt(diag(vcov_beta))
  tval <- beta / se
  pval <- 2 * stats::pt(abs(tval), df = ddf, lower.tail = FALSE)
  names(ddf) <- names(se) <- names(tval) <- names(pval) <- nms
  list(
    vcov_beta = vcov_beta,
    vcov_varpar = res$vcov_varpar,
    jac = res$jac,
    df = ddf,
    se = se,
    t = tval,
    p = pval,
    method = method,
    n_devfun_evals = as.integer(engine$n_evals),
    beta = beta,
    varpar = c(x0, sigma),           # theta, or lme4 2.x's par (cs/ar1 terms)
    hessian = res$hessian,           # of lmerTest's devfun_vp at varpar (NULL on fallback)
    derivs = derivs,                 # lme4's deriv12(devfun, theta) (NULL on fallback)
    fallback_reason = reason
  )
}
