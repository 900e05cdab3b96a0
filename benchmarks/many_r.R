# R's natural loop over many models (issue 11): what an R user writes.
# Usage: Rscript benchmarks/many_r.R WORKLOAD CSV N OUT.json
#   sleep: lmerTest::lmer(y ~ Days + (Days | Subject)) + summary() per response column
#   sites: lmerTest::lmer(y ~ x + (1 | g)) + summary() per site (split())
#   binary: lme4::glmer(y ~ x + (1 | g), binomial) + summary() per response column
# The first N models are fitted; every model's coefficient table is kept, then
# stacked into one data frame, as lmer_many returns. Not timed: loading the
# packages, reading the CSV, one warm-up fit.
a <- commandArgs(trailingOnly = TRUE)
workload <- a[[1]]; csv <- a[[2]]; n <- as.integer(a[[3]]); out <- a[[4]]

suppressPackageStartupMessages({
    library(lme4)
    library(lmerTest)
})
d <- utils::read.csv(csv)

load0 <- as.numeric(strsplit(readLines("/proc/loadavg"), " ")[[1]][1:3])
if (workload == "sleep") {
    d$Subject <- factor(d$Subject)
    ys <- grep("^y[0-9]+$", names(d), value = TRUE)[seq_len(n)]
    base <- d[c("Reaction", "Days", "Subject")]
    warm <- summary(lmerTest::lmer(Reaction ~ Days + (Days | Subject), data = base))
    t0 <- proc.time()[["elapsed"]]
    res <- vector("list", length(ys))
    for (i in seq_along(ys)) {
        base$y <- d[[ys[i]]]
        m <- lmerTest::lmer(y ~ Days + (Days | Subject), data = base)
        ct <- coef(summary(m))
        res[[i]] <- data.frame(response = ys[i], term = rownames(ct), ct, row.names = NULL)
    }
} else if (workload == "sites") {
    d$g <- factor(d$g)
    sites <- split(d, d$site)[seq_len(n)]
    warm <- summary(lmerTest::lmer(y ~ x + (1 | g), data = sites[[1]]))
    t0 <- proc.time()[["elapsed"]]
    res <- vector("list", length(sites))
    for (i in seq_along(sites)) {
        m <- lmerTest::lmer(y ~ x + (1 | g), data = sites[[i]])
        ct <- coef(summary(m))
        res[[i]] <- data.frame(site = names(sites)[i], term = rownames(ct), ct,
                               row.names = NULL)
    }
} else if (workload == "binary") {
    d$g <- factor(d$g)
    ys <- grep("^y[0-9]+$", names(d), value = TRUE)[seq_len(n)]
    base <- d[c("x", "g")]
    base$y <- d[[ys[1]]]
    warm <- summary(lme4::glmer(y ~ x + (1 | g), data = base, family = binomial))
    t0 <- proc.time()[["elapsed"]]
    res <- vector("list", length(ys))
    for (i in seq_along(ys)) {
        base$y <- d[[ys[i]]]
        m <- lme4::glmer(y ~ x + (1 | g), data = base, family = binomial)
        ct <- coef(summary(m))
        res[[i]] <- data.frame(response = ys[i], term = rownames(ct), ct, row.names = NULL)
    }
} else {
    stop("unknown workload ", workload)
}
coefs <- do.call(rbind, res)
elapsed <- proc.time()[["elapsed"]] - t0
load1 <- as.numeric(strsplit(readLines("/proc/loadavg"), " ")[[1]][1:3])
writeLines(jsonlite::toJSON(list(
    seconds = elapsed, n = length(res), load_start = load0, load_end = load1,
    estimate = coefs[[3]], term = coefs$term
), digits = NA, auto_unbox = TRUE), out)
