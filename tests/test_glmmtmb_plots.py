"""Plots of glmmTMB fits: the numbers drawn (read back from the figures) are
the model's and R's, computed live; no pixels are compared."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import lmermagic
from lmermagic.errors import DataError
from lmermagic.tmb_plots import coefs_display, diagnostics_display, ranef_display

SAL = 'data("Salamanders", package = "glmmTMB", envir = environment()); d <- Salamanders\n'
ZINB = ("m <- glmmTMB::glmmTMB(count ~ mined + (1 | site), data = d, "
        "family = glmmTMB::nbinom2, ziformula = ~ mined)\n")


@pytest.fixture(scope="module")
def zinb() -> Any:
    sal = lmermagic.datasets.load("Salamanders", package="glmmTMB")
    return lmermagic.glmmtmb("count ~ mined + (1 | site)", sal, family="nbinom2",
                             ziformula="~ mined")


def _points(fig: Figure) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.asarray(line.get_xdata(), dtype=float), np.asarray(line.get_ydata(), dtype=float))
            for ax in fig.axes for line in ax.get_lines() if line.get_marker() == "o"]


def test_plot_ranef(zinb: Any, rref: Any) -> None:
    ref = rref(SAL + ZINB + """re <- glmmTMB::ranef(m, condVar = TRUE)$cond$site
list(levels = rownames(re), v = re[[1]], sd = sqrt(as.vector(attr(re, "condVar"))))""")
    d = ranef_display(zinb).data.set_index("level").loc[list(ref["levels"])]
    np.testing.assert_allclose(d["condval"], ref["v"], rtol=1e-8)
    np.testing.assert_allclose(d["upper"] - d["condval"], 1.959963984540054 * ref["sd"],
                               rtol=1e-6)
    fig = zinb.plot_ranef()
    assert isinstance(fig, Figure)
    ((x, y),) = _points(fig)
    drawn = ranef_display(zinb).data.sort_values("position")
    np.testing.assert_allclose(x, drawn["condval"])
    np.testing.assert_array_equal(y, drawn["position"])
    with pytest.raises(DataError, match="component"):
        zinb.plot_ranef(component="zi")


def test_plot_coefs(zinb: Any) -> None:
    cond = zinb.coefs[zinb.coefs["component"] == "cond"].set_index("term")
    d = coefs_display(zinb, intercept=True).data
    np.testing.assert_allclose(d["estimate"], cond["estimate"])
    ((x, _),) = _points(zinb.plot_coefs(exponentiate=True))
    np.testing.assert_allclose(x, np.exp(cond.loc[["minedno"], "estimate"]))
    zi = zinb.coefs[zinb.coefs["component"] == "zi"].set_index("term")
    dz = coefs_display(zinb, component="zi", exponentiate=True).data
    np.testing.assert_allclose(dz["estimate"], np.exp(zi.loc[["minedno"], "estimate"]))
    assert "odds ratio" in coefs_display(zinb, component="zi", exponentiate=True).label
    with pytest.raises(DataError, match="component"):
        zinb.plot_coefs(component="disp ")


def test_plot_diagnostics(zinb: Any, rref: Any) -> None:
    ref = rref(SAL + ZINB + """list(resid = residuals(m, type = "response"),
fitted = fitted(m), pearson = residuals(m, type = "pearson"))""")
    disp = diagnostics_display(zinb)
    assert list(disp.panels) == ["residuals_vs_fitted", "scale_location", "qq_residuals",
                                 "qq_ranef site: (Intercept)"]
    rf = disp.panels["residuals_vs_fitted"]
    np.testing.assert_allclose(rf["x"], ref["fitted"], rtol=1e-8)
    np.testing.assert_allclose(rf["y"], ref["resid"], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(disp.panels["qq_residuals"]["y"], np.sort(ref["pearson"]),
                               rtol=1e-8)
    fig = zinb.plot_diagnostics()
    assert isinstance(fig, Figure) and len(_points(fig)) == 4
    assert len(_points(zinb.plot_diagnostics(panel="qq_residuals"))) == 1
    with pytest.raises(DataError, match="panel"):
        zinb.plot_diagnostics(panel="qq")


def test_binomial_diagnostics_are_binned() -> None:
    cbpp = lmermagic.datasets.load("cbpp")
    m = lmermagic.glmmtmb("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                          family="binomial")
    disp = diagnostics_display(m)
    assert next(iter(disp.panels)) == "binned_residuals"
    b = disp.panels["binned_residuals"]
    assert int(b["n"].sum()) == m.nobs
    assert isinstance(m.plot_diagnostics(), Figure)
    pd.testing.assert_frame_equal(
        b, lmermagic.toolbox.plots.binned_residuals(m.fitted.to_numpy(),
                                                    m.residuals.to_numpy()))
