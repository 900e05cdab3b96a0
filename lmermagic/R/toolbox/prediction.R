# Prediction and simulation.
# The R half of toolbox/prediction.py; conventions in common.R.

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
