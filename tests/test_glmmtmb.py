"""glmmTMB fits (lmermagic.glmmtmb): every table against glmmTMB and broom.mixed
computed live in R on the same data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import lmermagic

SAL = 'data("Salamanders", package = "glmmTMB", envir = environment()); d <- Salamanders\n'
ZINB = ('m <- glmmTMB::glmmTMB(count ~ mined + (1 | site), data = d, '
        'family = glmmTMB::nbinom2, ziformula = ~ mined)\n')
ZIP = ('m <- glmmTMB::glmmTMB(count ~ mined + (1 | site), data = d, family = poisson, '
       'ziformula = ~ mined)\n')
HURDLE = ('m <- glmmTMB::glmmTMB(count ~ mined + (1 | site), data = d, '
          'family = glmmTMB::truncated_nbinom2, ziformula = ~ mined)\n')
FORMULA = "count ~ mined + (1 | site)"


@pytest.fixture(scope="module")
def sal() -> pd.DataFrame:
    return lmermagic.datasets.load("Salamanders", package="glmmTMB")


@pytest.fixture(scope="module")
def zinb(sal: pd.DataFrame) -> Any:
    return lmermagic.glmmtmb(FORMULA, sal, family="nbinom2", ziformula="~ mined")


@pytest.fixture(scope="module")
def zip_(sal: pd.DataFrame) -> Any:
    return lmermagic.glmmtmb(FORMULA, sal, family="poisson", ziformula="~ mined")


def _coefs_match(m: Any, rref: Any, fit: str) -> None:
    for comp in ("cond", "zi", "disp"):
        ours = m.coefs[m.coefs["component"] == comp]
        ref = rref(SAL + fit + f"""
            ct <- summary(m)$coefficients${comp}
            if (is.null(ct)) list(n = 0) else
                list(n = nrow(ct), terms = rownames(ct), v = as.vector(ct))""")
        assert len(ours) == int(ref["n"][0])
        if not len(ours):
            continue
        assert list(ours["term"]) == ref["terms"]
        got = ours[["estimate", "std_error", "statistic", "p_value"]].to_numpy().T.ravel()
        np.testing.assert_allclose(got, ref["v"], rtol=1e-6, atol=1e-10)
        z = 1.959963984540054
        np.testing.assert_allclose(ours["conf_low"], ours["estimate"] - z * ours["std_error"])


@pytest.mark.parametrize("which,fit", [("zinb", ZINB), ("zip_", ZIP)])
def test_zero_inflated_tables(which: str, fit: str, request: Any, rref: Any) -> None:
    m = request.getfixturevalue(which)
    _coefs_match(m, rref, fit)
    ref = rref(SAL + fit + """
        list(ll = as.numeric(logLik(m)), aic = AIC(m), bic = BIC(m), nobs = nobs(m),
             dfr = df.residual(m), sigma = sigma(m),
             sd = attr(glmmTMB::VarCorr(m)$cond$site, "stddev"),
             fixef = glmmTMB::fixef(m)$cond)""")
    assert m.loglik == pytest.approx(ref["ll"][0], rel=1e-9)
    assert m.aic == pytest.approx(ref["aic"][0], rel=1e-9)
    assert m.bic == pytest.approx(ref["bic"][0], rel=1e-9)
    assert m.deviance == pytest.approx(-2 * ref["ll"][0], rel=1e-9)
    assert m.nobs == ref["nobs"][0] and m.df_resid == ref["dfr"][0]
    assert m.sigma == pytest.approx(ref["sigma"][0], rel=1e-9)
    assert list(m.varcorr.columns) == ["component", "group", "var1", "var2", "vcov", "sdcor"]
    row = m.varcorr.iloc[0]
    assert (row["component"], row["group"], row["var1"]) == ("cond", "site", "(Intercept)")
    assert row["sdcor"] == pytest.approx(ref["sd"][0], rel=1e-9)
    assert row["vcov"] == pytest.approx(ref["sd"][0] ** 2, rel=1e-9)
    np.testing.assert_allclose(m.fixef, ref["fixef"], rtol=1e-9)
    assert m.converged and not m.singular


def test_ranef(zinb: Any, rref: Any) -> None:
    ref = rref(SAL + ZINB + """
        r <- as.data.frame(glmmTMB::ranef(m))
        list(level = as.character(r$grp), condval = r$condval, condsd = r$condsd,
             term = as.character(r$term), comp = as.character(r$component))""")
    t = zinb.ranef_table
    assert list(t.columns) == ["component", "group", "term", "level", "condval", "condsd"]
    assert list(t["level"]) == ref["level"] and list(t["component"]) == ref["comp"]
    np.testing.assert_allclose(t["condval"], ref["condval"], rtol=1e-7)
    np.testing.assert_allclose(t["condsd"], ref["condsd"], rtol=1e-6)
    np.testing.assert_allclose(zinb.ranef["site"]["(Intercept)"], ref["condval"], rtol=1e-7)


def test_broom(zinb: Any, rref: Any) -> None:
    ref = rref(SAL + ZINB + """
        t <- broom.mixed::tidy(m, conf.int = TRUE)
        g <- broom.mixed::glance(m)
        a <- broom.mixed::augment(m)
        list(est = t$estimate, lo = t$conf.low, hi = t$conf.high, term = t$term,
             comp = t$component, eff = t$effect, gcols = names(g), g = unlist(g),
             fitted = a$.fitted, resid = a$.resid, n = nrow(a))""")
    t = zinb.tidy()
    assert list(t["term"]) == ref["term"] and list(t["component"]) == ref["comp"]
    assert list(t["effect"]) == ref["eff"]
    np.testing.assert_allclose(t["estimate"], ref["est"], rtol=1e-6)
    np.testing.assert_allclose(t["conf_low"], ref["lo"], rtol=1e-6)
    np.testing.assert_allclose(t["conf_high"], ref["hi"], rtol=1e-6)
    g = zinb.glance()
    assert len(g) == 1 and "loglik" in g.columns and "df_resid" in g.columns
    # broom.mixed's values under lmermagic's names (newer releases add deviance,
    # which glance() leaves out to keep its schema)
    broom = dict(zip(ref["gcols"], ref["g"]))
    ours = {"nobs": "nobs", "sigma": "sigma", "loglik": "logLik", "aic": "AIC", "bic": "BIC",
            "df_resid": "df.residual"}
    np.testing.assert_allclose([float(g.iloc[0][k]) for k in ours],
                               [broom[v] for v in ours.values()], rtol=1e-9)
    a = zinb.augment()
    assert len(a) == ref["n"][0]
    np.testing.assert_allclose(a["fitted"], ref["fitted"], rtol=1e-7)
    np.testing.assert_allclose(a["resid"], ref["resid"], rtol=1e-7)


@pytest.mark.parametrize("type_", ["response", "link", "zprob"])
def test_predict(zinb: Any, sal: pd.DataFrame, rref: Any, type_: str) -> None:
    ref = rref(SAL + ZINB + f"""
        list(all = predict(m, type = "{type_}"),
             new = predict(m, newdata = d, type = "{type_}")[c(1, 50, 300)])""")
    np.testing.assert_allclose(zinb.predict(type=type_), ref["all"], rtol=1e-7)
    new = sal.iloc[[0, 49, 299]]
    got = zinb.predict(new, type=type_)
    assert list(got.index) == list(new.index)
    np.testing.assert_allclose(got, ref["new"], rtol=1e-7)


def test_simulate_confint_r_code(zinb: Any, rref: Any) -> None:
    ref = rref(SAL + ZINB + """
        set.seed(7); s <- simulate(m, nsim = 2)
        ci <- confint(m)
        list(s1 = s[[1]], s2 = s[[2]], lo = unname(ci[, 1]), hi = unname(ci[, 2]),
             rows = rownames(ci))""")
    s = zinb.simulate(2, seed=7)
    np.testing.assert_array_equal(s.iloc[:, 0], ref["s1"])
    np.testing.assert_array_equal(s.iloc[:, 1], ref["s2"])
    ci = zinb.confint()
    assert list(ci.index) == ref["rows"]
    np.testing.assert_allclose(ci["conf_low"], ref["lo"], rtol=1e-7)
    np.testing.assert_allclose(ci["conf_high"], ref["hi"], rtol=1e-7)
    code = zinb.r_code()
    assert "glmmTMB::glmmTMB(count ~ mined + (1 | site), data = data," in code
    assert "family = glmmTMB::nbinom2(link = \"log\"), ziformula = ~ mined)" in code


def test_profile_confint(zip_: Any, rref: Any) -> None:
    ref = rref(SAL + ZIP + """
        ci <- confint(m, method = "profile", parm = "beta_")
        list(lo = unname(ci[, 1]), hi = unname(ci[, 2]))""")
    ci = zip_.confint(method="profile")
    np.testing.assert_allclose(ci["conf_low"].to_numpy()[:len(ref["lo"])], ref["lo"],
                               rtol=1e-5)
    np.testing.assert_allclose(ci["conf_high"].to_numpy()[:len(ref["hi"])], ref["hi"],
                               rtol=1e-5)


def test_lrt(sal: pd.DataFrame, zinb: Any, rref: Any) -> None:
    m0 = lmermagic.glmmtmb("count ~ 1 + (1 | site)", sal, family="nbinom2",
                           ziformula="~ mined")
    ref = rref(SAL + ZINB + """
        m0 <- update(m, . ~ 1 + (1 | site))
        a <- anova(m0, m)
        list(v = as.vector(as.matrix(a)))""")
    tab = lmermagic.anova(m0, zinb)
    assert list(tab.index) == ["m0", "zinb"]
    cols = ["npar", "aic", "bic", "loglik", "deviance", "chisq", "df", "p_value"]
    assert list(tab.columns[:8]) == cols
    np.testing.assert_allclose(tab[cols].to_numpy().T.ravel(), ref["v"], rtol=1e-6)


def test_hurdle(sal: pd.DataFrame, rref: Any) -> None:
    m = lmermagic.glmmtmb(FORMULA, sal, family="truncated_nbinom2", ziformula="~ mined")
    _coefs_match(m, rref, HURDLE)
    assert "hurdle" in repr(m)


def test_beta_family(rref: Any) -> None:
    code = """set.seed(3); n <- 120
        d <- data.frame(g = rep(letters[1:12], each = 10), x = rnorm(n))
        u <- rnorm(12, sd = 0.5)[as.integer(factor(d$g))]
        mu <- plogis(-0.5 + 0.8 * d$x + u)
        d$y <- rbeta(n, mu * 20, (1 - mu) * 20)
        """
    cols = rref(code + "list(g = d$g, x = d$x, y = d$y)")
    df = pd.DataFrame({"g": cols["g"], "x": cols["x"], "y": cols["y"]})
    m = lmermagic.glmmtmb("y ~ x + (1 | g)", df, family="beta_family")
    fit = ("m <- glmmTMB::glmmTMB(y ~ x + (1 | g), data = d, "
           "family = glmmTMB::beta_family())\n")
    ref = rref(code + fit + "ct <- summary(m)$coefficients$cond\n"
               "list(v = as.vector(ct), ll = as.numeric(logLik(m)), s = sigma(m))")
    got = m.coefs[["estimate", "std_error", "statistic", "p_value"]].to_numpy().T.ravel()
    np.testing.assert_allclose(got, ref["v"], rtol=1e-6)
    assert m.loglik == pytest.approx(ref["ll"][0], rel=1e-9)
    assert m.sigma == pytest.approx(ref["s"][0], rel=1e-7)


def test_gaussian_dispformula(rref: Any) -> None:
    sleep = lmermagic.datasets.load("sleepstudy")
    m = lmermagic.glmmtmb("Reaction ~ Days + (1 | Subject)", sleep, dispformula="~ Days")
    ref = rref("""data("sleepstudy", package = "lme4", envir = environment())
        m <- glmmTMB::glmmTMB(Reaction ~ Days + (1 | Subject), data = sleepstudy,
                              dispformula = ~ Days)
        s <- summary(m)$coefficients
        list(c = as.vector(s$cond), d = as.vector(s$disp), ll = as.numeric(logLik(m)),
             sd = attr(glmmTMB::VarCorr(m)$cond$Subject, "stddev"))""")
    cols = ["estimate", "std_error", "statistic", "p_value"]
    cond = m.coefs[m.coefs["component"] == "cond"][cols].to_numpy().T.ravel()
    disp = m.coefs[m.coefs["component"] == "disp"]
    assert list(disp["term"]) == ["(Intercept)", "Days"]
    np.testing.assert_allclose(cond, ref["c"], rtol=1e-6)
    np.testing.assert_allclose(disp[cols].to_numpy().T.ravel(), ref["d"], rtol=1e-6)
    assert m.loglik == pytest.approx(ref["ll"][0], rel=1e-9)
    # no single residual variance with a dispersion model
    assert list(m.varcorr["group"]) == ["Subject"]
    assert m.varcorr["sdcor"].iloc[0] == pytest.approx(ref["sd"][0], rel=1e-6)


def test_gaussian_residual_row_and_reml(rref: Any) -> None:
    sleep = lmermagic.datasets.load("sleepstudy")
    m = lmermagic.glmmtmb("Reaction ~ Days + (Days | Subject)", sleep, reml=True)
    ref = rref("""data("sleepstudy", package = "lme4", envir = environment())
        m <- glmmTMB::glmmTMB(Reaction ~ Days + (Days | Subject), data = sleepstudy,
                              REML = TRUE)
        v <- glmmTMB::VarCorr(m)$cond$Subject
        list(sd = attr(v, "stddev"), cor = attr(v, "correlation")[1, 2], s = sigma(m),
             ll = as.numeric(logLik(m)))""")
    vc = m.varcorr
    assert list(vc["group"]) == ["Subject", "Subject", "Subject", "Residual"]
    np.testing.assert_allclose(vc["sdcor"], [*ref["sd"], ref["cor"][0], ref["s"][0]],
                               rtol=1e-6)
    assert m.reml and m.loglik == pytest.approx(ref["ll"][0], rel=1e-9)
    assert "REML" in m._repr_html_() or "REML" in repr(m)


def test_r_code_refuses_an_empty_level_and_names_allowed_functions(rref: Any) -> None:
    """As lmer's r_code(): a level "" cannot survive the script's CSV file, and a
    function the caller allowed is named in the script (the R side must define it)."""
    df = pd.DataFrame({"y": [1, 0, 3, 2, 5, 4, 2, 1, 0, 3, 4, 2],
                       "g": ["", "b", "c"] * 4, "x": np.arange(12.0)})
    m = lmermagic.glmmtmb("y ~ x + (1 | g)", df, family="poisson")
    with pytest.raises(lmermagic.DataError, match="empty string"):
        m.r_code()
    df["g"] = ["a", "b", "c"] * 4
    m2 = lmermagic.glmmtmb("y ~ atan2(x, 3) + (1 | g)", df, family="poisson",
                           allow_functions=["atan2"])
    assert "The formula may call atan2" in m2.r_code()
