# Export the benchmark data sets from R's own packages to CSV, so that every tool
# (Rscript, lmermagic, rpy2, pymer4, statsmodels) fits exactly the same numbers.
# Usage: Rscript benchmarks/export_data.R OUTDIR
args <- commandArgs(trailingOnly = TRUE)
out <- if (length(args)) args[[1]] else "benchmarks/data"
dir.create(out, showWarnings = FALSE, recursive = TRUE)
write1 <- function(df, name) {
    path <- file.path(out, paste0(name, ".csv"))
    if (!file.exists(path)) {
        # Doubles as the shortest of %.15g / %.17g that round-trips exactly.
        for (nm in names(df)) {
            x <- df[[nm]]
            if (is.double(x)) {
                s <- sprintf("%.15g", x)
                bad <- !is.na(x) & suppressWarnings(as.numeric(s)) != x
                s[bad] <- sprintf("%.17g", x[bad])
                s[is.na(x)] <- NA
                df[[nm]] <- s
            }
        }
        utils::write.csv(df, path, row.names = FALSE, quote = FALSE)
        cat("wrote", path, nrow(df), "rows\n")
    }
}
e <- new.env()
utils::data("sleepstudy", package = "lme4", envir = e)
utils::data("cbpp", package = "lme4", envir = e)
utils::data("InstEval", package = "lme4", envir = e)
utils::data("dietox", package = "geepack", envir = e)
write1(e$sleepstudy, "sleepstudy")
write1(e$dietox, "dietox")
write1(e$cbpp, "cbpp")
write1(e$InstEval, "InstEval")
