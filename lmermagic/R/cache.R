# A fit as bytes for the disk cache, and back (the R half of cache.py).
# sys.source()d by rbridge.py, with every file of R/, into one private
# environment whose parent is baseenv() (see rbridge.R).

lmm_cache_format <- 2L

# lmm_fit for a fit the disk cache will keep: also the tables Python reads,
# packed as bytes (lmm_pack_raw, read back by Python alone), with R's
# warnings and messages from the fit.
lmm_cache_fit <- function(data, formula_text, opts, allowed, progress = FALSE) {
    res <- lmm_fit(data, formula_text, opts, allowed, progress)
    if (!is.null(res$fit)) {
        res$cache_tables <- lmm_pack_raw(list(
            format = lmm_cache_format, tables = res$tables,
            texts = as.character(c(res$warnings, res$messages))))
    }
    res
}

# lme4 keeps a fit's working parts (pp: X, Zt, theta, ...; resp: y, mu, ...)
# in reference-class objects whose fields are active bindings, and whose class
# definition holds an unevaluated promise: neither may be in a stream that
# Python's check (rdsguard.py) lets through, because R would run them. So
# every reference-class slot is written as the plain list of its fields (class
# "lmm_rc_fields") and rebuilt from the class of this lme4 after reading. The
# fields are asked of the class, not listed here, so another lme4 release
# needs no change; external pointers are dropped (lme4 remakes them on first
# use), a family becomes lmm_compat_family_fields() (compat.R).
lmm_cache_strip <- function(fit) {
    for (s in methods::slotNames(fit)) {
        o <- methods::slot(fit, s)
        if (!methods::is(o, "envRefClass")) next
        cls <- class(o)
        names <- names(o$getRefClass()$fields())
        vals <- stats::setNames(lapply(names, function(f) o$field(f)), names)
        vals <- vals[!vapply(vals, function(v) typeof(v) == "externalptr", NA)]
        if (!is.null(vals$family)) vals$family <- lmm_compat_family_fields(vals$family)
        rc <- list(class = as.character(cls), package = attr(cls, "package"), fields = vals)
        methods::slot(fit, s, check = FALSE) <- structure(rc, class = "lmm_rc_fields")
    }
    fit
}

# Only lme4's own classes are made: the fit's class must be lme4's or
# lmerTest's (methods would load whatever package an S4 class names), and a
# field list becomes an object of an lme4 class that the fit's class
# declares for that slot.
lmm_cache_rebuild <- function(fit) {
    pkg <- attr(attr(fit, "class", exact = TRUE), "package", exact = TRUE)
    if (!isS4(fit) || !is.character(pkg) || length(pkg) != 1L ||
        !(pkg %in% c("lme4", "lmerTest"))) {
        stop("not a fit of lme4 or lmerTest")
    }
    slots <- methods::getSlots(methods::getClass(class(fit)))
    for (s in names(slots)) {
        rc <- methods::slot(fit, s)
        if (!inherits(rc, "lmm_rc_fields")) next
        def <- methods::getClass(as.character(rc$class)[1L], where = asNamespace("lme4"))
        if (!identical(def@package, "lme4") || !methods::extends(def, slots[[s]])) {
            stop("a field list of another class than its slot's")
        }
        f <- rc$fields
        if (!is.null(f$family)) f$family <- lmm_compat_family(f$family)
        o <- if (is.null(f$family)) methods::new(def)
             else methods::new(def, family = f$family, y = f$y)
        env <- as.environment(o)
        for (n in names(f)) {
            # a field behind an active binding keeps its value in ".->name"
            store <- paste0(".->", n)
            if (exists(store, envir = env, inherits = FALSE)) {
                locked <- bindingIsLocked(store, env)
                if (locked) unlockBinding(store, env)
                assign(store, f[[n]], envir = env)
                if (locked) lockBinding(store, env)
            } else {
                o$field(n, f[[n]])
            }
        }
        methods::slot(fit, s) <- o
    }
    fit
}

# The formula's environment (formula.R's lmm_safe_env: the allowed functions)
# is not written either: serialize()'s refhook writes it as its name, the
# functions it holds as "package::name", and unserialize()'s makes it again
# from this R's own functions. No closure, no byte code and no namespace
# reference is then in the stream, which also makes it readable by another
# R release (byte code differs between releases).
lmm_formula_env_name <- function(env) {
    funs <- Filter(is.function, as.list(env, all.names = TRUE))
    pkgs <- vapply(funs, function(f) {
        e <- environment(f)
        if (is.null(e)) "base" else environmentName(e)
    }, "")
    c("lmm_formula_env", sort(paste0(pkgs, "::", names(funs))))
}

lmm_formula_env_from <- function(name) {
    if (!identical(name[1L], "lmm_formula_env")) stop("not lmermagic's formula environment")
    parts <- strsplit(name[-1L], "::", fixed = TRUE)
    if (!all(lengths(parts) == 2L)) stop("a bad function name in a formula environment")
    lmm_safe_env(split(vapply(parts, `[`, "", 2L), vapply(parts, `[`, "", 1L)))
}

# A formula environment: its parent the empty environment, and in it only
# functions under their own names in their own namespaces, pi, T, F, and
# plain vectors (lme4 puts a fit's weights and offset there). Returns its
# name for the refhook (lmm_formula_env_name) and those vectors, or NULL for
# any other environment.
lmm_formula_env_parts <- function(e) {
    if (!is.environment(e) || !identical(parent.env(e), emptyenv())) return(NULL)
    names <- sort(ls(e, all.names = TRUE, sorted = FALSE))
    if (any(vapply(names, bindingIsActive, NA, env = e))) return(NULL)
    consts <- list(pi = base::pi, T = TRUE, F = FALSE)
    data <- list()
    for (n in names) {
        v <- get(n, envir = e, inherits = FALSE)
        if (n %in% names(consts) && identical(v, consts[[n]])) next
        if (is.atomic(v) && !is.object(v)) {
            data[[n]] <- v
            next
        }
        if (!is.function(v)) return(NULL)
        pkg <- if (is.null(environment(v))) "base" else environmentName(environment(v))
        if (!(pkg %in% loadedNamespaces()) ||
            !identical(get0(n, envir = asNamespace(pkg), inherits = FALSE), v)) return(NULL)
    }
    list(name = lmm_formula_env_name(e), data = data)
}

# serialize() with the formula environments written by name: every one
# holding these same vectors (`formula_data`, written in the object itself).
# The refhook sees every reference (serialize() asks before it looks for a
# repeat), so each comes back as an environment of its own.
lmm_serialize_fit <- function(x, formula_data = list()) {
    serialize(x, NULL, refhook = function(e) {
        p <- lmm_formula_env_parts(e)
        if (is.null(p) || !identical(p$data, formula_data)) NULL else p$name
    })
}

# R's own serialisation of the fit (stripped) and the data it was fitted on.
lmm_cache_payload <- function(fit, data) {
    fenv <- if (isS4(fit)) attr(attr(fit@frame, "terms"), ".Environment")
    extras <- lmm_formula_env_parts(fenv)$data
    if (is.null(extras)) extras <- list()
    lmm_serialize_fit(list(fit = lmm_cache_strip(fit), data = data, formula_data = extras),
                      extras)
}

# The payload back into the fit and its data, when a method first needs them
# (this loads lme4 and Matrix). Python checked the bytes before (rdsguard.py)
# and the entry's MAC verified, so anything else here is lmermagic's own
# mistake: said plainly, never used.
lmm_cache_unserialize <- function(payload) {
    obj <- tryCatch({
        made <- list()
        obj <- unserialize(payload, refhook = function(name) {
            e <- lmm_formula_env_from(name)
            made[[length(made) + 1L]] <<- e
            e
        })
        for (n in names(obj$formula_data)) {
            v <- obj$formula_data[[n]]
            if (!is.atomic(v) || is.object(v)) stop("not a vector")
            for (e in made) if (!exists(n, envir = e, inherits = FALSE)) assign(n, v, envir = e)
        }
        obj$fit <- lmm_cache_rebuild(obj$fit)
        obj
    }, error = function(e) NULL)
    ok <- is.list(obj) && inherits(obj$fit, "merMod") && is.data.frame(obj$data) &&
        is.matrix(attr(obj$fit, "lmermagic_coefmat"))
    if (!ok) {
        stop("the fit kept in the disk cache could not be read back as a fit; ",
             "delete the entry with lmermagic.clear_cache(cache_dir) and fit again")
    }
    obj[c("fit", "data")]
}

# What this R session writes itself, for Python's check of a stream
# (rdsguard.survey, from fitting.py): the formula and its environment of this
# allowlist (as the name lmm_serialize_fit writes), a call of each allowed
# function, the calls lmm_fit_call() makes for every kind of fit and those
# lme4 stores (compat.R), a formula's terms, the vectors R writes as ALTREP,
# and classes of the packages whose S4 objects a fit holds (compat.R).
lmm_cache_reference <- function(allowed) {
    data <- data.frame(y = c(1, 2), g = factor(c("a", "b")))
    formula <- lmm_make_formula("y ~ 1 + (1 | g)", names(data), allowed)
    opts <- list(list(kind = "lmer", ddf = "lme4", reml = TRUE),
                 list(kind = "lmer", ddf = "kenward-roger", reml = TRUE),
                 list(kind = "glmer", family = "binomial", link = "logit"),
                 list(kind = "glmer.nb"))
    calls <- c(lapply(opts, function(o) lmm_fit_call(data, formula, o)$call),
               lmm_compat_stored_calls())
    allowed_calls <- lapply(unlist(allowed, use.names = FALSE),
                            function(name) as.call(list(as.name(name))))
    altrep <- list(1:2, seq_len(2L), as.character(1:2), as.numeric(1:2))
    classes <- lapply(lmm_compat_class_packages(),
                      function(p) structure(list(), class = structure("x", package = p)))
    lmm_serialize_fit(list(formula = formula, allowed_calls = allowed_calls, calls = calls,
                           terms = stats::terms(formula), altrep = altrep,
                           classes = classes))
}
