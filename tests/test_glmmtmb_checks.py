"""m.check() of glmmTMB fits: every number recomputed in R from glmmTMB's own
results on every stack, and compared with performance's check_overdispersion,
check_zeroinflation, check_collinearity, check_singularity and
check_convergence where performance is installed."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic.toolbox.checks import COLUMNS

SAL = 'data("Salamanders", package = "glmmTMB", envir = environment()); d <- Salamanders\n'
F = "count ~ mined + spp + (1 | site)"
# name: (family, ziformula, R family)
CASES = {
    "poisson": ("poisson", None, "poisson", ""),
    "nbinom2": ("nbinom2", None, "glmmTMB::nbinom2", ""),
    "nbinom1": ("nbinom1", None, "glmmTMB::nbinom1", ""),
    "zip": ("poisson", "~ mined", "poisson", ", ziformula = ~ mined"),
    "zinb": ("nbinom2", "~ mined", "glmmTMB::nbinom2", ", ziformula = ~ mined"),
    "hurdle": ("truncated_nbinom2", "~ mined", "glmmTMB::truncated_nbinom2",
               ", ziformula = ~ mined"),
}

NATIVE_R = """
m <- glmmTMB::glmmTMB({f}, d, family = {fam}{zi})
rp <- residuals(m, type = "pearson")
y <- model.response(model.frame(m)); mu <- fitted(m)
nb <- {nb}
p0 <- if (nb) dnbinom(0, size = sigma(m), mu = mu) else dpois(0, mu)
list(chisq = sum(rp^2), rdf = df.residual(m),
     p = pchisq(sum(rp^2), df.residual(m), lower.tail = FALSE),
     zeros = sum(y == 0), predicted = round(sum(p0)), code = m$fit$convergence,
     pd = m$sdr$pdHess, var = min(diag(glmmTMB::VarCorr(m)$cond$site)))
"""

PERFORMANCE_R = """
if (!requireNamespace("performance", quietly = TRUE)) return(list(installed = FALSE))
m <- glmmTMB::glmmTMB({f}, d, family = {fam}{zi})
# Newer performance tests overdispersion of a glmmTMB fit on simulated residuals
# unless asked for Pearson's (residual_type = "normal"), and zero-inflation of a
# zero-inflated or negative binomial model by simulation: lmermagic's rows are the
# Pearson and the analytic test, compared with performance where it computes them.
perf_fn <- function(name) get0(name, envir = asNamespace("performance"), inherits = FALSE)
pearson <- "residual_type" %in% names(formals(perf_fn("check_overdispersion.glmmTMB")))
o <- if (pearson) performance::check_overdispersion(m, residual_type = "normal") else
    performance::check_overdispersion(m)
mi <- insight::model_info(m)
zsim <- any(grepl("simulate_residuals", deparse(body(perf_fn("check_zeroinflation.default"))))) &&
    (isTRUE(mi$is_zero_inflated) || isTRUE(mi$is_negbin))
z <- performance::check_zeroinflation(m)
v <- as.data.frame(performance::check_collinearity(m, component = "conditional"))
list(installed = TRUE, chisq = o$chisq_statistic, ratio = o$dispersion_ratio,
     p = o$p_value, rdf = o$residual_df, predicted = z$predicted.zeros,
     observed = z$observed.zeros, zratio = z$ratio, zsim = zsim,
     vif_terms = v$Term, vif = v$VIF,
     singular = performance::check_singularity(m),
     converged = isTRUE(performance::check_convergence(m)))
"""


@pytest.fixture(scope="module")
def sal() -> pd.DataFrame:
    return lmermagic.datasets.load("Salamanders", package="glmmTMB")


@pytest.fixture(scope="module", params=list(CASES))
def case(request: Any, sal: pd.DataFrame, rref: Any) -> Any:
    family, zi, rfam, rzi = CASES[request.param]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = lmermagic.glmmtmb(F, sal, family=family, ziformula=zi)
        args = {"f": F, "fam": rfam, "zi": rzi,
                "nb": "TRUE" if "nbinom" in family else "FALSE"}
        native = rref(SAL + NATIVE_R.format(**args))
        perf = rref(SAL + PERFORMANCE_R.format(**args))
    return request.param, m, native, perf


def _rows(m: Any) -> pd.DataFrame:
    return m.check().set_index("check", drop=False)


def test_check_schema_and_native_numbers(case: Any) -> None:
    """On every stack: the rows against glmmTMB's own residuals, fitted values,
    optimizer code and Hessian."""
    _, m, ref, _ = case
    out = m.check()
    assert list(out.columns) == COLUMNS
    assert list(out["check"].drop_duplicates()) == [
        "singular", "convergence", "pd_hessian", "collinearity", "overdispersion",
        "zero_inflation"]
    assert out["ok"].dtype == bool
    for c in ("value", "adjusted", "df", "p_value", "observed", "expected"):
        assert out[c].dtype == float
    rows = _rows(m)
    od = rows.loc["overdispersion"]
    np.testing.assert_allclose(od["observed"], ref["chisq"][0], rtol=1e-10)
    np.testing.assert_allclose(od["df"], ref["rdf"][0], rtol=1e-12)
    np.testing.assert_allclose(od["value"], ref["chisq"][0] / ref["rdf"][0], rtol=1e-10)
    np.testing.assert_allclose(od["p_value"], ref["p"][0], rtol=1e-8, atol=1e-300)
    zr = rows.loc["zero_inflation"]
    assert zr["observed"] == ref["zeros"][0] and zr["expected"] == ref["predicted"][0]
    assert zr["value"] == pytest.approx(ref["predicted"][0] / ref["zeros"][0])
    assert rows.loc["convergence", "value"] == ref["code"][0]
    assert rows.loc["pd_hessian", "ok"] == bool(ref["pd"][0])
    assert rows.loc["singular", "ok"] == (ref["var"][0] >= 1e-5)


def test_check_matches_performance(case: Any) -> None:
    _, m, _, perf = case
    if not bool(perf["installed"][0]):
        pytest.skip("R package performance is not installed (the test above is the referee)")
    rows = _rows(m)
    od = rows.loc["overdispersion"]
    np.testing.assert_allclose(od["observed"], perf["chisq"][0], rtol=1e-10)
    np.testing.assert_allclose(od["value"], perf["ratio"][0], rtol=1e-10)
    np.testing.assert_allclose(od["p_value"], perf["p"][0], rtol=1e-8, atol=1e-300)
    zr = rows.loc["zero_inflation"]
    if not bool(perf["zsim"][0]):  # else performance simulated (the test above referees)
        assert zr["expected"] == perf["predicted"][0]
        assert zr["observed"] == perf["observed"][0]
        np.testing.assert_allclose(zr["value"], perf["zratio"][0], rtol=1e-12)
    vif = rows.loc["collinearity"].set_index("term")["value"]
    np.testing.assert_allclose(vif.loc[list(perf["vif_terms"])], perf["vif"], rtol=1e-6)
    assert rows.loc["singular", "ok"] == (not bool(perf["singular"][0]))
    assert rows.loc["pd_hessian", "ok"] == bool(perf["converged"][0])


def test_gaussian_has_no_count_rows() -> None:
    sleep = lmermagic.datasets.load("sleepstudy")
    m = lmermagic.glmmtmb("Reaction ~ Days + (Days | Subject)", sleep)
    out = m.check()
    assert list(out["check"]) == ["singular", "convergence", "pd_hessian", "collinearity"]
    assert out["ok"].all()
    # one fixed term: one collinearity row with NaN, as lmer's
    assert np.isnan(out.iloc[3]["value"])
