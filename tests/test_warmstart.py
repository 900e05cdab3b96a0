"""warm_start= (issue 23): lme4 starts from a cheap theta and reaches its own optimum.

The tolerance. lme4's default optimizer (nloptwrap: BOBYQA with xtol_abs 1e-8,
ftol_abs 1e-8) stops when a step changes the criterion by less than 1e-8; in
theta that leaves up to ~3e-4 relative (dietox: default vs bobyqa, both lme4;
benchmarks/WARMSTART.md). So the warm fit is held to:
- fixed effects within 1e-6 relative of the default start's fit;
- theta within 5e-4 relative (absolute below 0.01) of lme4's optimum computed in
  R with tight tolerances (xtol_abs 1e-14, ftol_abs 1e-15), the bound the
  default start's fit itself meets (its error reaches 3e-4 on dietox); from
  mixedlm's start, also no farther from it than the default start's fit + 1e-5;
- the REML criterion within 1e-6 of the tight optimum's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic import DataError, warmstart
from lmermagic.rbridge import get_r
from lmermagic.request import FitRequest

THETA_RTOL = 5e-4
TIGHT = ("lme4::lmerControl(calc.derivs = FALSE, optCtrl = list(xtol_abs = 1e-14, "
         "ftol_abs = 1e-15, xtol_rel = 0, ftol_rel = 0, maxeval = 1e5))")
METHODS = ["subsample", pytest.param("mixedlm", marks=pytest.mark.skipif(
    warmstart.resolve(True) != "mixedlm", reason="mixedlm is not installed"))]


def near_singular(a: float) -> pd.DataFrame:
    """20 groups of 8, a group effect of size ``a`` against noise of size ~0.7."""
    i = np.arange(160)
    g = i // 8
    return pd.DataFrame({"y": 1 + 0.5 * (i % 8) + a * np.sin(g + 1) + np.sin(1.7 * i * i),
                         "x": (i % 8).astype(float), "g": g.astype(str)})


def near_singular_r(a: float) -> str:
    return (f"i <- 0:159; g <- i %/% 8; d <- data.frame(y = 1 + 0.5 * (i %% 8) + {a} * "
            "sin(g + 1) + sin(1.7 * i * i), x = as.numeric(i %% 8), g = as.character(g))")


CASES = {
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", "d <- lme4::sleepstudy"),
    "dietox": ("Weight ~ Time + (1 + Time | Pig)",
               ("d <- local({e <- new.env(); utils::data(dietox, package = 'geepack', "
                "envir = e); e$dietox})")),
    "Penicillin": ("diameter ~ 1 + (1 | plate) + (1 | sample)", "d <- lme4::Penicillin"),
    "near-singular": ("y ~ x + (1 | g)", near_singular_r(0.15)),
    "singular": ("y ~ x + (1 | g)", near_singular_r(0.05)),
}


def data_for(name: str, sleepstudy: Any, dietox: Any) -> Any:
    return {"sleepstudy": lambda: sleepstudy, "dietox": lambda: dietox,
            "Penicillin": lambda: lmermagic.datasets.load("Penicillin"),
            "near-singular": lambda: near_singular(0.15),
            "singular": lambda: near_singular(0.05)}[name]()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", list(CASES))
def test_warm_fit_reaches_lme4s_optimum(name: str, method: str, rref: Any, sleepstudy: Any,
                                        dietox: Any, empty_fit_cache: Any) -> None:
    formula, make = CASES[name]
    data = data_for(name, sleepstudy, dietox)
    default = lmermagic.lmer(formula, data, ddf="lme4")
    warm = lmermagic.lmer(formula, data, ddf="lme4", warm_start=method)
    assert warm.meta["warm_start"] == method  # no fallback to the default start
    assert warm.meta["cache"] == "miss"  # not the default fit from the cache
    tight = rref(f"{make}; m <- lme4::lmer({formula}, d, control = {TIGHT}); "
                 "list(theta = unname(lme4::getME(m, 'theta')), crit = lme4::REMLcrit(m))")
    best = tight["theta"]
    np.testing.assert_allclose(warm.coefs["estimate"], default.coefs["estimate"], rtol=1e-6,
                               atol=1e-10)
    scale = np.maximum(np.abs(best), 1e-2)  # theta = 0 at a singular fit
    warm_err = np.max(np.abs(warm.theta - best) / scale)
    default_err = np.max(np.abs(default.theta - best) / scale)
    assert default_err <= THETA_RTOL  # the yardstick holds for lme4's own default start
    assert warm_err <= THETA_RTOL
    if method == "mixedlm":  # an accurate start: at least as close as the default start
        assert warm_err <= default_err + 1e-5
    assert warm.reml_criterion == pytest.approx(tight["crit"][0], abs=1e-6)
    assert np.atleast_1d(warm.meta["warm_start_theta"]).shape == warm.theta.shape
    assert warm.meta["optimizer_evals"] > 0
    if name == "singular":
        assert warm.singular and default.singular


@pytest.mark.skipif(warmstart.resolve(True) != "mixedlm",
                    reason="mixedlm is not installed")
@pytest.mark.parametrize("name", ["sleepstudy", "dietox", "Penicillin"])
def test_mixedlm_start_saves_evaluations(name: str, sleepstudy: Any, dietox: Any) -> None:
    formula, _ = CASES[name]
    data = data_for(name, sleepstudy, dietox)
    default = lmermagic.lmer(formula, data, ddf="lme4")
    warm = lmermagic.lmer(formula, data, ddf="lme4", warm_start="mixedlm")
    assert warm.meta["optimizer_evals"] < default.meta["optimizer_evals"]
    assert "warm_start" not in default.meta


@pytest.mark.parametrize("method", METHODS)
def test_satterthwaite_with_warm_start(method: str, sleepstudy: Any) -> None:
    """sleepstudy is balanced: its exact Satterthwaite df are 17. The df move with
    where the optimizer stops (lme4's default start: 16.9997); from mixedlm's
    start they come closer to 17 (17.0000001); from a subsample's within 1e-4."""
    f = "Reaction ~ Days + (Days | Subject)"
    default = lmermagic.lmer(f, sleepstudy)
    warm = lmermagic.lmer(f, sleepstudy, warm_start=method)
    np.testing.assert_allclose(warm.coefs["df"], default.coefs["df"], rtol=1e-4)
    if method == "mixedlm":
        assert np.all(np.abs(warm.coefs["df"] - 17) <= np.abs(default.coefs["df"] - 17))
    assert "start" not in warm.r_code()


@pytest.mark.parametrize("value", ["fast", 1, 0.5, "lme4", ["mixedlm"]])
def test_bad_values(value: Any, sleepstudy: Any) -> None:
    with pytest.raises(DataError, match="warm_start"):
        lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy, warm_start=value)


def test_glmer_refused(cbpp: Any) -> None:
    with pytest.raises(DataError, match=r"lmer .* only"):
        lmermagic.lmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                       family="binomial", warm_start=True)
    with pytest.raises(DataError, match="lmer only"):
        FitRequest.build("y ~ x + (1 | g)", kind="glmer", warm_start="subsample")


def test_false_and_none_mean_default() -> None:
    assert warmstart.resolve(False) is None
    assert warmstart.resolve(None) is None
    assert warmstart.resolve(" Subsample ") == "subsample"
    plain = FitRequest.build("y ~ x + (1 | g)")
    assert "warm_start" not in plain.r_options()  # the cache keys of default fits stand


def test_term_mapping() -> None:
    """lme4 orders terms by levels; the estimate's terms are matched by name."""
    r = get_r()
    cnms = {"s": ["(Intercept)"], "d": ["(Intercept)", "x"]}
    theta = r.run("lmm_warm_map", cnms, ["d", "s"], np.array([2, 1], dtype=np.int32),
                  ["(Intercept)", "x", "(Intercept)"], np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(theta, [4.0, 1.0, 2.0, 3.0])
    reason = r.run("lmm_warm_map", cnms, ["d", "s"], np.array([2, 1], dtype=np.int32),
                   ["(Intercept)", "z", "(Intercept)"], np.array([1.0, 2.0, 3.0, 4.0]))
    assert "no estimate for the term of 'd'" in str(reason)


def test_failed_estimate_falls_back(sleepstudy: Any, monkeypatch: Any,
                                    empty_fit_cache: Any) -> None:
    """No estimate (mixedlm missing or failing) gives lme4's default start, said in meta."""
    monkeypatch.setattr(warmstart, "mixedlm_theta",
                        lambda *a: {"failed": "mixedlm is not installed"})
    f = "Reaction ~ Days + (Days | Subject)"
    default = lmermagic.lmer(f, sleepstudy, ddf="lme4")
    m = lmermagic.lmer(f, sleepstudy, ddf="lme4", warm_start="mixedlm")
    assert m.meta["warm_start"] == "none (mixedlm: mixedlm is not installed)"
    assert "warm_start_theta" not in m.meta
    np.testing.assert_array_equal(m.theta, default.theta)
    assert m.meta["optimizer_evals"] == default.meta["optimizer_evals"]


def test_magic_config_default(shell, sleepstudy):
    shell.user_ns["sleep_ws"] = sleepstudy
    try:
        shell.run_cell("%config LmerMagics.warm_start = 'subsample'", store_history=False)
        res = shell.run_cell("%lmer -d sleep_ws -o m_ws -q  Reaction ~ Days + (Days | Subject)",
                             store_history=False)
        assert res.error_in_exec is None, res.error_in_exec
        assert shell.user_ns["m_ws"].meta["warm_start"] == "subsample"
        shell.run_cell("%config LmerMagics.warm_start = 'nonsense'", store_history=False)
        res = shell.run_cell("%lmer -d sleep_ws -q  Reaction ~ Days + (1 | Subject)",
                             store_history=False)
        assert "warm_start='nonsense'" in str(res.error_in_exec)
    finally:
        shell.run_cell("%config LmerMagics.warm_start = ''", store_history=False)
    res = shell.run_cell("%lmer -d sleep_ws -o m_ws -q  Reaction ~ Days + (Days | Subject)",
                         store_history=False)
    assert "warm_start" not in shell.user_ns["m_ws"].meta
