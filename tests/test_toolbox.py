"""The post-fit toolbox against R's own output for the same call, computed live."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest

import lmermagic
from conftest import grouped_counts, task_processes
from lmermagic import toolbox
from lmermagic.errors import DataError, FitError, LmerWarning, UnsafeFormulaError

RTOL = 1e-6

SLEEP_R = "m <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)"
CBPP_R = ("g <- lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), "
          "lme4::cbpp, family = binomial)")


def _load(name: str, package: str) -> str:
    return (f'e <- new.env(); utils::data("{name}", package = "{package}", envir = e); '
            f"d <- e${name}")


DIETOX_R = _load("dietox", "geepack") + """
m <- lmerTest::lmer(Weight ~ Time + Evit + (1 + Time | Pig), d,
                    contrasts = list(Evit = "contr.sum"))"""
HAM_FORMULA = ("Informed.liking ~ Product * Information * Gender + (1 | Consumer) "
               "+ (1 | Consumer:Product)")
HAM_R = _load("ham", "lmerTest") + f"\nm <- lmerTest::lmer({HAM_FORMULA}, d)"


def _close(actual, expected, rtol=RTOL, atol=0.0):
    np.testing.assert_allclose(np.asarray(actual, dtype=float),
                               np.asarray(expected, dtype=float), rtol=rtol, atol=atol)


def _frame(ref: dict) -> pd.DataFrame:
    """An R list(rows, cols...) reference -> DataFrame indexed by rows."""
    rows = ref.pop("rows")
    return pd.DataFrame({k: np.asarray(v) for k, v in ref.items()}, index=rows)


# ---------------------------------------------------------------------------
# Models (fitted once per module)
# ---------------------------------------------------------------------------

def _poisson_data(seed: int = 21) -> pd.DataFrame:
    c = grouped_counts(seed, exposure=(0.5, 3), beta=(0.3, 0.7), sd=0.5)
    return pd.DataFrame({"count": c["y"], "x": c["x"], "logt": c["log_t"],
                         "z": c["rng"].normal(size=c["g"].size),
                         "site": [f"s{i:02d}" for i in c["g"]]})


def _negbin_data(seed: int = 22) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(25), 12)
    x = rng.normal(size=g.size)
    mu = np.exp(1 + 0.5 * x + rng.normal(0, 0.4, 25)[g])
    y = rng.negative_binomial(2.0, 2.0 / (2.0 + mu))
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i:02d}" for i in g]})


@pytest.fixture(scope="module")
def sleep_models(sleepstudy):
    m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    m0 = lmermagic.lmer("Reaction ~ 1 + (Days | Subject)", sleepstudy)
    return m, m0


@pytest.fixture(scope="module")
def dietox_model(dietox):
    return lmermagic.lmer("Weight ~ Time + Evit + (1 + Time | Pig)", dietox,
                          contrasts={"Evit": "sum"})


@pytest.fixture(scope="module")
def ham():
    return lmermagic.datasets.load("ham", package="lmerTest")


@pytest.fixture(scope="module")
def ham_model(ham):
    return lmermagic.lmer(HAM_FORMULA, ham)


@pytest.fixture(scope="module")
def poisson(tmp_path_factory):
    df = _poisson_data()
    path = tmp_path_factory.mktemp("pois") / "pois.csv"
    df.to_csv(path, index=False)
    m = lmermagic.glmer("count ~ x + z + (1 | site)", df, family="poisson", offset="logt")
    setup = (f'd <- utils::read.csv("{path}", stringsAsFactors = TRUE)\n'
             "m <- lme4::glmer(count ~ x + z + (1 | site), d, family = poisson, offset = logt)")
    return df, m, setup


@pytest.fixture(scope="module")
def negbin(tmp_path_factory):
    df = _negbin_data()
    path = tmp_path_factory.mktemp("nb") / "nb.csv"
    df.to_csv(path, index=False)
    m = lmermagic.glmer("y ~ x + (1 | g)", df, family="negative_binomial")
    m0 = lmermagic.glmer("y ~ 1 + (1 | g)", df, family="negative_binomial")
    setup = (f'd <- utils::read.csv("{path}", stringsAsFactors = TRUE)\n'
             "m <- lme4::glmer.nb(y ~ x + (1 | g), d)\n"
             "m0 <- lme4::glmer.nb(y ~ 1 + (1 | g), d)")
    return df, m, m0, setup


# ---------------------------------------------------------------------------
# anova: F tests of one model
# ---------------------------------------------------------------------------

ANOVA_COLS = ["sum_sq", "mean_sq", "num_df", "den_df", "f_value", "p_value"]


@pytest.mark.parametrize("type_", [3, 2, 1])
def test_anova_types_ham(ham_model, rref, type_):
    out = ham_model.anova(type=type_)
    ref = rref(f"""{HAM_R}
        a <- anova(m, type = {type_})
        list(rows = rownames(a), s = a[["Sum Sq"]], ms = a[["Mean Sq"]], n = a$NumDF,
             d = a$DenDF, f = a[["F value"]], p = a[["Pr(>F)"]])""")
    assert list(out.index) == ref["rows"]
    assert list(out.columns) == ANOVA_COLS
    for col, key in zip(ANOVA_COLS, ["s", "ms", "n", "d", "f", "p"]):
        _close(out[col], ref[key], rtol=1e-5 if col == "p_value" else RTOL)
    assert "Satterthwaite" in out.attrs["heading"]


def test_anova_kenward_roger_and_lme4(sleep_models, rref):
    m, _ = sleep_models
    kr = m.anova(ddf="kenward-roger")
    ref = rref(f"""{SLEEP_R}
        a <- anova(m, ddf = "Kenward-Roger"); b <- anova(m, ddf = "lme4")
        list(d = a$DenDF, f = a[["F value"]], p = a[["Pr(>F)"]], bf = b[["F value"]],
             bn = b$npar)""")
    _close(kr.loc["Days", ["den_df", "f_value", "p_value"]],
           [ref["d"][0], ref["f"][0], ref["p"][0]])
    lme4 = m.anova(ddf="lme4")
    _close(lme4.loc["Days", "f_value"], ref["bf"][0])
    assert lme4.loc["Days", "npar"] == ref["bn"][0]


def test_anova_glmer_type1_and_clear_error(cbpp_model, rref):
    with pytest.raises(DataError, match="joint_tests"):
        cbpp_model.anova(engine="lmerTest")
    out = cbpp_model.anova(type=1)
    ref = rref(f"{CBPP_R}\na <- anova(g); list(f = a[['F value']], s = a[['Sum Sq']])")
    _close(out.loc["period", ["f_value", "sum_sq"]], [ref["f"][0], ref["s"][0]])


def test_anova_dispatch(sleep_models):
    m, _ = sleep_models
    pd.testing.assert_frame_equal(lmermagic.anova(m), m.anova())
    pd.testing.assert_frame_equal(toolbox.anova(m, type=1), m.anova(type=1))
    with pytest.raises(DataError):
        toolbox.anova(m, tyep=1)
    with pytest.raises(DataError):
        m.anova(type=4)


# ---------------------------------------------------------------------------
# ranova, drop1
# ---------------------------------------------------------------------------

def test_ranova_ham(ham_model, rref):
    out = ham_model.ranova()
    ref = rref(f"""{HAM_R}
        r <- lmerTest::ranova(m)
        list(rows = rownames(r), npar = r$npar, ll = r$logLik, aic = r$AIC, lrt = r$LRT,
             df = r$Df, p = r[["Pr(>Chisq)"]])""")
    assert list(out.index) == ref["rows"]
    _close(out["npar"], ref["npar"])
    _close(out["loglik"], ref["ll"])
    _close(out["aic"], ref["aic"])
    _close(out["lrt"].iloc[1:], ref["lrt"][1:])
    _close(out["df"].iloc[1:], ref["df"][1:])
    _close(out["p_value"].iloc[1:], ref["p"][1:], rtol=1e-5)


def test_ranova_sleepstudy(sleep_models, rref):
    out = sleep_models[0].ranova()
    ref = rref(f"{SLEEP_R}\nr <- lmerTest::ranova(m); list(rows = rownames(r), lrt = r$LRT)")
    assert list(out.index) == ref["rows"] == ["<none>", "Days in (Days | Subject)"]
    _close(out["lrt"].iloc[1], ref["lrt"][1])


def test_drop1_lmer(ham_model, rref):
    out = ham_model.drop1()
    ref = rref(f"""{HAM_R}
        a <- drop1(m)
        list(rows = rownames(a), f = a[["F value"]], d = a$DenDF, p = a[["Pr(>F)"]])""")
    assert list(out.index) == ref["rows"]
    _close(out["f_value"], ref["f"])
    _close(out["den_df"], ref["d"])
    _close(out["p_value"], ref["p"], rtol=1e-5)


def test_drop1_glmer_lrt(cbpp_model, rref):
    out = cbpp_model.drop1()
    ref = rref(f"""{CBPP_R}
        a <- drop1(g, test = "Chisq")
        list(rows = rownames(a), aic = a$AIC, lrt = a$LRT, p = a[["Pr(Chi)"]], n = a$npar)""")
    assert list(out.index) == ref["rows"] == ["<none>", "period"]
    assert list(out.columns) == ["npar", "aic", "lrt", "p_value"]
    _close(out["aic"], ref["aic"])
    _close(out["lrt"].iloc[1], ref["lrt"][1])
    _close(out["p_value"].iloc[1], ref["p"][1], rtol=1e-5)


def test_drop1_poisson_with_offset_argument(poisson, rref):
    """The refits must see the offset (bound where lme4 evaluates the call)."""
    _, m, setup = poisson
    out = m.drop1()
    ref = rref(f"""{setup}
        a <- drop1(m, test = "Chisq"); list(rows = rownames(a), aic = a$AIC, lrt = a$LRT)""")
    assert list(out.index) == ref["rows"]
    _close(out["aic"], ref["aic"])
    _close(out["lrt"].iloc[1:], ref["lrt"][1:])


# ---------------------------------------------------------------------------
# compare: anova(m0, m1, ...)
# ---------------------------------------------------------------------------

def test_compare_refits_with_ml_and_sorts_like_r(sleep_models, rref):
    m, m0 = sleep_models
    with pytest.warns(LmerWarning, match="refitting model"):
        out = lmermagic.toolbox.compare(m, m0)  # given big first: R sorts by npar
    ref = rref(f"""{SLEEP_R}
        m0 <- lmerTest::lmer(Reaction ~ 1 + (Days | Subject), lme4::sleepstudy)
        a <- suppressMessages(anova(m, m0))
        # lme4 >= 1.1-37 calls the column "-2*log(L)"; lmermagic keeps "deviance".
        dev <- if (is.null(a$deviance)) a[["-2*log(L)"]] else a$deviance
        list(rows = rownames(a), npar = a$npar, aic = a$AIC, bic = a$BIC, ll = a$logLik,
             dev = dev, chisq = a$Chisq, df = a$Df, p = a[["Pr(>Chisq)"]])""")
    assert list(out.index) == ref["rows"] == ["m0", "m"]
    assert list(out.columns) == ["npar", "aic", "bic", "loglik", "deviance", "chisq", "df",
                                 "p_value", "aicc", "delta_aicc", "weight"]  # test_aicc.py
    for col, key in [("npar", "npar"), ("aic", "aic"), ("bic", "bic"), ("loglik", "ll"),
                     ("deviance", "dev")]:
        _close(out[col], ref[key])
    _close(out["chisq"].iloc[1], ref["chisq"][1])
    _close(out["p_value"].iloc[1], ref["p"][1], rtol=1e-5)
    assert "m0: Reaction ~ 1 + (Days | Subject)" in out.attrs["heading"]


def test_compare_labels(sleep_models):
    m, m0 = sleep_models
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LmerWarning)
        full, null = m, m0
        assert list(toolbox.compare(full, null).index) == ["null", "full"]
        assert list(toolbox.compare(m, m0, names=["big", "small"]).index) == ["small", "big"]
        assert list(lmermagic.anova(full=m, null=m0).index) == ["null", "full"]
        named = dataclasses.replace(m0, name="intercept_only")
        assert list(toolbox.anova(named, m).index) == ["intercept_only", "m"]
        out = toolbox.compare(m, m0, refit=False)
        assert out.loc["m", "loglik"] == pytest.approx(m.loglik, rel=1e-10)
    with pytest.raises(DataError):
        toolbox.compare(m)
    with pytest.raises(DataError):
        toolbox.compare(m, m0, names=["a", "a"])


def test_compare_refuses_different_data(sleep_models, sleepstudy):
    m, _ = sleep_models
    other = sleepstudy.assign(Reaction=sleepstudy["Reaction"] + 1.0)
    m_other = lmermagic.lmer("Reaction ~ 1 + (Days | Subject)", other)
    with pytest.raises(DataError, match="same data"):
        toolbox.compare(m, m_other)


def test_compare_glmer_and_negbin(cbpp_model, negbin, rref):
    g0 = cbpp_model.update(". ~ . - period")
    out = toolbox.compare(g0, cbpp_model)
    ref = rref(f"""{CBPP_R}
        g0 <- update(g, . ~ . - period); a <- anova(g0, g)
        list(chisq = a$Chisq, ll = a$logLik, p = a[["Pr(>Chisq)"]])""")
    assert list(out.index) == ["g0", "cbpp_model"]
    _close(out["loglik"], ref["ll"])
    _close(out["chisq"].iloc[1], ref["chisq"][1])
    _, nb, nb0, setup = negbin
    out = toolbox.compare(nb0, nb)
    ref = rref(f"{setup}\na <- anova(m0, m); list(ll = a$logLik, chisq = a$Chisq)")
    _close(out["loglik"], ref["ll"])
    _close(out["chisq"].iloc[1], ref["chisq"][1])


# ---------------------------------------------------------------------------
# predict
# ---------------------------------------------------------------------------

def test_predict_sleepstudy(sleep_models, sleepstudy, rref):
    m, _ = sleep_models
    new = pd.DataFrame({"Days": [0, 3, 9, 2], "Subject": ["308", "372", "330", "999"]},
                       index=["a", "b", "c", "d"])
    ref = rref(f"""{SLEEP_R}
        nd <- data.frame(Days = c(0, 3, 9, 2), Subject = c("308", "372", "330", "999"))
        list(own = unname(predict(m)), pop = unname(predict(m, re.form = NA)),
             new = unname(predict(m, nd, allow.new.levels = TRUE)),
             newpop = unname(predict(m, nd, re.form = NA)),
             part = unname(predict(m, nd[1:3, ], re.form = ~ (1 | Subject))))""")
    own = m.predict()
    assert own.index.equals(sleepstudy.index)
    _close(own, ref["own"], rtol=1e-8)
    _close(m.predict(re_form="~0"), ref["pop"], rtol=1e-8)
    _close(m.predict(re_form="NA"), ref["pop"], rtol=1e-8)
    got = m.predict(new, allow_new_levels=True)
    assert list(got.index) == ["a", "b", "c", "d"]
    _close(got, ref["new"], rtol=1e-8)
    _close(m.predict(new, re_form="~0"), ref["newpop"], rtol=1e-8)
    _close(m.predict(new.iloc[:3], re_form="~(1 | Subject)"), ref["part"], rtol=1e-8)
    # a Categorical with other categories and another order: matched by label
    cat = new.iloc[:3].assign(Subject=pd.Categorical(["308", "372", "330"],
                                                     categories=["372", "330", "308", "x"]))
    _close(m.predict(cat), ref["new"][:3], rtol=1e-8)


def test_predict_errors(sleep_models):
    m, _ = sleep_models
    new = pd.DataFrame({"Days": [1], "Subject": ["999"]})
    with pytest.raises(DataError, match="allow_new_levels"):
        m.predict(new)
    with pytest.raises(DataError, match="no column 'Subject'"):
        m.predict(pd.DataFrame({"Days": [1]}))
    with pytest.raises(UnsafeFormulaError):
        m.predict(new, re_form="~ (1 | system('echo hi'))", allow_new_levels=True)
    with pytest.raises(DataError):
        m.predict(new, type="probability")


def test_predict_glmer_types_and_new_factor_levels(cbpp_model, cbpp, rref):
    ref = rref(f"""{CBPP_R}
        nd <- data.frame(period = c("4", "1"), herd = c("3", "15"))
        list(resp = unname(predict(g, type = "response")),
             link = unname(predict(g, type = "link")),
             nd = unname(predict(g, nd, type = "response")))""")
    _close(cbpp_model.predict(), ref["resp"], rtol=1e-8)
    _close(cbpp_model.predict(type="link"), ref["link"], rtol=1e-8)
    new = pd.DataFrame({"period": [4, 1], "herd": [3, 15]})  # numbers: matched as labels
    _close(cbpp_model.predict(new), ref["nd"], rtol=1e-8)
    with pytest.raises(DataError, match="period: 7"):
        cbpp_model.predict(pd.DataFrame({"period": ["7"], "herd": ["3"]}),
                           allow_new_levels=True)


def test_predict_poisson_offset_and_dropped_rows(poisson, rref, dietox):
    df, m, setup = poisson
    new = df.iloc[[0, 5, 17]].reset_index(drop=True)
    ref = rref(f"""{setup}
        list(own = unname(predict(m, type = "response")),
             new = unname(predict(m, d[c(1, 6, 18), ], type = "response")))""")
    _close(m.predict(), ref["own"], rtol=1e-8)
    _close(m.predict(new), ref["new"], rtol=1e-8)
    # rows R dropped for a missing Feed give NaN, others R's predictions
    mf = lmermagic.lmer("Weight ~ Feed + (1 | Pig)", dietox)
    ref = rref(_load("dietox", "geepack") + """
        m <- lmerTest::lmer(Weight ~ Feed + (1 | Pig), d)
        p <- predict(m); list(p = unname(p), rows = as.integer(names(p)))""")
    got = mf.predict()
    rows = ref["rows"].astype(int) - 1
    _close(got.iloc[rows], ref["p"], rtol=1e-8)
    assert got.isna().sum() == len(dietox) - len(rows)


# ---------------------------------------------------------------------------
# confint
# ---------------------------------------------------------------------------

# R's intervals by readable name (oldNames = FALSE): lme4 2.x orders and numbers
# the variance parameters differently from 1.1 (.sig02 is a correlation in one,
# a standard deviation in the other); lmermagic keeps one order on both.
def _by_name(ref, prefix):
    return {side: pd.Series(ref[f"{prefix}{side}"], index=ref[f"{prefix}rows"])
            for side in ("l", "u")}


def test_confint_profile_and_wald(sleep_models, rref):
    m, _ = sleep_models
    ref = rref(f"""{SLEEP_R}
        p <- suppressWarnings(confint(m, method = "profile", quiet = TRUE, oldNames = FALSE))
        w <- suppressWarnings(confint(m, method = "Wald", level = 0.9, oldNames = FALSE))
        list(prows = rownames(p), pl = unname(p[, 1]), pu = unname(p[, 2]),
             wrows = rownames(w), wl = unname(w[, 1]), wu = unname(w[, 2]))""")
    prof = m.confint(method="profile")
    assert list(prof.index) == [".sig01", ".sig02", ".sig03", ".sigma", "(Intercept)", "Days"]
    assert list(prof["parameter"]) == ["sd_(Intercept)|Subject",
                                       "cor_Days.(Intercept)|Subject", "sd_Days|Subject",
                                       "sigma", "(Intercept)", "Days"]
    assert sorted(prof["parameter"]) == sorted(ref["prows"])
    r = _by_name(ref, "p")
    _close(prof["conf_low"], r["l"][prof["parameter"]])
    _close(prof["conf_high"], r["u"][prof["parameter"]])
    _close(prof.loc[".sigma", "estimate"], m.sigma)
    wald = m.confint(level=0.9)
    r = _by_name(ref, "w")
    _close(wald["conf_low"].iloc[4:], r["l"][wald["parameter"]].iloc[4:])
    _close(wald["conf_high"].iloc[4:], r["u"][wald["parameter"]].iloc[4:])
    assert wald["conf_low"].iloc[:4].isna().all()  # R gives no Wald CI for variances


def test_confint_profile_glmer(cbpp_model, rref):
    ref = rref(f"""{CBPP_R}
        p <- suppressWarnings(confint(g, quiet = TRUE, oldNames = FALSE))
        list(rows = rownames(p), l = unname(p[, 1]), u = unname(p[, 2]))""")
    out = cbpp_model.confint(method="profile")
    assert list(out.index) == [".sig01", "(Intercept)", "period2", "period3", "period4"]
    assert out.loc[".sig01", "parameter"] == "sd_(Intercept)|herd"
    r = _by_name(ref, "")
    _close(out["conf_low"], r["l"][out["parameter"]], rtol=1e-5)
    _close(out["conf_high"], r["u"][out["parameter"]], rtol=1e-5)


@pytest.mark.filterwarnings("ignore::lmermagic.LmerWarning")
def test_bootstrap_matches_r_and_is_reproducible(sleep_models, rref):
    m, _ = sleep_models
    a = m.confint(method="boot", nsim=60, seed=11)
    b = m.confint(method="boot", nsim=60, seed=11)
    pd.testing.assert_frame_equal(a, b)
    ref = rref(f"""{SLEEP_R}
        ci <- suppressWarnings(confint(m, method = "boot", nsim = 60, seed = 11, quiet = TRUE,
                                       oldNames = FALSE))
        list(rows = rownames(ci), l = unname(ci[, 1]), u = unname(ci[, 2]))""")
    assert list(a.index) == [".sig01", ".sig02", ".sig03", ".sigma", "(Intercept)", "Days"]
    assert sorted(a["parameter"]) == sorted(ref["rows"])
    r = _by_name(ref, "")
    _close(a["conf_low"], r["l"][a["parameter"]], rtol=1e-8)
    _close(a["conf_high"], r["u"][a["parameter"]], rtol=1e-8)
    assert ((a["conf_low"] <= a["estimate"]) & (a["estimate"] <= a["conf_high"])).all()
    c = m.confint(method="boot", nsim=60, seed=12)
    assert not np.allclose(a["conf_low"], c["conf_low"])


@pytest.mark.filterwarnings("ignore::lmermagic.LmerWarning")
def test_bootstrap_workers_give_the_same_intervals(sleep_models):
    m, _ = sleep_models
    one = m.confint(method="boot", nsim=40, seed=5)
    two = m.confint(method="boot", nsim=40, seed=5, workers=2)
    pd.testing.assert_frame_equal(one, two)
    three = m.confint(method="boot", nsim=40, seed=5, workers=3)  # other chunks, 3 Rs
    pd.testing.assert_frame_equal(one, three)
    assert task_processes() == []  # every worker process is gone


@pytest.mark.filterwarnings("ignore::lmermagic.LmerWarning")
def test_bootstrap_glmer_and_rng_state_restored(cbpp_model, rref):
    rref("set.seed(99); invisible(NULL)")
    out = cbpp_model.confint(method="boot", nsim=30, seed=3)
    after = rref("stats::runif(1)")
    expected = rref("set.seed(99); stats::runif(1)")
    assert after[0] == expected[0]  # the caller's R random stream is untouched
    ref = rref(f"""{CBPP_R}
        ci <- suppressWarnings(confint(g, method = "boot", nsim = 30, seed = 3, quiet = TRUE,
                                       oldNames = FALSE))
        list(rows = rownames(ci), l = unname(ci[, 1]), u = unname(ci[, 2]))""")
    r = _by_name(ref, "")
    _close(out["conf_low"], r["l"][out["parameter"]], rtol=1e-8)
    _close(out["conf_high"], r["u"][out["parameter"]], rtol=1e-8)
    assert ((out["conf_low"] <= out["estimate"]) & (out["estimate"] <= out["conf_high"])).all()


def test_confint_arguments(sleep_models):
    m, _ = sleep_models
    for bad in [{"method": "bayes"}, {"level": 95}, {"method": "boot", "nsim": 0},
                {"method": "boot", "nsim": 10, "seed": 1.5},
                {"method": "boot", "workers": 0}]:
        with pytest.raises(DataError):
            m.confint(**bad)


# ---------------------------------------------------------------------------
# emmeans
# ---------------------------------------------------------------------------

def test_emmeans_dietox_pairwise(dietox_model, rref):
    out = dietox_model.emmeans("Evit", pairwise=True)
    ref = rref(f"""{DIETOX_R}
        emm <- emmeans::emmeans(m, "Evit")
        s <- as.data.frame(summary(emm)); p <- as.data.frame(summary(pairs(emm)))
        list(lev = as.character(s$Evit), em = s$emmean, se = s$SE, df = s$df,
             lo = s$lower.CL, hi = s$upper.CL, con = as.character(p$contrast),
             est = p$estimate, pse = p$SE, t = p$t.ratio, p = p$p.value)""")
    emm, con = out["emmeans"], out["contrasts"]
    assert list(emm.columns) == ["Evit", "emmean", "std_error", "df", "conf_low", "conf_high"]
    assert list(emm["Evit"].astype(str)) == ref["lev"]
    _close(emm["emmean"], ref["em"])
    _close(emm["std_error"], ref["se"])
    _close(emm["df"], ref["df"])
    _close(emm["conf_low"], ref["lo"])
    assert list(con["contrast"].astype(str)) == ref["con"]
    _close(con["estimate"], ref["est"])
    _close(con["t_ratio"], ref["t"])
    _close(con["p_value"], ref["p"], rtol=1e-4)  # Tukey p: numerical integration


def test_emmeans_by_and_adjust(ham_model, rref):
    with pytest.warns(LmerWarning, match="interactions"):  # emmeans' NOTE, as in R
        out = ham_model.emmeans("Product", by="Information", pairwise=True, adjust="holm")
    ref = rref(f"""{HAM_R}
        emm <- emmeans::emmeans(m, "Product", by = "Information")
        s <- as.data.frame(summary(emm))
        p <- as.data.frame(summary(emmeans::contrast(emm, "pairwise", adjust = "holm")))
        list(em = s$emmean, info = as.character(s$Information), p = p$p.value,
             est = p$estimate)""")
    assert list(out["emmeans"]["Information"].astype(str)) == ref["info"]
    _close(out["emmeans"]["emmean"], ref["em"])
    _close(out["contrasts"]["estimate"], ref["est"])
    _close(out["contrasts"]["p_value"], ref["p"], rtol=1e-5)


def test_emmeans_glmer_scales(cbpp_model, rref):
    resp = cbpp_model.emmeans("period")
    link = cbpp_model.emmeans("period", type="link")
    ref = rref(f"""{CBPP_R}
        emm <- emmeans::emmeans(g, "period")
        r <- as.data.frame(summary(emm, type = "response")); l <- as.data.frame(summary(emm))
        list(prob = r$prob, lo = r$asymp.LCL, em = l$emmean)""")
    _close(resp["prob"], ref["prob"])
    _close(resp["conf_low"], ref["lo"])
    _close(link["emmean"], ref["em"])
    with pytest.raises(DataError, match="Did you mean 'period'"):
        cbpp_model.emmeans("perod")
    with pytest.raises(DataError):
        cbpp_model.emmeans("period", adjust="magic")


# ---------------------------------------------------------------------------
# simulate, refit, update, ranef_table, allfit
# ---------------------------------------------------------------------------

def test_simulate_matches_r(sleep_models, cbpp_model, rref):
    m, _ = sleep_models
    rref("set.seed(5); invisible(NULL)")
    sims = m.simulate(nsim=3, seed=42)
    assert rref("stats::runif(1)")[0] == rref("set.seed(5); stats::runif(1)")[0]
    ref = rref(f"""{SLEEP_R}
        s <- simulate(m, nsim = 3, seed = 42); list(a = s$sim_1, c = s$sim_3)""")
    assert list(sims.columns) == ["sim_1", "sim_2", "sim_3"]
    _close(sims["sim_1"], ref["a"], rtol=1e-10)
    _close(sims["sim_3"], ref["c"], rtol=1e-10)
    g = cbpp_model.simulate(nsim=2, seed=1)
    ref = rref(f"{CBPP_R}\ns <- simulate(g, nsim = 2, seed = 1); list(a = s$sim_2[, 1])")
    _close(g["sim_2"], ref["a"])


def test_refit_matches_r(sleep_models, sleepstudy, rref):
    m, _ = sleep_models
    y = np.sqrt(sleepstudy["Reaction"]) * 10
    new = m.refit(y)
    ref = rref(f"""{SLEEP_R}
        d2 <- lme4::sleepstudy; y <- sqrt(d2$Reaction) * 10; d2$Reaction <- y
        m2 <- lme4::refit(m, y)
        m2@call$data <- quote(d2)   # lmerTest's df from the new response's deviance
        m2 <- lmerTest::as_lmerModLmerTest(m2)
        list(coef = unname(coef(summary(m2))), ll = as.numeric(logLik(m2)),
             fitted = unname(fitted(m2)))""")
    coef = np.asarray(ref["coef"])
    _close(new.coefs["estimate"], coef[:, 0])
    _close(new.coefs["std_error"], coef[:, 1])
    _close(new.coefs["df"], coef[:, 2], rtol=1e-5)
    assert new.loglik == pytest.approx(float(ref["ll"][0]), rel=1e-9)
    _close(new.fitted, ref["fitted"])
    assert new.name is None and new.formula == m.formula
    with pytest.raises(DataError):
        m.refit(y.iloc[:10])


def test_refit_binomial_two_columns(cbpp_model, cbpp, rref):
    s = cbpp_model.simulate(seed=8)["sim_1"]
    both = pd.DataFrame({"s": s, "f": cbpp["size"] - s})
    new = cbpp_model.refit(both)
    ref = rref(f"""{CBPP_R}
        s <- simulate(g, seed = 8)$sim_1
        list(fe = unname(lme4::fixef(lme4::refit(g, s))))""")
    _close(new.fixef, ref["fe"], rtol=1e-5)


def test_update_matches_r(sleep_models, rref):
    m, _ = sleep_models
    smaller = m.update(". ~ . - Days")
    assert smaller.formula == "Reaction ~ (Days | Subject)"
    ml = m.update(reml=False)
    ref = rref(f"""{SLEEP_R}
        a <- update(m, . ~ . - Days); b <- update(m, REML = FALSE)
        list(a = as.numeric(logLik(a)), b = as.numeric(logLik(b)),
             fb = unname(lme4::fixef(b)))""")
    assert smaller.loglik == pytest.approx(float(ref["a"][0]), rel=1e-9)
    assert not ml.reml and ml.loglik == pytest.approx(float(ref["b"][0]), rel=1e-9)
    _close(ml.fixef, ref["fb"])
    with pytest.raises(UnsafeFormulaError):
        m.update(". ~ . + system('echo hi')")
    with pytest.raises(DataError, match="does not know"):
        m.update(optimiser="bobyqa")


def test_update_options_and_family(poisson, negbin):
    _, m, _ = poisson
    m2 = m.update(". ~ . - z", control={"optimizer": "bobyqa"})
    assert m2.request.offset == "logt" and m2.request.control == {"optimizer": "bobyqa"}
    assert "z" not in m2.coefs.index
    _, nb, _, _ = negbin
    pois = nb.update(family="poisson")
    assert pois.kind == "glmer" and pois.family == "poisson"


def test_ranef_table_matches_r(sleep_models, cbpp_model, rref):
    out = sleep_models[0].ranef_table
    ref = rref(f"""{SLEEP_R}
        r <- as.data.frame(lme4::ranef(m, condVar = TRUE))
        list(g = as.character(r$grpvar), t = as.character(r$term),
             l = as.character(r$grp), v = r$condval, s = r$condsd)""")
    assert list(out.columns) == ["group", "term", "level", "condval", "condsd"]
    assert list(out["term"]) == ref["t"] and list(out["level"]) == ref["l"]
    _close(out["condval"], ref["v"])
    _close(out["condsd"], ref["s"])
    g = cbpp_model.ranef_table
    ref = rref(f"{CBPP_R}\nr <- as.data.frame(lme4::ranef(g, condVar = TRUE)); list(s = r$condsd)")
    _close(g["condsd"], ref["s"])


def test_allfit_matches_each_optimizer(sleep_models, rref):
    m, _ = sleep_models
    out = m.allfit()
    ref = rref(f"""{SLEEP_R}
        f <- function(opt, ctl) {{
            x <- lme4::lmer(Reaction ~ Days + (Days | Subject), lme4::sleepstudy,
                            control = lme4::lmerControl(optimizer = opt, optCtrl = ctl))
            c(lme4::fixef(x), as.numeric(logLik(x)))
        }}
        list(bobyqa = f("bobyqa", list(maxfun = 1e5)),
             Nelder_Mead = f("Nelder_Mead", list(maxfun = 1e5)),
             nlminbwrap = f("nlminbwrap", list(eval.max = 1e5)),
             nm = f("nloptwrap", list(algorithm = "NLOPT_LN_NELDERMEAD", maxeval = 1e5)),
             bq = f("nloptwrap", list(algorithm = "NLOPT_LN_BOBYQA", maxeval = 1e5)))""")
    names = {"bobyqa": "bobyqa", "Nelder_Mead": "Nelder_Mead", "nlminbwrap": "nlminbwrap",
             "nloptwrap.NLOPT_LN_NELDERMEAD": "nm", "nloptwrap.NLOPT_LN_BOBYQA": "bq"}
    assert set(names) <= set(out.index)
    for row, key in names.items():
        _close(out.loc[row, ["(Intercept)", "Days", "loglik"]].to_numpy(dtype=float),
               ref[key], rtol=1e-7)
    assert out["converged"].all()
    assert {"sd_(Intercept)|Subject", "cor_(Intercept).Days|Subject", "sigma"} <= set(out.columns)
    _close(out["sigma"], m.sigma, rtol=1e-4)


def test_allfit_glmer_and_negbin(cbpp_model, negbin):
    out = cbpp_model.allfit()
    assert out["converged"].all()
    _close(out["loglik"], cbpp_model.loglik, rtol=1e-6)
    _close(out["period2"], cbpp_model.fixef["period2"], rtol=1e-3)
    _, nb, _, _ = negbin
    out = nb.allfit()
    _close(out["x"], nb.fixef["x"], rtol=1e-3)


def test_tables_are_plain_dataframes(sleep_models):
    m, _ = sleep_models
    for table in [m.anova(), m.ranova(), m.drop1(), m.confint(), m.ranef_table]:
        assert type(table) is pd.DataFrame
        assert "<table" in table._repr_html_()


def test_no_r_fit_attached(sleep_models):
    m, _ = sleep_models
    bare = dataclasses.replace(m, r_object=None)
    with pytest.raises(DataError, match="no R fit"):
        bare.anova()


def test_r_error_becomes_fit_error(sleep_models):
    m, _ = sleep_models
    ml = m.update(reml=False)
    with pytest.raises(FitError) as info:
        ml.anova(ddf="kenward-roger")
    assert info.value.r_message


def test_profile_leaves_the_model_untouched(cbpp, rref):
    """lme4's profile() of a glmer fit changes the fit's C++ state in place (R's own
    ranef(g, condVar = TRUE) differs afterwards); ours works on copies."""
    g = lmermagic.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
    before = g.ranef_table
    g.confint(method="profile")
    pd.testing.assert_frame_equal(g.ranef_table, before)
    ref = rref(f"{CBPP_R}\nlist(s = as.data.frame(lme4::ranef(g, condVar = TRUE))$condsd)")
    _close(before["condsd"], ref["s"])


def test_plain_lme4_fit_gets_lmertest_tests(sleepstudy, sleep_models):
    """A model fitted without lmerTest (ddf='lme4') still gets lmerTest's F tests."""
    m, _ = sleep_models
    plain = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy, ddf="lme4")
    pd.testing.assert_frame_equal(plain.anova(), m.anova(), rtol=1e-7)
    pd.testing.assert_frame_equal(plain.drop1(), m.drop1(), rtol=1e-7)


def test_refitting_functions_see_weights_and_contrasts(dietox, dietox_model, rref):
    out = dietox_model.ranova()
    ref = rref(f"""{DIETOX_R}
        r <- lmerTest::ranova(m); list(rows = rownames(r), ll = r$logLik)""")
    assert list(out.index) == ref["rows"]
    _close(out["loglik"], ref["ll"])
    w = dietox.assign(w=np.linspace(0.5, 2, len(dietox)))
    mw = lmermagic.lmer("Weight ~ Time + Evit + (1 | Pig)", w, weights="w",
                        contrasts={"Evit": "sum"})
    ref = rref(_load("dietox", "geepack") + """
        d$w <- seq(0.5, 2, length.out = nrow(d))
        m <- lmerTest::lmer(Weight ~ Time + Evit + (1 | Pig), d, weights = w,
                            contrasts = list(Evit = "contr.sum"))
        r <- lmerTest::ranova(m)
        a <- suppressWarnings(suppressMessages(anova(m, update(m, . ~ . - Evit))))
        list(ll = r$logLik, chisq = a$Chisq)""")
    _close(mw.ranova()["loglik"], ref["ll"])
    smaller = mw.update(". ~ . - Evit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LmerWarning)
        _close(toolbox.compare(mw, smaller)["chisq"].iloc[1], ref["chisq"][1])


def test_negbin_predict_and_wald(negbin, rref):
    df, m, _, setup = negbin
    ref = rref(f"""{setup}
        ci <- confint(m, method = "Wald")
        list(p = unname(predict(m, type = "response")),
             pn = unname(predict(m, d[1:3, ], re.form = NA)),
             l = unname(ci[-1, 1]))""")
    _close(m.predict(), ref["p"], rtol=1e-6)
    _close(m.predict(df.iloc[:3], re_form="~0", type="link"), ref["pn"], rtol=1e-6)
    _close(m.confint()["conf_low"].iloc[1:], ref["l"], rtol=1e-6)


def test_allfit_keeps_the_models_control(poisson):
    _, m, _ = poisson
    ctl = m.update(control={"optimizer": "bobyqa", "maxfun": 5000})
    out = ctl.allfit()
    # dfoptim's nmkb (nmkbw) needs two parameters or more; this model has one
    # (lme4's allFit reports the same warning), where dfoptim is installed.
    assert out.drop(index="nmkbw", errors="ignore")["converged"].all()
    _close(out["loglik"], ctl.loglik, rtol=1e-6)


def test_compare_names_from_a_notebook_cell(shell, sleep_models):
    m, m0 = sleep_models
    shell.user_ns.update(big=m, small=m0, also_big=m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LmerWarning)
        shell.run_cell("import lmermagic\n_t = lmermagic.anova(\n    big,\n    small)",
                       store_history=False).raise_error()
    assert list(shell.user_ns["_t"].index) == ["small", "big"]


def test_refit_kenward_roger(sleepstudy, rref):
    m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy, ddf="kenward-roger")
    new = m.refit(np.log(sleepstudy["Reaction"]))
    ref = rref("""
        m <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
        d2 <- lme4::sleepstudy; y <- log(d2$Reaction); d2$Reaction <- y
        m2 <- lme4::refit(m, y); m2@call$data <- quote(d2)
        unname(coef(summary(lmerTest::as_lmerModLmerTest(m2), ddf = "Kenward-Roger")))""")
    _close(new.coefs[["estimate", "std_error", "df", "statistic"]], np.asarray(ref)[:, :4])
