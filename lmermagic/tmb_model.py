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

    :func:`lmermagic.glmmtmb` returns one; :func:`lmermagic.load_model` reads
    one back from ``m.save(path)``. It keeps lmer's contract (``coefs``,
    ``varcorr``, ``ranef``, ``tidy``, ``glance``, ``augment``, ``r_code``,
    plots) with a ``component`` column where glmmTMB has several models: the
    conditional model (``cond``), zero-inflation (``zi``) and dispersion
    (``disp``). All tests are Wald z tests, as glmmTMB's ``summary()``.

    Attributes
    ----------
    formula : str
        The conditional model's formula, as given.
    kind : str
        ``"glmmTMB"``.
    family : str
        glmmTMB's family name, e.g. ``"nbinom2"``.
    link : str
        The conditional model's link, e.g. ``"log"``.
    reml : bool
        Fitted by REML instead of maximum likelihood.
    ddf : str
        ``"asymptotic"``: z tests, no denominator degrees of freedom.
    coefs : pandas.DataFrame
        One row per coefficient of each component: ``component`` (``cond``,
        ``zi``, ``disp``), ``term``, ``estimate``, ``std_error``,
        ``statistic`` (Wald z), ``p_value``, ``conf_low``, ``conf_high``
        (95 % Wald), as glmmTMB's ``summary(m)$coefficients``.
    varcorr : pandas.DataFrame
        ``component``, then lmer's columns ``group, var1, var2, vcov, sdcor``
        (glmmTMB's ``VarCorr(m)``; ``var2`` is missing on variance rows).
    ranef : dict of str to pandas.DataFrame
        The conditional model's ``ranef(m)$cond``: per grouping factor, rows
        = levels, columns = terms. ``m.ranef_table`` has every component with
        the conditional SDs.
    fitted : pandas.Series
        ``fitted(m)`` (response scale) on the caller's index, NaN in rows
        dropped for missing values.
    residuals : pandas.Series
        ``residuals(m, type = "response")``, on the caller's index as
        ``fitted``.
    nobs : int
        Observations used (``nobs(m)``).
    ngroups : dict of str to int
        Number of levels of each grouping factor.
    loglik : float
        ``logLik(m)``.
    df_model : int
        Number of estimated parameters (``attr(logLik(m), "df")``).
    df_resid : float
        ``df.residual(m)``.
    aic : float
        ``AIC(m)``.
    bic : float
        ``BIC(m)``.
    deviance : float
        ``-2 * logLik(m)``.
    reml_criterion : float
        Always NaN (lme4's REML criterion; glmmTMB has none).
    sigma : float
        ``sigma(m)``, the dispersion parameter (NaN when a dispersion model
        gives each observation its own).
    converged : bool
        The optimizer converged and the Hessian is positive definite.
    singular : bool
        The Hessian is not positive definite (glmmTMB's ``sdr$pdHess`` is
        FALSE): the standard errors are unreliable.
    warnings : list of str
        R's warnings and messages during the fit, and the optimizer's message
        when it did not converge.
    dropped : pandas.Index
        The caller's index labels of the rows dropped for missing values.
    missing : dict of str to int
        Number of missing values per model column (columns with any).
    theta : numpy.ndarray
        Empty: lme4's covariance parameters, which glmmTMB does not use.
    data_name : str
        The data's name, shown and used by ``r_code()``.
    r_object : object
        lmermagic's handle on the R fit (``m.robj`` is the rpy2 object).
    r_data : object
        lmermagic's handle on the model's data in R.
    request : object
        The checked call (a ``TmbRequest``): formulas, family, options.
    data : pandas.DataFrame or polars.DataFrame
        The data as given to :func:`lmermagic.glmmtmb` (not copied).
    name : str or None
        The model's name, if given.
    meta : dict of str to object
        Facts about the fit: ``cache`` (``"memory"``, ``"disk"`` or
        ``"miss"``), ``r_fit_seconds``, ``glmmTMB`` (its version).
    versions : dict of str to str
        lmermagic, R, rpy2, lme4, Matrix and glmmTMB versions.

    Examples
    --------
    >>> import lmermagic
    >>> sal = lmermagic.datasets.load("Salamanders", package="glmmTMB")
    >>> m = lmermagic.glmmtmb("count ~ mined + (1 | site)", sal, family="nbinom2",
    ...                       ziformula="~ mined")
    >>> list(m.coefs["component"])
    ['cond', 'cond', 'zi', 'zi']
    >>> m.nobs, m.ngroups
    (644, {'site': 23})
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
        """Predictions of the fit, as glmmTMB's ``predict(m, newdata, type)``.

        With ``newdata``, R's ``allow.new.levels = TRUE``: a new level of a
        grouping factor gets random effects zero.

        Parameters
        ----------
        newdata : pandas.DataFrame or polars.DataFrame, optional
            The predictors; default: the model's own data (rows dropped for
            missing values are NaN).
        type : {"response", "link", "zprob", "zlink", "conditional", "disp"}
            glmmTMB's scale: the mean response (default), the linear
            predictor, the zero-inflation probability or its linear
            predictor, the mean of the conditional model alone, the
            dispersion.
        se_fit : bool
            Also return the standard errors (``se.fit = TRUE``).

        Returns
        -------
        pandas.Series or pandas.DataFrame
            A Series ``predicted`` on ``newdata``'s index (the caller's data's
            index by default); with ``se_fit=True`` a DataFrame with columns
            ``predicted, se_fit``.

        Raises
        ------
        lmermagic.DataError
            ``type`` is not one of glmmTMB's, or ``newdata`` has a level of a
            fixed-effect factor the model was not fitted with.
        lmermagic.FitError
            R's ``predict()`` failed, e.g. a column the model uses is missing
            from ``newdata``.

        Examples
        --------
        >>> import lmermagic
        >>> import pandas as pd
        >>> sal = lmermagic.datasets.load("Salamanders", package="glmmTMB")
        >>> m = lmermagic.glmmtmb("count ~ mined + (1 | site)", sal, family="nbinom2",
        ...                       ziformula="~ mined")
        >>> new = pd.DataFrame({"mined": ["yes", "no"], "site": ["R-1", "new"]})
        >>> p = m.predict(new, type="zprob", se_fit=True)
        >>> list(p.columns), [round(float(v), 2) for v in p["predicted"]]
        (['predicted', 'se_fit'], [0.56, 0.12])
        """
        return tmb_toolbox.predict(self, newdata=newdata, type=type, se_fit=se_fit)

    def simulate(self, nsim: int = 1, seed: int | None = None) -> pd.DataFrame:
        """Responses simulated from the fit, as glmmTMB's ``simulate(m, nsim)``.

        R's random state is restored afterwards, so the notebook's R stream
        is not moved.

        Parameters
        ----------
        nsim : int
            Number of simulated responses (columns).
        seed : int, optional
            ``set.seed(seed)`` before simulating, for reproducible draws.

        Returns
        -------
        pandas.DataFrame
            Columns ``sim_1`` ... ``sim_<nsim>``, on the caller's index; NaN in
            rows dropped for missing values.

        Raises
        ------
        lmermagic.DataError
            ``nsim`` is not a positive whole number or ``seed`` not a whole
            number within +/-2**31.
        lmermagic.FitError
            R's ``simulate()`` failed.

        Examples
        --------
        >>> import lmermagic
        >>> sal = lmermagic.datasets.load("Salamanders", package="glmmTMB")
        >>> m = lmermagic.glmmtmb("count ~ mined + (1 | site)", sal, family="nbinom2",
        ...                       ziformula="~ mined")
        >>> m.simulate(nsim=3, seed=1).shape
        (644, 3)
        """
        return tmb_toolbox.simulate(self, nsim=nsim, seed=seed)

    def confint(self, method: str = "wald", level: float = 0.95) -> pd.DataFrame:
        """Confidence intervals, as glmmTMB's ``confint(m, method, level)``.

        Parameters
        ----------
        method : {"wald", "profile", "uniroot"}
            Wald intervals (fast), or likelihood-profile intervals (slow:
            one profile per parameter).
        level : float
            Confidence level, between 0 and 1.

        Returns
        -------
        pandas.DataFrame
            Rows named as glmmTMB names them (``cond.minedno``,
            ``zi.(Intercept)``, ``cond.Std.Dev.(Intercept)|site``, ...);
            columns ``conf_low, conf_high, estimate``.

        Raises
        ------
        lmermagic.DataError
            ``method`` is not one of the three, or ``level`` not in (0, 1).
        lmermagic.FitError
            R's ``confint()`` failed.

        Examples
        --------
        >>> import lmermagic
        >>> sal = lmermagic.datasets.load("Salamanders", package="glmmTMB")
        >>> m = lmermagic.glmmtmb("count ~ mined + (1 | site)", sal, family="nbinom2",
        ...                       ziformula="~ mined")
        >>> ci = m.confint()
        >>> list(ci.columns)
        ['conf_low', 'conf_high', 'estimate']
        >>> print(round(float(ci.loc["cond.minedno", "conf_low"]), 2))
        0.76
        """
        return tmb_toolbox.confint(self, method=method, level=level)

    def tidy(self, conf_int: bool = True, conf_level: float = 0.95) -> pd.DataFrame:
        """One row per parameter, as broom.mixed's ``tidy(m, conf.int, conf.level)``.

        Parameters
        ----------
        conf_int : bool
            Add the Wald interval's bounds.
        conf_level : float
            Their confidence level.

        Returns
        -------
        pandas.DataFrame
            broom.mixed's columns in snake_case: ``effect`` (``fixed``,
            ``ran_pars``), ``component``, ``group``, ``term``, ``estimate``,
            ``std_error``, ``statistic``, ``p_value``, and with ``conf_int``
            ``conf_low, conf_high``.

        Raises
        ------
        lmermagic.FitError
            R failed, e.g. the R package broom.mixed is not installed.

        Examples
        --------
        >>> import lmermagic
        >>> sal = lmermagic.datasets.load("Salamanders", package="glmmTMB")
        >>> m = lmermagic.glmmtmb("count ~ mined + (1 | site)", sal, family="nbinom2",
        ...                       ziformula="~ mined")
        >>> list(m.tidy()["effect"])
        ['fixed', 'fixed', 'fixed', 'fixed', 'ran_pars']
        """
        return tmb_toolbox.tidy(self, conf_int=conf_int, conf_level=conf_level)

    def glance(self) -> pd.DataFrame:
        """The fit statistics in one row, as broom.mixed's ``glance(m)``.

        Returns
        -------
        pandas.DataFrame
            One row: ``nobs, sigma, loglik, aic, bic, df_resid`` (columns a
            broom.mixed release adds are left out).

        Raises
        ------
        lmermagic.FitError
            R failed, e.g. the R package broom.mixed is not installed.

        Examples
        --------
        >>> import lmermagic
        >>> sal = lmermagic.datasets.load("Salamanders", package="glmmTMB")
        >>> m = lmermagic.glmmtmb("count ~ mined + (1 | site)", sal, family="nbinom2",
        ...                       ziformula="~ mined")
        >>> list(m.glance().columns)
        ['nobs', 'sigma', 'loglik', 'aic', 'bic', 'df_resid']
        """
        return tmb_toolbox.glance(self)

    def augment(self) -> pd.DataFrame:
        """The model frame with fitted values, as broom.mixed's ``augment(m)``.

        Returns
        -------
        pandas.DataFrame
            The model's columns, then ``fitted``, ``se_fit`` and ``resid``
            (broom.mixed's ``.fitted``, ``.se.fit``, ``.resid``; other columns
            a broom.mixed release adds are left out). One row per observation
            used, numbered from 0.

        Raises
        ------
        lmermagic.FitError
            R failed, e.g. the R package broom.mixed is not installed.

        Examples
        --------
        >>> import lmermagic
        >>> sal = lmermagic.datasets.load("Salamanders", package="glmmTMB")
        >>> m = lmermagic.glmmtmb("count ~ mined + (1 | site)", sal, family="nbinom2",
        ...                       ziformula="~ mined")
        >>> list(m.augment().columns)
        ['count', 'mined', 'site', 'fitted', 'se_fit', 'resid']
        """
        return tmb_toolbox.augment(self)

    def check(self) -> pd.DataFrame:
        """Model checks, one row each, as R's performance package makes them.

        Singular fit (a conditional random-effect variance below 1e-5, as
        ``check_singularity``), convergence (the optimizer's code), a
        positive-definite Hessian, collinearity of the conditional model
        (``check_collinearity``), overdispersion (count and binomial
        families, ``check_overdispersion``) and zero-inflation (count
        families, ``check_zeroinflation``). The numbers are computed in
        lmermagic from the fit's pieces, so performance need not be installed.

        Returns
        -------
        pandas.DataFrame
            lmer's ``check()`` schema: ``check, term, statistic, value,
            adjusted, df, p_value, observed, expected, ok, verdict``.

        Raises
        ------
        lmermagic.FitError
            R could not extract the fit's pieces.

        Examples
        --------
        >>> import lmermagic
        >>> sal = lmermagic.datasets.load("Salamanders", package="glmmTMB")
        >>> m = lmermagic.glmmtmb("count ~ mined + (1 | site)", sal, family="nbinom2",
        ...                       ziformula="~ mined")
        >>> list(m.check()["check"])  # doctest: +NORMALIZE_WHITESPACE
        ['singular', 'convergence', 'pd_hessian', 'collinearity', 'overdispersion',
         'zero_inflation']
        """
        return tmb_checks.check(self)

    def r2(self) -> pd.Series:
        """Marginal and conditional R², as performance's ``r2(m)`` for a glmmTMB model.

        Nakagawa & Schielzeth's R² (``r2_nakagawa``), computed in lmermagic
        from the fit's variance components (the null model fitted once in R
        where the family needs it).

        Returns
        -------
        pandas.Series
            ``r2_marginal``, ``r2_conditional``, named ``"r2"``;
            ``attrs["variances"]`` holds the variance components.

        Raises
        ------
        lmermagic.FitError
            R could not compute the pieces (e.g. the null model's fit).

        Warns
        -----
        lmermagic.SingularFitWarning
            No random-effect variance: the conditional R² is NaN.
        lmermagic.LmerWarning
            No distribution-specific variance for this family and link (or a
            dispersion model): NaN, as performance gives NA.

        Examples
        --------
        >>> import lmermagic
        >>> sal = lmermagic.datasets.load("Salamanders", package="glmmTMB")
        >>> m = lmermagic.glmmtmb("count ~ mined + (1 | site)", sal, family="nbinom2",
        ...                       ziformula="~ mined")
        >>> print(m.r2().round(2).to_string())
        r2_marginal       0.44
        r2_conditional    0.56
        """
        return tmb_goodness.r2(self)

    def icc(self) -> pd.Series:
        """Adjusted and unadjusted intra-class correlation, as performance's ``icc(m)``.

        Computed from the same variance components as :meth:`lmermagic.TmbModel.r2`.

        Returns
        -------
        pandas.Series
            ``icc_adjusted``, ``icc_unadjusted``, named ``"icc"``.

        Raises
        ------
        lmermagic.FitError
            R could not compute the pieces.

        Warns
        -----
        lmermagic.SingularFitWarning
            No random-effect variance: NaN.
        lmermagic.LmerWarning
            No distribution-specific variance for this family and link: NaN.

        Examples
        --------
        >>> import lmermagic
        >>> sal = lmermagic.datasets.load("Salamanders", package="glmmTMB")
        >>> m = lmermagic.glmmtmb("count ~ mined + (1 | site)", sal, family="nbinom2",
        ...                       ziformula="~ mined")
        >>> print(m.icc().round(2).to_string())
        icc_adjusted      0.20
        icc_unadjusted    0.11
        """
        return tmb_goodness.icc(self)

    @property
    def ranef_table(self) -> pd.DataFrame:
        """The random effects of every component with their conditional SDs.

        glmmTMB's ``ranef(m, condVar = TRUE)`` in one table: ``component,
        group, term, level, condval, condsd``.
        """
        return tmb_toolbox.ranef_table(self)

    # -- plots: a matplotlib Figure each (pip install 'lmermagic[plots]') ---------

    def plot_ranef(self, group: str | None = None, term: str | None = None,
                   level: float = 0.95, component: str = "cond", ax: Any = None) -> Any:
        """Caterpillar plot of one component's random effects.

        Conditional modes -/+ z conditional SDs (``m.ranef_table``), levels
        sorted by their mode, one panel per grouping factor and term, as
        :meth:`lmermagic.LmerModel.plot_ranef`.

        Parameters
        ----------
        group : str, optional
            Draw only this grouping factor.
        term : str, optional
            Draw only this random-effect term, e.g. ``"(Intercept)"``.
        level : float
            Intervals' coverage: z is the normal quantile for ``level``.
        component : {"cond", "zi"}
            Which model's random effects.
        ax : matplotlib.axes.Axes, optional
            Draw into this Axes (one panel only); default: a new Figure.

        Returns
        -------
        matplotlib.figure.Figure
            The figure drawn on (``ax``'s figure if given).

        Raises
        ------
        lmermagic.DataError
            ``component``, ``group`` or ``term`` is not the model's, ``level``
            not in (0, 1), or ``ax`` given for more than one panel.
        lmermagic.OptionalDependencyError
            matplotlib is not installed.

        Examples
        --------
        >>> import lmermagic
        >>> sal = lmermagic.datasets.load("Salamanders", package="glmmTMB")
        >>> m = lmermagic.glmmtmb("count ~ mined + (1 | site)", sal, family="nbinom2",
        ...                       ziformula="~ mined")
        >>> fig = m.plot_ranef()
        """
        return tmb_plots.ranef_display(self, group=group, term=term, level=level,
                                       component=component).plot(ax=ax).figure_

    def plot_coefs(self, intercept: bool = False, exponentiate: bool = False,
                   component: str = "cond", ax: Any = None) -> Any:
        """Forest plot of one component's coefficients with their 95 % Wald intervals.

        Parameters
        ----------
        intercept : bool
            Also draw the intercept.
        exponentiate : bool
            Draw ``exp()`` of the estimates and bounds: rate ratios (log
            link) or odds ratios (logit link; the ``zi`` component).
        component : {"cond", "zi", "disp"}
            Which model's coefficients.
        ax : matplotlib.axes.Axes, optional
            Draw into this Axes; default: a new Figure.

        Returns
        -------
        matplotlib.figure.Figure
            The figure drawn on.

        Raises
        ------
        lmermagic.DataError
            The model has no such component, the component has only an
            intercept (and ``intercept=False``), or ``exponentiate=True``
            with a link other than log or logit.
        lmermagic.OptionalDependencyError
            matplotlib is not installed.

        Examples
        --------
        >>> import lmermagic
        >>> sal = lmermagic.datasets.load("Salamanders", package="glmmTMB")
        >>> m = lmermagic.glmmtmb("count ~ mined + (1 | site)", sal, family="nbinom2",
        ...                       ziformula="~ mined")
        >>> fig = m.plot_coefs(component="zi", exponentiate=True)
        """
        return tmb_plots.coefs_display(self, intercept=intercept, exponentiate=exponentiate,
                                       component=component).plot(ax=ax).figure_

    def plot_diagnostics(self, panel: str | None = None, ax: Any = None) -> Any:
        """Diagnostic panels of the residuals and random effects.

        Residuals vs fitted (response residuals, with a smoother),
        scale-location and a normal Q-Q plot of the Pearson residuals (for a
        binomial model binned residuals instead), and a normal Q-Q plot of
        each random-effect term of the conditional model.

        Parameters
        ----------
        panel : str, optional
            Draw only this panel: ``"residuals_vs_fitted"``,
            ``"scale_location"``, ``"qq_residuals"``, ``"binned_residuals"``
            or ``"qq_ranef <group>: <term>"``.
        ax : matplotlib.axes.Axes, optional
            Draw into this Axes (one panel only); default: a new Figure.

        Returns
        -------
        matplotlib.figure.Figure
            The figure drawn on.

        Raises
        ------
        lmermagic.DataError
            ``panel`` is not one of this model's, or ``ax`` given for more
            than one panel.
        lmermagic.FitError
            R could not compute the Pearson residuals.
        lmermagic.OptionalDependencyError
            matplotlib is not installed.

        Examples
        --------
        >>> import lmermagic
        >>> sal = lmermagic.datasets.load("Salamanders", package="glmmTMB")
        >>> m = lmermagic.glmmtmb("count ~ mined + (1 | site)", sal, family="nbinom2",
        ...                       ziformula="~ mined")
        >>> fig = m.plot_diagnostics()
        >>> len(fig.axes)
        4
        """
        return tmb_plots.diagnostics_display(self, panel=panel).plot(ax=ax).figure_

    def r_code(self, path: str | os.PathLike[str] | None = None, write: bool = False) -> str:
        """A self-contained R script reproducing this fit with ``glmmTMB::glmmTMB``.

        The script reads the model's columns from a CSV file, restores their
        classes and factor levels, sets R's options as lmermagic does around
        a fit, then calls ``glmmTMB()`` and ``summary()``.

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
        >>> sal = lmermagic.datasets.load("Salamanders", package="glmmTMB")
        >>> m = lmermagic.glmmtmb("count ~ mined + (1 | site)", sal, family="nbinom2",
        ...                       ziformula="~ mined")
        >>> code = m.r_code("salamanders.csv", write=True)
        >>> "glmmTMB::glmmTMB(" in code
        True
        """
        return tmb_toolbox.r_code(self, path, write=write)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model to one file that :func:`lmermagic.load_model` reads back.

        The file holds the call, the fit's tables and the fit with its data
        (the columns the model uses); the model read back has every method
        working. Written atomically (a temporary file, then renamed).

        Parameters
        ----------
        path : str or os.PathLike
            The file to write (replaced if it exists).

        Raises
        ------
        OSError
            The file cannot be written (e.g. its folder does not exist).
        lmermagic.FitError
            R could not serialize the fit.

        Examples
        --------
        >>> import lmermagic
        >>> sal = lmermagic.datasets.load("Salamanders", package="glmmTMB")
        >>> m = lmermagic.glmmtmb("count ~ mined + (1 | site)", sal, family="nbinom2",
        ...                       ziformula="~ mined")
        >>> m.save("zinb.lmm")
        >>> type(lmermagic.load_model("zinb.lmm")).__name__
        'TmbModel'
        """
        tmb_save.save(self, path)

    def summary(self) -> str:
        """glmmTMB's own ``summary(m)`` of the model, as text.

        Followed by a line of the versions (lmermagic, R, rpy2, ...) that
        made the fit.

        Returns
        -------
        str
            R's printed summary, then the versions line.

        Raises
        ------
        lmermagic.FitError
            R could not print the summary.

        Examples
        --------
        >>> import lmermagic
        >>> sal = lmermagic.datasets.load("Salamanders", package="glmmTMB")
        >>> m = lmermagic.glmmtmb("count ~ mined + (1 | site)", sal, family="nbinom2",
        ...                       ziformula="~ mined")
        >>> text = m.summary()
        >>> "Conditional model:" in text, "Zero-inflation model:" in text
        (True, True)
        """
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
