"""lme4 2.x covariance-structure terms in formulas: us(), diag(), cs(), ar1().

lme4 2.0 reads ``us(x | g)``, ``diag(x | g)``, ``cs(x | g)`` and ``ar1(x | g)``
(the last three also with ``hom = TRUE`` or ``hom = FALSE``) as random-effect
terms with a structured covariance (lme4 2.1-0: man/lmer.Rd, ``lme4_specials``
in R/utilities.R, ``upReTrms()`` in R/covariance.R). lmermagic allows exactly
these shapes where the installed lme4 has them (R/compat.R), names the lme4
needed where it does not, and refuses R code riding along on every lme4.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import lmermagic
from lmermagic.errors import FormulaError, UnsafeFormulaError


def _lme4() -> str:
    from lmermagic.rbridge import get_r

    return str(get_r().versions["lme4"])


def _lme4_2x() -> bool:
    return int(_lme4().split(".")[0]) >= 2


# String conditions: evaluated when the test runs, after R has started.
only_2x = pytest.mark.skipif("not _lme4_2x()", reason="covariance terms need lme4 >= 2.0")
only_1x = pytest.mark.skipif("_lme4_2x()", reason="this lme4 has covariance terms")


# R code riding on a covariance term or its hom= argument: each would run
# (file.create) if the term's arguments went to R unchecked.
ATTACKS = [
    "Reaction ~ Days + cs(1 + Days | Subject, hom = file.create('{p}'))",
    "Reaction ~ Days + cs(1 | Subject, hom = {{file.create('{p}'); TRUE}})",
    "Reaction ~ Days + cs(1 | Subject, hom = !file.create('{p}'))",
    "Reaction ~ Days + us(file.create('{p}') | Subject)",
    "Reaction ~ Days + cs(1 | file.create('{p}'))",
    "Reaction ~ Days + diag(Days | Subject, hom = TRUE, file.create('{p}'))",
    "Reaction ~ Days + diag(Days | Subject, n = file.create('{p}'))",
    "Reaction ~ Days + ar1(1 | Subject, hom = eval(parse(text = \"file.create('{p}')\")))",
    "Reaction ~ Days + ar1(1 | Subject, hom = base::isTRUE(file.create('{p}')))",
    "Reaction ~ Days + ar1(1 | Subject, hom = get('file.create')('{p}'))",
    "Reaction ~ Days + cs(1 | Subject, hom = (function() file.create('{p}'))())",
    "Reaction ~ Days + cs(1 | Subject)(file.create('{p}'))",
    "Reaction ~ Days + cs(1 | Subject, hom = TRUE)[file.create('{p}')]",
    "Reaction ~ Days + cs(1 | Subject, hom = TRUE) + cs(1 | Subject, hom = file.create('{p}'))",
    "Reaction ~ Days + lme4::cs(1 | Subject, hom = TRUE) + file.create('{p}')",
    "Reaction ~ Days + cs(1 | Subject, hom = TRUE, hom = file.create('{p}'))",
    "Reaction ~ Days + diag(file.create('{p}'))",
]


@pytest.mark.parametrize("template", ATTACKS)
def test_code_through_covariance_terms_is_refused(sleepstudy, tmp_path, template):
    target = tmp_path / "ran"
    formula = template.format(p=target)
    with pytest.raises(UnsafeFormulaError):
        lmermagic.lmer(formula, sleepstudy)
    assert not target.exists()
    # R stays usable
    m = lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy)
    assert m.coefs.loc["Days", "estimate"] == pytest.approx(10.467286, rel=1e-6)


# Well-meant terms lme4 would not read as written: refused with what is wrong
# (a FormulaError, not an UnsafeFormulaError), on every lme4, before R fits.
@pytest.mark.parametrize("term, match", [
    ("cs(1 + Days | Subject, hom = T)", "hom takes TRUE or FALSE"),
    ("cs(1 + Days | Subject, hom = 1)", "hom takes TRUE or FALSE"),
    ("cs(1 + Days | Subject, hom = 'TRUE')", "hom takes TRUE or FALSE"),
    ("cs(1 + Days | Subject, hom = NA)", "hom takes TRUE or FALSE"),
    ("ar1(1 + Days | Subject, hom = c(TRUE))", "hom takes TRUE or FALSE"),
    ("diag(1 + Days | Subject, hom = Days)", "hom takes TRUE or FALSE"),
    ("us(1 + Days | Subject, hom = TRUE)", "us\\(\\) takes the random-effects term only"),
    ("cs(1 + Days | Subject, TRUE)", "optionally hom = TRUE"),
    ("cs(1 + Days | Subject, ho = TRUE)", "optionally hom = TRUE"),
    ("cs(1 + Days | Subject, hom = TRUE, hom = FALSE)", "optionally hom = TRUE"),
    ("cs(formula = 1 + Days | Subject)", "comes first and unnamed"),
    ("diag(Days || Subject)", "one bar"),
    ("(cs(1 | Subject))", "must be a term of the formula's sum"),
])
def test_malformed_covariance_terms(sleepstudy, term, match):
    with pytest.raises(FormulaError, match=match) as err:
        lmermagic.lmer(f"Reaction ~ Days + {term}", sleepstudy)
    assert not isinstance(err.value, UnsafeFormulaError)


def test_covariance_term_outside_the_sum(sleepstudy):
    for formula in ("Reaction ~ Days * cs(1 | Subject)", "cs(1 | Subject) ~ Days",
                    "Reaction ~ log(cs(1 | Subject))"):
        with pytest.raises(FormulaError, match="must be a term of the formula's sum") as err:
            lmermagic.lmer(formula, sleepstudy)
        assert not isinstance(err.value, UnsafeFormulaError)


WELL_FORMED = [
    "Reaction ~ Days + us(Days | Subject)",
    "Reaction ~ Days + diag(Days | Subject)",
    "Reaction ~ Days + diag(Days | Subject, hom = TRUE)",
    "Reaction ~ Days + cs(1 + Days | Subject)",
    "Reaction ~ Days + cs(1 + Days | Subject, hom = TRUE)",
    "Reaction ~ Days + ar1(0 + Daysf | Subject)",
    "Reaction ~ Days + ar1(0 + Daysf | Subject, hom = FALSE)",
]


@pytest.fixture(scope="module")
def ss(sleepstudy) -> pd.DataFrame:
    """sleepstudy with the day as an ordered factor (ar1's time points)."""
    out = sleepstudy.copy()
    out["Daysf"] = pd.Categorical(out["Days"], ordered=True)
    return out


@only_1x
@pytest.mark.parametrize("formula", WELL_FORMED)
def test_old_lme4_names_the_version_needed(ss, rref, formula):
    before = ss.copy()
    with pytest.raises(FormulaError, match=r"needs lme4 >= 2\.0 \(this R has lme4 1\.") as err:
        lmermagic.lmer(formula, ss)
    assert not isinstance(err.value, UnsafeFormulaError)
    assert rref('utils::packageDescription("lme4")$Version')[0] in str(err.value)
    pd.testing.assert_frame_equal(ss, before)


# -- doctor: the optional model packages ------------------------------------


def _doctor(env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lmermagic", "doctor"], capture_output=True,
                          text=True, env=env, timeout=300)


def test_doctor_reports_glmmtmb_and_ordinal(rref):
    proc = _doctor()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for pkg in ("glmmTMB", "ordinal"):
        installed = rref(f'nzchar(system.file(package = "{pkg}"))')[0]
        line = next(x for x in proc.stdout.splitlines() if x.startswith(pkg + " "))
        if installed:
            version = rref(f'as.character(utils::packageVersion("{pkg}"))')[0]
            assert line.split() == [pkg, version]
        else:
            assert "not installed" in line


def test_doctor_says_not_installed(rref, tmp_path):
    """R started with a library holding everything but glmmTMB and ordinal
    (links to the real packages): doctor names them as not installed."""
    paths = rref(".libPaths()")
    base = rref(".Library")[0]
    homes = rref('find.package(c("glmmTMB", "ordinal"), quiet = TRUE)')
    if any(os.path.dirname(h) == base for h in homes):
        pytest.skip("glmmTMB/ordinal live in R's own library, which R always searches")
    lib = tmp_path / "lib"
    lib.mkdir()
    for path in paths:
        if path == base or not os.path.isdir(path):
            continue
        for entry in sorted(os.listdir(path)):
            if entry not in ("glmmTMB", "ordinal") and not (lib / entry).exists():
                (lib / entry).symlink_to(Path(path) / entry)
    env = {**os.environ, "R_LIBS_SITE": str(lib), "R_LIBS_USER": str(lib), "R_LIBS": ""}
    proc = _doctor(env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for pkg, needs in (("glmmTMB", "lmermagic.glmmtmb"), ("ordinal", "lmermagic.clmm")):
        line = next(x for x in lines if x.startswith(pkg + " "))
        assert "not installed" in line and needs in line and "apt-get install" in line
    assert "all required packages present" in proc.stdout


# -- exploration (temporary) ---------------------------------------------------
EXPLORE = r'''
out <- character()
add <- function(...) out <<- c(out, paste0(...))
cap <- function(expr) paste(utils::capture.output(expr), collapse = "\n")
add("lme4 ", format(packageVersion("lme4")), " lmerTest ", format(packageVersion("lmerTest")))
ns <- asNamespace("lme4")
add("specials: ", paste(get0("lme4_specials", ns), collapse = ","))
add("as_lmerModLT:\n", paste(deparse(lmerTest:::as_lmerModLT), collapse = "\n"))
add("devfun_vp:\n", paste(deparse(lmerTest:::devfun_vp), collapse = "\n"))
add("get_covbeta:\n", paste(deparse(lmerTest:::get_covbeta), collapse = "\n"))
add("lmerTest::lmer:\n", paste(deparse(lmerTest::lmer), collapse = "\n"))
ss <- lme4::sleepstudy
ss$Daysf <- factor(ss$Days, ordered = TRUE)
forms <- list(
  us = Reaction ~ Days + us(Days | Subject),
  dg = Reaction ~ Days + diag(Days | Subject),
  dgh = Reaction ~ Days + diag(Days | Subject, hom = TRUE),
  cs = Reaction ~ Days + cs(1 + Days | Subject),
  csh = Reaction ~ Days + cs(1 + Days | Subject, hom = TRUE),
  ar1 = Reaction ~ Days + ar1(0 + Daysf | Subject),
  ar1n = Reaction ~ Days + ar1(0 + Daysf | Subject, hom = FALSE))
for (nm in names(forms)) {
  add("==== ", nm, ": ", deparse(forms[[nm]]))
  tryCatch({
    m <- lme4::lmer(forms[[nm]], data = ss)
    add("theta: ", paste(format(m@theta, digits = 8), collapse = " "))
    add("par: ", paste(format(getPar(m), digits = 8), collapse = " "))
    add("reCovs: ", paste(vapply(lme4:::getReCovs(m), function(x) class(x)[1], ""), collapse = ","))
    add("profnames T: ", paste(lme4:::profnames(m, TRUE), collapse = " "))
    add("profnames F: ", paste(lme4:::profnames(m, FALSE), collapse = " "))
    add("VarCorr df:\n", cap(print(as.data.frame(lme4::VarCorr(m)), digits = 10)))
    add("ci wald:\n", cap(print(confint(m, method = "Wald"))))
    t0 <- Sys.time()
    lt <- lmerTest::as_lmerModLmerTest(m)
    add("lmerTest secs ", format(Sys.time() - t0))
    add("lmerTest vcov_varpar dim: ", paste(dim(lt@vcov_varpar), collapse = "x"))
    add("lmerTest df: ", cap(print(summary(lt)$coefficients, digits = 10)))
    add("tidy:\n", tryCatch(cap(print(as.data.frame(broom.mixed::tidy(m)), digits = 10)),
                            error = function(e) conditionMessage(e)))
  }, error = function(e) add("ERROR ", conditionMessage(e)))
}
paste(out, collapse = "\n")
'''


def test_explore(rref, ss) -> None:
    text = "\n".join(rref(EXPLORE))
    for formula in WELL_FORMED:
        text += f"\n#### lmermagic {formula}\n"
        try:
            m = lmermagic.lmer(formula, ss)
            text += f"meta {m.meta}\ncoefs\n{m.coefs.to_string()}\nvarcorr\n{m.varcorr.to_string()}\n"
            text += f"tidy\n{m.tidy().to_string()}\n"
            try:
                text += f"confint\n{m.confint().to_string()}\n"
            except Exception as exc:  # noqa: BLE001
                text += f"confint ERROR {type(exc).__name__}: {exc}\n"
        except Exception as exc:  # noqa: BLE001
            text += f"ERROR {type(exc).__name__}: {exc}\n"
    pytest.fail("\n" + text)
