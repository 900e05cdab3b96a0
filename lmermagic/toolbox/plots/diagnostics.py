"""Diagnostic panels (R's ``plot(m)``, ``qqmath``, ``performance::check_model``;
binned residuals as ``arm::binnedplot`` for binomial models)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ...errors import DataError, did_you_mean
from ...fitted import FittedModel
from .._common import call
from ..checks import simulated_residuals
from ..random_effects import ranef_table
from ._draw import normal_quantiles, panels, qq_line, smooth

__all__ = ["DiagnosticsDisplay", "binned_residuals"]

_TITLES = {
    "residuals_vs_fitted": ("Residuals vs fitted", "fitted", "residual"),
    "scale_location": ("Scale-location", "fitted", "√|standardized residual|"),
    "qq_residuals": ("Normal Q-Q: residuals", "normal quantile",
                     "standardized residual"),
    "binned_residuals": ("Binned residuals", "mean fitted probability",
                         "mean residual (observed − fitted)"),
    "simulated_qq": ("QQ plot of scaled residuals (DHARMa)", "expected", "observed"),
    "simulated_vs_predicted": ("Scaled residuals vs predicted (DHARMa)",
                               "model predictions (rank transformed)", "scaled residual"),
}
SIMULATED = ("simulated_qq", "simulated_vs_predicted")


def binned_residuals(fitted: np.ndarray, resid: np.ndarray,
                     nclass: int | None = None) -> pd.DataFrame:
    """Residuals averaged in bins of the fitted values, as ``arm::binnedplot``.

    Bins hold about equal numbers of observations (``sqrt(n)`` bins from 100
    observations, 10 below, ``n/2`` below 11); columns ``x`` (mean fitted),
    ``y`` (mean residual), ``n``, ``se`` (sd / sqrt(n)), ``lower``/``upper``
    (-/+ 2 se), ``x_lo``/``x_hi`` (the bin's edges, lower edge excluded).
    """
    x = np.asarray(fitted, dtype=float)
    y = np.asarray(resid, dtype=float)
    n = x.size
    if nclass is None:
        nclass = math.floor(math.sqrt(n)) if n >= 100 else 10 if n > 10 else n // 2
    idx = np.floor(n * np.arange(1, nclass) / nclass).astype(int)
    xs = np.sort(x)
    breaks = [-np.inf]
    if nclass > 1 and not np.any(idx == 0):
        for i in idx:
            lo, hi = xs[i - 1], xs[i]  # R's 1-based x.sort[i] and x.sort[i + 1]
            if lo == hi:
                lo = -np.inf if lo == x.min() else x[x < lo].max()
            breaks.append((lo + hi) / 2)
    breaks = list(dict.fromkeys([*breaks, np.inf]))
    rows = []
    for lo, hi in itertools.pairwise(breaks):
        inside = (x > lo) & (x <= hi)
        k = int(inside.sum())
        sd = float(np.std(y[inside], ddof=1)) if k > 1 else np.nan
        rows.append({"x": x[inside].mean(), "y": y[inside].mean(), "n": k,
                     "se": sd / math.sqrt(k), "x_lo": lo, "x_hi": hi})
    out = pd.DataFrame(rows)
    out["lower"] = -2 * out["se"]
    out["upper"] = 2 * out["se"]
    return out


@dataclass
class DiagnosticsDisplay:
    """The diagnostic panels' data, then their drawing.

    ``panels``: panel name -> DataFrame of the points drawn (``x``, ``y``;
    binned residuals add ``n, se, lower, upper, x_lo, x_hi``). Names:
    ``residuals_vs_fitted`` (x fitted, y ``m.residuals``), ``scale_location``
    (y sqrt(|Pearson residual / sigma|)), ``qq_residuals`` (x normal quantiles,
    y sorted standardized residuals), for binomial models ``binned_residuals``
    instead of these three, and ``qq_ranef <group>: <term>`` (sorted
    conditional modes). ``smooths``: panel name -> the smoother's line;
    ``lines``: panel name -> (intercept, slope) of the Q-Q reference line.
    """

    panels: dict[str, pd.DataFrame]
    smooths: dict[str, pd.DataFrame] = field(default_factory=dict)
    lines: dict[str, tuple[float, float]] = field(default_factory=dict)
    figure_: Any = None

    @classmethod
    def simulated(cls, m: FittedModel, panel: str = "simulated") -> DiagnosticsDisplay:
        """DHARMa's two panels of the scaled residuals (``m.check()``'s, same
        defaults): a uniform QQ plot (x ``(1..n)/(n+1)`` as ``gap::qqunif``, y the
        sorted residuals) and the residuals against the rank-transformed
        population predictions (``rank(ties = "average") / n``)."""
        s = simulated_residuals(m)
        res = s.residuals
        n = res.size
        rank = pd.Series(s.predicted).rank(method="average").to_numpy()
        out = {"simulated_qq": pd.DataFrame({"x": np.arange(1, n + 1) / (n + 1),
                                             "y": np.sort(res)}),
               "simulated_vs_predicted": pd.DataFrame({"x": rank / rank.max(), "y": res})}
        lines = {"simulated_qq": (0.0, 1.0)}
        keep = SIMULATED if panel == "simulated" else (panel,)
        return cls(panels={k: out[k] for k in keep},
                   lines={k: v for k, v in lines.items() if k in keep})

    @classmethod
    def from_model(cls, m: FittedModel, panel: str | None = None) -> DiagnosticsDisplay:
        if panel == "simulated" or panel in SIMULATED:
            return cls.simulated(m, panel)
        used = m.fitted.notna().to_numpy()
        fitted = m.fitted.to_numpy(dtype=float)[used]
        resid = m.residuals.to_numpy(dtype=float)[used]
        r = call("lmm_tb_plot_residuals", m.r_object, what="the residuals")
        pearson = np.asarray(r["pearson"], dtype=float)
        out: dict[str, pd.DataFrame] = {}
        smooths: dict[str, pd.DataFrame] = {}
        lines: dict[str, tuple[float, float]] = {}
        if m.family == "binomial":
            out["binned_residuals"] = binned_residuals(fitted, np.asarray(r["response"],
                                                                          dtype=float))
        else:
            out["residuals_vs_fitted"] = pd.DataFrame({"x": fitted, "y": resid})
            out["scale_location"] = pd.DataFrame({"x": fitted,
                                                  "y": np.sqrt(np.abs(pearson))})
            for key in ("residuals_vs_fitted", "scale_location"):
                sx, sy = smooth(out[key]["x"].to_numpy(), out[key]["y"].to_numpy())
                smooths[key] = pd.DataFrame({"x": sx, "y": sy})
            srt = np.sort(pearson)
            out["qq_residuals"] = pd.DataFrame({"x": normal_quantiles(srt.size), "y": srt})
            lines["qq_residuals"] = qq_line(srt)
        return cls.with_ranef(out, smooths, lines, ranef_table(m), panel)

    @classmethod
    def with_ranef(cls, out: dict[str, pd.DataFrame], smooths: dict[str, pd.DataFrame],
                   lines: dict[str, tuple[float, float]], ranef: pd.DataFrame,
                   panel: str | None) -> DiagnosticsDisplay:
        """The residual panels ``out`` and a normal Q-Q panel of each random-effect
        term of ``ranef`` (columns group, term, condval); only ``panel`` if given
        (lmer's and glmmTMB's diagnostics)."""
        for (g, term), block in ranef.groupby(["group", "term"], sort=False):
            srt = np.sort(block["condval"].to_numpy(dtype=float))
            key = f"qq_ranef {g}: {term}"
            out[key] = pd.DataFrame({"x": normal_quantiles(srt.size), "y": srt})
            lines[key] = qq_line(srt)
        if panel is not None:
            if panel not in out:
                raise DataError(f"panel={panel!r} is not a panel of this model's diagnostics; "
                                f"they are {list(out)}." + did_you_mean(panel, list(out)))
            out = {panel: out[panel]}
        return cls(panels=out, smooths={k: v for k, v in smooths.items() if k in out},
                   lines={k: v for k, v in lines.items() if k in out})

    def plot(self, ax: Any = None) -> DiagnosticsDisplay:
        fig, axes = panels(ax, len(self.panels), ncols=2, size=(4.2, 3.4))
        for a, (key, d) in zip(axes, self.panels.items()):
            if key == "binned_residuals":
                self._binned(a, d)
            else:
                small = len(d) > 2000
                a.plot(d["x"], d["y"], "o", ms=1.5 if small else 3, alpha=0.5,
                       color="#1f77b4")
            if key in self.smooths and len(self.smooths[key]):
                s = self.smooths[key]
                a.plot(s["x"], s["y"], "-", color="#d62728", lw=1.5)
            if key == "residuals_vs_fitted":
                a.axhline(0.0, color="0.5", lw=0.8, ls="--")
            if key in SIMULATED:
                self._simulated(a, key, d)
            if key in self.lines:
                b0, b1 = self.lines[key]
                a.axline((0.0, b0), slope=b1, color="0.4", lw=0.8, ls="--")
            title, xlab, ylab = _TITLES.get(key, (None, "normal quantile", "conditional mode"))
            a.set_title(title or "Normal Q-Q: " + key.split(" ", 1)[1], fontsize="medium")
            a.set_xlabel(xlab)
            a.set_ylabel(ylab)
        self.figure_ = fig
        return self

    @staticmethod
    def _simulated(a: Any, key: str, d: pd.DataFrame) -> None:
        a.set_xlim(0, 1)
        a.set_ylim(0, 1)
        if key == "simulated_vs_predicted":
            for q in (0.25, 0.5, 0.75):
                a.axhline(q, color="0.5", lw=0.8, ls="--")
            edge = (d["y"] == 0) | (d["y"] == 1)
            a.plot(d["x"][edge], d["y"][edge], "*", color="#d62728", ms=6,
                   label="outside all simulations")

    @staticmethod
    def _binned(a: Any, d: pd.DataFrame) -> None:
        a.plot(d["x"], d["upper"], "-", color="0.5", lw=0.8)
        a.plot(d["x"], d["lower"], "-", color="0.5", lw=0.8)
        a.axhline(0.0, color="0.5", lw=0.8, ls="--")
        inside = (d["y"] >= d["lower"]) & (d["y"] <= d["upper"])
        a.plot(d["x"], d["y"], "o", color="#1f77b4", ms=4, label="bin mean")
        a.plot(d["x"][~inside], d["y"][~inside], "o", color="#d62728", ms=4,
               label="outside ±2 SE")


def plot_diagnostics(m: FittedModel, panel: str | None = None, ax: Any = None) -> Any:
    """Diagnostic panels: residuals vs fitted with a smoother, scale-location, a
    normal Q-Q plot of the residuals and one of each random-effect term.
    Binomial models get binned residuals (``arm::binnedplot``) instead of the
    first three.

    Parameters
    ----------
    panel : str, optional
        Draw only this panel (e.g. ``"qq_residuals"``, ``"qq_ranef Pig: Time"``).
        ``"simulated"``: DHARMa's two panels of the scaled residuals instead
        (``"simulated_qq"``, ``"simulated_vs_predicted"``: one of them), from
        the simulations ``m.check()`` uses.
    ax : matplotlib Axes, optional
        With ``panel``: draw into this Axes.

    Returns
    -------
    matplotlib.figure.Figure
    """
    return DiagnosticsDisplay.from_model(m, panel=panel).plot(ax=ax).figure_
