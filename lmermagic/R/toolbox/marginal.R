# Estimated marginal means, trends and their contrasts (emmeans).
# The R half of toolbox/marginal.py; conventions in common.R.
#
# Every name, level label, method name and weight arrives as data (character
# and numeric vectors, named lists) and is used as data: nothing here builds or
# parses R text. Python checks names against the data's columns and method
# names against the allowlist below; R checks the method again.
#
# A user error that only the reference grid can reveal (weights of the wrong
# length, a ref level not in the grid, a trend variable that is not a
# fixed-effect variable) is returned as list(problem = ...), which Python turns
# into a DataError naming the grid's rows.

.lmm_tb_contrast_methods <- c("pairwise", "revpairwise", "trt.vs.ctrl", "consec",
                              "poly", "eff")

# What at= needs to know of each column: numeric, or the levels it takes.
lmm_tb_at_kinds <- function(data, cols) {
    lmm_tb_run(function() {
        lapply(stats::setNames(nm = cols), function(col) {
            x <- data[[col]]
            num <- is.numeric(x)
            list(numeric = num, levels = if (num) character(0) else levels(factor(x)))
        })
    })
}

# at's values, with each column of sd_cols set to mean - sd, mean, mean + sd
# over the rows the model used (sample SD, stats::sd()). The rows are the
# model frame's, found in data by row name, so that a variable the formula
# transforms (log(x), poly(x, 2)) still gets its raw column's values.
lmm_tb_at_values <- function(fit, data, at, sd_cols) {
    at <- if (length(at)) as.list(at) else list()
    if (length(sd_cols)) {
        rows <- match(rownames(fit@frame), rownames(data))
        if (anyNA(rows)) stop("the model's rows are not found in its data")
        for (col in sd_cols) {
            x <- as.numeric(data[[col]][rows])
            at[[col]] <- mean(x) + c(-1, 0, 1) * stats::sd(x)
        }
    }
    at
}

# The labels of the grid's rows within one `by` group (the first): what a
# contrast's weights multiply, in order.
lmm_tb_grid_labels <- function(emm) {
    grid <- emm@grid
    by <- emm@misc$by.vars
    pri <- emm@misc$pri.vars
    first <- rep(TRUE, nrow(grid))
    if (length(by)) {
        key <- do.call(paste, c(unname(lapply(grid[by], as.character)), sep = "\r"))
        first <- key == key[1L]
    }
    if (!length(pri)) return(rep("overall", sum(first)))
    do.call(paste, unname(lapply(grid[first, pri, drop = FALSE], as.character)))
}

# contrast(emm, method) summarised: a named method (with ref as a grid label)
# or weights (a named list of numeric vectors). p_adjust is the adjustment
# emmeans applied, read from its summary's note (emmeans may change a
# requested "tukey" to "sidak"), "none" when it names none.
lmm_tb_contrast <- function(emm, method, weights, ref, adjust, type) {
    args <- list(emm)
    if (length(weights)) {
        labels <- lmm_tb_grid_labels(emm)
        sizes <- vapply(weights, length, 1L)
        if (any(sizes != length(labels))) {
            bad <- which(sizes != length(labels))[1L]
            return(list(problem = "weights", name = names(weights)[bad],
                        size = sizes[[bad]], labels = labels))
        }
        args$method <- lapply(weights, as.numeric)
    } else {
        if (!(length(method) == 1L && method %in% .lmm_tb_contrast_methods)) {
            stop("unknown contrast method")
        }
        args$method <- method
        if (length(ref)) {
            labels <- lmm_tb_grid_labels(emm)
            i <- match(ref, labels)
            if (is.na(i)) return(list(problem = "ref", ref = ref, labels = labels))
            args$ref <- i
        }
    }
    if (length(adjust)) args$adjust <- adjust
    con <- do.call(emmeans::contrast, args)
    s <- if (length(type)) summary(con, type = type) else summary(con)
    mesg <- as.character(attr(s, "mesg"))
    hit <- regmatches(mesg, regexpr("(?<=P value adjustment: )[^ ]+", mesg, perl = TRUE))
    s <- as.data.frame(s)
    # A numeric `by` variable comes back as text in some contrast tables
    # ("11.1904935696999"): the grid's own value, the nearest, is put back.
    for (v in intersect(emm@misc$by.vars, names(s))) {
        g <- unique(emm@grid[[v]])
        if (is.numeric(g) && !is.numeric(s[[v]])) {
            x <- as.numeric(as.character(s[[v]]))
            s[[v]] <- g[vapply(x, function(xi) which.min(abs(g - xi)), 1L)]
        }
    }
    s$null <- NULL  # emmeans' null value (0, or 1 for ratios): in some releases only
    s$p_adjust <- if (length(hit)) hit[[1L]] else "none"
    list(table = lmm_tb_table(s))
}

lmm_tb_emmeans <- function(fit, data, opts, specs, by, at, sd_at, method, weights, ref,
                           adjust, type, level) {
    lmm_tb_run(function() {
        m <- lmm_tb_prepare(fit, data, opts)
        at <- lmm_tb_at_values(fit, data, at, sd_at)
        args <- list(m, specs = specs, type = type, data = data)
        if (length(by)) args$by <- by
        if (length(at)) args$at <- at
        emm <- do.call(emmeans::emmeans, args)
        s <- as.data.frame(summary(emm, type = type, level = level))
        out <- list(emmeans = lmm_tb_table(s), at = at)
        if (length(method) || length(weights)) {
            con <- lmm_tb_contrast(emm, method, weights, ref, adjust, type)
            if (!is.null(con$problem)) return(con)
            out$contrasts <- con$table
        }
        out
    })
}

# emtrends' slope column (emmeans names it "<var>.trend") is called "trend".
lmm_tb_emtrends <- function(fit, data, opts, var, specs, by, at, sd_at, pairwise, adjust,
                            level) {
    lmm_tb_run(function() {
        # emtrends() parses `var` as an expression when it is not a variable of
        # the model's data: only a fixed-effect variable goes through.
        f <- lmm_nobars(stats::formula(fit))
        fixed <- all.vars(f[[length(f)]])
        if (!(var %in% fixed)) return(list(problem = "var", var = var, fixed = fixed))
        m <- lmm_tb_prepare(fit, data, opts)
        at <- lmm_tb_at_values(fit, data, at, sd_at)
        args <- list(m, specs = if (length(specs)) specs else ~1, var = var, data = data)
        if (length(by)) args$by <- by
        if (length(at)) args$at <- at
        tr <- do.call(emmeans::emtrends, args)
        s <- as.data.frame(summary(tr, level = level))
        names(s)[names(s) == paste(var, "trend", sep = ".")] <- "trend"
        out <- list(emtrends = lmm_tb_table(s), at = at)
        if (pairwise) {
            con <- lmm_tb_contrast(tr, "pairwise", NULL, NULL, adjust, NULL)
            out$contrasts <- con$table
        }
        out
    })
}
