"""Plots of a glmmTMB fit, drawn by lmer's plot classes
(:mod:`lmermagic.toolbox.plots`) from the glmmTMB model's own tables: the
caterpillar plot of a component's random effects, the forest plot of a
component's coefficients, and the diagnostic panels (residuals vs fitted,
scale-location and Q-Q of the Pearson residuals, or binned residuals for a
binomial model; a Q-Q plot per random-effect term)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .errors import DataError, did_you_mean
from .fitted import FittedModel
from .toolbox.plots import CoefsDisplay, DiagnosticsDisplay, RanefDisplay, binned_residuals
from .toolbox.plots._draw import normal_quantiles, qq_line, smooth

__all__ = ["coefs_display", "diagnostics_display", "ranef_display"]

COMPONENTS = ("cond", "zi", "disp")
_RATIO = {"log": "rate ratio", "logit": "odds ratio"}


def _component(component: str, present: list[str]) -> None:
    if component not in present:
        raise DataError(f"component={component!r}: this model has "
                        f"{', '.join(present) or 'no such'} component(s)."
                        + did_you_mean(component, present))


def ranef_display(m: Any, group: str | None = None, term: str | None = None,
                  level: float = 0.95, component: str = "cond") -> RanefDisplay:
    """The caterpillar plot's data of one component's random effects."""
    t = m.ranef_table
    _component(component, list(dict.fromkeys(t["component"])))
    return RanefDisplay.from_table(t[t["component"] == component].drop(columns="component"),
                                   group=group, term=term, level=level)


def coefs_display(m: FittedModel, intercept: bool = False, exponentiate: bool = False,
                  component: str = "cond") -> CoefsDisplay:
    """The forest plot's data of one component's coefficients (95 % Wald)."""
    _component(component, list(dict.fromkeys(m.coefs["component"])))
    c = m.coefs[m.coefs["component"] == component].set_index("term")
    c = c[["estimate", "conf_low", "conf_high"]]
    if not intercept:
        c = c[c.index != "(Intercept)"]
    if c.empty:
        raise DataError("the component has no coefficient besides the intercept: "
                        "intercept=True draws it.")
    label = "estimate (95 % Wald interval)"
    link = m.link if component == "cond" else "logit" if component == "zi" else "log"
    if exponentiate:
        if link not in _RATIO:
            raise DataError(f"exponentiate=True is for a log or logit link; this "
                            f"component's link is {link!r}.")
        c = np.exp(c)
        label = f"{_RATIO[link]} (95 % Wald interval)"
    return CoefsDisplay(data=c.assign(position=np.arange(len(c))[::-1]),
                        exponentiate=exponentiate, label=label)


def diagnostics_display(m: Any, panel: str | None = None) -> DiagnosticsDisplay:
    """Residuals vs fitted, scale-location (sqrt|Pearson residual|), a Q-Q plot
    of the Pearson residuals (binned residuals for binomial models) and one per
    random-effect term of the conditional model."""
    from .tmb_checks import _pieces

    used = m.fitted.notna().to_numpy()
    fitted = m.fitted.to_numpy(dtype=float)[used]
    resid = m.residuals.to_numpy(dtype=float)[used]
    pearson = np.asarray(_pieces(m)["pearson"], dtype=float)
    out: dict[str, pd.DataFrame] = {}
    smooths: dict[str, pd.DataFrame] = {}
    lines: dict[str, tuple[float, float]] = {}
    if m.family == "binomial":
        out["binned_residuals"] = binned_residuals(fitted, resid)
    else:
        out["residuals_vs_fitted"] = pd.DataFrame({"x": fitted, "y": resid})
        if pearson.size:
            out["scale_location"] = pd.DataFrame({"x": fitted, "y": np.sqrt(np.abs(pearson))})
            srt = np.sort(pearson)
            out["qq_residuals"] = pd.DataFrame({"x": normal_quantiles(srt.size), "y": srt})
            lines["qq_residuals"] = qq_line(srt)
        for key in ("residuals_vs_fitted", "scale_location"):
            if key in out:
                sx, sy = smooth(out[key]["x"].to_numpy(), out[key]["y"].to_numpy())
                smooths[key] = pd.DataFrame({"x": sx, "y": sy})
    t = m.ranef_table
    return DiagnosticsDisplay.with_ranef(out, smooths, lines, t[t["component"] == "cond"],
                                         panel)
