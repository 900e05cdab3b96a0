"""m.r_code(): the script, run by Rscript on the data lmermagic writes, gives the
model's numbers; m.versions on the model, the card and the summary."""

from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic.rsyntax import r_string, r_symbol

# Printed after the script has run: the numbers compared with the model's, from
# the script's own summary() call (its last line).
TRAILER = """
co <- coef({summary})
cat("terms", rownames(co), sep = "\\t"); cat("\\n")
for (j in seq_len(ncol(co))) {
    cat(colnames(co)[j], sprintf("%.17g", co[, j]), sep = "\\t"); cat("\\n")
}
cat("loglik", sprintf("%.17g", as.numeric(logLik(fit))), sep = "\\t"); cat("\\n")
cat("nobs", nobs(fit), sep = "\\t"); cat("\\n")
"""


def run_script(m, tmp_path) -> dict[str, list[str]]:
    data = tmp_path / "model data.csv"
    script = tmp_path / "fit.R"
    code = m.r_code(data, write=True)
    summary = code.rstrip().splitlines()[-1]
    assert summary.startswith("summary(fit")
    script.write_text(code + TRAILER.replace("{summary}", summary))
    proc = subprocess.run(["Rscript", str(script)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line.split("\t") for line in proc.stdout.splitlines() if "\t" in line]
    return {row[0]: row[1:] for row in rows}


def check_numbers(m, out):
    assert out["terms"] == list(m.coefs.index)
    columns = {"Estimate": "estimate", "Std. Error": "std_error", "df": "df",
               "t value": "statistic", "z value": "statistic", "Pr(>|t|)": "p_value",
               "Pr(>|z|)": "p_value"}
    seen = 0
    for r_name, ours in columns.items():
        if r_name in out:
            np.testing.assert_allclose(np.array(out[r_name], dtype=float), m.coefs[ours],
                                       rtol=1e-6, err_msg=r_name)
            seen += 1
    assert seen >= 4
    assert float(out["loglik"][0]) == pytest.approx(m.loglik, rel=1e-9)
    assert int(out["nobs"][0]) == m.nobs


def test_lmer_script_reproduces_the_fit(sleepstudy, tmp_path):
    m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    out = run_script(m, tmp_path)
    assert "df" in out  # Satterthwaite, through lmerTest
    check_numbers(m, out)


def test_glmer_script_reproduces_the_fit(cbpp, tmp_path):
    m = lmermagic.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                        nagq=2)
    check_numbers(m, run_script(m, tmp_path))


def test_contrasts_weights_factors_control_and_missing_values(dietox, tmp_path):
    df = dietox.copy()
    df["prior w"] = 1.0 + (np.arange(len(df)) % 3) / 3  # not an R name: backticks
    df.loc[[3, 50], "Weight"] = np.nan
    df["Cu"] = df["Cu"].astype(str)
    m = lmermagic.lmer("Weight ~ Time + Evit + Cu + (1 | Pig)", df, factors="Evit",
                       contrasts={"Evit": "sum", "Cu": "treatment:Cu035"},
                       weights="prior w", control={"optimizer": "Nelder_Mead"},
                       ddf="kenward-roger")
    code = m.r_code("x.csv")
    assert "weights = `prior w`" in code
    assert "stats::contr.sum(" in code and "base = 2L" in code
    assert 'lme4::lmerControl(optimizer = "Nelder_Mead")' in code
    assert 'summary(fit, ddf = "Kenward-Roger")' in code
    out = run_script(m, tmp_path)
    assert "Evit1" in out["terms"] and "CuCu000" in out["terms"]
    check_numbers(m, out)


def test_r_code_without_writing_and_its_refusals(sleepstudy, tmp_path):
    m = lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy, ddf="lme4")
    code = m.r_code(tmp_path / "nowhere.csv")
    assert not (tmp_path / "nowhere.csv").exists()
    assert "fit <- lme4::lmer(" in code and "library(lmerTest)" not in code
    assert code.rstrip().endswith("summary(fit)")
    refitted = m.refit(sleepstudy["Reaction"] * 1.5)
    with pytest.raises(lmermagic.DataError, match="refitted"):
        refitted.r_code()


def test_r_literals_carry_any_text():
    assert r_string('a "b"\\c\n#x') == '"a \\"b\\"\\\\c\\n#x"'
    assert r_symbol("Days") == "Days"
    assert r_symbol("my col") == "`my col`"
    assert r_symbol("a`b") == "`a\\`b`"
    # a path or name with a line break stays inside one comment line
    df = pd.DataFrame({"y": [1.0, 2, 3, 4, 5, 6], "g": list("aabbcc")})
    m = lmermagic.lmer("y ~ 1 + (1 | g)", df, ddf="lme4")
    code = m.r_code("evil\nsystem('x').csv")
    assert "\nsystem(" not in code


def test_versions_on_the_model_card_and_summary(sleepstudy):
    m = lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy)
    assert set(m.versions) == {"lmermagic", "R", "lme4", "lmerTest", "Matrix", "rpy2"}
    assert m.versions["lmermagic"] == lmermagic.__version__
    line = ", ".join(f"{k} {v}" for k, v in m.versions.items())
    assert line in m._repr_html_()
    assert m.summary().rstrip().endswith(line)
