"""Bad input ends in a clear LmerError; nothing is lost: data, R's state, next fit."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic.rbridge import get_r


def r_state(rref):
    return rref("""list(globals = sort(ls(globalenv(), all.names = TRUE)),
                         search = search(),
                         opts = c(getOption("contrasts"), getOption("na.action"),
                                  as.character(getOption("warn"))))""")


@pytest.mark.parametrize("formula, error, match", [
    ("Reaction ~ Days + (1 | Subjct)", lmermagic.FormulaError, "Did you mean 'Subject'"),
    ("Reaction ~ ", lmermagic.FormulaError, "cannot parse"),
    ("Reaction + Days", lmermagic.FormulaError, "lhs ~ rhs"),
    ("Reaction ~ Days; system('touch /tmp/lmermagic-pwned')", lmermagic.FormulaError,
     "one expression"),
    ("Reaction ~ system('touch /tmp/lmermagic-pwned') + (1 | Subject)",
     lmermagic.UnsafeFormulaError, "system\\(\\)"),
    ("{system('touch /tmp/lmermagic-pwned'); Reaction} ~ Days + (1 | Subject)",
     lmermagic.UnsafeFormulaError, "`\\{`"),
    ("Reaction ~ base::system('touch /tmp/lmermagic-pwned') + (1 | Subject)",
     lmermagic.UnsafeFormulaError, "base::system"),
    ("Reaction ~ Days + (1 | eval(parse(text = 'Subject')))",
     lmermagic.UnsafeFormulaError, "eval\\(\\)"),
    ("Reaction ~ Days + (function(x) x)(Days) + (1 | Subject)",
     lmermagic.UnsafeFormulaError, "function"),
    ("Reaction ~ Days + T.global + (1 | Subject)", lmermagic.FormulaError, "not a column"),
])
def test_formula_errors(sleepstudy, rref, formula, error, match):
    before = r_state(rref)
    with pytest.raises(error, match=match):
        lmermagic.lmer(formula, sleepstudy)
    assert r_state(rref) == before
    import os
    assert not os.path.exists("/tmp/lmermagic-pwned")


def test_name_from_r_global_env_is_not_used(sleepstudy, rref):
    rref("assign('Hidden', 1:180, envir = globalenv())")
    try:
        with pytest.raises(lmermagic.FormulaError, match="'Hidden' is not a column"):
            lmermagic.lmer("Reaction ~ Hidden + (1 | Subject)", sleepstudy)
    finally:
        rref("rm('Hidden', envir = globalenv())")


def test_data_must_be_a_frame():
    with pytest.raises(lmermagic.DataError, match="not a DataFrame"):
        lmermagic.lmer("y ~ x + (1 | g)", {"y": [1, 2]})


def test_r_error_during_fit_is_reported_and_next_fit_works(sleepstudy):
    with pytest.raises(lmermagic.FitError) as info:
        lmermagic.glmer("Reaction ~ Days + (1 | Subject)", sleepstudy, family="binomial")
    assert "y values must be 0 <= y <= 1" in info.value.r_message
    assert "y values must be 0 <= y <= 1" in str(info.value)
    m = lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy)
    assert m.nobs == 180


def test_state_after_fits_is_unchanged(sleepstudy, cbpp, rref):
    before = r_state(rref)
    lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    lmermagic.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
    with pytest.raises(lmermagic.LmerError):
        lmermagic.lmer("Reaction ~ Days + (1 | Nope)", sleepstudy)
    assert r_state(rref) == before


def test_user_options_do_not_change_results_and_are_restored(dietox, rref):
    ref = lmermagic.lmer("Weight ~ Time + Evit + (1 | Pig)", dietox)
    rref("options(contrasts = c('contr.sum', 'contr.poly'), na.action = 'na.fail', warn = 2)")
    try:
        m = lmermagic.lmer("Weight ~ Time + Evit + (1 | Pig)", dietox)
        assert rref("getOption('contrasts')") == ["contr.sum", "contr.poly"]
        assert rref("getOption('na.action')") == ["na.fail"]
    finally:
        rref("options(contrasts = c(unordered = 'contr.treatment', ordered = 'contr.poly'),"
             " na.action = 'na.omit', warn = 0)")
    pd.testing.assert_frame_equal(m.coefs, ref.coefs)


def test_singular_fit_warns_and_says_so(rref):
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"y": rng.normal(size=60), "g": np.repeat(list("abcdef"), 10)})
    with pytest.warns(lmermagic.SingularFitWarning, match="singular"):
        m = lmermagic.lmer("y ~ 1 + (1 | g)", df)
    assert m.singular
    assert any("singular" in w for w in m.warnings)


def test_warnings_point_at_the_callers_line():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"y": rng.normal(size=60), "g": np.repeat(list("abcdef"), 10)})
    with pytest.warns(lmermagic.SingularFitWarning) as record:
        line = sys._getframe().f_lineno + 1
        lmermagic.lmer("y ~ 1 + (1 | g)", df)
    assert (record[0].filename, record[0].lineno) == (__file__, line)


def test_warnings_are_not_printed_raw(capfd, sleepstudy):
    df = sleepstudy.assign(Days=sleepstudy["Days"] * 1e6)
    with pytest.warns(lmermagic.LmerWarning):
        lmermagic.lmer("Reaction ~ Days + (Days | Subject)", df)
    out, err = capfd.readouterr()
    assert "Warning" not in out and "R[write to console]" not in err


def test_six_threads_get_the_serial_results(sleepstudy, dietox):
    from concurrent.futures import ThreadPoolExecutor

    jobs = [("Reaction ~ Days + (Days | Subject)", sleepstudy),
            ("Weight ~ Time + Evit + (1 + Time | Pig)", dietox)] * 15
    serial = [lmermagic.lmer(f, d).coefs for f, d in jobs[:2]]

    def work(i):
        formula, data = jobs[i]
        m = lmermagic.lmer(formula, data)
        m.summary()  # a second R call on the kept model
        return i, m.coefs  # the model itself is dropped here, in this thread

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(work, range(len(jobs))))
    for i, coefs in results:
        pd.testing.assert_frame_equal(coefs, serial[i % 2])


def test_missing_r_package_message():
    r = get_r()
    with pytest.raises(lmermagic.RPackageMissingError, match="apt-get install r-cran-"):
        saved = r.versions["emmeans"]
        r.versions["emmeans"] = None
        try:
            r.require("emmeans")
        finally:
            r.versions["emmeans"] = saved


def test_import_starts_no_r():
    code = ("import sys, lmermagic; "
            "print(any(m.startswith('rpy2') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


def test_doctor_reports_versions():
    proc = subprocess.run([sys.executable, "-m", "lmermagic", "doctor"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("rpy2", "R ", "lme4", "lmerTest", "numDeriv", "pbkrtest"):
        assert name in proc.stdout
    assert "all required packages present" in proc.stdout


def test_public_api():
    for name in lmermagic.__all__:
        assert hasattr(lmermagic, name), name
    assert issubclass(lmermagic.FormulaError, ValueError)
    assert issubclass(lmermagic.RPackageMissingError, ImportError)
    assert issubclass(lmermagic.FitError, RuntimeError)
    assert issubclass(lmermagic.SingularFitWarning, lmermagic.LmerWarning)


def test_allowlist_names_exist_in_r(rref):
    for pkg, names in lmermagic.ALLOWED_FUNCTIONS.items():
        missing = rref(f"""ns <- asNamespace("{pkg}")
            n <- c({", ".join(repr(n) for n in names)})
            n[!vapply(n, function(x) is.function(get0(x, envir = ns)), TRUE)]""")
        assert missing == [], (pkg, missing)


@pytest.mark.parametrize("make, formula, match", [
    (lambda d: d.assign(Reaction=np.nan), "Reaction ~ Days + (1 | Subject)",
     "no complete rows.*Reaction 180"),
    (lambda d: d.assign(resp=np.where(d.Days > 4, "hi", "lo")), "resp ~ Days + (1 | Subject)",
     "response 'resp' is a factor.*glmer"),
    (lambda d: d.assign(g="one"), "Reaction ~ Days + (1 | g)",
     "grouping factor 'g' has only one level"),
    (lambda d: d.assign(obs=[f"o{i}" for i in range(len(d))]), "Reaction ~ Days + (1 | obs)",
     "one observation per level \\(180 levels, 180 rows\\)"),
    (lambda d: d.assign(Days=d.Days.where(d.Days != 3, np.inf)),
     "Reaction ~ Days + (1 | Subject)", "infinite values"),
])
def test_preflight_messages_in_plain_words(sleepstudy, make, formula, match):
    df = make(sleepstudy)
    with pytest.raises(lmermagic.DataError, match=match):
        lmermagic.lmer(formula, df)


def test_observation_level_random_effect_is_fine_for_glmer(cbpp):
    df = cbpp.assign(obs=[f"o{i}" for i in range(len(cbpp))])
    g = lmermagic.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | obs)",
                        df)
    assert g.ngroups["obs"] == len(cbpp)


def test_missing_values_are_reported_by_column(sleepstudy):
    df = sleepstudy.copy()
    df.loc[[0, 1], "Reaction"] = np.nan
    df["Days"] = df["Days"].astype("Float64")
    df.loc[5, "Days"] = pd.NA
    m = lmermagic.lmer("Reaction ~ Days + (1 | Subject)", df)
    assert m.missing == {"Reaction": 2, "Days": 1}
    assert list(m.dropped) == [0, 1, 5]
    assert "3 rows dropped" in m._repr_html_()


def test_search_path_and_global_env_untouched_by_fresh_start():
    code = """
import lmermagic, rpy2.robjects as ro
d = lmermagic.datasets.load("sleepstudy")
lmermagic.lmer("Reaction ~ Days + (Days | Subject)", d)
lmermagic.lmer("Reaction ~ Days + (Days | Subject)", d, ddf="kenward-roger")
print(list(ro.r("search()")), list(ro.r("ls(globalenv(), all.names = TRUE)")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "package:lme4" not in out and "package:lmerTest" not in out
    assert out.strip().endswith("[]")


def test_docs_list_the_whole_allowlist():
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "reliability.md").read_text()
    for names in lmermagic.ALLOWED_FUNCTIONS.values():
        for name in names:
            assert f"`{name}`" in text, name


def test_load_ext_imports_neither_r_nor_pandas():
    code = ("import sys; from IPython.core.interactiveshell import InteractiveShell; "
            "sh = InteractiveShell.instance(); sh.run_line_magic('load_ext', 'lmermagic'); "
            "print(sorted(m for m in ('rpy2', 'pandas', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_the_first_fit_loads_only_what_it_needs():
    # Satterthwaite df are lmermagic's own: lmerTest, pbkrtest and emmeans load
    # when a call needs them, not with the first fit.
    code = ("import lmermagic; from lmermagic.rbridge import get_r\n"
            "m = lmermagic.lmer('Reaction ~ Days + (Days | Subject)', "
            "lmermagic.datasets.load('sleepstudy'))\n"
            "loaded = set(get_r().run('lmm_loaded_namespaces'))\n"
            "print(sorted(loaded & {'lme4', 'lmerTest', 'pbkrtest', 'emmeans'}), "
            "m.coefs['df'].notna().all())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "['lme4'] True"
