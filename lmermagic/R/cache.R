# A fit as bytes for the disk cache, and back (the R half of cache.py).
# sys.source()d by rbridge.py, with every file of R/, into one private
# environment whose parent is baseenv() (see rbridge.R).

lmm_cache_format <- 1L

# R's own serialisation of the fit, the data it was fitted on and R's
# warnings and messages from the fit.
lmm_cache_payload <- function(fit, data, texts) {
    serialize(list(format = lmm_cache_format, fit = fit, data = data,
                   texts = as.character(unlist(texts))), NULL)
}

# The payload back into a fit and every table Python reads from it, through
# the normal path (lmm_tables); the coefficient table from the matrix that
# travels on the fit, so that Satterthwaite df are not computed again. Any
# failure (not R's serialisation, not a fit of ours) is returned as an error.
lmm_cache_restore <- function(payload, kind) {
    res <- lmm_with_conditions(function() {
        obj <- unserialize(payload)
        ok <- is.list(obj) && identical(obj$format, lmm_cache_format) &&
            inherits(obj$fit, "merMod") && is.data.frame(obj$data) &&
            is.matrix(attr(obj$fit, "lmermagic_coefmat"))
        if (!ok) stop("the entry does not hold a fit stored by lmermagic")
        fit <- obj$fit
        coefs <- list(table = lmm_coef_list(attr(fit, "lmermagic_coefmat"), kind),
                      meta = attr(fit, "lmermagic_coefmeta"))
        tables <- lmm_tables(fit, kind, coefs)
        tables$na_counts <- vapply(obj$data, function(v) sum(is.na(v)), 1L)
        list(fit = fit, data = obj$data, tables = tables, texts = obj$texts)
    })
    if (inherits(res$value, "error")) return(list(error = conditionMessage(res$value)))
    res$value
}
