"""Predicted lines over the data (sjPlot's ``plot_model(type = "pred")``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ...errors import DataError, did_you_mean
from ...fitted import FittedModel
from .._common import call, check_model, r_columns
from ._draw import panels, z_value

__all__ = ["PredictDisplay"]

_INVERSE: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda e: e,
    "log": np.exp,
    "logit": lambda e: 1 / (1 + np.exp(-e)),
    "probit": lambda e: pd.Series(e).map(_pnorm).to_numpy(),
    "inverse": lambda e: 1 / e,
    "sqrt": lambda e: e**2,
}


def _pnorm(v: float) -> float:
    from statistics import NormalDist

    return NormalDist().cdf(v)


_PROBLEMS = {
    "x_not_numeric": "x={x!r} is not a numeric column; plot_predict draws lines along a "
                     "numeric variable (see m.emmeans for factors).",
    "by_unknown": "by={by!r} is neither a grouping factor nor a factor of the fixed effects.",
    "by_nested": "by={by!r} appears only inside a nested or interaction random-effect term; "
                 "give a grouping factor of its own term, e.g. (1 | {by}).",
}


@dataclass
class PredictDisplay:
    """The prediction plot's data, then its drawing.

    ``population``: columns ``x, by, fit, lower, upper, se`` -- the
    fixed-effects prediction on the response scale, its band (link scale
    eta -/+ z * se, transformed by the inverse link) and ``se`` on the link
    scale, from R (``X beta``, ``sqrt(diag(X V X'))``). ``conditional``: with a
    grouping factor as ``by``, columns ``x, by, fit`` (lme4's predict with that
    factor's random effects). ``points``: the data (``x``, ``y`` as lme4's
    response, ``by``). ``typical``: the values the other variables are held at.
    """

    population: pd.DataFrame
    points: pd.DataFrame
    conditional: pd.DataFrame | None
    typical: dict[str, str]
    x: str
    by: str | None
    ylabel: str
    figure_: Any = None

    @classmethod
    def from_model(cls, m: FittedModel, x: str, by: str | None = None,
                   level: float = 0.95, n: int = 100) -> PredictDisplay:
        check_model(m)
        z = z_value(level)
        cols = r_columns(m)
        for arg, name in (("x", x), ("by", by)):
            if name is not None and name not in cols:
                raise DataError(f"{arg}={name!r} is not a column of the model's data."
                                + did_you_mean(name, cols))
        v = call("lmm_tb_plot_predict", m.r_object, m.r_data, x, by, int(n),
                 what="the predictions")
        if "problem" in v:
            raise DataError(_PROBLEMS[str(v["problem"][0])].format(x=x, by=by))
        inv = _INVERSE.get(str(v["link"][0]))
        if inv is None:
            raise DataError(f"plot_predict does not know the inverse of link {v['link'][0]!r}.")
        p = v["population"]
        eta = np.asarray(p["eta"], dtype=float)
        se = np.asarray(p["se"], dtype=float)
        population = pd.DataFrame({
            "x": np.asarray(p["x"], dtype=float),
            "by": list(p["by"]) if by is not None and len(p["by"]) else None,
            "fit": inv(eta), "lower": inv(eta - z * se), "upper": inv(eta + z * se),
            "se": se})
        pts = v["points"]
        points = pd.DataFrame({"x": np.asarray(pts["x"], dtype=float),
                               "y": np.asarray(pts["y"], dtype=float)})
        if by is not None:
            points["by"] = list(pts["by"])
        conditional = None
        if "conditional" in v:
            c = v["conditional"]
            conditional = pd.DataFrame({"x": np.asarray(c["x"], dtype=float),
                                        "by": list(c["by"]),
                                        "fit": np.asarray(c["fit"], dtype=float)})
        typical = {k: str(val[0]) for k, val in (v["typical"] or {}).items()}
        ylabel = m.formula.split("~", 1)[0].strip()
        if m.family == "binomial":
            ylabel = f"P({ylabel})"
        return cls(population=population, points=points, conditional=conditional,
                   typical=typical, x=x, by=by, ylabel=ylabel)

    def plot(self, ax: Any = None) -> PredictDisplay:
        fig, (a,) = panels(ax, 1, 1, size=(6.0, 4.2))
        pop, pts = self.population, self.points
        a.plot(pts["x"], pts["y"], "o", ms=2.5, alpha=0.35, color="0.45", label="data")
        if self.conditional is not None:
            for i, (lv, d) in enumerate(self.conditional.groupby("by", sort=False)):
                a.plot(d["x"], d["fit"], "-", lw=0.8, alpha=0.6, color="#ff7f0e",
                       label=f"{self.by} (conditional)" if i == 0 else None, gid=f"by={lv}")
        groups = [(None, pop)] if pop["by"].isna().all() else list(pop.groupby("by",
                                                                                sort=False))
        for i, (lv, d) in enumerate(groups):
            color = "#1f77b4" if lv is None else f"C{i % 10}"
            a.fill_between(d["x"], d["lower"], d["upper"], color=color, alpha=0.2, lw=0)
            a.plot(d["x"], d["fit"], "-", color=color, lw=2.2,
                   label="population" if lv is None else f"{self.by} = {lv}",
                   gid="population" if lv is None else f"population {lv}")
        a.set_xlabel(self.x)
        a.set_ylabel(self.ylabel)
        if self.typical:
            held = ", ".join(f"{k} = {v}" for k, v in self.typical.items())
            a.set_title(f"at {held}", fontsize="small", color="0.3")
        a.legend(fontsize="small", frameon=False)
        self.figure_ = fig
        return self


def plot_predict(m: FittedModel, x: str, by: str | None = None, level: float = 0.95,
                 n: int = 100, ax: Any = None) -> Any:
    """The population-level prediction along ``x`` with its band, over the data.

    Parameters
    ----------
    x : str
        A numeric column of the fixed effects; other fixed-effect variables are
        held at their mean (numbers) or first level (factors).
    by : str, optional
        A grouping factor: one line per group (conditional predictions, that
        factor's random effects, over the group's own range of x). Or a
        factor of the fixed effects: one population line and band per level.
    level : float
        Coverage of the band, from the fixed effects' covariance (link scale,
        then transformed by the inverse link).
    n : int
        Points along x.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    return PredictDisplay.from_model(m, x, by=by, level=level, n=n).plot(ax=ax).figure_
