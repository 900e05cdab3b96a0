"""The allowlist, settled on realistic formulas; every attack refused before R runs it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lmermagic

MARK = Path("/tmp/lmermagic-attack")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    n = 240
    g = rng.integers(0, 12, n)
    df = pd.DataFrame({
        "y": rng.normal(10, 2, n) + rng.normal(0, 1, 12)[g],
        "x": rng.uniform(0.1, 5, n),
        "z": rng.normal(size=n),
        "k": rng.integers(1, 20, n),
        "trials": 20,
        "f": rng.choice(["a", "b", "c"], n),
        "o": pd.Categorical(rng.choice(["lo", "mid", "hi"], n),
                            categories=["lo", "mid", "hi"], ordered=True),
        "g": [f"g{i}" for i in g],
        "h": [f"h{i % 3}" for i in g],
        "system": rng.normal(size=n),  # a column may be named like a function
    })
    return df


def _qualified(formula: str) -> str:
    # splines is not attached in the reference R session
    return re.sub(r"\b(ns|bs)\(", r"splines::\1(", formula)


REALISTIC = [
    "y ~ x + (1 | g)",
    "y ~ x * f + (1 + x | g)",
    "y ~ x + (x || g)",
    "y ~ x + (1 | h/g)",
    "y ~ x + (1 | h) + (1 | h:g)",
    "y ~ poly(x, 2) + (1 | g)",
    "y ~ poly(x, degree = 3, raw = TRUE) + (1 | g)",
    "y ~ ns(x, df = 3) + (1 | g)",
    "y ~ bs(x, degree = 2) + (1 | g)",
    "y ~ scale(x) + scale(z, center = TRUE, scale = FALSE) + (1 | g)",
    "y ~ I(x^2) + I(x > 2) + (1 | g)",
    "log(y) ~ log(x) + sqrt(k) + (1 | g)",
    "y ~ log1p(k) + exp(z / 10) + abs(z) + (1 | g)",
    "y ~ x + offset(log(x)) + (1 | g)",
    "y ~ interaction(f, h) + (1 | g)",
    "y ~ factor(k > 10) + (1 | g)",
    "y ~ relevel(factor(f), ref = 'b') + (1 | g)",
    "y ~ cut(x, breaks = c(0, 1, 3, 5)) + (1 | g)",
    "y ~ o + (1 | g)",
    "y ~ f %in% h + (1 | g)",
    "y ~ x + system + (1 | g)",
    "y ~ pmin(x, 3) + pmax(z, 0) + (1 | g)",
    "y ~ 0 + f + (1 | g)",
    "y ~ x - 1 + (1 | g)",
    "y ~ ifelse(x > 2, 1, 0) + (1 | g)",
]


@pytest.mark.parametrize("formula", REALISTIC)
def test_realistic_formulas_fit(data, formula, rref, tmp_path):
    m = lmermagic.lmer(formula, data, ddf="lme4")
    path = tmp_path / "d.csv"
    data.to_csv(path, index=False)
    ref = rref(f"""d <- utils::read.csv("{path}", stringsAsFactors = TRUE)
        d$o <- factor(d$o, levels = c("lo", "mid", "hi"), ordered = TRUE)
        lme4::fixef(suppressMessages(lme4::lmer({_qualified(formula)}, d)))""")
    np.testing.assert_allclose(m.fixef, ref, rtol=1e-6, atol=1e-9)


def test_binomial_cbind_formula(data):
    m = lmermagic.glmer("cbind(k, trials - k) ~ x + (1 | g)", data)
    assert m.nobs == len(data)


ATTACKS = [
    "y ~ system('touch /tmp/lmermagic-attack') + (1 | g)",
    "y ~ x + (1 | system('touch /tmp/lmermagic-attack'))",
    "{system('touch /tmp/lmermagic-attack'); y} ~ x + (1 | g)",
    "y ~ eval(parse(text = \"system('touch /tmp/lmermagic-attack')\")) + (1 | g)",
    "y ~ base::system('touch /tmp/lmermagic-attack') + (1 | g)",
    "y ~ base:::system('touch /tmp/lmermagic-attack') + (1 | g)",
    "y ~ do.call('system', list('touch /tmp/lmermagic-attack')) + (1 | g)",
    "y ~ get('system')('touch /tmp/lmermagic-attack') + (1 | g)",
    "y ~ (function(v) system('touch /tmp/lmermagic-attack'))(x) + (1 | g)",
    "y ~ x + (1 | g); system('touch /tmp/lmermagic-attack')",
    "y ~ I(assign('a', system('touch /tmp/lmermagic-attack'))) + (1 | g)",
    "y ~ x$foo + (1 | g)",
    "y ~ I(x <- 1) + (1 | g)",
    "y ~ system(x) + (1 | g)",  # a column named system is not a function
    "y ~ Sys.setenv(A = 1) + (1 | g)",
    "y ~ x[1] + (1 | g)",
    "y ~ x@foo + (1 | g)",
]


@pytest.mark.parametrize("formula", ATTACKS)
def test_attacks_are_refused_before_r_runs_them(data, formula):
    MARK.unlink(missing_ok=True)
    with pytest.raises(lmermagic.FormulaError):
        lmermagic.lmer(formula, data)
    assert not MARK.exists()


def test_defence_in_depth_the_formula_environment_has_no_system():
    import rpy2.robjects as ro

    from lmermagic.rbridge import _lock, get_r
    from lmermagic.request import allowlist

    r = get_r()
    with _lock:
        env = r.env["lmm_safe_env"](r.to_r(allowlist()))
        found = ro.r("""function(env) c(
            system = exists("system", envir = env),
            colons = exists("::", envir = env),
            eval = exists("eval", envir = env),
            log = exists("log", envir = env),
            ns = exists("ns", envir = env),
            parent_is_empty = identical(parent.env(env), emptyenv()))""")(env)
        result = dict(zip(found.names, [bool(v) for v in found]))
        del env, found
    assert result == {"system": False, "colons": False, "eval": False, "log": True,
                      "ns": True, "parent_is_empty": True}


def test_allow_functions_extends_the_list_for_that_call_only(data, rref):
    formula = "y ~ atan2(z, x) + (1 | g)"
    with pytest.raises(lmermagic.UnsafeFormulaError, match="atan2"):
        lmermagic.lmer(formula, data)
    m = lmermagic.lmer(formula, data, allow_functions=["atan2"])
    assert list(m.coefs.index) == ["(Intercept)", "atan2(z, x)"]
    ys = ",".join(repr(float(v)) for v in m.fitted + m.residuals)
    zs = ",".join(repr(float(v)) for v in data["z"])
    xs = ",".join(repr(float(v)) for v in data["x"])
    gs = ",".join(repr(str(v)) for v in data["g"])
    ref = rref(f"""d <- data.frame(y = c({ys}), z = c({zs}), x = c({xs}), g = factor(c({gs})))
                  lme4::fixef(lme4::lmer(y ~ atan2(z, x) + (1 | g), d))""")
    np.testing.assert_allclose(m.fixef, ref, rtol=1e-7)
    # a formula that passed once is not waved through later without the allowance
    with pytest.raises(lmermagic.UnsafeFormulaError, match="atan2"):
        lmermagic.lmer(formula, data)


def test_the_formula_check_cache_follows_the_allowlist(data, monkeypatch):
    from lmermagic import request

    formula = "y ~ log(x) + (1 | g)"
    lmermagic.lmer(formula, data)
    trimmed = dict(request.ALLOWED_FUNCTIONS)
    trimmed["base"] = tuple(n for n in trimmed["base"] if n != "log")
    monkeypatch.setattr(request, "ALLOWED_FUNCTIONS", trimmed)
    with pytest.raises(lmermagic.UnsafeFormulaError, match="log"):
        lmermagic.lmer(formula, data)


def test_fits_say_how_long_r_itself_took(data):
    m = lmermagic.lmer("y ~ x + (1 | g)", data)
    assert m.meta["r_fit_seconds"] > 0 and m.meta["r_tables_seconds"] > 0
