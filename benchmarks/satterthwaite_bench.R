# Times Satterthwaite df: lmermagic's lmm_satterthwaite against lmerTest.
#
#   Rscript benchmarks/satterthwaite_bench.R [reps_insteval] [reps_sleepstudy]
#   (defaults 3 and 20; reps_insteval = 0 skips InstEval, ~90 s per InstEval run)
#
# For InstEval `y ~ service + (1|s) + (1|d) + (1|dept)` (REML) and sleepstudy
# `Reaction ~ Days + (Days|Subject)` (REML) it times, interleaved run by run:
#   A  lme4::lmer alone
#   B  lmerTest::lmer + summary()                (what a user of lmerTest pays)
#   C  lme4::lmer + lmm_satterthwaite()          (ours)
# and prints medians (elapsed and CPU), the ratio C/B, the number of deviance
# evaluations ours used, and the largest relative df / p-value difference.

args <- commandArgs(trailingOnly = TRUE)
reps_big <- if (length(args) >= 1) as.integer(args[[1]]) else 3L
reps_small <- if (length(args) >= 2) as.integer(args[[2]]) else 20L

this_file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
root <- if (is.na(this_file)) getwd() else dirname(dirname(normalizePath(this_file)))
sat_env <- new.env(parent = baseenv())
for (f in c("satterthwaite.R", "satterthwaite_derivs.R")) {
    sys.source(file.path(root, "lmermagic", "R", f), envir = sat_env)
}

timed <- function(expr) {
  gc(FALSE)
  t0 <- proc.time()
  value <- force(expr)
  t1 <- proc.time() - t0
  list(value = value, elapsed = t1[["elapsed"]], cpu = t1[["user.self"]] + t1[["sys.self"]])
}

bench <- function(label, formula, data, reps) {
  cat(sprintf("\n== %s: %s  (REML, %d runs each, interleaved)\n", label,
              paste(deparse(formula), collapse = ""), reps))
  el <- cpu <- list(lme4 = numeric(0), lmerTest = numeric(0), ours = numeric(0))
  last <- NULL
  for (r in seq_len(reps)) {
    a <- timed(lme4::lmer(formula, data = data))
    b <- timed({
      m <- lmerTest::lmer(formula, data = data)
      list(model = m, summary = summary(m))
    })
    c <- timed({
      m <- lme4::lmer(formula, data = data)
      list(model = m, sat = sat_env$lmm_satterthwaite(m))
    })
    for (nm in names(el)) {
      x <- switch(nm, lme4 = a, lmerTest = b, ours = c)
      el[[nm]] <- c(el[[nm]], x$elapsed)
      cpu[[nm]] <- c(cpu[[nm]], x$cpu)
    }
    last <- list(lt = b$value, ours = c$value)
  }
  co <- last$lt$summary$coefficients
  sat <- last$ours$sat
  df_err <- max(abs(sat$df / co[, "df"] - 1))
  p_err <- max(abs(sat$p / co[, "Pr(>|t|)"] - 1))
  med <- function(v) stats::median(v)
  cat(sprintf("%-34s %10s %10s\n", "median seconds", "elapsed", "cpu"))
  cat(sprintf("%-34s %10.3f %10.3f\n", "A lme4::lmer", med(el$lme4), med(cpu$lme4)))
  cat(sprintf("%-34s %10.3f %10.3f\n", "B lmerTest::lmer + summary",
              med(el$lmerTest), med(cpu$lmerTest)))
  cat(sprintf("%-34s %10.3f %10.3f\n", "C lme4::lmer + lmm_satterthwaite",
              med(el$ours), med(cpu$ours)))
  cat(sprintf("%-34s %10.3f %10.3f\n", "  of which df (C - A)", med(el$ours) - med(el$lme4),
              med(cpu$ours) - med(cpu$lme4)))
  cat(sprintf("ratio C/B (ours / lmerTest): elapsed %.3f, cpu %.3f\n",
              med(el$ours) / med(el$lmerTest), med(cpu$ours) / med(cpu$lmerTest)))
  cat(sprintf("method %s, deviance evaluations %d\n", sat$method, sat$n_devfun_evals))
  cat(sprintf("max relative difference to lmerTest: df %.2e, p-value %.2e\n", df_err, p_err))
  cat("df ours:    ", format(sat$df, digits = 10), "\n")
  cat("df lmerTest:", format(co[, "df"], digits = 10), "\n")
  cat("all elapsed: lme4", format(el$lme4, digits = 3),
      "| lmerTest", format(el$lmerTest, digits = 3),
      "| ours", format(el$ours, digits = 3), "\n")
  invisible(list(elapsed = el, cpu = cpu, df_err = df_err, p_err = p_err))
}

utils::data("sleepstudy", package = "lme4", envir = environment())
utils::data("InstEval", package = "lme4", envir = environment())
res_small <- bench("sleepstudy", Reaction ~ Days + (Days | Subject), sleepstudy, reps_small)
if (reps_big > 0) {
  res_big <- bench("InstEval", y ~ service + (1 | s) + (1 | d) + (1 | dept), InstEval, reps_big)
}
