# augment()'s per-observation columns (tidy() and glance() need no R).
# The R half of toolbox/tidying.py; conventions in common.R.

lmm_tb_augment <- function(fit) {
    lmm_tb_run(function() {
        cols <- c(list(.fitted = stats::predict(fit),
                       .resid = stats::residuals(fit),
                       .hat = stats::hatvalues(fit),
                       .cooksd = stats::cooks.distance(fit),
                       .fixed = stats::predict(fit, re.form = NA)),
                  lmm_compat_resp_columns(fit))
        dropped <- attr(stats::model.frame(fit), "na.action")
        list(columns = lapply(cols, function(v) unname(as.numeric(v))),
             dropped = if (is.null(dropped)) integer() else as.integer(dropped))
    })
}
