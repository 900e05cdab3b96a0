# A model saved in one file (savefile.py), the R half: its tables computed
# again from the fit and packed as the disk cache packs them (cache.R), and
# the fit with its data as the disk cache writes them (no code in the bytes).
# sys.source()d by rbridge.py, with every file of R/, into one private
# environment whose parent is baseenv() (see rbridge.R).

lmm_save_parts <- function(fit, data, kind, ddf, texts) {
    res <- lmm_results(fit, kind, ddf)
    res$tables$na_counts <- vapply(data, function(v) sum(is.na(v)), 1L)
    list(tables = lmm_pack_raw(list(format = lmm_cache_format, tables = res$tables,
                                    texts = as.character(texts))),
         payload = lmm_cache_payload(res$fit, data))
}

# The data a loaded fit was fitted on, for Python (rbridge.frame_to_pandas).
lmm_saved_data <- function(data) data
