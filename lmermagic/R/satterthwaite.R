# Satterthwaite degrees of freedom for lme4 linear mixed models, equal (to ~1e-8
# relative on the models tested) to what lmerTest computes, with far fewer
# deviance evaluations.
#
# This file is sys.source()d into a private environment: it only defines
# functions, never attaches packages and never writes to the global environment.
# Everything outside base R is called as pkg::fn or pkg:::fn.
#
# What lmerTest computes (lmerTest 3.1-3, as_lmerModLT / devfun_vp / get_covbeta /
# contest1D):
#   varpar      = c(theta, sigma) at the fit
#   D(varpar)   = ldL2 + pwrss / sigma^2 + n log(2 pi sigma^2)
#                 [REML: + log|RX|^2 - p log(2 pi sigma^2)]   (NOT profiled)
#   vcov_varpar = 2 * solve(hessian(D))      numDeriv, Richardson, ~82 evaluations
#   Jac_list    = jacobian of sigma^2 (RX'RX)^-1 in varpar   numDeriv, ~33 evaluations
#   df(L)       = 2 (L'VL)^2 / (g' vcov_varpar g),  g_i = L' Jac_i L
#
# What we do. One evaluation of lme4's deviance function at theta gives the
# theta-dependent pieces a(theta) = ldL2 (+ ldRX2 for REML), b(theta) = pwrss,
# U(theta) = (RX'RX)^-1 and, by the envelope theorem, the exact gradient of b
# (see .lmm_sat_point); from them D and vcov(beta) follow for EVERY sigma. So the
# sigma direction is analytic:
#   d2D/dsigma2        = 6 b / sigma^4 - 2 (n - p_REML) / sigma^2
#   d2D/dtheta dsigma  = -2 / sigma^3 * db/dtheta           (exact gradient)
#   d2D/dtheta2        = a'' + b'' / sigma^2
#   d vcov / dsigma    = 2 sigma U,     d vcov / dtheta = sigma^2 U'
# and only theta needs finite differences: a'' from second differences on the
# stencil theta +- h_i e_i, theta +- (h_i e_i + h_j e_j); b'' from central
# differences of the exact gradient of b (pwrss is the noisy part of D: on
# InstEval its rounding noise is ~1e-9, 50x that of a, and differencing it twice
# cost ~1e-6 in df); U' from central differences. Each at steps h and h/2,
# combined by one Richardson step (error O(h^4)). That is 1 + 2 k (k + 1)
# evaluations for k theta parameters (25 for k = 3; lmerTest needs ~115).
# Steps: 1% of the scale of each theta (.lmm_sat_steps).
#
# Accuracy. On every model tried the df are stable to ~3e-8 relative across step
# sizes 0.25%..4% and 2- or 3-level extrapolation. lmerTest's own numDeriv
# results are not that stable: on InstEval its df move by ~5e-7 when numDeriv's
# d / r settings change, and on models with small theta its Jacobian (steps of
# 1e-4 * theta) is noisy at ~1e-6. Agreement with lmerTest is therefore ~1e-8
# on small models and ~1e-6 at worst; a p-value of 1e-24 turns a 1e-6 df
# difference into ~5e-5 relative.
#
# Deviance function with its own copies of the fit's predictor and response
# modules (lme4's C++ code modifies them in place, so never share them with the
# fit). Same environment layout as lme4::mkLmerDevfun (pp, resp), so lmerTest's
# internals can use it too. Counts its calls in n_evals.
.lmm_sat_devfun_from_fit <- function(fit) {
  rho <- new.env(parent = baseenv())
  rho$pp <- fit@pp$copy()
  rho$resp <- fit@resp$copy()
  rho$lmer_Deviance <- lme4:::lmer_Deviance
  rho$n_evals <- 0L
  f <- function(theta) {
    n_evals <<- n_evals + 1L
    .Call(lmer_Deviance, pp$ptr(), resp$ptr(), as.double(theta))
  }
  environment(f) <- rho
  f
}

# Wrap a caller-supplied lme4 devfun so that its calls are counted, keeping pp
# and resp visible in environment(wrapper) as lmerTest expects.
.lmm_sat_wrap_devfun <- function(devfun) {
  e <- environment(devfun)
  if (is.null(e) || !inherits(e$pp, "merPredD") || !inherits(e$resp, "lmerResp")) {
    stop("'devfun' is not an lme4 lmer deviance function")
  }
  rho <- new.env(parent = baseenv())
  rho$pp <- e$pp
  rho$resp <- e$resp
  rho$inner <- devfun
  rho$n_evals <- 0L
  f <- function(theta) {
    n_evals <<- n_evals + 1L
    inner(theta)
  }
  environment(f) <- rho
  f
}

# Evaluate the deviance function at theta and read the pieces we need:
#   a  = ldL2 (+ ldRX2 for REML),  b = pwrss,  U = (RX'RX)^-1,
#   gb = d pwrss / d theta, analytic: pwrss(theta) = min_{u, beta} |W^1/2 (y - X beta
#        - Z Lambda(theta) u)|^2 + |u|^2, so by the envelope theorem
#        d pwrss / d theta_j = -2 (Z' W^1/2 wtres)' (dLambda/dtheta_j) u
#        at the minimiser (u, beta): no cancellation, unlike differences of pwrss.
# lam describes where theta sits in Lambdat (.lmm_sat_lambda_index).
.lmm_sat_point <- function(devfun, theta, reml, lam) {
  dev <- devfun(theta)
  e <- environment(devfun)
  pp <- e$pp
  resp <- e$resp
  a <- pp$ldL2()
  if (reml) a <- a + pp$ldRX2()
  # resp$wtres is overwritten in place by the next evaluation: use it now.
  zw <- as.vector(pp$Zt %*% (resp$wtres * resp$sqrtXwt))
  u <- pp$u(1)
  # Lambdat[i, c] = theta[Lind] and b = Lambdat' u, so d b[c] / d theta_j sums
  # u[i] over the entries of theta_j in column c.
  gb <- -2 * as.vector(rowsum(zw[lam$col] * u[lam$row], lam$Lind, reorder = TRUE))
  RXi <- as.matrix(pp$RXi())
  list(dev = dev, a = a, b = resp$wrss() + pp$sqrL(1), gb = gb, U = tcrossprod(RXi))
}

# Row, column (1-based) and theta index of every stored entry of Lambdat.
.lmm_sat_lambda_index <- function(devfun) {
  pp <- environment(devfun)$pp
  Lt <- pp$Lambdat
  Lind <- as.integer(pp$Lind)
  stopifnot(length(Lind) == length(Lt@x), setequal(Lind, seq_along(pp$theta)))
  list(row = Lt@i + 1L, col = rep.int(seq_len(ncol(Lt)), diff(Lt@p)), Lind = Lind)
}

# Step sizes. theta_j is an entry of the relative covariance factor Lambda; the
# deviance depends on Lambda Lambda', so theta_j varies on the scale of the norm
# of its row of Lambda (the relative SD of that random effect), which is |theta_j|
# for a scalar random effect but can be much larger than a small off-diagonal
# entry. Floor near zero (boundary fits): 0.1 times the natural unit of the
# random effect, 1 / (RMS of its Z entries) -- 1 for random intercepts, small for
# slopes of covariates with large values.
.lmm_sat_steps <- function(devfun, theta, d, lam) {
  pp <- environment(devfun)$pp
  Zt <- pp$Zt
  q <- nrow(Zt)
  # Lambdat[i, c] is Lambda[c, i]: an entry of row c of Lambda, which scales Z column c
  rownorm <- sqrt(as.vector(tapply(theta[lam$Lind]^2, factor(lam$col, levels = seq_len(q)), sum,
                                   default = 0)))
  ssq <- Matrix::rowSums(Zt^2)
  nnz <- tabulate(Zt@i + 1L, nbins = q)
  rms <- sqrt(ssq / pmax(nnz, 1L))
  vapply(seq_along(theta), function(j) {
    r <- lam$col[lam$Lind == j]
    z <- rms[r]
    z <- z[is.finite(z) & z > 0]
    unit <- if (length(z)) 1 / sqrt(mean(z^2)) else 1
    d * max(abs(theta[j]), rownorm[r], 0.1 * unit)
  }, numeric(1L))
}

# Finite-difference derivatives in theta at one step vector h, reusing the base
# point p0. Hessian of a: second differences on theta +- h_i e_i and
# theta +- (h_i e_i + h_j e_j). Hessian of b: central differences of its analytic
# gradient. Derivatives of U: central differences.
.lmm_sat_fd <- function(devfun, theta, h, reml, p0, lam) {
  k <- length(theta)
  at <- function(x) .lmm_sat_point(devfun, x, reml, lam)
  fp <- fm <- vector("list", k)
  for (i in seq_len(k)) {
    x <- theta; x[i] <- theta[i] + h[i]; fp[[i]] <- at(x)
    x <- theta; x[i] <- theta[i] - h[i]; fm[[i]] <- at(x)
  }
  Ha <- Hb <- matrix(0, k, k)
  dU <- vector("list", k)
  for (i in seq_len(k)) {
    Ha[i, i] <- (fp[[i]]$a - 2 * p0$a + fm[[i]]$a) / h[i]^2
    Hb[, i] <- (fp[[i]]$gb - fm[[i]]$gb) / (2 * h[i])
    dU[[i]] <- (fp[[i]]$U - fm[[i]]$U) / (2 * h[i])
  }
  Hb <- (Hb + t(Hb)) / 2
  for (i in seq_len(k)) {
    for (j in seq_len(i - 1L)) {
      x <- theta; x[c(i, j)] <- theta[c(i, j)] + h[c(i, j)]; pp_ <- at(x)
      x <- theta; x[c(i, j)] <- theta[c(i, j)] - h[c(i, j)]; mm <- at(x)
      Ha[i, j] <- Ha[j, i] <- (pp_$a - fp[[i]]$a - fp[[j]]$a + 2 * p0$a -
                                 fm[[i]]$a - fm[[j]]$a + mm$a) / (2 * h[i] * h[j])
    }
  }
  list(Ha = Ha, Hb = Hb, dU = dU)
}

# Hessian of lmerTest's devfun_vp in (theta, sigma) and Jacobian list of
# vcov(beta), from finite-difference pieces in theta.
.lmm_sat_assemble <- function(fd, p0, sigma, neff) {
  k <- nrow(fd$Ha)
  H <- matrix(0, k + 1L, k + 1L)
  H[seq_len(k), seq_len(k)] <- fd$Ha + fd$Hb / sigma^2
  H[seq_len(k), k + 1L] <- H[k + 1L, seq_len(k)] <- -2 / sigma^3 * p0$gb
  H[k + 1L, k + 1L] <- 6 * p0$b / sigma^4 - 2 * neff / sigma^2
  jac <- c(lapply(fd$dU, function(m) sigma^2 * m), list(2 * sigma * p0$U))
  list(H = H, jac = jac)
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
# force_fallback: compute exactly as lmerTest does (for checking).
# Returns list(vcov_beta, vcov_varpar, jac, df, se, t, p, method,
#   n_devfun_evals, beta, varpar, hessian, fd_discrepancy, fallback_reason);
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
  neff <- n - if (reml) p else 0L
  crit <- unname(fit@devcomp$cmp[[if (reml) "REML" else "dev"]])
  same_crit <- function(v) is.finite(v) && abs(v - crit) <= 1e-8 * max(1, abs(crit))

  # The deviance function. A caller's devfun (e.g. from lme4's modular API) is
  # used as is, and put back at the theta it was at (the optimum, normally)
  # afterwards, since it may share its state with the fit.
  df_fun <- NULL
  if (!is.null(devfun)) {
    df_fun <- .lmm_sat_wrap_devfun(devfun)
    theta_before <- as.numeric(environment(df_fun)$pp$theta) + 0
    on.exit(devfun(theta_before), add = TRUE)
  } else {
    df_fun <- .lmm_sat_devfun_from_fit(fit)
  }
  lam <- .lmm_sat_lambda_index(df_fun)
  p0 <- .lmm_sat_point(df_fun, theta, reml, lam)
  if (!same_crit(p0$dev) && !is.null(devfun)) {
    warning("'devfun' does not reproduce the fit's criterion; using one built from the fit")
    extra <- environment(df_fun)$n_evals
    df_fun <- .lmm_sat_devfun_from_fit(fit)
    environment(df_fun)$n_evals <- extra
    lam <- .lmm_sat_lambda_index(df_fun)
    p0 <- .lmm_sat_point(df_fun, theta, reml, lam)
  }
  n_evals <- function() environment(df_fun)$n_evals

  method <- "lmermagic"
  reason <- NULL
  res <- tryCatch({
    if (isTRUE(force_fallback)) stop("fallback requested")
    if (!same_crit(p0$dev)) stop("deviance function does not reproduce the fit")
    h <- .lmm_sat_steps(df_fun, theta, 0.01, lam)
    fd1 <- .lmm_sat_fd(df_fun, theta, h, reml, p0, lam)
    fd2 <- .lmm_sat_fd(df_fun, theta, h / 2, reml, p0, lam)
    rich <- function(x1, x2) (4 * x2 - x1) / 3
    fd <- list(Ha = rich(fd1$Ha, fd2$Ha), Hb = rich(fd1$Hb, fd2$Hb),
               dU = Map(rich, fd1$dU, fd2$dU))
    A <- .lmm_sat_assemble(fd, p0, sigma, neff)
    A2 <- .lmm_sat_assemble(fd2, p0, sigma, neff)
    H <- A$H
    if (!all(is.finite(H)) || !all(vapply(A$jac, function(m) all(is.finite(m)), TRUE))) {
      stop("non-finite derivatives")
    }
    ev <- eigen(H, symmetric = TRUE, only.values = TRUE)$values
    # lmerTest drops eigenvalues below 1e-8 (and warns): stay well clear of that.
    if (min(ev) < 1e-6) stop(sprintf("Hessian eigenvalue %.3g not clearly positive", min(ev)))
    if (max(ev) / min(ev) > 1e10) stop("Hessian ill-conditioned")
    vcov_varpar <- 2 * solve(H)
    vcov_varpar <- (vcov_varpar + t(vcov_varpar)) / 2
    # Consistency of the two step sizes: the Richardson correction must be small
    # (it is ~1e-5 relative on well-behaved models).
    I <- diag(p)
    d_rich <- .lmm_sat_df_core(I, vcov_beta, A$jac, vcov_varpar)
    d_half <- .lmm_sat_df_core(I, vcov_beta, A2$jac, 2 * solve(A2$H))
    if (!all(is.finite(d_rich)) || any(d_rich <= 0)) stop("non-positive df")
    disc <- if (p > 0L) max(abs(d_half / d_rich - 1)) else 0
    if (!is.finite(disc) || disc > 1e-3) {
      stop(sprintf("finite-difference levels disagree (%.2g)", disc))
    }
    list(vcov_varpar = vcov_varpar, jac = A$jac, hessian = H, disc = disc)
  }, error = function(e) {
    reason <<- conditionMessage(e)
    NULL
  })
  if (is.null(res)) {
    method <- "lmerTest-fallback"
    lt <- .lmm_sat_lmertest(fit, df_fun)
    res <- list(vcov_varpar = lt$vcov_varpar, jac = lt$jac, hessian = NULL, disc = NA_real_)
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
    n_devfun_evals = as.integer(n_evals()),
    beta = beta,
    varpar = c(theta, sigma),
    hessian = res$hessian,           # of lmerTest's devfun_vp at varpar (NULL on fallback)
    fd_discrepancy = res$disc,       # max rel. df change from the Richardson step
    fallback_reason = reason
  )
}
