"""predict(interval=...) against the same bounds built in R from lme4's own pieces
(vcov, model.matrix, VarCorr, sigma, predict), computed live."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic.errors import DataError

TOL = 1e-8

# The references: R's fit of the same data, and the interval written out by
# hand from lme4's accessors. se2: the fixed-effects variance diag(X V X').
SLEEP_R = """
m <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
vc <- lme4::VarCorr(m)$Subject
se2 <- function(X) rowSums((X %*% as.matrix(vcov(m))) * X)
re2 <- function(d) vc[1, 1] + 2 * d * vc[1, 2] + d^2 * vc[2, 2]
z <- qnorm((1 + LEVEL) / 2)
bounds <- function(p, v) list(p = unname(p), lo = unname(p - z * sqrt(v)),
                              hi = unname(p + z * sqrt(v)))
"""
PENICILLIN_R = """
m <- lmerTest::lmer(diameter ~ 1 + (1 | plate) + (1 | sample), lme4::Penicillin)
vc <- lme4::VarCorr(m)
X <- model.matrix(m)
v <- rowSums((X %*% as.matrix(vcov(m))) * X) + sigma(m)^2
z <- qnorm(0.975)
bounds <- function(p, v) list(p = unname(p), lo = unname(p - z * sqrt(v)),
                              hi = unname(p + z * sqrt(v)))
list(part = bounds(predict(m, re.form = ~ (1 | plate)), v + vc$sample[1, 1]),
     pop = bounds(predict(m, re.form = NA), v + vc$sample[1, 1] + vc$plate[1, 1]))
"""


def _check(got: pd.DataFrame, ref: dict, kind: str) -> None:
    low, high = ("conf_low", "conf_high") if kind == "confidence" else ("pred_low", "pred_high")
    assert list(got.columns) == ["predicted", low, high]
    for col, key in (("predicted", "p"), (low, "lo"), (high, "hi")):
        np.testing.assert_allclose(got[col].to_numpy(dtype=float), np.asarray(ref[key]),
                                   rtol=TOL, atol=0)


@pytest.fixture(scope="module")
def sleep(sleepstudy):
    return lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)


def test_sleepstudy_model_rows(sleep, sleepstudy, rref):
    ref = rref(SLEEP_R.replace("LEVEL", "0.9") + """
        X <- model.matrix(m); d <- lme4::sleepstudy$Days
        list(conf_pop = bounds(predict(m, re.form = NA), se2(X)),
             conf_cond = bounds(predict(m), se2(X)),
             pred_pop = bounds(predict(m, re.form = NA), se2(X) + sigma(m)^2 + re2(d)),
             pred_full = bounds(predict(m), se2(X) + sigma(m)^2),
             pred_int = bounds(predict(m, re.form = ~ (1 | Subject)),
                               se2(X) + sigma(m)^2 + d^2 * vc[2, 2]))""")
    got = sleep.predict(re_form="~0", interval="confidence", level=0.9)
    assert got.index.equals(sleepstudy.index)
    assert got.attrs == {"interval": "confidence", "level": 0.9}
    _check(got, ref["conf_pop"], "confidence")
    # conditional: the fixed effects' uncertainty around the conditional prediction
    _check(sleep.predict(interval="confidence", level=0.9), ref["conf_cond"], "confidence")
    _check(sleep.predict(re_form="NA", interval="prediction", level=0.9), ref["pred_pop"],
           "prediction")
    _check(sleep.predict(interval="prediction", level=0.9), ref["pred_full"], "prediction")
    # a partial re_form inside one term: the slope column is left out
    _check(sleep.predict(re_form="~(1 | Subject)", interval="prediction", level=0.9),
           ref["pred_int"], "prediction")
    # the point predictions are today's Series
    pd.testing.assert_series_equal(sleep.predict(interval="prediction")["predicted"],
                                   sleep.predict())


def test_sleepstudy_newdata_new_level_and_missing(sleep, rref):
    new = pd.DataFrame({"Days": [0.0, 3.0, np.nan, 2.5], "Subject": ["308", "372", "330", "999"]},
                       index=["a", "b", "c", "d"])
    ref = rref(SLEEP_R.replace("LEVEL", "0.95") + """
        nd <- data.frame(Days = c(0, 3, 2.5), Subject = c("308", "372", "999"))
        X <- cbind(1, nd$Days)
        p <- predict(m, nd, allow.new.levels = TRUE)
        # the new subject 999 has no random effect: its variance is added
        list(pred = bounds(p, se2(X) + sigma(m)^2 + c(0, 0, re2(2.5))),
             conf = bounds(p, se2(X)),
             pop = bounds(predict(m, nd, re.form = NA), se2(X) + sigma(m)^2 + re2(nd$Days)))""")
    got = sleep.predict(new, allow_new_levels=True, interval="prediction")
    assert list(got.index) == ["a", "b", "c", "d"]
    assert got.loc["c"].isna().all()
    _check(got.drop(index="c"), ref["pred"], "prediction")
    conf = sleep.predict(new, allow_new_levels=True, interval="confidence")
    _check(conf.drop(index="c"), ref["conf"], "confidence")
    pop = sleep.predict(new, re_form="~0", interval="prediction")
    _check(pop.drop(index="c"), ref["pop"], "prediction")


def test_two_terms_partial_re_form(rref):
    pen = lmermagic.datasets.load("Penicillin")
    m = lmermagic.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", pen)
    ref = rref(PENICILLIN_R)
    _check(m.predict(re_form="~(1 | plate)", interval="prediction"), ref["part"], "prediction")
    _check(m.predict(re_form="~0", interval="prediction"), ref["pop"], "prediction")


def test_newdata_with_factors_and_contrasts(dietox, rref):
    m = lmermagic.lmer("Weight ~ Time * Evit + (1 + Time | Pig)", dietox,
                       contrasts={"Evit": "contr.sum"})
    new = pd.DataFrame({"Time": [1, 6, 12], "Evit": ["Evit200", "Evit000", "Evit100"],
                        "Pig": ["4601", "4601", "8442"]}, index=[10, 20, 30])
    ref = rref("""
        e <- new.env(); utils::data("dietox", package = "geepack", envir = e); d <- e$dietox
        m <- lmerTest::lmer(Weight ~ Time * Evit + (1 + Time | Pig), d,
                            contrasts = list(Evit = "contr.sum"))
        nd <- data.frame(Time = c(1, 6, 12), Pig = c("4601", "4601", "8442"),
                         Evit = factor(c("Evit200", "Evit000", "Evit100"), levels(d$Evit)))
        X <- model.matrix(~ Time * Evit, nd, contrasts.arg = list(Evit = "contr.sum"))
        s2 <- rowSums((X %*% as.matrix(vcov(m))) * X)
        vc <- lme4::VarCorr(m)$Pig
        z <- qnorm(0.975)
        b <- function(p, v) list(p = unname(p), lo = unname(p - z * sqrt(v)),
                                 hi = unname(p + z * sqrt(v)))
        list(conf = b(predict(m, nd), s2),
             pop = b(predict(m, nd, re.form = NA), s2 + sigma(m)^2 + vc[1, 1]
                     + 2 * nd$Time * vc[1, 2] + nd$Time^2 * vc[2, 2]))""")
    conf = m.predict(new, interval="confidence")
    assert list(conf.index) == [10, 20, 30]
    _check(conf, ref["conf"], "confidence")
    _check(m.predict(new, re_form="~0", interval="prediction"), ref["pop"], "prediction")


def test_model_rows_r_dropped(dietox, rref):
    m = lmermagic.lmer("Weight ~ Feed + (1 | Pig)", dietox)
    ref = rref("""
        e <- new.env(); utils::data("dietox", package = "geepack", envir = e); d <- e$dietox
        m <- lmerTest::lmer(Weight ~ Feed + (1 | Pig), d)
        X <- model.matrix(m)
        v <- rowSums((X %*% as.matrix(vcov(m))) * X) + sigma(m)^2 + lme4::VarCorr(m)$Pig[1, 1]
        p <- predict(m, re.form = NA); z <- qnorm(0.975)
        list(p = unname(p), lo = unname(p - z * sqrt(v)), hi = unname(p + z * sqrt(v)),
             rows = as.integer(names(p)))""")
    got = m.predict(re_form="~0", interval="prediction")
    assert got.index.equals(dietox.index)
    rows = np.asarray(ref.pop("rows")).astype(int) - 1
    assert got.drop(index=got.index[rows]).isna().all().all()
    assert got["predicted"].notna().sum() == len(rows)
    _check(got.iloc[rows], ref, "prediction")


def test_glmer_bounds_link_and_response(cbpp_model, rref):
    ref = rref("""
        g <- lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                         lme4::cbpp, family = binomial)
        X <- model.matrix(g); se <- sqrt(rowSums((X %*% as.matrix(vcov(g))) * X))
        z <- qnorm(0.975)
        nd <- data.frame(period = factor(c("4", "1"), levels = 1:4), herd = c("3", "15"))
        Xn <- model.matrix(~ period, nd)
        sen <- sqrt(rowSums((Xn %*% as.matrix(vcov(g))) * Xn))
        b <- function(eta, se, f) list(p = unname(f(eta)), lo = unname(f(eta - z * se)),
                                       hi = unname(f(eta + z * se)))
        list(link = b(predict(g, type = "link"), se, identity),
             resp = b(predict(g, type = "link"), se, plogis),
             pop = b(predict(g, re.form = NA, type = "link"), se, plogis),
             new = b(predict(g, nd, type = "link"), sen, plogis))""")
    m = cbpp_model
    _check(m.predict(type="link", interval="confidence"), ref["link"], "confidence")
    # response scale: the link-scale bounds through the inverse link
    _check(m.predict(interval="confidence"), ref["resp"], "confidence")
    _check(m.predict(re_form="~0", interval="confidence"), ref["pop"], "confidence")
    new = pd.DataFrame({"period": ["4", "1"], "herd": ["3", "15"]})
    _check(m.predict(new, interval="confidence"), ref["new"], "confidence")
    with pytest.raises(DataError, match="simulate"):
        m.predict(interval="prediction")


@pytest.mark.parametrize("kwargs", [
    {"interval": "foo"}, {"interval": "Confidence"}, {"interval": 1},
    {"interval": "confidence", "level": 1.5}, {"interval": "confidence", "level": 0},
    {"interval": "prediction", "level": 1}, {"interval": "confidence", "level": math.nan},
    {"interval": "confidence", "level": "high"}, {"interval": "confidence", "level": True},
    {"interval": "confidence", "level": None},
])
def test_bad_inputs(sleep, kwargs):
    with pytest.raises(DataError, match=r"interval=|level"):
        sleep.predict(**kwargs)


def test_no_interval_is_a_series(sleep):
    out = sleep.predict(level=0.5)  # level alone changes nothing
    assert isinstance(out, pd.Series) and out.name == "predicted"


def test_decreasing_inverse_link_keeps_low_below_high(tmp_path, rref):
    rng = np.random.default_rng(19)
    g = np.repeat(np.arange(15), 12)
    x = rng.uniform(0, 2, g.size)
    mu = 1 / (0.5 + 0.3 * x + rng.normal(0, 0.05, 15)[g])
    df = pd.DataFrame({"y": rng.gamma(5.0, mu / 5.0), "x": x, "g": [f"g{i}" for i in g]})
    path = tmp_path / "gamma.csv"
    df.to_csv(path, index=False)
    m = lmermagic.glmer("y ~ x + (1 | g)", df, family="Gamma")
    ref = rref(f"""
        d <- utils::read.csv("{path}", stringsAsFactors = TRUE)
        g <- lme4::glmer(y ~ x + (1 | g), d, family = Gamma)
        X <- model.matrix(g); se <- sqrt(rowSums((X %*% as.matrix(vcov(g))) * X))
        eta <- predict(g, re.form = NA, type = "link"); z <- qnorm(0.975)
        # 1 / eta decreases: the upper link bound gives the lower response bound
        list(p = unname(1 / eta), lo = unname(1 / (eta + z * se)),
             hi = unname(1 / (eta - z * se)))""")
    got = m.predict(re_form="~0", interval="confidence")
    assert (got["conf_low"] < got["conf_high"]).all()
    _check(got, ref, "confidence")


@pytest.mark.parametrize("interval", [None, "confidence", "prediction"])
def test_empty_newdata_gives_empty_result(sleep, interval):
    # lme4's predict() fails on a frame without rows ("Invalid grouping factor
    # specification"); no rows in, no rows out.
    new = pd.DataFrame({"Days": np.array([], dtype=float), "Subject": np.array([], dtype=object)},
                       index=pd.Index([], name="row"))
    out = sleep.predict(new, interval=interval)
    assert len(out) == 0 and out.index.name == "row"
    if interval is not None:
        assert out.columns[0] == "predicted"
