# Many models in one call: the R half of toolbox/many.py.
#
# A chunk of models arrives as parallel vectors: the model's number, its
# formula text and the rows it uses (NULL: every row). Each model is fitted
# and reduced to its tables (coefficients with Satterthwaite df, variance
# components, one glance row, its warnings) inside its own tryCatch, so that
# one failure is recorded and the rest go on. The tables of the chunk go back
# stacked, one vector per column, with the model's number on every row.
#
# Reusing the design. Models on every row whose right-hand side and complete
# rows are those of a model fitted before in this R session share its design:
# lme4's own lmer()/glmer() run without their lFormula() step
# (lmm_compat_prebuilt), on a fresh copy of the design with the new response
# put in. A model's complete rows are those with no missing value in the
# columns it uses *and* a response that is not NA or NaN once computed
# (sqrt() of a negative, log() of a negative: the rows lme4's model frame
# drops); the design's own rows are the rows of its model frame (its
# right-hand side may drop more, as log(x) of a negative x). lFormula() on the
# same rhs and complete rows builds the same design, so the fit is the one a
# fresh lmer() gives, to the last bit, in whatever order the models come.

lmm_many_state <- new.env(parent = emptyenv())

# The data of a batch, once per R session (a worker keeps the handle): the
# columns the models use, with `factors` made factors as lmm_fit does.
lmm_many_data <- function(data, factors) {
    for (f in factors) data[[f]] <- factor(data[[f]])
    # designs built on other data are of no use to this batch
    lmm_many_state$designs <- list()
    list(data = data)
}

# A design cache entry: the rhs text, the complete-row pattern, the rows of
# its model frame, what building it said beyond its response (see
# lmm_many_said) and the pristine design. `.lmm_design` for
# lmm_compat_prebuilt's function: get() hands over the design prepared for
# this fit, or builds one with lme4 (and keeps a pristine copy of it and what
# lme4 said while building it).
lmm_many_design <- function(prepared) {
    d <- new.env(parent = emptyenv())
    d$mod <- prepared
    d$built <- NULL
    d$said <- list()
    d$get <- function(mc, pf) {
        if (!is.null(d$mod)) return(d$mod)
        mc$.lmm_design <- NULL
        run <- lmm_many_noting(eval(mc, pf))
        d$built <- lmm_compat_deepcopy(run$value)
        d$said <- run$said
        run$value
    }
    d
}

# `expr`'s value and the warnings and messages it gave, as list(type, text);
# they reach the caller's handlers as usual.
lmm_many_noting <- function(expr) {
    said <- list()
    note <- function(type) function(cond) {
        said[[length(said) + 1L]] <<- list(type, conditionMessage(cond))
    }
    value <- withCallingHandlers(expr, warning = note("warning"), message = note("message"))
    list(value = value, said = said)
}

# What building a design said that its response did not: the warnings of its
# right-hand side ("NaNs produced" by log(x)) and lme4's notes on the design
# ("rank deficient so dropping 1 column"). A model reusing the design says
# them again, as lmer() would while building it.
lmm_many_said <- function(design_said, response_said) {
    out <- design_said
    for (s in response_said) {
        at <- Position(function(t) identical(t, s), out)
        if (!is.na(at)) out <- out[-at]
    }
    out
}

lmm_many_say <- function(said) {
    for (s in said) {
        if (s[[1L]] == "warning") warning(s[[2L]], call. = FALSE)
        else message(s[[2L]], appendLF = FALSE)
    }
}

.lmm_many_max_designs <- 16L

# The model's response computed, and its complete rows (see above); y is
# NULL when the response cannot be computed here or is not one value per row
# (the model is then fitted whole, and lme4 says what is wrong).
lmm_many_complete <- function(formula, data, opts) {
    cols <- intersect(c(all.vars(formula), opts$weights, opts$offset), names(data))
    complete <- stats::complete.cases(data[cols])
    run <- tryCatch(lmm_many_noting(eval(formula[[2L]], data, environment(formula))),
                    error = function(e) NULL)
    y <- run$value
    if (is.null(y) || NROW(y) != nrow(data)) return(list(y = NULL, complete = NULL))
    list(y = y, complete = complete & stats::complete.cases(y), said = run$said)
}

# The rows of `data` a design's model frame kept (NULL: cannot tell).
lmm_many_kept <- function(mod, data) {
    kept <- !is.na(match(rownames(data), rownames(mod$fr)))
    if (sum(kept) != nrow(mod$fr)) NULL else kept
}

# One model: its fit (lme4's lmer/glmer) or an error.
lmm_many_fit_one <- function(data, formula, rows, opts, prebuilt) {
    kind <- opts$kind
    if (!is.null(rows)) data <- droplevels(data[rows, , drop = FALSE])
    reuse <- is.null(rows) && !is.null(prebuilt)
    if (!reuse) {
        lmm_preflight(formula, data, kind)
        todo <- lmm_fit_call(data, formula, opts)
        return(eval(todo$call, todo$env))
    }
    rhs <- paste(deparse(formula[[3L]], width.cutoff = 500L), collapse = " ")
    resp <- lmm_many_complete(formula, data, opts)
    complete <- resp$complete
    prepared <- NULL
    for (entry in if (!is.null(complete)) lmm_many_state$designs) {
        if (identical(entry$rhs, rhs) && identical(entry$complete, complete)) {
            y <- resp$y
            if (kind == "lmer" && (!is.numeric(y) || is.matrix(y))) {
                lmm_preflight(formula, data, kind)  # says why
            }
            prepared <- lmm_compat_deepcopy(entry$mod)
            prepared$fr[[1L]] <- if (is.matrix(y)) y[entry$kept, , drop = FALSE]
                                 else y[entry$kept]
            lmm_many_say(entry$said)
            break
        }
    }
    if (is.null(prepared)) lmm_preflight(formula, data, kind)
    design <- lmm_many_design(prepared)
    todo <- lmm_fit_call(data, formula, opts, fun = quote(.lmm_prebuilt))
    todo$env$.lmm_prebuilt <- prebuilt
    todo$env$.lmm_design <- design
    todo$call$.lmm_design <- quote(.lmm_design)
    fit <- eval(todo$call, todo$env)
    fit@call$.lmm_design <- NULL
    kept <- if (!is.null(design$built) && !is.null(complete))
                lmm_many_kept(design$built, data)
    if (!is.null(kept)) {
        n <- length(lmm_many_state$designs)
        if (n >= .lmm_many_max_designs) lmm_many_state$designs <- lmm_many_state$designs[-1L]
        lmm_many_state$designs[[length(lmm_many_state$designs) + 1L]] <-
            list(rhs = rhs, complete = complete, kept = kept, mod = design$built,
                 said = lmm_many_said(design$said, resp$said))
    }
    fit
}

# goodness.R's pieces of the R² and ICC, prefixed gf_, as glance columns; NA
# where they cannot be computed (the model's tables stand without them). The
# null model's warnings (log-link count models) are not the model's: dropped.
lmm_many_goodness <- function(fit, null_fit) {
    p <- tryCatch(withCallingHandlers(lmm_gf_pieces(fit, null_fit),
                                      warning = function(w) invokeRestart("muffleWarning"),
                                      message = function(m) invokeRestart("muffleMessage")),
                  error = function(e) NULL)
    if (is.null(p)) {
        p <- list(family = "", link = "", nobs = NA_integer_, var_fixed = NA_real_,
                  var_random = NA_real_, var_observation = NA_real_, singular = NA,
                  sigma = NA_real_, nb_theta = NA_real_, trials = NA_real_,
                  null_intercept = NA_real_, null_var_random = NA_real_)
    }
    stats::setNames(p, paste0("gf_", names(p)))
}

# The tables of one fit: coefficients, variance components, glance.
# null_fit: for the R² of a log-link count model (lmm_gf_pieces).
lmm_many_tables <- function(fit, kind, ddf, texts, null_fit) {
    ct <- lmm_coef_table(fit, kind, ddf)$table
    vc <- as.data.frame(lme4::VarCorr(fit))
    ll <- stats::logLik(fit)
    reml <- lme4::isREML(fit)
    conv <- fit@optinfo$conv
    all_texts <- unique(c(texts, as.character(unlist(conv$lme4$messages))))
    opt_code <- if (is.null(conv$opt)) 0L else as.integer(conv$opt)
    list(
        coefs = ct,
        varcorr = list(group = as.character(vc$grp), var1 = as.character(vc$var1),
                       var2 = as.character(vc$var2), vcov = vc$vcov, sdcor = vc$sdcor),
        glance = c(list(
            nobs = as.integer(stats::nobs(fit)),
            sigma = stats::sigma(fit),
            loglik = as.numeric(ll),
            aic = stats::AIC(fit),
            bic = stats::BIC(fit),
            deviance = if (reml) lme4:::deviance.merMod(fit, REML = FALSE)
                       else stats::deviance(fit),
            converged = opt_code == 0L && !any(grepl("converge", all_texts,
                                                     ignore.case = TRUE)),
            singular = lme4::isSingular(fit),
            n_warnings = length(all_texts)),
            lmm_many_goodness(fit, null_fit)),
        texts = all_texts)
}

# ids: the models' numbers; formulas: their formula texts; row_values and
# row_lengths: each model's 1-based row numbers, one after the other, and how
# many each has (both NULL: every model on every row).
lmm_many_fit <- function(data, ids, formulas, row_values, row_lengths, opts, allowed) {
    kind <- opts$kind
    rows <- if (is.null(row_lengths)) vector("list", length(ids))
            else unname(split(row_values, rep.int(seq_along(row_lengths), row_lengths)))
    prebuilt <- if (kind %in% c("lmer", "glmer")) lmm_compat_prebuilt(kind)
    out <- list(coefs = list(), varcorr = list(), glance = list(), warnings = list(),
                errors = list())
    forms <- list()
    res <- lmm_with_conditions(function() {
        for (i in seq_along(ids)) {
            id <- ids[[i]]
            texts <- character()
            value <- tryCatch(withCallingHandlers({
                text <- formulas[[i]]
                formula <- forms[[text]]
                if (is.null(formula)) {
                    formula <- lmm_make_formula(text, names(data), allowed)
                    forms[[text]] <- formula
                }
                fit <- lmm_many_fit_one(data, formula, rows[[i]], opts, prebuilt)
                used <- rows[[i]]
                null_fit <- function() {
                    d <- if (is.null(used)) data else droplevels(data[used, , drop = FALSE])
                    lmm_gf_null_fit(fit, formula, d, opts)
                }
                lmm_many_tables(fit, kind, opts$ddf, texts, null_fit)
            }, warning = function(w) {
                texts <<- c(texts, conditionMessage(w))
                invokeRestart("muffleWarning")
            }, message = function(m) {
                texts <<- c(texts, sub("\n$", "", conditionMessage(m)))
                invokeRestart("muffleMessage")
            }), error = function(e) e)
            if (inherits(value, "error")) {
                out$errors[[length(out$errors) + 1L]] <<- list(
                    id = id, type = class(value)[1L], message = conditionMessage(value))
                next
            }
            ct <- value$coefs
            ct$id <- rep(id, length(ct$terms))
            out$coefs[[length(out$coefs) + 1L]] <<- ct
            vc <- value$varcorr
            vc$id <- rep(id, length(vc$group))
            out$varcorr[[length(out$varcorr) + 1L]] <<- vc
            out$glance[[length(out$glance) + 1L]] <<- c(list(id = id), value$glance)
            if (length(value$texts)) {
                out$warnings[[length(out$warnings) + 1L]] <<- list(
                    id = rep(id, length(value$texts)), message = value$texts)
            }
        }
    })
    if (inherits(res$value, "error")) {
        return(list(error = conditionMessage(res$value)))
    }
    list(coefs = lmm_many_stack(out$coefs), varcorr = lmm_many_stack(out$varcorr),
         glance = lmm_many_stack(out$glance), warnings = lmm_many_stack(out$warnings),
         errors = lmm_many_stack(out$errors))
}

# A list of same-named lists of vectors -> one named list of vectors.
lmm_many_stack <- function(parts) {
    if (!length(parts)) return(list())
    nm <- names(parts[[1L]])
    stats::setNames(lapply(nm, function(n) unlist(lapply(parts, `[[`, n),
                                                   use.names = FALSE)), nm)
}

# R's p.adjust per term: p values of one term across models, in `groups`.
lmm_many_p_adjust <- function(p, groups, method) {
    out <- rep(NA_real_, length(p))
    for (g in unique(groups)) {
        at <- which(groups == g)
        out[at] <- stats::p.adjust(p[at], method = method)
    }
    out
}
