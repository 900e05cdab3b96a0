# lmermagic's R side. rbridge.py sys.source()s this file into a private
# environment whose parent is baseenv(): nothing here is attached, nothing is
# written to the global environment, and every non-base function is called
# through its namespace so that the user's R session cannot change our results.

# ---------------------------------------------------------------------------
# Formula safety
# ---------------------------------------------------------------------------

# The allowlist itself lives in Python (lmermagic.request.ALLOWED_FUNCTIONS)
# and arrives here as a named list: package -> function names.
# Names usable as values without being columns.
lmm_constants <- c("pi", "Inf", "T", "F")

# Parse the formula text without evaluating it and walk the call tree.
# Returns list(ok, message, vars, calls): vars are the symbols used as values,
# calls the names of functions called. Nothing here evaluates user text.
lmm_check_formula <- function(text, columns, allowed) {
    exprs <- tryCatch(parse(text = text, keep.source = FALSE),
                      error = function(e) e)
    if (inherits(exprs, "error")) {
        return(list(ok = FALSE, kind = "parse", message = conditionMessage(exprs)))
    }
    if (length(exprs) != 1L) {
        return(list(ok = FALSE, kind = "shape",
                    message = sprintf("a formula is one expression 'lhs ~ rhs'; found %d",
                                      length(exprs))))
    }
    f <- exprs[[1L]]
    if (!is.call(f) || !identical(f[[1L]], as.name("~")) || length(f) != 3L) {
        return(list(ok = FALSE, kind = "shape",
                    message = "a formula needs a response and a right-hand side: 'lhs ~ rhs'"))
    }
    allowed <- unlist(allowed, use.names = FALSE)
    vars <- character()
    calls <- character()
    bad <- character()
    walk <- function(x) {
        if (is.call(x)) {
            fn <- x[[1L]]
            if (is.symbol(fn)) {
                name <- as.character(fn)
                calls <<- c(calls, name)
                if (!(name %in% allowed)) {
                    bad <<- c(bad, if (make.names(name) == name) paste0(name, "()")
                                   else paste0("`", name, "`"))
                }
            } else {
                bad <<- c(bad, paste(deparse(fn, width.cutoff = 60L)[1L], "(...)"))
            }
            args <- as.list(x)[-1L]
            for (a in args) if (!missing(a)) walk(a)
        } else if (is.symbol(x)) {
            name <- as.character(x)
            if (nzchar(name)) vars <<- c(vars, name)
        } else if (is.numeric(x) || is.character(x) || is.logical(x) || is.null(x)) {
            NULL
        } else {
            bad <<- c(bad, paste("a", typeof(x), "value"))
        }
    }
    walk(f)
    vars <- unique(vars)
    unknown <- setdiff(vars, c(columns, lmm_constants))
    list(ok = length(bad) == 0L && length(unknown) == 0L, kind = "tree",
         bad = unique(bad), unknown = unknown,
         vars = intersect(vars, columns), calls = unique(calls))
}

# An environment holding only the allowed functions, with emptyenv() as parent:
# the formula's environment. A call that slipped through the tree check fails
# there with "could not find function".
# allowed: package -> function names; names under "" are looked up in base,
# stats, splines and utils, in that order (user extensions).
# The functions are looked up once per distinct allowlist (lmm_cache); every
# formula still gets an environment of its own.
lmm_cache <- new.env(parent = emptyenv())

lmm_safe_env <- function(allowed) {
    if (!identical(lmm_cache$allowed, allowed)) {
        funs <- list()
        for (i in seq_along(allowed)) {
            pkg <- names(allowed)[i]
            where <- if (nzchar(pkg)) pkg else c("base", "stats", "splines", "utils")
            for (name in allowed[[i]]) {
                for (p in where) {
                    fn <- get0(name, envir = asNamespace(p), inherits = FALSE)
                    if (is.function(fn)) { funs[[name]] <- fn; break }
                }
            }
        }
        lmm_cache$funs <- c(funs, list(pi = base::pi, T = TRUE, F = FALSE))
        lmm_cache$allowed <- allowed
    }
    list2env(lmm_cache$funs, envir = new.env(parent = emptyenv()))
}

lmm_make_formula <- function(text, columns, allowed) {
    chk <- lmm_check_formula(text, columns, allowed)
    if (!isTRUE(chk$ok)) stop("the formula did not pass lmermagic's safety check")
    env <- lmm_safe_env(allowed)
    f <- parse(text = text, keep.source = FALSE)[[1L]]
    # The tree was checked: evaluating `~` only builds the formula object.
    eval(f, env)
}

# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

# codes: 1-based integer codes (NA allowed); uniques: level labels in the
# order pandas found them. sort_levels: order levels as R's factor() would.
lmm_factor <- function(codes, uniques, sort_levels, ordered) {
    if (sort_levels && length(uniques) > 1L) {
        s <- sort(uniques)
        codes <- match(uniques, s)[codes]
        uniques <- s
    }
    attr(codes, "levels") <- uniques
    class(codes) <- if (ordered) c("ordered", "factor") else "factor"
    codes
}

lmm_frame <- function(cols, names, nrow) {
    names(cols) <- names
    attr(cols, "row.names") <- c(NA_integer_, -as.integer(nrow))
    class(cols) <- "data.frame"
    cols
}

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
    for (bar in lme4::findbars(formula)) {
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
    invisible(TRUE)
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
lmm_fit <- function(data, formula_text, opts, allowed) {
    kind <- opts$kind
    res <- lmm_with_conditions(function() {
        for (f in opts$factors) data[[f]] <- factor(data[[f]])
        formula <- lmm_make_formula(formula_text, names(data), allowed)
        lmm_preflight(formula, data, kind)
        fitenv <- new.env(parent = baseenv())
        fitenv$formula <- formula
        cl <- switch(kind,
            lmer = {
                # Kenward-Roger goes through lmerTest; Satterthwaite df are ours.
                fun <- if (opts$ddf == "kenward-roger") quote(lmerTest::lmer)
                       else quote(lme4::lmer)
                call("lmer", formula = quote(formula), data = quote(data), REML = opts$reml)
            },
            glmer = {
                fitenv$family <- lmm_make_family(opts$family, opts$link)
                fun <- quote(lme4::glmer)
                call("glmer", formula = quote(formula), data = quote(data),
                     family = quote(family))
            },
            glmer.nb = {
                fun <- quote(lme4::glmer.nb)
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
        fitenv$data <- data
        t0 <- Sys.time()
        fit <- eval(cl, fitenv)
        t1 <- Sys.time()
        # Show the formula itself, not the symbol it was bound to, in summary().
        fit@call$formula <- formula
        res <- lmm_results(fit, kind, opts$ddf)
        # R's own work, timed where it happens: what an R user would pay for the
        # fit and for the same tables (benchmarks/ report the rest as overhead).
        res$tables$meta$r_fit_seconds <- as.numeric(difftime(t1, t0, units = "secs"))
        res$tables$meta$r_tables_seconds <- as.numeric(difftime(Sys.time(), t1,
                                                                units = "secs"))
        res$tables$na_counts <- vapply(data, function(v) sum(is.na(v)), 1L)
        c(res, list(data = data))
    })
    out <- list(warnings = res$warnings, messages = res$messages)
    if (inherits(res$value, "error")) {
        out$error <- conditionMessage(res$value)
        out$error_class <- class(res$value)[1L]
        return(out)
    }
    c(out, res$value)
}

# The fixed-effects table. Satterthwaite df come from lmm_satterthwaite()
# (satterthwaite.R) on the plain lme4 fit: lmerTest's numbers with a third to a
# half fewer deviance evaluations; Kenward-Roger from lmerTest/pbkrtest. $matrix
# is R's coefficient matrix (for summary()), $meta says how the df were computed.
lmm_coef_table <- function(fit, kind, ddf) {
    meta <- list()
    if (kind == "lmer" && ddf == "satterthwaite" && !inherits(fit, "lmerModLmerTest")) {
        sat <- lmm_satterthwaite(fit)
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
    list(table = out, matrix = ct, meta = meta)
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
# on the fit, for summary().
lmm_results <- function(fit, kind, ddf) {
    coefs <- lmm_coef_table(fit, kind, ddf)
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

lmm_summary_text <- function(fit, ddf, data_name) {
    res <- lmm_with_conditions(function() {
        s <- if (inherits(fit, "lmerModLmerTest") && ddf != "lme4") {
            method <- if (ddf == "kenward-roger") "Kenward-Roger" else "Satterthwaite"
            lmerTest:::summary.lmerModLmerTest(fit, ddf = method)
        } else {
            s <- lme4:::summary.merMod(fit)
            ct <- attr(fit, "lmermagic_coefmat")
            if (ddf == "satterthwaite" && !is.null(ct) && ncol(ct) == 5L) {
                # lmerTest's layout, with the df computed at fit time.
                s$coefficients <- ct
                s$methTitle <- paste0(s$methTitle, ". t-tests use Satterthwaite's method")
            }
            s
        }
        utils::capture.output(print(s))
    })
    if (inherits(res$value, "error")) stop(conditionMessage(res$value))
    out <- res$value
    at <- which(out == "   Data: data")
    if (length(at)) out[at[1L]] <- paste0("   Data: ", data_name)
    paste(out, collapse = "\n")
}

# ---------------------------------------------------------------------------
# Results to Python
# ---------------------------------------------------------------------------

# A nested list of atomic vectors flattened into a few pieces that cross to
# Python in one go (Python's rbridge.unpack rebuilds it): one row of `spec`
# per node in depth-first order (kind, length, pool offset, offset of its
# names in the string pool or -1, rows and columns of a matrix or -1), and pools
# of doubles, integers (logicals included) and strings. Top-level elements
# named in `keep` stay R objects (kind 7, offset into `kept`).
# Kinds: 0 NULL, 1 list, 2 named list, 3 double, 4 integer, 5 logical,
# 6 character, 7 kept, 8 long double vector and 9 long integer vector (offset
# into `vecs`).
lmm_pack <- function(x, keep = character()) {
    spec <- list(); dbl <- list(); int <- list(); chr <- list(); kept <- list()
    vecs <- list()
    n_dbl <- 0L; n_int <- 0L; n_chr <- 0L
    node <- function(kind, len, off = -1L, names_off = -1L, dims = c(-1L, -1L)) {
        spec[[length(spec) + 1L]] <<- c(kind, len, off, names_off, dims)
    }
    add_names <- function(nm) {
        if (is.null(nm)) return(-1L)
        off <- n_chr
        chr[[length(chr) + 1L]] <<- nm
        n_chr <<- n_chr + length(nm)
        off
    }
    walk <- function(v) {
        if (is.null(v)) return(node(0L, 0L))
        if (is.list(v)) {
            nm <- names(v)
            node(if (is.null(nm)) 1L else 2L, length(v), -1L, add_names(nm))
            for (e in v) walk(e)
            return(invisible())
        }
        if (is.factor(v)) v <- as.character(v)
        d <- dim(v)
        dims <- if (length(d) == 2L) d else c(-1L, -1L)
        names_off <- if (is.null(d)) add_names(names(v)) else -1L
        len <- length(v)
        if (len >= lmm_pack_own && (is.double(v) || is.integer(v))) {
            # long vectors (fitted values, residuals) go as they are: copying them
            # into a pool would only allocate one more large block per fit
            vecs[[length(vecs) + 1L]] <<- as.vector(v)
            node(if (is.double(v)) 8L else 9L, len, length(vecs) - 1L, names_off, dims)
        } else if (is.double(v)) {
            node(3L, len, n_dbl, names_off, dims)
            dbl[[length(dbl) + 1L]] <<- as.vector(v); n_dbl <<- n_dbl + len
        } else if (is.integer(v) || is.logical(v)) {
            node(if (is.logical(v)) 5L else 4L, len, n_int, names_off, dims)
            int[[length(int) + 1L]] <<- as.integer(v); n_int <<- n_int + len
        } else if (is.character(v)) {
            node(6L, len, n_chr, names_off, dims)
            chr[[length(chr) + 1L]] <<- as.vector(v); n_chr <<- n_chr + len
        } else {
            stop(sprintf("internal: cannot pack a %s", class(v)[1L]))
        }
    }
    if (length(keep) && is.list(x) && !is.null(names(x))) {
        nm <- names(x)
        node(2L, length(x), -1L, add_names(nm))
        for (i in seq_along(x)) {
            if (nm[[i]] %in% keep) {
                node(7L, 1L, length(kept))
                kept[[length(kept) + 1L]] <- x[[i]]
            } else {
                walk(x[[i]])
            }
        }
    } else {
        walk(x)
    }
    # The strings go as one UTF-8 string and their lengths in bytes (-1: NA):
    # one string crosses much faster than many.
    chr <- enc2utf8(as.character(unlist(chr, use.names = FALSE)))
    na <- is.na(chr)
    chr[na] <- ""
    nbytes <- nchar(chr, type = "bytes")
    nbytes[na] <- -1L
    list(spec = as.integer(unlist(spec, use.names = FALSE)),
         dbl = as.double(unlist(dbl, use.names = FALSE)),
         int = as.integer(unlist(int, use.names = FALSE)),
         chr = paste(chr, collapse = ""),
         nbytes = as.integer(nbytes),
         kept = kept,
         vecs = vecs)
}

# Numeric vectors at least this long cross on their own (kinds 8 and 9).
lmm_pack_own <- 4096L

lmm_versions <- function() {
    pk <- c("lme4", "lmerTest", "numDeriv", "pbkrtest", "Matrix", "emmeans", "geepack")
    v <- vapply(pk, function(p) {
        if (nzchar(system.file(package = p))) as.character(utils::packageVersion(p))
        else NA_character_
    }, "")
    c(R = paste(R.version$major, R.version$minor, sep = "."), R_home = R.home(), v)
}

lmm_dataset <- function(name, package) {
    env <- new.env(parent = emptyenv())
    utils::data(list = name, package = package, envir = env)
    if (!exists(name, envir = env, inherits = FALSE)) stop("no data set")
    d <- get(name, envir = env)
    as.data.frame(d)
}
