"""The fitted glmmTMB model: its methods (each one line into
:mod:`lmermagic.tmb_toolbox`) and its display."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from typing import Any

import pandas as pd

from . import tmb_checks, tmb_goodness, tmb_plots, tmb_save, tmb_toolbox
from .fitted import FittedModel
from .model import _html_head, _html_tail
from .toolbox.rcode import versions_line

__all__ = ["TmbModel"]


def _fmt(x: Any) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return ""
    if v != v:
        return ""
    if abs(v) < 1e-4 and v != 0:
        return f"{v:.1e}"
    return f"{v:.4g}"


@dataclass(frozen=True, eq=False, repr=False)
class TmbModel(FittedModel):
    """A fitted glmmTMB model with its results as pandas objects.

    Attributes
    ----------
    coefs : pandas.DataFrame
        One row per coefficient of each component: ``component`` (``cond``,
        ``zi``, ``disp``), ``term``, ``estimate``, ``std_error``, ``statistic``
        (Wald z), ``p_value``, ``conf_low``, ``conf_high`` (95 % Wald), as
        glmmTMB's ``summary(m)$coefficients``.
    varcorr : pandas.DataFrame
        ``component`` then lmer's columns (group, var1, var2, vcov, sdcor).
    ranef : dict of str to pandas.DataFrame
        The conditional model's ``ranef(m)$cond``: per grouping factor, rows =
        levels, columns = terms. ``ranef_table`` has every component with SDs.
    loglik, aic, bic, deviance (-2 logLik), df_resid, nobs, sigma
        As glmmTMB's ``logLik``, ``AIC``, ``BIC``, ``df.residual``, ``nobs``,
        ``sigma``.
    converged : bool
        The optimizer converged and the Hessian is positive definite.
    singular : bool
        The Hessian is not positive definite (glmmTMB's ``sdr$pdHess``).
    """

    df_resid: float = float("nan")

    @property
    def fixef(self) -> pd.Series:  # type: ignore[override]
        """The conditional model's fixed effects, as glmmTMB's ``fixef(m)$cond``."""
        c = self.coefs[self.coefs["component"] == "cond"]
        return pd.Series(c["estimate"].to_numpy(), index=pd.Index(c["term"], name="term"),
                         name="fixef")

    def predict(self, newdata: Any = None, type: str = "response",
                se_fit: bool = False) -> pd.Series | pd.DataFrame:
        """glmmTMB's ``predict(m, newdata, type)``: ``"response"``, ``"link"``,
        ``"zprob"`` (zero-inflation probability), ``"zlink"``, ``"conditional"``,
        ``"disp"``; ``se_fit=True`` adds ``se_fit``."""
        return tmb_toolbox.predict(self, newdata=newdata, type=type, se_fit=se_fit)

    def simulate(self, nsim: int = 1, seed: int | None = None) -> pd.DataFrame:
        """Responses simulated from the fit, as glmmTMB's ``simulate(m, nsim)``."""
        return tmb_toolbox.simulate(self, nsim=nsim, seed=seed)

    def confint(self, method: str = "wald", level: float = 0.95) -> pd.DataFrame:
        """glmmTMB's ``confint(m, method = "wald" | "profile" | "uniroot", level)``."""
        return tmb_toolbox.confint(self, method=method, level=level)

    def tidy(self, conf_int: bool = True, conf_level: float = 0.95) -> pd.DataFrame:
        """broom.mixed's ``tidy(m, conf.int, conf.level)`` in snake_case."""
        return tmb_toolbox.tidy(self, conf_int=conf_int, conf_level=conf_level)

    def glance(self) -> pd.DataFrame:
        """broom.mixed's ``glance(m)`` in snake_case."""
        return tmb_toolbox.glance(self)

    def augment(self) -> pd.DataFrame:
        """broom.mixed's ``augment(m)`` in snake_case."""
        return tmb_toolbox.augment(self)

    def check(self) -> pd.DataFrame:
        """Model checks, one row each (lmer's schema): singular fit, convergence,
        positive-definite Hessian, VIFs, overdispersion, zero-inflation (performance's)."""
        return tmb_checks.check(self)

    def r2(self) -> pd.Series:
        """Marginal and conditional R² (Nakagawa & Schielzeth), as performance's
        ``r2(m)`` (``r2_nakagawa``) for a glmmTMB mixed model."""
        return tmb_goodness.r2(self)

    def icc(self) -> pd.Series:
        """Adjusted and unadjusted intra-class correlation, as performance's ``icc(m)``."""
        return tmb_goodness.icc(self)

    @property
    def ranef_table(self) -> pd.DataFrame:
        """component, group, term, level, condval, condsd (glmmTMB's ``ranef(m)``
        with its conditional variances)."""
        return tmb_toolbox.ranef_table(self)

    # -- plots: a matplotlib Figure each (pip install 'lmermagic[plots]') ---------

    def plot_ranef(self, group: str | None = None, term: str | None = None,
                   level: float = 0.95, component: str = "cond", ax: Any = None) -> Any:
        """Caterpillar plot of one component's random effects (conditional
        modes -/+ z conditional SDs), as lmer's ``plot_ranef``."""
        return tmb_plots.ranef_display(self, group=group, term=term, level=level,
                                       component=component).plot(ax=ax).figure_

    def plot_coefs(self, intercept: bool = False, exponentiate: bool = False,
                   component: str = "cond", ax: Any = None) -> Any:
        """Forest plot of one component's coefficients with their 95 % Wald intervals."""
        return tmb_plots.coefs_display(self, intercept=intercept, exponentiate=exponentiate,
                                       component=component).plot(ax=ax).figure_

    def plot_diagnostics(self, panel: str | None = None, ax: Any = None) -> Any:
        """Residuals vs fitted, scale-location and Q-Q panels of the Pearson
        residuals (binned residuals for binomial), Q-Q of each random-effect term."""
        return tmb_plots.diagnostics_display(self, panel=panel).plot(ax=ax).figure_

    def r_code(self, path: str | os.PathLike[str] | None = None, write: bool = False) -> str:
        """A self-contained R script reproducing this fit with glmmTMB."""
        return tmb_toolbox.r_code(self, path, write=write)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model to one file; ``lmermagic.load_model(path)`` reads
        it back with every method working (see lmermagic.tmb_save)."""
        tmb_save.save(self, path)

    def summary(self) -> str:
        """glmmTMB's own ``summary()`` of the model, as text."""
        return tmb_toolbox.summary_text(self) + f"\n\n{versions_line(self.versions)}"

    def _model_line(self) -> str:
        parts = [f"glmmTMB, {self.family} ({self.link})"]
        req = self.request
        if req is not None and req.ziformula:
            hurdle = self.family.startswith("truncated")
            parts.append(f"{'hurdle' if hurdle else 'zero-inflation'} {req.ziformula}")
        if req is not None and req.dispformula:
            parts.append(f"dispersion {req.dispformula}")
        if self.reml:
            parts.append("REML")
        return "; ".join(parts)

    def __repr__(self) -> str:
        groups = ", ".join(f"{g}: {n}" for g, n in self.ngroups.items())
        return (f"<{self._model_line()}: {self.formula}\n"
                f"  data '{self.data_name}', {self.nobs} observations; groups {groups}\n"
                f"  logLik {self.loglik:.4f}, AIC {self.aic:.4f}"
                + ("" if self.converged else "; NOT converged") + ">")

    def _repr_html_(self) -> str:
        esc = html.escape
        rows = "".join(
            f"<tr><td>{esc(str(r.component))}</td><td style='text-align:left'>"
            f"<code>{esc(str(r.term))}</code></td>"
            + "".join(f"<td>{_fmt(getattr(r, c))}</td>" for c in
                      ("estimate", "std_error", "statistic", "p_value"))
            + f"<td>[{_fmt(r.conf_low)}, {_fmt(r.conf_high)}]</td></tr>"
            for r in self.coefs.itertuples(index=False))
        fixed = ("<table><thead><tr><th>component</th><th style='text-align:left'>term</th>"
                 "<th>estimate</th><th>std. error</th><th>z</th><th>p</th><th>95% CI</th>"
                 f"</tr></thead><tbody>{rows}</tbody></table>")
        vc = "".join(
            f"<tr><td>{esc(str(r.component))}</td><td>{esc(str(r.group))}</td>"
            f"<td>{esc('' if pd.isna(r.var1) else str(r.var1))}"
            f"{'' if pd.isna(r.var2) else ' : ' + esc(str(r.var2))}</td>"
            f"<td>{_fmt(r.vcov)}</td><td>{_fmt(r.sdcor)}</td></tr>"
            for r in self.varcorr.itertuples(index=False))
        random = ("<table><thead><tr><th>component</th><th>group</th><th>term</th>"
                  "<th>variance/cov</th><th>sd/corr</th></tr></thead>"
                  f"<tbody>{vc}</tbody></table>")
        groups = ", ".join(f"{esc(g)} ({n})" for g, n in self.ngroups.items())
        stats_line = (f"{self.nobs} obs · groups: {groups} · logLik {self.loglik:.4f} · "
                      f"AIC {self.aic:.2f} · BIC {self.bic:.2f} · df.resid "
                      f"{self.df_resid:g}")
        return (
            _html_head(self._model_line(), self.formula, self.data_name, stats_line)
            + f"<div style='margin-top:6px'><b>Fixed effects</b> "
            f"<span style='color:#777'>Wald z</span></div>{fixed}"
            f"<div style='margin-top:6px'><b>Random effects</b></div>{random}"
            + _html_tail(self.warnings, f"{versions_line(self.versions)}, glmmTMB "
                         f"{self.versions.get('glmmTMB', '')}"))
