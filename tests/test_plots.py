"""The plots draw the model's own numbers: positions read back from the figure are
compared with the model's tables (themselves checked against R) and with R's
numbers computed live; no pixels are compared."""

from __future__ import annotations

import itertools
import sys

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

import lmermagic
from conftest import grouped_counts
from lmermagic.errors import DataError, OptionalDependencyError
from lmermagic.toolbox.plots import (
    DiagnosticsDisplay,
    PredictDisplay,
    RanefDisplay,
    binned_residuals,
)
from lmermagic.toolbox.plots.spec import plot_calls

DIETOX_R = """e <- new.env(); utils::data("dietox", package = "geepack", envir = e); d <- e$dietox
m <- lme4::lmer(Weight ~ Time + Evit + (1 + Time | Pig), d)"""
CBPP_R = ("m <- lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), "
          "lme4::cbpp, family = binomial)")


@pytest.fixture(scope="module")
def dietox_model(dietox):
    return lmermagic.lmer("Weight ~ Time + Evit + (1 + Time | Pig)", dietox)


@pytest.fixture(scope="module")
def poisson_model():
    d = grouped_counts(7, (1.0, 3.0), (0.3, 0.6), 0.5)
    df = pd.DataFrame({"y": d["y"], "x": d["x"], "g": [f"g{i}" for i in d["g"]]})
    return lmermagic.glmer("y ~ x + (1 | g)", df, family="poisson")


def _draw(fig):
    """Lay the figure out and draw it (Agg): tick labels exist only after a draw."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _dots(ax, label):
    return next(line for line in ax.get_lines() if line.get_label() == label)


def _close(a, b, rtol=1e-7, atol=1e-10):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                               rtol=rtol, atol=atol)


# -- caterpillar ---------------------------------------------------------------

@pytest.mark.parametrize("which", ["dietox_model", "cbpp_model", "poisson_model"])
def test_ranef_draws_sorted_modes_and_intervals(which, request):
    m = request.getfixturevalue(which)
    fig = m.plot_ranef(level=0.9)
    assert isinstance(fig, Figure)
    table = m.ranef_table
    z = 1.6448536269514722  # qnorm(0.95)
    axes = [a for a in fig.axes if a.get_visible()]
    keys = list(dict.fromkeys(zip(table["group"], table["term"])))
    assert len(axes) == len(keys)
    for a, (g, term) in zip(axes, keys):
        t = table[(table["group"] == g) & (table["term"] == term)].set_index("level")
        first = table[(table["group"] == g) & (table["term"] == keys[0][1])]
        order = first.sort_values("condval", kind="stable")["level"].tolist()
        dots = _dots(a, "conditional mode")
        _close(dots.get_ydata(), np.arange(len(order)))
        _close(dots.get_xdata(), t.loc[order, "condval"])
        segs = next(c for c in a.collections if isinstance(c, LineCollection)).get_segments()
        _close([s[0][0] for s in segs], t.loc[order, "condval"] - z * t.loc[order, "condsd"])
        _close([s[1][0] for s in segs], t.loc[order, "condval"] + z * t.loc[order, "condsd"])
        _draw(fig)
        shown = [t for t in a.get_yticklabels() if t.get_text() and t.get_visible()]
        assert shown or a is not axes[0]
        for tick in shown:
            assert tick.get_text() == order[round(tick.get_position()[1])]


def test_ranef_intervals_match_r(dietox_model, rref):
    data = RanefDisplay.from_model(dietox_model).data
    r = rref(DIETOX_R + "\nd <- as.data.frame(lme4::ranef(m, condVar = TRUE)); "
             "list(lo = d$condval - qnorm(0.975) * d$condsd, lv = as.character(d$grp))")
    _close(data["lower"], r["lo"], rtol=1e-5, atol=1e-6)
    assert data["level"].tolist() == r["lv"]


def test_ranef_labels_thin_out_and_never_overlap():
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(400), 5)
    df = pd.DataFrame({"y": rng.normal(size=g.size) + rng.normal(size=400)[g],
                       "g": [f"level{i:03d}" for i in g]})
    m = lmermagic.lmer("y ~ 1 + (1 | g)", df)
    fig = m.plot_ranef()
    renderer = _draw(fig)
    ax = fig.axes[0]
    boxes = [t.get_window_extent(renderer) for t in ax.get_yticklabels()
             if t.get_text() and t.get_visible()]
    assert 10 < len(boxes) < 400
    boxes.sort(key=lambda b: b.y0)
    assert all(lo.y1 <= hi.y0 for lo, hi in itertools.pairwise(boxes))
    # one panel, so ax= works; a group that does not exist is named
    _, ax2 = Figure().subplots(1, 2)
    assert m.plot_ranef(ax=ax2) is ax2.figure
    with pytest.raises(DataError, match="Did you mean 'g'"):
        m.plot_ranef(group="gg")


# -- forest --------------------------------------------------------------------

def test_coefs_forest_leaves_out_intercept(dietox_model):
    fig = dietox_model.plot_coefs()
    ax = fig.axes[0]
    c = dietox_model.coefs.drop(index="(Intercept)")
    dots = ax.get_lines()[-1]
    _close(dots.get_xdata(), c["estimate"])
    _close(dots.get_ydata(), np.arange(len(c))[::-1])
    segs = ax.collections[0].get_segments()
    _close([s[0][0] for s in segs], c["conf_low"])
    _close([s[1][0] for s in segs], c["conf_high"])
    with pytest.raises(DataError, match="log or logit"):
        dietox_model.plot_coefs(exponentiate=True)


@pytest.mark.parametrize("which", ["cbpp_model", "poisson_model"])
def test_coefs_exponentiated_for_glmm(which, request):
    m = request.getfixturevalue(which)
    ax = m.plot_coefs(exponentiate=True, intercept=True).axes[0]
    _close(ax.get_lines()[-1].get_xdata(), np.exp(m.coefs["estimate"]))
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel().startswith("odds ratio" if which == "cbpp_model" else "rate ratio")


# -- diagnostics ---------------------------------------------------------------

def test_diagnostics_lmer(dietox_model, rref):
    fig = dietox_model.plot_diagnostics()
    disp = DiagnosticsDisplay.from_model(dietox_model)
    assert list(disp.panels)[:3] == ["residuals_vs_fitted", "scale_location", "qq_residuals"]
    assert list(disp.panels)[3:] == ["qq_ranef Pig: (Intercept)", "qq_ranef Pig: Time"]
    assert len([a for a in fig.axes if a.get_visible()]) == 5
    first = fig.axes[0].get_lines()[0]
    _close(first.get_xdata(), dietox_model.fitted)
    _close(first.get_ydata(), dietox_model.residuals)
    r = rref(DIETOX_R + """
        p <- sort(residuals(m, type = "pearson", scaled = TRUE))
        list(p = p, q = qnorm(ppoints(length(p))),
             re = sort(lme4::ranef(m)$Pig[["Time"]]))""")
    qq = fig.axes[2].get_lines()[0]
    _close(qq.get_xdata(), r["q"], rtol=1e-12)
    _close(qq.get_ydata(), r["p"], rtol=1e-5, atol=1e-6)
    _close(fig.axes[4].get_lines()[0].get_ydata(), r["re"], rtol=1e-5, atol=1e-7)
    # the smoother follows the points: it stays within their range
    s = disp.smooths["residuals_vs_fitted"]
    assert s["y"].abs().max() < dietox_model.residuals.abs().max()
    ax = Figure().subplots()
    assert dietox_model.plot_diagnostics(panel="qq_residuals", ax=ax) is ax.figure
    with pytest.raises(DataError, match="one panel"):
        dietox_model.plot_diagnostics(ax=ax)


def test_diagnostics_binomial_bins(cbpp_model, rref):
    disp = DiagnosticsDisplay.from_model(cbpp_model)
    assert list(disp.panels) == ["binned_residuals", "qq_ranef herd: (Intercept)"]
    bins = disp.panels["binned_residuals"]
    r = rref(CBPP_R + "\nlist(f = fitted(m), r = residuals(m, type = 'response'))")
    f, res = r["f"], r["r"]
    _close(f, cbpp_model.fitted.dropna())
    assert bins["n"].sum() == len(f) and len(bins) == 10  # 56 rows: 10 bins
    for _, b in bins.iterrows():
        inside = (f > b["x_lo"]) & (f <= b["x_hi"])
        assert inside.sum() == b["n"]
        _close(b["y"], res[inside].mean())
        _close(b["upper"], 2 * res[inside].std(ddof=1) / np.sqrt(inside.sum()))
    ax = cbpp_model.plot_diagnostics().axes[0]
    _close(_dots(ax, "bin mean").get_ydata(), bins["y"])


def test_binned_residuals_with_ties_and_large_n():
    x = np.repeat([0.1, 0.2, 0.3, 0.4], 50)
    out = binned_residuals(x, np.arange(200.0))
    assert out["n"].sum() == 200 and out["x"].is_monotonic_increasing
    assert len(binned_residuals(np.linspace(0, 1, 400), np.zeros(400))) == 20


def test_diagnostics_poisson(poisson_model, rref):
    disp = DiagnosticsDisplay.from_model(poisson_model)
    assert "scale_location" in disp.panels and "binned_residuals" not in disp.panels
    d = disp.panels["scale_location"]
    m = poisson_model
    _close(d["x"], m.fitted)
    pearson = (m.data["y"] - m.fitted) / np.sqrt(m.fitted)  # Poisson: var = mean
    _close(d["y"], np.sqrt(np.abs(pearson)), rtol=1e-6)


# -- predictions ---------------------------------------------------------------

def test_predict_band_matches_r(dietox_model, rref):
    disp = PredictDisplay.from_model(dietox_model, "Time", n=12)
    pop = disp.population
    r = rref(DIETOX_R + """
        nd <- data.frame(Time = seq(1, 12, length.out = 12),
                         Evit = factor("Evit000", levels = levels(d$Evit)))
        X <- model.matrix(~ Time + Evit, nd)
        list(fit = predict(m, nd, re.form = NA),
             se = sqrt(diag(X %*% as.matrix(vcov(m)) %*% t(X))))""")
    _close(pop["fit"], r["fit"], rtol=1e-6)
    _close(pop["se"], r["se"], rtol=1e-5)
    _close(pop["upper"] - pop["fit"], 1.959963984540054 * r["se"], rtol=1e-5)
    assert disp.typical == {"Evit": "Evit000"}
    ax = dietox_model.plot_predict("Time", n=12).axes[0]
    line = next(x for x in ax.get_lines() if x.get_gid() == "population")
    _close(line.get_ydata(), r["fit"], rtol=1e-6)
    data = next(x for x in ax.get_lines() if x.get_label() == "data")
    _close(data.get_xdata(), dietox_model.data["Time"])
    _close(data.get_ydata(), dietox_model.data["Weight"])


def test_predict_by_group_and_by_factor(dietox_model, rref):
    disp = PredictDisplay.from_model(dietox_model, "Time", by="Pig")
    cond = disp.conditional
    assert cond["by"].nunique() == dietox_model.ngroups["Pig"]
    one = cond[cond["by"] == "4601"]
    r = rref(DIETOX_R + f"""
        nd <- data.frame(Time = c({', '.join(map(repr, one['x']))}), Pig = 4601,
                         Evit = factor("Evit000", levels = levels(d$Evit)))
        predict(m, nd)""")
    _close(one["fit"], r, rtol=1e-6)
    by_factor = PredictDisplay.from_model(dietox_model, "Time", by="Evit", n=5).population
    assert sorted(by_factor["by"].unique()) == sorted(dietox_model.data["Evit"].unique())
    with pytest.raises(DataError, match="neither a grouping factor"):
        dietox_model.plot_predict("Time", by="Weight")
    with pytest.raises(DataError, match="not a numeric column"):
        dietox_model.plot_predict("Evit")
    with pytest.raises(DataError, match="Did you mean 'Time'"):
        dietox_model.plot_predict("time")


@pytest.mark.parametrize("which,x", [("poisson_model", "x"), ("cbpp_model", None)])
def test_predict_glmm_on_response_scale(which, x, request, rref):
    m = request.getfixturevalue(which)
    if x is None:  # cbpp has no numeric covariate: fit one
        d = m.data.assign(t=m.data["period"].astype(int))
        m = lmermagic.glmer("cbind(incidence, size - incidence) ~ t + (1 | herd)", d,
                            family="binomial")
        x = "t"
    pop = PredictDisplay.from_model(m, x, n=7).population
    new = pd.DataFrame({x: pop["x"]})
    _close(pop["fit"], m.predict(new, re_form="~0"), rtol=1e-6)
    eta = m.predict(new, re_form="~0", type="link").to_numpy()
    inv = np.exp if m.link == "log" else (lambda e: 1 / (1 + np.exp(-e)))
    _close(pop["lower"], inv(eta - 1.959963984540054 * pop["se"]), rtol=1e-6)


# -- notebook, magic, optional dependency, global state -------------------------

def test_figures_show_in_a_notebook_and_leave_matplotlib_alone(dietox_model):
    rc = dict(matplotlib.rcParams)
    had_pyplot = "matplotlib.pyplot" in sys.modules
    fig = dietox_model.plot_coefs()
    assert fig._repr_png_().startswith(b"\x89PNG")
    assert dict(matplotlib.rcParams) == rc
    assert ("matplotlib.pyplot" in sys.modules) == had_pyplot


def test_without_matplotlib_the_error_says_what_to_install(dietox_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(OptionalDependencyError, match=r"pip install 'lmermagic\[plots\]'"):
        dietox_model.plot_coefs()
    assert issubclass(OptionalDependencyError, ImportError)


@pytest.mark.parametrize("spec,calls", [
    ("ranef", [("plot_ranef", [])]),
    ("coefs, diagnostics", [("plot_coefs", []), ("plot_diagnostics", [])]),
    ("predict:Time:Pig", [("plot_predict", ["Time", "Pig"])]),
])
def test_plot_option(spec, calls):
    assert plot_calls(spec) == calls


@pytest.mark.parametrize("spec,match", [("ranf", "Did you mean 'ranef'"),
                                         ("predict", "predict:X"), ("coefs:x", "predict:X")])
def test_plot_option_errors(spec, match):
    with pytest.raises(DataError, match=match):
        plot_calls(spec)


def test_magic_displays_the_plots(shell, sleepstudy, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    shell.user_ns["sleep"] = sleepstudy
    shell.run_cell("%lmer -d sleep -q --plot ranef,predict:Days "
                   "Reaction ~ Days + (Days | Subject)", store_history=False)
    assert [type(f).__name__ for f in shown] == ["LmerFigure", "LmerFigure"]
    assert len(shown[0].axes) == 2
