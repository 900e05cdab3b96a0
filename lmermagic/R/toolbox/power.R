# Power by simulation: the R half of toolbox/power.py.
#
# Step 1 (lmm_tb_power_setup, in the notebook's R): for each design size n,
# the rows of the design and the nsim responses R's simulate() draws from the
# model with the tested coefficient set to `effect`. Every random number is
# drawn here, in one stream (set.seed(seed) once, then one simulate() call
# per n, in the order the sizes were given), so the refits can run anywhere.
#
# Step 2 (lmm_tb_power_chunk, here or in a worker): each simulated response
# refitted as a fresh lmer()/glmer() on the same design -- lme4's own fit
# without its lFormula() step (lmm_compat_prebuilt), the design built once
# per n and copied for each response -- then the term tested.

# The design of size n along the grouping factor `along`: rows (1-based, into
# the model's rows) and the label of `along` on each. Shrinking keeps the
# first n levels (in the factor's level order); growing adds levels L+1..n,
# new level j copying the rows of existing level ((j - 1) mod L) + 1 and named
# "<that level>#<copy>" (the second copy of "308" is "308#2").
lmm_power_layout <- function(g, n) {
    g <- droplevels(as.factor(g))
    lev <- levels(g)
    L <- length(lev)
    at <- split(seq_along(g), g)
    rows <- integer()
    labels <- character()
    for (j in seq_len(n)) {
        src <- (j - 1L) %% L + 1L
        copy <- (j - 1L) %/% L + 1L
        name <- if (copy == 1L) lev[[src]] else paste0(lev[[src]], "#", copy)
        rows <- c(rows, at[[src]])
        labels <- c(labels, rep(name, length(at[[src]])))
    }
    all_labels <- unique(labels)
    if (anyDuplicated(all_labels)) stop("the new level names collide with existing ones")
    list(rows = rows, labels = labels, levels = all_labels)
}

# The model's rows (those its fit kept) laid out for size n.
lmm_power_frame <- function(data, layout, along) {
    nd <- data[layout$rows, , drop = FALSE]
    nd[[along]] <- factor(layout$labels, levels = layout$levels)
    rownames(nd) <- NULL
    nd
}

lmm_tb_power_setup <- function(fit, data, term, effect, along, ns, nsim, seed) {
    lmm_tb_run(function() {
        kept <- match(rownames(stats::model.frame(fit)), rownames(data))
        if (anyNA(kept)) stop("the model's rows cannot be found in its data")
        model_data <- data[kept, , drop = FALSE]
        beta <- lme4::fixef(fit)
        if (!is.null(effect)) beta[[term]] <- effect
        params <- list(beta = beta, theta = lme4::getME(fit, "theta"))
        if (lme4::isLMM(fit)) params$sigma <- stats::sigma(fit)
        w <- stats::weights(fit)
        if (inherits(fit, "lmerModLmerTest")) fit <- lmm_compat_as_lmerMod(fit)
        out <- list(kept = kept, rows = list(), labels = list(), levels = list(), y = list(),
                    ncol = 1L, colnames = character())
        lmm_tb_with_seed(seed, function() {
            for (i in seq_along(ns)) {
                if (is.null(along)) {
                    rows <- seq_len(nrow(model_data))
                    sims <- stats::simulate(fit, nsim = nsim, newparams = params, use.u = FALSE)
                } else {
                    lay <- lmm_power_layout(model_data[[along]], ns[[i]])
                    nd <- lmm_power_frame(model_data, lay, along)
                    rows <- lay$rows
                    sims <- stats::simulate(fit, nsim = nsim, newdata = nd, newparams = params,
                                            use.u = FALSE, allow.new.levels = TRUE,
                                            weights = unname(w[rows]))
                    out$labels[[i]] <<- lay$labels
                    out$levels[[i]] <<- lay$levels
                }
                out$rows[[i]] <<- rows
                first <- sims[[1L]]
                if (is.matrix(first)) {
                    out$ncol <<- ncol(first)
                    out$colnames <<- colnames(first)
                }
                # one response after the other, each its columns one after the other
                out$y[[i]] <<- unlist(lapply(sims, function(s) {
                    if (is.factor(s)) as.numeric(s != levels(s)[1L]) else as.numeric(s)
                }), use.names = FALSE)
            }
        })
        out
    })
}

# A worker's state: the model's rows of the data (with `factors` made factors
# as lmm_fit does) and, per size, the design built once.
lmm_tb_power_state <- function(data, factors, kept, formula_text, allowed, opts, test,
                               term, along, rows, labels, levels, ncol, colnames) {
    lmm_tb_run(function() lmm_power_state(data, factors, kept, formula_text, allowed, opts,
                                          test, term, along, rows, labels, levels, ncol,
                                          colnames))
}

lmm_power_state <- function(data, factors, kept, formula_text, allowed, opts, test,
                            term, along, rows, labels, levels, ncol, colnames) {
    for (f in factors) data[[f]] <- factor(data[[f]])
    st <- new.env(parent = emptyenv())
    st$data <- data[kept, , drop = FALSE]
    st$formula <- lmm_make_formula(formula_text, names(data), allowed)
    st$opts <- opts
    if (test == "lrt") st$opts$reml <- FALSE
    st$test <- test
    st$term <- term
    st$along <- along
    st$rows <- rows
    st$labels <- labels
    st$levels <- levels
    st$ncol <- ncol
    st$colnames <- colnames
    st$designs <- list()
    st$prebuilt <- lmm_compat_prebuilt(opts$kind)
    if (is.null(st$prebuilt)) stop("this lme4 release cannot reuse a design")
    list(state = st)
}

# The design of size i: its data, and the lFormula() result built once and
# copied for each response (lme4's C++ code writes into a design's memory).
lmm_power_design <- function(st, i) {
    d <- st$designs[[as.character(i)]]
    if (!is.null(d)) return(d)
    d <- new.env(parent = emptyenv())
    d$data <- if (is.null(st$along)) st$data[st$rows[[i]], , drop = FALSE]
              else lmm_power_frame(st$data, list(rows = st$rows[[i]], labels = st$labels[[i]],
                                                 levels = st$levels[[i]]), st$along)
    d$pristine <- NULL
    d$y <- NULL
    d$drop <- NULL
    d$get <- function(mc, pf) {
        if (is.null(d$pristine)) {
            mc$.lmm_design <- NULL
            d$pristine <- lmm_compat_deepcopy(eval(mc, pf))
        }
        mod <- lmm_compat_deepcopy(d$pristine)
        mod$fr[[1L]] <- d$y
        if (!is.null(d$drop)) {
            X <- mod$X
            keep <- colnames(X) != d$drop
            X2 <- X[, keep, drop = FALSE]
            attr(X2, "assign") <- attr(X, "assign")[keep]
            for (a in c("contrasts", "msgScaleX")) attr(X2, a) <- attr(X, a)
            mod$X <- X2
        }
        mod
    }
    st$designs[[as.character(i)]] <- d
    d
}

# One fit of design d on its current response (drop: a column of X left out).
lmm_power_fit <- function(st, d, drop = NULL) {
    d$drop <- drop
    todo <- lmm_fit_call(d$data, st$formula, st$opts, fun = quote(.lmm_prebuilt))
    todo$env$.lmm_prebuilt <- st$prebuilt
    todo$env$.lmm_design <- d
    todo$call$.lmm_design <- quote(.lmm_design)
    eval(todo$call, todo$env)
}

# The test of st$term on one fitted response: estimate, SE, statistic, df, p.
lmm_power_test <- function(st, d, fit) {
    beta <- lme4::fixef(fit)
    j <- match(st$term, names(beta))
    if (is.na(j)) stop(sprintf("the coefficient '%s' was dropped from this fit", st$term))
    if (st$test == "satterthwaite") {
        ct <- lmm_coef_table(fit, "lmer", "satterthwaite")$matrix
        return(c(ct[j, 1L], ct[j, 2L], ct[j, 4L], ct[j, 3L], ct[j, 5L]))
    }
    if (st$test == "z") {
        ct <- lmm_wald_table(fit, "glmer")
        return(c(ct[j, 1L], ct[j, 2L], ct[j, 3L], Inf, ct[j, 4L]))
    }
    if (st$test == "kenward-roger") {
        # lmerTest's Kenward-Roger t test (contest1D, get_KR1D), on the plain fit
        L <- as.numeric(seq_along(beta) == j)
        V <- pbkrtest::vcovAdj(fit)
        var_con <- sum(L * (as.matrix(V) %*% L))
        ddf <- pbkrtest::Lb_ddf(L = L, V0 = stats::vcov(fit), Vadj = V)
        se <- sqrt(var_con)
        t <- beta[[j]] / se
        return(c(beta[[j]], se, t, ddf, 2 * stats::pt(abs(t), df = ddf, lower.tail = FALSE)))
    }
    # lrt: the ML fit without the term's column against the ML fit with it,
    # as anova(m0, m1) computes it
    fit0 <- lmm_power_fit(st, d, drop = st$term)
    ll1 <- as.numeric(stats::logLik(fit))
    ll0 <- as.numeric(stats::logLik(fit0))
    df <- attr(stats::logLik(fit), "df") - attr(stats::logLik(fit0), "df")
    chisq <- 2 * max(0, ll1 - ll0)
    se <- sqrt(diag(as.matrix(stats::vcov(fit))))[[j]]
    c(beta[[j]], se, chisq, df, stats::pchisq(chisq, df, lower.tail = FALSE))
}

# Responses from..(from + count - 1) of size i; y: their values, one response
# after the other. Returns one vector per column of the per-simulation table.
lmm_tb_power_chunk <- function(st, i, from, y) {
    d <- lmm_power_design(st, i)
    nr <- length(st$rows[[i]])
    count <- length(y) %/% (nr * st$ncol)
    out <- matrix(NA_real_, count, 5L)
    singular <- rep(NA, count)
    converged <- rep(NA, count)
    failed <- rep(FALSE, count)
    messages <- character(count)
    for (k in seq_len(count)) {
        v <- y[(k - 1L) * nr * st$ncol + seq_len(nr * st$ncol)]
        d$y <- if (st$ncol > 1L) matrix(v, nr, st$ncol, dimnames = list(NULL, st$colnames))
               else v
        res <- lmm_with_conditions(function() {
            fit <- lmm_power_fit(st, d)
            list(fit = fit, test = lmm_power_test(st, d, fit))
        })
        texts <- c(res$warnings, res$messages)
        if (inherits(res$value, "error")) {
            failed[k] <- TRUE
            messages[k] <- conditionMessage(res$value)
            next
        }
        fit <- res$value$fit
        out[k, ] <- as.numeric(res$value$test)
        conv <- fit@optinfo$conv
        all_texts <- c(texts, as.character(unlist(conv$lme4$messages)))
        code <- if (is.null(conv$opt)) 0L else as.integer(conv$opt)
        converged[k] <- code == 0L && !any(grepl("converge", all_texts, ignore.case = TRUE))
        singular[k] <- lme4::isSingular(fit)
        if (length(all_texts)) messages[k] <- paste(unique(all_texts), collapse = "; ")
        if (!is.finite(out[k, 5L])) {
            failed[k] <- TRUE
            messages[k] <- paste(c("no p-value", messages[k][nzchar(messages[k])]),
                                 collapse = ": ")
        }
    }
    list(sim = seq.int(from, length.out = count), estimate = out[, 1L],
         std_error = out[, 2L], statistic = out[, 3L], df = out[, 4L], p_value = out[, 5L],
         singular = singular, converged = converged, failed = failed, message = messages)
}
