"""The adversarial round (issue 24): formulas, frames and options that crashed
the process, hung it, or gave a wrong answer without a word. Each test here
failed on the code before its fix."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic import rformula
from lmermagic.errors import ConversionError, DataError, FormulaError

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return lmermagic.datasets.load("sleepstudy")


def _wide(k: int, n: int = 200, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, k)), columns=[f"x{i}" for i in range(k)])
    df["g"] = np.repeat(np.arange(10), n // 10).astype(str)
    df["y"] = rng.normal(size=n)
    return df


def _run(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter: a crash there is a failed test here,
    not the end of the test run."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [
        HERE, os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=600, env=env, check=False)


# -- 1. a long formula ended the process (segmentation fault) -----------------

def test_long_formula_is_refused_not_a_crash() -> None:
    res = _run("""
        import numpy as np, pandas as pd, lmermagic
        rng = np.random.default_rng(1)
        df = pd.DataFrame(rng.normal(size=(200, 800)), columns=[f"x{i}" for i in range(800)])
        df["g"] = np.repeat(np.arange(10), 20).astype(str)
        df["y"] = rng.normal(size=200)
        f = "y ~ " + " + ".join(f"x{i}" for i in range(800)) + " + (1 | g)"
        for call in (lambda: lmermagic.lmer(f, df),
                     lambda: lmermagic.lmer(f, df, isolate=True),
                     lambda: lmermagic.lmer_many({"a": f}, df, workers=2)):
            try:
                call()
            except lmermagic.FormulaError as exc:
                print("refused:", exc)
        print(lmermagic.lmer("y ~ x0 + (1 | g)", df).nobs)
    """)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    assert sum("refused:" in ln and "nests 801 levels deep" in ln for ln in lines) == 3
    assert lines[-1] == "200"  # and R is usable afterwards


def test_r_recursion_overflow_is_an_error_in_any_thread() -> None:
    """Defence in depth: R's own recursion past the stack, with the Python
    check bypassed, is an R error in the main thread and in a thread with a
    1 MB stack, not a segmentation fault."""
    res = _run("""
        import threading
        from lmermagic.rbridge import get_r
        from lmermagic.errors import FitError
        r = get_r()
        cols = ["y"] + [f"x{i}" for i in range(3000)]
        f = "y ~ " + "+".join(cols[1:])
        def go():
            try:
                r.run("lmm_check_formula", f, cols, r.allowed(()), packed=True)
                print("no error")
            except FitError as exc:  # newer R may stop at another of its limits first
                print("error:", any(w in str(exc) for w in (
                    "C stack usage", "nested too deeply", "node stack overflow")))
        go()
        threading.stack_size(1 << 20)
        t = threading.Thread(target=go); t.start(); t.join()
        print(r.run("lmm_versions")["R"][0] != "")
    """)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["error:", "True", "error:", "True", "True"]


def test_formula_of_limit_size_fits() -> None:
    df = _wide(300, n=400)
    f = "y ~ " + " + ".join(f"x{i}" for i in range(300)) + " + (1 | g)"
    assert rformula.shape(f).depth <= rformula.MAX_DEPTH
    m = lmermagic.lmer(f, df)
    assert len(m.coefs) == 301


# -- 7. terms() on a high-order interaction could not be stopped ---------------

def test_high_order_interaction_refused_at_once() -> None:
    df = _wide(16)
    f = "y ~ " + " * ".join(f"x{i}" for i in range(16)) + " + (1 | g)"
    t0 = time.monotonic()
    # Before: R's terms() ran for about two minutes, past timeout=5.
    with pytest.raises(FormulaError, match="expands to 65,5"):
        lmermagic.lmer(f, df, timeout=5)
    assert time.monotonic() - t0 < 60  # a hang guard, not a speed claim


def test_update_that_would_expand_too_far_is_refused(sleep: pd.DataFrame) -> None:
    df = _wide(14)
    df["y"] += df["g"].astype(int)  # a real group effect: no singular fit
    m = lmermagic.lmer("y ~ x0 + (1 | g)", df)
    with pytest.raises(FormulaError, match=r"update\(\)'s formula is too large"):
        m.update(". ~ . * " + " * ".join(f"x{i}" for i in range(1, 14)))


@pytest.mark.parametrize(("text", "depth", "terms"), [
    ("y ~ x", 1, 2),
    ("y ~ a * b * c", 3, 8),
    ("y ~ (a + b + c)^2", 5, 8),
    ("y ~ a / b", 2, 3),
    ("y ~ a:b + (1 | g)", 4, 4),
    ("y ~ poly(x, 2) + I(x^2)", 4, 3),
    ("y ~ -1 + x", 3, 3),
    ("y ~ x %in% g", 2, 2),
    ("y ~ " + "*".join(f"x{i}" for i in range(13)), 13, 8192),
    ("y ~ " + "+".join(f"x{i}" for i in range(500)), 500, 501),
])
def test_shape(text: str, depth: int, terms: int) -> None:
    assert rformula.shape(text) == rformula.Shape(depth, terms)


@pytest.mark.parametrize("text", [
    "y ~ " + "(" * 600 + "x" + ")" * 600,   # deeper than Python's own recursion
    "y ~ x + ",                              # R's syntax error: conservative
    "y ~ x +\u2603+ z",                      # a character R does not know
])
def test_shape_is_conservative_on_what_it_cannot_follow(text: str) -> None:
    got = rformula.shape(text)
    assert got.depth >= text.count("(") and got.depth >= 3


# -- 4. NUL characters were cut on the way to R --------------------------------

def test_nul_in_group_labels(sleep: pd.DataFrame) -> None:
    df = sleep.copy()
    df["g"] = ["s\x00" + str(i % 10) for i in range(len(df))]  # 10 groups, not 1
    with pytest.raises(ConversionError, match=r"column 'g'.*NUL"):
        lmermagic.lmer("Reaction ~ Days + (1 | g)", df)


def test_nul_in_categories(sleep: pd.DataFrame) -> None:
    df = sleep.copy()
    df["dose"] = pd.Categorical(np.where(df.Days > 4, "dose\x00high", "dose\x00low"))
    with pytest.raises(ConversionError, match=r"column 'dose'.*NUL"):
        lmermagic.lmer("Reaction ~ dose + (1 | Subject)", df)


def test_nul_in_formula_and_names(sleep: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"formula contains a NUL character.*position 29"):
        lmermagic.lmer("Reaction ~ Days + (1|Subject)\x00 + b", sleep)
    df = sleep.rename(columns={"Days": "Da\x00ys"})
    with pytest.raises(ConversionError, match=r"column name 'Da\\x00ys'.*NUL"):
        lmermagic.lmer("Reaction ~ Reaction + (1|Subject)", df)
    with pytest.raises(DataError, match="NUL"):
        lmermagic.datasets.load("sleep\x00study")


# -- 9. a comment in a formula ----------------------------------------------

def test_comment_ends_at_its_line(sleep: pd.DataFrame, rref) -> None:
    # Before: the lines were joined first and the comment took '+ (1|Subject)'
    # with it; r_code() then wrote '# slope' into the middle of the call.
    m = lmermagic.lmer("Reaction ~ Days   # the slope\n + (1 | Subject)", sleep)
    assert "#" not in m.formula
    assert m.ngroups == {"Subject": 18}
    code = m.r_code()
    ok = rref(f"tryCatch({{ parse(text = {code!r}); TRUE }}, error = function(e) FALSE)")
    assert bool(ok[0])
    kept = lmermagic.lmer("Reaction ~ Days + (1 | Subject) # a 'quoted' note", sleep)
    assert kept.formula == "Reaction ~ Days + (1 | Subject)"
    tagged = sleep.assign(tag=np.where(sleep.Days > 4, "late#1", "early#2"))
    literal = lmermagic.lmer("Reaction ~ I(tag == 'late#1') + (1 | Subject)", tagged)
    assert "I(tag == 'late#1')" in literal.formula
    assert len(literal.coefs) == 2


# -- weak messages ------------------------------------------------------------

@pytest.mark.parametrize("formula", [b"Reaction ~ Days", ["Reaction ~ Days"], None, 3.0])
def test_formula_of_wrong_type(sleep: pd.DataFrame, formula: object) -> None:
    with pytest.raises(DataError, match=f"is a {type(formula).__name__}, not a string"):
        lmermagic.lmer(formula, sleep)  # type: ignore[arg-type]


def test_lone_surrogate_in_a_level(sleep: pd.DataFrame) -> None:
    df = sleep.copy()
    df["g"] = np.where(np.arange(len(df)) % 2, "s\ud800", "a")
    with pytest.raises(ConversionError, match=r"column 'g'.*not valid Unicode"):
        lmermagic.lmer("Reaction ~ Days + (1 | g)", df)


def test_very_long_column_name(sleep: pd.DataFrame) -> None:
    df = sleep.rename(columns={"Days": "d" * 9000})
    with pytest.raises(DataError, match="9,000 characters long"):
        lmermagic.lmer("Reaction ~ 1 + (1 | Subject)", df)


def test_more_columns_than_rows() -> None:
    df = _wide(40, n=30)
    f = "y ~ " + " + ".join(f"x{i}" for i in range(40)) + " + (1 | g)"
    with pytest.raises(DataError, match="41 columns but there are only 30 complete rows"):
        lmermagic.lmer(f, df)


@pytest.mark.parametrize("timeout", [float("nan"), -1.0, "soon"])
def test_bad_timeout(sleep: pd.DataFrame, timeout: object) -> None:
    with pytest.raises(DataError, match="timeout="):
        lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleep, timeout=timeout)


@pytest.mark.parametrize("name", [None, 3, ""])
def test_dataset_name_of_wrong_type(name: object) -> None:
    with pytest.raises(DataError, match=r"datasets.load\(\): name"):
        lmermagic.datasets.load(name)  # type: ignore[arg-type]


def test_refit_with_text(sleep: pd.DataFrame) -> None:
    m = lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleep)
    with pytest.raises(DataError, match="newresponse must hold numbers"):
        m.refit(["a"] * len(sleep))


def test_r_code_into_missing_directory(sleep: pd.DataFrame, tmp_path) -> None:
    m = lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleep)
    target = tmp_path / "missing" / "data.csv"
    with pytest.raises(DataError, match=f"the directory '{tmp_path / 'missing'}' does not"):
        m.r_code(target, write=True)


def test_polars_frames_that_cannot_cross(sleep: pd.DataFrame) -> None:
    pl = pytest.importorskip("polars")
    p = pl.DataFrame({"Reaction": sleep.Reaction.to_numpy(), "Days": sleep.Days.to_numpy(),
                      "Subject": sleep.Subject.astype(str).tolist()})
    with pytest.raises(DataError, match=r"LazyFrame.*collect\(\)"):
        lmermagic.lmer("Reaction ~ Days + (1 | Subject)", p.lazy())
    cases = {
        "d": (pl.lit(dt.date(2020, 1, 1)), "date values"),
        "dur": (pl.lit(dt.timedelta(days=1)), "timedelta values"),
        "b": (pl.lit(b"x"), "bytes values"),
        "tz": (pl.lit(dt.datetime(2020, 1, 1)).dt.replace_time_zone("UTC"), "time-zone-aware"),
    }
    for col, (value, words) in cases.items():
        frame = p.with_columns(value.alias(col))
        with pytest.raises(ConversionError, match=f"column '{col}'.*{words}"):
            lmermagic.lmer(f"Reaction ~ Days + {col} + (1 | Subject)", frame)
        # unused, the column is no obstacle
        assert lmermagic.lmer("Reaction ~ Days + (1 | Subject)", frame).nobs == 180
    big = p.with_columns(pl.col("Days").cast(pl.Int128))
    ref = lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleep)
    got = lmermagic.lmer("Reaction ~ Days + (1 | Subject)", big)
    np.testing.assert_allclose(got.coefs.estimate, ref.coefs.estimate, rtol=1e-10)


def test_nul_in_options(sleep: pd.DataFrame) -> None:
    df = sleep.assign(f=np.where(sleep.Days > 4, "late", "early"))
    with pytest.raises(DataError, match="reference level of contrasts for 'f'"):
        lmermagic.lmer("Reaction ~ f + (1 | Subject)", df, contrasts={"f": "treatment:late\x00x"})
    with pytest.raises(DataError, match="weights= contains a NUL"):
        lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleep, weights="Days\x00")


def test_nul_never_reaches_r() -> None:
    """The last line behind the named checks: any text R is given."""
    from lmermagic.rbridge import get_r

    with pytest.raises(DataError, match="NUL"):
        get_r().run("lmm_versions", "a\x00b")
