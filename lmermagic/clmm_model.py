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

    :func:`lmermagic.clmm` returns one. The model is ``logit P(Y <= j) =
    theta_j - x'beta - z'b`` (or another link): thresholds ``theta``, location
    effects ``beta``, random effects ``b``. Tests are Wald z tests, as
    ``summary(m)``.

    Attributes
    ----------
    formula : str
        The model's formula, as given.
    link : str
        The link: logit, probit, cloglog, loglog or cauchit.
    threshold : str
        The threshold structure: flexible, symmetric, symmetric2 or
        equidistant.
    coefs : pandas.DataFrame
        Location effects indexed by R's term names, columns ``estimate,
        std_error, statistic, p_value, conf_low, conf_high``: Wald z tests as
        ``coef(summary(m))``, 95 % Wald intervals (as ``confint(m)``).
    thresholds : pandas.DataFrame
        The threshold parameters, same columns, indexed as ordinal names them:
        ``1|2``, ``2|3``, ... (``threshold="flexible"``), ``threshold.1,
        spacing`` (``"equidistant"``), ``central.1, spacing.1``, ...
        (``"symmetric"``/``"symmetric2"``).
    varcorr : pandas.DataFrame
        ``group, var1, var2, vcov, sdcor`` as lmer's (``VarCorr(m)``; no
        residual row).
    ranef : dict of str to pandas.DataFrame
        As ``ranef(m)``: per grouping factor, rows = levels, columns = terms.
    ranef_table : pandas.DataFrame
        ``group, term, level, condval, condsd``: the conditional modes and
        ``sqrt(condVar(m))``.
    theta : pandas.Series
        The thresholds themselves, one per pair of adjacent levels (``1|2``,
        ...), whatever the threshold structure (ordinal's ``m$Theta``).
    levels : list of str
        The response levels, lowest first (levels without observations are
        dropped by ordinal).
    fitted : pandas.Series
        ``fitted(m)``: the fitted probability of each observation's category,
        on the caller's index (NaN in rows dropped for missing values).
    nobs : int
        Observations used.
    ngroups : dict of str to int
        Number of levels of each grouping factor.
    loglik : float
        ``logLik(m)``.
    edf : int
        Number of estimated parameters (ordinal's ``edf``).
    aic : float
        ``AIC(m)``.
    bic : float
        ``BIC(m)``.
    cond_h : float
        The condition number of the Hessian, as ``summary(m)``'s ``cond.H``.
    max_grad : float
        The largest absolute gradient at the optimum (``max.grad``).
    neval : int
        The optimizer's function evaluations (ordinal's ``niter`` before the
        parentheses).
    converged : bool
        The optimizer reported success and R gave no convergence warning.
    warnings : list of str
        R's warnings and messages during the fit.
    dropped : pandas.Index
        The caller's index labels of the rows dropped for missing values.
    missing : dict of str to int
        Number of missing values per model column (columns with any).
    data_name : str
        The data's name, shown and used by ``r_code()``.
    kind : str
        ``"clmm"``.
    r_object : object
        lmermagic's handle on the R fit (``m.robj`` is the rpy2 object).
    r_data : object
        lmermagic's handle on the model's data in R.
    request : object
        The checked call (a ``ClmmRequest``): formula, link, threshold.
    data : pandas.DataFrame or polars.DataFrame
        The data as given to :func:`lmermagic.clmm` (not copied).
    name : str or None
        The model's name, if given.
    meta : dict of str to object
        Facts about the fit: ``cache`` (``"memory"`` or ``"miss"``),
        ``r_fit_seconds``, ``niter_inner`` (ordinal's inner iterations).
    versions : dict of str to str
        lmermagic, R, rpy2, lme4, Matrix and ordinal versions.

    Examples
    --------
    >>> import lmermagic
    >>> wine = lmermagic.datasets.load("wine", package="ordinal")
    >>> m = lmermagic.clmm("rating ~ temp + contact + (1 | judge)", wine)
    >>> m.levels
    ['1', '2', '3', '4', '5']
    >>> list(m.thresholds.index), list(m.coefs.index)
    (['1|2', '2|3', '3|4', '4|5'], ['tempwarm', 'contactyes'])
    """

    def predict_proba(self, newdata: Any = None) -> pd.DataFrame:
        """Probability of each response level, random effects at zero.

        For each row ``P(Y <= j) = F(theta_j - x'beta)`` with the fit's
        thresholds (``m.theta``), location effects and the link's
        distribution function ``F``: what ordinal's ``predict(<clm>, newdata,
        type = "prob")`` gives for a clm with the clmm's fixed parameters, the
        prediction for a new or typical group, not for the data's groups.

        Parameters
        ----------
        newdata : pandas.DataFrame or polars.DataFrame, optional
            The predictors (a response column is not used); default: the
            model's own data.

        Returns
        -------
        pandas.DataFrame
            One column per response level (``m.levels``, in order), rows
            summing to 1, on ``newdata``'s index (the caller's data's index by
            default); rows with a missing predictor are NaN.

        Raises
        ------
        lmermagic.DataError
            ``newdata`` lacks a column the model uses, or has a level of a
            factor the model was not fitted with.
        lmermagic.FitError
            R's prediction failed otherwise.

        Examples
        --------
        >>> import lmermagic
        >>> import pandas as pd
        >>> wine = lmermagic.datasets.load("wine", package="ordinal")
        >>> m = lmermagic.clmm("rating ~ temp + contact + (1 | judge)", wine)
        >>> new = pd.DataFrame({"temp": ["cold", "warm"], "contact": ["no", "yes"]})
        >>> p = m.predict_proba(new)
        >>> list(p.columns)
        ['1', '2', '3', '4', '5']
        >>> [round(float(v), 2) for v in p.loc[1]]
        [0.0, 0.03, 0.31, 0.43, 0.23]
        """
        return clmm_tools.predict_proba(self, newdata)

    def predict(self, newdata: Any = None, type: str = "prob") -> pd.DataFrame | pd.Series:
        """Predicted probabilities or the most probable level, random effects at zero.

        Parameters
        ----------
        newdata : pandas.DataFrame or polars.DataFrame, optional
            The predictors; default: the model's own data.
        type : {"prob", "class"}
            ``"prob"``: the probabilities of :meth:`lmermagic.ClmmModel.predict_proba`;
            ``"class"``: the most probable level of each row.

        Returns
        -------
        pandas.DataFrame or pandas.Series
            With ``"prob"``, one column per level; with ``"class"`` a Series
            ``class`` of ordered Categorical dtype (categories ``m.levels``),
            missing where a predictor is.

        Raises
        ------
        ValueError
            ``type`` is neither ``"prob"`` nor ``"class"``.
        lmermagic.DataError
            ``newdata`` lacks a column the model uses or has a new level.
        lmermagic.FitError
            R's prediction failed otherwise.

        Examples
        --------
        >>> import lmermagic
        >>> import pandas as pd
        >>> wine = lmermagic.datasets.load("wine", package="ordinal")
        >>> m = lmermagic.clmm("rating ~ temp + contact + (1 | judge)", wine)
        >>> new = pd.DataFrame({"temp": ["cold", "warm"], "contact": ["no", "yes"]})
        >>> list(m.predict(new, type="class"))
        ['2', '4']
        """
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
        """One row per threshold and effect, as broom's ``tidy(m)`` in snake_case.

        Computed in lmermagic from ``m.thresholds`` and ``m.coefs`` (R's broom
        is not needed); thresholds first, as R orders them.

        Parameters
        ----------
        conf_int : bool
            Add the Wald interval's bounds (broom's ``conf.int = TRUE``).
        conf_level : float
            Their confidence level, between 0 and 1.
        exponentiate : bool
            Apply ``exp`` to ``estimate`` and the bounds (odds ratios with the
            logit link), as broom does.

        Returns
        -------
        pandas.DataFrame
            Columns ``term, estimate, std_error, statistic, p_value`` (Wald z,
            as ``coef(summary(m))``), with ``conf_int`` also ``conf_low,
            conf_high``, then ``coef_type``: ``"intercept"`` for the
            thresholds, ``"location"`` for the effects.

        Raises
        ------
        lmermagic.DataError
            ``conf_level`` is not a number between 0 and 1.

        Examples
        --------
        >>> import lmermagic
        >>> wine = lmermagic.datasets.load("wine", package="ordinal")
        >>> m = lmermagic.clmm("rating ~ temp + contact + (1 | judge)", wine)
        >>> t = m.tidy(exponentiate=True)
        >>> list(t["coef_type"])
        ['intercept', 'intercept', 'intercept', 'intercept', 'location', 'location']
        >>> print(round(float(t.loc[4, "estimate"]), 1))  # odds ratio of tempwarm
        21.4
        """
        return clmm_tools.tidy(self, conf_int=conf_int, conf_level=conf_level,
                               exponentiate=exponentiate)

    def glance(self) -> pd.DataFrame:
        """The fit statistics in one row, as broom's ``glance(m)`` in snake_case.

        Returns
        -------
        pandas.DataFrame
            One row: broom's ``edf, aic, bic, loglik, nobs``, then ``cond_h``
            (the Hessian's condition number), ``max_grad``, ``converged`` and
            ``n_warnings``.

        Raises
        ------
        lmermagic.DataError
            The model has no R fit attached (not made by :func:`lmermagic.clmm`).

        Examples
        --------
        >>> import lmermagic
        >>> wine = lmermagic.datasets.load("wine", package="ordinal")
        >>> m = lmermagic.clmm("rating ~ temp + contact + (1 | judge)", wine)
        >>> g = m.glance()
        >>> int(g.loc[0, "edf"]), int(g.loc[0, "nobs"])
        (7, 72)
        """
        return clmm_tools.glance(self)

    def r_code(self, path: str | os.PathLike[str] | None = None, write: bool = False) -> str:
        """A self-contained R script reproducing this fit with ``ordinal::clmm``.

        The script reads the model's columns from a CSV file, makes the
        response an ordered factor with the fit's levels, sets R's options as
        lmermagic does around a fit, then calls ``clmm()`` and ``summary()``.

        Parameters
        ----------
        path : str or os.PathLike, optional
            The CSV file the script reads; default ``<data_name>.csv`` (or
            ``data.csv``).
        write : bool
            Also write the model's columns to ``path``.

        Returns
        -------
        str
            The R script.

        Raises
        ------
        lmermagic.DataError
            A factor level is the empty string (a CSV file cannot keep it),
            or with ``write=True`` the path is a directory or its folder does
            not exist or is not writable.
        lmermagic.FitError
            R could not read the model's columns or write the file.

        Examples
        --------
        >>> import lmermagic
        >>> wine = lmermagic.datasets.load("wine", package="ordinal")
        >>> m = lmermagic.clmm("rating ~ temp + contact + (1 | judge)", wine)
        >>> code = m.r_code("wine.csv", write=True)
        >>> "ordinal::clmm(" in code
        True
        """
        return clmm_tools.r_code(self, path, write=write)

    def summary(self) -> str:
        """R's own ``summary(m)`` of the model, as text.

        Returns
        -------
        str
            ordinal's printed summary: link, threshold, fit statistics, random
            effects, coefficients and thresholds.

        Raises
        ------
        lmermagic.FitError
            R could not print the summary.

        Examples
        --------
        >>> import lmermagic
        >>> wine = lmermagic.datasets.load("wine", package="ordinal")
        >>> m = lmermagic.clmm("rating ~ temp + contact + (1 | judge)", wine)
        >>> print(m.summary())
        Cumulative Link Mixed Model fitted with the Laplace approximation
        ...
        """
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
