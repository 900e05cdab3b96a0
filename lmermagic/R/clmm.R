# Ordinal mixed models with ordinal::clmm (the R half of clmm_fit.py and
# clmm_tools.py). sys.source()d by rbridge.py, with every file of R/, into one
# private environment whose parent is baseenv() (see rbridge.R): ordinal is
# called through its namespace, never attached.

# The links and threshold structures ordinal::clmm takes; Python checks the
# same lists (clmm_request.LINKS, clmm_request.THRESHOLDS) before R sees a name.
lmm_clmm_links <- c("logit", "probit", "cloglog", "loglog", "cauchit")
lmm_clmm_thresholds <- c("flexible", "symmetric", "symmetric2", "equidistant")

lmm_clmm_version <- function() {
    if (nzchar(system.file(package = "ordinal")))
        as.character(utils::packageVersion("ordinal")) else NA_character_
}

# lmm_check_formula's answer plus the response, when it is a bare column name
# (lhs; "" for an expression), and whether the formula has a random term.
lmm_clmm_check <- function(text, columns, allowed) {
    chk <- lmm_check_formula(text, columns, allowed)
    if (!identical(chk$kind, "tree")) return(chk)
    f <- parse(text = text, keep.source = FALSE)[[1L]]
    chk$lhs <- if (is.symbol(f[[2L]])) as.character(f[[2L]]) else ""
    chk$bars <- length(lmm_findbars(f)) > 0L
    chk
}

# Plain-word checks before ordinal runs (class "lmm_preflight", as fitting.R's).
lmm_clmm_preflight <- function(formula, data) {
    env <- environment(formula)
    vars <- intersect(all.vars(formula), names(data))
    complete <- stats::complete.cases(data[vars])
    if (!any(complete)) {
        lmm_stop("no complete rows: every row has a missing value in a column the model uses.")
    }
    rows <- data[complete, , drop = FALSE]
    y <- eval(formula[[2L]], rows, env)
    if (!is.ordered(y)) {
        lmm_stop(paste0("the response '%s' is %s, not an ordered factor; clmm models ",
                        "ordered categories. Give an ordered pandas Categorical ",
                        "(pd.Categorical(values, categories=[...], ordered=True)) or ",
                        "write ordered(x, levels = c(...)) in the formula."),
                 lmm_label(formula[[2L]]),
                 if (is.factor(y)) "an unordered factor" else paste("of class", class(y)[1L]))
    }
    if (length(unique(y)) < 2L) {
        lmm_stop("the response '%s' takes only one value in the complete rows.",
                 lmm_label(formula[[2L]]))
    }
    bars <- lmm_findbars(formula)
    if (!length(bars)) {
        lmm_stop(paste0("the formula has no random-effect term such as (1 | group); ",
                        "clmm is a mixed model (ordinal::clm fits one without)."))
    }
    for (bar in bars) {
        g <- eval(bar[[3L]], rows, env)
        if (length(unique(g)) < 2L) {
            lmm_stop(paste0("the grouping factor '%s' has only one level in the complete ",
                            "rows; a random effect needs at least two groups."),
                     lmm_label(bar[[3L]]))
        }
    }
    invisible(NULL)
}

# opts: link, threshold (checked against the lists above).
lmm_clmm_fit <- function(data, formula_text, opts, allowed) {
    res <- lmm_with_conditions(function() {
        if (!(opts$link %in% lmm_clmm_links)) stop("unknown link")
        if (!(opts$threshold %in% lmm_clmm_thresholds)) stop("unknown threshold")
        formula <- lmm_make_formula(formula_text, names(data), allowed)
        lmm_clmm_preflight(formula, data)
        fitenv <- new.env(parent = baseenv())
        fitenv$formula <- formula
        fitenv$data <- data
        # clmm evaluates its model.frame() call in its caller's frame
        fitenv$model.frame <- stats::model.frame
        cl <- call("clmm", formula = quote(formula), data = quote(data),
                   link = opts$link, threshold = opts$threshold)
        cl[[1L]] <- quote(ordinal::clmm)
        t0 <- Sys.time()
        fit <- eval(cl, fitenv)
        t1 <- Sys.time()
        # summary() and anova() show the formula itself, not the symbol.
        fit$call$formula <- formula
        tables <- lmm_clmm_tables(fit)
        tables$meta <- list(r_fit_seconds = as.numeric(difftime(t1, t0, units = "secs")))
        tables$na_counts <- vapply(data, function(v) sum(is.na(v)), 1L)
        list(fit = fit, data = data, tables = tables)
    })
    lmm_fit_outcome(res)
}

# R's coefficient matrix rows as the columns Python reads (Wald z, 95 %).
lmm_clmm_coef_list <- function(ct) {
    z <- stats::qnorm(0.975)
    est <- unname(ct[, 1L]); se <- unname(ct[, 2L])
    list(terms = rownames(ct), estimate = est, std_error = se,
         statistic = unname(ct[, 3L]), p_value = unname(ct[, 4L]),
         conf_low = est - z * se, conf_high = est + z * se)
}

lmm_clmm_tables <- function(fit) {
    s <- summary(fit)  # ordinal's summary.clmm: Wald z tests and condHess
    ct <- stats::coef(s)
    na <- length(fit$alpha)
    vc <- ordinal::VarCorr(fit)
    re <- ordinal::ranef(fit, condVar = TRUE)
    dropped <- attr(fit$model, "na.action")
    list(
        coefs = lmm_clmm_coef_list(ct[-seq_len(na), , drop = FALSE]),
        thresholds = lmm_clmm_coef_list(ct[seq_len(na), , drop = FALSE]),
        varcorr = lmm_clmm_varcorr(vc),
        ranef = lapply(re, function(d) list(values = as.matrix(d), levels = rownames(d),
                                            terms = colnames(d),
                                            condvar = as.matrix(attr(d, "condVar")))),
        theta = unname(as.numeric(fit$Theta)),
        y_levels = as.character(fit$y.levels),
        fitted = unname(as.numeric(stats::fitted(fit))),
        dropped = if (is.null(dropped)) integer() else as.integer(dropped),
        nobs = as.integer(stats::nobs(fit)),
        ngroups = as.list(fit$dims$nlev.gf),
        loglik = as.numeric(fit$logLik),
        edf = as.integer(fit$edf),
        aic = stats::AIC(fit),
        bic = stats::BIC(fit),
        cond_h = as.numeric(s$condHess),
        max_grad = max(abs(fit$gradient)),
        neval = as.integer(c(fit$neval, NA)[1L]),
        niter_inner = as.integer(c(fit$Niter, NA)[1L]),
        opt_code = as.integer(c(fit$optRes$convergence, 0L)[1L]),
        link = as.character(fit$link),
        threshold = as.character(fit$threshold)
    )
}

# VarCorr(clmm): per group a covariance matrix -> lme4's long layout (group,
# var1, var2, vcov, sdcor): variances first, then covariances (correlations
# in sdcor) in lme4's order; clmm has no residual row.
lmm_clmm_varcorr <- function(vc) {
    out <- list(group = character(), var1 = character(), var2 = character(),
                vcov = numeric(), sdcor = numeric())
    for (g in names(vc)) {
        v <- as.matrix(vc[[g]])
        tn <- colnames(v)
        sd <- sqrt(diag(v))
        k <- length(tn)
        out$group <- c(out$group, rep(g, k))
        out$var1 <- c(out$var1, tn)
        out$var2 <- c(out$var2, rep(NA_character_, k))
        out$vcov <- c(out$vcov, unname(diag(v)))
        out$sdcor <- c(out$sdcor, unname(sd))
        if (k > 1L) for (j in seq_len(k - 1L)) for (i in (j + 1L):k) {
            out$group <- c(out$group, g)
            out$var1 <- c(out$var1, tn[j])
            out$var2 <- c(out$var2, tn[i])
            out$vcov <- c(out$vcov, unname(v[i, j]))
            out$sdcor <- c(out$sdcor, unname(v[i, j] / (sd[i] * sd[j])))
        }
    }
    out
}

# Category probabilities for newdata with every random effect at zero:
# P(Y <= j) = F(theta_j - x'beta) with F the link's distribution function,
# as ordinal's predict.clm(type = "prob") computes them for a clm with the
# clmm's thresholds and location effects. Rows with a missing predictor get NA.
lmm_clmm_cdf <- function(link) {
    switch(link,
           logit = stats::plogis, probit = stats::pnorm, cauchit = stats::pcauchy,
           cloglog = function(x) -expm1(-exp(x)),  # 1 - exp(-exp(x))
           loglog = function(x) exp(-exp(-x)),
           stop("unknown link"))
}

lmm_clmm_predict <- function(fit, newdata) {
    lmm_tb_run(function() {
        tt <- stats::delete.response(fit$terms)
        mf <- stats::model.frame(tt, newdata, na.action = stats::na.pass,
                                 xlev = fit$xlevels)
        cl <- attr(tt, "dataClasses")
        if (!is.null(cl)) stats::.checkMFClasses(cl, mf)
        X <- stats::model.matrix(tt, mf, contrasts.arg = fit$contrasts)
        beta <- fit$beta
        eta <- if (length(beta)) drop(X[, names(beta), drop = FALSE] %*% beta)
               else rep(0, nrow(X))
        off <- stats::model.offset(mf)
        if (!is.null(off)) eta <- eta + off  # P(Y <= j) = F(theta_j - x'beta - offset)
        cdf <- lmm_clmm_cdf(fit$link)
        theta <- as.numeric(fit$Theta)
        cum <- cdf(outer(-eta, theta, "+"))
        cum <- matrix(cum, nrow = length(eta))
        prob <- cbind(cum, 1) - cbind(0, cum)
        colnames(prob) <- fit$y.levels
        list(prob = unname(prob), levels = as.character(fit$y.levels))
    })
}

# anova(m0, m1, ...) of clmm fits (ordinal's anova.clm): the models are bound
# to symbols .m1, .m2, ... (anova.clm names its rows after the call's
# arguments) and the rows are renamed to the labels.
lmm_clmm_compare <- function(fits, datas, labels) {
    lmm_tb_run(function() {
        bad <- lmm_tb_mismatch(datas, labels)
        if (length(bad)) return(list(mismatch = bad))
        env <- new.env(parent = baseenv())
        syms <- paste0(".m", seq_along(fits))
        for (i in seq_along(fits)) assign(syms[i], fits[[i]], envir = env)
        cl <- as.call(c(list(quote(ordinal:::anova.clm)), lapply(syms, as.name)))
        tab <- eval(cl, env)
        models <- attr(tab, "models")
        rows <- labels[match(rownames(tab), syms)]
        heading <- c("Likelihood ratio tests of cumulative link models:",
                     sprintf("%s: %s (link %s, threshold %s)", rows, models[["formula:"]],
                             models[["link:"]], models[["threshold:"]]))
        out <- data.frame(npar = tab[["no.par"]], aic = tab[["AIC"]],
                          loglik = tab[["logLik"]], chisq = tab[["LR.stat"]],
                          df = tab[["df"]], p_value = tab[["Pr(>Chisq)"]])
        rownames(out) <- rows
        attr(out, "heading") <- heading
        lmm_tb_table(out)
    })
}

lmm_clmm_summary_text <- function(fit, data_name) {
    fit$call$data <- as.name(data_name)
    paste(utils::capture.output(print(summary(fit))), collapse = "\n")
}
