"""m.check(): every number against R computed live. A base-R recomputation runs
on every stack; performance's and DHARMa's own functions run where those
packages are installed (performance: Debian 12 and unstable; DHARMa: 13 and
unstable) and are skipped, by name, elsewhere."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic.errors import DataError
from lmermagic.toolbox import checks
from lmermagic.toolbox._pvalues import binom_two_sided, chisq_upper, ks_uniform
from lmermagic.toolbox._rrng import RStream


def rcall(rref, code: str, *args):
    """Call the R function ``code`` with our fits' R objects as arguments."""
    from lmermagic.rbridge import _lock

    with _lock:
        return rref.py(rref.ro.r(code)(*args))


def has(rref, pkg: str) -> bool:
    return bool(rref(f"as.numeric(requireNamespace(\"{pkg}\", quietly = TRUE))")[0])


@pytest.fixture(scope="module")
def models():
    sleep = lmermagic.datasets.load("sleepstudy")
    cbpp = lmermagic.datasets.load("cbpp")
    gt = lmermagic.datasets.load("grouseticks")
    gt["cHEIGHT"] = (gt["HEIGHT"] - gt["HEIGHT"].mean()) / gt["HEIGHT"].std()
    rng = np.random.default_rng(18)
    n = 600
    g = rng.integers(0, 30, n)
    x = rng.normal(size=n)
    mu = np.exp(0.4 + 0.5 * x + rng.normal(0, 0.5, 30)[g])
    zero_heavy = pd.DataFrame({"y": rng.poisson(mu) * (rng.uniform(size=n) > 0.35),
                               "x": x, "g": g.astype(str)})
    over = pd.DataFrame({"y": rng.poisson(mu * rng.gamma(1.5, 1 / 1.5, n)), "x": x,
                         "g": g.astype(str)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "sleep2": lmermagic.lmer("Reaction ~ Days + I(Days^2) + (Days | Subject)", sleep),
            "cbpp": lmermagic.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                                    cbpp, family="binomial"),
            "grouse": lmermagic.glmer("TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)",
                                      gt, family="poisson"),
            "over": lmermagic.glmer("y ~ x + (1 | g)", over, family="poisson"),
            "zeros": lmermagic.glmer("y ~ x + (1 | g)", zero_heavy, family="poisson"),
            "unconverged": lmermagic.glmer("TICKS ~ YEAR + HEIGHT + (1 | BROOD)", gt,
                                           family="poisson"),
        }


@pytest.fixture(scope="module")
def tables(models):
    return {k: m.check().set_index(["check", "term"]) for k, m in models.items()}


# -- R's random stream and p-values, continued and computed natively --------

def test_rstream_continues_r(rref):
    r = rref("""set.seed(7); x <- rnorm(11); st <- .Random.seed
        list(st = st, u = runif(5), v = runif(4, c(0, .2, .3, .5), c(1, .2, .6, .5)),
             s = sample(1:249, 300, replace = TRUE), big = sample.int(70000, 20, TRUE),
             w = runif(2))""")
    s = RStream(r["st"])
    assert np.array_equal(s.unif(5), r["u"])
    assert np.array_equal(s.runif(np.array([0, .2, .3, .5]), np.array([1, .2, .6, .5])), r["v"])
    assert np.array_equal(s.index(249, 300) + 1, r["s"])
    assert np.array_equal(s.index(70000, 20) + 1, r["big"])
    assert np.array_equal(s.unif(2), r["w"])


@pytest.mark.parametrize("n", [8, 60, 99, 100, 250, 800])
def test_ks_matches_r(rref, n):
    x = np.random.default_rng(n).uniform(size=n) ** 1.15
    d, p, exact = ks_uniform(x)
    values = ",".join(repr(float(v)) for v in x)
    r = rref(f"t <- ks.test(c({values}), 'punif'); c(t$statistic, t$p.value)")
    assert exact == (n < 100)
    assert d == pytest.approx(r[0], abs=1e-15)
    assert p == pytest.approx(r[1], rel=1e-10, abs=1e-13)


@pytest.mark.parametrize(("x", "n", "p"), [(0, 56, 2 / 251), (3, 56, 2 / 251),
                                           (12, 403, 2 / 251), (30, 1000, .01)])
def test_binom_matches_r(rref, x, n, p):
    assert binom_two_sided(x, n, p) == pytest.approx(
        rref(f"binom.test({x}, {n}, {p!r})$p.value")[0], rel=1e-9, abs=1e-13)


@pytest.mark.parametrize(("q", "df"), [(3, 5), (120, 50), (691.1, 397), (0.2, 3)])
def test_chisq_matches_r(rref, q, df):
    assert chisq_upper(q, df) == pytest.approx(
        rref(f"pchisq({q!r}, {df!r}, lower.tail = FALSE)")[0], rel=1e-11)


# -- the checks of the fit itself -------------------------------------------

FIT_REF = """function(fit) {
    d <- fit@optinfo$derivs
    sc <- solve(chol(d$Hessian), d$gradient)
    X <- lme4::getME(fit, "X")
    V <- as.matrix(vcov(fit))[-1, -1, drop = FALSE]
    R <- cov2cor(V); a <- attr(X, "assign")[-1]
    vif <- if (length(unique(a)) < 2) numeric() else sapply(unique(a), function(t) {
        s <- which(a == t)
        det(R[s, s, drop = FALSE]) * det(R[-s, -s, drop = FALSE]) / det(R) })
    pr <- residuals(fit, type = "pearson")
    list(grad = max(pmin(abs(sc), abs(d$gradient))), vif = vif,
         chisq = sum(pr^2), rdf = df.residual(fit),
         zeros = c(sum(model.response(model.frame(fit)) == 0),
                   round(sum(dpois(0, fitted(fit))))))
}"""


@pytest.mark.parametrize("name", ["sleep2", "grouse", "over", "zeros", "unconverged"])
def test_fit_checks_against_base_r(models, tables, rref, name):
    m, t = models[name], tables[name]
    ref = rcall(rref, FIT_REF, m.robj)
    grad = t.loc[("convergence", ""), "value"]
    assert grad == pytest.approx(ref["grad"][0], rel=1e-12)
    assert t.loc[("convergence", ""), "ok"] == (ref["grad"][0] <= 0.002)
    vif = t.xs("collinearity", level="check")["value"].dropna().to_numpy()
    assert np.allclose(vif, ref["vif"], rtol=1e-10) and vif.size == np.size(ref["vif"])
    if name != "sleep2":
        row = t.loc[("overdispersion", "")]
        assert row["observed"] == pytest.approx(ref["chisq"][0], rel=1e-12)
        assert row["df"] == ref["rdf"][0]
        q, rdf = float(ref["chisq"][0]), float(ref["rdf"][0])
        assert row["p_value"] == pytest.approx(
            rref(f"pchisq({q!r}, {rdf!r}, lower.tail = FALSE)")[0], rel=1e-10)
        z = t.loc[("zero_inflation", "")]
        assert (z["observed"], z["expected"]) == tuple(ref["zeros"])


def test_verdicts(tables):
    assert not tables["unconverged"].loc[("convergence", ""), "ok"]
    assert tables["grouse"].loc[("convergence", ""), "ok"]
    assert "failed to converge" in tables["unconverged"].loc[("convergence", ""), "verdict"]
    assert not tables["over"].loc[("overdispersion", ""), "ok"]
    assert not tables["zeros"].loc[("zero_inflation", ""), "ok"]
    assert "underfitting zeros" in tables["zeros"].loc[("zero_inflation", ""), "verdict"]
    assert tables["sleep2"].loc[("collinearity", "Days"), "value"] > 3
    assert "overdispersion" not in tables["sleep2"].index.get_level_values("check")
    assert "fewer than two" in tables["cbpp"].loc[("collinearity", ""), "verdict"]


PERF = """function(fit, kind) {
    p <- switch(kind,
        vif = { x <- performance::check_collinearity(fit, verbose = FALSE)
                list(vif = x$VIF, adj = if (is.null(x$VIF_adjusted)) NULL else x$VIF_adjusted) },
        # performance >= 0.12 defaults to simulated residuals for mixed models;
        # its Pearson statistic (the check's overdispersion row) is residual_type "normal"
        disp = unclass(if ("residual_type" %in% names(formals(
                    getS3method("check_overdispersion", "merMod", envir = asNamespace(
                        "performance")))))
                performance::check_overdispersion(fit, residual_type = "normal")
            else performance::check_overdispersion(fit)),
        zero = unclass(performance::check_zeroinflation(fit)))
    p
}"""


@pytest.mark.parametrize("name", ["sleep2", "grouse", "over", "zeros"])
def test_against_performance(models, tables, rref, name):
    if not has(rref, "performance"):
        pytest.skip("R package performance is not installed on this stack")
    m, t = models[name], tables[name]
    vif = rcall(rref, PERF, m.robj, "vif")
    ours = t.xs("collinearity", level="check").dropna(subset=["value"])
    if not isinstance(vif["vif"], np.ndarray):  # performance: fewer than two terms
        assert ours.empty
    else:
        assert np.allclose(ours["value"], vif["vif"], rtol=1e-10)
        assert len(ours) == vif["vif"].size
    if isinstance(vif.get("adj"), np.ndarray):  # performance >= 0.10.9
        assert np.allclose(ours["adjusted"], vif["adj"], rtol=1e-10)
    if name == "sleep2":
        return
    disp = rcall(rref, PERF, m.robj, "disp")
    row = t.loc[("overdispersion", "")]
    assert row["value"] == pytest.approx(disp["dispersion_ratio"][0], rel=1e-12)
    assert row["observed"] == pytest.approx(disp["chisq_statistic"][0], rel=1e-12)
    assert row["p_value"] == pytest.approx(disp["p_value"][0], rel=1e-9, abs=1e-300)
    zero = rcall(rref, PERF, m.robj, "zero")
    if "p.value" in zero:  # performance >= 0.12 simulates for Poisson mixed models
        return
    z = t.loc[("zero_inflation", "")]
    assert (z["observed"], z["expected"]) == (zero["observed.zeros"][0],
                                              zero["predicted.zeros"][0])
    assert z["value"] == pytest.approx(zero["ratio"][0], rel=1e-12)


# -- DHARMa's simulated residuals: base R recomputation, then DHARMa --------

SIM_REF = """function(fit, cond, integer) {
    nsim <- 250L
    set.seed(123)
    s <- simulate(fit, nsim, re.form = if (cond) NULL else NA)
    y <- model.response(model.frame(fit))
    if (is.matrix(y)) { y <- y[, 1]; s <- sapply(s, function(v) v[, 1]) } else s <- as.matrix(s)
    res <- runif(length(y), rowMeans(s < y), rowMeans(s <= y))
    ks <- suppressWarnings(ks.test(res, "punif"))
    pred <- predict(fit, type = "response", re.form = NA)
    spread <- function(x) var(x - pred) / sd(s)^2
    sims <- apply(s, 2, spread)
    obs <- spread(y)
    getp <- function(sim, o) min(min(mean(sim <= o), mean(sim >= o)) * 2, 1)
    if (!integer || length(y) > 500) {
        k <- sum(res < 1 / (nsim + 1)) + sum(res > 1 - 1 / (nsim + 1))
        out <- c(k / length(y), binom.test(k, length(y), 2 / (nsim + 1))$p.value)
    } else {
        boot <- sapply(1:100, function(i) {
            sel <- sample((1:nsim)[-i], nsim, replace = TRUE)
            r <- runif(length(y), rowMeans(s[, sel] < s[, i]), rowMeans(s[, sel] <= s[, i]))
            mean(r == 1) + mean(r == 0)
        })
        f <- mean(res == 0) + mean(res == 1)
        out <- c(f, getp(boot, f))
    }
    z <- apply(s, 2, function(v) sum(v == 0))
    list(res = res, ks = c(ks$statistic, ks$p.value), disp = c(obs / mean(sims), getp(sims, obs)),
         out = out, zero = c(mean(z) / sum(y == 0), getp(z, sum(y == 0))))
}"""


def _sim_rows(t):
    return {c: t.loc[(c, "")] for c in ("sim_uniformity", "sim_dispersion", "sim_outliers")}


def _same_sim_tests(rows: dict, ref: dict) -> None:
    """The simulated-residual rows of check() against R's KS, dispersion and
    outlier tests on the same residuals."""
    assert rows["sim_uniformity"]["value"] == pytest.approx(ref["ks"][0], abs=1e-15)
    assert rows["sim_uniformity"]["p_value"] == pytest.approx(ref["ks"][1], rel=1e-9,
                                                              abs=1e-14)
    assert rows["sim_dispersion"]["value"] == pytest.approx(ref["disp"][0], rel=1e-12)
    assert rows["sim_dispersion"]["p_value"] == ref["disp"][1]
    assert rows["sim_outliers"]["value"] == pytest.approx(ref["out"][0], rel=1e-15)
    assert rows["sim_outliers"]["p_value"] == pytest.approx(ref["out"][1], rel=1e-9)


@pytest.mark.parametrize("cond", ["conditional", "unconditional"])
@pytest.mark.parametrize("name", ["sleep2", "cbpp", "grouse", "zeros"])
def test_simulated_against_base_r(models, rref, name, cond):
    m = models[name]
    t = m.check(simulate_re=cond).set_index(["check", "term"])
    s = checks.simulated_residuals(m, simulate_re=cond)
    ref = rcall(rref, SIM_REF, m.robj, cond == "conditional", s.integer)
    assert np.array_equal(s.residuals, ref["res"])
    _same_sim_tests(_sim_rows(t), ref)
    if m.family == "poisson":
        z = t.loc[("sim_zero_inflation", "")]
        assert z["value"] == pytest.approx(ref["zero"][0], rel=1e-12)
        assert z["p_value"] == ref["zero"][1]


def test_seed_gives_same_numbers_and_restores_r_state(models, rref):
    m = models["cbpp"]
    before = rref("if (exists('.Random.seed', globalenv())) .Random.seed[3:6] else NA")
    a, b = m.check(seed=5), m.check(seed=5)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(m.check(seed=6))
    after = rref("if (exists('.Random.seed', globalenv())) .Random.seed[3:6] else NA")
    assert np.array_equal(before, after, equal_nan=True)


DHARMA = """function(fit, cond, integer) {
    new <- utils::packageVersion("DHARMa") >= "0.5.0"
    # DHARMa's getRandomState() draws one runif() after set.seed(seed) when R had
    # no random state yet; a session that has used R's RNG (the usual case) does not
    if (!exists(".Random.seed", envir = globalenv())) runif(1)
    rf <- if (cond) NULL else NA
    full <- if (new) DHARMa::simulateResiduals(fit, n = 250, seed = 123,
                                               simulateREs = "user-specified", re.form = rf)
            else DHARMa::simulateResiduals(fit, n = 250, seed = 123, re.form = rf)
    set.seed(123)
    sims <- full$simulatedResponse
    invisible(simulate(fit, 250, re.form = rf))  # the same draws, so the stream goes on
    res <- DHARMa::createDHARMa(sims, full$observedResponse, full$fittedPredictedResponse,
                                integerResponse = integer, seed = FALSE)
    u <- DHARMa::testUniformity(res, plot = FALSE)
    d <- DHARMa::testDispersion(res, plot = FALSE)
    o <- suppressMessages(DHARMa::testOutliers(res, plot = FALSE))
    z <- DHARMa::testZeroInflation(res, plot = FALSE)
    list(full = full$scaledResiduals, res = res$scaledResiduals,
         ks = c(u$statistic, u$p.value), disp = c(d$statistic, d$p.value),
         out = c(o$estimate, o$p.value), zero = c(z$statistic, z$p.value))
}"""


@pytest.mark.parametrize("cond", ["conditional", "unconditional"])
@pytest.mark.parametrize("name", ["sleep2", "cbpp", "grouse", "zeros"])
def test_simulated_against_dharma(models, rref, name, cond):
    if not has(rref, "DHARMa"):
        pytest.skip("R package DHARMa is not installed on this stack (Debian 12 has none)")
    m = models[name]
    t = m.check(simulate_re=cond).set_index(["check", "term"])
    s = checks.simulated_residuals(m, simulate_re=cond)
    ref = rcall(rref, DHARMA, m.robj, cond == "conditional", s.integer)
    assert np.array_equal(s.residuals, ref["full"])
    assert np.array_equal(s.residuals, ref["res"])
    _same_sim_tests(_sim_rows(t), ref)
    if m.family == "poisson":
        z = t.loc[("sim_zero_inflation", "")]
        assert z["observed"] / z["expected"] == pytest.approx(ref["zero"][0], rel=1e-12)
        assert z["p_value"] == ref["zero"][1]


def test_arguments_refused(models):
    m = models["cbpp"]
    with pytest.raises(DataError, match="simulate_re"):
        m.check(simulate_re="marginal")
    with pytest.raises(DataError, match="nsim"):
        m.check(nsim=1)


def test_simulated_panels(models, rref):
    pytest.importorskip("matplotlib")
    from lmermagic.toolbox.plots import DiagnosticsDisplay

    m = models["grouse"]
    fig = m.plot_diagnostics(panel="simulated")
    assert len([a for a in fig.axes if a.get_visible()]) == 2
    disp = DiagnosticsDisplay.from_model(m, panel="simulated")
    s = checks.simulated_residuals(m)
    qq, rp = disp.panels["simulated_qq"], disp.panels["simulated_vs_predicted"]
    n = s.residuals.size
    assert np.array_equal(qq["y"], np.sort(s.residuals))
    assert np.allclose(qq["x"], np.arange(1, n + 1) / (n + 1))
    assert disp.lines["simulated_qq"] == (0.0, 1.0)
    # DHARMa's rankTransform of the population predictions, in R
    rank = rcall(rref, """function(fit) { p <- rank(predict(fit, type = "response",
                          re.form = NA), ties.method = "average"); p / max(p) }""", m.robj)
    assert np.allclose(rp["x"], rank, rtol=1e-15)
    assert np.array_equal(rp["y"], s.residuals)
    one = DiagnosticsDisplay.from_model(m, panel="simulated_qq")
    assert list(one.panels) == ["simulated_qq"]


def test_conditional_simulation_with_a_call_in_the_formula():
    # lme4's conditional simulate() predicts from the data the stored call names,
    # re-evaluating scale(HEIGHT); on the bare fit R said "object 'HEIGHT' not found"
    gt = lmermagic.datasets.load("grouseticks")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = lmermagic.glmer("TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD)", gt, family="poisson")
    t = m.check()
    assert t.loc[t["check"] == "sim_uniformity", "value"].notna().all()
