# The optimizer check, lme4's allFit().
# The R half of toolbox/optimizers.py; conventions in common.R.

# lme4::allFit(), restricted to the optimizers installed. lme4 1.1-31's
# allFit() itself fails when both dfoptim and optimx are missing ("logical
# subscript too long": it filters its method table twice with the unfiltered
# index), so each refit is done here exactly as allFit's worker does it:
# update(m, control = <the model's control, optimizer replaced, maxfun 1e5>).
lmm_tb_allfit <- function(fit, data, opts, maxfun) {
    lmm_tb_run(function() {
        m <- lmm_tb_prepare(fit, data, opts, lme4 = TRUE)
        tab <- lme4:::meth.tab.0
        have <- function(p) nzchar(system.file(package = p))
        keep <- !(tab[, "optimizer"] == "nmkbw" & !have("dfoptim")) &
            !(tab[, "optimizer"] == "optimx" & !have("optimx"))
        tab <- tab[keep, , drop = FALSE]
        # lme4 loads them with requireNamespace() inside the fit, whose
        # "Loading required namespace" message would mark the first fit of the
        # session as a problem: load them first, quietly.
        needs <- c(nmkbw = "dfoptim", optimx = "optimx")
        for (p in needs[intersect(names(needs), tab[, "optimizer"])])
            suppressMessages(requireNamespace(p, quietly = TRUE))
        fit_names <- gsub("\\.$", "", paste(tab[, "optimizer"], tab[, "method"], sep = "."))
        glmm <- lme4::isGLMM(m)
        base_ctrl <- stats::getCall(m)$control
        base_args <- if (is.null(base_ctrl)) list() else lapply(as.list(base_ctrl)[-1L], eval)
        rows <- lapply(seq_len(nrow(tab)), function(i) {
            optimizer <- tab[i, "optimizer"]
            method <- tab[i, "method"]
            ctrl <- base_args
            ctrl$optimizer <- optimizer
            cc <- if (is.null(ctrl$optCtrl)) list() else ctrl$optCtrl
            cc[[lme4:::maxfun_arg[[optimizer]]]] <- maxfun
            if (optimizer == "optimx") cc$method <- method
            if (optimizer == "nloptwrap") cc$algorithm <- method
            cc <- cc[intersect(names(cc), lme4:::opt.ctrls[[optimizer]])]
            ctrl$optCtrl <- cc
            ctrl <- do.call(if (glmm) lme4::glmerControl else lme4::lmerControl, ctrl)
            # update() puts the symbol `ctrl` in the call: bind it where the
            # call is evaluated, as allFit() does.
            assign("ctrl", ctrl, envir = environment(stats::formula(m)))
            t0 <- proc.time()[["elapsed"]]
            res <- lmm_with_conditions(function() stats::update(m, control = ctrl))
            elapsed <- proc.time()[["elapsed"]] - t0
            x <- res$value
            if (inherits(x, "error")) {
                return(list(optimizer = fit_names[i], ok = FALSE,
                            fixef = rep(NA_real_, length(lme4::fixef(fit))),
                            loglik = NA_real_, sdcor = NULL, feval = NA_real_,
                            time = elapsed, messages = conditionMessage(x)))
            }
            msgs <- unique(c(as.character(unlist(x@optinfo$conv$lme4$messages)),
                             res$warnings, res$messages))
            list(optimizer = fit_names[i], ok = TRUE, fixef = unname(lme4::fixef(x)),
                 loglik = as.numeric(stats::logLik(x)),
                 sdcor = as.data.frame(lme4::VarCorr(x))$sdcor,
                 feval = as.numeric(x@optinfo$feval), time = elapsed,
                 messages = paste(msgs, collapse = "; "))
        })
        vc <- as.data.frame(lme4::VarCorr(fit))
        vc_names <- ifelse(vc$grp == "Residual", "sigma",
                    ifelse(is.na(vc$var2), paste0("sd_", vc$var1, "|", vc$grp),
                           paste0("cor_", vc$var1, ".", vc$var2, "|", vc$grp)))
        list(rows = rows, fixef_names = names(lme4::fixef(fit)), sdcor_names = vc_names)
    })
}
