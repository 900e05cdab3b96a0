# Prediction and simulation.
# The R half of toolbox/prediction.py; conventions in common.R.

# newdata: data.frame or NULL; re_form: NULL (all), "NA" (none) or formula
# text (checked here with the allowlist); allow_new: allow.new.levels.
# interval: NULL, "confidence" or "prediction" (see lmm_tb_interval), at level.
lmm_tb_predict <- function(fit, data, opts, newdata, re_form, allow_new, type, allowed,
                           interval = NULL, level = 0.95) {
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
        if (!is.null(newdata)) {
            fixed <- lmm_newdata_factors(newdata, data, names(lme4::getME(fit, "flist")))
            if (length(fixed$bad)) return(list(bad_levels = fixed$bad))
            newdata <- fixed$newdata
        }
        args <- list(fit, re.form = rf, type = type, allow.new.levels = allow_new)
        if (!is.null(newdata)) {
            args$newdata <- newdata
            args$na.action <- stats::na.pass
        }
        p <- do.call(stats::predict, args)
        dropped <- attr(stats::model.frame(fit), "na.action")
        out <- list(fit = unname(as.numeric(p)),
                    dropped = if (is.null(newdata) && !is.null(dropped)) as.integer(dropped)
                              else integer())
        if (is.null(interval)) return(out)
        if (interval == "prediction" && lme4::isGLMM(fit)) return(list(problem = "glmm"))
        args$type <- "link"
        eta <- unname(as.numeric(do.call(stats::predict, args)))
        used <- setdiff(seq_len(nrow(data)), if (is.null(dropped)) integer()
                                             else as.integer(dropped))
        c(out, lmm_tb_interval(fit, data[used, , drop = FALSE], newdata, rf, eta,
                               interval, level, type))
    })
}

# The fixed-effects part of a prediction at the rows of newdata (NULL: the
# model's own rows): eta = X beta (+ offset) and se = sqrt(diag(X V X')), V =
# vcov(fit). X is built as lme4's predict() builds it: the fixed-effects terms
# with their stored data-dependent bases (poly, ns), the fit's factor levels
# and contrasts; rows with missing values give NA. Shared by predict()'s
# intervals and plot_predict's band.
lmm_tb_fixed_se <- function(fit, newdata = NULL) {
    beta <- lme4::fixef(fit)
    V <- as.matrix(stats::vcov(fit))
    if (is.null(newdata)) {
        X <- lme4::getME(fit, "X")
        off <- lme4::getME(fit, "offset")
    } else {
        tt <- stats::delete.response(stats::terms(fit, fixed.only = TRUE))
        xlev <- lapply(Filter(is.factor, stats::model.frame(fit)), levels)
        mfn <- stats::model.frame(tt, newdata, na.action = stats::na.pass,
                                  xlev = xlev[intersect(names(xlev), all.vars(tt))])
        X <- stats::model.matrix(tt, mfn,
                                 contrasts.arg = attr(lme4::getME(fit, "X"), "contrasts"))
        off <- stats::model.offset(mfn)
    }
    X <- X[, names(beta), drop = FALSE]
    eta <- drop(X %*% beta) + if (is.null(off)) 0 else off
    list(eta = unname(eta), se = unname(sqrt(rowSums((X %*% V) * X))))
}

# Bounds around lme4's prediction, on the link scale (eta -/+ z * sd, z =
# qnorm((1 + level) / 2)), then through the family's inverse link for type
# "response" (lower end first). Confidence: sd from the fixed effects alone,
# X V X' -- also around a conditional prediction (re_form NULL or partial),
# whose random effects are taken as known (their conditional variance is not
# added).
# Prediction (lmer only): X V X' + sigma^2 + the variance of the random-effect
# columns the prediction leaves out (lmm_tb_left_out_var).
lmm_tb_interval <- function(fit, model_rows, newdata, rf, eta, interval, level, type) {
    rows <- if (is.null(newdata)) model_rows else newdata
    v <- lmm_tb_fixed_se(fit, newdata)$se^2
    if (interval == "prediction") {
        v <- v + stats::sigma(fit)^2 + lmm_tb_left_out_var(fit, rows, model_rows, rf)
    }
    z <- stats::qnorm((1 + level) / 2)
    inv <- if (type == "response" && lme4::isGLMM(fit)) stats::family(fit)$linkinv
           else identity
    a <- as.numeric(inv(eta - z * sqrt(v)))
    b <- as.numeric(inv(eta + z * sqrt(v)))
    # a decreasing inverse link (Gamma's "inverse") swaps the ends
    list(low = pmin(a, b), high = pmax(a, b))
}

# Per row, the variance of the random-effect columns a prediction at re.form rf
# leaves out: for each random-effect term of the fit, z' Sigma z over its
# columns rf does not keep (z: the term's left-hand side at the row, Sigma: the
# term's VarCorr block). rf NA keeps none, NULL all; a row whose grouping level
# the fit has not seen (allow_new_levels) keeps none of that term's. Left-hand
# sides are built from the model rows' terms (stored bases) with treatment
# contrasts, as lme4 built them when fitting.
lmm_tb_left_out_var <- function(fit, rows, model_rows, rf) {
    old <- options(contrasts = c(unordered = "contr.treatment", ordered = "contr.poly"))
    on.exit(options(old))
    env <- environment(stats::formula(fit))
    lhs <- function(bar, d) {
        f <- ~ x
        f[[2L]] <- bar[[2L]]
        environment(f) <- env
        ref <- stats::model.frame(f, model_rows)
        tr <- stats::terms(ref)
        stats::model.matrix(tr, stats::model.frame(tr, d, na.action = stats::na.pass,
                                                   xlev = lapply(Filter(is.factor, ref),
                                                                 levels)))
    }
    kept <- list()
    if (is.null(rf) || is.language(rf)) {
        keep_bars <- if (is.null(rf)) lmm_findbars(stats::formula(fit)) else lmm_findbars(rf)
        for (b in keep_bars) {
            g <- deparse1(b[[3L]])
            kept[[g]] <- c(kept[[g]], colnames(lhs(b, model_rows)))
        }
    }
    cnms <- lme4::getME(fit, "cnms")
    flist <- lme4::getME(fit, "flist")
    vc <- lme4::VarCorr(fit)
    bars <- lmm_findbars(stats::formula(fit))
    total <- numeric(nrow(rows))
    for (k in seq_along(cnms)) {
        g <- names(cnms)[k]
        bar <- Filter(function(b) deparse1(b[[3L]]) == g, bars)
        mats <- lapply(bar, lhs, d = rows)
        M <- Filter(function(mm) all(cnms[[k]] %in% colnames(mm)), mats)
        if (!length(M)) stop("cannot rebuild the random-effect term for ", g)
        M <- M[[1L]][, cnms[[k]], drop = FALSE]
        S <- as.matrix(vc[[k]])[cnms[[k]], cnms[[k]], drop = FALSE]
        out <- !matrix(cnms[[k]] %in% kept[[g]], nrow(rows), length(cnms[[k]]), byrow = TRUE)
        gv <- all.vars(bar[[1L]][[3L]])
        if (all(gv %in% names(rows))) {
            lab <- do.call(paste, c(lapply(gv, function(v) as.character(rows[[v]])), sep = ":"))
            new <- is.na(match(lab, levels(flist[[g]]))) | !stats::complete.cases(rows[gv])
            out[new, ] <- TRUE
        }
        Mo <- M * out
        total <- total + rowSums((Mo %*% S) * Mo)
    }
    total
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

# newdata's columns that are factors of the model get the model's levels. New
# levels of a grouping factor are kept (predicted at the population level, or as
# allow.new.levels says); those of any other factor are listed in bad (at most
# five a column). Shared by lme4's and glmmTMB's predict.
lmm_newdata_factors <- function(newdata, data, grouping) {
    bad <- character()
    for (col in intersect(names(newdata), names(data))) {
        ref <- data[[col]]
        if (!is.factor(ref)) next
        new <- as.character(newdata[[col]])
        lev <- levels(ref)
        unknown <- setdiff(unique(new[!is.na(new)]), lev)
        if (length(unknown)) {
            if (col %in% grouping) {
                lev <- c(lev, unknown)
            } else {
                bad <- c(bad, sprintf("%s: %s", col,
                                      paste(utils::head(unknown, 5L), collapse = ", ")))
            }
        }
        newdata[[col]] <- factor(new, levels = lev, ordered = is.ordered(ref))
    }
    list(newdata = newdata, bad = bad)
}

