# F tests and likelihood-ratio tests.
# The R half of toolbox/tests.py; conventions in common.R.

# engine "lmertest": lmerTest's anova (type 1, 2 or 3; ddf "satterthwaite",
# "kenward-roger" or "lme4"); "lme4": lme4's sequential table of a glmer fit;
# "car": car::Anova(fit, type, test.statistic = statistic); "joint_tests":
# emmeans::joint_tests(fit), ddf its lmer.df (NULL: emmeans' default).
lmm_tb_anova <- function(fit, data, opts, type, ddf, engine = "lmertest", statistic = NULL) {
    lmm_tb_run(function() {
        if (identical(engine, "car")) {
            tab <- car::Anova(lmm_tb_prepare(fit, data, opts), type = as.character(type),
                              test.statistic = statistic)
            # car's F table says Df for the numerator df, as its chi-square table
            # says Df for the only df: give the F table lmerTest's names.
            if (identical(statistic, "F")) {
                names(tab)[match(c("F", "Df", "Df.res"), names(tab))] <-
                    c("F value", "NumDF", "DenDF")
            }
            return(lmm_tb_table(tab))
        }
        if (identical(engine, "joint_tests")) return(lmm_tb_joint_tests(fit, data, opts, ddf))
        if (lmm_tb_is_lmer(fit)) {
            m <- lmm_tb_lmertest(fit, data, opts)
            method <- switch(ddf, satterthwaite = "Satterthwaite",
                             "kenward-roger" = "Kenward-Roger", lme4 = "lme4")
            tab <- lmerTest:::anova.lmerModLmerTest(m, type = as.character(type),
                                                    ddf = method)
        } else {
            tab <- lme4:::anova.merMod(fit)
        }
        lmm_tb_table(tab)
    })
}

lmm_tb_joint_tests <- function(fit, data, opts, ddf) {
    args <- list(lmm_tb_prepare(fit, data, opts), data = data)
    if (length(ddf)) args$lmer.df <- ddf
    tab <- do.call(emmeans::joint_tests, args)
    mesg <- attr(tab, "mesg")
    class(tab) <- "data.frame"
    # emmeans >= 1.8.5 adds Chisq = F.ratio * df1 (F.ratio as printed, rounded
    # to 3 decimals) when every df2 is infinite; older releases do not.
    df2 <- tab[["df2"]]
    if (!"Chisq" %in% names(tab) && length(df2) && all(is.infinite(df2) | is.na(df2))) {
        at <- match("F.ratio", names(tab))
        tab <- cbind(tab[seq_len(at)], Chisq = tab[["F.ratio"]] * tab[["df1"]],
                     tab[-seq_len(at)])
    }
    out <- tab[setdiff(names(tab), "model term")]
    rownames(out) <- tab[["model term"]]
    if (!is.null(out$note)) out$note <- trimws(out$note)
    attr(out, "heading") <- mesg
    lmm_tb_table(out)
}

lmm_tb_ranova <- function(fit, data, opts) {
    lmm_tb_run(function() {
        # ranova() fits lm(formula, data = data, ...) for a model without any
        # random effect left, evaluated in this frame (eval.parent): bind what
        # that call names.
        lm <- stats::lm
        lmm_tb_bind(environment(), data, opts)
        m <- lmm_tb_prepare(fit, data, opts, lme4 = TRUE)
        lmm_tb_table(lmerTest::ranova(m))
    })
}

lmm_tb_drop1 <- function(fit, data, opts) {
    lmm_tb_run(function() {
        tab <- if (lmm_tb_is_lmer(fit)) {
            lmerTest:::drop1.lmerModLmerTest(lmm_tb_lmertest(fit, data, opts))
        } else {
            lme4:::drop1.merMod(lmm_tb_prepare(fit, data, opts), test = "Chisq")
        }
        lmm_tb_table(tab)
    })
}

# The labels of the data that differ from the first (in the number of rows or
# in the columns they share with it): anova(m0, m1, ...) needs the same data.
# Used by lme4's, glmmTMB's and clmm's comparisons.
lmm_tb_mismatch <- function(datas, labels) {
    same <- vapply(datas, function(d) {
        common <- intersect(names(d), names(datas[[1L]]))
        nrow(d) == nrow(datas[[1L]]) &&
            identical(as.list(d[common]), as.list(datas[[1L]][common]))
    }, logical(1L))
    labels[!same]
}

# fits, datas, optss: lists, one element per model; names: the labels;
# refit: refit REML fits with ML (lme4's default).
lmm_tb_compare <- function(fits, datas, optss, names, refit) {
    lmm_tb_run(function() {
        # lme4 checks that the calls name one data object; here every call
        # says `data`, so compare the data themselves.
        bad <- lmm_tb_mismatch(datas, names)
        if (length(bad)) return(list(mismatch = bad))
        mods <- lapply(seq_along(fits), function(i) {
            m <- lmm_tb_prepare(fits[[i]], datas[[i]], optss[[i]])
            # lmerTest's anova() hands several models to lme4's.
            if (inherits(m, "lmerModLmerTest")) m <- lmm_compat_as_lmerMod(m)
            m
        })
        tab <- do.call(lme4:::anova.merMod,
                       c(unname(mods), list(refit = refit, model.names = names)))
        lmm_tb_table(tab)
    })
}
