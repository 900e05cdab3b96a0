"""Exploration (temporary): what lme4 2.x and lmerTest do with covariance terms."""

from __future__ import annotations

import pytest

CODE = r'''
out <- character()
add <- function(...) out <<- c(out, paste0(...))
cap <- function(expr) paste(utils::capture.output(expr), collapse = "\n")
add("lme4 ", format(packageVersion("lme4")), " lmerTest ", format(packageVersion("lmerTest")),
    " reformulas ", tryCatch(format(packageVersion("reformulas")), error = function(e) "none"))
ns <- asNamespace("lme4")
add("specials: ", paste(get0("lme4_specials", ns), collapse = ","))
add("doublevert: ", tryCatch(lme4::getDoublevertDefault(), error = function(e) conditionMessage(e)))
add("as_lmerModLT:\n", paste(deparse(lmerTest:::as_lmerModLT), collapse = "\n"))
add("devfun_vp:\n", paste(deparse(lmerTest:::devfun_vp), collapse = "\n"))
add("get_covbeta:\n", paste(deparse(lmerTest:::get_covbeta), collapse = "\n"))
ss <- lme4::sleepstudy
ss$Daysf <- factor(ss$Days, ordered = TRUE)
ss$Dayc <- ss$Days / 9
forms <- list(
  us = Reaction ~ Days + us(Days | Subject),
  dg = Reaction ~ Days + diag(Days | Subject),
  dgh = Reaction ~ Days + diag(Days | Subject, hom = TRUE),
  cs = Reaction ~ Days + cs(1 + Days | Subject),
  csh = Reaction ~ Days + cs(1 + Days | Subject, hom = TRUE),
  ar1 = Reaction ~ Days + ar1(0 + Daysf | Subject),
  ar1n = Reaction ~ Days + ar1(0 + Daysf | Subject, hom = FALSE),
  dv = Reaction ~ Days + (Days || Subject))
for (nm in names(forms)) {
  add("==== ", nm, ": ", deparse(forms[[nm]]))
  r <- tryCatch({
    m <- lme4::lmer(forms[[nm]], data = ss)
    add("theta: ", paste(format(m@theta, digits = 8), collapse = " "))
    add("par: ", tryCatch(paste(format(lme4::getME(m, "par"), digits = 8), collapse = " "), error = function(e) conditionMessage(e)))
    add("optinfo val: ", paste(format(m@optinfo$val, digits = 8), collapse = " "))
    add("lower: ", paste(m@lower, collapse = " "))
    add("reCovs: ", cap(str(attr(m, "reCovs"), max.level = 2)))
    add("profnames T: ", paste(lme4:::profnames(m, TRUE), collapse = " "))
    add("profnames F: ", paste(lme4:::profnames(m, FALSE), collapse = " "))
    add("cnms: ", cap(str(m@cnms)))
    add("VarCorr df:\n", cap(print(as.data.frame(lme4::VarCorr(m)), digits = 10)))
    add("ci wald:\n", cap(print(confint(m, method = "Wald"))))
    add("ci prof rows: ", tryCatch(paste(rownames(confint(m, method = "profile", quiet = TRUE)), collapse = " "), error = function(e) conditionMessage(e)))
    lt <- lmerTest::as_lmerModLmerTest(m)
    add("lmerTest vcov_varpar:\n", cap(print(lt@vcov_varpar)))
    add("lmerTest df: ", cap(print(summary(lt)$coefficients, digits = 10)))
    add("tidy:\n", tryCatch(cap(print(as.data.frame(broom.mixed::tidy(m)), digits = 10)), error = function(e) conditionMessage(e)))
    add("devfun formals: ", paste(names(formals(lme4::getME(m, "devfun"))), collapse = ","))
    NULL
  }, error = function(e) add("ERROR ", conditionMessage(e)))
}
paste(out, collapse = "\n")
'''


def test_explore(rref) -> None:
    text = rref(CODE)
    pytest.fail("\n" + "\n".join(text))
