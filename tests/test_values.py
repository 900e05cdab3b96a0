"""Every number a model returns, against R's own for the same model, live."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lmermagic
from conftest import grouped_counts

RTOL = 1e-7


def _crossed(seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    subj, item = np.meshgrid(np.arange(30), np.arange(20), indexing="ij")
    subj, item = subj.ravel(), item.ravel()
    cond = rng.integers(0, 2, subj.size)
    y = (500 + 30 * cond + rng.normal(0, 40, 30)[subj] + rng.normal(0, 25, 20)[item]
         + rng.normal(0, 50, subj.size))
    return pd.DataFrame({"rt": y, "cond": np.where(cond, "b", "a"),
                         "subject": [f"s{i:02d}" for i in subj],
                         "item": [f"i{i:02d}" for i in item]})


def _nested(seed: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    school = np.repeat(np.arange(12), 40)
    klass = np.repeat(np.arange(48), 10)
    x = rng.normal(size=school.size)
    y = (2 + 0.7 * x + rng.normal(0, 1, 12)[school] + rng.normal(0, 0.6, 48)[klass]
         + rng.normal(0, 1, school.size))
    y[[3, 17, 200]] = np.nan  # rows R drops
    return pd.DataFrame({"score": y, "x": x, "school": [f"S{s}" for s in school],
                         "class": [f"C{c % 4}" for c in klass]})


def _poisson(seed: int = 13) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(25), 12)
    x = rng.uniform(-1, 1, g.size)
    mu = np.exp(0.5 + 0.8 * x + rng.normal(0, 0.5, 25)[g])
    return pd.DataFrame({"count": rng.poisson(mu), "x": x,
                         "site": pd.Categorical([f"site{i}" for i in g])})


@dataclass
class Case:
    name: str
    formula: str
    data: str  # how R gets the data: an R expression, or a generator name
    kind: str = "lmer"
    reml: bool = True
    family: str = "binomial"
    factors: tuple[str, ...] = ()


CASES = [
    Case("sleepstudy", "Reaction ~ Days + (Days | Subject)", "lme4::sleepstudy"),
    Case("sleepstudy-ml", "Reaction ~ Days + (Days | Subject)", "lme4::sleepstudy",
         reml=False),
    Case("dietox", "Weight ~ Time + (1 + Time | Pig)", "geepack::dietox"),
    Case("dietox-evit", "Weight ~ Time + factor(Evit) + (1 + Time | Pig)",
         "geepack::dietox"),
    Case("crossed", "rt ~ cond + (1 | subject) + (1 | item)", "crossed"),
    Case("nested", "score ~ x + (1 | school/class)", "nested"),
    Case("binomial", "cbind(incidence, size - incidence) ~ period + (1 | herd)",
         "lme4::cbpp", kind="glmer"),
    Case("poisson", "count ~ x + (1 | site)", "poisson", kind="glmer", family="poisson"),
]

GENERATED = {"crossed": _crossed, "nested": _nested, "poisson": _poisson}


def _data(case: Case, tmp: Path) -> tuple[pd.DataFrame, str]:
    """The pandas frame for lmermagic and the R code that builds the same data."""
    if case.data in GENERATED:
        df = GENERATED[case.data]()
        path = tmp / f"{case.data}.csv"
        df.to_csv(path, index=False)
        return df, f'd <- utils::read.csv("{path}", stringsAsFactors = TRUE)'
    pkg, name = case.data.split("::")
    df = lmermagic.datasets.load(name, package=pkg)
    setup = f'e <- new.env(); utils::data("{name}", package = "{pkg}", envir = e); d <- e${name}'
    return df, setup


def _reference(rref, case: Case, setup: str) -> dict:
    if case.kind == "lmer":
        fit = f"m <- lmerTest::lmer({case.formula}, data = d, REML = {str(case.reml).upper()})"
        coef = "coef(summary(m))"
    else:
        fit = f"m <- lme4::glmer({case.formula}, data = d, family = {case.family})"
        coef = "coef(summary(m))"
    return rref(f"""
        {setup}
        {fit}
        list(coef = {coef}, terms = rownames({coef}),
             vc = as.data.frame(lme4::VarCorr(m)),
             ranef = lapply(lme4::ranef(m), as.matrix),
             ranef_levels = lapply(lme4::ranef(m), rownames),
             fitted = stats::fitted(m), resid = stats::residuals(m),
             fitted_rows = as.integer(names(stats::fitted(m))),
             nobs = stats::nobs(m), ngrps = lme4::ngrps(m),
             ngrps_names = names(lme4::ngrps(m)),
             loglik = as.numeric(stats::logLik(m)), aic = stats::AIC(m),
             bic = stats::BIC(m),
             dev = if (lme4::isREML(m)) lme4:::deviance.merMod(m, REML = FALSE)
                   else stats::deviance(m),
             remlcrit = if (lme4::isREML(m)) lme4::REMLcrit(m) else NA_real_,
             sigma = stats::sigma(m), singular = lme4::isSingular(m))
    """)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("data")
    out = {}
    for case in CASES:
        df, setup = _data(case, tmp)
        before = df.copy(deep=True)
        if case.kind == "lmer":
            m = lmermagic.lmer(case.formula, df, reml=case.reml)
        else:
            m = lmermagic.glmer(case.formula, df, family=case.family)
        out[case.name] = (case, df, before, m, setup)
    return out


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_against_r(name, fitted, rref):
    case, df, before, m, setup = fitted[name]
    ref = _reference(rref, case, setup)
    coef = np.asarray(ref["coef"])
    ncol = coef.shape[1]
    assert list(m.coefs.index) == ref["terms"]
    np.testing.assert_allclose(m.coefs["estimate"], coef[:, 0], rtol=RTOL)
    np.testing.assert_allclose(m.fixef, coef[:, 0], rtol=RTOL)
    np.testing.assert_allclose(m.coefs["std_error"], coef[:, 1], rtol=1e-6)
    if case.kind == "lmer":
        assert ncol == 5
        np.testing.assert_allclose(m.coefs["df"], coef[:, 2], rtol=1e-6)
        np.testing.assert_allclose(m.coefs["statistic"], coef[:, 3], rtol=1e-6)
        np.testing.assert_allclose(m.coefs["p_value"], coef[:, 4], rtol=1e-5)
    else:
        assert np.isinf(m.coefs["df"]).all()
        np.testing.assert_allclose(m.coefs["statistic"], coef[:, 2], rtol=1e-6)
        np.testing.assert_allclose(m.coefs["p_value"], coef[:, 3], rtol=1e-5)
    # 95 % Wald intervals as R's confint(m, method = "Wald")
    wald = rref(f"{setup}\n" + (
        f"m <- lme4::lmer({case.formula}, data = d, REML = {str(case.reml).upper()})"
        if case.kind == "lmer" else
        f"m <- lme4::glmer({case.formula}, data = d, family = {case.family})")
        + "\nci <- stats::confint(m, method = 'Wald'); ci[!is.na(ci[, 1]), , drop = FALSE]")
    np.testing.assert_allclose(m.coefs["conf_low"], np.asarray(wald)[:, 0], rtol=1e-6)
    np.testing.assert_allclose(m.coefs["conf_high"], np.asarray(wald)[:, 1], rtol=1e-6)

    vc = ref["vc"]
    assert list(m.varcorr["group"]) == [str(g) for g in vc["grp"]]
    assert list(m.varcorr["var1"].fillna("NA")) == [v or "NA" for v in vc["var1"]]
    np.testing.assert_allclose(m.varcorr["vcov"], vc["vcov"], rtol=1e-6)
    np.testing.assert_allclose(m.varcorr["sdcor"], vc["sdcor"], rtol=1e-6)

    assert set(m.ranef) == set(ref["ranef"])
    for group, values in ref["ranef"].items():
        assert list(m.ranef[group].index) == ref["ranef_levels"][group]
        np.testing.assert_allclose(m.ranef[group].to_numpy(), values, rtol=1e-6, atol=1e-10)

    rows = ref["fitted_rows"].astype(int) - 1
    assert m.fitted.index.equals(df.index)
    np.testing.assert_allclose(m.fitted.iloc[rows], ref["fitted"], rtol=1e-7)
    np.testing.assert_allclose(m.residuals.iloc[rows], ref["resid"], rtol=1e-6, atol=1e-9)
    dropped = np.setdiff1d(np.arange(len(df)), rows)
    assert m.fitted.iloc[dropped].isna().all()
    assert list(m.dropped) == list(df.index[dropped])

    assert m.nobs == int(ref["nobs"][0])
    assert m.ngroups == dict(zip(ref["ngrps_names"], ref["ngrps"].astype(int)))
    for attr, key in [("loglik", "loglik"), ("aic", "aic"), ("bic", "bic"),
                      ("deviance", "dev"), ("sigma", "sigma")]:
        assert getattr(m, attr) == pytest.approx(float(ref[key][0]), rel=RTOL), attr
    if case.kind == "lmer" and case.reml:
        assert m.reml_criterion == pytest.approx(float(ref["remlcrit"][0]), rel=RTOL)
    else:
        assert np.isnan(m.reml_criterion)
    assert m.singular == bool(ref["singular"][0])
    assert m.reml == (case.kind == "lmer" and case.reml)
    # the caller's frame is untouched
    pd.testing.assert_frame_equal(df, before)


def test_dietox_reference_numbers(dietox):
    """The figures the README and notebook quote (R 4.2.2, lme4 1.1-31, lmerTest 3.1-3)."""
    m = lmermagic.lmer("Weight ~ Time + (1 + Time | Pig)", dietox)
    assert m.coefs.loc["(Intercept)", "estimate"] == pytest.approx(15.738650, abs=1e-6)
    assert m.coefs.loc["Time", "estimate"] == pytest.approx(6.939014, abs=1e-6)
    assert m.coefs.loc["(Intercept)", "df"] == pytest.approx(71.04, abs=0.01)
    assert m.coefs.loc["Time", "df"] == pytest.approx(71.07, abs=0.01)
    assert m.reml_criterion == pytest.approx(4434.0949, abs=1e-4)
    assert m.converged and not m.singular and m.warnings == []


def test_sleepstudy_reference_numbers(sleepstudy):
    m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    np.testing.assert_allclose(m.fixef, [251.405104848485, 10.467285959595], rtol=1e-8)
    np.testing.assert_allclose(m.coefs["std_error"], [6.824597, 1.545790], rtol=1e-6)
    np.testing.assert_allclose(m.coefs["df"], [16.9997, 16.99998], rtol=1e-5)


def test_kenward_roger_matches_r(sleepstudy, rref):
    m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy, ddf="kenward-roger")
    ref = np.asarray(rref("""
        m <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
        coef(summary(m, ddf = "Kenward-Roger"))"""))
    np.testing.assert_allclose(m.coefs[["estimate", "std_error", "df", "statistic",
                                        "p_value"]].to_numpy(), ref, rtol=1e-6)


def test_ddf_lme4_has_no_df(sleepstudy, rref):
    m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy, ddf="lme4")
    ref = np.asarray(rref("coef(summary(lme4::lmer(Reaction ~ Days + (Days | Subject), "
                          "lme4::sleepstudy)))"))
    np.testing.assert_allclose(m.coefs[["estimate", "std_error", "statistic"]], ref,
                               rtol=1e-7)
    assert m.coefs["df"].isna().all() and m.coefs["p_value"].isna().all()


@pytest.mark.parametrize(("formula", "factors"), [
    ("Weight ~ Time + Evit + (1 + Time | Pig)", ["Evit"]),
    ("Weight ~ poly(Time, 2) * Cu + (1 | Pig)", ["Cu"]),
    ("Weight ~ Time + Feed + (1 | Pig) + (1 | Litter)", ["Litter"]),
])
def test_ddf_lme4_table_is_summarys_to_the_last_digit(dietox, rref, formula, factors):
    # The table is computed without summary(); it must be summary()'s numbers.
    m = lmermagic.lmer(formula, dietox, ddf="lme4", factors=factors)
    ref = rref(f"""
        e <- new.env(); utils::data("dietox", package = "geepack", envir = e); d <- e$dietox
        for (f in c({", ".join(repr(f) for f in factors)})) d[[f]] <- factor(d[[f]])
        ct <- coef(summary(lme4::lmer({formula}, d)))
        list(ct = ct, terms = rownames(ct))""")
    assert list(m.coefs.index) == ref["terms"]
    np.testing.assert_allclose(m.coefs[["estimate", "std_error", "statistic"]],
                               np.asarray(ref["ct"]), rtol=1e-13, atol=0)


@pytest.mark.parametrize(("formula", "family", "r_family"), [
    ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", "binomial"),
    ("incidence ~ period + (1 | herd)", "poisson", "poisson"),
    ("size ~ period + (1 | herd)", "Gamma(link='log')", "Gamma(link = 'log')"),
])
def test_glmer_table_is_summarys_to_the_last_digit(rref, formula, family, r_family):
    cbpp = lmermagic.datasets.load("cbpp")
    m = lmermagic.glmer(formula, cbpp, family=family)
    ref = rref(f"""ct <- coef(summary(lme4::glmer({formula}, lme4::cbpp, family = {r_family})))
                   list(ct = ct, terms = rownames(ct))""")
    assert list(m.coefs.index) == ref["terms"]
    np.testing.assert_allclose(m.coefs[["estimate", "std_error", "statistic", "p_value"]],
                               np.asarray(ref["ct"]), rtol=1e-13, atol=0)


def test_weights_and_factors(dietox, rref):
    df = dietox.assign(w=np.linspace(0.5, 2, len(dietox)), cu=dietox["Cu"].cat.codes)
    m = lmermagic.lmer("Weight ~ Time + cu + (1 | Pig)", df, weights="w", factors=["cu"])
    path_setup = rref("""
        e <- new.env(); utils::data("dietox", package = "geepack", envir = e); d <- e$dietox
        d$w <- seq(0.5, 2, length.out = nrow(d)); d$cu <- factor(as.integer(d$Cu) - 1L)
        m <- lmerTest::lmer(Weight ~ Time + cu + (1 | Pig), d, weights = w)
        list(coef = coef(summary(m)), terms = rownames(coef(summary(m))),
             sigma = sigma(m))""")
    assert list(m.coefs.index) == path_setup["terms"]
    np.testing.assert_allclose(m.coefs[["estimate", "std_error", "df"]],
                               np.asarray(path_setup["coef"])[:, :3], rtol=1e-6)
    assert m.sigma == pytest.approx(float(path_setup["sigma"][0]), rel=1e-7)


def test_gamma_family_with_link(rref):
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(20), 10)
    x = rng.uniform(0, 1, g.size)
    y = rng.gamma(5, np.exp(0.3 + x + rng.normal(0, 0.3, 20)[g]) / 5)
    df = pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g]})
    m = lmermagic.glmer("y ~ x + (1 | g)", df, family="Gamma(link='log')")
    assert (m.family, m.link) == ("Gamma", "log")
    ys = ",".join(repr(float(v)) for v in y)
    xs = ",".join(repr(float(v)) for v in x)
    ref = rref(f"""
        d <- data.frame(y = c({ys}), x = c({xs}),
                        g = factor(rep(sprintf("g%d", 0:19), each = 10)))
        m <- lme4::glmer(y ~ x + (1 | g), d, family = Gamma(link = "log"))
        list(fe = lme4::fixef(m), ll = as.numeric(logLik(m)))""")
    np.testing.assert_allclose(m.fixef, ref["fe"], rtol=1e-5)
    assert m.loglik == pytest.approx(float(ref["ll"][0]), rel=1e-7)


def test_summary_is_rs_text(sleepstudy):
    m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    text = m.summary()
    assert "REML criterion at convergence: 1743.6" in text
    assert "Formula: Reaction ~ Days + (Days | Subject)" in text
    assert "Satterthwaite" in text and "Days" in text
    html = m._repr_html_()
    assert "Reaction ~ Days + (Days | Subject)" in html and "10.47" in html


def _counts(seed: int = 21) -> pd.DataFrame:
    c = grouped_counts(seed, exposure=(1, 5), beta=(0.2, 0.6), sd=0.4, size=3)
    return pd.DataFrame({"y": c["y"], "x": c["x"], "logexp": c["log_t"],
                         "g": [f"g{i:02d}" for i in c["g"]]})


@pytest.mark.parametrize("how", ["argument", "formula"])
def test_poisson_offset_and_nagq(rref, tmp_path, how):
    df = _counts()
    path = tmp_path / "counts.csv"
    df.to_csv(path, index=False)
    if how == "argument":
        m = lmermagic.glmer("y ~ x + (1 | g)", df, family="poisson", offset="logexp", nagq=5)
    else:
        m = lmermagic.glmer("y ~ x + offset(logexp) + (1 | g)", df, family="poisson", nagq=5)
    ref = rref(f"""d <- utils::read.csv("{path}", stringsAsFactors = TRUE)
        m <- lme4::glmer(y ~ x + (1 | g), d, family = poisson, offset = logexp, nAGQ = 5)
        list(coef = coef(summary(m)), ll = as.numeric(logLik(m)),
             fitted = fitted(m))""")
    np.testing.assert_allclose(m.coefs[["estimate", "std_error", "statistic", "p_value"]],
                               np.asarray(ref["coef"]), rtol=1e-6)
    assert m.loglik == pytest.approx(float(ref["ll"][0]), rel=1e-8)
    np.testing.assert_allclose(m.fitted, ref["fitted"], rtol=1e-6)


def test_negative_binomial(rref, tmp_path):
    df = _counts()
    path = tmp_path / "counts.csv"
    df.to_csv(path, index=False)
    m = lmermagic.glmer("y ~ x + offset(logexp) + (1 | g)", df, family="negative_binomial")
    ref = rref(f"""d <- utils::read.csv("{path}", stringsAsFactors = TRUE)
        m <- lme4::glmer.nb(y ~ x + offset(logexp) + (1 | g), d)
        list(coef = coef(summary(m)), ll = as.numeric(logLik(m)),
             theta = lme4::getME(m, "glmer.nb.theta"), fam = family(m)$family)""")
    assert m.kind == "glmer.nb" and m.family == ref["fam"][0]
    np.testing.assert_allclose(m.coefs[["estimate", "std_error", "statistic", "p_value"]],
                               np.asarray(ref["coef"]), rtol=1e-5)
    assert m.loglik == pytest.approx(float(ref["ll"][0]), rel=1e-7)


def test_control_settings_reach_lme4(sleepstudy, rref):
    m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy,
                       control={"optimizer": "Nelder_Mead", "maxfun": 20,
                                "check.conv.grad": "ignore"})
    ref = rref("""m <- suppressWarnings(lmerTest::lmer(Reaction ~ Days + (Days | Subject),
        lme4::sleepstudy, control = lme4::lmerControl(optimizer = "Nelder_Mead",
        optCtrl = list(maxfun = 20), check.conv.grad = "ignore")))
        list(fe = lme4::fixef(m), conv = m@optinfo$conv$opt)""")
    np.testing.assert_allclose(m.fixef, ref["fe"], rtol=1e-8)
    assert not m.converged  # 20 evaluations are too few; lme4 says so
    with pytest.raises(lmermagic.DataError, match="optimizer"):
        lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy,
                       control={"optimizer": "system('ls')"})


def test_satterthwaite_is_computed_by_lmermagic_and_summary_matches_lmertest(sleepstudy, rref):
    m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    assert m.meta["satterthwaite"] == "lmermagic"
    # lme4's check points (1 + 2k^2) and 2k(k + 1) Richardson points; lmerTest: 113
    assert m.meta["devfun_evals"] == 43
    ours = [line for line in m.summary().splitlines() if line.startswith(("(Intercept)", "Days "))]
    ref = rref("""m <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
        out <- utils::capture.output(print(summary(m)))
        out[startsWith(out, "(Intercept)") | startsWith(out, "Days ")]""")
    assert ours == ref
