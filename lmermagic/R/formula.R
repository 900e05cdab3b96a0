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
# Returns list(ok, message, vars, calls): vars are the symbols used as values,
# calls the names of functions called. Nothing here evaluates user text.
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

lmm_make_formula <- function(text, columns, allowed, one_sided = FALSE) {
    chk <- lmm_check_formula(text, columns, allowed, one_sided)
    if (!isTRUE(chk$ok)) stop("the formula did not pass lmermagic's safety check")
    env <- lmm_safe_env(allowed)
    f <- parse(text = text, keep.source = FALSE)[[1L]]
    # The tree was checked: evaluating `~` only builds the formula object.
    eval(f, env)
}
