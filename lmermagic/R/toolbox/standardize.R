# Standardized coefficients (tidy(standardize=)): the centres and scales that
# effectsize::standardize_parameters() (parameters' and datawizard's code)
# uses, computed here from the fit's own pieces. The R half of
# toolbox/standardize.py; conventions in common.R.
#
# What effectsize does for a merMod, as read in parameters 0.20 / datawizard
# 0.6 and parameters 0.29 / datawizard 1.3 (the same in both):
# - the response is scaled only for a linear model (gaussian, identity link);
# - the weights are stats::weights(fit) (for a cbind() binomial response the
#   numbers of trials), used only when they vary and are all positive;
# - "basic": each model-matrix column's SD (weighted as above), the
#   intercept's 0, and the response's SD (1 for a non-linear model);
# - "refit": every numeric column of the model frame but the grouping factors,
#   the weights and (non-linear models) the response is centred on its
#   (weighted) mean and divided by its (weighted) SD (a constant column is set
#   to 0); factors, characters and logicals stay; then the model is refitted.

lmm_tb_std_linear <- function(fit) {
    fam <- stats::family(fit)
    identical(fam$family, "gaussian") && identical(fam$link, "identity")
}

# datawizard's weights rule: weights that are all equal do not count.
lmm_tb_std_weights <- function(fit) {
    w <- stats::weights(fit)
    if (!length(w) || all(w == 1) || all(w == w[1L]) || !all(w > 0, na.rm = TRUE)) NULL else w
}

lmm_tb_std_sd <- function(x, w) {
    if (is.null(w)) return(stats::sd(x))
    w1 <- w / sum(w)
    xc <- sqrt(w1) * (x - sum(w1 * x))
    sqrt(drop(crossprod(xc)) / (1 - sum(w1^2)))
}

lmm_tb_std_mean <- function(x, w) if (is.null(w)) mean(x) else stats::weighted.mean(x, w)

# Calls other than the formula operators: effectsize standardizes the column
# inside log(x), poly(x), factor(x), ... and the model then means something
# else (lmermagic refuses, see standardize.py).
lmm_tb_std_calls <- function(e) {
    ops <- c("~", "+", "-", "*", ":", "/", "^", "(", "|", "||", "%in%")
    if (!is.call(e)) return(character())
    head <- e[[1L]]
    own <- if (is.name(head) && as.character(head) %in% ops) character()
           else paste(deparse(e, width.cutoff = 500L), collapse = " ")
    c(own, unlist(lapply(as.list(e)[-1L], lmm_tb_std_calls)))
}

lmm_tb_std_info <- function(fit) {
    lmm_tb_run(function() {
        linear <- lmm_tb_std_linear(fit)
        w <- lmm_tb_std_weights(fit)
        f <- stats::formula(fit)
        lhs <- if (length(f) == 3L) f[[2L]] else NULL
        rhs <- f[[length(f)]]
        calls <- lmm_tb_std_calls(rhs)
        if (linear) calls <- c(lmm_tb_std_calls(lhs), calls)
        bars <- lmm_findbars(f)
        groups <- unique(unlist(lapply(bars, function(b) all.vars(b[[3L]]))))
        mf <- stats::model.frame(fit)
        skip <- c(groups, if (!linear) all.vars(lhs))
        vars <- setdiff(intersect(all.vars(f), names(mf)), skip)
        numeric <- vars[vapply(vars, function(v) is.numeric(mf[[v]]) && !is.logical(mf[[v]]) &&
                                   !is.factor(mf[[v]]), logical(1L))]
        centre <- scale <- numeric(length(numeric))
        for (i in seq_along(numeric)) {
            x <- as.numeric(mf[[numeric[i]]])
            if (length(unique(x)) == 1L) {
                centre[i] <- x[1L]  # datawizard sets a constant column to 0
                scale[i] <- 1
            } else {
                centre[i] <- lmm_tb_std_mean(x, w)
                s <- lmm_tb_std_sd(x, w)
                scale[i] <- if (is.na(s) || s == 0) 1 else s
            }
        }
        X <- lme4::getME(fit, "X")
        sd_x <- vapply(seq_len(ncol(X)), function(j) {
            if (colnames(X)[j] == "(Intercept)") 0 else lmm_tb_std_sd(X[, j], w)
        }, numeric(1L))
        sd_y <- if (linear) lmm_tb_std_sd(as.numeric(mf[[1L]]), w) else 1
        list(linear = linear, weighted = !is.null(w), calls = as.character(calls),
             columns = as.character(numeric), centre = centre, scale = scale,
             terms = colnames(X), sd_x = sd_x, sd_y = sd_y,
             df_residual = stats::df.residual(fit))
    })
}
