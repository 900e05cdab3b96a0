# Warm starts for lmer (issue 23): a cheap estimate of theta, mapped onto the
# full model's random-effect terms, goes to lme4 as start=. lme4 then runs its
# own optimizer with its own tolerances from there, so the optimum is lme4's;
# what changes is only where the search begins (and so, within the optimizer's
# tolerance, where it stops). Two sources of the estimate:
#   "subsample": the same model fitted by lme4 on the rows of a subset of the
#                levels of the largest grouping factor (every k-th level, no
#                random numbers: R's RNG state is the user's);
#   "mixedlm":   theta from the Python package mixedlm's fit, computed in Python
#                (warmstart.py) and passed in opts$warm_theta.
# Any failure gives the default start, and meta says why.

# The full model's terms as lme4 orders them (terms by decreasing number of
# levels), with the bounds and model frame: lFormula, what lmer() runs first.
lmm_warm_terms <- function(data, formula, opts) {
    todo <- lmm_fit_call(data, formula, opts, fun = quote(lme4::lFormula))
    todo$call$REML <- NULL
    eval(todo$call, todo$env)
}

# Every k-th level of the largest grouping factor, at least 10 levels kept;
# returns the rows of `data` to fit.
lmm_warm_rows <- function(lf, fraction = 0.2) {
    ff <- lf$reTrms$flist[[names(lf$reTrms$cnms)[1L]]]
    lev <- levels(ff)
    m <- min(length(lev), max(10L, ceiling(fraction * length(lev))))
    chosen <- lev[unique(round(seq(1L, length(lev), length.out = m)))]
    as.integer(rownames(lf$fr))[ff %in% chosen]
}

# theta of the source's terms (group, cols, theta) in the order of cnms, or a
# reason why not. A source term is used once.
lmm_warm_map <- function(cnms, group, ncol, cols, theta) {
    ends <- cumsum(ncol)
    tends <- cumsum(ncol * (ncol + 1L) / 2L)
    if (length(cols) != sum(ncol) || length(theta) != sum(ncol * (ncol + 1L) / 2L))
        return("the estimate's terms do not add up")
    used <- rep(FALSE, length(group))
    out <- numeric()
    for (j in seq_along(cnms)) {
        hit <- 0L
        for (i in seq_along(group)) {
            if (used[i] || group[i] != names(cnms)[j] || ncol[i] != length(cnms[[j]])) next
            if (identical(cols[(ends[i] - ncol[i] + 1L):ends[i]], as.character(cnms[[j]]))) {
                hit <- i
                break
            }
        }
        if (hit == 0L) return(sprintf("no estimate for the term of '%s'", names(cnms)[j]))
        used[hit] <- TRUE
        k <- ncol[hit] * (ncol[hit] + 1L) / 2L
        out <- c(out, theta[(tends[hit] - k + 1L):tends[hit]])
    }
    if (!all(is.finite(out))) return("the estimate is not finite")
    out
}

# A subsample fit: lme4 with the request's options, no derivative check, no
# convergence warnings (it is a starting point, not a result).
lmm_warm_subsample <- function(data, formula, opts, lf) {
    rows <- lmm_warm_rows(lf)
    sub <- data[rows, , drop = FALSE]
    for (f in names(sub)) if (is.factor(sub[[f]])) sub[[f]] <- droplevels(sub[[f]])
    o <- opts
    o$ddf <- "lme4"
    o$control$calc_derivs <- FALSE
    o$control$checks <- list(check.conv.grad = "ignore", check.conv.singular = "ignore",
                             check.conv.hess = "ignore", check.nlev.gtr.1 = "ignore",
                             check.nlev.gtreq.5 = "ignore")
    todo <- lmm_fit_call(sub, formula, o)
    fit <- suppressWarnings(suppressMessages(eval(todo$call, todo$env)))
    cn <- fit@cnms
    list(group = names(cn), ncol = lengths(cn), cols = unlist(cn, use.names = FALSE),
         theta = unname(lme4::getME(fit, "theta")), evals = fit@optinfo$feval,
         rows = length(rows))
}

# opts$warm_start: "subsample" or "mixedlm" (then opts$warm_theta: group, ncol,
# cols, theta, evals; or failed: the reason). Returns list(theta = start or
# NULL, meta = what model.meta reports).
lmm_warm_start <- function(data, formula, opts) {
    t0 <- Sys.time()
    method <- opts$warm_start
    meta <- list(warm_start = method)
    src <- NULL
    lf <- tryCatch(lmm_warm_terms(data, formula, opts), error = function(e) e)
    if (inherits(lf, "error")) {
        src <- paste("lFormula failed:", conditionMessage(lf))
    } else if (method == "subsample") {
        src <- tryCatch(lmm_warm_subsample(data, formula, opts, lf),
                        error = function(e) paste("the subsample fit failed:",
                                                  conditionMessage(e)))
    } else if (method == "mixedlm") {
        src <- opts$warm_theta
        if (length(src$failed)) src <- src$failed
    } else {
        stop("unknown warm start")
    }
    theta <- if (is.character(src)) src
             else lmm_warm_map(lf$reTrms$cnms, src$group, as.integer(src$ncol), src$cols,
                               as.numeric(src$theta))
    if (is.character(theta)) {
        meta$warm_start <- paste0("none (", method, ": ", theta, ")")
        theta <- NULL
    } else {
        theta <- pmax(theta, lf$reTrms$lower)
        meta$warm_start_theta <- theta
        if (length(src$evals)) meta$warm_start_evals <- as.integer(src$evals)
        if (length(src$rows)) meta$warm_start_rows <- as.integer(src$rows)
    }
    # R's part, plus mixedlm's fit in Python
    meta$warm_start_seconds <- as.numeric(difftime(Sys.time(), t0, units = "secs")) +
        if (is.list(src) && length(src$seconds)) as.numeric(src$seconds) else 0
    list(theta = theta, meta = meta)
}
