# Confidence intervals and the parametric bootstrap.
# The R half of toolbox/intervals.py; conventions in common.R.

# Rows: lmermagic's names (.sig01, ..., .sigma, fixed effects) and readable
# names (sd_(Intercept)|Subject, cor_Days.(Intercept)|Subject, sigma), in
# lmermagic's order whatever lme4's (lmm_compat_varpars).
lmm_tb_parnames <- function(fit) {
    vp <- lmm_compat_varpars(fit)
    fe <- names(lme4::fixef(fit))
    list(r = unname(c(vp$sig, fe)), readable = unname(c(vp$readable, fe)))
}

lmm_tb_confint <- function(fit, data, opts, method, level) {
    lmm_tb_run(function() {
        m <- lmm_tb_prepare(fit, data, opts)
        ci <- if (method == "profile") {
            stats::confint(m, method = "profile", level = level, quiet = TRUE)
        } else {
            stats::confint(m, method = "Wald", level = level, quiet = TRUE)
        }
        ci <- lmm_compat_confint_rows(fit, ci)
        nm <- lmm_tb_parnames(fit)
        est <- lmm_tb_bootfun(fit)
        list(rows = rownames(ci), lower = unname(ci[, 1L]), upper = unname(ci[, 2L]),
             names = nm$r, readable = nm$readable, estimate = unname(est))
    })
}

# What confint(method = "boot") bootstraps (lme4's bootFun in confint.merMod):
# the standard deviations and correlations, sigma, the fixed effects -- in
# lmermagic's order (lmm_compat_varpars), which is Cv_to_Sv's. The refits of
# the bootstrap skip the names (named = FALSE).
lmm_tb_bootfun <- function(x, named = TRUE) {
    useSc <- as.logical(x@devcomp$dims[["useSc"]])
    ss <- lmm_compat_sdcor(x, lme4::isLMM(x) || lme4::isNLMM(x), useSc)
    if (!named) return(c(unname(ss), unname(lme4::fixef(x))))
    c(stats::setNames(ss, lmm_compat_varpars(x)$sig), lme4::fixef(x))
}

# Step 1 of the bootstrap, exactly as lme4::bootMer(use.u = FALSE): the
# nsim responses simulated in one go. Refits then need no random numbers, so
# they can run in chunks or in other processes and give the same result.
lmm_tb_boot_setup <- function(fit, data, opts, nsim, seed) {
    lmm_tb_run(function() {
        sims <- lmm_tb_with_seed(seed, function() {
            stats::simulate(fit, nsim = nsim, use.u = FALSE, na.action = stats::na.exclude)
        })
        control <- if (length(opts$control))
            lmm_control(if (opts$kind == "lmer") "lmer" else "glmer", opts$control)
        t0 <- lmm_tb_bootfun(fit)
        nm <- lmm_tb_parnames(fit)
        # refit() gives an lme4 fit either way; without lmerTest's class the
        # state also unserializes in a worker without lmerTest loaded.
        if (inherits(fit, "lmerModLmerTest")) fit <- lmm_compat_as_lmerMod(fit)
        list(state = list(fit = fit, sims = sims, control = control),
             t0 = unname(t0), names = names(t0), readable = nm$readable)
    })
}

# Step 2: refit replicates from..to (1-based); a failed refit gives NAs, as
# in bootMer. values: replicate after replicate, each the k parameters.
lmm_tb_boot_chunk <- function(state, from, to) {
    warns <- character()
    errs <- character()
    fit <- state$fit
    k <- length(lmm_tb_bootfun(fit, named = FALSE))
    vals <- vapply(seq.int(from, to), function(i) {
        res <- lmm_with_conditions(function() {
            lmm_tb_bootfun(lme4::refit(fit, state$sims[[i]], control = state$control),
                           named = FALSE)
        })
        warns <<- c(warns, res$warnings, res$messages)
        if (inherits(res$value, "error")) {
            errs <<- c(errs, conditionMessage(res$value))
            return(rep(NA_real_, k))
        }
        unname(as.numeric(res$value))
    }, numeric(k))
    list(values = as.numeric(vals), warnings = warns, errors = errs)
}

lmm_tb_boot_save <- function(state, path) {
    saveRDS(state, file = path)
    TRUE
}

lmm_tb_boot_load <- function(path) list(state = readRDS(path))

# Step 3: percentile intervals exactly as confint(method = "boot") computes
# them: lme4's confint.bootMer on a bootMer-like object.
lmm_tb_boot_ci <- function(fit, values, nsim, level) {
    lmm_tb_run(function() {
        t0 <- lmm_tb_bootfun(fit)
        tmat <- matrix(values, nrow = nsim)
        colnames(tmat) <- names(t0)
        if (all(is.na(tmat))) stop("*all* bootstrap runs failed!")
        bb <- structure(list(t0 = t0, t = tmat, R = nsim, data = stats::model.frame(fit),
                             seed = NULL, statistic = lmm_tb_bootfun, sim = "parametric",
                             call = quote(bootMer()), ran.gen = "simulate(<merMod>, 1, *)",
                             mle = NULL),
                        class = c("bootMer", "boot"))
        ci <- lme4:::confint.bootMer(bb, level = level, type = "perc")
        list(rows = rownames(ci), lower = unname(ci[, 1L]), upper = unname(ci[, 2L]),
             failed = sum(apply(is.na(tmat), 1L, all)))
    })
}
