"""emtrends, and emmeans' at= and contrasts=, against emmeans run live in R on
the same model and data (issue #19 items 1 and 2)."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic.errors import DataError
from lmermagic.toolbox import COLUMN_NAMES

RTOL = 1e-8


def _load(name: str, package: str) -> str:
    return (f'e <- new.env(); utils::data("{name}", package = "{package}", envir = e); '
            f"d <- e${name}")


DIETOX_FORMULA = "Weight ~ Time * (Evit + Feed) + (1 | Pig)"
DIETOX_R = _load("dietox", "geepack") + f"\nm <- lmerTest::lmer({DIETOX_FORMULA}, d)"
HAM_FORMULA = "Informed.liking ~ Product + Information + (1 | Consumer)"
HAM_R = _load("ham", "lmerTest") + f"\nm <- lmerTest::lmer({HAM_FORMULA}, d)"
CBPP_R = ("m <- lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), "
          "lme4::cbpp, family = binomial)")
# An R summary table as a list of columns (factors as text) for the comparison.
COLS = ("cols <- function(s) lapply(as.data.frame(s), function(v) "
        "if (is.factor(v)) as.character(v) else v)\n")


@pytest.fixture(scope="module")
def dietox_model(dietox):
    return lmermagic.lmer(DIETOX_FORMULA, dietox)


@pytest.fixture(scope="module")
def ham_model():
    return lmermagic.lmer(HAM_FORMULA, lmermagic.datasets.load("ham", package="lmerTest"))


def _same(ours: pd.DataFrame, ref: dict, rtol: float = RTOL,
          renames: dict[str, str] | None = None, loose: tuple[str, ...] = ()) -> float:
    """Every column of R's table equals ours (under lmermagic's name); the
    largest relative difference of the numbers."""
    names = {**COLUMN_NAMES, **(renames or {})}
    names.pop("df", None)  # emmeans' df is df, not anova's Df
    assert len(ours.columns) >= len(ref)
    worst = 0.0
    for rname, col in ref.items():
        name = names.get(rname, rname)
        assert name in ours.columns, (rname, list(ours.columns))
        if isinstance(col, list):
            assert list(ours[name].astype(str)) == col, name
            continue
        a, b = np.asarray(ours[name], dtype=float), np.asarray(col, dtype=float)
        if name in loose:  # Monte Carlo (mvt): GenzBretz's absolute error 1e-3
            np.testing.assert_allclose(a, b, rtol=0, atol=3e-3, err_msg=name)
            continue
        np.testing.assert_allclose(a, b, rtol=rtol, atol=0, err_msg=name)
        fin = np.isfinite(b) & (b != 0)
        if fin.any():
            worst = max(worst, float(np.max(np.abs(a[fin] - b[fin]) / np.abs(b[fin]))))
    return worst


def _quiet(fun, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # emmeans' notes, re-issued as in R
        return fun(*args, **kwargs)


# ---------------------------------------------------------------------------
# emtrends
# ---------------------------------------------------------------------------

def test_emtrends_by_factor_pairwise(dietox_model, rref):
    out = _quiet(dietox_model.emtrends, "Time", specs="Evit", pairwise=True, adjust="holm",
                 level=0.9)
    ref = rref(f"""{DIETOX_R}\n{COLS}
        tr <- emmeans::emtrends(m, ~Evit, var = "Time")
        list(t = cols(summary(tr, level = 0.9)),
             c = cols(summary(emmeans::contrast(tr, "pairwise", adjust = "holm"))))""")
    tr, con = out["emtrends"], out["contrasts"]
    assert list(tr.columns) == ["Evit", "trend", "std_error", "df", "conf_low", "conf_high"]
    assert tr.attrs["var"] == "Time"
    _same(tr, ref["t"], renames={"Time.trend": "trend"})
    _same(con, ref["c"])
    assert set(con["p_adjust"]) == {"holm"} and con.attrs["adjust"] == "holm"


def test_emtrends_overall(dietox_model, rref):
    tr = _quiet(dietox_model.emtrends, "Time")
    ref = rref(f"""{DIETOX_R}\n{COLS}
        cols(summary(emmeans::emtrends(m, ~1, var = "Time")))""")
    assert list(tr.columns) == ["1", "trend", "std_error", "df", "conf_low", "conf_high"]
    _same(tr, ref, renames={"Time.trend": "trend"})


def test_emtrends_simple_slopes_at_sd(dietox_model, rref):
    """Slopes at mean - SD, mean, mean + SD of Feed (R's sd(), model rows)."""
    tr = _quiet(dietox_model.emtrends, "Time", specs="Feed", at={"Feed": "sd"})
    ref = rref(f"""{DIETOX_R}\n{COLS}
        x <- m@frame$Feed; v <- mean(x) + c(-1, 0, 1) * sd(x)
        list(v = v, all = sd(d$Feed, na.rm = TRUE),
             t = cols(summary(emmeans::emtrends(m, ~Feed, var = "Time",
                                                at = list(Feed = v)))))""")
    np.testing.assert_allclose(tr.attrs["at"]["Feed"], ref["v"], rtol=1e-12)
    _same(tr, ref["t"], renames={"Time.trend": "trend"})
    # The same slopes with the values given, moderator in by.
    by = _quiet(dietox_model.emtrends, "Time", specs="Evit", by="Feed",
                at={"Feed": list(ref["v"])})
    ref2 = rref(f"""{DIETOX_R}\n{COLS}
        x <- m@frame$Feed; v <- mean(x) + c(-1, 0, 1) * sd(x)
        cols(summary(emmeans::emtrends(m, ~Evit, var = "Time", by = "Feed",
                                       at = list(Feed = v))))""")
    _same(by, ref2, renames={"Time.trend": "trend"})


# ---------------------------------------------------------------------------
# emmeans: at= and contrasts=
# ---------------------------------------------------------------------------

def test_emmeans_at(dietox_model, rref):
    out = _quiet(dietox_model.emmeans, "Evit", by="Time", at={"Time": [2, 6.5]}, level=0.8)
    ref = rref(f"""{DIETOX_R}\n{COLS}
        cols(summary(emmeans::emmeans(m, "Evit", by = "Time", at = list(Time = c(2, 6.5))),
                     level = 0.8))""")
    _same(out, ref)
    assert out.attrs["at"] == {"Time": [2.0, 6.5]}
    # The model drops the 72 rows without Feed: Time's SD is over the other 789.
    sd = _quiet(dietox_model.emmeans, "Evit", by="Time", at={"Time": "sd", "Feed": 100})
    ref = rref(f"""{DIETOX_R}\n{COLS}
        x <- m@frame$Time; v <- mean(x) + c(-1, 0, 1) * sd(x)
        list(v = v, all = sd(d$Time),
             t = cols(summary(emmeans::emmeans(m, "Evit", by = "Time",
                                               at = list(Time = v, Feed = 100)))))""")
    np.testing.assert_allclose(sd.attrs["at"]["Time"], ref["v"], rtol=1e-12)
    assert abs(ref["v"][2] - ref["v"][1] - ref["all"][0]) > 1e-3
    _same(sd, ref["t"])


@pytest.mark.parametrize("method", ["pairwise", "revpairwise", "trt.vs.ctrl", "consec",
                                    "poly", "eff"])
def test_emmeans_named_contrasts(ham_model, rref, method):
    out = _quiet(ham_model.emmeans, "Product", contrasts=method)
    ref = rref(f"""{HAM_R}\n{COLS}
        s <- summary(emmeans::contrast(emmeans::emmeans(m, "Product"), "{method}"))
        list(c = cols(s), mesg = attr(s, "mesg"))""")
    # consec's default adjustment, mvt, integrates by (random) Monte Carlo.
    _same(out["contrasts"], ref["c"], loose=("p_value",) if method == "consec" else ())
    adjust = out["contrasts"].attrs["adjust"]
    named = [x for x in ref["mesg"] if x.startswith("P value adjustment")]
    assert adjust == (named[0].split()[3] if named else "none")
    assert {"pairwise": "tukey", "trt.vs.ctrl": "dunnettx", "poly": "none"}.get(
        method, adjust) == adjust
    if method == "pairwise":
        pd.testing.assert_frame_equal(
            _quiet(ham_model.emmeans, "Product", pairwise=True)["contrasts"],
            out["contrasts"])


def test_emmeans_trt_vs_ctrl_ref(ham_model, rref):
    out = _quiet(ham_model.emmeans, "Product", contrasts="trt.vs.ctrl", ref="3",
                 adjust="bonferroni")
    two = _quiet(ham_model.emmeans, ["Product", "Information"], contrasts="trt.vs.ctrl",
                 ref="2 1", adjust="none")
    ref = rref(f"""{HAM_R}\n{COLS}
        list(a = cols(summary(emmeans::contrast(emmeans::emmeans(m, "Product"),
                      "trt.vs.ctrl", ref = 3, adjust = "bonferroni"))),
             b = cols(summary(emmeans::contrast(emmeans::emmeans(m, ~Product + Information),
                      "trt.vs.ctrl", ref = 2, adjust = "none"))))""")
    _same(out["contrasts"], ref["a"])
    assert set(out["contrasts"]["p_adjust"]) == {"bonferroni"}
    _same(two["contrasts"], ref["b"])
    assert set(two["contrasts"]["p_adjust"]) == {"none"}


def test_emmeans_custom_contrasts_lmer(ham_model, rref):
    w = {"1 vs 2": [1, -1, 0, 0], "12 vs 34": [0.5, 0.5, -0.5, -0.5]}
    out = _quiet(ham_model.emmeans, "Product", by="Information", contrasts=w,
                 adjust="holm")
    ref = rref(f"""{HAM_R}\n{COLS}
        emm <- emmeans::emmeans(m, "Product", by = "Information")
        cols(summary(emmeans::contrast(emm, list("1 vs 2" = c(1, -1, 0, 0),
             "12 vs 34" = c(.5, .5, -.5, -.5)), adjust = "holm")))""")
    _same(out["contrasts"], ref)
    assert list(out["contrasts"]["contrast"].astype(str)) == ["1 vs 2", "12 vs 34"] * 2


def test_emmeans_custom_contrasts_glmer(cbpp_model, rref):
    w = {"p1 vs p4": [1, 0, 0, -1], "p1 vs rest": [1, -1 / 3, -1 / 3, -1 / 3]}
    resp = cbpp_model.emmeans("period", contrasts=w)
    link = cbpp_model.emmeans("period", contrasts=w, type="link", adjust="sidak")
    ref = rref(f"""{CBPP_R}\n{COLS}
        emm <- emmeans::emmeans(m, "period")
        w <- list("p1 vs p4" = c(1, 0, 0, -1), "p1 vs rest" = c(1, -1/3, -1/3, -1/3))
        list(r = cols(summary(emmeans::contrast(emm, w), type = "response")),
             l = cols(summary(emmeans::contrast(emm, w, adjust = "sidak"))))""")
    ref["r"].pop("null", None)
    _same(resp["contrasts"], ref["r"])
    assert "odds_ratio" in resp["contrasts"] and "null" not in resp["contrasts"]
    assert np.isinf(resp["contrasts"]["df"]).all()
    _same(link["contrasts"], ref["l"])
    assert link["contrasts"].attrs["adjust"] == "sidak"


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------

def test_bad_contrasts(ham_model):
    with pytest.raises(DataError, match=r"has 3 weights, but the grid has 4 rows.*1: 1, 2: 2"):
        ham_model.emmeans("Product", contrasts={"a": [1, -1, 0]})
    with pytest.raises(DataError, match="finite numbers"):
        ham_model.emmeans("Product", contrasts={"a": [1, -1, 0, float("nan")]})
    with pytest.raises(DataError, match="finite numbers"):
        ham_model.emmeans("Product", contrasts={"a": ["1", -1, 0, 0]})
    with pytest.raises(DataError, match="Did you mean 'pairwise'"):
        ham_model.emmeans("Product", contrasts="pairwize")
    with pytest.raises(DataError, match="use one of"):
        ham_model.emmeans("Product", contrasts="dunnett")
    with pytest.raises(DataError, match="two different contrasts"):
        ham_model.emmeans("Product", pairwise=True, contrasts="consec")
    with pytest.raises(DataError, match="is not a row of the grid"):
        ham_model.emmeans("Product", contrasts="trt.vs.ctrl", ref="5")
    with pytest.raises(DataError, match=r"goes with contrasts='trt\.vs\.ctrl'"):
        ham_model.emmeans("Product", contrasts="pairwise", ref="1")
    with pytest.raises(DataError, match="confidence level"):
        ham_model.emmeans("Product", level=95)


def test_bad_at(dietox_model):
    with pytest.raises(DataError, match="Did you mean 'Time'"):
        dietox_model.emmeans("Evit", at={"Tme": [1]})
    with pytest.raises(DataError, match="numeric; give numbers"):
        dietox_model.emmeans("Evit", at={"Time": ["2"]})
    with pytest.raises(DataError, match="numeric; give numbers"):
        dietox_model.emmeans("Evit", at={"Time": [True]})
    with pytest.raises(DataError, match="empty"):
        dietox_model.emmeans("Evit", at={"Time": []})
    for bad in (float("nan"), float("inf")):
        with pytest.raises(DataError, match="finite"):
            dietox_model.emmeans("Evit", at={"Time": [1, bad]})
    with pytest.raises(DataError, match=r"'sd'.*numeric"):
        dietox_model.emmeans("Time", at={"Evit": "sd"})
    with pytest.raises(DataError, match=r"not a level of 'Evit'.*Did you mean 'Evit100'"):
        dietox_model.emmeans("Time", at={"Evit": ["Evit10"]})


def test_bad_emtrends(dietox_model, sleepstudy):
    with pytest.raises(DataError, match="Did you mean 'Time'"):
        dietox_model.emtrends("Tim")
    with pytest.raises(DataError, match="not numeric"):
        dietox_model.emtrends("Evit")
    # Numeric, but only in a random-effect term: emtrends would parse the name.
    m0 = lmermagic.lmer("Reaction ~ 1 + (Days | Subject)", sleepstudy)
    with pytest.raises(DataError, match=r"'Days' is not .* fixed effects \(it has none\)"):
        m0.emtrends("Days")
    with pytest.raises(DataError, match="by needs specs"):
        dietox_model.emtrends("Time", by="Evit")
    with pytest.raises(DataError, match="pairwise needs specs"):  # R: a row "(nothing)"
        dietox_model.emtrends("Time", pairwise=True)


def test_injection_is_refused(dietox_model, tmp_path):
    target = tmp_path / "p"
    payload = f"x); system('touch {target}')"
    attempts = [
        lambda: dietox_model.emmeans(payload),
        lambda: dietox_model.emmeans("Evit", by=payload),
        lambda: dietox_model.emmeans("Evit", contrasts=payload),
        lambda: dietox_model.emmeans("Evit", at={payload: [1]}),
        lambda: dietox_model.emmeans("Evit", contrasts={payload: [1, 0, -1]}),
        lambda: dietox_model.emmeans("Evit", contrasts="trt.vs.ctrl", ref=payload),
        lambda: dietox_model.emmeans("Time", at={"Evit": [payload]}),
        lambda: dietox_model.emtrends(payload),
        lambda: dietox_model.emtrends(f"system('touch {target}')"),
        lambda: dietox_model.emtrends("Time", specs=payload),
    ]
    for attempt in attempts:
        try:
            _quiet(attempt)
        except DataError:
            pass
    assert not os.path.exists(target)
    # A custom contrast's name is data: it comes back as the row's label.
    out = _quiet(dietox_model.emmeans, "Evit", contrasts={payload: [1, 0, -1]})
    assert list(out["contrasts"]["contrast"].astype(str)) == [payload]
    assert not os.path.exists(target)


def test_schema(dietox_model, cbpp_model):
    """The same columns and dtypes on every emmeans release (emmeans names the
    slope <var>.trend, adds a `null` column to some contrast summaries, and uses
    asymp.LCL for glmer)."""
    def kinds(df: pd.DataFrame) -> dict[str, str]:
        return {c: ("category" if isinstance(t, pd.CategoricalDtype) else
                    "float" if pd.api.types.is_float_dtype(t) else "str")
                for c, t in df.dtypes.items()}

    num = dict.fromkeys(("std_error", "df", "conf_low", "conf_high"), "float")
    con = {"contrast": "str", "estimate": "float", "std_error": "float", "df": "float",
           "t_ratio": "float", "p_value": "float", "p_adjust": "str"}
    out = _quiet(dietox_model.emtrends, "Time", specs="Evit", pairwise=True)
    assert kinds(out["emtrends"]) == {"Evit": "category", "trend": "float", **num}
    assert kinds(out["contrasts"]) == con
    assert kinds(_quiet(dietox_model.emtrends, "Time")) == {"1": "category",
                                                              "trend": "float", **num}
    g = cbpp_model.emmeans("period", contrasts={"a": [1, -1, 0, 0]})
    assert kinds(g["emmeans"]) == {"period": "category", "prob": "float", **num}
    assert kinds(g["contrasts"]) == {"contrast": "str", "odds_ratio": "float", "std_error":
                                     "float", "df": "float", "z_ratio": "float",
                                     "p_value": "float", "p_adjust": "str"}
    by = _quiet(dietox_model.emmeans, "Evit", by="Time", at={"Time": [2, 6]},
                contrasts="pairwise")
    assert kinds(by["contrasts"]) == {"contrast": "str", "Time": "float", **con}
    g2 = lmermagic.glmer("cbind(incidence, size - incidence) ~ period + size + (1 | herd)",
                         cbpp_model.data, family="binomial")
    sd = g2.emmeans("period", by="size", at={"size": "sd"}, contrasts="eff")
    assert kinds(sd["contrasts"])["size"] == "float"
    np.testing.assert_array_equal(sd["contrasts"]["size"].unique(), sd.get(
        "emmeans")["size"].unique())
