"""The magics through a real IPython InteractiveShell."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic.magics import split_options, strip_comments


@pytest.fixture()
def ns(shell, dietox, sleepstudy, cbpp):
    shell.user_ns.update(dietox=dietox, sleep=sleepstudy, cbpp=cbpp)
    return shell.user_ns


def run(shell, cell):
    result = shell.run_cell(cell, store_history=False)
    if result.error_before_exec is not None:
        raise result.error_before_exec
    if result.error_in_exec is not None:
        raise result.error_in_exec
    return result.result


def test_line_magic_stores_and_returns(shell, ns, rref):
    out = run(shell, "%lmer -d dietox -o m  Weight ~ Time + (1 + Time | Pig)")
    m = ns["m"]
    assert out is m and isinstance(m, lmermagic.LmerModel)
    assert m.data_name == "dietox"
    ref = np.asarray(rref("""e <- new.env(); utils::data("dietox", package = "geepack",
        envir = e); lme4::fixef(lme4::lmer(Weight ~ Time + (1 + Time | Pig), e$dietox))"""))
    np.testing.assert_allclose(m.fixef, ref, rtol=1e-8)


def test_assignment_and_quiet(shell, ns):
    run(shell, "m2 = %lmer -d sleep Reaction ~ Days + (Days | Subject)")
    assert isinstance(ns["m2"], lmermagic.LmerModel)
    assert run(shell, "%lmer -q -d sleep --coefs tab Reaction ~ Days + (1 | Subject)") is None
    assert list(ns["tab"].columns) == ["estimate", "std_error", "df", "statistic",
                                       "p_value", "conf_low", "conf_high"]


def test_line_comment_and_semicolon_are_not_formula(shell, ns):
    run(shell, "%lmer -d sleep -o mx Reaction ~ Days + (1 | Subject)   # a note;")
    assert ns["mx"].formula == "Reaction ~ Days + (1 | Subject)"
    out = shell.run_cell("%lmer -d sleep -o my Reaction ~ Days + (1 | Subject);",
                         store_history=False)
    assert out.success and ns["my"].formula == "Reaction ~ Days + (1 | Subject)"


def test_store_tables(shell, ns):
    run(shell, "%lmer -q -d sleep --ranef re --varcorr vc --coefs cf "
               "Reaction ~ Days + (Days | Subject)")
    assert set(ns["re"]) == {"Subject"}
    assert list(ns["vc"].columns) == ["group", "var1", "var2", "vcov", "sdcor"]
    assert ns["cf"].index.tolist() == ["(Intercept)", "Days"]


def test_cell_magic_with_comments_and_ml(shell, ns):
    run(shell, "%%lmer -d dietox --ml -o mc\n"
               "Weight ~ Time +   # growth per week\n"
               "   (1 + Time | Pig)  # pig-specific curves\n")
    ref = lmermagic.lmer("Weight ~ Time + (1 + Time | Pig)", ns["dietox"], reml=False)
    assert ns["mc"].reml is False
    assert ns["mc"].loglik == pytest.approx(ref.loglik, rel=1e-12)


def test_factors_option_and_expression_data(shell, ns):
    run(shell, "%lmer -d 'dietox[dietox.Time > 2]' --factors Evit -o mf "
               "Weight ~ Time + Evit + (1 | Pig)")
    assert "EvitEvit100" in ns["mf"].coefs.index
    assert ns["mf"].nobs == int((ns["dietox"].Time > 2).sum())


def test_glmer_magics(shell, ns, rref):
    # R's numbers for this lme4 (lme4 2.x's glmer differs from 1.1's in the 5th digit).
    ref = rref("""m <- lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                   data = lme4::cbpp, family = binomial)
                  c(AIC(m), as.numeric(logLik(m)))""")
    run(shell, "%glmer -d cbpp -o g cbind(incidence, size - incidence) ~ period + (1 | herd)")
    assert ns["g"].aic == pytest.approx(ref[0], rel=1e-9)
    run(shell, "%lmer -d cbpp --family binomial -o g2 "
               "cbind(incidence, size - incidence) ~ period + (1 | herd)")
    assert ns["g2"].kind == "glmer"
    run(shell, "%%glmer -d cbpp -o g3\ncbind(incidence, size - incidence) ~ period + (1 | herd)")
    assert ns["g3"].loglik == pytest.approx(ref[1], rel=1e-9)
    # FINDINGS' reference (lme4 1.1-31) within the 5th-digit drift of later lme4.
    assert ns["g3"].loglik == pytest.approx(-92.0266, abs=2e-3)


def test_warnings_point_at_the_cell(shell, ns):
    rng = np.random.default_rng(1)
    ns["flat"] = pd.DataFrame({"y": rng.normal(size=60), "g": np.repeat(list("abcdef"), 10)})
    with pytest.warns(lmermagic.SingularFitWarning) as record:
        run(shell, "x = 1\n%lmer -d flat -q y ~ 1 + (1 | g)")
    # The cell's own line, not lmermagic's or IPython's code.
    assert "lmermagic" not in record[0].filename and "IPython" not in record[0].filename
    assert record[0].lineno == 2


def test_no_variable_expansion(shell, ns):
    # IPython would expand {..} and $x; the magic must see the text as written.
    ns["x"] = "Days"
    with pytest.raises(lmermagic.UnsafeFormulaError):
        run(shell, "%lmer -d sleep Reaction ~ {x} + (1 | Subject)")
    with pytest.raises(lmermagic.FormulaError, match=r"'\$x'|parse"):
        run(shell, "%lmer -d sleep Reaction ~ $x + (1 | Subject)")


@pytest.mark.parametrize("cell, match", [
    ("%lmer -d sleeep Reaction ~ Days + (1 | Subject)", "Did you mean 'sleep'"),
    ("%lmer Reaction ~ Days + (1 | Subject)", "-d/--data is required"),
    ("%lmer -d sleep", "no formula"),
    ("%lmer -d sleep Reaction ~ Dayz + (1 | Subject)", "'Dayz' is not a column of 'sleep'"),
    ("%lmer -d sleep --ddf fast Reaction ~ Days + (1 | Subject)", "not a df method"),
    ("%glmer -d cbpp --family quasi cbind(incidence, size) ~ period + (1 | herd)",
     "not supported"),
    ("%lmer -d 42 Reaction ~ Days", "not a DataFrame"),
    # an option after the formula is formula text: said so, with the fix
    ("%lmer -d sleep Reaction ~ Days + (Days | Subject) --ml",
     "(?s)'ml' is not a column of 'sleep'.*--ml came after the formula.*options go before"),
    ("%lmer -d 'sleep[sleep.Days > 100]' Reaction ~ Days + (1 | Subject)",
     r"'sleep\[sleep.Days > 100\]' has no rows"),
])
def test_errors_are_one_clear_message(shell, ns, cell, match):
    with pytest.raises(lmermagic.LmerError, match=match) as info:
        run(shell, cell)
    rendered = info.value._render_traceback_()
    assert len(rendered) <= 3 and type(info.value).__name__ in rendered[0]
    # and the next fit works
    assert isinstance(run(shell, "%lmer -d sleep Reaction ~ Days + (1 | Subject)"),
                      lmermagic.LmerModel)


def test_help_is_complete(shell):
    doc = shell.find_line_magic("lmer").__doc__
    for text in ("%lmer", "%%lmer", "-d EXPR", "--ddf", "--factors", "Example", "-q"):
        assert text in doc
    assert "glmer" in shell.find_line_magic("glmer").__doc__


def test_html_card_via_display_formatter(shell, ns):
    m = run(shell, "%lmer -d sleep Reaction ~ Days + (Days | Subject)")
    data, _ = shell.display_formatter.format(m)
    assert "text/html" in data and "Fixed effects" in data["text/html"]
    assert "251.4" in data["text/html"]


@pytest.mark.parametrize("line, tokens, rest", [
    ("-d df y ~ x", ["-d", "df"], "y ~ x"),
    ("-d df -o m --ml y ~ x + (1|g)", ["-d", "df", "-o", "m", "--ml"], "y ~ x + (1|g)"),
    ("--data=df y ~ x - 1", ["--data=df"], "y ~ x - 1"),
    ("-d df -- -y ~ x", ["-d", "df"], "-y ~ x"),
    ('-d "df[df.a > 1]" y ~ x', ["-d", "df[df.a > 1]"], "y ~ x"),
    ("-d df y ~ relevel(f, ref = 'a  b')", ["-d", "df"], "y ~ relevel(f, ref = 'a  b')"),
    ("-d df", ["-d", "df"], ""),
    ("", [], ""),
])
def test_split_options(line, tokens, rest):
    from lmermagic.magics import LmerMagics

    got_tokens, got_rest = split_options(line, LmerMagics.lmer.parser)
    assert (got_tokens, got_rest) == (tokens, rest)


@pytest.mark.parametrize("text, out", [
    ("y ~ x  # comment\n + (1|g)", "y ~ x + (1|g)"),
    ("# only\ny ~ x", "y ~ x"),
    ("y ~ relevel(f, ref = '#1')", "y ~ relevel(f, ref = '#1')"),
    ("`size #` ~ x  # R's backticks hide a #", "`size #` ~ x"),
    ("\n\n", ""),
])
def test_strip_comments(text, out):
    assert strip_comments(text) == out


def test_frame_untouched_by_magic(shell, ns):
    before = ns["dietox"].copy(deep=True)
    run(shell, "%lmer -q -d dietox --factors Evit Weight ~ Time + Evit + (1 | Pig)")
    pd.testing.assert_frame_equal(ns["dietox"], before)


def test_contrasts_offset_and_optimizer_options(shell, ns, rref):
    run(shell, "%lmer -d dietox --contrasts Evit=sum --optimizer Nelder_Mead -o mcon "
               "Weight ~ Time + Evit + (1 | Pig)")
    ref = rref("""e <- new.env(); utils::data("dietox", package = "geepack", envir = e)
        d <- e$dietox
        m <- lmerTest::lmer(Weight ~ Time + Evit + (1 | Pig), d,
                            contrasts = list(Evit = "contr.sum"),
                            control = lme4::lmerControl(optimizer = "Nelder_Mead"))
        list(coef = coef(summary(m)), terms = rownames(coef(summary(m))))""")
    assert list(ns["mcon"].coefs.index) == ref["terms"] == ["(Intercept)", "Time", "Evit1",
                                                            "Evit2"]
    np.testing.assert_allclose(ns["mcon"].coefs[["estimate", "std_error", "df"]],
                               np.asarray(ref["coef"])[:, :3], rtol=1e-6)
    run(shell, "%lmer -d dietox --contrasts Evit=treatment:Evit200 -o mref "
               "Weight ~ Time + Evit + (1 | Pig)")
    assert "EvitEvit000" in ns["mref"].coefs.index


def test_config_traits(shell, ns):
    run(shell, "%config LmerMagics.timeout = 0.5")
    run(shell, "%config LmerMagics.allow = ['sinh']")
    try:
        m = run(shell, "%lmer -d sleep --timeout 0 Reaction ~ sinh(Days / 10) + (1 | Subject)")
        assert "sinh(Days/10)" in m.coefs.index
    finally:
        run(shell, "%config LmerMagics.timeout = 0.0")
        run(shell, "%config LmerMagics.allow = []")
    with pytest.raises(lmermagic.UnsafeFormulaError):
        run(shell, "%lmer -d sleep Reaction ~ sinh(Days) + (1 | Subject)")


def test_size_check_and_isolation_options(shell, ns):
    lmermagic.clear_cache()  # a fit already made is returned, whatever the size check says
    run(shell, "%config LmerMagics.max_memory_share = 1e-9")
    try:
        with pytest.raises(lmermagic.DesignTooLargeError, match="--allow-large"):
            run(shell, "%lmer -d sleep Reaction ~ Days + (1 | Subject)")
        m = run(shell, "%lmer -d sleep --allow-large Reaction ~ Days + (1 | Subject)")
        assert m.nobs == 180
    finally:
        run(shell, "%config LmerMagics.max_memory_share = 0.5")
    m = run(shell, "%lmer -d sleep --isolate --memory-limit 8 Reaction ~ Days + (1 | Subject)")
    assert m.meta["isolated"] and m.request.memory_limit == 8
    run(shell, "%config LmerMagics.isolate = True")
    try:
        assert run(shell, "%lmer -d sleep Reaction ~ Days + (1 | Subject)").meta["isolated"]
    finally:
        run(shell, "%config LmerMagics.isolate = False")
    assert "isolated" not in run(shell, "%lmer -d sleep Reaction ~ Days + (1 | Subject)").meta


def test_compare_cell_matches_r_anova(shell, ns, rref):
    table = run(shell, "%%lmer -d sleep --compare -o cmp\n"
                       "m_int = Reaction ~ Days + (1 | Subject)   # random intercept\n"
                       "Reaction ~ Days + (Days | Subject)\n")
    assert ns["cmp"] is table
    assert list(table.index) == ["m_int", "model2"]
    assert isinstance(ns["m_int"], lmermagic.LmerModel)
    ref = rref("""m0 <- lme4::lmer(Reaction ~ Days + (1 | Subject), lme4::sleepstudy)
        m1 <- lme4::lmer(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
        a <- anova(m0, m1)
        list(chisq = a$Chisq, p = a[["Pr(>Chisq)"]], aic = a$AIC, ll = a$logLik)""")
    np.testing.assert_allclose(table["aic"], ref["aic"], rtol=1e-8)
    np.testing.assert_allclose(table["loglik"], ref["ll"], rtol=1e-8)
    assert table["chisq"].iloc[1] == pytest.approx(ref["chisq"][1], rel=1e-6)
    assert table["p_value"].iloc[1] == pytest.approx(ref["p"][1], rel=1e-6)
    with pytest.raises(lmermagic.DataError, match="at least two"):
        run(shell, "%%lmer -d sleep --compare\nReaction ~ Days + (1 | Subject)\n")
