# Fitting and the tables Python reads from a fit (the R half of fitting.py).
# sys.source()d by rbridge.py, with every file of R/, into one private
# environment whose parent is baseenv() (see rbridge.R).

# ---------------------------------------------------------------------------
# Fitting
# ---------------------------------------------------------------------------

lmm_families <- c("binomial", "poisson", "Gamma", "gaussian", "inverse.gaussian")

lmm_make_family <- function(name, link) {
    if (!(name %in% lmm_families)) stop("unknown family")
    fun <- get(name, envir = asNamespace("stats"), inherits = FALSE)
    if (is.null(link) || !nzchar(link)) fun() else fun(link = link)
}

# Run expr with R options our results depend on set to R's defaults, and
# collect warnings and messages as text instead of letting R print them.
lmm_with_conditions <- function(expr_fun) {
    warns <- character()
    msgs <- character()
    old <- options(contrasts = c(unordered = "contr.treatment", ordered = "contr.poly"),
                   na.action = "na.omit", warn = 0, OutDec = ".",
                   show.error.messages = FALSE)
    on.exit(options(old), add = TRUE)
    had_cur <- exists("curWarnings", envir = globalenv(), inherits = FALSE)
    on.exit(if (!had_cur && exists("curWarnings", envir = globalenv(), inherits = FALSE))
        rm("curWarnings", envir = globalenv()), add = TRUE)
    value <- tryCatch(
        withCallingHandlers(expr_fun(),
            warning = function(w) {
                warns <<- c(warns, conditionMessage(w))
                invokeRestart("muffleWarning")
            },
            message = function(m) {
                msgs <<- c(msgs, sub("\n$", "", conditionMessage(m)))
                invokeRestart("muffleMessage")
            }),
        error = function(e) e)
    list(value = value, warnings = warns, messages = msgs)
}

# Plain-word checks before lme4 runs; errors carry class "lmm_preflight".
lmm_stop <- function(fmt, ...) {
    stop(structure(class = c("lmm_preflight", "error", "condition"),
                   list(message = sprintf(fmt, ...), call = NULL)))
}

lmm_label <- function(expr) paste(deparse(expr, width.cutoff = 500L), collapse = " ")

lmm_preflight <- function(formula, data, kind) {
    env <- environment(formula)
    vars <- intersect(all.vars(formula), names(data))
    complete <- stats::complete.cases(data[vars])
    if (!any(complete)) {
        na <- vapply(data[vars], function(v) sum(is.na(v)), 1L)
        lmm_stop(paste0("no complete rows: every row has a missing value in at least one ",
                        "column the model uses (missing per column: %s)."),
                 paste(sprintf("%s %d", names(na), na), collapse = ", "))
    }
    rows <- data[complete, , drop = FALSE]
    if (kind == "lmer") {
        y <- eval(formula[[2L]], rows, env)
        if (!is.numeric(y) || is.matrix(y)) {
            lmm_stop(paste0("the response '%s' is %s, but lmer needs a numeric response; ",
                            "for a binary or count response use glmer with a family."),
                     lmm_label(formula[[2L]]),
                     if (is.factor(y)) "a factor (text or categories)" else class(y)[1L])
        }
    }
    for (bar in lmm_findbars(formula)) {
        g <- eval(bar[[3L]], rows, env)
        nlev <- length(unique(g))
        name <- lmm_label(bar[[3L]])
        if (nlev < 2L) {
            lmm_stop(paste0("the grouping factor '%s' has only one level in the complete ",
                            "rows; a random effect needs at least two groups."), name)
        }
        if (kind == "lmer" && nlev >= nrow(rows)) {
            lmm_stop(paste0("the grouping factor '%s' has one observation per level (%d ",
                            "levels, %d rows): its variance cannot be told apart from the ",
                            "residual variance in a linear mixed model."),
                     name, nlev, nrow(rows))
        }
    }
    invisible(rows)
}

lmm_contrast_funs <- c(treatment = "contr.treatment", sum = "contr.sum",
                       helmert = "contr.helmert", poly = "contr.poly", SAS = "contr.SAS")

# spec: list(type = one of names(lmm_contrast_funs), ref = level or "").
lmm_contrast <- function(x, spec) {
    if (!is.factor(x)) stop("contrasts can only be set for factors")
    lev <- levels(x)
    type <- spec$type
    if (!(type %in% names(lmm_contrast_funs))) stop("unknown contrast type")
    fun <- get(lmm_contrast_funs[[type]], envir = asNamespace("stats"), inherits = FALSE)
    if (type == "treatment" && length(spec$ref) && nzchar(spec$ref)) {
        base <- match(spec$ref, lev)
        if (is.na(base)) stop(sprintf("reference level '%s' is not a level", spec$ref))
        return(fun(lev, base = base))
    }
    fun(lev)
}

lmm_optimizers <- c("bobyqa", "Nelder_Mead", "nloptwrap", "nlminbwrap")
lmm_check_values <- c("ignore", "warning", "message", "stop")

# control: list(optimizer, maxfun, checks = named list of action strings,
# calc_derivs) -> the arguments of lmerControl()/glmerControl(), checked
# against fixed lists.
lmm_control_args <- function(control) {
    args <- list()
    if (length(control$optimizer)) {
        if (!(control$optimizer %in% lmm_optimizers)) stop("unknown optimizer")
        args$optimizer <- control$optimizer
    }
    if (length(control$maxfun)) args$optCtrl <- list(maxfun = as.integer(control$maxfun))
    if (length(control$calc_derivs)) args$calc.derivs <- as.logical(control$calc_derivs)
    for (name in names(control$checks)) {
        value <- control$checks[[name]]
        if (!(value %in% lmm_check_values)) stop("unknown check action")
        args[[name]] <- value
    }
    args
}

lmm_control <- function(kind, control) {
    fun <- if (kind == "lmer") lme4::lmerControl else lme4::glmerControl
    do.call(fun, lmm_control_args(control))
}

# opts: kind ("lmer", "glmer", "glmer.nb"), reml, ddf, family, link, weights,
# offset, factors, contrasts (column -> list(type, ref)), control, nagq.
# Column names arrive as strings and reach the call only as symbols.
# progress: the optimizer prints its evaluations (lme4's verbose = 1) for a
# live status; the fit is the same and its stored call does not show it.
lmm_fit <- function(data, formula_text, opts, allowed, progress = FALSE) {
    kind <- opts$kind
    wide <- NULL  # c(p, n) when X has at least as many columns as rows
    res <- lmm_with_conditions(function() {
        for (f in opts$factors) data[[f]] <- factor(data[[f]])
        formula <- lmm_make_formula(formula_text, names(data), allowed)
        rows <- lmm_preflight(formula, data, kind)
        # The design's size before lme4 builds it (preflight.R); no limits:
        # allow_large.
        if (length(opts$limits)) {
            design <- lmm_design(formula, rows)
            too_large <- lmm_design_check(formula, rows, opts$limits, design)
            if (!is.null(too_large)) return(list(too_large = too_large))
            if (design$p >= design$n) wide <<- c(design$p, design$n)
        }
        rm(rows)
        # Satterthwaite's evaluations include lme4's derivative check's (compat.R)
        defer <- kind == "lmer" && opts$ddf == "satterthwaite" &&
            !length(opts$control$calc_derivs) && lmm_compat_defer_derivs() &&
            is.null(.lmm_sat_unknown_internals())
        own_control <- length(opts$control) > 0L
        if (defer) opts$control$calc_derivs <- FALSE
        warm <- if (length(opts$warm_start)) lmm_warm_start(data, formula, opts)  # warmstart.R
        opts$start <- warm$theta
        todo <- lmm_fit_call(data, formula, opts, progress)
        t0 <- Sys.time()
        fit <- eval(todo$call, todo$env)
        t1 <- Sys.time()
        sat <- if (defer) lmm_satterthwaite(fit)
        if (defer) fit <- lmm_compat_conv_check(fit, sat$derivs, todo$env$control)
        # Show the formula itself, not the symbol it was bound to, in summary().
        fit@call$formula <- formula
        fit@call$verbose <- NULL
        fit@call$start <- NULL  # a warm start moves the optimum only within lme4's tolerance
        if (defer && !own_control) fit@call$control <- NULL
        res <- lmm_results(fit, kind, opts$ddf, sat)
        # R's own work, timed where it happens: what an R user would pay for the
        # fit and for the same tables (benchmarks/ report the rest as overhead).
        res$tables$meta$r_fit_seconds <- as.numeric(difftime(t1, t0, units = "secs"))
        res$tables$meta$r_tables_seconds <- as.numeric(difftime(Sys.time(), t1,
                                                                units = "secs"))
        res$tables$meta$optimizer_evals <- as.integer(c(fit@optinfo$feval, NA)[1L])
        res$tables$meta <- c(res$tables$meta, warm$meta)
        res$tables$na_counts <- vapply(data, function(v) sum(is.na(v)), 1L)
        c(res, list(data = data))
    })
    out <- lmm_fit_outcome(res)
    if (inherits(res$value, "error") && !is.null(wide) &&
        !identical(out$error_class, "lmm_preflight")) {
        # lme4 says "objective in x0 returns NA" or worse: say why
        out$error <- sprintf(paste0(
            "the fixed effects have %d columns but there are only %d complete rows, ",
            "so they cannot all be estimated (lme4: %s). Use fewer predictors, or ",
            "more data."), as.integer(wide[1L]), as.integer(wide[2L]), out$error)
        out$error_class <- "lmm_preflight"
    }
    out
}

# What a fit function returns of lmm_with_conditions()' result res: the
# warnings and messages, then the value's parts or the error's message and
# class (lme4's, glmmTMB's and clmm's fits).
lmm_fit_outcome <- function(res) {
    out <- list(warnings = res$warnings, messages = res$messages)
    if (inherits(res$value, "error")) {
        out$error <- conditionMessage(res$value)
        out$error_class <- class(res$value)[1L]
        return(out)
    }
    c(out, res$value)
}

# The lme4 call of one fit and the environment it is evaluated in, which holds
# what the call names (formula, data, family, weights, offset, contrasts,
# control) and nothing else. fun: the function to call instead of the one the
# options pick (many.R's lmer without lFormula).
lmm_fit_call <- function(data, formula, opts, progress = FALSE, fun = NULL) {
    kind <- opts$kind
    fitenv <- new.env(parent = baseenv())
    fitenv$formula <- formula
    cl <- switch(kind,
        lmer = {
            # Kenward-Roger goes through lmerTest; Satterthwaite df are ours.
            if (is.null(fun)) fun <- if (opts$ddf == "kenward-roger") quote(lmerTest::lmer)
                                     else quote(lme4::lmer)
            call("lmer", formula = quote(formula), data = quote(data), REML = opts$reml)
        },
        glmer = {
            fitenv$family <- lmm_make_family(opts$family, opts$link)
            if (is.null(fun)) fun <- quote(lme4::glmer)
            call("glmer", formula = quote(formula), data = quote(data),
                 family = quote(family))
        },
        glmer.nb = {
            if (is.null(fun)) fun <- quote(lme4::glmer.nb)
            call("glmer.nb", formula = quote(formula), data = quote(data))
        })
    cl[[1L]] <- fun
    for (arg in c("weights", "offset")) {
        col <- opts[[arg]]
        if (length(col)) {
            cl[[arg]] <- as.name(col)
            # lme4's lFormula also get()s weights/offset from the calling frame.
            assign(arg, data[[col]], envir = fitenv)
        }
    }
    if (length(opts$contrasts)) {
        fitenv$contrasts <- lapply(stats::setNames(nm = names(opts$contrasts)),
                                   function(col) lmm_contrast(data[[col]],
                                                              opts$contrasts[[col]]))
        cl$contrasts <- quote(contrasts)
    }
    if (length(opts$control)) {
        fitenv$control <- lmm_control(if (kind == "lmer") "lmer" else "glmer",
                                      opts$control)
        cl$control <- quote(control)
    }
    if (kind == "glmer" && length(opts$nagq)) cl$nAGQ <- as.integer(opts$nagq)
    if (length(opts$start)) {
        fitenv$start <- opts$start
        cl$start <- quote(start)
    }
    if (isTRUE(progress)) cl$verbose <- 1L
    fitenv$data <- data
    list(call = cl, env = fitenv)
}

# lmm_fit in a worker process (isolation.py): the fit and its data go back as
# R's own serialisation, one raw vector, to become R objects again in the
# notebook's R when a toolbox method needs them.
lmm_fit_serialized <- function(data, formula_text, opts, allowed) {
    res <- lmm_fit(data, formula_text, opts, allowed)
    if (!is.null(res$fit)) {
        res$raw <- serialize(list(fit = res$fit, data = res$data), NULL)
        res$fit <- NULL
        res$data <- NULL
    }
    res
}

lmm_unserialize <- function(raw) unserialize(raw)

# The fixed-effects table. Satterthwaite df come from lmm_satterthwaite()
# (satterthwaite.R) on the plain lme4 fit (sat: already computed by lmm_fit):
# the exact derivatives' df from lme4's check's evaluations and 2k(k+1) more;
# Kenward-Roger from lmerTest/pbkrtest. $matrix
# is R's coefficient matrix (for summary()), $meta says how the df were computed.
lmm_coef_table <- function(fit, kind, ddf, sat = NULL) {
    meta <- list()
    if (kind == "lmer" && ddf == "satterthwaite" && !inherits(fit, "lmerModLmerTest")) {
        if (is.null(sat)) sat <- lmm_satterthwaite(fit)
        ct <- cbind(Estimate = sat$beta, `Std. Error` = sat$se, df = sat$df,
                    `t value` = sat$t, `Pr(>|t|)` = sat$p)
        meta <- list(satterthwaite = sat$method, devfun_evals = sat$n_devfun_evals,
                     fallback_reason = if (is.null(sat$fallback_reason)) ""
                                       else sat$fallback_reason)
    } else if (kind == "lmer" && ddf != "lme4" && inherits(fit, "lmerModLmerTest")) {
        method <- if (ddf == "kenward-roger") "Kenward-Roger" else "Satterthwaite"
        ct <- stats::coef(lmerTest:::summary.lmerModLmerTest(fit, ddf = method))
    } else {
        ct <- lmm_wald_table(fit, kind)
    }
    list(table = lmm_coef_list(ct, kind), matrix = ct, meta = meta)
}

# R's coefficient matrix as the columns Python reads.
lmm_coef_list <- function(ct, kind) {
    n <- nrow(ct)
    out <- list(estimate = ct[, 1L], std_error = ct[, 2L])
    if (ncol(ct) == 5L) {
        out <- c(out, list(df = ct[, 3L], statistic = ct[, 4L], p_value = ct[, 5L]))
    } else {
        out <- c(out, list(df = rep(if (kind == "lmer") NA_real_ else Inf, n),
                           statistic = ct[, 3L],
                           p_value = if (ncol(ct) >= 4L) ct[, 4L] else rep(NA_real_, n)))
    }
    z <- stats::qnorm(0.975)
    out$conf_low <- out$estimate - z * out$std_error
    out$conf_high <- out$estimate + z * out$std_error
    out <- lapply(out, function(v) unname(as.numeric(v)))
    out$terms <- rownames(ct)
    out
}

# summary(fit)$coefficients without summary()'s other work (which computes
# vcov twice, the scaled residuals, VarCorr, ...). For lmer, lme4's vcov is
# sigma^2 * unsc() wrapped in a dpoMatrix (the wrapping is what costs): a
# matrix that is not positive definite becomes NA with lme4's warning. For
# glmer, vcov() as summary() calls it (from the Hessian when there is one);
# z tests as summary() computes them.
lmm_wald_table <- function(fit, kind) {
    beta <- lme4::fixef(fit)
    if (kind == "lmer") {
        V <- stats::sigma(fit)^2 * fit@pp$unsc()
        ok <- nrow(V) == 0L || (all(is.finite(V)) &&
              !inherits(tryCatch(chol(V), error = function(e) e), "error"))
        if (!ok) {
            warning("Computed variance-covariance matrix problem: not a positive definite ",
                    "matrix;\nreturning NA matrix")
            V <- matrix(NA_real_, nrow(V), ncol(V))
        }
    } else {
        h <- fit@optinfo$derivs$Hessian
        hess <- !is.null(h) && nrow(h) > length(lme4::getME(fit, "theta"))
        V <- as.matrix(stats::vcov(fit, use.hessian = hess))
    }
    se <- sqrt(diag(V))
    stat <- beta / se
    if (kind == "lmer") return(cbind(Estimate = beta, `Std. Error` = se, `t value` = stat))
    use_sc <- as.logical(fit@devcomp$dims[["useSc"]])
    ct <- cbind(Estimate = beta, `Std. Error` = se, stat,
                `Pr(>|z|)` = 2 * stats::pnorm(abs(stat), lower.tail = FALSE))
    colnames(ct)[3L] <- if (use_sc) "t value" else "z value"
    ct
}

# A fit and every table Python reads from it; the coefficient matrix also goes
# on the fit, for summary() (model.R).
lmm_results <- function(fit, kind, ddf, sat = NULL) {
    coefs <- lmm_coef_table(fit, kind, ddf, sat)
    attr(fit, "lmermagic_coefmat") <- coefs$matrix
    list(fit = fit, tables = lmm_tables(fit, kind, coefs))
}

lmm_tables <- function(fit, kind, coefs) {
    vc <- as.data.frame(lme4::VarCorr(fit))
    re <- lme4::ranef(fit, condVar = FALSE)
    mf <- stats::model.frame(fit)
    dropped <- attr(mf, "na.action")
    reml <- lme4::isREML(fit)
    ll <- stats::logLik(fit)
    conv <- fit@optinfo$conv
    fam <- stats::family(fit)
    list(
        coefs = coefs$table,
        meta = coefs$meta,
        varcorr = list(group = vc$grp, var1 = as.character(vc$var1),
                       var2 = as.character(vc$var2), vcov = vc$vcov, sdcor = vc$sdcor),
        ranef = lapply(re, function(d) list(values = as.matrix(d), levels = rownames(d),
                                            terms = colnames(d))),
        fitted = unname(as.numeric(stats::fitted(fit))),
        residuals = unname(as.numeric(stats::residuals(fit))),
        dropped = if (is.null(dropped)) integer() else as.integer(dropped),
        nobs = as.integer(stats::nobs(fit)),
        ngroups = lme4::ngrps(fit),
        loglik = as.numeric(ll),
        df_model = as.integer(attr(ll, "df")),
        aic = stats::AIC(fit),
        bic = stats::BIC(fit),
        deviance = if (reml) lme4:::deviance.merMod(fit, REML = FALSE) else stats::deviance(fit),
        reml_criterion = if (reml) lme4::REMLcrit(fit) else NA_real_,
        sigma = stats::sigma(fit),
        reml = reml,
        singular = lme4::isSingular(fit),
        opt_code = as.integer(if (is.null(conv$opt)) 0L else conv$opt),
        conv_messages = as.character(unlist(conv$lme4$messages)),
        family = fam$family,
        link = fam$link,
        theta = unname(lme4::getME(fit, "theta"))
    )
}
