# The data of a model as a file an R script reads back exactly.
# The R half of toolbox/rcode.py; conventions in common.R.

# Per column of the data lme4 was given: its class and, for factors, its levels.
lmm_tb_data_spec <- function(data) {
    lmm_tb_run(function() {
        lapply(data, function(x) {
            class <- if (is.ordered(x)) "ordered" else if (is.factor(x)) "factor"
                     else if (inherits(x, "POSIXct")) "POSIXct"
                     else if (is.logical(x)) "logical"
                     else if (is.integer(x)) "integer" else "numeric"
            list(class = class, levels = if (is.factor(x)) levels(x) else character())
        })
    })
}

# Write the data as CSV: doubles as the shortest of %.15g / %.17g that reads
# back to the same number, factors as their labels (quoted), times in UTC,
# missing values as empty fields.
lmm_tb_write_data <- function(data, path) {
    lmm_tb_run(function() {
        for (nm in names(data)) {
            x <- data[[nm]]
            if (inherits(x, "POSIXct")) {
                s <- format(x, "%Y-%m-%d %H:%M:%OS6", tz = "UTC")
            } else if (is.double(x)) {
                s <- sprintf("%.15g", x)
                bad <- !is.na(x) & suppressWarnings(as.numeric(s)) != x
                s[bad] <- sprintf("%.17g", x[bad])
            } else {
                next
            }
            s[is.na(x)] <- NA
            data[[nm]] <- s
        }
        quote <- which(vapply(data, function(x) is.factor(x), TRUE))
        utils::write.csv(data, path, row.names = FALSE, na = "",
                         quote = unname(quote),  # integer(0): the header only
                         fileEncoding = "UTF-8")
        nrow(data)
    })
}
