# The numbers the plots need that the model's tables do not hold.
# The R half of toolbox/plots/; conventions in common.R.

# Residuals for the diagnostic panels, on the rows R used: Pearson residuals
# divided by sigma (lme4's residuals(type = "pearson", scaled = TRUE); for
# binomial and Poisson sigma is 1) and response residuals (observed - fitted,
# observed as a proportion for a cbind() response).
lmm_tb_plot_residuals <- function(fit) {
    lmm_tb_run(function() {
        list(pearson = unname(as.numeric(stats::residuals(fit, type = "pearson",
                                                          scaled = TRUE))),
             response = unname(as.numeric(stats::residuals(fit, type = "response"))))
    })
}

# The population-level prediction along column x with its standard error from
# the fixed effects' covariance: eta = X beta, se = sqrt(diag(X V X')), X the
# fixed-effects model matrix of a grid (lmm_tb_fixed_se, as lme4's predict()
# builds it). The other fixed-effect variables are held at their mean (numeric) or
# their first level (factor). by: a grouping factor (conditional lines, its
# random-effect terms only, each over the group's own range of x) or a factor
# of the fixed effects (one population line per level).
lmm_tb_plot_predict <- function(fit, data, x, by, n) {
    lmm_tb_run(function() {
        mf <- stats::model.frame(fit)
        na <- attr(mf, "na.action")
        used <- setdiff(seq_len(nrow(data)), if (is.null(na)) integer() else as.integer(na))
        d <- data[used, , drop = FALSE]
        tt <- stats::delete.response(stats::terms(fit, fixed.only = TRUE))
        vars <- intersect(all.vars(tt), names(data))
        if (!x %in% names(data)) return(list(problem = "x_missing"))
        if (!is.numeric(d[[x]])) return(list(problem = "x_not_numeric"))
        flist <- lme4::getME(fit, "flist")
        by_kind <- if (is.null(by)) "none" else if (by %in% names(flist)) "group" else
            if (by %in% vars && !is.numeric(d[[by]])) "fixed" else
            return(list(problem = "by_unknown"))
        typical <- lapply(stats::setNames(nm = setdiff(vars, c(x, by))), function(v) {
            col <- d[[v]]
            if (is.numeric(col)) mean(col)
            else if (is.factor(col)) factor(levels(col)[1L], levels = levels(col))
            else if (is.logical(col)) FALSE
            else sort(unique(as.character(col)))[1L]
        })
        grid_x <- seq(min(d[[x]]), max(d[[x]]), length.out = n)
        make <- function(xs, by_value) {
            nd <- data.frame(xs)
            names(nd) <- x
            for (v in names(typical)) nd[[v]] <- rep(typical[[v]], length(xs))
            # a value of the data's own column: its type and levels (lme4 warns
            # when a numeric grouping column comes back as a factor)
            if (!is.null(by)) nd[[by]] <- rep(d[[by]][match(by_value, as.character(d[[by]]))],
                                              length(xs))
            nd
        }
        levels_by <- if (by_kind == "fixed") unique(as.character(sort(d[[by]]))) else NA
        pop <- lapply(levels_by, function(lv) {
            nd <- make(grid_x, lv)
            p <- lmm_tb_fixed_se(fit, nd)  # prediction.R, shared with predict()
            list(x = grid_x, by = rep(as.character(lv), n), eta = p$eta, se = p$se)
        })
        out <- list(
            population = lapply(stats::setNames(nm = c("x", "by", "eta", "se")),
                                function(k) unlist(lapply(pop, `[[`, k), use.names = FALSE)),
            typical = lapply(typical, as.character),
            by_kind = by_kind,
            link = if (lme4::isGLMM(fit)) stats::family(fit)$link else "identity",
            points = list(x = as.numeric(d[[x]]),
                          y = unname(as.numeric(lme4::getME(fit, "y"))),
                          by = if (is.null(by)) character() else as.character(d[[by]])))
        if (by_kind == "group") {
            bars <- lmm_findbars(stats::formula(fit))
            mine <- Filter(function(b) identical(b[[3L]], as.name(by)), bars)
            if (!length(mine)) return(list(problem = "by_nested"))
            rf <- stats::as.formula(paste("~", paste0("(", vapply(mine, deparse1, ""), ")",
                                                     collapse = " + ")))
            groups <- split(d[[x]], as.character(d[[by]]))
            cond <- lapply(names(groups), function(lv) {
                xs <- seq(min(groups[[lv]]), max(groups[[lv]]), length.out = 20L)
                nd <- make(xs, lv)
                list(x = xs, by = rep(lv, length(xs)),
                     fit = unname(as.numeric(stats::predict(fit, newdata = nd, re.form = rf,
                                                            type = "response"))))
            })
            out$conditional <- lapply(stats::setNames(nm = c("x", "by", "fit")),
                                      function(k) unlist(lapply(cond, `[[`, k),
                                                         use.names = FALSE))
        }
        out
    })
}
