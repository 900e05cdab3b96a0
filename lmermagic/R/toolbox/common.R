# The toolbox's shared R plumbing (the R half of toolbox/_common.py). Every
# file of R/toolbox/ is sys.source()d into the same private environment as
# R/*.R (parent baseenv()): every non-base function is called through its
# namespace, nothing is attached, nothing is written to the global environment
# (except R's own .Random.seed, restored when a seed is given).
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

# Bind in env what the stored call refers to (as fitting.R's lmm_fit binds it).
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
        fit <- lmm_compat_as_lmerMod(fit)
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
