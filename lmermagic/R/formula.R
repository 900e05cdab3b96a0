# The formula safety check (the R half of request.py's allowlist and of
# fitting.py's formula check).
# sys.source()d by rbridge.py, with every file of R/, into one private
# environment whose parent is baseenv() (see rbridge.R).

# ---------------------------------------------------------------------------
# Formula safety
# ---------------------------------------------------------------------------

# The allowlist itself lives in Python (lmermagic.request.ALLOWED_FUNCTIONS)
# and arrives here as a named list: package -> function names.
# Names usable as values without being columns.
lmm_constants <- c("pi", "Inf", "T", "F")

# Parse the formula text without evaluating it and walk the call tree.
# Returns list(ok, message, vars, calls, ...): vars are the symbols used as
# values, calls the names of functions called; covs the covariance terms used
# (lme4 2.x's us/diag/cs/ar1, allowed only as terms of the right-hand side's
# sum and only in the shapes lmm_cov_term_problem() accepts), cov_problems
# what is wrong with them, cov_missing those this lme4 lacks (with its version
# in lme4). Nothing here evaluates user text.
# one_sided: the formula is '~ rhs' (glmmTMB's ziformula and dispformula).
lmm_check_formula <- function(text, columns, allowed, one_sided = FALSE) {
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
    if (isTRUE(one_sided)) {
        if (!is.call(f) || !identical(f[[1L]], as.name("~")) || length(f) != 2L) {
            return(list(ok = FALSE, kind = "shape",
                        message = "this formula has a right-hand side only: '~ rhs'"))
        }
    } else if (!is.call(f) || !identical(f[[1L]], as.name("~")) || length(f) != 3L) {
        return(list(ok = FALSE, kind = "shape",
                    message = "a formula needs a response and a right-hand side: 'lhs ~ rhs'"))
    }
    allowed <- unlist(allowed, use.names = FALSE)
    vars <- character()
    calls <- character()
    bad <- character()
    covs <- character()
    cov_problems <- character()
    see_fn <- function(fn) {
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
    }
    walk <- function(x) {
        if (lmm_is_cov_term(x)) {
            # A covariance term (lme4 >= 2.0) anywhere but as a term of the
            # right-hand side's sum: refused, its arguments still checked.
            cov_problems <<- c(cov_problems, sprintf(
                "%s() is a covariance term and must be a term of the formula's sum, like 'y ~ x + %s(1 + x | g)'",
                as.character(x[[1L]]), as.character(x[[1L]])))
            for (a in as.list(x)[-1L]) if (!missing(a)) walk(a)
            return(invisible())
        }
        if (is.call(x)) {
            see_fn(x[[1L]])
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
    # The right-hand side's sum (through +, the left of a binary -): where a
    # covariance term may stand, as lme4 2.x's findbars_x() finds it.
    summand <- function(x) {
        if (is.call(x) && (identical(x[[1L]], as.name("+")) ||
                           (identical(x[[1L]], as.name("-")) && length(x) == 3L))) {
            see_fn(x[[1L]])
            summand(x[[2L]])
            if (length(x) == 3L) {
                if (identical(x[[1L]], as.name("+"))) summand(x[[3L]]) else walk(x[[3L]])
            }
        } else if (lmm_is_cov_term(x)) {
            name <- as.character(x[[1L]])
            covs <<- c(covs, name)
            problem <- lmm_cov_term_problem(x)
            if (!is.null(problem)) cov_problems <<- c(cov_problems, problem)
            # the bar term is checked as any other part of the formula, and so
            # is every other argument (code smuggled there is reported as such)
            for (a in as.list(x)[-1L]) if (!missing(a)) walk(a)
        } else {
            walk(x)
        }
    }
    see_fn(f[[1L]])
    if (length(f) == 3L) walk(f[[2L]])   # the response; a one-sided formula has none
    summand(f[[length(f)]])
    vars <- unique(vars)
    unknown <- setdiff(vars, c(columns, lmm_constants))
    covs <- unique(covs)
    # covariance terms this lme4 does not have (lme4 < 2.0 has none)
    cov_missing <- if (length(covs)) setdiff(covs, lmm_compat_cov_specials()) else character()
    list(ok = length(bad) == 0L && length(unknown) == 0L && length(cov_problems) == 0L &&
             length(cov_missing) == 0L,
         kind = "tree", bad = unique(bad), unknown = unknown,
         vars = intersect(vars, columns), calls = unique(calls),
         covs = covs, cov_problems = unique(cov_problems), cov_missing = cov_missing,
         lme4 = if (length(cov_missing)) utils::packageDescription("lme4")$Version)
}

# lme4 2.x's covariance terms: us(x | g), diag(x | g), cs(x | g), ar1(x | g),
# the last three also with hom = TRUE or hom = FALSE (lme4 2.1-0: lme4_specials
# in R/utilities.R, findbars_x() in lFormula(), upReTrms() in R/covariance.R,
# which reads hom unevaluated and accepts a literal TRUE or FALSE only).
lmm_cov_names <- c("us", "diag", "cs", "ar1")

# TRUE for a call that lme4 2.x reads as a covariance term: one of the names
# above applied to a bar term first. Whether it is well formed is
# lmm_cov_term_problem()'s question.
lmm_is_cov_term <- function(x) {
    is.call(x) && is.symbol(x[[1L]]) && as.character(x[[1L]]) %in% lmm_cov_names &&
        length(x) >= 2L && is.call(x[[2L]]) &&
        (identical(x[[2L]][[1L]], as.name("|")) || identical(x[[2L]][[1L]], as.name("||")))
}

# NULL for a covariance term of exactly the shapes lme4 2.x accepts, else what
# is wrong with it.
lmm_cov_term_problem <- function(x) {
    name <- as.character(x[[1L]])
    shape <- sprintf("%s(x | g)%s", name,
                     if (name == "us") "" else sprintf(" or %s(x | g, hom = TRUE)", name))
    args <- as.list(x)[-1L]
    nms <- names(args)
    if (is.null(nms)) nms <- rep("", length(args))
    if (nzchar(nms[1L])) {
        return(sprintf("%s(): the random-effects term comes first and unnamed: %s", name, shape))
    }
    if (identical(x[[2L]][[1L]], as.name("||"))) {
        return(sprintf("%s() takes a term with one bar, x | g (not x || g): %s", name, shape))
    }
    if (length(x[[2L]]) != 3L) {
        return(sprintf("%s() takes a term 'x | g' with an effect and a grouping factor", name))
    }
    if (length(args) == 1L) return(NULL)
    if (name == "us") {
        return("us() takes the random-effects term only (an unstructured covariance has no hom=)")
    }
    if (length(args) > 2L || !identical(nms[2L], "hom")) {
        return(sprintf("%s() takes the random-effects term and optionally hom = TRUE or hom = FALSE only: %s",
                       name, shape))
    }
    hom <- args[[2L]]
    if (!(is.logical(hom) && length(hom) == 1L && !is.na(hom))) {
        return(sprintf("%s(): hom takes TRUE or FALSE, written out (lme4 reads it without evaluating it)",
                       name))
    }
    NULL
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

lmm_make_formula <- function(text, columns, allowed, one_sided = FALSE) {
    chk <- lmm_check_formula(text, columns, allowed, one_sided)
    if (!isTRUE(chk$ok)) stop("the formula did not pass lmermagic's safety check")
    env <- lmm_safe_env(allowed)
    f <- parse(text = text, keep.source = FALSE)[[1L]]
    # The tree was checked: evaluating `~` only builds the formula object.
    eval(f, env)
}
