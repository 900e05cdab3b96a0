# Where lme4's time goes on one fit (issue 23, item 4): the phases of lme4::lmer run one
# by one, the deviance evaluations counted and timed, and lmerTest's extra work beside it.
#
#   Rscript benchmarks/profile_fit.R CSV FORMULA FACTORS [OUT.md]
#
# Phases: lFormula (model frame, Z and the random-effects terms), mkLmerDevfun (the
# predictor and response modules, the sparse Cholesky's symbolic analysis), the optimizer
# (its deviance evaluations, and its own work between them), lme4's convergence check
# (the deviance at 1 + 2k^2 more points, then checkConv), mkMerMod (the result), and
# then lmerTest's route (as_lmerModLmerTest: its Hessian and Jacobian, then summary()).
# "R's overhead per evaluation" is the devfun closure's time less the bare .Call into
# lme4's C++ with the same pointers, each timed over many calls at the optimum.
a <- commandArgs(trailingOnly = TRUE)
csv <- a[[1]]; fstr <- a[[2]]; factors <- a[[3]]
out <- if (length(a) >= 4) a[[4]] else ""
suppressPackageStartupMessages({
    library(lme4)
    library(lmerTest)
})
fac <- strsplit(factors, ",", fixed = TRUE)[[1]]
d <- utils::read.csv(csv, colClasses = stats::setNames(rep("factor", length(fac)), fac))
f <- stats::as.formula(fstr)
now <- function() as.numeric(Sys.time())
tm <- function(expr) { t0 <- now(); force(expr); now() - t0 }

# warm-up: lazy loading and byte compiling, on a small fit
invisible(lme4::lmer(Reaction ~ Days + (Days | Subject), lme4::sleepstudy))

t_whole <- tm(m_ref <- lme4::lmer(f, d))
t_lf <- tm(lf <- do.call(lme4::lFormula, list(formula = f, data = d)))
t_dev <- tm(devfun <- do.call(lme4::mkLmerDevfun, lf))
# the same closure, counting and timing its calls (optimizeLmer reads its environment)
rho <- environment(devfun)
rho$ctr <- ctr <- new.env()
ctr$n <- 0L; ctr$t <- 0
counted <- devfun
body(counted) <- quote({
    t0 <- as.numeric(Sys.time())
    v <- .Call(lmer_Deviance, pp$ptr(), resp$ptr(), as.double(theta))
    ctr$n <- ctr$n + 1L
    ctr$t <- ctr$t + (as.numeric(Sys.time()) - t0)
    v
})
t_opt <- tm(opt <- lme4::optimizeLmer(counted, control = list(), optimizer = "nloptwrap",
                                      calc.derivs = FALSE))
n_opt <- ctr$n; t_opt_evals <- ctr$t
k <- length(opt$par)
ctr$n <- 0L; ctr$t <- 0
t_deriv <- tm(derivs <- lme4:::deriv12(counted, opt$par, fx = opt$fval))
n_deriv <- ctr$n
t_mk <- tm(m <- lme4::mkMerMod(environment(devfun), opt, lf$reTrms, fr = lf$fr))

# R's overhead per evaluation: the closure against the bare .Call, at the optimum
th <- as.double(opt$par)
pp <- rho$pp$ptr(); resp <- rho$resp$ptr(); entry <- rho$lmer_Deviance
reps <- max(5L, min(400L, as.integer(ceiling(2 / (t_opt_evals / n_opt)))))
tc <- tb <- numeric(reps)
for (i in seq_len(reps)) {  # interleaved, each call timed alone: load hits both alike
    tc[i] <- tm(devfun(th))
    tb[i] <- tm(.Call(entry, pp, resp, th))
}
t_closure <- stats::median(tc); t_call <- stats::median(tb)

# lmerTest's route on the same fit
t_lt <- tm(mlt <- lmerTest::as_lmerModLmerTest(m_ref))
t_sum <- tm(invisible(summary(mlt)))

fmt <- function(s) {
    if (s >= 1) sprintf("%.2f s", s) else if (s >= 1e-3) sprintf("%.1f ms", 1000 * s)
    else sprintf("%.0f µs", 1e6 * s)
}
lines <- c(
    sprintf("`%s` on %s rows, k = %d variance parameters (%s, lme4 %s, Matrix %s)",
            fstr, format(nrow(d), big.mark = ","), k, R.version.string,
            as.character(packageVersion("lme4")), as.character(packageVersion("Matrix"))),
    "",
    "| phase | time | deviance evaluations | per evaluation |",
    "|---|---|---|---|",
    sprintf("| `lme4::lmer` as a whole (for reference) | %s | | |", fmt(t_whole)),
    sprintf("| lFormula: model frame, Z, random-effects terms | %s | | |", fmt(t_lf)),
    sprintf("| mkLmerDevfun: modules, symbolic Cholesky | %s | | |", fmt(t_dev)),
    sprintf("| optimizer (nloptwrap): evaluations | %s | %d | %s |", fmt(t_opt_evals), n_opt,
            fmt(t_opt_evals / n_opt)),
    sprintf("| optimizer: its own work between evaluations | %s | | |",
            fmt(t_opt - t_opt_evals)),
    sprintf("| convergence check: deriv12 | %s | %d | %s |", fmt(t_deriv), n_deriv,
            fmt(t_deriv / n_deriv)),
    sprintf("| mkMerMod: the result object | %s | | |", fmt(t_mk)),
    sprintf("| lmerTest: as_lmerModLmerTest (Hessian, Jacobian) | %s | | |", fmt(t_lt)),
    sprintf("| lmerTest: summary() | %s | | |", fmt(t_sum)),
    "",
    sprintf(paste("One evaluation at the optimum: %s through lme4's devfun closure, %s as",
                  "the bare .Call: R's own overhead is %s per evaluation (%.2f%%)."),
            fmt(t_closure), fmt(t_call), fmt(max(t_closure - t_call, 0)),
            100 * max(t_closure - t_call, 0) / t_closure))
writeLines(lines)
if (nzchar(out)) writeLines(lines, out)
