"""Tables for the paper: maketables.ETable on lmermagic models (the plug-in
protocol in toolbox/paper.py). Every number of a three-model table is read back
from the table and compared with the models' own (and the random-effects block
with R's), then the table is written to Word, LaTeX, Markdown and HTML and the
numbers looked for there."""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic.model import LmerModel
from lmermagic.toolbox import paper

mt = pytest.importorskip("maketables")

SIGNIF = mt.ETable.DEFAULT_SIGNIF_CODE  # [0.01, 0.05, 0.10]


@pytest.fixture(scope="module")
def models():
    sleep = lmermagic.datasets.load("sleepstudy")
    cbpp = lmermagic.datasets.load("cbpp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleep),
                lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep),
                lmermagic.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                                cbpp, family="binomial")]


@pytest.fixture(scope="module")
def table(models):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mt.ETable(models)


def _numbers(text: str) -> list[tuple[float, int]]:
    """The numbers of a cell as (value, decimals shown)."""
    out = []
    for tok in re.findall(r"-?[\d,]*\.?\d+(?:e[-+]?\d+)?|-?inf", text):
        plain = tok.replace(",", "")
        decimals = len(plain.split(".")[1]) if "." in plain and "e" not in plain else 0
        out.append((float(plain), decimals))
    return out


def _same(text: str, value: float) -> None:
    """The one number in ``text`` is ``value`` rounded as shown."""
    (shown, decimals), = _numbers(text)
    assert abs(shown - value) <= 0.5 * 10.0 ** -decimals + 1e-9 * abs(value), (text, value)


def _stars(p: float) -> str:
    return "***" if p < SIGNIF[0] else "**" if p < SIGNIF[1] else "*" if p < SIGNIF[2] else ""


def _expected_stats(m: LmerModel) -> dict[str, object]:
    """Each statistics row the table should show for m, label -> value, from the
    model's own fields (written out here, not through paper.py)."""
    out: dict[str, object] = {
        "Observations": m.nobs, "AIC": m.aic, "BIC": m.bic, "Log-likelihood": m.loglik,
        "Estimation": ("REML" if m.reml else "ML") if m.kind == "lmer" else "ML (Laplace)",
        "df method": "Satterthwaite" if m.kind == "lmer" else "Wald z",
        "Family": f"{m.family} ({m.link})"}
    for _, r in m.varcorr.iterrows():
        if r["group"] == "Residual":
            out["Residual SD"] = r["sdcor"]
            continue
        out[f"{r['group']}: groups"] = m.ngroups[r["group"]]
        name = (f"SD {r['var1']}" if pd.isna(r["var2"])
                else f"Cor {r['var1']}, {r['var2']}")
        out[f"{r['group']}: {name}"] = r["sdcor"]
    if callable(getattr(m, "r2", None)):
        r2, icc = m.r2(), m.icc()
        out.update({"Marginal R²": r2["r2_marginal"], "Conditional R²": r2["r2_conditional"],
                    "ICC": icc["icc_adjusted"]})
    return out


def test_every_number_of_the_table_is_the_models_own(table, models):
    df = table.df
    assert list(df.columns.get_level_values(0)) == [
        "Reaction", "Reaction", "cbind(incidence, size - incidence)"]
    expected = [_expected_stats(m) for m in models]
    seen = set()
    for (panel, label), row in df.iterrows():
        for m, cell, stats in zip(models, row.tolist(), expected):
            cell = str(cell)
            if panel == "coef":
                if label not in m.coefs.index:
                    assert cell.strip() == ""
                    continue
                c = m.coefs.loc[label]
                est, se = cell.split("\n")
                assert re.sub(r"[^*]", "", est) == _stars(c["p_value"])
                _same(est.replace("*", ""), c["estimate"])
                _same(se, c["std_error"])
            else:
                assert panel == "stats"
                seen.add(label)
                want = stats.get(label)
                if want is None:
                    assert cell == "-", (label, cell)
                elif isinstance(want, str):
                    assert cell == want
                else:
                    _same(cell, float(want))  # type: ignore[arg-type]
    # every statistic a model has is in the table, and nothing else
    assert seen == set().union(*expected)
    assert {t for _, t in df.index if _ == "coef"} == set().union(
        *(m.coefs.index for m in models))


def test_precise_cells_and_intervals(models):
    fmt = ("b:.10f \n se:.10f \n t:.10f \n p:.6e \n df:.8f \n ci95l:.10f \n ci95u:.10f"
           " \n ci90l:.10f \n ci90u:.10f")
    df = mt.ETable(models, coef_fmt=fmt).df
    for m, col in zip(models, df.columns):
        t95 = m.tidy(effects="fixed").set_index("term")
        t90 = m.tidy(effects="fixed", conf_level=0.90).set_index("term")
        for term, c in m.coefs.iterrows():
            values = [v for v, _ in _numbers(str(df.loc[("coef", term), col]))]
            want = [c["estimate"], c["std_error"], c["statistic"], c["p_value"], c["df"],
                    t95.loc[term, "conf_low"], t95.loc[term, "conf_high"],
                    t90.loc[term, "conf_low"], t90.loc[term, "conf_high"]]
            np.testing.assert_allclose(values, want, rtol=1e-6, atol=1e-9)


def test_random_effects_block_is_rs(table, rref):
    ref = rref("""
    d <- lme4::sleepstudy
    fits <- list(lme4::lmer(Reaction ~ Days + (1 | Subject), d),
                 lme4::lmer(Reaction ~ Days + (Days | Subject), d),
                 lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                             lme4::cbpp, family = binomial))
    lapply(fits, function(m) { vc <- as.data.frame(lme4::VarCorr(m))
        list(sdcor = vc$sdcor, ngrps = as.numeric(lme4::ngrps(m)), sigma = sigma(m)) })""")
    df = table.df.loc["stats"]
    cols = list(df.columns)
    _same(df.loc["Subject: SD (Intercept)", cols[0]], ref[0]["sdcor"][0])
    _same(df.loc["Residual SD", cols[0]], ref[0]["sdcor"][1])
    _same(df.loc["Subject: SD (Intercept)", cols[1]], ref[1]["sdcor"][0])
    _same(df.loc["Subject: SD Days", cols[1]], ref[1]["sdcor"][1])
    _same(df.loc["Subject: Cor (Intercept), Days", cols[1]], ref[1]["sdcor"][2])
    _same(df.loc["Residual SD", cols[1]], ref[1]["sigma"][0])
    _same(df.loc["herd: SD (Intercept)", cols[2]], ref[2]["sdcor"][0])
    _same(df.loc["Subject: groups", cols[0]], ref[0]["ngrps"][0])
    _same(df.loc["herd: groups", cols[2]], ref[2]["ngrps"][0])
    assert df.loc["Residual SD", cols[2]] == "-"  # binomial: no residual SD


def test_table_stats_orders_a_paper_table(models):
    keys = paper.table_stats(models)
    assert keys[:8] == ["Subject: groups", "Subject: SD (Intercept)", "Subject: SD Days",
                        "Subject: Cor (Intercept), Days", "herd: groups",
                        "herd: SD (Intercept)", "Residual SD", "N"]
    df = mt.ETable(models, model_stats=keys).df.loc["stats"]
    assert list(df.index[:7]) == keys[:7]
    assert df.loc["Subject: SD Days"].tolist()[0::2] == ["-", "-"]


def test_r2_and_icc_rows_follow_the_models_methods(models):
    """Rows from m.r2() and m.icc() where the model has them (branch r2), none otherwise."""
    m = models[0]
    labels = {"Marginal R²", "Conditional R²", "ICC"}
    shown = set(mt.ETable([m]).df.loc["stats"].index)
    assert labels <= shown if callable(getattr(m, "r2", None)) else not labels & shown

    class WithGoodness(LmerModel):
        def r2(self) -> pd.Series:
            return pd.Series({"r2_marginal": self.coefs["estimate"].iloc[1] / 100.0,
                              "r2_conditional": self.sigma / 100.0})

        def icc(self) -> pd.Series:
            return pd.Series({"icc_adjusted": self.nobs / 1000.0, "icc_unadjusted": 0.0})

    w = WithGoodness(**{f.name: getattr(m, f.name) for f in dataclasses.fields(m)})
    df = mt.ETable([w]).df.loc["stats"]
    col = df.columns[0]
    _same(df.loc["Marginal R²", col], w.r2()["r2_marginal"])
    _same(df.loc["Conditional R²", col], w.r2()["r2_conditional"])
    _same(df.loc["ICC", col], w.icc()["icc_adjusted"])


def _cells(table) -> list[tuple[str, list[str]]]:
    return [(label, [str(v) for v in row.tolist()]) for (_, label), row in table.df.iterrows()]


def test_word_document_reads_back(table, tmp_path: Path):
    from docx import Document

    path = tmp_path / "models.docx"
    table.save("docx", file_name=str(path), show=False, replace=True)
    doc = Document(str(path))
    rows = {r.cells[0].text.strip(): [c.text for c in r.cells[1:]] for r in doc.tables[0].rows}
    for label, cells in _cells(table):
        got = rows[label]
        assert [" ".join(c.split()) for c in got] == [" ".join(c.split()) for c in cells]
    text = "\n".join(" ".join(r) for r in rows.values())
    assert "251.405***" in text and "(9.747)" in text and "0.642" in text


def _line_has_numbers(line: str, cells: list[str]) -> None:
    want = [t for c in cells for t, _ in _numbers(c)]
    got = [t for t, _ in _numbers(line)]
    assert got[-len(want):] == want if want else True, (line, cells)


def test_latex_and_markdown(table):
    from maketables.symbols import translate_symbols

    tex = table.make("tex")
    lines = tex.splitlines()
    for label, cells in _cells(table):
        label_tex = translate_symbols(label, "tex")
        line = next(x for x in lines if x.startswith(f"{label_tex} &"))
        _line_has_numbers(line, cells)
    # maketables writes no Markdown; pandas does, once a cell's line break is a space
    md = table.df.astype(str).replace(r"\s*\n\s*", " ", regex=True).to_markdown()
    for label, cells in _cells(table):
        line = next(x for x in md.splitlines() if f"'{label}')" in x)
        _line_has_numbers(line, cells)


def test_html_has_every_number(table):
    html = table.make("html")
    for _label, cells in _cells(table):
        for cell in cells:
            for part in cell.split("\n"):
                if part.strip():
                    assert part.strip() in html, part


def test_protocol_needs_no_maketables():
    """lmermagic reaches maketables by its dunder protocol only, never by import."""
    root = Path(lmermagic.__file__).parent
    for path in root.rglob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+maketables", path.read_text(), re.M), path


def test_unknown_statistics_are_none(models):
    m = models[2]
    assert m.__maketables_stat__("no such key") is None
    assert m.__maketables_stat__("Residual SD") is None
    assert m.__maketables_depvar__ == "cbind(incidence, size - incidence)"
    assert math.isinf(m.__maketables_coef_table__["df"].iloc[0])
