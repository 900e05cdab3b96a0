# R's own summary() of a fitted model (the R half of model.py's summary()).
# sys.source()d by rbridge.py, with every file of R/, into one private
# environment whose parent is baseenv() (see rbridge.R).

lmm_summary_text <- function(fit, ddf, data_name) {
    res <- lmm_with_conditions(function() {
        s <- if (inherits(fit, "lmerModLmerTest") && ddf != "lme4") {
            method <- if (ddf == "kenward-roger") "Kenward-Roger" else "Satterthwaite"
            lmerTest:::summary.lmerModLmerTest(fit, ddf = method)
        } else {
            s <- lme4:::summary.merMod(fit)
            ct <- attr(fit, "lmermagic_coefmat")
            if (ddf == "satterthwaite" && !is.null(ct) && ncol(ct) == 5L) {
                # lmerTest's layout, with the df computed at fit time.
                s$coefficients <- ct
                s$methTitle <- paste0(s$methTitle, ". t-tests use Satterthwaite's method")
            }
            s
        }
        utils::capture.output(print(s))
    })
    if (inherits(res$value, "error")) stop(conditionMessage(res$value))
    out <- res$value
    at <- which(out == "   Data: data")
    if (length(at)) out[at[1L]] <- paste0("   Data: ", data_name)
    paste(out, collapse = "\n")
}
