# R's plain power loop (issue 20): what tests/test_power.py writes, timed.
# Usage: Rscript benchmarks/power_r.R CASE NSIM SEED EFFECT BREAKDOWN OUT.json
#   sleep18, sleep36: sleepstudy, Reaction ~ Days + (Days | Subject), the Days
#     coefficient set to EFFECT; the design along Subject at 18 or 36 subjects
#     (36: each subject's rows copied once, as m.power(along=, n=) and simr's
#     extend() do); set.seed(SEED), simulate(NSIM, use.u = FALSE), then
#     lmerTest::lmer + summary() per simulation, Satterthwaite p-value of Days
#   cbpp: cbind(incidence, size - incidence) ~ period + (1 | herd), binomial,
#     period2 set to EFFECT; simulate(NSIM, seed = SEED), glmer + summary() per
#     simulation, Wald z p-value of period2
# Timed: simulate() and the loop. Not timed: loading the packages, the model's
# own fit, one warm-up refit. With BREAKDOWN > 0, the first BREAKDOWN
# simulations are refitted again, step by step (lme4 fit alone, lmerTest's fit
# alone, summary alone), to show where R's loop spends its time.
a <- commandArgs(trailingOnly = TRUE)
case <- a[[1]]; nsim <- as.integer(a[[2]]); seed <- as.integer(a[[3]])
effect <- as.numeric(a[[4]]); breakdown <- as.integer(a[[5]]); out <- a[[6]]

suppressPackageStartupMessages({
    library(lme4)
    library(lmerTest)
})
cpu <- function() sum(proc.time()[c("user.self", "sys.self")])
loadavg <- function() as.numeric(strsplit(readLines("/proc/loadavg"), " ")[[1]][1:3])

extend <- function(d, g, n) {
    lev <- levels(d[[g]]); L <- length(lev); parts <- list()
    for (j in seq_len(n)) {
        src <- lev[(j - 1) %% L + 1]; copy <- (j - 1) %/% L + 1
        part <- d[d[[g]] == src, ]
        part[[g]] <- if (copy == 1) src else paste0(src, "#", copy)
        parts[[j]] <- part
    }
    nd <- do.call(rbind, parts)
    nd[[g]] <- factor(nd[[g]], levels = unique(nd[[g]]))
    rownames(nd) <- NULL
    nd
}

if (startsWith(case, "sleep")) {
    d <- lme4::sleepstudy
    fit <- lme4::lmer(Reaction ~ Days + (Days | Subject), d)
    beta <- fixef(fit); beta[["Days"]] <- effect
    params <- list(beta = beta, theta = getME(fit, "theta"), sigma = sigma(fit))
    nd <- extend(d, "Subject", as.integer(sub("sleep", "", case)))
    refit <- function(y) {
        nd$Reaction <- y
        m <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), nd)
        coef(summary(m))["Days", ]
    }
    warm <- refit(nd$Reaction)
    t0 <- proc.time()[["elapsed"]]
    c0 <- cpu()
    load0 <- loadavg()
    set.seed(seed)
    sims <- simulate(fit, nsim = nsim, newdata = nd, newparams = params, use.u = FALSE,
                     allow.new.levels = TRUE)
    t_sim <- proc.time()[["elapsed"]] - t0
    res <- lapply(sims, refit)
    p_col <- "Pr(>|t|)"
} else if (case == "cbpp") {
    d <- lme4::cbpp
    fit <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), d, binomial)
    beta <- fixef(fit); beta[["period2"]] <- effect
    params <- list(beta = beta, theta = getME(fit, "theta"))
    nd <- d
    refit <- function(y) {
        nd$incidence <- y[, 1]
        g <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), nd, binomial)
        coef(summary(g))["period2", ]
    }
    warm <- refit(cbind(d$incidence, d$size - d$incidence))
    t0 <- proc.time()[["elapsed"]]
    c0 <- cpu()
    load0 <- loadavg()
    sims <- simulate(fit, nsim = nsim, seed = seed, newparams = params, use.u = FALSE)
    t_sim <- proc.time()[["elapsed"]] - t0
    res <- lapply(sims, refit)
    p_col <- "Pr(>|z|)"
} else {
    stop("unknown case ", case)
}
tab <- do.call(rbind, res)
elapsed <- proc.time()[["elapsed"]] - t0
cpu_s <- cpu() - c0
load1 <- loadavg()

steps <- NULL
if (breakdown > 0) {
    k <- min(breakdown, nsim)
    time_each <- function(f) {
        t <- proc.time()[["elapsed"]]
        for (i in seq_len(k)) f(sims[[i]])
        (proc.time()[["elapsed"]] - t) / k
    }
    if (startsWith(case, "sleep")) {
        fits <- vector("list", k)
        steps <- list(
            lme4_fit = time_each(function(y) { nd$Reaction <- y
                lme4::lmer(Reaction ~ Days + (Days | Subject), nd) }),
            lmertest_fit = time_each(function(y) { nd$Reaction <- y
                lmerTest::lmer(Reaction ~ Days + (Days | Subject), nd) }))
        for (i in seq_len(k)) { nd$Reaction <- sims[[i]]
            fits[[i]] <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), nd) }
        t <- proc.time()[["elapsed"]]
        for (i in seq_len(k)) coef(summary(fits[[i]]))
        steps$summary <- (proc.time()[["elapsed"]] - t) / k
    } else {
        fits <- vector("list", k)
        t <- proc.time()[["elapsed"]]
        for (i in seq_len(k)) { nd$incidence <- sims[[i]][, 1]
            fits[[i]] <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), nd,
                               binomial) }
        steps <- list(lme4_fit = (proc.time()[["elapsed"]] - t) / k)
        t <- proc.time()[["elapsed"]]
        for (i in seq_len(k)) coef(summary(fits[[i]]))
        steps$summary <- (proc.time()[["elapsed"]] - t) / k
    }
    steps$n <- k
}

writeLines(jsonlite::toJSON(list(
    seconds = elapsed, cpu_s = cpu_s, simulate_s = t_sim, n = length(res), load_start = load0,
    load_end = load1, p_value = unname(tab[, p_col]), estimate = unname(tab[, "Estimate"]),
    steps = steps, r_version = R.version.string,
    lme4 = as.character(packageVersion("lme4")), lmerTest = as.character(packageVersion("lmerTest"))
), digits = NA, auto_unbox = TRUE, null = "null"), out)
