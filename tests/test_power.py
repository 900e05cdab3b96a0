"""m.power(): every simulation's p-value against R's plain loop (the same
simulated responses, then lmerTest::lmer + summary, anova or glmer + summary
per simulation), the closed form of a paired t test, the same table on every
backend, the failed and singular refits counted, hostile arguments refused."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic.errors import DataError, LmerWarning
from lmermagic.toolbox._power_result import clopper_pearson, power_table

SLEEP = "Reaction ~ Days + (Days | Subject)"

# R's side of every comparison: the model, its parameters with the effect set.
R_MODEL = """
d <- lme4::sleepstudy
fit <- lme4::lmer({formula}, d)
beta <- lme4::fixef(fit); beta[["{term}"]] <- {effect}
params <- list(beta = beta, theta = lme4::getME(fit, "theta"), sigma = sigma(fit))
"""


@pytest.fixture(scope="module")
def sleep_model(sleepstudy):
    return lmermagic.lmer(SLEEP, sleepstudy)


def test_satterthwaite_p_values_equal_lmertest_loop(sleep_model, rref):
    res = sleep_model.power("Days", effect=4, nsim=6, seed=11, progress=False)
    ref = rref(R_MODEL.format(formula=SLEEP, term="Days", effect=4) + """
    sims <- simulate(fit, nsim = 6, seed = 11, newparams = params, use.u = FALSE)
    sapply(sims, function(y) {
        d$Reaction <- y
        m <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), d)
        coef(summary(m))["Days", c("Estimate", "Pr(>|t|)", "df")]
    })""").ravel(order="F")
    sims = res.simulations
    np.testing.assert_allclose(sims["estimate"], ref[0::3], rtol=1e-10)
    np.testing.assert_allclose(sims["p_value"], ref[1::3], rtol=0, atol=1e-8)
    np.testing.assert_allclose(sims["df"], ref[2::3], rtol=1e-6)
    t = res.table.iloc[0]
    assert t["n"] == 180 and t["nsim"] == 6
    assert t["successes"] == int((ref[1::3] < 0.05).sum())
    assert t["power"] == t["successes"] / 6


def test_lrt_p_values_equal_anova_of_ml_fits(sleep_model, rref):
    res = sleep_model.power("Days", effect=2, test="lrt", nsim=5, seed=3, progress=False)
    ref = rref(R_MODEL.format(formula=SLEEP, term="Days", effect=2) + """
    sims <- simulate(fit, nsim = 5, seed = 3, newparams = params, use.u = FALSE)
    sapply(sims, function(y) {
        d$Reaction <- y
        m1 <- lme4::lmer(Reaction ~ Days + (Days | Subject), d, REML = FALSE)
        m0 <- lme4::lmer(Reaction ~ 1 + (Days | Subject), d, REML = FALSE)
        a <- anova(m0, m1)
        c(a[2, "Chisq"], a[2, "Pr(>Chisq)"])
    })""").ravel(order="F")
    np.testing.assert_allclose(res.simulations["statistic"], ref[0::2], rtol=1e-8)
    np.testing.assert_allclose(res.simulations["p_value"], ref[1::2], rtol=0, atol=1e-8)
    assert (res.simulations["df"] == 1).all()


def test_kenward_roger_p_values_equal_lmertest(sleepstudy, rref):
    m = lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy)
    res = m.power("Days", effect=3, test="kenward-roger", nsim=2, seed=5, progress=False)
    ref = rref(R_MODEL.format(formula="Reaction ~ Days + (1 | Subject)", term="Days",
                              effect=3) + """
    sims <- simulate(fit, nsim = 2, seed = 5, newparams = params, use.u = FALSE)
    sapply(sims, function(y) {
        d$Reaction <- y
        m <- lmerTest::lmer(Reaction ~ Days + (1 | Subject), d)
        coef(summary(m, ddf = "Kenward-Roger"))["Days", c("Pr(>|t|)", "df")]
    })""").ravel(order="F")
    np.testing.assert_allclose(res.simulations["p_value"], ref[0::2], rtol=0, atol=1e-8)
    np.testing.assert_allclose(res.simulations["df"], ref[1::2], rtol=1e-8)


# The design of size n along Subject, built independently of power.R.
R_EXTEND = """
extend <- function(d, g, n) {
    lev <- levels(d[[g]]); L <- length(lev); parts <- list()
    for (j in seq_len(n)) {
        src <- lev[(j - 1) %% L + 1]; copy <- (j - 1) %/% L + 1
        part <- d[d[[g]] == src, ]
        part[[g]] <- if (copy == 1) src else paste0(src, "#", copy)
        parts[[j]] <- part
    }
    nd <- do.call(rbind, parts)
    nd[[g]] <- factor(nd[[g]], levels = unique(nd[[g]]))
    rownames(nd) <- NULL
    nd
}
"""


def test_extension_along_subject_equals_r_construction(sleep_model, rref):
    res = sleep_model.power("Days", effect=3, along="Subject", n=[5, 25], nsim=3, seed=7,
                            progress=False)
    ref = rref(R_MODEL.format(formula=SLEEP, term="Days", effect=3) + R_EXTEND + """
    set.seed(7)
    unlist(lapply(c(5, 25), function(n) {
        nd <- extend(d, "Subject", n)
        sims <- simulate(fit, nsim = 3, newdata = nd, newparams = params, use.u = FALSE,
                         allow.new.levels = TRUE)
        sapply(sims, function(y) {
            nd$Reaction <- y
            m <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), nd)
            coef(summary(m))["Days", "Pr(>|t|)"]
        })
    }))""").ravel(order="F")
    np.testing.assert_allclose(res.simulations["p_value"], ref, rtol=0, atol=1e-8)
    assert list(res.table["n"]) == [5, 25]
    assert list(res.simulations["n"]) == [5] * 3 + [25] * 3


def test_glmer_z_and_extension_equal_glmer_loop(cbpp_model, rref):
    res = cbpp_model.power("period2", effect=-1, along="herd", n=[20], nsim=3, seed=2,
                           progress=False)
    assert res.meta["test"] == "z"
    ref = rref(R_EXTEND + """
    d <- lme4::cbpp
    fit <- lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), d, binomial)
    beta <- lme4::fixef(fit); beta[["period2"]] <- -1
    params <- list(beta = beta, theta = lme4::getME(fit, "theta"))
    nd <- extend(d, "herd", 20)
    set.seed(2)
    sims <- simulate(fit, nsim = 3, newdata = nd, newparams = params, use.u = FALSE,
                     allow.new.levels = TRUE, weights = nd$size)
    sapply(sims, function(y) {
        nd$incidence <- y[, 1]
        g <- lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), nd, binomial)
        coef(summary(g))["period2", "Pr(>|z|)"]
    })""").ravel(order="F")
    np.testing.assert_allclose(res.simulations["p_value"], ref, rtol=0, atol=1e-8)


def test_glmer_z_on_the_models_own_design(cbpp_model, rref):
    res = cbpp_model.power("period2", effect=-0.5, nsim=3, seed=4, progress=False)
    ref = rref("""
    d <- lme4::cbpp
    fit <- lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), d, binomial)
    beta <- lme4::fixef(fit); beta[["period2"]] <- -0.5
    sims <- simulate(fit, nsim = 3, seed = 4, use.u = FALSE,
                     newparams = list(beta = beta, theta = lme4::getME(fit, "theta")))
    sapply(sims, function(y) {
        d$incidence <- y[, 1]
        g <- lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), d, binomial)
        coef(summary(g))["period2", "Pr(>|z|)"]
    })""").ravel(order="F")
    np.testing.assert_allclose(res.simulations["p_value"], ref, rtol=0, atol=1e-8)


def test_power_of_a_paired_t_test_matches_its_closed_form(rref):
    rng = np.random.default_rng(2024)
    n = 20
    subj = np.repeat(np.arange(n), 2)
    cond = np.tile(["A", "B"], n)
    y = rng.normal(0, 3, n)[subj] + 0.5 * (cond == "B") + rng.normal(0, 1, 2 * n)
    df = pd.DataFrame({"y": y, "cond": cond, "subj": pd.Categorical(subj.astype(str))})
    m = lmermagic.lmer("y ~ cond + (1 | subj)", df)
    effect, nsim = 0.55, 300
    res = m.power("condB", effect=effect, nsim=nsim, seed=99, progress=False)
    # the paired differences have sd sqrt(2) sigma: a one-sample t test, df n - 1
    exact = float(rref(f"""
        q <- qt(0.975, {n - 1}); ncp <- {effect} / (sqrt(2) * {m.sigma!r} / sqrt({n}))
        1 - pt(q, {n - 1}, ncp = ncp) + pt(-q, {n - 1}, ncp = ncp)""")[0])
    t = res.table.iloc[0]
    se = np.sqrt(exact * (1 - exact) / nsim)
    assert 0.2 < exact < 0.8
    assert abs(t["power"] - exact) < 4 * se, (t["power"], exact)
    assert t["conf_low"] < exact < t["conf_high"] or abs(t["power"] - exact) < 4 * se


def test_same_table_serial_processes_and_dask(sleep_model):
    pytest.importorskip("distributed")
    kw = {"effect": 3, "along": "Subject", "n": [5, 20], "nsim": 6, "seed": 21,
          "progress": False}
    serial = sleep_model.power("Days", **kw)
    again = sleep_model.power("Days", **kw)
    procs = sleep_model.power("Days", workers=2, **kw)
    dask = sleep_model.power("Days", backend="dask", workers=2, **kw)
    for other in (again, procs, dask):
        pd.testing.assert_frame_equal(other.table, serial.table, check_exact=True)
        pd.testing.assert_frame_equal(other.simulations, serial.simulations, check_exact=True)
    assert procs.meta["backend"] == "processes" and dask.meta["backend"] == "dask"
    other_seed = sleep_model.power("Days", **{**kw, "seed": 22})
    assert not np.array_equal(other_seed.simulations["p_value"], serial.simulations["p_value"])


def test_singular_refits_are_counted(rref):
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(8), 4)
    x = np.tile(np.arange(4.0), 8)
    df = pd.DataFrame({"y": x * 0.3 + rng.normal(0, 1, 32), "x": x,
                       "g": pd.Categorical(g.astype(str))})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = lmermagic.lmer("y ~ x + (1 | g)", df)
    res = m.power("x", effect=0.3, nsim=10, seed=1, progress=False)
    sims = res.simulations
    t = res.table.iloc[0]
    assert t["n_singular"] == int(sims["singular"].sum()) > 0
    assert t["n_failed"] == int(sims["failed"].sum())
    assert len(sims) == 10  # nothing dropped


def test_failed_refits_leave_the_denominator_and_are_reported():
    sims = pd.DataFrame({"n": [10] * 5, "sim": range(1, 6),
                         "p_value": [0.01, 0.2, np.nan, 0.03, np.nan],
                         "singular": pd.array([True, False, None, False, None], dtype="boolean"),
                         "converged": pd.array([True, False, None, True, None],
                                               dtype="boolean"),
                         "failed": [False, False, True, False, True]})
    t = power_table(sims, [10], 5, 0.05).iloc[0]
    assert (t["successes"], t["n_failed"], t["n_singular"], t["n_not_converged"]) == (2, 2, 1, 1)
    assert t["power"] == 2 / 3


@pytest.mark.parametrize("x,n", [(0, 10), (10, 10), (3, 20), (150, 300), (999, 1000)])
def test_clopper_pearson_equals_binom_test(rref, x, n):
    lo, hi = clopper_pearson(x, n)
    ref = rref(f"binom.test({x}, {n})$conf.int")
    np.testing.assert_allclose([lo, hi], ref, rtol=1e-9, atol=1e-12)


def test_observed_effect_warns_post_hoc(sleep_model):
    with pytest.warns(LmerWarning, match="post hoc"):
        sleep_model.power("Days", nsim=1, seed=1, progress=False)


@pytest.mark.parametrize("kwargs,match", [
    ({"term": "Days); system('touch /tmp/pwned'); ("}, "not a fixed effect"),
    ({"term": "Dayz"}, "Did you mean 'Days'"),
    ({"nsim": 0}, "nsim"),
    ({"nsim": -3}, "nsim"),
    ({"nsim": 2.5}, "nsim"),
    ({"alpha": 0}, "alpha"),
    ({"alpha": 1.5}, "alpha"),
    ({"alpha": float("nan")}, "alpha"),
    ({"effect": float("nan")}, "effect"),
    ({"effect": float("inf")}, "effect"),
    ({"effect": "big"}, "effect"),
    ({"along": "Days", "n": [5]}, "not a grouping factor"),
    ({"along": "Subject; q()", "n": [5]}, "not a grouping factor"),
    ({"along": "Subject", "n": [5.5]}, "whole number"),
    ({"along": "Subject", "n": [1]}, "whole number"),
    ({"along": "Subject", "n": []}, "empty"),
    ({"along": "Subject", "n": [True]}, "whole number"),
    ({"n": [5]}, "along="),
    ({"test": "z"}, "glmer"),
    ({"test": "system('x')"}, "test="),
    ({"seed": 1.5}, "seed"),
    ({"workers": 0}, "workers"),
])
def test_hostile_arguments_are_refused(sleep_model, kwargs, match):
    args = {"term": "Days", "effect": 1.0, "nsim": 2, "progress": False, **kwargs}
    term = args.pop("term")
    with pytest.raises(DataError, match=match):
        sleep_model.power(term, **args)
    # R still works afterwards
    assert sleep_model.power("Days", effect=1.0, nsim=1, seed=1,
                             progress=False).table["nsim"].iloc[0] == 1


def test_satterthwaite_on_glmer_is_refused(cbpp_model):
    with pytest.raises(DataError, match="t test of a linear mixed model"):
        cbpp_model.power("period2", effect=-1, test="satterthwaite", nsim=2)


def test_repr_says_the_smallest_n_and_plot_draws(sleep_model):
    pytest.importorskip("matplotlib")
    res = sleep_model.power("Days", effect=8, along="Subject", n=[3, 12], nsim=5, seed=1,
                            progress=False)
    text = repr(res)
    if res.smallest_n is None:
        assert "no tried number of Subject levels reaches 80 % power" in text
    else:
        assert f"is n = {res.smallest_n}" in text
    assert "<table" in res._repr_html_()
    fig = res.plot()
    ax = fig.axes[0]
    drawn = [np.asarray(line.get_ydata(), dtype=float) for line in ax.lines]
    assert any(len(v) == len(res.table) and np.allclose(v, res.table["power"]) for v in drawn)
    assert ax.get_ylabel() == "power (95 % CI)"
