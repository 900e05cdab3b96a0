# glmmTMB fits and their tables (the R half of tmb_fit.py and tmb_toolbox.py).
# sys.source()d by rbridge.py, with every file of R/, into one private
# environment whose parent is baseenv() (see rbridge.R).
#
# glmmTMB sets the formula's environment to the frame it is called from and
# evaluates model.frame() there. So the call is evaluated in an environment
# (lmm_tmb_call's) whose parent is the formula allowlist's environment
# (formula.R's lmm_safe_env: the allowed functions, parent emptyenv()), holding
# only what the call names: glmmTMB, model.frame, the formulas, data, family,
# weights and offset. A function the formula calls is found there or nowhere.

# family -> the links glmmTMB accepts for it (request side: tmb_request.py).
lmm_tmb_families <- list(
    gaussian = c("identity", "log", "inverse"),
    binomial = c("logit", "probit", "cauchit", "log", "cloglog"),
    poisson = c("log", "identity", "sqrt"),
    nbinom1 = "log", nbinom2 = "log",
    Gamma = c("inverse", "identity", "log"),
    beta_family = c("logit", "probit", "cauchit", "cloglog"),
    tweedie = "log", truncated_poisson = "log", truncated_nbinom2 = "log")

lmm_tmb_family <- function(name, link) {
    if (!(name %in% names(lmm_tmb_families))) stop("unknown glmmTMB family")
    if (!nzchar(link)) link <- lmm_tmb_families[[name]][1L]
    if (!(link %in% lmm_tmb_families[[name]])) stop("unknown link for this family")
    ns <- if (name %in% c("gaussian", "binomial", "poisson", "Gamma")) "stats" else "glmmTMB"
    fun <- get(name, envir = asNamespace(ns), inherits = FALSE)
    fun(link = link)
}

lmm_tmb_version <- function() {
    if (!nzchar(system.file(package = "glmmTMB"))) return(NA_character_)
    as.character(utils::packageVersion("glmmTMB"))
}

# texts: list(cond, zi, disp) of formula strings ("" = not given), checked
# again here before R builds them. opts: family, link, reml, weights, offset,
# factors.
lmm_tmb_call <- function(data, texts, opts, allowed) {
    cols <- names(data)
    fitenv <- new.env(parent = lmm_safe_env(allowed))
    fitenv$formula <- lmm_make_formula(texts$cond, cols, allowed)
    cl <- call("glmmTMB", formula = quote(formula), data = quote(data))
    for (part in c("zi", "disp")) {
        if (length(texts[[part]]) && nzchar(texts[[part]])) {
            assign(part, lmm_make_formula(texts[[part]], cols, allowed, one_sided = TRUE),
                   envir = fitenv)
            cl[[if (part == "zi") "ziformula" else "dispformula"]] <- as.name(part)
        }
    }
    fitenv$family <- lmm_tmb_family(opts$family, opts$link)
    cl$family <- quote(family)
    for (arg in c("weights", "offset")) {
        col <- opts[[arg]]
        if (length(col)) {
            # glmmTMB get()s both by their argument's name from its caller's frame
            assign(arg, data[[col]], envir = fitenv)
            cl[[arg]] <- as.name(arg)
        }
    }
    if (isTRUE(opts$reml)) cl$REML <- TRUE
    fitenv$data <- data
    fitenv$glmmTMB <- glmmTMB::glmmTMB
    fitenv$model.frame <- stats::model.frame
    list(call = cl, env = fitenv)
}

lmm_tmb_fit <- function(data, texts, opts, allowed) {
    res <- lmm_with_conditions(function() {
        for (f in opts$factors) data[[f]] <- factor(data[[f]])
        todo <- lmm_tmb_call(data, texts, opts, allowed)
        lmm_preflight(todo$env$formula, data, "glmmTMB")
        t0 <- Sys.time()
        fit <- eval(todo$call, todo$env)
        t1 <- Sys.time()
        tables <- lmm_tmb_tables(fit)
        tables$meta <- list(r_fit_seconds = as.numeric(difftime(t1, t0, units = "secs")),
                            glmmTMB = lmm_tmb_version())
        tables$na_counts <- vapply(data, function(v) sum(is.na(v)), 1L)
        list(fit = fit, data = data, tables = tables)
    })
    lmm_fit_outcome(res)
}

# The Wald table of every component, as summary(fit)$coefficients.
lmm_tmb_coefs <- function(fit) {
    ct <- summary(fit)$coefficients
    z <- stats::qnorm(0.975)
    parts <- lapply(names(ct), function(comp) {
        m <- ct[[comp]]
        if (is.null(m) || !nrow(m)) return(NULL)
        est <- unname(m[, 1L]); se <- unname(m[, 2L])
        list(component = rep(comp, nrow(m)), term = rownames(m), estimate = est,
             std_error = se, statistic = unname(m[, 3L]), p_value = unname(m[, 4L]),
             conf_low = est - z * se, conf_high = est + z * se)
    })
    parts <- parts[!vapply(parts, is.null, TRUE)]
    out <- lapply(stats::setNames(nm = names(parts[[1L]])),
                  function(col) unlist(lapply(parts, `[[`, col), use.names = FALSE))
    out
}

# As as.data.frame(VarCorr(lmer)): one row per sd and per correlation, for each
# component's grouping factors; a residual row for a gaussian model with one
# residual variance (no dispformula), as lmer's.
lmm_tmb_varcorr <- function(fit) {
    vc <- glmmTMB::VarCorr(fit)
    rows <- list()
    add <- function(...) rows[[length(rows) + 1L]] <<- list(...)
    for (comp in c("cond", "zi")) {
        for (grp in names(vc[[comp]])) {
            m <- vc[[comp]][[grp]]
            sds <- attr(m, "stddev")
            terms <- names(sds)
            for (i in seq_along(sds)) add(comp, grp, terms[i], NA_character_, m[i, i], sds[i])
            cor <- attr(m, "correlation")
            if (length(sds) > 1L) {
                for (i in seq_len(length(sds) - 1L)) for (j in (i + 1L):length(sds))
                    add(comp, grp, terms[i], terms[j], m[i, j], cor[i, j])
            }
        }
    }
    if (fit$modelInfo$family$family == "gaussian" &&
        # one dispersion parameter: "betad" in glmmTMB < 1.1.8, "betadisp" after
        sum(names(fit$fit$par) %in% c("betad", "betadisp")) == 1L) {
        s <- stats::sigma(fit)
        add("cond", "Residual", NA_character_, NA_character_, s^2, s)
    }
    col <- function(k, f) f(vapply(rows, function(r) as.character(r[[k]]), ""))
    list(component = col(1L, identity), group = col(2L, identity),
         var1 = col(3L, identity), var2 = col(4L, identity),
         vcov = col(5L, as.numeric), sdcor = col(6L, as.numeric))
}

lmm_tmb_tables <- function(fit) {
    ll <- stats::logLik(fit)
    re <- glmmTMB::ranef(fit)$cond
    fam <- fit$modelInfo$family
    conv <- fit$fit$convergence
    pd <- isTRUE(fit$sdr$pdHess)
    mf <- stats::model.frame(fit)
    dropped <- attr(mf, "na.action")
    list(
        coefs = lmm_tmb_coefs(fit),
        varcorr = lmm_tmb_varcorr(fit),
        ranef = lapply(re, function(d) list(values = as.matrix(d), levels = rownames(d),
                                            terms = colnames(d))),
        fitted = unname(as.numeric(stats::fitted(fit))),
        residuals = unname(as.numeric(stats::residuals(fit, type = "response"))),
        dropped = if (is.null(dropped)) integer() else as.integer(dropped),
        nobs = as.integer(stats::nobs(fit)),
        ngroups = vapply(fit$modelInfo$reTrms$cond$flist, nlevels, 1L),
        loglik = as.numeric(ll),
        df_model = as.integer(attr(ll, "df")),
        df_resid = as.numeric(stats::df.residual(fit)),
        aic = stats::AIC(fit),
        bic = stats::BIC(fit),
        deviance = -2 * as.numeric(ll),
        # no one dispersion parameter with a dispersion model: NA
        sigma = { s <- stats::sigma(fit); if (length(s) == 1L) as.numeric(s) else NA_real_ },
        reml = isTRUE(fit$modelInfo$REML),
        converged = identical(as.integer(conv), 0L) && pd,
        pd_hess = pd,
        opt_message = as.character(fit$fit$message),
        family = fam$family,
        link = fam$link
    )
}

# ---------------------------------------------------------------------------
# After the fit (tmb_toolbox.py); each returns lmm_tb_run()'s list.
# ---------------------------------------------------------------------------

# Evaluate f() where the fit's stored call can be evaluated again: glmmTMB's
# predict(newdata), simulate, update and profile re-run parts of the call in
# the formula's environment, which is the call's own (lmm_tmb_call).
lmm_tmb_predict <- function(fit, data, newdata, type, se) {
    lmm_tb_run(function() {
        fixed <- lmm_newdata_factors(newdata, data, names(fit$modelInfo$reTrms$cond$flist))
        if (length(fixed$bad)) return(list(bad_levels = fixed$bad))
        newdata <- fixed$newdata
        # predict.glmmTMB evaluates its model.frame() call in its caller's frame
        model.frame <- stats::model.frame
        p <- if (is.null(newdata)) stats::predict(fit, type = type, se.fit = se)
             else stats::predict(fit, newdata = newdata, type = type, se.fit = se,
                                 allow.new.levels = TRUE)
        if (se) list(fit = unname(as.numeric(p$fit)), se_fit = unname(as.numeric(p$se.fit)))
        else list(fit = unname(as.numeric(p)))
    })
}

lmm_tmb_simulate <- function(fit, nsim, seed) {
    lmm_tb_run(function() {
        s <- lmm_tb_with_seed(seed, function() stats::simulate(fit, nsim = nsim))
        lmm_tb_table(as.data.frame(lapply(s, function(v) if (is.matrix(v)) v[, 1L] else v)))
    })
}

lmm_tmb_confint <- function(fit, method, level) {
    lmm_tb_run(function() {
        ci <- stats::confint(fit, method = method, level = level)
        list(terms = rownames(ci), low = unname(ci[, 1L]), high = unname(ci[, 2L]),
             estimate = if (ncol(ci) >= 3L) unname(ci[, 3L]) else rep(NA_real_, nrow(ci)))
    })
}

lmm_tmb_broom <- function(fit, what, conf_int, conf_level) {
    lmm_tb_run(function() {
        tab <- switch(what,
            tidy = broom.mixed::tidy(fit, conf.int = conf_int, conf.level = conf_level),
            glance = broom.mixed::glance(fit),
            augment = broom.mixed::augment(fit))
        lmm_tb_table(as.data.frame(tab))
    })
}

lmm_tmb_ranef_table <- function(fit) {
    lmm_tb_run(function() {
        re <- glmmTMB::ranef(fit, condVar = TRUE)
        out <- list()
        for (comp in c("cond", "zi")) {
            for (grp in names(re[[comp]])) {
                d <- re[[comp]][[grp]]
                sds <- attr(d, "condVar")
                for (j in seq_along(d)) {
                    sd <- if (is.list(sds)) sqrt(sds[[j]]) else if (length(dim(sds)) == 3L)
                        sqrt(sds[j, j, ]) else rep(NA_real_, nrow(d))
                    out[[length(out) + 1L]] <- list(
                        component = rep(comp, nrow(d)), group = rep(grp, nrow(d)),
                        term = rep(names(d)[j], nrow(d)), level = rownames(d),
                        condval = unname(d[[j]]), condsd = unname(as.numeric(sd)))
                }
            }
        }
        lapply(stats::setNames(nm = c("component", "group", "term", "level", "condval",
                                      "condsd")),
               function(k) unlist(lapply(out, `[[`, k), use.names = FALSE))
    })
}

# Likelihood-ratio tests, as anova(m0, m1): the same data required.
lmm_tmb_compare <- function(fits, datas, names) {
    lmm_tb_run(function() {
        bad <- lmm_tb_mismatch(datas, names)
        if (length(bad)) return(list(mismatch = bad))
        tab <- do.call(glmmTMB:::anova.glmmTMB, c(unname(fits), list(model.names = names)))
        lmm_tb_table(tab)
    })
}

lmm_tmb_summary_text <- function(fit, data_name) {
    res <- lmm_with_conditions(function() utils::capture.output(print(summary(fit))))
    if (inherits(res$value, "error")) stop(conditionMessage(res$value))
    out <- res$value
    at <- which(out == "Data: data")
    if (length(at)) out[at[1L]] <- paste0("Data: ", data_name)
    paste(out, collapse = "\n")
}
