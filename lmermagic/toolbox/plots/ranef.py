"""The caterpillar plot of the random effects, as lme4's ``dotplot(ranef(m, condVar = TRUE))``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ...errors import DataError, did_you_mean
from ...fitted import FittedModel
from ..random_effects import ranef_table
from ._draw import category_axis, panels, z_value

__all__ = ["RanefDisplay"]


@dataclass
class RanefDisplay:
    """The caterpillar plot's data, then its drawing.

    ``data`` is ``ranef_table`` with ``lower``, ``upper`` (condval -/+ z * condsd)
    and ``position`` (the level's row in its panel, 0 at the bottom): per
    grouping factor the levels are sorted by the conditional mode of its first
    term, the same order in every term's panel, as lme4's ``dotplot.ranef.mer``.
    """

    data: pd.DataFrame
    level: float
    figure_: Any = None

    @classmethod
    def from_model(cls, m: FittedModel, group: str | None = None, term: str | None = None,
                   level: float = 0.95) -> RanefDisplay:
        return cls.from_table(ranef_table(m), group=group, term=term, level=level)

    @classmethod
    def from_table(cls, t: pd.DataFrame, group: str | None = None, term: str | None = None,
                   level: float = 0.95) -> RanefDisplay:
        """From a table with lmer's ``ranef_table`` columns (group, term, level,
        condval, condsd), e.g. a glmmTMB model's one component."""
        z = z_value(level)
        for col, value in (("group", group), ("term", term)):
            if value is not None:
                if value not in set(t[col]):
                    raise DataError(f"{col}={value!r} is not a random-effect {col} of the "
                                    "model." + did_you_mean(value, sorted(set(t[col]))))
                t = t[t[col] == value]
        parts = []
        for _g, block in t.groupby("group", sort=False):
            first = block[block["term"] == block["term"].iloc[0]]
            order = first.sort_values("condval", kind="stable")["level"].tolist()
            rank = {lv: i for i, lv in enumerate(order)}
            parts.append(block.assign(position=block["level"].map(rank).astype(int)))
        data = pd.concat(parts, ignore_index=True)
        data["lower"] = data["condval"] - z * data["condsd"]
        data["upper"] = data["condval"] + z * data["condsd"]
        return cls(data=data, level=level)

    def plot(self, ax: Any = None) -> RanefDisplay:
        keys = list(dict.fromkeys(zip(self.data["group"], self.data["term"])))
        nlev = int(self.data.groupby("group")["position"].max().max()) + 1
        height = float(np.clip(0.16 * nlev + 1.0, 2.5, 10.0))
        fig, axes = panels(ax, len(keys), ncols=max(self.data.groupby("group")["term"]
                                                    .nunique()), size=(3.6, height))
        for a, (g, term) in zip(axes, keys):
            d = self.data[(self.data["group"] == g) & (self.data["term"] == term)]
            d = d.sort_values("position")
            a.axvline(0.0, color="0.6", lw=0.8, zorder=0)
            a.hlines(d["position"], d["lower"], d["upper"], color="#1f77b4",
                     lw=1.0 if len(d) < 200 else 0.4, label="interval")
            a.plot(d["condval"], d["position"], "o", color="#1f77b4",
                   ms=4 if len(d) < 200 else 1.5, label="conditional mode")
            category_axis(a, d["level"].astype(str).tolist())
            if (g, term) != next(k for k in keys if k[0] == g):
                a.tick_params(labelleft=False)  # same order as the group's first panel
            a.set_title(f"{g}: {term}", fontsize="medium")
            a.set_xlabel(f"conditional mode ± {z_value(self.level):.3g} × cond. SD")
        self.figure_ = fig
        return self


def plot_ranef(m: FittedModel, group: str | None = None, term: str | None = None,
               level: float = 0.95, ax: Any = None) -> Any:
    """Caterpillar plot of the random effects (lme4's ``dotplot(ranef(m, condVar=TRUE))``).

    Parameters
    ----------
    group, term : str, optional
        Draw only this grouping factor and/or term (one panel per group and
        term otherwise).
    level : float
        Intervals are the conditional mode -/+ z * conditional SD, z the
        normal quantile for ``level``.
    ax : matplotlib Axes, optional
        Draw into this Axes (the plot must then be one panel).

    Returns
    -------
    matplotlib.figure.Figure
        Its data: ``RanefDisplay.from_model(m, ...).data``.
    """
    return RanefDisplay.from_model(m, group=group, term=term, level=level).plot(ax=ax).figure_
