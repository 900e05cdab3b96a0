# refit() and update().
# The R half of toolbox/refitting.py; conventions in common.R.

# newresp: the values, column-major; ncol 2 for a cbind() binomial response.
lmm_tb_refit <- function(fit, newresp, ncol, kind, ddf) {
    lmm_tb_run(function() {
        if (ncol > 1L) newresp <- matrix(newresp, ncol = ncol)
        new <- lme4::refit(fit, newresp)
        new@call <- fit@call
        if (inherits(fit, "lmerModLmerTest") && !inherits(new, "lmerModLmerTest")) {
            # lmerTest's df need the deviance function of the new response:
            # lme4's own, built from the refitted model's modules.
            devfun <- lmm_tb_devfun(new)
            new <- lmerTest:::as_lmerModLT(new, devfun)
            new@call <- fit@call
        }
        lmm_results(new, kind, ddf)
    })
}

# lme4's deviance function for a fitted lmer model, built by lme4 from the
# fit's frame and matrices (getME), never from the fit's own modules, which
# lme4's C++ code would change in place. lme4 2.x's deviance function also needs
# the covariance constructor (mkTheta) that lme4 puts beside the modules.
lmm_tb_devfun <- function(fit) lme4::getME(fit, "devfun")

# update(): R's update.formula on checked formulas.
lmm_tb_update_formula <- function(old, new, columns, allowed) {
    lmm_tb_run(function() {
        chk <- lmm_check_formula(new, c(columns, "."), allowed)
        if (!isTRUE(chk$ok)) return(list(check = chk))
        f_old <- lmm_make_formula(old, columns, allowed)
        f_new <- lmm_make_formula(new, c(columns, "."), allowed)
        f <- stats::update.formula(f_old, f_new)
        text <- paste(deparse(f, width.cutoff = 500L), collapse = " ")
        list(formula = text, vars = lmm_check_formula(text, columns, allowed)$vars)
    })
}
