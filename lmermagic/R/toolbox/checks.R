# The R half of toolbox/checks.py: the raw pieces of a fit that m.check()
# needs, and responses simulated from the fit. Every statistic (VIF, dispersion,
# zero counts, the scaled residuals and their tests) is computed in Python from
# these pieces; R only extracts and simulates.

# The fit's pieces: the convergence derivatives lme4 kept, the fixed effects'
# covariance and term layout (for the VIFs), Pearson residuals and the
# residual df (overdispersion), the response and the conditional fitted values
# (zero counts), the population-level predictions (DHARMa's
# fittedPredictedResponse: predict(type = "response", re.form = ~0)).
lmm_tb_check_pieces <- function(fit) {
    lmm_tb_run(function() {
        derivs <- fit@optinfo$derivs
        fam <- stats::family(fit)
        X <- lme4::getME(fit, "X")
        tt <- stats::terms(fit, fixed.only = TRUE)
        labels <- attr(tt, "term.labels")
        mf <- stats::model.frame(fit)
        # performance's VIF_adjusted: a term that is one factor variable counts
        # its levels - 1 as df; every other term counts 1.
        term_df <- vapply(labels, function(lab) {
            col <- mf[[lab]]
            if (is.factor(col)) nlevels(col) - 1 else 1
        }, numeric(1))
        V <- as.matrix(stats::vcov(fit))
        theta <- if (lme4::isGLMM(fit) && grepl("^Negative Binomial", fam$family))
            lme4::getME(fit, "glmer.nb.theta") else NA_real_
        list(family = fam$family, link = fam$link,
             singular = lme4::isSingular(fit),
             gradient = if (is.null(derivs)) NULL else as.numeric(derivs$gradient),
             hessian = if (is.null(derivs)) NULL else unname(as.matrix(derivs$Hessian)),
             vcov = unname(V), coef_names = colnames(X),
             assign = as.integer(attr(X, "assign")),
             term_labels = as.character(labels), term_df = unname(term_df),
             interactions = any(attr(tt, "order") > 1L),
             nobs = as.integer(stats::nobs(fit)),
             df_residual = as.numeric(stats::df.residual(fit)),
             pearson = unname(as.numeric(stats::residuals(fit, type = "pearson"))),
             mu = unname(as.numeric(stats::fitted(fit))),
             nb_theta = as.numeric(theta),
             observed = lmm_tb_check_observed(fit),
             bernoulli = lmm_tb_check_bernoulli(fit),
             predicted = unname(as.numeric(stats::predict(fit, type = "response",
                                                          re.form = NA))))
    })
}

# The response as DHARMa reads it (getObservedResponse): a factor as 0/1, the
# successes of a cbind() response, a proportion times its binomial weights.
lmm_tb_check_observed <- function(fit) {
    mf <- stats::model.frame(fit)
    y <- mf[[1L]]
    if (is.factor(y)) y <- as.numeric(y) - 1
    if (stats::family(fit)$family == "binomial" && "(weights)" %in% names(mf))
        y <- y * mf[["(weights)"]]
    if (is.matrix(y)) y <- if (ncol(y) == 2L) y[, 1L] else as.vector(y)
    unname(as.numeric(y))
}

# A binomial model with one trial per row (insight's is_bernoulli): no
# overdispersion test there.
lmm_tb_check_bernoulli <- function(fit) {
    if (stats::family(fit)$family != "binomial") return(FALSE)
    mf <- stats::model.frame(fit)
    y <- mf[[1L]]
    if (is.matrix(y)) return(FALSE)
    w <- if ("(weights)" %in% names(mf)) mf[["(weights)"]] else 1
    if (is.factor(y)) y <- as.numeric(y) - 1
    all(y %in% c(0, 1)) && all(w == 1)
}

# nsim responses simulated from the fit with R's default generators seeded
# with seed (conditional: on the fitted random effects, re.form = NULL, as
# DHARMa >= 0.5.0 by default; else re.form = NA, lme4's and DHARMa 0.4's
# default), laid out as DHARMa's getSimulations() lays them out (successes of
# a binomial response), and R's random state after the simulation, from which
# Python continues the same stream for the residuals' randomisation. data,
# opts: the model's data and options (common.R's lmm_tb_prepare).
lmm_tb_check_simulate <- function(fit, data, opts, nsim, seed, conditional) {
    lmm_tb_run(function() {
        # conditional simulation predicts from the data the call names
        # (lme4's .simulateFun): the prepared copy can find it
        fit <- lmm_tb_prepare(fit, data, opts)
        lmm_tb_with_seed(seed, function() {
            set.seed(seed, kind = "Mersenne-Twister", normal.kind = "Inversion",
                     sample.kind = "Rejection")
            sims <- stats::simulate(fit, nsim = nsim,
                                    re.form = if (conditional) NULL else NA)
            state <- get(".Random.seed", envir = globalenv(), inherits = FALSE)
            list(sims = lmm_tb_check_layout(fit, sims, nsim), state = as.integer(state))
        })
    })
}

lmm_tb_check_layout <- function(fit, sims, nsim) {
    if (stats::family(fit)$family == "binomial") {
        if (is.factor(sims[[1L]])) sims <- data.matrix(sims) - 1
        mf <- stats::model.frame(fit)
        if ("(weights)" %in% names(mf)) {
            sims <- sims * mf[["(weights)"]]
        } else if (is.matrix(sims[[1L]])) {
            sims <- as.matrix(sims)[, seq(1L, 2L * nsim, by = 2L)]
        }
    }
    out <- if (is.matrix(sims)) sims else data.matrix(sims)
    dimnames(out) <- NULL
    storage.mode(out) <- "double"
    out
}
