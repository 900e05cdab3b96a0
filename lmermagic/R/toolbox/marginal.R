# Estimated marginal means (emmeans).
# The R half of toolbox/marginal.py; conventions in common.R.

lmm_tb_emmeans <- function(fit, data, opts, specs, by, pairwise, adjust, type) {
    lmm_tb_run(function() {
        m <- lmm_tb_prepare(fit, data, opts)
        args <- list(m, specs = specs, type = type, data = data)
        if (length(by)) args$by <- by
        emm <- do.call(emmeans::emmeans, args)
        out <- list(emmeans = lmm_tb_table(as.data.frame(summary(emm, type = type))))
        if (pairwise) {
            cargs <- list(emm, method = "pairwise")
            if (length(adjust)) cargs$adjust <- adjust
            con <- do.call(emmeans::contrast, cargs)
            out$contrasts <- lmm_tb_table(as.data.frame(summary(con, type = type)))
        }
        out
    })
}
