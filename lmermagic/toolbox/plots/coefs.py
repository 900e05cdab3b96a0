"""The forest plot of the fixed effects (sjPlot's ``plot_model(type = "est")``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ...errors import DataError
from ...fitted import FittedModel
from ._draw import category_axis, panels

__all__ = ["CoefsDisplay"]

_RATIO = {"log": "rate ratio", "logit": "odds ratio"}


@dataclass
class CoefsDisplay:
    """The forest plot's data, then its drawing.

    ``data``: the model's ``coefs`` rows drawn (term order kept, first term at
    the top), columns ``estimate, conf_low, conf_high`` (exponentiated when
    asked) and ``position`` (0 at the bottom).
    """

    data: pd.DataFrame
    exponentiate: bool
    label: str
    figure_: Any = None

    @classmethod
    def from_model(cls, m: FittedModel, intercept: bool = False,
                   exponentiate: bool = False) -> CoefsDisplay:
        c = m.coefs[["estimate", "conf_low", "conf_high"]]
        if not intercept:
            c = c[c.index != "(Intercept)"]
        if c.empty:
            raise DataError("the model has no fixed effect besides the intercept: "
                            "plot_coefs(intercept=True) draws it.")
        label = "estimate (95 % Wald interval)"
        if exponentiate:
            if m.kind != "glmer" or m.link not in _RATIO:
                raise DataError(f"exponentiate=True is for GLMMs with a log or logit link; "
                                f"this model's link is {m.link!r}.")
            c = np.exp(c)
            label = f"{_RATIO[m.link]} (95 % Wald interval)"
        data = c.assign(position=np.arange(len(c))[::-1])
        return cls(data=data, exponentiate=exponentiate, label=label)

    def plot(self, ax: Any = None) -> CoefsDisplay:
        d = self.data
        fig, (a,) = panels(ax, 1, 1, size=(5.0, float(np.clip(0.35 * len(d) + 1.2, 2.0, 10))))
        a.axvline(1.0 if self.exponentiate else 0.0, color="0.6", lw=0.8, zorder=0)
        a.hlines(d["position"], d["conf_low"], d["conf_high"], color="#1f77b4", lw=1.5)
        a.plot(d["estimate"], d["position"], "o", color="#1f77b4", ms=5)
        if self.exponentiate:
            a.set_xscale("log")
        order = d.sort_values("position")
        category_axis(a, [str(t) for t in order.index])
        a.set_xlabel(self.label)
        self.figure_ = fig
        return self


def plot_coefs(m: FittedModel, intercept: bool = False, exponentiate: bool = False,
               ax: Any = None) -> Any:
    """Forest plot of the fixed effects with their 95 % Wald intervals (``m.coefs``).

    Parameters
    ----------
    intercept : bool
        Include the intercept (left out by default: it is on another scale).
    exponentiate : bool
        For GLMMs with a log or logit link: rate or odds ratios, on a log axis.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    return CoefsDisplay.from_model(m, intercept=intercept,
                                   exponentiate=exponentiate).plot(ax=ax).figure_
