# The pieces of Nakagawa & Schielzeth's R² and of the ICC (the R half of
# toolbox/goodness.py, which holds the formulas). R computes what needs the
# fit's matrices, from lme4 alone: the variance of the fixed-effect
# predictions, each random-effect term's variance by Johnson's (2014) trace,
# the singularity test, the scale, and -- for log-link count families only --
# the intercept and random-effect variance of the null model. Conventions in
# common.R.

# The singularity test that decides whether random-effect variances are used:
# a variance parameter on its boundary (|theta| below this, where the lower
# bound is 0), the tolerance performance::r2_nakagawa() and icc() use.
.lmm_gf_tolerance <- 1e-8

# Johnson's variance of each random-effect term: the mean over observations of
# z_i' Sigma z_i, with z_i the observation's row of the term's own model matrix.
# lme4's Zt holds these rows level by level: q rows per level of the term's
# grouping factor, so z_i is read from the q rows of observation i's level.
lmm_gf_term_variances <- function(fit) {
    zt <- lme4::getME(fit, "Zt")
    gp <- lme4::getME(fit, "Gp")
    cnms <- lme4::getME(fit, "cnms")
    flist <- lme4::getME(fit, "flist")
    vc <- lme4::VarCorr(fit)
    n <- ncol(zt)
    if (length(vc) != length(cnms)) stop("VarCorr and the random-effect terms disagree")
    vapply(seq_along(cnms), function(k) {
        sigma <- as.matrix(vc[[k]])
        q <- length(cnms[[k]])
        if (!identical(dim(sigma), c(q, q))) stop("unexpected covariance matrix shape")
        level <- as.integer(flist[[names(cnms)[[k]]]])
        rows <- gp[[k]] + rep((level - 1L) * q, each = q) + rep.int(seq_len(q), n)
        z <- matrix(zt[cbind(rows, rep(seq_len(n), each = q))], ncol = q, byrow = TRUE)
        mean(rowSums((z %*% sigma) * z))
    }, numeric(1))
}

# Terms whose grouping factor has a level per observation: observation-level
# random effects, which Nakagawa et al. count as (additive) dispersion.
lmm_gf_observation_terms <- function(fit) {
    n <- ncol(lme4::getME(fit, "Zt"))
    levels <- vapply(lme4::getME(fit, "flist"), nlevels, 1L)
    unname(levels[names(lme4::getME(fit, "cnms"))] == n)
}

lmm_gf_singular <- function(fit) {
    theta <- lme4::getME(fit, "theta")
    lower <- lme4::getME(fit, "lower")[seq_along(theta)]
    any(abs(theta[lower == 0]) < .lmm_gf_tolerance)
}

# The null model's formula (lme4's and glmmTMB's): the response on the
# formula's offset() terms and random-effect terms, or on 1 where it has none.
lmm_gf_null_formula <- function(formula) {
    keep <- list()
    collect <- function(e) {
        if (is.call(e) && identical(e[[1L]], as.name("+"))) {
            for (a in as.list(e)[-1L]) collect(a)
        } else if (is.call(e) && identical(e[[1L]], as.name("offset"))) {
            keep[[length(keep) + 1L]] <<- e
        }
    }
    fixed <- lmm_nobars(formula)
    if (length(fixed) == 3L) collect(fixed[[3L]])
    bars <- lapply(lmm_findbars(formula), function(b) call("(", b))
    rhs <- c(keep, bars)
    null <- formula
    null[[3L]] <- if (length(rhs)) Reduce(function(a, b) call("+", a, b), rhs) else 1
    null
}

# The null model of a fit: the same random-effect terms (and offset() terms)
# with an intercept only, fitted by the same lme4 call on the rows the fit used.
# A negative binomial model's null model keeps the model's theta (glmer with
# that negative.binomial family), as performance's does: re-running glmer.nb
# would estimate another theta.
lmm_gf_null_fit <- function(fit, formula, data, opts) {
    null <- lmm_gf_null_formula(formula)
    dropped <- attr(stats::model.frame(fit), "na.action")
    if (length(dropped)) data <- data[-as.integer(dropped), , drop = FALSE]
    nb <- identical(opts$kind, "glmer.nb")
    if (nb) opts <- utils::modifyList(opts, list(kind = "glmer", family = "poisson",
                                                 link = "log"))
    todo <- lmm_fit_call(data, null, opts)
    if (nb) {
        todo$env$family <- MASS::negative.binomial(theta = lme4::getME(fit, "glmer.nb.theta"))
    }
    eval(todo$call, todo$env)
}

# The pieces goodness.py needs. null_fit: a function of no argument returning
# the null model, called only for log-link Poisson and negative binomial fits
# that are not singular (the only ones whose distribution variance needs it).
lmm_gf_pieces <- function(fit, null_fit) {
    fam <- stats::family(fit)
    family <- if (startsWith(fam$family, "Negative Binomial")) "negative_binomial"
              else fam$family
    x <- lme4::getME(fit, "X")
    eta <- as.vector(x %*% lme4::fixef(fit))
    terms <- lmm_gf_term_variances(fit)
    obs <- lmm_gf_observation_terms(fit)
    singular <- lmm_gf_singular(fit)
    y <- stats::model.response(stats::model.frame(fit))
    out <- list(
        family = family, link = fam$link, nobs = length(eta),
        var_fixed = if (length(eta) > 1L) stats::var(eta) else NA_real_,
        var_random = sum(terms[!obs]), var_observation = sum(terms[obs]),
        singular = singular, sigma = stats::sigma(fit),
        nb_theta = if (family == "negative_binomial") lme4::getME(fit, "glmer.nb.theta")
                   else NA_real_,
        trials = if (is.matrix(y) && ncol(y) > 1L) mean(rowSums(y, na.rm = TRUE)) else 1,
        null_intercept = NA_real_, null_var_random = NA_real_)
    if (family %in% c("poisson", "negative_binomial") && fam$link == "log" && !singular) {
        null <- null_fit()
        null_terms <- lmm_gf_term_variances(null)
        out$null_intercept <- unname(lme4::fixef(null)[[1L]])
        out$null_var_random <- sum(null_terms[!lmm_gf_observation_terms(null)])
    }
    out
}

lmm_tb_goodness <- function(fit, data, opts) {
    lmm_tb_run(function() {
        lmm_gf_pieces(fit, function() lmm_gf_null_fit(fit, stats::formula(fit), data, opts))
    })
}
