"""Ordinal mixed models (lmermagic.clmm): every table against ordinal's own
numbers, computed live on ordinal's wine data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import lmermagic

FORMULA = "rating ~ temp + contact + (1 | judge)"
# (link, threshold) pairs checked table by table against R
CASES = [("logit", "flexible"), ("probit", "equidistant"), ("cloglog", "symmetric"),
         ("loglog", "symmetric2"), ("cauchit", "flexible")]


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    return lmermagic.datasets.load("wine", package="ordinal")


_fits: dict[tuple[str, str], Any] = {}


def fitted(wine: pd.DataFrame, link: str = "logit", threshold: str = "flexible") -> Any:
    key = (link, threshold)
    if key not in _fits:
        _fits[key] = lmermagic.clmm(FORMULA, wine, link=link, threshold=threshold)
    return _fits[key]


def r_fit(link: str, threshold: str, formula: str = FORMULA) -> str:
    """R code binding `m` to ordinal's own fit of the same model."""
    return (f'wine <- ordinal::wine\n'
            f'm <- ordinal::clmm({formula}, data = wine, link = "{link}", '
            f'threshold = "{threshold}")\n')


@pytest.mark.parametrize(("link", "threshold"), CASES)
def test_coefficient_tables_match_ordinal(wine: pd.DataFrame, rref: Any, link: str,
                                          threshold: str) -> None:
    m = fitted(wine, link, threshold)
    ref = rref(r_fit(link, threshold) + """
        ct <- coef(summary(m)); ci <- confint(m)
        list(ct = as.vector(ct), rows = rownames(ct), ci = as.vector(ci),
             nalpha = length(m$alpha), theta = as.vector(m$Theta),
             ll = as.numeric(logLik(m)), aic = AIC(m), bic = BIC(m), nobs = nobs(m),
             edf = m$edf, condh = summary(m)$condHess, grad = max(abs(m$gradient)),
             neval = m$neval, ylev = m$y.levels)""")
    n = len(ref["rows"])
    ct = np.asarray(ref["ct"]).reshape(4, n).T
    ci = np.asarray(ref["ci"]).reshape(2, n).T
    na = int(ref["nalpha"][0])
    for table, rows in ((m.thresholds, slice(0, na)), (m.coefs, slice(na, n))):
        assert list(table.index) == ref["rows"][rows]
        assert list(table.columns) == ["estimate", "std_error", "statistic", "p_value",
                                       "conf_low", "conf_high"]
        np.testing.assert_allclose(table[["estimate", "std_error", "statistic",
                                          "p_value"]].to_numpy(), ct[rows], rtol=1e-10)
        np.testing.assert_allclose(table[["conf_low", "conf_high"]].to_numpy(), ci[rows],
                                   rtol=1e-10)
    np.testing.assert_allclose(m.theta.to_numpy(), ref["theta"], rtol=1e-10)
    assert list(m.theta.index) == ["1|2", "2|3", "3|4", "4|5"]
    assert m.levels == ref["ylev"]
    assert m.loglik == pytest.approx(ref["ll"][0], rel=1e-12)
    assert m.aic == pytest.approx(ref["aic"][0], rel=1e-12)
    assert m.bic == pytest.approx(ref["bic"][0], rel=1e-12)
    assert m.nobs == ref["nobs"][0] == 72
    assert m.edf == ref["edf"][0]
    assert m.cond_h == pytest.approx(ref["condh"][0], rel=1e-10)
    assert m.max_grad == pytest.approx(ref["grad"][0], rel=1e-10)
    assert m.neval == ref["neval"][0]
    assert m.converged and m.ngroups == {"judge": 9}


def test_flexible_logit_reference_numbers(wine: pd.DataFrame) -> None:
    """The numbers of ordinal's own example (?clmm), to 4 decimals."""
    m = fitted(wine)
    assert m.coefs.loc["tempwarm", "estimate"] == pytest.approx(3.0630, abs=1e-4)
    assert m.coefs.loc["contactyes", "std_error"] == pytest.approx(0.5125, abs=1e-4)
    assert m.thresholds.loc["1|2", "estimate"] == pytest.approx(-1.6237, abs=1e-4)
    assert m.loglik == pytest.approx(-81.5654, abs=1e-4)


@pytest.mark.parametrize(("link", "threshold"), CASES[:2])
def test_varcorr_and_ranef_match_ordinal(wine: pd.DataFrame, rref: Any, link: str,
                                         threshold: str) -> None:
    m = fitted(wine, link, threshold)
    ref = rref(r_fit(link, threshold) + """
        re <- ordinal::ranef(m, condVar = TRUE)$judge
        list(vc = as.vector(ordinal::VarCorr(m)$judge), re = re[[1]],
             lev = rownames(re), cv = as.vector(attr(re, "condVar")[[1]]))""")
    vc = m.varcorr
    assert list(vc.columns) == ["group", "var1", "var2", "vcov", "sdcor"]
    assert vc["group"].tolist() == ["judge"] and vc["var1"].tolist() == ["(Intercept)"]
    assert vc["var2"].isna().all()
    assert vc["vcov"].iloc[0] == pytest.approx(ref["vc"][0], rel=1e-10)
    assert vc["sdcor"].iloc[0] == pytest.approx(np.sqrt(ref["vc"][0]), rel=1e-10)
    re = m.ranef["judge"]
    assert list(re.index) == ref["lev"] and list(re.columns) == ["(Intercept)"]
    np.testing.assert_allclose(re["(Intercept)"].to_numpy(), ref["re"], rtol=1e-10)
    long = m.ranef_table
    assert list(long.columns) == ["group", "term", "level", "condval", "condsd"]
    np.testing.assert_allclose(long["condval"].to_numpy(), ref["re"], rtol=1e-10)
    np.testing.assert_allclose(long["condsd"].to_numpy(), np.sqrt(ref["cv"]), rtol=1e-10)


def test_random_slope_varcorr_has_lme4s_layout(wine: pd.DataFrame, rref: Any) -> None:
    formula = "rating ~ temp + contact + (1 + contact | judge)"
    m = lmermagic.clmm(formula, wine)
    ref = rref(r_fit("logit", "flexible", formula) + """
        v <- ordinal::VarCorr(m)$judge
        re <- ordinal::ranef(m, condVar = TRUE)$judge
        list(v = as.vector(v), re = as.vector(as.matrix(re)),
             cv = as.vector(as.matrix(attr(re, "condVar"))))""")
    v = np.asarray(ref["v"]).reshape(2, 2)
    vc = m.varcorr
    assert vc["var1"].tolist() == ["(Intercept)", "contactyes", "(Intercept)"]
    assert vc["var2"].iloc[:2].isna().all() and vc["var2"].iloc[2] == "contactyes"
    np.testing.assert_allclose(vc["vcov"], [v[0, 0], v[1, 1], v[1, 0]], rtol=1e-8)
    np.testing.assert_allclose(vc["sdcor"], [np.sqrt(v[0, 0]), np.sqrt(v[1, 1]),
                                             v[1, 0] / np.sqrt(v[0, 0] * v[1, 1])], rtol=1e-8)
    np.testing.assert_allclose(m.ranef["judge"].to_numpy().T.ravel(), ref["re"], rtol=1e-8)
    np.testing.assert_allclose(m.ranef_table["condsd"], np.sqrt(ref["cv"]), rtol=1e-8)


NEW = pd.DataFrame({"temp": pd.Categorical(["cold", "warm", "warm", "cold"]),
                    "contact": pd.Categorical(["no", "no", "yes", "yes"])},
                   index=["a", "b", "c", "d"])


@pytest.mark.parametrize(("link", "threshold"), CASES)
def test_predict_proba_is_ordinals_predict_for_the_fixed_part(
        wine: pd.DataFrame, rref: Any, link: str, threshold: str) -> None:
    """Against ordinal's predict.clm(type = "prob") of a clm of the fixed part
    whose parameters are replaced by the clmm's."""
    m = fitted(wine, link, threshold)
    ref = rref(r_fit(link, threshold) + f"""
        fm <- ordinal::clm(rating ~ temp + contact, data = wine, link = "{link}",
                           threshold = "{threshold}")
        fm$coefficients <- c(m$alpha, m$beta)
        nd <- data.frame(temp = factor(c("cold", "warm", "warm", "cold")),
                         contact = factor(c("no", "no", "yes", "yes")))
        as.vector(predict(fm, newdata = nd, type = "prob")$fit)""")
    p = m.predict_proba(NEW)
    assert list(p.columns) == ["1", "2", "3", "4", "5"] and list(p.index) == list("abcd")
    # ordinal stands for the infinite outer thresholds with -1e5 and 1e5: with
    # the cauchit link that leaves 1 / (pi * 1e5) = 3.2e-6 out of the outer
    # categories (its rows sum to 1 - 6.4e-6); lmermagic's use the infinities.
    atol = 1 / (np.pi * 1e5) + 1e-9 if link == "cauchit" else 1e-14
    np.testing.assert_allclose(p.to_numpy(), np.asarray(ref).reshape(5, 4).T, rtol=1e-9,
                               atol=atol)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    assert m.predict(NEW, type="class").tolist() == [
        m.levels[i] for i in p.to_numpy().argmax(axis=1)]


def test_predict_proba_default_and_missing_and_bad_newdata(wine: pd.DataFrame) -> None:
    m = fitted(wine)
    own = m.predict_proba()
    assert own.shape == (72, 5) and own.index.equals(wine.index)
    with_na = NEW.copy()
    with_na.loc["b", "temp"] = np.nan
    p = m.predict_proba(with_na)
    assert p.loc["b"].isna().all() and p.drop(index="b").notna().all().all()
    with pytest.raises(lmermagic.DataError, match="no column 'contact'"):
        m.predict_proba(NEW[["temp"]])
    hot = NEW.assign(temp=pd.Categorical(["cold", "hot", "warm", "cold"]))
    with pytest.raises(lmermagic.DataError, match="levels the model was not fitted with"):
        m.predict_proba(hot)
    assert m.predict_proba(NEW.iloc[:0]).shape == (0, 5)


def test_anova_is_ordinals_likelihood_ratio_test(wine: pd.DataFrame, rref: Any) -> None:
    m1 = fitted(wine)
    m0 = lmermagic.clmm("rating ~ temp + (1 | judge)", wine)
    ref = rref(r_fit("logit", "flexible") + """
        m0 <- ordinal::clmm(rating ~ temp + (1 | judge), data = wine)
        # anova.clmm evaluates anova.clm(m0, m) in its caller's frame, which
        # finds it only with ordinal attached: call it as that does
        a <- ordinal:::anova.clm(m0, m)
        list(npar = a$no.par, aic = a$AIC, ll = a$logLik, lr = a$LR.stat, df = a$df,
             p = a[["Pr(>Chisq)"]])""")
    table = lmermagic.anova(m1, m0)  # R's order: fewer parameters first
    assert list(table.index) == ["m0", "m1"]
    assert list(table.columns)[:6] == ["npar", "aic", "loglik", "chisq", "df", "p_value"]
    np.testing.assert_allclose(table["npar"], ref["npar"])
    np.testing.assert_allclose(table["aic"], ref["aic"], rtol=1e-12)
    np.testing.assert_allclose(table["loglik"], ref["ll"], rtol=1e-12)
    np.testing.assert_allclose(table["chisq"].iloc[1], ref["lr"][1], rtol=1e-10)
    np.testing.assert_allclose(table["p_value"].iloc[1], ref["p"][1], rtol=1e-10)
    assert "rating ~ temp + (1 | judge)" in table.attrs["heading"]
    assert list(lmermagic.anova(small=m0, big=m1).index) == ["small", "big"]
    with pytest.raises(lmermagic.DataError, match="single clmm fit"):
        lmermagic.anova(m1)


def test_anova_refuses_other_data_and_lmer_models(wine: pd.DataFrame,
                                                  sleepstudy: Any) -> None:
    m1 = fitted(wine)
    other = lmermagic.clmm("rating ~ temp + (1 | judge)", wine.iloc[:60])
    with pytest.raises(lmermagic.DataError, match="same data"):
        lmermagic.anova(m1, other)
    lm = lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy)
    with pytest.raises(lmermagic.DataError, match=r"lmermagic\.clmm"):
        lmermagic.anova(m1, lm)


def test_tidy_and_glance_match_broom(wine: pd.DataFrame, rref: Any) -> None:
    if not rref('nzchar(system.file(package = "broom"))')[0]:
        pytest.skip("R package broom is not installed")
    m = fitted(wine)
    ref = rref(r_fit("logit", "flexible") + """
        t <- broom::tidy(m, conf.int = TRUE, conf.level = 0.9)
        g <- broom::glance(m)
        list(term = t$term, est = t$estimate, se = t$std.error, stat = t$statistic,
             p = t$p.value, lo = t$conf.low, hi = t$conf.high, type = t$coef.type,
             g = c(g$edf, g$AIC, g$BIC, g$logLik, g$nobs))""")
    t = m.tidy(conf_level=0.9)
    assert list(t.columns) == ["term", "estimate", "std_error", "statistic", "p_value",
                               "conf_low", "conf_high", "coef_type"]
    assert t["term"].tolist() == ref["term"] and t["coef_type"].tolist() == ref["type"]
    for ours, theirs in (("estimate", "est"), ("std_error", "se"), ("statistic", "stat"),
                         ("p_value", "p"), ("conf_low", "lo"), ("conf_high", "hi")):
        np.testing.assert_allclose(t[ours], ref[theirs], rtol=1e-9)
    assert "conf_low" not in m.tidy(conf_int=False)
    np.testing.assert_allclose(m.tidy(exponentiate=True)["estimate"], np.exp(t["estimate"]))
    g = m.glance()
    np.testing.assert_allclose(g[["edf", "aic", "bic", "loglik", "nobs"]].iloc[0], ref["g"],
                               rtol=1e-12)
    assert g["cond_h"].iloc[0] == m.cond_h and bool(g["converged"].iloc[0])


def test_display_summary_and_r_code(wine: pd.DataFrame, tmp_path: Any, rref: Any) -> None:
    m = fitted(wine)
    assert "logit link, flexible thresholds" in repr(m) and "1 < 2 < 3" in repr(m)
    page = m._repr_html_()
    assert "Thresholds" in page and "tempwarm" in page and "1|2" in page
    assert "Cumulative Link Mixed Model" in m.summary()
    path = tmp_path / "wine.csv"
    script = m.r_code(str(path), write=True)
    assert "ordinal::clmm(rating ~ temp + contact + (1 | judge)" in script
    assert 'ordered = TRUE' in script
    ll = rref(f"{script.replace('summary(fit)', '')}\nas.numeric(logLik(fit))")
    assert ll[0] == pytest.approx(m.loglik, rel=1e-10)


def test_predict_proba_with_an_offset(wine: pd.DataFrame, rref: Any) -> None:
    """An offset() moves the linear predictor as in ordinal's predict.clm."""
    df = wine.assign(o=np.random.default_rng(1).normal(0, 0.3, len(wine)))
    m = lmermagic.clmm("rating ~ temp + contact + offset(o) + (1 | judge)", df)
    new = NEW.assign(o=[0.5, -0.5, 0.0, 1.0])
    ref = rref(f"""
        wine <- ordinal::wine
        wine$o <- c({", ".join(repr(float(v)) for v in df["o"])})
        m <- ordinal::clmm(rating ~ temp + contact + offset(o) + (1 | judge), data = wine)
        fm <- ordinal::clm(rating ~ temp + contact + offset(o), data = wine)
        fm$coefficients <- c(m$alpha, m$beta)
        nd <- data.frame(temp = factor(c("cold", "warm", "warm", "cold")),
                         contact = factor(c("no", "no", "yes", "yes")),
                         o = c(0.5, -0.5, 0, 1))
        list(p = as.vector(predict(fm, newdata = nd, type = "prob")$fit),
             b = as.vector(m$beta))""")
    np.testing.assert_allclose(m.coefs["estimate"], ref["b"], rtol=1e-8)
    np.testing.assert_allclose(m.predict_proba(new).to_numpy(),
                               np.asarray(ref["p"]).reshape(5, 4).T, rtol=1e-7)
