# A fit as bytes for the disk cache, and back (the R half of cache.py).
# sys.source()d by rbridge.py, with every file of R/, into one private
# environment whose parent is baseenv() (see rbridge.R).

lmm_cache_format <- 2L

# lmm_fit for a fit the disk cache will keep: also the tables Python reads,
# packed as bytes (lmm_pack_raw, read back by Python alone), with R's
# warnings and messages from the fit.
lmm_cache_fit <- function(data, formula_text, opts, allowed, progress = FALSE) {
    res <- lmm_fit(data, formula_text, opts, allowed, progress)
    if (!is.null(res$fit)) {
        res$cache_tables <- lmm_pack_raw(list(
            format = lmm_cache_format, tables = res$tables,
            texts = as.character(c(res$warnings, res$messages))))
    }
    res
}

# R's own serialisation of the fit and the data it was fitted on.
lmm_cache_payload <- function(fit, data) serialize(list(fit = fit, data = data), NULL)

# The payload back into the fit and its data, when a method first needs them
# (this loads lme4 and Matrix). The entry's MAC verified before, so anything
# else here is lmermagic's own mistake: said plainly, never used.
lmm_cache_unserialize <- function(payload) {
    obj <- tryCatch(unserialize(payload), error = function(e) NULL)
    ok <- is.list(obj) && inherits(obj$fit, "merMod") && is.data.frame(obj$data) &&
        is.matrix(attr(obj$fit, "lmermagic_coefmat"))
    if (!ok) {
        stop("the fit kept in the disk cache could not be read back as a fit; ",
             "delete the entry with lmermagic.clear_cache(cache_dir) and fit again")
    }
    obj
}
