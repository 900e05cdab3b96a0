"""The design-size pre-flight: R's column count without building the matrix,
against the matrices lme4 builds; the refusal of a factor written as a fixed
effect, at once and in plain words; allow_large."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

import lmermagic
from conftest import id_as_fixed_effect
from lmermagic import convert, preflight
from lmermagic.rbridge import RFrame, _lock, get_r, to_py
from lmermagic.request import FitRequest


def _frame(n: int = 300, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    d = pd.DataFrame({
        "y": rng.normal(size=n), "x": rng.normal(size=n), "z": rng.uniform(0.1, 1, n),
        "a": rng.choice(list("abcd"), n), "b": rng.choice(list("ABC"), n),
        "o": pd.Categorical(rng.choice(["lo", "mid", "hi"], n),
                            categories=["lo", "mid", "hi"], ordered=True),
        "l": rng.choice([True, False], n), "k": rng.integers(1, 8, n),
        "g": rng.integers(0, 20, n).astype(str), "h": rng.integers(0, 6, n).astype(str),
        # a category no row uses (lme4 drops it) and missing values (rows dropped)
        "c": pd.Categorical(rng.choice(["u", "v", "w"], n), categories=["u", "v", "w", "never"]),
    })
    d.loc[::17, "y"] = np.nan
    d.loc[5::23, "a"] = None
    return d


FORMULAS = [
    "y ~ x + (1 | g)", "y ~ a + (1 | g)", "y ~ a * b + (1 | g)", "y ~ a:b + (1 | g)",
    "y ~ 0 + a + (1 | g)", "y ~ 0 + x + a + b + (1 | g)", "y ~ 0 + x:a + b + (1 | g)",
    "y ~ -1 + l + a + (1 | g)", "y ~ a + a:x + (1 | g)", "y ~ a:x + (1 | g)",
    "y ~ poly(x, 3) * a + (1 | g)", "y ~ ns(x, df = 4) + b + (1 | g)",
    "y ~ bs(z, df = 5) + (x | g)", "y ~ I(x^2) + scale(z) + log(z) + (1 | g)",
    "y ~ o + l + c + (1 | g)", "y ~ a/b + (1 | g)", "y ~ (a + b + o)^2 + (1 | g)",
    "y ~ b %in% a + (1 | g)", "y ~ factor(k) * x + (1 | g) + (1 | h)",
    "y ~ interaction(a, b) + (1 | g/h)", "y ~ cut(x, 5) + (x || g)",
    "y ~ a * b * o - a:b:o + (1 | g)", "y ~ 1 + (a | g)", "y ~ x + offset(z) + (1 | g:h)",
    "y ~ (1 | g)", "cbind(k, 10 - k) ~ (1 | g)", "log(z) ~ 0 + (0 + x | g)",
]


@pytest.fixture(scope="module")
def measured():
    """lmm_design's count and lme4's own X and Z for every formula."""
    import rpy2.robjects as ro

    d = _frame()
    r = get_r()
    allowed = r.allowed()
    lformula = ro.r("""function(f, d) {
        x <- lme4::lFormula(f, d, control = lme4::lmerControl(check.rankX = "ignore"))
        c(ncol(x$X), nrow(x$reTrms$Zt), length(x$reTrms$Zt@x), nrow(x$X))
    }""")
    out = {}
    with _lock:
        frame = r.frame(RFrame([convert.encode_column(c, d[c]) for c in d], len(d)))
        for text in FORMULAS:
            f = r.env["lmm_make_formula"](r.to_r(text), r.to_r(list(d.columns)),
                                          allowed.sexp)
            rows = r.env["lmm_preflight"](f, frame, r.to_r("glmer"))  # any response
            out[text] = (to_py(r.env["lmm_design"](f, rows)), to_py(lformula(f, frame)))
    return out


@pytest.mark.parametrize("formula", FORMULAS)
def test_column_count_is_lme4s(measured, formula):
    design, (p, q, z_nonzeros, n) = measured[formula]
    assert int(design["n"][0]) == n
    assert int(design["p"][0]) == p
    assert int(design["q"][0]) == q
    assert z_nonzeros <= design["z_nonzeros"][0]  # an upper bound: structural zeros aside


def test_an_id_as_fixed_effect_is_refused_at_once(sleepstudy):
    lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy)  # R is running
    d = id_as_fixed_effect()
    start = time.time()
    with pytest.raises(lmermagic.DesignTooLargeError) as info:
        lmermagic.lmer("y ~ id + (1 | g)", d)
    # a hang guard, not a speed claim: building the design would take hours
    assert time.time() - start < 60
    msg = str(info.value)
    # lme4's X: the intercept and 19,999 contrasts
    assert msg.startswith("`id` has 20,000 levels as a fixed effect: a 40,000 x 20,000 "
                          "matrix, 6.4 GB; did you mean `(1 | id)`?")
    assert "allow_large=True" in msg and "isolate=True" in msg
    assert isinstance(info.value, ValueError)


def test_allow_large_skips_the_check(sleepstudy):
    lmermagic.clear_cache()  # a fit already made is returned, whatever the size check says
    request = FitRequest.build("Reaction ~ Days + (Days | Subject)", memory_share=1e-9)
    with pytest.raises(lmermagic.DesignTooLargeError, match="of memory"):
        lmermagic.api.fit(request, sleepstudy)
    slow = FitRequest.build("Reaction ~ Days + (Days | Subject)", max_seconds=1e-12)
    with pytest.raises(lmermagic.DesignTooLargeError, match="rank check alone"):
        lmermagic.api.fit(slow, sleepstudy)
    m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy, allow_large=True)
    np.testing.assert_allclose(m.fixef, [251.405104848485, 10.467285959595], rtol=1e-8)


# Without R: the message from a report as R gives it, the available memory.

def _report(**changes):
    report = {"n": [40000], "p": [20000], "x_bytes": [6.4e9], "bytes": [35e9],
              "flops": [3.2e13], "seconds": [6000.0], "rate": [5e9], "q": [50],
              "terms": {"labels": ["id"], "ncols": [19999], "levels": [20000.0],
                        "column_factor": [True]},
              "re": {"labels": ["1 | g"], "ncols": [1.0], "groups": [50.0]}}
    report.update(changes)
    return report


@pytest.mark.parametrize("changes, start", [
    ({}, ("`id` has 20,000 levels as a fixed effect: a 40,000 x 20,000 matrix, 6.4 GB; "
          "did you mean `(1 | id)`?")),
    ({"terms": {"labels": ["poly(x, 900)", "b"], "ncols": [900, 2], "levels": [np.nan, 3.0],
                "column_factor": [False, True]}, "p": [903]},
     "`poly(x, 900)` makes 900 columns of the fixed effects: a 40,000 x 903 matrix"),
    ({"terms": {"labels": ["factor(k)"], "ncols": [9], "levels": [10.0],
                "column_factor": [False]}, "p": [10], "q": [400_000],
      "re": {"labels": ["0 + a | g"], "ncols": [20.0], "groups": [20000.0]}},
     "the random-effect term `(0 + a | g)` makes 400,000 random effects"),
])
def test_the_message_names_the_term(changes, start):
    assert preflight.describe(_report(**changes)).startswith(start)


def test_the_refusal_says_what_is_over_which_limit():
    msg = str(preflight.refusal(_report(), 0.5, 300, 10e9))
    assert "about 35.0 GB of memory (the limit: 50% of the 20.0 GB available)" in msg
    assert "about 1.7 hours for the rank check alone" in msg and "the limit: 300 s" in msg
    only_time = str(preflight.refusal(_report(bytes=[1e9]), 0.5, 300, 10e9))
    assert "of memory" not in only_time and "rank check" in only_time


def test_available_memory():
    assert preflight.available_memory("MemTotal: 100 kB\nMemAvailable:  2048 kB\n") == 2 << 20
    here = preflight.available_memory()
    assert here is not None and here > 0
    assert preflight.limits(True, 0.5, 300) is None
    assert preflight.limits(False, 0.5, 300)["seconds"] == 300
