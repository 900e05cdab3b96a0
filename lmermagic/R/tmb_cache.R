# A glmmTMB fit as bytes (disk cache, isolated fits, saved models) and back:
# the R half of tmb_cache.py. sys.source()d by rbridge.py into lmermagic's
# private environment (see rbridge.R).
#
# A glmmTMB fit holds code: TMB's object (obj: closures over an environment
# with an external pointer to the taped function), the family's closures and
# the formulas' environment (lmm_tmb_call's, which holds glmmTMB itself). None
# of it may be in a stream Python's check (rdsguard.py) lets through. So the
# stream holds data only:
# - obj becomes the plain inputs of TMB::MakeADFun() (data, parameters, map,
#   random) and the best parameters, and is made again from them after
#   reading, as glmmTMB's own up2date() does for a fit read from a file;
# - the family becomes its name and link, made again by lmm_tmb_family()
#   (tmb.R: a fixed list);
# - every formula's and terms' environment is dropped, and set after reading
#   to a new lmm_tmb_call() environment: made from the request Python holds
#   (its formula texts, options and the caller's allowlist), never from the
#   stream, with the data that was read;
# - sdreport's environment becomes the list of its (plain) values.

lmm_tmb_cache_format <- 1L

# glmmTMB's stored call holds the formula objects themselves.
lmm_tmb_in_call <- function(x, f, depth) {
    for (i in seq_along(x)) {
        el <- x[[i]]
        if (is.call(el)) x[[i]] <- f(el, depth + 1L)
    }
    x
}

# Drop every ".Environment" attribute (formulas, terms) anywhere in x.
lmm_tmb_drop_envs <- function(x, depth = 0L) {
    if (depth > 40L || is.environment(x) || isS4(x) || is.function(x)) return(x)
    if (is.call(x)) x <- lmm_tmb_in_call(x, lmm_tmb_drop_envs, depth)
    if (is.list(x) && length(x)) {
        a <- attributes(x)
        x <- lapply(x, lmm_tmb_drop_envs, depth = depth + 1L)
        attributes(x) <- a
    }
    a <- attributes(x)
    for (n in names(a)) {
        if (n == ".Environment") attr(x, n) <- NULL
        else if (n != "names" && (is.list(a[[n]]) || !is.null(attributes(a[[n]]))))
            attr(x, n) <- lmm_tmb_drop_envs(a[[n]], depth + 1L)
    }
    x
}

lmm_tmb_set_envs <- function(x, env, depth = 0L) {
    if (depth > 40L || is.environment(x) || isS4(x) || is.function(x)) return(x)
    if (is.call(x)) x <- lmm_tmb_in_call(x, function(el, d) lmm_tmb_set_envs(el, env, d), depth)
    if (is.list(x) && length(x)) {
        a <- attributes(x)
        x <- lapply(x, lmm_tmb_set_envs, env = env, depth = depth + 1L)
        attributes(x) <- a
    }
    if (inherits(x, "formula")) attr(x, ".Environment") <- env
    a <- attributes(x)
    for (n in setdiff(names(a), c("names", ".Environment", "class"))) {
        if (is.list(a[[n]]) || !is.null(attributes(a[[n]])))
            attr(x, n) <- lmm_tmb_set_envs(a[[n]], env, depth + 1L)
    }
    x
}

lmm_tmb_strip <- function(fit) {
    ee <- fit$obj$env
    fit$obj <- structure(list(data = ee$data, parameters = ee$parameters, map = ee$map,
                              random = ee$random, last.par.best = ee$last.par.best),
                         class = "lmm_tmb_obj")
    fam <- fit$modelInfo$family
    fit$modelInfo$family <- structure(list(family = as.character(fam$family),
                                           link = as.character(fam$link)),
                                      class = "lmm_tmb_family")
    if (is.environment(fit$sdr$env)) fit$sdr$env <- as.list(fit$sdr$env, all.names = TRUE)
    lmm_tmb_drop_envs(fit)
}

# R's serialisation of the stripped fit and its data (nothing R would run).
lmm_tmb_payload <- function(fit, data) {
    serialize(list(format = lmm_tmb_cache_format, fit = lmm_tmb_strip(fit), data = data),
              NULL)
}

# In a worker process (isolated fits): the fit as bytes, and with cached the
# tables as bytes for the disk cache too.
lmm_tmb_fit_serialized <- function(data, texts, opts, allowed, cached = FALSE) {
    res <- if (isTRUE(cached)) lmm_tmb_cache_fit(data, texts, opts, allowed)
           else lmm_tmb_fit(data, texts, opts, allowed)
    if (!is.null(res$fit)) {
        res$raw <- lmm_tmb_payload(res$fit, res$data)
        res$fit <- NULL
        res$data <- NULL
    }
    res
}

# The tables as bytes for the disk cache (read by Python alone), as
# lmm_cache_fit (cache.R) does for lme4's fits.
lmm_tmb_cache_fit <- function(data, texts, opts, allowed) {
    res <- lmm_tmb_fit(data, texts, opts, allowed)
    if (!is.null(res$fit)) {
        res$cache_tables <- lmm_pack_raw(list(
            format = lmm_cache_format, tables = res$tables,
            texts = as.character(c(res$warnings, res$messages))))
    }
    res
}

# A saved model's parts (tmb_save.py): the tables, recomputed from the fit and
# packed as bytes, and the stripped fit with its data.
lmm_tmb_save_parts <- function(fit, data, texts) {
    tables <- lmm_tmb_tables(fit)
    tables$na_counts <- vapply(data, function(v) sum(is.na(v)), 1L)
    list(tables = lmm_pack_raw(list(format = lmm_cache_format, tables = tables,
                                    texts = as.character(texts))),
         payload = lmm_tmb_payload(fit, data))
}

lmm_tmb_is_data <- function(x, depth = 0L) {
    if (depth > 20L) return(FALSE)
    if (is.null(x) || (is.atomic(x) && !is.object(x))) return(TRUE)
    if (is.factor(x)) return(TRUE)
    if (isS4(x)) return(methods::is(x, "Matrix"))
    if (is.list(x) && !is.object(x))
        return(all(vapply(x, lmm_tmb_is_data, NA, depth = depth + 1L)))
    FALSE
}

# The payload back into the fit and its data. texts, opts, allowed: the
# request's (Python's), as lmm_tmb_fit took them. Python checked the bytes
# before (rdsguard.py); what does not rebuild is refused, never used.
lmm_tmb_unserialize <- function(payload, texts, opts, allowed) {
    obj <- tryCatch({
        got <- unserialize(payload)
        fit <- got$fit
        data <- got$data
        o <- fit$obj
        if (!identical(got$format, lmm_tmb_cache_format) || !is.data.frame(data) ||
            !inherits(o, "lmm_tmb_obj") || !lmm_tmb_is_data(unclass(o)) ||
            !identical(class(fit), "glmmTMB"))
            stop("not a glmmTMB fit stored by lmermagic")
        for (f in opts$factors) data[[f]] <- factor(data[[f]])
        env <- lmm_tmb_call(data, texts, opts, allowed)$env
        fam <- fit$modelInfo$family
        fit$modelInfo$family <- lmm_tmb_family(as.character(fam$family)[1L],
                                               as.character(fam$link)[1L])
        if (!identical(fit$modelInfo$family$family, opts$family) ||
            !identical(fit$modelInfo$family$link, opts$link))
            stop("a family other than the request's")
        if (is.list(fit$sdr$env)) fit$sdr$env <- list2env(fit$sdr$env)
        adf <- TMB::MakeADFun(o$data, o$parameters, map = o$map, random = o$random,
                              silent = TRUE, DLL = "glmmTMB")
        if (length(o$last.par.best) != length(adf$env$last.par.best))
            stop("parameters of another length than the model's")
        adf$env$last.par.best <- o$last.par.best
        fit$obj <- adf
        fit <- lmm_tmb_set_envs(fit, env)
        list(fit = fit, data = got$data)
    }, error = function(e) e)
    if (inherits(obj, "error")) {
        stop("the stored glmmTMB fit could not be read back as a fit (",
             conditionMessage(obj), "); fit the model again")
    }
    obj
}

# What this R session writes itself for a glmmTMB fit, for Python's check of a
# stream (rdsguard.survey, from tmb_cache.py): the calls lmm_tmb_call makes
# and glmmTMB stores in a fit (its formulas and terms, every family), and the
# classes of the packages a fit holds. The formula functions of the allowlist
# come from lmm_cache_reference (cache.R).
lmm_tmb_cache_reference <- function(allowed) {
    data <- data.frame(y = c(1, 2), x = c(0, 1), g = factor(c("a", "b")))
    texts <- list(cond = "y ~ x + (1 | g)", zi = "~ x", disp = "~ x")
    calls <- lapply(names(lmm_tmb_families), function(f) {
        lmm_tmb_call(data, texts, list(family = f, link = lmm_tmb_families[[f]][1L],
                                       weights = "x", offset = "x", reml = TRUE),
                     allowed)$call
    })
    formula <- stats::as.formula("y ~ x + (1 | g)", env = emptyenv())
    serialize(lmm_tmb_drop_envs(list(calls = calls, terms = stats::terms(formula),
                                     mf = stats::model.frame(y ~ x, data))), NULL)
}
