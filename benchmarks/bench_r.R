# Pure-R timing worker. Usage:
#   Rscript bench_r.R MODE CSV FORMULA FACTORS FAMILY REPEATS OUT WARMUP_CSV WARMUP_FORMULA WARMUP_FACTORS
# MODE "lme4":     lme4::lmer (or lme4::glmer) fit alone.
# MODE "lmerTest": lmerTest::lmer + summary() coefficient table (Satterthwaite) +
#                  as.data.frame(VarCorr()), the output lmermagic gives
#                  (for a glmer: lme4::glmer + summary() table + VarCorr).
# MODE "lme4table": lme4::lmer + summary() table (no df) + as.data.frame(VarCorr()),
#                  the output lmermagic gives with ddf="lme4".
# Writes a small JSON file to OUT: wall time of each repeat, the warm-up time and
# the fixed effects. Data reading and package loading are not timed.
a <- commandArgs(trailingOnly = TRUE)
mode <- a[[1]]; csv <- a[[2]]; fstr <- a[[3]]; factors <- a[[4]]; family <- a[[5]]
repeats <- as.integer(a[[6]]); out <- a[[7]]
wcsv <- a[[8]]; wfstr <- a[[9]]; wfactors <- a[[10]]

suppressPackageStartupMessages({
    library(lme4)
    library(lmerTest)
})

read_data <- function(path, factors) {
    fac <- if (nzchar(factors)) strsplit(factors, ",", fixed = TRUE)[[1]] else character()
    cc <- stats::setNames(rep("factor", length(fac)), fac)
    utils::read.csv(path, colClasses = cc)
}

fit_once <- function(f, d, family) {
    if (nzchar(family)) {
        fam <- get(family, mode = "function", envir = asNamespace("stats"))
        m <- lme4::glmer(f, data = d, family = fam)
        if (mode != "lme4") {
            co <- summary(m)$coefficients
            vc <- as.data.frame(lme4::VarCorr(m))
        }
    } else if (mode == "lme4") {
        m <- lme4::lmer(f, data = d)
    } else if (mode == "lme4table") {
        m <- lme4::lmer(f, data = d)
        co <- summary(m)$coefficients
        vc <- as.data.frame(lme4::VarCorr(m))
    } else {
        m <- lmerTest::lmer(f, data = d)
        co <- summary(m)$coefficients   # Satterthwaite df and p-values
        vc <- as.data.frame(lme4::VarCorr(m))
    }
    if (mode != "lme4") last_table <<- co
    m
}
last_table <- NULL

now <- function() as.numeric(Sys.time())

# warm-up on a small model (lazy loading, byte-compiling, first allocations)
wd <- read_data(wcsv, wfactors)
warm <- numeric(2)
for (i in 1:2) {
    t0 <- now()
    invisible(fit_once(stats::as.formula(wfstr), wd, ""))
    warm[i] <- now() - t0
}

d <- read_data(csv, factors)
f <- stats::as.formula(fstr)
times <- numeric(repeats)
for (i in seq_len(repeats)) {
    gc(FALSE)
    t0 <- now()
    m <- fit_once(f, d, family)
    times[i] <- now() - t0
}
fe <- lme4::fixef(m)
num <- function(x) paste(sprintf("%.17g", x), collapse = ", ")
str_ <- function(x) paste0('"', gsub('"', '\\\\"', x), '"', collapse = ", ")
json <- paste0(
    '{"times": [', num(times), '], "warmup": [', num(warm), ']',
    ', "fixef": [', num(unname(fe)), '], "fixef_names": [', str_(names(fe)), ']',
    if (!is.null(last_table)) paste0(', "se": [', num(last_table[, "Std. Error"]), ']') else "",
    if (!is.null(last_table) && "df" %in% colnames(last_table))
        paste0(', "df": [', num(last_table[, "df"]), ']') else "",
    ', "nobs": ', nobs(m),
    ', "versions": {"R": "', paste(R.version$major, R.version$minor, sep = "."),
    '", "lme4": "', as.character(packageVersion("lme4")),
    '", "lmerTest": "', as.character(packageVersion("lmerTest")), '"}}')
writeLines(json, out)
