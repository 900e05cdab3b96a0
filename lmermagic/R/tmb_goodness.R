# The pieces of a glmmTMB fit that tmb_goodness.py turns into Nakagawa &
# Schielzeth's R², the ICC and the model checks (the formulas are in Python).
# glmmTMB and stats only; the null model is fitted by lmm_tmb_call (tmb.R),
# with the fit's own allowlist. Conventions in toolbox/common.R.

# Johnson's (2014) variance of each random-effect term of the conditional
# model: the mean over observations of z_i' Sigma z_i, z_i the observation's
# row of the term's own columns of Z (level-major, q columns per level, the
# terms in cnms' order, as lme4's mkReTrms lays them out).
lmm_tmb_term_variances <- function(fit) {
    z <- glmmTMB::getME(fit, "Z")
    cnms <- fit$modelInfo$reTrms$cond$cnms
    flist <- fit$modelInfo$reTrms$cond$flist
    vc <- glmmTMB::VarCorr(fit)$cond
    if (length(vc) != length(cnms)) stop("VarCorr and the random-effect terms disagree")
    n <- nrow(z)
    start <- 0L
    out <- numeric(length(cnms))
    obs <- logical(length(cnms))
    for (k in seq_along(cnms)) {
        sigma <- as.matrix(vc[[k]])
        q <- length(cnms[[k]])
        f <- flist[[names(cnms)[[k]]]]
        level <- as.integer(f)
        cols <- start + rep((level - 1L) * q, each = q) + rep.int(seq_len(q), n)
        zk <- matrix(z[cbind(rep(seq_len(n), each = q), cols)], ncol = q, byrow = TRUE)
        out[k] <- mean(rowSums((zk %*% sigma) * zk))
        obs[k] <- nlevels(f) == n
        start <- start + q * nlevels(f)
    }
    list(variances = out, observation = obs,
         smallest = if (length(vc)) min(vapply(vc, function(s) min(abs(diag(as.matrix(s)))),
                                               0)) else NA_real_)
}

# The null model (insight::null_model's for glmmTMB): the response on the
# conditional model's random-effect terms (and its offset() terms); with a
# zero-inflation formula, that part reduced to its random-effect terms (or
# ~ 1) and a dispersion formula to ~ 1; the same family, weights and offset,
# on the rows the fit used.
lmm_tmb_null_fit <- function(fit, data, texts, opts, allowed) {
    null <- lmm_gf_null_formula(stats::as.formula(texts$cond))
    one_sided <- function(text) {
        b <- lmm_findbars(stats::as.formula(text))
        if (!length(b)) return("~ 1")
        paste("~", paste(vapply(b, function(x) paste0("(", lmm_tmb_deparse(x), ")"), ""),
                         collapse = " + "))
    }
    new <- list(cond = lmm_tmb_deparse(null), zi = texts$zi, disp = texts$disp)
    if (nzchar(texts$zi)) {
        new$zi <- one_sided(texts$zi)
        if (nzchar(texts$disp)) new$disp <- "~ 1"
    }
    dropped <- attr(stats::model.frame(fit), "na.action")
    if (length(dropped)) data <- data[-as.integer(dropped), , drop = FALSE]
    for (v in opts$factors) data[[v]] <- factor(data[[v]])
    todo <- lmm_tmb_call(data, new, opts, allowed)
    suppressWarnings(eval(todo$call, todo$env))
}

lmm_tmb_deparse <- function(x) paste(deparse(x, width.cutoff = 500L), collapse = " ")

# The number of trials of a cbind() response (1 otherwise), as insight.
lmm_tmb_trials <- function(fit) {
    y <- stats::model.response(stats::model.frame(fit))
    if (is.matrix(y) && ncol(y) > 1L) mean(rowSums(y, na.rm = TRUE)) else 1
}

lmm_tmb_goodness <- function(fit, data, texts, opts, allowed) {
    lmm_tb_run(function() {
        fam <- stats::family(fit)
        x <- glmmTMB::getME(fit, "X")
        eta <- as.vector(x %*% glmmTMB::fixef(fit)$cond)
        terms <- lmm_tmb_term_variances(fit)
        sig <- tryCatch(stats::sigma(fit), error = function(e) NA_real_)
        if (length(sig) != 1L || !is.null(fit$modelInfo$allForm$dispformula) &&
            length(all.vars(fit$modelInfo$allForm$dispformula)) > 0L) sig <- NA_real_
        zi <- length(glmmTMB::fixef(fit)$zi) > 0L
        power <- if (fam$family == "tweedie") {
            unname(stats::plogis(fit$fit$par[["psi"]]) + 1)
        } else NA_real_
        out <- list(family = fam$family, link = fam$link, nobs = length(eta),
                    var_fixed = if (length(eta) > 1L) stats::var(eta) else NA_real_,
                    var_random = sum(terms$variances[!terms$observation]),
                    var_observation = sum(terms$variances[terms$observation]),
                    smallest_variance = terms$smallest, sigma = as.numeric(sig),
                    zero_inflated = zi, trials = lmm_tmb_trials(fit),
                    tweedie_power = power, null_intercept = NA_real_,
                    null_var_random = NA_real_, zi_variance = NA_real_,
                    truncated_variance = NA_real_)
        if (zi && fam$family %in% c("poisson", "nbinom1", "nbinom2")) {
            # Zuur et al. (2012)'s variance of a zero-inflated count, averaged
            p <- stats::predict(fit, type = "zprob")
            mu <- stats::predict(fit, type = "conditional")
            pvar <- switch(fam$family,
                poisson = (1 - p) * (mu + p * mu^2),
                nbinom1 = (1 - p) * mu * (1 + sig) + mu^2 * (p^2 + p),
                nbinom2 = (1 - p) * mu * (1 + mu / sig) + mu^2 * (p^2 + p))
            out$zi_variance <- mean(pvar)
        }
        # the null model's random variance is used only where it is defined
        # (performance gives NA for a singular fit there)
        singular <- !is.finite(terms$smallest) || terms$smallest < 1e-8
        needs_null <- (fam$link == "log" && fam$family %in% c(
            "poisson", "nbinom1", "nbinom2", "tweedie") && !singular) ||
            (fam$link %in% c("log", "logit") && fam$family %in% c(
                "truncated_poisson", "truncated_nbinom2", "beta"))
        if (needs_null) {
            null <- lmm_tmb_null_fit(fit, data, texts, opts, allowed)
            nt <- lmm_tmb_term_variances(null)
            out$null_intercept <- unname(glmmTMB::fixef(null)$cond[[1L]])
            out$null_var_random <- sum(nt$variances[!nt$observation])
            if (startsWith(fam$family, "truncated_")) {
                mu0 <- exp(out$null_intercept)
                out$truncated_variance <- if (fam$family == "truncated_poisson")
                    fam$variance(mu0) else fam$variance(mu0, sig)
            }
        }
        out
    })
}

# The pieces of m.check() (tmb_checks.py computes the rows): the conditional
# model's variances, the optimizer's code and message, pdHess, the fixed
# effects' covariance and term layout (VIFs), Pearson residuals, the response,
# the fitted means and sigma.
lmm_tmb_check_pieces <- function(fit) {
    lmm_tb_run(function() {
        fam <- stats::family(fit)
        vc <- glmmTMB::VarCorr(fit)$cond
        mf <- stats::model.frame(fit)
        tt <- fit$modelInfo$reTrms$cond$terms$fixed
        x <- stats::model.matrix(tt, mf, contrasts.arg = fit$modelInfo$contrasts)
        labels <- attr(tt, "term.labels")
        term_df <- vapply(labels, function(lab) {
            col <- mf[[lab]]
            if (is.factor(col)) nlevels(col) - 1 else 1
        }, numeric(1))
        pearson <- tryCatch(unname(as.numeric(stats::residuals(fit, type = "pearson"))),
                            error = function(e) numeric())
        y <- stats::model.response(mf)
        bernoulli <- fam$family == "binomial" && !is.matrix(y) &&
            all(as.numeric(y) %in% c(0, 1)) && is.null(mf[["(weights)"]])
        if (is.factor(y)) y <- as.numeric(y) - 1
        if (is.matrix(y)) y <- y[, 1L]
        sig <- tryCatch(stats::sigma(fit), error = function(e) NA_real_)
        list(family = fam$family, link = fam$link,
             variances = if (length(vc)) unlist(lapply(vc, function(s) diag(as.matrix(s))),
                                                use.names = FALSE) else numeric(),
             code = as.integer(fit$fit$convergence),
             message = as.character(c(fit$fit$message, "")[1L]),
             pd_hess = isTRUE(fit$sdr$pdHess),
             vcov = unname(as.matrix(stats::vcov(fit)$cond)), coef_names = colnames(x),
             assign = as.integer(attr(x, "assign")), term_labels = as.character(labels),
             term_df = unname(term_df), interactions = any(attr(tt, "order") > 1L),
             df_residual = as.numeric(stats::df.residual(fit)), pearson = pearson,
             observed = unname(as.numeric(y)), bernoulli = bernoulli,
             mu = unname(as.numeric(stats::fitted(fit))),
             sigma = if (length(sig) == 1L) as.numeric(sig) else NA_real_)
    })
}
