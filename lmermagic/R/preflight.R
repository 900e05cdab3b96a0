# The design-size pre-flight (the R half of preflight.py): how large the
# matrices lme4 is about to build would be, counted from the formula's terms
# and the levels of the columns, without building them. R's own terms() says
# which variables make which term and whether a factor is coded by contrasts
# (n - 1 columns) or by indicators (n columns); the count follows
# model.matrix's rules on the rows lme4 keeps (complete cases, unused levels
# dropped).
# sys.source()d by rbridge.py, with every file of R/, into one private
# environment whose parent is baseenv() (see rbridge.R).

# The columns one variable gives, from its value on the complete rows: a
# factor, text or logical by its levels, a matrix (poly, ns, bs, cbind, scale)
# by its columns, anything else one.
lmm_design_var <- function(v) {
    if (is.logical(v)) return(list(factor = TRUE, n = 2L))  # model.matrix: FALSE, TRUE
    if (is.factor(v)) return(list(factor = TRUE,
                                  n = sum(tabulate(unclass(v), nlevels(v)) > 0L)))
    if (is.character(v)) return(list(factor = TRUE, n = length(unique(v))))
    list(factor = FALSE, n = if (is.matrix(v)) ncol(v) else 1L)
}

# The columns of a one-sided formula's model matrix on `rows`, term by term.
lmm_design_terms <- function(rhs, rows, env) {
    tt <- stats::terms(rhs)
    fac <- attr(tt, "factors")
    vars <- as.list(attr(tt, "variables"))[-1L]
    labels <- attr(tt, "term.labels")
    info <- vector("list", length(vars))
    ncols <- integer(length(labels))
    levels <- rep(NA_real_, length(labels))
    column_factor <- logical(length(labels))
    cells <- 0
    if (!length(labels)) fac <- matrix(0L, length(vars), 0L)
    for (i in which(rowSums(fac > 0L) > 0L)) {
        info[[i]] <- lmm_design_var(eval(vars[[i]], rows, env))
        # a factor's contrast matrix is built dense: levels^2 doubles
        if (info[[i]]$factor) cells <- cells + as.numeric(info[[i]]$n)^2
    }
    # Without an intercept, model.matrix codes the first factor of the first
    # term that has one by indicators (R's modelmatrix() in C).
    if (attr(tt, "intercept") == 0L) {
        first <- which(fac > 0L & vapply(info, function(v) isTRUE(v$factor) && v$n > 1L, NA),
                       arr.ind = TRUE)
        if (nrow(first)) {
            first <- first[order(first[, 2L], first[, 1L]), , drop = FALSE][1L, ]
            fac[first[[1L]], first[[2L]]] <- 2L
        }
    }
    for (j in seq_along(labels)) {
        k <- 1
        used <- which(fac[, j] > 0L)
        for (i in used) {
            v <- info[[i]]
            k <- k * (if (v$factor && fac[i, j] == 1L) max(v$n - 1L, 0L) else v$n)
        }
        ncols[j] <- k
        if (length(used) == 1L && info[[used]]$factor) {
            levels[j] <- info[[used]]$n
            column_factor[j] <- is.symbol(vars[[used]])
        }
    }
    list(labels = labels, ncols = ncols, levels = levels, column_factor = column_factor,
         intercept = attr(tt, "intercept"), p = attr(tt, "intercept") + sum(ncols),
         contrast_cells = cells)
}

# The fixed-effects matrix X (n x p) and the random-effects design: per term
# its columns and its groups, q random effects, and Z's non-zeros.
lmm_design <- function(formula, rows) {
    env <- environment(formula)
    # the right-hand side without its bars, as lme4's lFormula takes it
    fixed <- lmm_nobars(formula[[3L]])
    if (is.null(fixed)) fixed <- 1
    x <- lmm_design_terms(stats::as.formula(call("~", fixed), env = env), rows, env)
    bars <- lmm_findbars(formula)
    re <- lapply(bars, function(bar) {
        cols <- lmm_design_terms(stats::as.formula(call("~", bar[[2L]]), env = env),
                                 rows, env)$p
        groups <- length(unique(eval(bar[[3L]], rows, env)))
        list(label = lmm_label(bar), ncol = cols, groups = groups)
    })
    re_cols <- vapply(re, function(r) as.numeric(r$ncol), 1)
    re_groups <- vapply(re, function(r) as.numeric(r$groups), 1)
    list(n = nrow(rows), p = x$p, terms = x[c("labels", "ncols", "levels", "column_factor")],
         intercept = x$intercept, contrast_cells = x$contrast_cells,
         re = list(labels = vapply(re, function(r) r$label, ""), ncols = re_cols,
                   groups = re_groups),
         q = sum(re_cols * re_groups), z_nonzeros = nrow(rows) * sum(re_cols))
}

# What lme4 would need for that design. Memory: X and its copies (lme4 keeps
# X, its rank check takes a QR copy, the fit more: 5 copies at the peak,
# measured), the factors' dense contrast matrices, RZX (q x p, dense) twice and
# Z's non-zeros (value and row index) three times. Work: the rank check's QR
# of X, 2 n p^2 flops, at this machine's rate.
lmm_design_copies <- 5

lmm_design_cost <- function(d) {
    n <- as.numeric(d$n); p <- as.numeric(d$p)
    bytes <- 8 * (lmm_design_copies * n * p + d$contrast_cells + 2 * d$q * p) +
        3 * 12 * d$z_nonzeros
    list(x_bytes = 8 * n * p, bytes = bytes, flops = 2 * n * p^2)
}

# Flops per second of R's qr() (LINPACK's dqrdc2, what lme4's rank check
# calls) on this machine: the best of three small runs, measured once.
# Faster than on large matrices (which outgrow the cache), so estimated times
# err short.
lmm_qr_rate <- function() {
    if (is.null(lmm_cache$qr_rate)) {
        n <- 2000L; p <- 250L
        x <- matrix(stats::rnorm(n * p), n, p)
        # gcFirst = FALSE: a full collection in a long session costs more than the QR
        best <- min(vapply(1:3, function(i)
            system.time(qr(x), gcFirst = FALSE)[["elapsed"]], 1))
        lmm_cache$qr_rate <- 2 * n * p^2 / max(best, 1e-3)
    }
    lmm_cache$qr_rate
}

# No machine does R's QR faster than this: below it no calibration is needed.
lmm_qr_rate_ceiling <- 2e10

# NULL when the design fits the limits (list(bytes, seconds)), else the
# design, its cost and the rate the time was estimated at.
lmm_design_check <- function(formula, rows, limits, d = lmm_design(formula, rows)) {
    cost <- lmm_design_cost(d)
    slow <- cost$flops > limits$seconds * lmm_qr_rate_ceiling
    rate <- if (slow) lmm_qr_rate() else lmm_qr_rate_ceiling
    if (cost$bytes <= limits$bytes && cost$flops <= limits$seconds * rate) return(NULL)
    c(d, cost, list(rate = rate, seconds = cost$flops / rate))
}
