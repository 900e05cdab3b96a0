# The derivatives behind the Satterthwaite df (satterthwaite.R): lme4's own
# deriv12 on the engine's cached deviance evaluations, then the Richardson
# stencil giving lmerTest's Hessian in (theta, sigma) and the Jacobian of
# vcov(beta). Sourced into the same private environment as satterthwaite.R;
# only defines functions.

# lmerTest's deviance D(varpar) from the pieces (tests' numerical reference).
.lmm_sat_dev_vp <- function(pieces, n, p, reml, m = if (reml) n - p else n) {
  np <- if (reml) n - p else n
  function(varpar) {
    k <- length(varpar)
    sigma2 <- varpar[k]^2
    v <- pieces(varpar[-k])
    v$pwrss / sigma2 + np * log(2 * pi * sigma2) + v$dev - m * (1 + log(2 * pi * v$pwrss / m))
  }
}

# lme4's derivs (stencil 1), then H and the Jacobian (stencil 2; see the header).
.lmm_sat_deriv12 <- function(pieces, theta) {
  get("deriv12", envir = asNamespace("lme4"))(function(th) pieces(th)$dev, theta)
}
# m: the number lme4's criterion divides pwrss by, n - resp$REML (lme4's own
# fits: n - p or n; refit() of a REML fit leaves REML = 1, so n - 1 there).
.lmm_sat_stencil <- function(pieces, theta, sigma, n, p, reml, d12, scale = 0.02,
                             m = if (reml) n - p else n) {
  k <- length(theta)
  hd <- diag(d12$Hessian)
  if (!all(is.finite(hd)) || any(hd <= 0)) {
    stop(sprintf("lme4's Hessian has diagonal %s (not positive)", format(min(hd), digits = 3)))
  }
  h <- scale / sqrt(hd)
  c0 <- pieces(theta)
  # Richardson of central differences along v at steps v and 2v
  along <- function(v) {
    f <- lapply(c(-2, -1, 1, 2), function(t) pieces(theta + t * v))
    d2 <- function(get) (16 * (get(f[[2]]) + get(f[[3]])) - (get(f[[1]]) + get(f[[4]])) -
                           30 * get(c0)) / 12
    list(d2 = c(d2(function(x) x$dev), d2(function(x) x$pwrss)),
         d1 = function(get) (8 * (get(f[[3]]) - get(f[[2]])) - (get(f[[4]]) - get(f[[1]]))) / 12)
  }
  # H: the profiled deviance's Hessian; Hp: the penalized weighted RSS's.
  H <- Hp <- matrix(0, k, k)
  gp <- numeric(k)
  jac <- vector("list", k + 1L)
  for (i in seq_len(k)) {
    a <- along(h[i] * (seq_len(k) == i))
    H[i, i] <- a$d2[1L] / h[i]^2
    Hp[i, i] <- a$d2[2L] / h[i]^2
    gp[i] <- a$d1(function(x) x$pwrss) / h[i]
    jac[[i]] <- sigma^2 * a$d1(function(x) x$U) / h[i]
  }
  for (j in seq_len(k)) for (i in seq_len(j - 1L)) {
    v <- numeric(k)
    v[c(i, j)] <- h[c(i, j)]
    a <- along(v)
    H[i, j] <- H[j, i] <- (a$d2[1L] - H[i, i] * h[i]^2 - H[j, j] * h[j]^2) / (2 * h[i] * h[j])
    Hp[i, j] <- Hp[j, i] <- (a$d2[2L] - Hp[i, i] * h[i]^2 - Hp[j, j] * h[j]^2) /
      (2 * h[i] * h[j])
  }
  np <- if (reml) n - p else n
  # lmerTest's deviance at (theta, sigma) is the profiled one's log-determinant
  # part plus pwrss / sigma^2 + np log(2 pi sigma^2). Its theta block is then
  # H - m (Hp / pwrss - gp gp' / pwrss^2) + Hp / sigma^2 (m: the criterion's
  # divisor), which is H + gp gp' / (np sigma^4) only where m = np and sigma^2 =
  # pwrss / np. lme4's refit() of a REML fit leaves m = n - 1 (its response
  # module's REML = 1), so take the general form.
  pw <- c0$pwrss
  Htt <- H - m * (Hp / pw - tcrossprod(gp) / pw^2) + Hp / sigma^2
  Hf <- rbind(cbind(Htt, -2 * gp / sigma^3),
              c(-2 * gp / sigma^3, 6 * pw / sigma^4 - 2 * np / sigma^2))
  jac[[k + 1L]] <- 2 * sigma * c0$U
  list(hessian = Hf, jac = jac)
}

# lme4's response module's REML: p for lme4's REML fits, 0 for ML, 1 after
# refit() of a REML fit (its criterion then divides by n - 1).
.lmm_sat_reml_field <- function(fit, devfun = NULL) {
  resp <- if (is.null(devfun)) fit@resp else environment(devfun)$resp
  out <- tryCatch(as.integer(resp$REML), error = function(e) NA_integer_)
  if (length(out) != 1L || is.na(out)) {
    out <- if (lme4::isREML(fit)) length(lme4::fixef(fit)) else 0L
  }
  out
}
