# lmermagic's post-fit toolbox: comparisons, F tests, predictions, intervals,
# marginal means, optimizer checks. sys.source()d into the same private
# environment as core.R (parent baseenv()): every non-base function is called
# through its namespace, nothing is attached, nothing is written to the global
# environment (except R's own .Random.seed, restored when a seed is given).
#
# Every entry point called from Python is named lmm_tb_* and returns
# list(value = ..., warnings = ..., messages = ...) or list(error = ...) from
# lmm_tb_run(), so that Python re-issues R's warnings and raises R's errors.
#
# Why the fit is "prepared" before refitting functions use it. lme4 and
# lmerTest refit by evaluating the stored call, e.g.
#     lmerTest::lmer(formula = <formula>, data = data, REML = TRUE)
# in environment(formula) -- lmermagic's restricted environment, which holds
# only the allowed formula functions, not `::`, not `data` -- and then (update)
# in sys.frames()[[1]], the frame of the R function Python called.
# drop1.merMod tries only environment(formula). So each entry point takes the
# model's data as an argument named `data` (sys.frames()[[1]] fallback) and
# works on a copy of the fit whose formula environment is a child of the
# restricted one holding `::` and the objects the call names: data, weights,
# offset, contrasts, control, family. The formula text was checked when the
# model was fitted, so giving its environment `::` lets no user code run.

# ---------------------------------------------------------------------------
# Plumbing
# ---------------------------------------------------------------------------

lmm_tb_run <- function(expr_fun) {
    res <- lmm_with_conditions(expr_fun)
    out <- list(warnings = unique(res$warnings), messages = unique(res$messages))
    if (inherits(res$value, "error")) {
        out$error <- conditionMessage(res$value)
        return(out)
    }
    out$value <- res$value
    out
}

# A plain data.frame from an R table (anova, data.frame, matrix): attributes
# and classes dropped, row names returned separately.
lmm_tb_table <- function(x) {
    if (is.matrix(x)) x <- as.data.frame(x, stringsAsFactors = FALSE)
    rows <- rownames(x)
    cols <- lapply(seq_along(x), function(j) {
        v <- x[[j]]
        if (is.factor(v)) v else as.vector(v)
    })
    names(cols) <- lmm_compat_names(names(x))
    attr(cols, "row.names") <- c(NA_integer_, -length(rows))
    class(cols) <- "data.frame"
    list(table = cols, rows = as.character(rows),
         heading = as.character(attr(x, "heading")))
}

# The lme4/lmerControl() call for the model's control settings, as a call with
# literal values (allFit() needs a call it can take apart, not a symbol).
lmm_tb_control_call <- function(kind, control) {
    if (!length(control)) return(NULL)
    args <- lmm_control_args(control)
    fun <- if (kind == "lmer") quote(lme4::lmerControl) else quote(lme4::glmerControl)
    as.call(c(list(fun), args))
}

# Bind in env what the stored call refers to (as core.R's lmm_fit binds it).
lmm_tb_bind <- function(env, data, opts) {
    env$data <- data
    for (arg in c("weights", "offset")) {
        col <- opts[[arg]]
        if (length(col)) assign(arg, data[[col]], envir = env)
    }
    if (length(opts$contrasts)) {
        env$contrasts <- lapply(stats::setNames(nm = names(opts$contrasts)),
                                function(col) lmm_contrast(data[[col]], opts$contrasts[[col]]))
    }
    if (length(opts$control)) {
        env$control <- lmm_control(if (opts$kind == "lmer") "lmer" else "glmer", opts$control)
    }
    if (identical(opts$kind, "glmer")) env$family <- lmm_make_family(opts$family, opts$link)
    env$`::` <- base::`::`
    invisible(env)
}

# A copy of fit whose stored call can be evaluated again (see the top of the
# file). lme4 = TRUE: refit with lme4::lmer rather than lmerTest::lmer (same
# fit; lmerTest would recompute its df for every refit).
lmm_tb_prepare <- function(fit, data, opts, lme4 = FALSE) {
    f <- stats::formula(fit)
    env <- new.env(parent = environment(f))
    lmm_tb_bind(env, data, opts)
    environment(f) <- env
    cl <- fit@call
    cl$formula <- f
    if (!is.null(cl$control)) {
        cl$control <- lmm_tb_control_call(if (opts$kind == "lmer") "lmer" else "glmer",
                                          opts$control)
    }
    if (lme4 && inherits(fit, "lmerModLmerTest")) {
        fit <- methods::as(fit, "lmerMod")
        cl[[1L]] <- quote(lme4::lmer)
    }
    fit@call <- cl
    # lme4's predictor and response modules are reference objects that its C++
    # code changes in place; profile() of a glmer fit leaves them at another
    # theta (afterwards R's own ranef(g, condVar = TRUE) differs). Work on copies.
    fit@pp <- fit@pp$copy()
    fit@resp <- fit@resp$copy()
    # formula(fit) reads the model frame's "formula" attribute.
    if (!is.null(attr(fit@frame, "formula"))) attr(fit@frame, "formula") <- f
    fit
}

lmm_tb_columns <- function(data) lmm_tb_run(function() names(data))

lmm_tb_is_lmer <- function(fit) inherits(fit, "lmerMod")

# lmerTest's object for a plain lme4 fit (lmerTest computes its Hessian and
# Jacobian here: Python keeps the result on the model for the next call).
lmm_tb_lmertest <- function(fit, data, opts) {
    if (inherits(fit, "lmerModLmerTest")) return(fit)
    m <- lmerTest::as_lmerModLmerTest(lmm_tb_prepare(fit, data, opts))
    # Share the fit's own call, frame and modules, not the prepared copies.
    m@call <- fit@call
    m@frame <- fit@frame
    m@pp <- fit@pp
    m@resp <- fit@resp
    m
}

lmm_tb_as_lmertest <- function(fit, data, opts) {
    lmm_tb_run(function() list(fit = lmm_tb_lmertest(fit, data, opts)))
}

# ---------------------------------------------------------------------------
# F tests, likelihood-ratio tests
# ---------------------------------------------------------------------------

# type: 1, 2 or 3; ddf: "satterthwaite", "kenward-roger" or "lme4".
lmm_tb_anova <- function(fit, data, opts, type, ddf) {
    lmm_tb_run(function() {
        if (lmm_tb_is_lmer(fit)) {
            m <- lmm_tb_lmertest(fit, data, opts)
            method <- switch(ddf, satterthwaite = "Satterthwaite",
                             "kenward-roger" = "Kenward-Roger", lme4 = "lme4")
            tab <- lmerTest:::anova.lmerModLmerTest(m, type = as.character(type),
                                                    ddf = method)
        } else {
            tab <- lme4:::anova.merMod(fit)
        }
        lmm_tb_table(tab)
    })
}

lmm_tb_ranova <- function(fit, data, opts) {
    lmm_tb_run(function() {
        # ranova() fits lm(formula, data = data, ...) for a model without any
        # random effect left, evaluated in this frame (eval.parent): bind what
        # that call names.
        lm <- stats::lm
        lmm_tb_bind(environment(), data, opts)
        m <- lmm_tb_prepare(fit, data, opts, lme4 = TRUE)
        lmm_tb_table(lmerTest::ranova(m))
    })
}

lmm_tb_drop1 <- function(fit, data, opts) {
    lmm_tb_run(function() {
        tab <- if (lmm_tb_is_lmer(fit)) {
            lmerTest:::drop1.lmerModLmerTest(lmm_tb_lmertest(fit, data, opts))
        } else {
            lme4:::drop1.merMod(lmm_tb_prepare(fit, data, opts), test = "Chisq")
        }
        lmm_tb_table(tab)
    })
}

# fits, datas, optss: lists, one element per model; names: the labels;
# refit: refit REML fits with ML (lme4's default).
lmm_tb_compare <- function(fits, datas, optss, names, refit) {
    lmm_tb_run(function() {
        same <- vapply(datas, function(d) {
            common <- intersect(names(d), names(datas[[1L]]))
            nrow(d) == nrow(datas[[1L]]) &&
                identical(as.list(d[common]), as.list(datas[[1L]][common]))
        }, logical(1L))
        # lme4 checks that the calls name one data object; here every call
        # says `data`, so compare the data themselves.
        if (!all(same)) return(list(mismatch = names[!same]))
        mods <- lapply(seq_along(fits), function(i) {
            m <- lmm_tb_prepare(fits[[i]], datas[[i]], optss[[i]])
            # lmerTest's anova() hands several models to lme4's.
            if (inherits(m, "lmerModLmerTest")) m <- methods::as(m, "lmerMod")
            m
        })
        tab <- do.call(lme4:::anova.merMod,
                       c(unname(mods), list(refit = refit, model.names = names)))
        lmm_tb_table(tab)
    })
}

# ---------------------------------------------------------------------------
# Prediction and simulation
# ---------------------------------------------------------------------------

# newdata: data.frame or NULL; re_form: NULL (all), "NA" (none) or formula
# text (checked here with the allowlist); allow_new: allow.new.levels.
lmm_tb_predict <- function(fit, data, opts, newdata, re_form, allow_new, type, allowed) {
    lmm_tb_run(function() {
        rf <- if (is.null(re_form)) NULL else if (identical(re_form, "NA")) NA else {
            # One-sided "~ (1 | g)": checked as "<a column> ~ (1 | g)", then the
            # left side dropped.
            two <- paste(names(data)[1L], re_form)
            chk <- lmm_check_formula(two, names(data), allowed)
            if (!isTRUE(chk$ok)) return(list(check = chk))
            f <- lmm_make_formula(two, names(data), allowed)
            f[[2L]] <- NULL
            f
        }
        bad <- character()
        if (!is.null(newdata)) {
            grouping <- names(lme4::getME(fit, "flist"))
            # A fixed-effect factor or a grouping factor of the model: the
            # new column becomes a factor with the model's levels.
            for (col in intersect(names(newdata), names(data))) {
                ref <- data[[col]]
                if (!is.factor(ref)) next
                new <- as.character(newdata[[col]])
                lev <- levels(ref)
                unknown <- setdiff(unique(new[!is.na(new)]), lev)
                if (length(unknown)) {
                    # New levels of a grouping factor: lme4 decides (they are
                    # fine at population level or with allow.new.levels).
                    if (col %in% grouping) {
                        lev <- c(lev, unknown)
                    } else {
                        bad <- c(bad, sprintf("%s: %s", col,
                                              paste(utils::head(unknown, 5L), collapse = ", ")))
                    }
                }
                newdata[[col]] <- factor(new, levels = lev, ordered = is.ordered(ref))
            }
            if (length(bad)) return(list(bad_levels = bad))
        }
        args <- list(fit, re.form = rf, type = type, allow.new.levels = allow_new)
        if (!is.null(newdata)) {
            args$newdata <- newdata
            args$na.action <- stats::na.pass
        }
        p <- do.call(stats::predict, args)
        dropped <- attr(stats::model.frame(fit), "na.action")
        list(fit = unname(as.numeric(p)),
             dropped = if (is.null(newdata) && !is.null(dropped)) as.integer(dropped)
                       else integer())
    })
}

# R's simulate(); a two-column (cbind) binomial response gives its first
# column, the successes.
lmm_tb_simulate <- function(fit, nsim, seed) {
    lmm_tb_run(function() {
        # lme4's simulate(seed =) leaves R's random state changed: ours puts it back.
        sims <- lmm_tb_with_seed(seed, function() stats::simulate(fit, nsim = nsim))
        cols <- lapply(sims, function(v) if (is.matrix(v)) unname(v[, 1L]) else unname(v))
        dropped <- attr(stats::model.frame(fit), "na.action")
        list(sims = lapply(cols, as.numeric), names = names(sims),
             dropped = if (is.null(dropped)) integer() else as.integer(dropped))
    })
}

# newresp: the values, column-major; ncol 2 for a cbind() binomial response.
lmm_tb_refit <- function(fit, newresp, ncol, kind, ddf) {
    lmm_tb_run(function() {
        if (ncol > 1L) newresp <- matrix(newresp, ncol = ncol)
        new <- lme4::refit(fit, newresp)
        new@call <- fit@call
        if (inherits(fit, "lmerModLmerTest") && !inherits(new, "lmerModLmerTest")) {
            # lmerTest's df need the deviance function of the new response:
            # lme4's own, built from the refitted model's modules.
            devfun <- lmm_tb_devfun(new)
            new <- lmerTest:::as_lmerModLT(new, devfun)
            new@call <- fit@call
        }
        lmm_results(new, kind, ddf)
    })
}

# lme4's deviance function for a fitted lmer model, built by lme4 from the
# fit's frame and matrices (getME), never from the fit's own modules, which
# lme4's C++ code would change in place. lme4 2.x's deviance function also needs
# the covariance constructor (mkTheta) that lme4 puts beside the modules.
lmm_tb_devfun <- function(fit) lme4::getME(fit, "devfun")

# ---------------------------------------------------------------------------
# Confidence intervals
# ---------------------------------------------------------------------------

# Rows: lmermagic's names (.sig01, ..., .sigma, fixed effects) and readable
# names (sd_(Intercept)|Subject, cor_Days.(Intercept)|Subject, sigma), in
# lmermagic's order whatever lme4's (lmm_compat_varpars).
lmm_tb_parnames <- function(fit) {
    vp <- lmm_compat_varpars(fit)
    fe <- names(lme4::fixef(fit))
    list(r = unname(c(vp$sig, fe)), readable = unname(c(vp$readable, fe)))
}

lmm_tb_confint <- function(fit, data, opts, method, level) {
    lmm_tb_run(function() {
        m <- lmm_tb_prepare(fit, data, opts)
        ci <- if (method == "profile") {
            stats::confint(m, method = "profile", level = level, quiet = TRUE)
        } else {
            stats::confint(m, method = "Wald", level = level, quiet = TRUE)
        }
        ci <- lmm_compat_confint_rows(fit, ci)
        nm <- lmm_tb_parnames(fit)
        est <- lmm_tb_bootfun(fit)
        list(rows = rownames(ci), lower = unname(ci[, 1L]), upper = unname(ci[, 2L]),
             names = nm$r, readable = nm$readable, estimate = unname(est))
    })
}

# What confint(method = "boot") bootstraps (lme4's bootFun in confint.merMod):
# the standard deviations and correlations, sigma, the fixed effects -- in
# lmermagic's order (lmm_compat_varpars), which is Cv_to_Sv's. The refits of
# the bootstrap skip the names (named = FALSE).
lmm_tb_bootfun <- function(x, named = TRUE) {
    th <- x@theta
    nvec <- lengths(x@cnms)
    useSc <- as.logical(x@devcomp$dims[["useSc"]])
    scaleTh <- lme4::isLMM(x) || lme4::isNLMM(x)
    ss <- if (scaleTh) {
        lme4:::Cv_to_Sv(th, n = nvec, s = stats::sigma(x))
    } else if (useSc) {
        c(lme4:::Cv_to_Sv(th, n = nvec), stats::sigma(x))
    } else {
        lme4:::Cv_to_Sv(th, n = nvec)
    }
    if (!named) return(c(unname(ss), unname(lme4::fixef(x))))
    c(stats::setNames(ss, lmm_compat_varpars(x)$sig), lme4::fixef(x))
}

# Run f() with set.seed(seed), then put the caller's random number state back
# (or remove it if there was none). seed NULL: R's current stream, advanced.
lmm_tb_with_seed <- function(seed, f) {
    if (is.null(seed)) {
        if (!exists(".Random.seed", envir = globalenv(), inherits = FALSE)) stats::runif(1)
        return(f())
    }
    had <- exists(".Random.seed", envir = globalenv(), inherits = FALSE)
    if (had) old <- get(".Random.seed", envir = globalenv(), inherits = FALSE)
    on.exit(if (had) assign(".Random.seed", old, envir = globalenv())
            else if (exists(".Random.seed", envir = globalenv(), inherits = FALSE))
                rm(".Random.seed", envir = globalenv()))
    set.seed(seed)
    f()
}

# Step 1 of the bootstrap, exactly as lme4::bootMer(use.u = FALSE): the
# nsim responses simulated in one go. Refits then need no random numbers, so
# they can run in chunks or in other processes and give the same result.
lmm_tb_boot_setup <- function(fit, data, opts, nsim, seed) {
    lmm_tb_run(function() {
        sims <- lmm_tb_with_seed(seed, function() {
            stats::simulate(fit, nsim = nsim, use.u = FALSE, na.action = stats::na.exclude)
        })
        control <- if (length(opts$control))
            lmm_control(if (opts$kind == "lmer") "lmer" else "glmer", opts$control)
        t0 <- lmm_tb_bootfun(fit)
        nm <- lmm_tb_parnames(fit)
        # refit() gives an lme4 fit either way; without lmerTest's class the
        # state also unserializes in a worker without lmerTest loaded.
        if (inherits(fit, "lmerModLmerTest")) fit <- methods::as(fit, "lmerMod")
        list(state = list(fit = fit, sims = sims, control = control),
             t0 = unname(t0), names = names(t0), readable = nm$readable)
    })
}

# Step 2: refit replicates from..to (1-based); a failed refit gives NAs, as
# in bootMer. values: replicate after replicate, each the k parameters.
lmm_tb_boot_chunk <- function(state, from, to) {
    warns <- character()
    errs <- character()
    fit <- state$fit
    k <- length(lmm_tb_bootfun(fit, named = FALSE))
    vals <- vapply(seq.int(from, to), function(i) {
        res <- lmm_with_conditions(function() {
            lmm_tb_bootfun(lme4::refit(fit, state$sims[[i]], control = state$control),
                           named = FALSE)
        })
        warns <<- c(warns, res$warnings, res$messages)
        if (inherits(res$value, "error")) {
            errs <<- c(errs, conditionMessage(res$value))
            return(rep(NA_real_, k))
        }
        unname(as.numeric(res$value))
    }, numeric(k))
    list(values = as.numeric(vals), warnings = warns, errors = errs)
}

lmm_tb_boot_save <- function(state, path) {
    saveRDS(state, file = path)
    TRUE
}

lmm_tb_boot_load <- function(path) list(state = readRDS(path))

# Step 3: percentile intervals exactly as confint(method = "boot") computes
# them: lme4's confint.bootMer on a bootMer-like object.
lmm_tb_boot_ci <- function(fit, values, nsim, level) {
    lmm_tb_run(function() {
        t0 <- lmm_tb_bootfun(fit)
        tmat <- matrix(values, nrow = nsim)
        colnames(tmat) <- names(t0)
        if (all(is.na(tmat))) stop("*all* bootstrap runs failed!")
        bb <- structure(list(t0 = t0, t = tmat, R = nsim, data = stats::model.frame(fit),
                             seed = NULL, statistic = lmm_tb_bootfun, sim = "parametric",
                             call = quote(bootMer()), ran.gen = "simulate(<merMod>, 1, *)",
                             mle = NULL),
                        class = c("bootMer", "boot"))
        ci <- lme4:::confint.bootMer(bb, level = level, type = "perc")
        list(rows = rownames(ci), lower = unname(ci[, 1L]), upper = unname(ci[, 2L]),
             failed = sum(apply(is.na(tmat), 1L, all)))
    })
}

# ---------------------------------------------------------------------------
# Marginal means, random effects, optimizers
# ---------------------------------------------------------------------------

lmm_tb_emmeans <- function(fit, data, opts, specs, by, pairwise, adjust, type) {
    lmm_tb_run(function() {
        m <- lmm_tb_prepare(fit, data, opts)
        args <- list(m, specs = specs, type = type, data = data)
        if (length(by)) args$by <- by
        emm <- do.call(emmeans::emmeans, args)
        out <- list(emmeans = lmm_tb_table(as.data.frame(summary(emm, type = type))))
        if (pairwise) {
            cargs <- list(emm, method = "pairwise")
            if (length(adjust)) cargs$adjust <- adjust
            con <- do.call(emmeans::contrast, cargs)
            out$contrasts <- lmm_tb_table(as.data.frame(summary(con, type = type)))
        }
        out
    })
}

lmm_tb_ranef_table <- function(fit) {
    lmm_tb_run(function() {
        d <- as.data.frame(lme4::ranef(fit, condVar = TRUE))
        list(group = as.character(d$grpvar), term = as.character(d$term),
             level = as.character(d$grp), condval = d$condval, condsd = d$condsd)
    })
}

# lme4::allFit(), restricted to the optimizers installed. lme4 1.1-31's
# allFit() itself fails when both dfoptim and optimx are missing ("logical
# subscript too long": it filters its method table twice with the unfiltered
# index), so each refit is done here exactly as allFit's worker does it:
# update(m, control = <the model's control, optimizer replaced, maxfun 1e5>).
lmm_tb_allfit <- function(fit, data, opts, maxfun) {
    lmm_tb_run(function() {
        m <- lmm_tb_prepare(fit, data, opts, lme4 = TRUE)
        tab <- lme4:::meth.tab.0
        have <- function(p) nzchar(system.file(package = p))
        keep <- !(tab[, "optimizer"] == "nmkbw" & !have("dfoptim")) &
            !(tab[, "optimizer"] == "optimx" & !have("optimx"))
        tab <- tab[keep, , drop = FALSE]
        fit_names <- gsub("\\.$", "", paste(tab[, "optimizer"], tab[, "method"], sep = "."))
        glmm <- lme4::isGLMM(m)
        base_ctrl <- stats::getCall(m)$control
        base_args <- if (is.null(base_ctrl)) list() else lapply(as.list(base_ctrl)[-1L], eval)
        rows <- lapply(seq_len(nrow(tab)), function(i) {
            optimizer <- tab[i, "optimizer"]
            method <- tab[i, "method"]
            ctrl <- base_args
            ctrl$optimizer <- optimizer
            cc <- if (is.null(ctrl$optCtrl)) list() else ctrl$optCtrl
            cc[[lme4:::maxfun_arg[[optimizer]]]] <- maxfun
            if (optimizer == "optimx") cc$method <- method
            if (optimizer == "nloptwrap") cc$algorithm <- method
            cc <- cc[intersect(names(cc), lme4:::opt.ctrls[[optimizer]])]
            ctrl$optCtrl <- cc
            ctrl <- do.call(if (glmm) lme4::glmerControl else lme4::lmerControl, ctrl)
            # update() puts the symbol `ctrl` in the call: bind it where the
            # call is evaluated, as allFit() does.
            assign("ctrl", ctrl, envir = environment(stats::formula(m)))
            t0 <- proc.time()[["elapsed"]]
            res <- lmm_with_conditions(function() stats::update(m, control = ctrl))
            elapsed <- proc.time()[["elapsed"]] - t0
            x <- res$value
            if (inherits(x, "error")) {
                return(list(optimizer = fit_names[i], ok = FALSE,
                            fixef = rep(NA_real_, length(lme4::fixef(fit))),
                            loglik = NA_real_, sdcor = NULL, feval = NA_real_,
                            time = elapsed, messages = conditionMessage(x)))
            }
            msgs <- unique(c(as.character(unlist(x@optinfo$conv$lme4$messages)),
                             res$warnings, res$messages))
            list(optimizer = fit_names[i], ok = TRUE, fixef = unname(lme4::fixef(x)),
                 loglik = as.numeric(stats::logLik(x)),
                 sdcor = as.data.frame(lme4::VarCorr(x))$sdcor,
                 feval = as.numeric(x@optinfo$feval), time = elapsed,
                 messages = paste(msgs, collapse = "; "))
        })
        vc <- as.data.frame(lme4::VarCorr(fit))
        vc_names <- ifelse(vc$grp == "Residual", "sigma",
                    ifelse(is.na(vc$var2), paste0("sd_", vc$var1, "|", vc$grp),
                           paste0("cor_", vc$var1, ".", vc$var2, "|", vc$grp)))
        list(rows = rows, fixef_names = names(lme4::fixef(fit)), sdcor_names = vc_names)
    })
}

# ---------------------------------------------------------------------------
# update(): R's update.formula on checked formulas
# ---------------------------------------------------------------------------

lmm_tb_update_formula <- function(old, new, columns, allowed) {
    lmm_tb_run(function() {
        chk <- lmm_check_formula(new, c(columns, "."), allowed)
        if (!isTRUE(chk$ok)) return(list(check = chk))
        f_old <- lmm_make_formula(old, columns, allowed)
        f_new <- lmm_make_formula(new, c(columns, "."), allowed)
        f <- stats::update.formula(f_old, f_new)
        text <- paste(deparse(f, width.cutoff = 500L), collapse = " ")
        list(formula = text, vars = lmm_check_formula(text, columns, allowed)$vars)
    })
}
