# Every difference between the lme4 / lmerTest releases lmermagic supports
# (lme4 1.1-31 to 2.x, lmerTest 3.1 to 3.2) that reaches a result, in one file.
# lmermagic's tables keep one schema (docs/schema.md) whatever a release calls
# or orders things; the Satterthwaite engine's check of lme4's internals is in
# satterthwaite.R, beside the code that reads them.

# Column names a release renamed -> the name lmermagic's schema uses.
#   lme4 >= 1.1-37: the likelihood-ratio table's "deviance" is "-2*log(L)".
.lmm_compat_renamed <- c("-2*log(L)" = "deviance")

lmm_compat_names <- function(nm) {
    hit <- nm %in% names(.lmm_compat_renamed)
    nm[hit] <- unname(.lmm_compat_renamed[nm[hit]])
    nm
}

# The variance parameters of a fit under lmermagic's names, in lme4 1.1's order:
# per random-effect term, the layout of its Cholesky factor (lower triangle,
# column by column: sd_1, cor_21, cor_31, ..., sd_2, cor_32, ...), then sigma.
# That is also the order of lme4's Cv_to_Sv(theta). lme4 2.x orders confint's
# rows and profnames() differently (every sd of a term first) and numbers
# .sig01, .sig02, ... in its own order, so the same .sig02 names another
# parameter there: results are put into this order by readable name.
#   sig:      .sig01, ..., .sigma (lmermagic's row names)
#   readable: sd_(Intercept)|Subject, cor_Days.(Intercept)|Subject, ..., sigma
#   from_r:   this lme4's .sigNN -> readable name
lmm_compat_varpars <- function(fit) {
    useSc <- as.logical(fit@devcomp$dims[["useSc"]])
    cnms <- fit@cnms
    readable <- unlist(lapply(seq_along(cnms), function(i) {
        cn <- cnms[[i]]
        g <- names(cnms)[i]
        n <- length(cn)
        unlist(lapply(seq_len(n), function(j) {
            c(sprintf("sd_%s|%s", cn[j], g),
              if (j < n) sprintf("cor_%s.%s|%s", cn[(j + 1L):n], cn[j], g))
        }))
    }))
    if (useSc) readable <- c(readable, "sigma")
    r_read <- lme4:::profnames(fit, FALSE, useSc = useSc)
    r_sig <- lme4:::profnames(fit, TRUE, useSc = useSc)
    # lme4 2.1-0 names a homogeneous cs()/ar1() term's parameters with an NA
    # among them (one name more than it has parameters): drop it.
    if (anyNA(r_read) && sum(!is.na(r_read)) == length(r_sig)) r_read <- r_read[!is.na(r_read)]
    # A covariance layout we do not know (lme4 2.x's structured covariances):
    # lme4's own names and order.
    if (!setequal(readable, r_read) || anyDuplicated(readable)) readable <- r_read
    nsig <- length(readable) - useSc
    list(sig = c(sprintf(".sig%02d", seq_len(nsig)), if (useSc) ".sigma"),
         readable = readable,
         from_r = stats::setNames(r_read, r_sig))
}

# A confint() matrix of this lme4 (rows .sigNN in its order, .sigma, fixed
# effects) in lmermagic's order, with lmermagic's row names.
lmm_compat_confint_rows <- function(fit, ci) {
    vp <- lmm_compat_varpars(fit)
    fe <- names(lme4::fixef(fit))
    rows <- rownames(ci)
    readable <- ifelse(rows %in% names(vp$from_r), vp$from_r[rows], rows)
    at <- match(c(vp$readable, fe), readable)
    if (anyNA(at) || length(at) != nrow(ci)) return(ci)
    out <- ci[at, , drop = FALSE]
    rownames(out) <- c(vp$sig, fe)
    out
}

# lme4 >= 1.1-36 takes findbars() and nobars() from the reformulas package; from
# 1.1-38 on its own copies warn once per session that they moved, and that
# warning would land in whichever fit first used them. Call reformulas' where it
# is installed, lme4's (lme4 1.1-31 to 1.1-35) where not.
.lmm_formula_fn <- function(name) {
    pkg <- if (nzchar(system.file(package = "reformulas"))) "reformulas" else "lme4"
    getExportedValue(pkg, name)
}
lmm_findbars <- function(f) .lmm_formula_fn("findbars")(f)
lmm_nobars <- function(f) .lmm_formula_fn("nobars")(f)

# lme4's lmer() or glmer() with its first step, the lFormula() / glFormula()
# that builds the design, taken from `.lmm_design` (many.R) when that holds a
# design already built: many responses on one design then cost the
# optimisation alone, and each fit is still lme4's own code, release by
# release. The one statement replaced is `lmod <- eval(mc, parent.frame(1L))`
# (glmer: `glmod <- ...`), in lme4 1.1-31 to 2.1-0 alike; NULL where this lme4
# has no such statement (many.R then fits every model with a whole lmer()).
.lmm_compat_cache <- new.env(parent = emptyenv())
lmm_compat_prebuilt <- function(kind) {
    hit <- .lmm_compat_cache[[kind]]
    if (!is.null(hit)) return(if (is.function(hit)) hit else NULL)
    fun <- if (kind == "lmer") lme4::lmer else lme4::glmer
    var <- as.name(if (kind == "lmer") "lmod" else "glmod")
    b <- body(fun)
    target <- call("<-", var, quote(eval(mc, parent.frame(1L))))
    at <- which(vapply(as.list(b), function(s) identical(s, target), NA))
    out <- FALSE
    if (length(at) == 1L) {
        b[[at]] <- call("<-", var, quote(.lmm_design$get(mc, parent.frame(1L))))
        body(fun) <- b
        formals(fun) <- c(formals(fun), alist(.lmm_design = ))
        out <- fun
    }
    assign(kind, out, envir = .lmm_compat_cache)
    if (is.function(out)) out else NULL
}

# A copy of an R object that shares no memory with it: lme4's C++ code writes
# into the memory of a design's parts (theta, Lambdat) as it optimises, so a
# design used again must be a fresh copy of the pristine one.
lmm_compat_deepcopy <- function(x) .Call(get("deepcopy", envir = asNamespace("lme4")), x)

# The per-observation fields of lme4's response module that augment() reports,
# under broom.mixed's names (.mu, .offset, .sqrtXwt, .sqrtrwt, .weights, .wtres,
# .eta). They are reference-class fields, not API: a field a release lacks (or
# sizes differently) becomes NA rather than an error; lmer's response has no
# eta, which is mu for its identity link.
lmm_compat_resp_columns <- function(fit) {
    resp <- fit@resp
    mu <- as.numeric(resp$mu)
    field <- function(name) {
        v <- tryCatch(resp[[name]], error = function(e) NULL)
        if (length(v) == length(mu)) as.numeric(v) else rep(NA_real_, length(mu))
    }
    out <- lapply(c(mu = "mu", offset = "offset", sqrtXwt = "sqrtXwt", sqrtrwt = "sqrtrwt",
                    weights = "weights", wtres = "wtres", eta = "eta"), field)
    if (inherits(fit, "lmerMod")) out$eta <- mu
    stats::setNames(out, paste0(".", names(out)))
}

# A family as plain data for the disk cache (cache.R's lmm_cache_strip), and
# back: its functions are closures made by stats (or, for glmer.nb, MASS's
# negative.binomial with lme4's theta) and are made again rather than stored.
lmm_compat_family_fields <- function(family) {
    theta <- if (startsWith(family$family, "Negative Binomial")) {
        get(".Theta", envir = environment(family$aic))
    }
    list(family = family$family, link = family$link, theta = theta)
}

lmm_compat_family <- function(x) {
    link <- as.character(x$link)[1L]
    if (!is.null(x$theta)) {
        return(MASS::negative.binomial(theta = as.numeric(x$theta)[1L], link = link))
    }
    lmm_make_family(as.character(x$family)[1L], link)
}

# Calls lme4 itself writes into a fit's stored call, beyond those of
# lmm_fit_call() (the disk cache's check allows their functions, cache.R's
# lmm_cache_reference): glmer.nb() stores its final family as
# MASS::negative.binomial(theta = <estimate>) (lme4 1.1-31 to 2.1-0).
# lme4 2.x's covariance terms (cs(1 | g), ...) stay in a fit's formula as calls
# of their names, which are not functions of the formula's environment.
lmm_compat_stored_calls <- function() {
    # by lme4's version, read from its DESCRIPTION: asking its namespace for
    # lme4_specials would load lme4 (and Matrix) when a disk entry is read, which
    # a restored fit defers until a method needs them
    covs <- if (utils::packageVersion("lme4") >= "2.0") lmm_cov_names else character()
    c(list(quote(MASS::negative.binomial(theta = 1))),
      lapply(covs, function(name) call(name)))
}

# The packages whose S4 classes a fit holds (the fit's own class, lme4's
# matrices of its model): an S4 object's class names its package, and the
# methods package loads that package to find the class. The disk cache's
# check allows these only (cache.R's lmm_cache_reference).
lmm_compat_class_packages <- function() c("lme4", "lmerTest", "Matrix")

# lme4's convergence check with derivatives computed after the fit. In lme4
# 1.1 (1.1-31 read), lmer() runs optwrap(), which always ends with
# deriv12(devfun, opt$par, fx = opt$value) when calc.derivs is TRUE, then
# checkConv(derivs, opt$par, ctrl, lbound) and stores both in @optinfo. The
# Satterthwaite engine evaluates those same points (lme4's deriv12 on the same
# deviance, bit for bit), so lmm_fit() fits with calc.derivs = FALSE and runs
# the check here. lme4 2.x decides calc.derivs itself (not above 1e4 rows or 10
# parameters, not for singular fits, by mkPar()'s parameters) and passes
# checkConv ubound/nobs/ndim: there lme4 computes its own derivatives, as
# before. TRUE where this lme4 is the one the deferred check reproduces.
lmm_compat_defer_derivs <- function() {
    hit <- .lmm_compat_cache$defer_derivs
    if (!is.null(hit)) return(hit)
    ns <- asNamespace("lme4")
    cc <- get0("checkConv", envir = ns, inherits = FALSE)
    d12 <- get0("deriv12", envir = ns, inherits = FALSE)
    ok <- utils::packageVersion("lme4") < "2.0" && is.function(cc) && is.function(d12) &&
        identical(names(formals(cc)), c("derivs", "coefs", "ctrl", "lbound", "debug")) &&
        identical(formals(d12)$delta, 1e-4) &&
        any(grepl("deriv12(fn, opt$par, fx = opt$value)",
                  deparse(body(get("optwrap", envir = ns))), fixed = TRUE))
    .lmm_compat_cache$defer_derivs <- ok
    ok
}

# What lmer() would have done after optwrap() with calc.derivs = TRUE, given
# lme4's deriv12() at the fit (derivs; NULL: computed here on lme4's devfun):
# the same checkConv() call (its warnings are raised as lme4 raises them) and
# the same @optinfo. A singular fit was checked in full by lmer() already.
lmm_compat_conv_check <- function(fit, derivs, control) {
    par <- fit@optinfo$val
    if (is.null(derivs)) {
        engine <- .lmm_sat_engine_from_fit(fit)
        derivs <- get("deriv12", envir = asNamespace("lme4"))(engine$eval, par)
    }
    fit@optinfo$derivs <- derivs
    ctrl <- control$checkConv
    lb <- fit@lower
    if (!any(par[lb == 0] < ctrl$check.conv.singular$tol)) {
        cc <- lme4:::checkConv(derivs, par, ctrl = ctrl, lbound = lb)
        fit@optinfo$conv["lme4"] <- list(cc)
    }
    fit
}

# The covariance-structure terms this lme4 reads in a formula: lme4 2.0 added
# us(x | g), diag(x | g), cs(x | g) and ar1(x | g) (the last three with
# hom = TRUE/FALSE), listed in its namespace as lme4_specials (lme4 2.1-0,
# R/utilities.R); lme4 1.1 has none and would read cs(1 | g) as a call to a
# function cs(). formula.R's check refuses a term not in this list, and names
# the lme4 needed. Only the terms lmermagic knows (formula.R's lmm_cov_names)
# are ever allowed, whatever a later lme4 adds.
lmm_compat_cov_specials <- function() {
    hit <- .lmm_compat_cache$cov_specials
    if (!is.null(hit)) return(hit)
    out <- character()
    if (utils::packageVersion("lme4") >= "2.0") {
        sp <- get0("lme4_specials", envir = asNamespace("lme4"), inherits = FALSE)
        if (is.character(sp)) out <- intersect(lmm_cov_names, sp)
    }
    .lmm_compat_cache$cov_specials <- out
    out
}

# The parameters lme4's deviance function is optimised over. lme4 1.1 and lme4
# 2.x's us() and diag() terms optimise over theta itself, the entries of the
# relative Cholesky factor (diag(hom = TRUE): one theta, repeated by Lind).
# lme4 2.x's cs() and ar1() terms optimise over par = (relative sd or sds,
# rho) and map it to theta with getTheta() (lme4 2.1-0, R/covariance.R:
# mkMkTheta(); getPar() of a fit is optinfo$val). NULL where par is theta,
# else list(par, to_theta): the Satterthwaite engine then differentiates in
# par, the model's own parameters (df do not depend on the parametrisation,
# but differences in theta would leave the model's constraints).
lmm_compat_par_map <- function(fit) {
    covs <- lmm_compat_cov_classes(fit)
    if (all(covs %in% c("Covariance.us", "Covariance.diag"))) return(NULL)
    ns <- asNamespace("lme4")
    covs <- get("getReCovs", envir = ns)(fit)
    par <- unlist(lapply(covs, get("getPar", envir = ns)), use.names = FALSE)
    to_theta <- get("mkMkTheta", envir = ns)(covs)
    list(par = as.numeric(par), to_theta = to_theta)
}

# The covariance class of each random-effect term: "Covariance.us" for every
# term of lme4 1.1 (and for (x | g) in lme4 2.x), else lme4 2.x's class
# (Covariance.diag, .cs, .ar1).
lmm_compat_cov_classes <- function(fit) {
    n <- length(fit@cnms)
    if (utils::packageVersion("lme4") < "2.0") return(rep("Covariance.us", n))
    covs <- get("getReCovs", envir = asNamespace("lme4"))(fit)
    vapply(covs, function(x) class(x)[1L], "")
}

# The variance parameters on confint()'s scale, in lmm_compat_varpars()'s
# order: standard deviations and correlations (scaled by sigma for an LMM:
# scale_theta), then sigma where the model has one (use_sc). With unstructured
# terms only that is lme4's Cv_to_Sv(theta); a structured term of lme4 2.x
# (diag, cs, ar1) has fewer parameters than its Cholesky factor has entries
# (cs: sds and one rho), and lme4 2.x's own confint() reads them with
# convParToProfPar(optinfo$val) (R/profile.R, bootFun), in profnames()' order.
lmm_compat_sdcor <- function(x, scale_theta, use_sc) {
    if (!all(lmm_compat_cov_classes(x) == "Covariance.us")) {
        par <- x@optinfo$val[seq_along(x@lower)]
        conv <- get("convParToProfPar", envir = asNamespace("lme4"))
        if (scale_theta) return(conv(par, x, profscale = "sdcor", sc = stats::sigma(x)))
        return(c(conv(par, x, profscale = "sdcor", sc = NULL), if (use_sc) stats::sigma(x)))
    }
    th <- x@theta
    nvec <- lengths(x@cnms)
    if (scale_theta) {
        lme4:::Cv_to_Sv(th, n = nvec, s = stats::sigma(x))
    } else if (use_sc) {
        c(lme4:::Cv_to_Sv(th, n = nvec), stats::sigma(x))
    } else {
        lme4:::Cv_to_Sv(th, n = nvec)
    }
}

# lme4 2.x keeps a fit's covariance structures in the fit's attribute "reCovs"
# (R/covariance.R: getReCovs()), which an S4 coercion such as
# as(fit, "lmerMod") drops; without it lme4 2.x reads every term as
# unstructured (a cs() term's theta then has the wrong length, confint() the
# wrong rows). lmerTest's class to lme4's with the attribute kept.
lmm_compat_as_lmerMod <- function(fit) {
    covs <- attr(fit, "reCovs", exact = TRUE)
    fit <- methods::as(fit, "lmerMod")
    if (!is.null(covs)) attr(fit, "reCovs") <- covs
    fit
}
