"""lme4 2.x covariance-structure terms in formulas: us(), diag(), cs(), ar1().

lme4 2.0 reads ``us(x | g)``, ``diag(x | g)``, ``cs(x | g)`` and ``ar1(x | g)``
(the last three also with ``hom = TRUE`` or ``hom = FALSE``) as random-effect
terms with a structured covariance (lme4 2.1-0: man/lmer.Rd, ``lme4_specials``
in R/utilities.R, ``upReTrms()`` in R/covariance.R). lmermagic allows exactly
these shapes where the installed lme4 has them (R/compat.R), names the lme4
needed where it does not, and refuses R code riding along on every lme4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic.errors import FormulaError, UnsafeFormulaError


def _lme4() -> str:
    from lmermagic.rbridge import get_r

    return str(get_r().versions["lme4"])


def _lme4_2x() -> bool:
    return int(_lme4().split(".")[0]) >= 2


# String conditions: evaluated when the test runs, after R has started.
only_2x = pytest.mark.skipif("not _lme4_2x()", reason="covariance terms need lme4 >= 2.0")
only_1x = pytest.mark.skipif("_lme4_2x()", reason="this lme4 has covariance terms")


# R code riding on a covariance term or its hom= argument: each would run
# (file.create) if the term's arguments went to R unchecked.
ATTACKS = [
    "Reaction ~ Days + cs(1 + Days | Subject, hom = file.create('{p}'))",
    "Reaction ~ Days + cs(1 | Subject, hom = {{file.create('{p}'); TRUE}})",
    "Reaction ~ Days + cs(1 | Subject, hom = !file.create('{p}'))",
    "Reaction ~ Days + us(file.create('{p}') | Subject)",
    "Reaction ~ Days + cs(1 | file.create('{p}'))",
    "Reaction ~ Days + diag(Days | Subject, hom = TRUE, file.create('{p}'))",
    "Reaction ~ Days + diag(Days | Subject, n = file.create('{p}'))",
    "Reaction ~ Days + ar1(1 | Subject, hom = eval(parse(text = \"file.create('{p}')\")))",
    "Reaction ~ Days + ar1(1 | Subject, hom = base::isTRUE(file.create('{p}')))",
    "Reaction ~ Days + ar1(1 | Subject, hom = get('file.create')('{p}'))",
    "Reaction ~ Days + cs(1 | Subject, hom = (function() file.create('{p}'))())",
    "Reaction ~ Days + cs(1 | Subject)(file.create('{p}'))",
    "Reaction ~ Days + cs(1 | Subject, hom = TRUE)[file.create('{p}')]",
    "Reaction ~ Days + cs(1 | Subject, hom = TRUE) + cs(1 | Subject, hom = file.create('{p}'))",
    "Reaction ~ Days + lme4::cs(1 | Subject, hom = TRUE) + file.create('{p}')",
    "Reaction ~ Days + cs(1 | Subject, hom = TRUE, hom = file.create('{p}'))",
    "Reaction ~ Days + diag(file.create('{p}'))",
]


@pytest.mark.parametrize("template", ATTACKS)
def test_code_through_covariance_terms_is_refused(sleepstudy, tmp_path, template):
    target = tmp_path / "ran"
    formula = template.format(p=target)
    with pytest.raises(UnsafeFormulaError):
        lmermagic.lmer(formula, sleepstudy)
    assert not target.exists()
    # R stays usable
    m = lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy)
    assert m.coefs.loc["Days", "estimate"] == pytest.approx(10.467286, rel=1e-6)


# Well-meant terms lme4 would not read as written: refused with what is wrong
# (a FormulaError, not an UnsafeFormulaError), on every lme4, before R fits.
@pytest.mark.parametrize("term, match", [
    ("cs(1 + Days | Subject, hom = T)", "hom takes TRUE or FALSE"),
    ("cs(1 + Days | Subject, hom = 1)", "hom takes TRUE or FALSE"),
    ("cs(1 + Days | Subject, hom = 'TRUE')", "hom takes TRUE or FALSE"),
    ("cs(1 + Days | Subject, hom = NA)", "hom takes TRUE or FALSE"),
    ("ar1(1 + Days | Subject, hom = c(TRUE))", "hom takes TRUE or FALSE"),
    ("diag(1 + Days | Subject, hom = Days)", "hom takes TRUE or FALSE"),
    ("us(1 + Days | Subject, hom = TRUE)", "us\\(\\) takes the random-effects term only"),
    ("cs(1 + Days | Subject, TRUE)", "optionally hom = TRUE"),
    ("cs(1 + Days | Subject, ho = TRUE)", "optionally hom = TRUE"),
    ("cs(1 + Days | Subject, hom = TRUE, hom = FALSE)", "optionally hom = TRUE"),
    ("cs(formula = 1 + Days | Subject)", "comes first and unnamed"),
    ("diag(Days || Subject)", "one bar"),
    ("(cs(1 | Subject))", "must be a term of the formula's sum"),
])
def test_malformed_covariance_terms(sleepstudy, term, match):
    with pytest.raises(FormulaError, match=match) as err:
        lmermagic.lmer(f"Reaction ~ Days + {term}", sleepstudy)
    assert not isinstance(err.value, UnsafeFormulaError)


def test_covariance_term_outside_the_sum(sleepstudy):
    for formula in ("Reaction ~ Days * cs(1 | Subject)", "cs(1 | Subject) ~ Days",
                    "Reaction ~ log(cs(1 | Subject))"):
        with pytest.raises(FormulaError, match="must be a term of the formula's sum") as err:
            lmermagic.lmer(formula, sleepstudy)
        assert not isinstance(err.value, UnsafeFormulaError)


WELL_FORMED = [
    "Reaction ~ Days + us(Days | Subject)",
    "Reaction ~ Days + diag(Days | Subject)",
    "Reaction ~ Days + diag(Days | Subject, hom = TRUE)",
    "Reaction ~ Days + cs(1 + Days | Subject)",
    "Reaction ~ Days + cs(1 + Days | Subject, hom = TRUE)",
    "Reaction ~ Days + ar1(0 + Daysf | Subject)",
    "Reaction ~ Days + ar1(0 + Daysf | Subject, hom = FALSE)",
]


@pytest.fixture(scope="module")
def ss(sleepstudy) -> pd.DataFrame:
    """sleepstudy with the day as an ordered factor (ar1's time points)."""
    out = sleepstudy.copy()
    out["Daysf"] = pd.Categorical(out["Days"], ordered=True)
    return out


@only_1x
@pytest.mark.parametrize("formula", WELL_FORMED)
def test_old_lme4_names_the_version_needed(ss, rref, formula):
    before = ss.copy()
    with pytest.raises(FormulaError, match=r"needs lme4 >= 2\.0 \(this R has lme4 1\.") as err:
        lmermagic.lmer(formula, ss)
    assert not isinstance(err.value, UnsafeFormulaError)
    assert rref('utils::packageDescription("lme4")$Version')[0] in str(err.value)
    pd.testing.assert_frame_equal(ss, before)



# -- lme4 2.x: the tables against lmerTest, lme4 and broom.mixed, live ---------

R_DATA = """
ss <- lme4::sleepstudy
ss$Daysf <- factor(ss$Days, ordered = TRUE)
lt <- suppressMessages(lmerTest::lmer({formula}, data = ss))
"""


def _na(values: list[str | None]) -> list[str | None]:
    return [None if v is None or v == "NA" else v for v in values]


@only_2x
@pytest.mark.parametrize("formula", WELL_FORMED)
def test_fits_match_lmertest(ss, rref, formula):
    before = ss.copy()
    m = lmermagic.lmer(formula, ss)
    pd.testing.assert_frame_equal(ss, before)
    ref = rref(R_DATA.format(formula=formula) + """
        co <- summary(lt)$coefficients
        vc <- as.data.frame(lme4::VarCorr(lt))
        list(terms = rownames(co), est = unname(co[, 1]), se = unname(co[, 2]),
             df = unname(co[, "df"]), p = unname(co[, "Pr(>|t|)"]),
             grp = vc$grp, var1 = vc$var1, var2 = vc$var2, vcov = vc$vcov, sdcor = vc$sdcor)
    """)
    assert list(m.coefs.index) == ref["terms"]
    np.testing.assert_allclose(m.coefs["estimate"], ref["est"], rtol=1e-8)
    np.testing.assert_allclose(m.coefs["std_error"], ref["se"], rtol=1e-6)
    # lmermagic's engine (in lme4's own parameters for cs/ar1) vs lmerTest's numDeriv
    assert m.meta["satterthwaite"] == "lmermagic", m.meta
    # lmerTest's numDeriv is itself off by up to 3.3e-5 on ar1() (measured on lme4
    # 2.1-0: its df 32.330736 where converged differences give 32.331790, as
    # does the engine; test_satterthwaite_engine_in_lme4s_parameters)
    np.testing.assert_allclose(m.coefs["df"], ref["df"], rtol=1e-4,
                               err_msg=f"df {list(m.coefs['df'])} vs lmerTest {ref['df']}")
    np.testing.assert_allclose(m.coefs["p_value"], ref["p"], rtol=1e-3)
    vc = m.varcorr
    assert list(vc.columns) == ["group", "var1", "var2", "vcov", "sdcor"]
    assert vc["group"].tolist() == ref["grp"]
    assert _na([None if pd.isna(v) else v for v in vc["var1"]]) == _na(ref["var1"])
    assert _na([None if pd.isna(v) else v for v in vc["var2"]]) == _na(ref["var2"])
    np.testing.assert_allclose(vc["vcov"], ref["vcov"], rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(vc["sdcor"], ref["sdcor"], rtol=1e-6, atol=1e-10)


@only_2x
@pytest.mark.parametrize("formula", WELL_FORMED)
def test_tidy_ran_pars_in_lower_triangle_order(ss, rref, formula):
    """ran_pars per group: sd of the first term, its correlations with the later
    terms, the next sd, ... (docs/schema.md), then the residual sd; values from
    R's VarCorr matrices, and the same rows as broom.mixed's where installed."""
    m = lmermagic.lmer(formula, ss)
    ref = rref(R_DATA.format(formula=formula) + """
        vc <- lme4::VarCorr(lt)
        rows <- list(group = character(), term = character(), estimate = numeric())
        for (g in names(vc)) {
            sd <- attr(vc[[g]], "stddev"); cr <- attr(vc[[g]], "correlation")
            nm <- names(sd)
            for (j in seq_along(nm)) {
                rows$group <- c(rows$group, g); rows$term <- c(rows$term, paste0("sd__", nm[j]))
                rows$estimate <- c(rows$estimate, sd[[j]])
                for (k in seq_along(nm)[-seq_len(j)]) {
                    rows$group <- c(rows$group, g)
                    rows$term <- c(rows$term, paste0("cor__", nm[j], ".", nm[k]))
                    rows$estimate <- c(rows$estimate, cr[j, k])
                }
            }
        }
        rows$group <- c(rows$group, "Residual"); rows$term <- c(rows$term, "sd__Observation")
        rows$estimate <- c(rows$estimate, stats::sigma(lt))
        bm <- if (nzchar(system.file(package = "broom.mixed"))) {
            b <- as.data.frame(broom.mixed::tidy(lt, effects = "ran_pars"))
            list(group = b$group, term = b$term, estimate = b$estimate)
        }
        list(rows = rows, bm = bm)
    """)
    rp = m.tidy(effects="ran_pars")
    assert rp["group"].tolist() == ref["rows"]["group"]
    assert rp["term"].tolist() == ref["rows"]["term"]
    np.testing.assert_allclose(rp["estimate"], ref["rows"]["estimate"], rtol=1e-6, atol=1e-10)
    if ref["bm"] is not None:
        ours = dict(zip(zip(rp["group"], rp["term"]), rp["estimate"]))
        theirs = dict(zip(zip(ref["bm"]["group"], ref["bm"]["term"]), ref["bm"]["estimate"]))
        assert set(ours) == set(theirs)
        for key, value in theirs.items():
            assert ours[key] == pytest.approx(value, rel=1e-6, abs=1e-10), key


@only_2x
@pytest.mark.parametrize("formula", WELL_FORMED)
def test_confint_rows(ss, rref, formula):
    """Wald rows: lme4's parameters (a structured term's own: sd_*|g for one
    shared sd, cor_rho|g), estimates that are the fit's, lme4's limits."""
    m = lmermagic.lmer(formula, ss)
    ci = m.confint(method="wald")
    ref = rref(R_DATA.format(formula=formula) + """
        w <- confint(lt, method = "Wald")
        nm <- lme4:::profnames(lt, FALSE)
        list(rows = rownames(w), low = unname(w[, 1]), high = unname(w[, 2]),
             readable = nm[!is.na(nm)], sigma = stats::sigma(lt),
             fixef = unname(lme4::fixef(lt)))
    """)
    assert list(ci.columns) == ["parameter", "estimate", "conf_low", "conf_high"]
    assert sorted(ci.index) == sorted(ref["rows"])
    for row, low, high in zip(ref["rows"], ref["low"], ref["high"]):
        got = ci.loc[row]
        np.testing.assert_allclose([got["conf_low"], got["conf_high"]], [low, high],
                                   rtol=1e-7, err_msg=row)  # NaN == NaN here
    # lme4's readable names (lme4 2.1-0 puts an NA among a homogeneous term's)
    assert sorted(ci["parameter"].iloc[:len(ref["readable"])]) == sorted(ref["readable"])
    by_name = ci.set_index("parameter")
    vc = m.varcorr
    sub = vc[vc["group"] == "Subject"]
    sds = sub[sub["var2"].isna()].set_index("var1")["sdcor"]
    cors = sub[sub["var2"].notna()]
    for name, est in by_name["estimate"].iloc[:len(ref["readable"])].items():
        if name == "sigma":
            assert est == pytest.approx(ref["sigma"], rel=1e-8)
        elif name.startswith("sd_*|"):
            np.testing.assert_allclose(sds, est, rtol=1e-6)
        elif name.startswith("sd_"):
            assert est == pytest.approx(sds[name[3:].split("|")[0]], rel=1e-6)
        elif name == "cor_rho|Subject":
            if "ar1(" in formula:
                # ar1: adjacent time points correlate rho (the next rho^2, ...)
                lv = list(sds.index)
                pair = cors[(cors["var1"] == lv[0]) & (cors["var2"] == lv[1])]["sdcor"]
                assert est == pytest.approx(float(pair.iloc[0]), rel=1e-6)
            else:  # cs: every pair correlates rho
                np.testing.assert_allclose(cors["sdcor"], est, rtol=1e-6)
        elif name.startswith("cor_"):
            a, b = name[4:].split("|")[0].split(".", 1)
            row = cors[((cors["var1"] == b) & (cors["var2"] == a)) |
                       ((cors["var1"] == a) & (cors["var2"] == b))]
            assert est == pytest.approx(float(row["sdcor"].iloc[0]), rel=1e-6, abs=1e-10)
    np.testing.assert_allclose(m.coefs["estimate"], ref["fixef"], rtol=1e-8)


@only_2x
@pytest.mark.parametrize("formula", [WELL_FORMED[2], WELL_FORMED[3], WELL_FORMED[4]])
def test_profile_confint_of_a_structured_term(ss, rref, formula):
    """lme4's own profile intervals, row for row; where lme4 itself cannot
    profile the model, lmermagic says so (FitError) rather than guess."""
    m = lmermagic.lmer(formula, ss)
    ref = rref(R_DATA.format(formula=formula) + """
        p <- tryCatch(confint(lt, method = "profile", quiet = TRUE),
                      error = function(e) conditionMessage(e))
        if (is.character(p)) list(error = p)
        else list(rows = rownames(p), low = unname(p[, 1]), high = unname(p[, 2]))
    """)
    if "error" in ref:
        with pytest.raises(lmermagic.FitError):
            m.confint(method="profile")
        return
    ci = m.confint(method="profile")
    assert sorted(ci.index) == sorted(ref["rows"])
    np.testing.assert_allclose(ci.loc[ref["rows"], "conf_low"], ref["low"], rtol=1e-5)
    np.testing.assert_allclose(ci.loc[ref["rows"], "conf_high"], ref["high"], rtol=1e-5)


SAT = """
sat <- new.env(parent = baseenv())
for (f in list.files({path!r}, pattern = "[.]R$", full.names = TRUE)) sys.source(f, envir = sat)
"""


@only_2x
@pytest.mark.parametrize("formula", [WELL_FORMED[4], WELL_FORMED[5]])
def test_satterthwaite_engine_in_lme4s_parameters(rref, formula):
    """cs()/ar1(): lme4 2.x optimises over par = (sd, rho); theta (the Cholesky
    factor's entries) is a function of it. The engine differentiates in par:
    it agrees with converged differences of lmerTest's own deviance
    (numDeriv at d = 0.01, where lmerTest's default d = 1e-4 is off by up to
    3e-5 on ar1) and with lmerTest; the fallback is lmerTest's numbers
    exactly; differences in theta itself (the engine before this change)
    leave the model's constraint: other df, or an error."""
    path = str(Path(lmermagic.__file__).parent / "R")
    res = rref(R_DATA.format(formula=formula) + SAT.format(path=path) + """
        fit <- sat$lmm_compat_as_lmerMod(lt)
        q <- function(x) suppressWarnings(suppressMessages(x))
        eng <- q(sat$lmm_satterthwaite(fit))
        fb <- q(sat$lmm_satterthwaite(fit, force_fallback = TRUE))
        devfun <- lmerTest::lmer(FORMULA, data = ss, devFunOnly = TRUE)
        vp <- lmerTest:::getVarPar(lt)
        V <- as.matrix(vcov(lt))
        ma <- list(d = 0.01, r = 4)
        h <- numDeriv::hessian(lmerTest:::devfun_vp, vp, devfun = devfun, reml = TRUE,
                               method.args = ma)
        J <- numDeriv::jacobian(lmerTest:::get_covbeta, vp, devfun = devfun, method.args = ma)
        A <- 2 * solve(h)
        p <- ncol(V)
        conv <- vapply(seq_len(p), function(i) {
            g <- J[(i - 1) * p + i, ]
            2 * V[i, i]^2 / sum(g * (A %*% g))
        }, 0)
        sat$lmm_compat_par_map <- function(fit) NULL
        raw <- tryCatch(unname(q(sat$lmm_satterthwaite(fit))$df), error = function(e) NA_real_)
        list(ref = unname(summary(lt)$coefficients[, "df"]), eng = unname(eng$df),
             fb = unname(fb$df), conv = conv, raw = raw, method = eng$method,
             npar = length(eng$varpar), ntheta = length(fit@theta))
    """.replace("FORMULA", formula))
    assert res["method"] == ["lmermagic"]
    assert res["npar"][0] == 3 and res["ntheta"][0] > 2  # sd, rho, sigma
    np.testing.assert_allclose(res["eng"], res["conv"], rtol=1e-6)
    np.testing.assert_allclose(res["eng"], res["ref"], rtol=1e-4)
    np.testing.assert_allclose(res["fb"], res["ref"], rtol=1e-9)
    raw = np.asarray(res["raw"], dtype=float)
    assert np.isnan(raw).any() or np.max(np.abs(raw / res["ref"] - 1)) > 1e-3, raw


def test_magic_with_a_covariance_term(shell, ss):
    """The magic hands the term (and its hom = TRUE) to the same check: a fit on
    lme4 2.x, the error naming the lme4 needed on lme4 1.1."""
    from conftest import run_cell

    shell.user_ns["ss"] = ss
    cell = "%lmer -d ss Reaction ~ Days + cs(1 + Days | Subject, hom = TRUE)"
    if _lme4_2x():
        m = run_cell(shell, cell)
        assert m.coefs.loc["Days", "estimate"] == pytest.approx(10.467286, rel=1e-6)
    else:
        with pytest.raises(FormulaError, match=r"needs lme4 >= 2\.0"):
            run_cell(shell, cell)


@only_2x
def test_disk_cache_keeps_a_structured_fit(ss, tmp_path):
    """A fit with cs() comes back from the disk cache with its structure (the
    stored formula's cs() call is known to the cache's check, and the fit's
    covariance classes travel with it): the same tables, no refit."""
    import warnings

    formula = "Reaction ~ Days + cs(1 + Days | Subject, hom = TRUE)"
    d = tmp_path / "fits"
    lmermagic.clear_cache()  # earlier tests fitted it: a memory hit would not be stored
    first = lmermagic.lmer(formula, ss, cache_dir=d)
    assert first.meta["cache"] == "miss"
    ci_first = first.confint(method="wald")
    lmermagic.clear_cache()  # memory only
    with warnings.catch_warnings():
        warnings.simplefilter("error", lmermagic.CacheWarning)
        again = lmermagic.lmer(formula, ss, cache_dir=d)
    assert again.meta["cache"] == "disk"
    pd.testing.assert_frame_equal(again.coefs, first.coefs)
    pd.testing.assert_frame_equal(again.varcorr, first.varcorr)
    pd.testing.assert_frame_equal(again.confint(method="wald"), ci_first)
