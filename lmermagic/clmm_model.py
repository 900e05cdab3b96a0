"""The fitted ordinal mixed model: its methods (each one line into
:mod:`lmermagic.clmm_tools`) and its display."""

from __future__ import annotations

import html
import os
from typing import Any

import pandas as pd

from . import clmm_tools
from .clmm_fit import ClmmFitted
from .model import _fmt, _fmt_p, _html_head, _html_tail, _stars
from .toolbox.rcode import versions_line

__all__ = ["ClmmModel"]


class ClmmModel(ClmmFitted):
    """A cumulative link mixed model fitted with R's ``ordinal::clmm``.

    Attributes
    ----------
    coefs : pandas.DataFrame
        Location effects indexed by R's term names, columns ``estimate,
        std_error, statistic, p_value, conf_low, conf_high``: Wald z tests as
        ``coef(summary(m))``, 95 % Wald intervals (as ``confint(m)``).
    thresholds : pandas.DataFrame
        The threshold parameters, same columns, indexed as ordinal names them:
        ``1|2``, ``2|3``, ... (``threshold="flexible"``), ``threshold.1,
        spacing`` (``"equidistant"``), ``central.1, spacing.1``, ...
        (``"symmetric"``/``"symmetric2"``).
    theta : pandas.Series
        The thresholds themselves, one per pair of adjacent levels (``1|2``,
        ...), whatever the threshold structure (ordinal's ``m$Theta``).
    levels : list of str
        The response levels, lowest first (levels without observations are
        dropped by ordinal).
    varcorr : pandas.DataFrame
        ``group, var1, var2, vcov, sdcor`` as lmer's (``VarCorr(m)``; no
        residual row).
    ranef : dict of str to pandas.DataFrame
        As ``ranef(m)``: per grouping factor, rows = levels, columns = terms.
    ranef_table : pandas.DataFrame
        ``group, term, level, condval, condsd``: the conditional modes and
        ``sqrt(condVar(m))``.
    fitted : pandas.Series
        ``fitted(m)``: the fitted probability of each observation's category,
        on the caller's index (NaN in rows dropped for missing values).
    nobs, edf, neval : int
        Observations, parameters (ordinal's ``edf``), the optimizer's
        function evaluations (ordinal's ``niter`` before the parentheses).
    ngroups : dict of str to int
    loglik, aic, bic : float
    cond_h : float
        The condition number of the Hessian, as ``summary(m)``'s ``cond.H``.
    max_grad : float
        The largest absolute gradient at the optimum (``max.grad``).
    link, threshold, formula : str
    converged : bool
    warnings : list of str
    dropped : pandas.Index
    missing : dict of str to int
    versions : dict of str to str
        lmermagic, R, rpy2 and ordinal versions.
    """

    def predict_proba(self, newdata: Any = None) -> pd.DataFrame:
        """Probability of each response level for ``newdata``, random effects at
        zero (see :func:`lmermagic.clmm_tools.predict_proba`)."""
        return clmm_tools.predict_proba(self, newdata)

    def predict(self, newdata: Any = None, type: str = "prob") -> pd.DataFrame | pd.Series:
        """``type="prob"``: :meth:`predict_proba`; ``type="class"``: the most
        probable level per row (an ordered Categorical Series)."""
        prob = clmm_tools.predict_proba(self, newdata)
        if type == "prob":
            return prob
        if type == "class":
            dtype = pd.CategoricalDtype(self.levels, ordered=True)
            best = prob.to_numpy().argmax(axis=1)
            values = [None if row.isna().any() else self.levels[i]
                      for i, (_, row) in zip(best, prob.iterrows())]
            return pd.Series(values, index=prob.index, dtype=dtype, name="class")
        raise ValueError(f"type={type!r}: use 'prob' or 'class'.")

    def tidy(self, conf_int: bool = True, conf_level: float = 0.95,
             exponentiate: bool = False) -> pd.DataFrame:
        """One row per threshold and effect, as broom's ``tidy(m)`` in snake_case."""
        return clmm_tools.tidy(self, conf_int=conf_int, conf_level=conf_level,
                               exponentiate=exponentiate)

    def glance(self) -> pd.DataFrame:
        """The fit statistics in one row, as broom's ``glance(m)`` in snake_case."""
        return clmm_tools.glance(self)

    def r_code(self, path: str | os.PathLike[str] | None = None, write: bool = False) -> str:
        """A self-contained R script reproducing this fit."""
        return clmm_tools.r_code(self, path, write=write)

    def summary(self) -> str:
        """R's own ``summary()`` of the model, as text."""
        return clmm_tools.summary_text(self)

    def _line(self) -> str:
        return f"Cumulative link mixed model ({self.link} link, {self.threshold} thresholds)"

    def __repr__(self) -> str:
        groups = ", ".join(f"{g}: {n}" for g, n in self.ngroups.items())
        return "\n".join([
            f"<{self._line()}: {self.formula}",
            (f"  data '{self.data_name}', {self.nobs} observations; groups {groups}; "
             f"levels {' < '.join(self.levels)}"),
            f"  logLik {self.loglik:.4f}, AIC {self.aic:.4f}, cond.H {self.cond_h:.1e}"
            + ("" if self.converged else "; NOT converged") + ">",
        ])

    def _repr_html_(self) -> str:
        esc = html.escape

        def rows(table: pd.DataFrame) -> str:
            return "".join(
                f"<tr><td style='text-align:left'><code>{esc(str(term))}</code></td>"
                + "".join(f"<td>{_fmt(r[c])}</td>" for c in
                          ("estimate", "std_error", "statistic"))
                + f"<td>{_fmt_p(r['p_value'])}</td><td>{_stars(r['p_value'])}</td>"
                + f"<td>[{_fmt(r['conf_low'])}, {_fmt(r['conf_high'])}]</td></tr>"
                for term, r in table.iterrows())

        head = ("<table><thead><tr><th style='text-align:left'>term</th><th>estimate</th>"
                "<th>std. error</th><th>z</th><th>p</th><th></th><th>95% CI</th></tr>"
                "</thead><tbody>")
        vc = "".join(
            f"<tr><td style='text-align:left'>{esc(str(r['group']))}</td>"
            f"<td style='text-align:left'>{esc(str(r['var1']))}"
            f"{'' if pd.isna(r['var2']) else ' : ' + esc(str(r['var2']))}</td>"
            f"<td>{_fmt(r['vcov'])}</td>"
            f"<td>{'sd' if pd.isna(r['var2']) else 'corr'} {_fmt(r['sdcor'])}</td></tr>"
            for _, r in self.varcorr.iterrows())
        groups = ", ".join(f"{esc(g)} ({n})" for g, n in self.ngroups.items())
        stats = (f"{self.nobs} obs · groups: {groups} · levels "
                 f"{esc(' < '.join(self.levels))} · logLik {self.loglik:.4f} · "
                 f"AIC {self.aic:.2f} · BIC {self.bic:.2f} · cond.H {self.cond_h:.1e}")
        version = versions_line(self.versions) + f", ordinal {self.versions.get('ordinal', '?')}"
        return (
            _html_head(self._line(), self.formula, self.data_name, stats)
            + f"<div style='margin-top:6px'><b>Location effects</b></div>{head}"
            f"{rows(self.coefs)}</tbody></table>"
            f"<div style='margin-top:6px'><b>Thresholds</b></div>{head}"
            f"{rows(self.thresholds)}</tbody></table>"
            "<div style='margin-top:6px'><b>Random effects</b></div><table><thead><tr>"
            "<th style='text-align:left'>group</th><th style='text-align:left'>term</th>"
            f"<th>variance/cov</th><th>sd/corr</th></tr></thead><tbody>{vc}</tbody></table>"
            + _html_tail(self.warnings, version)
        )
