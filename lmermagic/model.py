"""The fitted-model object: its methods (each one line into the toolbox module
that owns the job) and its display."""

from __future__ import annotations

import html
import os
from typing import Any

import numpy as np
import pandas as pd

from . import savefile
from .fitted import FittedModel
from .toolbox import (
    checks,
    goodness,
    intervals,
    marginal,
    optimizers,
    paper,
    plots,
    prediction,
    random_effects,
    rcode,
    refitting,
    tests,
    tidying,
)
from .toolbox import power as power_

__all__ = ["LmerModel"]


def _fmt(x: float, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return ""
    if np.isinf(x):
        return "Inf"
    return f"{x:.{digits}g}"


def _html_head(title: str, formula: str, data_name: str, stats: str) -> str:
    """The start of a model's HTML display (lmer's, glmmTMB's, clmm's): its
    title, formula and data, then ``stats`` (HTML) on a grey line."""
    esc = html.escape
    return ("<div class='lmermagic-model' style='font-size:0.9em'>"
            f"<div><b>{esc(title)}</b>: <code>{esc(formula)}</code>"
            f" · data <code>{esc(data_name)}</code></div>"
            f"<div style='color:#555'>{stats}</div>")


def _html_tail(warnings: list[str], versions: str) -> str:
    """The end of a model's HTML display: R's warnings in a box, if any, and
    the ``versions`` line."""
    esc = html.escape
    warn = ""
    if warnings:
        items = "".join(f"<li>{esc(w)}</li>" for w in warnings)
        warn = ("<div style='background:#fff3cd;border-left:4px solid #e0a800;"
                f"padding:4px 8px;margin-top:6px'><b>R warnings</b><ul>{items}</ul></div>")
    return (f"{warn}<div style='color:#888;font-size:0.85em;margin-top:4px'>"
            f"{esc(versions)}</div></div>")


def _fmt_p(p: float) -> str:
    if p is None or np.isnan(p):
        return ""
    if p < 1e-4:
        return f"{p:.1e}"
    return f"{p:.4f}"


def _stars(p: float) -> str:
    if p is None or np.isnan(p):
        return ""
    for cut, mark in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < cut:
            return mark
    return ""


class LmerModel(FittedModel):
    """A fitted lme4 model (``lmer`` or ``glmer``) with its results as pandas objects.

    :func:`lmermagic.lmer` and :func:`lmermagic.glmer` (and the magics
    ``%lmer``, ``%glmer``) return one. Its fields hold what R computed at fit
    time; its methods wrap the R functions an lme4 user calls next
    (``anova``, ``confint``, ``predict``, ``emmeans``, ...), each returning
    pandas objects. It is frozen: a refit (:meth:`lmermagic.LmerModel.update`,
    :meth:`lmermagic.LmerModel.refit`) returns a new model.

    Attributes
    ----------
    formula : str
        The model formula as fitted.
    kind : str
        ``"lmer"``, ``"glmer"`` or ``"glmer.nb"`` (a negative binomial GLMM).
    family : str
        R's family name: ``"gaussian"`` for lmer, else the glmer family
        (``"binomial"``, ``"poisson"``, ...).
    link : str
        R's link function: ``"identity"`` for lmer, else the family's link
        (``"logit"``, ``"log"``, ...).
    reml : bool
        True for a REML fit, False for maximum likelihood (always False for
        glmer).
    ddf : str
        The denominator-df method of the t tests in ``coefs``:
        ``"satterthwaite"``, ``"kenward-roger"`` or ``"lme4"`` (no df; always
        ``"lme4"`` for glmer).
    coefs : pandas.DataFrame
        Fixed effects indexed by R's term names, columns ``estimate,
        std_error, df, statistic, p_value, conf_low, conf_high``: R's
        ``summary(m)`` coefficients with 95 % Wald intervals (normal quantile,
        as lme4's ``confint(m, method = "Wald")``). For glmer ``df`` is
        ``inf`` and ``statistic`` is z; with ``ddf="lme4"`` ``df`` and
        ``p_value`` are NaN.
    ranef : dict of str to pandas.DataFrame
        As R's ``ranef(m)``: per grouping factor, rows = levels, columns =
        terms.
    varcorr : pandas.DataFrame
        As R's ``as.data.frame(VarCorr(m))``: columns ``group, var1, var2,
        vcov, sdcor``, one row per variance (``var2`` missing) and per
        covariance, and a ``Residual`` row for lmer.
    fitted : pandas.Series
        R's ``fitted(m)`` (response scale) on the caller's index; rows R
        dropped for missing values hold NaN.
    residuals : pandas.Series
        R's ``residuals(m)`` (response residuals for lmer, deviance residuals
        for glmer) on the caller's index; dropped rows hold NaN.
    nobs : int
        The number of observations used, as R's ``nobs(m)``.
    ngroups : dict of str to int
        Levels per grouping factor, as R's ``ngrps(m)``.
    loglik : float
        R's ``logLik(m)`` (the REML log-likelihood for REML fits).
    df_model : int
        The number of parameters, the ``df`` of R's ``logLik(m)``.
    aic : float
        R's ``AIC(m)``.
    bic : float
        R's ``BIC(m)``.
    deviance : float
        The ML deviance; for REML fits at the REML estimates, as
        ``deviance(m, REML = FALSE)``.
    reml_criterion : float
        R's ``REMLcrit(m)``; NaN for ML fits.
    sigma : float
        R's ``sigma(m)``: the residual standard deviation for lmer.
    converged : bool
        The optimizer returned code 0 and R gave no convergence warning.
    singular : bool
        R's ``isSingular(m)``: a variance is (near) zero or a correlation ±1.
    warnings : list of str
        R's warnings and messages from the fit, verbatim.
    dropped : pandas.Index
        Caller's index labels of rows dropped for missing values.
    missing : dict of str to int
        Missing values per used column (the columns that caused the drops).
    theta : numpy.ndarray
        lme4's ``getME(m, "theta")``: the relative covariance factors'
        parameters, as the optimizer left them.
    data_name : str
        The data's name in the display, ``summary()`` and ``r_code()``: the
        magic's data variable, or ``"data"``.
    r_object : object
        lmermagic's handle of the R fit (use ``m.robj`` for the rpy2 object).
    r_data : object
        lmermagic's handle of the data frame R fitted to.
    request : FitRequest
        What was fitted, with every option.
    data : pandas.DataFrame or polars.DataFrame
        The caller's data (a reference, not a copy), for ``update()``; for a
        model read by :func:`lmermagic.load_model`, the columns the model
        uses, as saved.
    name : str or None
        The name given with the magic's ``-o`` (labels model comparisons).
    meta : dict
        How the numbers were computed: for Satterthwaite df ``satterthwaite``
        is ``"lmermagic"`` (lmerTest's finite differences, each deviance
        evaluated once) or ``"lmerTest-fallback"`` (lmerTest's own
        computation, with ``fallback_reason``), and ``devfun_evals`` the
        deviance evaluations; ``r_fit_seconds`` and ``r_tables_seconds`` are
        R's time for the fit and for computing the tables (everything else is
        lmermagic's).
    versions : dict of str to str
        The versions the result was computed with: lmermagic, R, lme4,
        lmerTest, Matrix, rpy2 (shown on the card and under ``summary()``).

    Examples
    --------
    >>> import lmermagic
    >>> sleep = lmermagic.datasets.load("sleepstudy")
    >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    >>> m
    <Linear mixed model (REML): Reaction ~ Days + (Days | Subject)
      data 'data', 180 observations; groups Subject: 18
      logLik -871.8..., AIC 1755.6...>
    >>> list(m.coefs.columns)
    ['estimate', 'std_error', 'df', 'statistic', 'p_value', 'conf_low', 'conf_high']
    >>> print(round(m.coefs.loc["Days", "estimate"], 2), m.nobs, m.ngroups)
    10.47 180 {'Subject': 18}
    """

    # -- the R user's toolbox: each method hands over to its lmermagic.toolbox module

    def anova(self, type: int | str | None = None, ddf: str | None = None,
              engine: str | None = None, statistic: str | None = None) -> pd.DataFrame:
        """Test the fixed-effect terms, as lmerTest's ``anova(m)``, car's ``Anova(m)``
        or emmeans' ``joint_tests(m)``.

        lmer: lmerTest's ``anova(m, type, ddf)`` F tests by default. glmer:
        ``emmeans::joint_tests(m)`` (Wald chi-square tests) by default,
        ``car::Anova(m, type)`` with ``type=2`` or ``3``, lme4's sequential
        ``anova(m)`` table with ``type=1``. To compare several models use
        :func:`lmermagic.anova`.

        Parameters
        ----------
        type : {None, 3, 2, 1}
            Type III, II or I (sequential) tests; ``"III"``, ``"II"``, ``"I"``
            work too. None: the engine's default (lmerTest 3, car 2).
            ``joint_tests`` takes none.
        ddf : str or None
            Denominator df. lmerTest: ``"satterthwaite"`` (default),
            ``"kenward-roger"`` (pbkrtest) or ``"lme4"`` (lme4's table, no
            tests). car's F tests: Kenward-Roger only. ``joint_tests`` of an
            lmer model: emmeans' ``lmer.df`` (``"kenward-roger"``,
            ``"satterthwaite"``, ``"asymptotic"``; None: emmeans' default). A
            glmer model's tests take none.
        engine : {None, "lmerTest", "car", "joint_tests"}
            Who computes the tests. None: lmerTest for lmer; for glmer
            ``joint_tests``, or car when ``type`` is 2 or 3, or lme4's
            sequential table when ``type`` is 1.
        statistic : {None, "F", "Chisq"}
            car's ``test.statistic`` (only with ``engine="car"``):
            Kenward-Roger F tests (lmer REML fits; lmer's default) or Wald
            chi-square tests (the only one for glmer).

        Returns
        -------
        pandas.DataFrame
            One row per term, index ``term``. Columns:

            - lmerTest: ``sum_sq, mean_sq, num_df, den_df, f_value, p_value``;
            - car with F: ``f_value, num_df, den_df, p_value``; with Chisq:
              ``chisq, df, p_value`` (car's Type III tests each term's
              coefficients with the model's own contrasts: main effects only
              under sum-to-zero contrasts, ``contrasts={"x": "sum"}``);
            - ``joint_tests``: ``num_df, den_df, f_ratio, p_value``, and
              ``chisq`` when every ``den_df`` is infinite (glmer); rows are
              emmeans' model terms;
            - glmer with ``type=1``: lme4's ``npar, sum_sq, mean_sq, f_value``
              (no tests).

            R's heading is in ``attrs["heading"]``.

        Raises
        ------
        lmermagic.DataError
            An unknown ``type``, ``engine`` or ``statistic``, or a combination
            the engine does not offer (car's Type I, a ``ddf`` car's F tests or
            a glmer model cannot use, car's F tests of an ML fit, lmerTest for
            glmer), or car's Type II / ``joint_tests`` of a model with no term
            besides the intercept.
        lmermagic.RPackageMissingError
            The R package the tests need (lmerTest, pbkrtest, car, emmeans) is
            not installed.
        lmermagic.FitError
            R failed to compute the tests (R's message quoted).

        See Also
        --------
        lmermagic.anova : The same for one model; a likelihood-ratio
            comparison for several.

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> a = m.anova()  # Type III, Satterthwaite df (lmerTest)
        >>> list(a.columns)
        ['sum_sq', 'mean_sq', 'num_df', 'den_df', 'f_value', 'p_value']
        >>> print(round(a.loc["Days", "f_value"], 1), round(a.loc["Days", "den_df"], 1))
        45.9 17.0
        >>> wald = m.anova(type=2, engine="car", statistic="Chisq")  # car::Anova
        >>> list(wald.columns)
        ['chisq', 'df', 'p_value']
        """
        return tests.model_anova(self, type=type, ddf=ddf, engine=engine, statistic=statistic)

    def ranova(self) -> pd.DataFrame:
        """Test the random-effect terms by likelihood ratio, as lmerTest's ``ranova(m)``.

        Each random-effect term is reduced (a slope removed, or an intercept
        term dropped) and the model refitted (a REML fit stays REML); each
        reduced model is compared with the full one.

        Returns
        -------
        pandas.DataFrame
            Rows ``<none>`` (the model itself) and one per reduction, named as
            lmerTest names them (``"Days in (Days | Subject)"``); columns
            ``npar, loglik, aic, lrt, df, p_value``.

        Raises
        ------
        lmermagic.DataError
            The model is a glmer model (compare fits with
            :func:`lmermagic.anova` instead).
        lmermagic.RPackageMissingError
            lmerTest is not installed.
        lmermagic.FitError
            R failed to refit or test (R's message quoted).

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> r = m.ranova()
        >>> list(r.columns)
        ['npar', 'loglik', 'aic', 'lrt', 'df', 'p_value']
        >>> r.index[0]
        '<none>'
        """
        return tests.ranova(self)

    def drop1(self) -> pd.DataFrame:
        """Test dropping each fixed-effect term, as R's ``drop1(m)``.

        lmer: lmerTest's F tests, with the model's df method (``ddf``).
        glmer: lme4's likelihood-ratio tests, ``drop1(m, test = "Chisq")``.
        Only terms that can be dropped alone (respecting marginality) get a
        row.

        Returns
        -------
        pandas.DataFrame
            One row per term, index ``term``. lmer: ``sum_sq, mean_sq, num_df,
            den_df, f_value, p_value``; glmer: ``npar, aic, lrt, p_value`` (and
            a ``<none>`` row for the model itself).

        Raises
        ------
        lmermagic.RPackageMissingError
            lmerTest is not installed (lmer).
        lmermagic.FitError
            R failed to compute the tests (R's message quoted).

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> d = m.drop1()
        >>> list(d.index), list(d.columns)
        (['Days'], ['sum_sq', 'mean_sq', 'num_df', 'den_df', 'f_value', 'p_value'])
        """
        return tests.drop1(self)

    def predict(self, newdata: Any = None, re_form: str | None = None,
                allow_new_levels: bool = False, type: str = "response",
                interval: str | None = None,
                level: float = 0.95) -> pd.Series | pd.DataFrame:
        """Predict from the model, as lme4's ``predict(m, newdata, re.form,
        allow.new.levels, type)``, optionally with confidence or prediction
        intervals.

        Parameters
        ----------
        newdata : pandas.DataFrame or None
            Rows to predict; None: the model's own rows (rows R dropped for
            missing values give NaN). Only the model's columns are used; text
            and Categorical columns are matched to the model's factor levels by
            label.
        re_form : str or None
            None: with all random effects (R's ``re.form = NULL``); ``"~0"`` or
            ``"NA"``: population level, fixed effects only (``re.form = NA``);
            or a formula of some of the model's random-effect terms, e.g.
            ``"~(1 | Subject)"``.
        allow_new_levels : bool
            Predict grouping-factor levels the fit has not seen at population
            level for that term (R's ``allow.new.levels``); False raises
            instead.
        type : {"response", "link"}
            For glmer: the mean (``"response"``) or the linear predictor
            (``"link"``). The same for lmer.
        interval : {None, "confidence", "prediction"}
            Add bounds ``eta -/+ z * sd`` on the link scale, with ``z =
            qnorm((1 + level) / 2)`` (lme4 gives no t-based ones); with
            ``type="response"`` a glmer's bounds go through the inverse link.
            ``"confidence"``: sd from the fixed effects' covariance alone,
            ``sqrt(diag(X V X'))`` (random effects taken as known).
            ``"prediction"`` (lmer only): a new observation, adding
            ``sigma^2`` and the variance of the random-effect columns the
            prediction leaves out (all at ``re_form="~0"``, those of a new
            level). Weights are taken as 1.
        level : float
            Coverage of the interval, between 0 and 1.

        Returns
        -------
        pandas.Series or pandas.DataFrame
            Without ``interval``: a Series named ``predicted`` on
            ``newdata``'s index (or the model data's); rows with missing
            values give NaN. With ``interval``: a DataFrame with columns
            ``predicted`` and ``conf_low, conf_high`` (confidence) or
            ``pred_low, pred_high`` (prediction); ``attrs`` hold ``interval``
            and ``level``.

        Raises
        ------
        lmermagic.DataError
            A bad ``type``, ``interval`` or ``level``; ``newdata`` lacks a
            column the model uses, or has levels the model was not fitted with
            (a grouping factor's, unless ``allow_new_levels``; a fixed-effect
            factor's, always); a prediction interval for glmer.
        lmermagic.FormulaError
            ``re_form`` is not a formula of the model's random-effect terms.
        lmermagic.FitError
            R failed to predict (R's message quoted).

        Examples
        --------
        >>> import lmermagic
        >>> import pandas as pd
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> new = pd.DataFrame({"Days": [0, 5], "Subject": ["308", "308"]})
        >>> print(m.predict(new).round(1).tolist())  # subject 308's own line
        [253.7, 352.0]
        >>> print(m.predict(new, re_form="~0").round(1).tolist())  # population
        [251.4, 303.7]
        >>> p = m.predict(new, re_form="~0", interval="prediction")
        >>> list(p.columns)
        ['predicted', 'pred_low', 'pred_high']
        """
        return prediction.predict(self, newdata=newdata, re_form=re_form,
                                  allow_new_levels=allow_new_levels, type=type,
                                  interval=interval, level=level)

    def confint(self, method: str = "wald", level: float = 0.95, nsim: int = 1000,
                seed: int | None = None, workers: int = 1,
                progress: bool = True) -> pd.DataFrame:
        """Compute confidence intervals for the fixed effects and the variance
        components, as lme4's ``confint(m, method, level, nsim)``.

        Parameters
        ----------
        method : {"wald", "profile", "boot"}
            ``"wald"``: from the standard errors (normal quantile; R gives none
            for variance components: NaN). ``"profile"``: likelihood profile
            (``confint(m, method = "profile")``). ``"boot"``: parametric
            bootstrap percentile intervals (lme4's ``bootMer``).
        level : float
            Confidence level, between 0 and 1.
        nsim : int
            Bootstrap samples (``"boot"`` only).
        seed : int or None
            Bootstrap seed: the intervals equal R's ``confint(m, method =
            "boot", nsim = nsim, seed = seed)``, whatever ``workers``. R's
            random number state is restored afterwards. None: R's current
            stream.
        workers : int
            Bootstrap refits in this many processes (each starts its own R,
            about 1.5 s and 300 MB); 1 refits in this process, in chunks.
        progress : bool
            Show the bootstrap's progress line (refits done and failed, time
            elapsed and left) once it has run for about a second; in IPython,
            ``%config LmerMagics.progress = False`` turns it off too.

        Returns
        -------
        pandas.DataFrame
            Index ``term``: R's row names (``.sig01``, ``.sig02``, ...,
            ``.sigma``, then the fixed effects); columns ``parameter``
            (lme4's readable name: ``sd_(Intercept)|Subject``,
            ``cor_Days.(Intercept)|Subject``, ``sigma``, or the term),
            ``estimate``, ``conf_low``, ``conf_high``. ``attrs`` hold
            ``level`` and ``method`` (the bootstrap adds ``nsim``, ``seed``
            and ``failed``, the refits left out).

        Raises
        ------
        lmermagic.DataError
            An unknown ``method``, a ``level`` outside (0, 1), or ``nsim``,
            ``workers`` or ``seed`` not a whole number in range.
        lmermagic.FitError
            R failed to compute the intervals (R's message quoted).

        Warns
        -----
        lmermagic.LmerWarning
            R's warnings (e.g. from the profile); bootstrap refits that gave
            warnings or failed (failed ones are left out).

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> ci = m.confint()
        >>> list(ci.columns)
        ['parameter', 'estimate', 'conf_low', 'conf_high']
        >>> print(ci.loc["Days", ["conf_low", "conf_high"]].round(2).tolist())
        [7.44, 13.5]
        >>> prof = m.confint(method="profile")  # doctest: +SKIP
        >>> boot = m.confint(method="boot", nsim=500, seed=1)  # doctest: +SKIP
        """
        return intervals.confint(self, method=method, level=level, nsim=nsim, seed=seed,
                                 workers=workers, progress=progress)

    def emmeans(self, specs: str | list[str], by: str | list[str] | None = None,
                pairwise: bool = False, adjust: str | None = None,
                type: str = "response", at: dict[str, Any] | None = None,
                contrasts: str | dict[str, list[float]] | None = None,
                ref: str | None = None, level: float = 0.95) -> Any:
        """Estimate marginal means, as R's ``emmeans::emmeans(m, specs, by, at)``, and
        their contrasts, as ``emmeans::contrast(emm, method, adjust)``.

        Parameters
        ----------
        specs : str or list of str
            The variables to give means for, e.g. ``"Evit"`` or
            ``["Product", "Information"]`` (``"Product + Information"`` works
            too).
        by : str or list of str or None
            Means (and contrasts) within each level of these.
        pairwise : bool
            Also the pairwise contrasts; the same as ``contrasts="pairwise"``.
        adjust : str or None
            p-value adjustment of the contrasts: ``"tukey"``, ``"scheffe"``,
            ``"sidak"``, ``"bonferroni"``, ``"dunnettx"``, ``"mvt"``,
            ``"holm"``, ``"hochberg"``, ``"hommel"``, ``"BH"``, ``"BY"``,
            ``"fdr"`` or ``"none"``; None: emmeans' default for the method.
        type : {"response", "link"}
            For glmer: means on the response scale (back-transformed;
            contrasts are then ratios or odds ratios) or on the link scale.
        at : dict or None
            The reference grid's values: ``{column: [values]}`` (numbers for a
            numeric column, level labels for a factor), or ``{column: "sd"}``
            for mean - SD, mean, mean + SD of a numeric column over the rows
            the model used. The values used are in ``attrs["at"]``.
        contrasts : str or dict or None
            emmeans' method, ``"pairwise"``, ``"revpairwise"``,
            ``"trt.vs.ctrl"``, ``"consec"``, ``"poly"`` or ``"eff"``; or custom
            contrasts ``{name: weights}``, one weight per row of the grid
            within each ``by`` group (in the table's order).
        ref : str or None
            With ``contrasts="trt.vs.ctrl"``: the control, a row label of the
            grid (the level, or the levels joined by spaces for several
            specs); None: the first row.
        level : float
            Confidence level of the means' intervals.

        Returns
        -------
        pandas.DataFrame or dict of str to pandas.DataFrame
            Without contrasts, the means: the specs' columns, then ``emmean``
            (or ``response``, ``prob``, ``rate`` on a glmer's response scale),
            ``std_error``, ``df``, ``conf_low``, ``conf_high``. With contrasts
            a dict ``{"emmeans": means, "contrasts": table}``, the table with
            columns ``contrast``, ``estimate`` (or ``ratio``, ``odds_ratio``),
            ``std_error``, ``df``, ``t_ratio`` (``z_ratio`` for glmer),
            ``p_value`` and ``p_adjust`` (the adjustment emmeans applied, also
            in ``attrs["adjust"]``). Degrees of freedom for lmer are emmeans'
            default ``lmer.df`` (Kenward-Roger, unless the model is too large
            for it); ``inf`` for glmer.

        Raises
        ------
        lmermagic.DataError
            A name in ``specs``, ``by``, ``at`` is not a variable of the
            model; a bad ``adjust``, ``type``, ``level``, ``at`` value,
            contrast method, weights (wrong length) or ``ref``; ``pairwise``
            together with another contrast.
        lmermagic.RPackageMissingError
            emmeans is not installed.
        lmermagic.FitError
            R failed to compute the means (R's message quoted).

        Examples
        --------
        >>> import lmermagic
        >>> dietox = lmermagic.datasets.load("dietox")
        >>> m = lmermagic.lmer("Weight ~ Time + Evit + (1 | Pig)", dietox)
        >>> emm = m.emmeans("Evit")
        >>> list(emm.columns)
        ['Evit', 'emmean', 'std_error', 'df', 'conf_low', 'conf_high']
        >>> out = m.emmeans("Evit", pairwise=True)
        >>> out["contrasts"]["contrast"].tolist()
        ['Evit000 - Evit100', 'Evit000 - Evit200', 'Evit100 - Evit200']
        >>> out["contrasts"].attrs["adjust"]
        'tukey'
        """
        return marginal.emmeans(self, specs, by=by, pairwise=pairwise, adjust=adjust,
                                type=type, at=at, contrasts=contrasts, ref=ref, level=level)

    def emtrends(self, var: str, specs: str | list[str] | None = None,
                 by: str | list[str] | None = None, at: dict[str, Any] | None = None,
                 adjust: str | None = None, level: float = 0.95,
                 pairwise: bool = False) -> Any:
        """Estimate the slopes of a numeric variable (simple slopes), as R's
        ``emmeans::emtrends(m, specs, var = var, by, at)``.

        Parameters
        ----------
        var : str
            The numeric fixed-effect variable whose slope is estimated.
        specs : str or list of str or None
            A slope per level (or per ``at`` value) of these variables; None:
            one overall slope (``specs = ~1``).
        by : str or list of str or None
            Slopes within each level of these (needs ``specs``).
        at : dict or None
            The reference grid's values, as for
            :meth:`lmermagic.LmerModel.emmeans`; simple slopes at a numeric
            moderator's mean and mean -/+ SD: ``at={"mod": "sd"}`` with
            ``specs="mod"``.
        adjust : str or None
            p-value adjustment of the pairwise contrasts (emmeans' Tukey by
            default); the names :meth:`lmermagic.LmerModel.emmeans` takes.
        level : float
            Confidence level of the slopes' intervals.
        pairwise : bool
            Also the pairwise differences of the slopes (``contrast(.,
            "pairwise")``; needs ``specs``).

        Returns
        -------
        pandas.DataFrame or dict of str to pandas.DataFrame
            The specs' columns (a column ``1`` holding ``"overall"`` without
            specs), ``trend`` (emmeans' ``<var>.trend``; ``var`` is in
            ``attrs["var"]``), ``std_error``, ``df``, ``conf_low``,
            ``conf_high``. With ``pairwise`` a dict ``{"emtrends": slopes,
            "contrasts": table}``, the contrasts as
            :meth:`lmermagic.LmerModel.emmeans` gives them.

        Raises
        ------
        lmermagic.DataError
            ``var`` is not a numeric variable of the model's fixed effects; a
            name in ``specs``, ``by`` or ``at`` is not a variable of the
            model; ``by`` or ``pairwise`` without ``specs``; a bad ``adjust``,
            ``level`` or ``at`` value.
        lmermagic.RPackageMissingError
            emmeans is not installed.
        lmermagic.FitError
            R failed to compute the slopes (R's message quoted).

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> t = m.emtrends("Days")
        >>> list(t.columns)
        ['1', 'trend', 'std_error', 'df', 'conf_low', 'conf_high']
        >>> print(round(t.loc[0, "trend"], 2))
        10.47
        """
        return marginal.emtrends(self, var, specs=specs, by=by, at=at, adjust=adjust,
                                 level=level, pairwise=pairwise)

    def allfit(self) -> pd.DataFrame:
        """Refit with every available optimizer, as lme4's ``allFit(m)``.

        The standard check after a convergence warning: if the optimizers
        agree on the estimates and the log-likelihood, the warning is a false
        alarm. Optimizers: bobyqa, Nelder_Mead, nlminbwrap, nloptwrap with
        NLOPT_LN_NELDERMEAD and NLOPT_LN_BOBYQA (plus nmkbw and optimx's
        L-BFGS-B when the R packages dfoptim and optimx are installed), each
        with up to 100,000 evaluations and the model's other control
        settings.

        Returns
        -------
        pandas.DataFrame
            Index ``optimizer``; columns: the fixed effects, the standard
            deviations and correlations (``sd_(Intercept)|Subject``,
            ``cor_(Intercept).Days|Subject``, ``sigma``), ``loglik``,
            ``converged`` (no error and no convergence message), ``messages``
            (R's warnings and messages), ``feval`` (function evaluations),
            ``seconds``.

        Raises
        ------
        lmermagic.FitError
            R's ``allFit`` itself failed (R's message quoted); an optimizer
            that fails gives a row of NaN instead.

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> fits = m.allfit()
        >>> "bobyqa" in fits.index
        True
        >>> list(fits.columns[-5:])
        ['loglik', 'converged', 'messages', 'feval', 'seconds']
        """
        return optimizers.allfit(self)

    def simulate(self, nsim: int = 1, seed: int | None = None) -> pd.DataFrame:
        """Simulate responses from the fitted model, as R's ``simulate(m, nsim, seed)``.

        New random effects and new noise each time (lme4's ``use.u =
        FALSE``).

        Parameters
        ----------
        nsim : int
            Number of simulated responses.
        seed : int or None
            With a seed the numbers equal R's ``simulate(m, nsim, seed =
            seed)``, and R's random number state is put back afterwards
            (lme4's own leaves it changed). None: R's current stream.

        Returns
        -------
        pandas.DataFrame
            Columns ``sim_1 ... sim_<nsim>`` on the model data's index (NaN
            for rows R dropped). For a two-column binomial response
            (``cbind(successes, failures)``) the simulated successes.

        Raises
        ------
        lmermagic.DataError
            ``nsim`` is not a positive whole number, or ``seed`` not a whole
            number within ``+/-2**31``.
        lmermagic.FitError
            R failed to simulate (R's message quoted).

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> sims = m.simulate(nsim=3, seed=1)
        >>> sims.shape, list(sims.columns)
        ((180, 3), ['sim_1', 'sim_2', 'sim_3'])
        """
        return prediction.simulate(self, nsim=nsim, seed=seed)

    def power(self, term: str, *, effect: float | None = None, along: str | None = None,
              n: Any = None, nsim: int = 1000, alpha: float = 0.05, test: str | None = None,
              seed: int | None = None, workers: int | None = None, backend: Any = None,
              progress: bool = True) -> power_.PowerResult:
        """Estimate the power to detect the fixed effect ``term`` by simulation, as
        simr's ``powerSim`` and ``powerCurve`` (computed without simr).

        For each design size, ``nsim`` responses are simulated from the model
        (R's ``simulate()`` with ``term``'s coefficient set to ``effect``,
        every random effect drawn anew from the fitted variance components,
        and new residuals), each is refitted as a fresh ``lmer()`` or
        ``glmer()`` of the same formula and options, ``term`` is tested, and
        the power is the share of p-values below ``alpha``.

        Parameters
        ----------
        term : str
            A fixed-effect coefficient, as named in ``m.coefs`` (``"Days"``).
        effect : float or None
            The coefficient's value to simulate with (glmer: on the link
            scale). None: the fitted estimate, with a warning (power at the
            observed effect is post hoc power, as simr warns).
        along : str or None
            A grouping factor that is a column of the data, along which the
            design is shrunk or grown (simr's ``extend(along=)``). None: the
            model's own rows.
        n : int or list of int or None
            Numbers of ``along`` levels to try (each at least 2). Shrinking
            keeps the first ``n`` levels; growing adds levels whose rows copy
            those of the existing levels in turn (named ``"<level>#<copy>"``).
            None: the model's own number of levels.
        nsim : int
            Simulations per design size.
        alpha : float
            Significance level, in (0, 1).
        test : {None, "satterthwaite", "kenward-roger", "lrt", "z"}
            ``"satterthwaite"`` (lmer's default): the t test of lmerTest's
            ``summary()``. ``"kenward-roger"``: lmerTest's Kenward-Roger t
            test (pbkrtest; slow). ``"z"`` (glmer's default): the Wald z test
            of ``summary()``. ``"lrt"``: a likelihood-ratio test against the
            model without the term's column, both fitted by ML.
        seed : int or None
            ``set.seed(seed)`` once, then one ``simulate()`` per design size;
            R's random state is restored afterwards. None: R's current stream.
        workers : int or None
            Refit in this many worker processes (or Dask workers). None: this
            process alone, or ``min(4, CPUs)`` processes with
            ``backend="processes"`` or ``"dask"``.
        backend : {None, "serial", "processes", "dask"} or distributed.Client
            Where the refits run, as for :func:`lmermagic.lmer_many`. The
            table is the same, bit for bit, on every backend.
        progress : bool
            Show the progress line (refits done and failed).

        Returns
        -------
        lmermagic.PowerResult
            ``.table``: one row per design size with ``n, nsim, successes,
            power, conf_low, conf_high`` (Clopper-Pearson), ``n_failed,
            n_singular, n_not_converged``; ``.simulations``: one row per refit;
            ``.plot()`` the power curve.

        Raises
        ------
        lmermagic.DataError
            ``term`` is not a fixed effect; a bad ``effect``, ``alpha``,
            ``nsim``, ``seed``, ``test`` (one that does not fit the model
            kind, or Kenward-Roger for an ML fit), ``workers`` or
            ``backend``; ``along`` is not a grouping factor in the data, or
            ``n`` without ``along``; the model's data is not a pandas
            DataFrame.
        lmermagic.FitError
            R failed to set up the simulation (R's message quoted); a refit
            that fails counts in ``n_failed`` instead.

        Warns
        -----
        lmermagic.LmerWarning
            No ``effect`` given: the fitted estimate is simulated.

        Notes
        -----
        A refit that fails, or gives no finite p-value, is left out of the
        power's denominator (``power = successes / (nsim - n_failed)``).
        Singular and non-converged refits are kept and counted.

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> res = m.power("Days", effect=5, along="Subject", n=[10, 20],
        ...               nsim=200, seed=1)  # doctest: +SKIP
        >>> res.table[["n", "power"]]  # doctest: +SKIP
        """
        return power_.power(self, term, effect=effect, along=along, n=n, nsim=nsim,
                            alpha=alpha, test=test, seed=seed, workers=workers,
                            backend=backend, progress_bar=progress)

    def check(self, nsim: int = 250, seed: int | None = 123,
              simulate_re: str = "conditional") -> pd.DataFrame:
        """Check the model, one row per check: singular fit and convergence (as lme4),
        collinearity, overdispersion and zero-inflation (as performance's
        ``check_collinearity``, ``check_overdispersion``,
        ``check_zeroinflation``), and DHARMa's simulated-residual tests.

        Computed by lmermagic from the fit's pieces and responses R simulates,
        so it works without performance or DHARMa installed.

        Parameters
        ----------
        nsim : int
            Simulated responses for DHARMa's scaled residuals (at least 2).
        seed : int or None
            Seed of the simulations (the default makes the checks
            repeatable); None: a seed drawn at random.
        simulate_re : {"conditional", "unconditional"}
            Simulate on the fitted random effects (DHARMa >= 0.5's default) or
            with new ones (lme4's and DHARMa 0.4's default).

        Returns
        -------
        pandas.DataFrame
            Columns ``check, term, statistic, value, adjusted, df, p_value,
            observed, expected, ok, verdict`` (``docs/schema.md``). Checks:
            ``singular``, ``convergence`` (lme4's scaled gradient),
            ``collinearity`` (one row per term: VIF and adjusted VIF; one
            row saying "not computed" with fewer than two terms),
            ``overdispersion`` (Poisson, negative binomial and binomial with
            trials), ``zero_inflation`` (counts), then DHARMa's
            ``sim_uniformity``, ``sim_dispersion``, ``sim_outliers`` and, for
            counts, ``sim_zero_inflation``. ``ok`` is False where a check
            flags a problem; ``verdict`` says it in words.

        Raises
        ------
        lmermagic.DataError
            ``nsim`` below 2 or not a whole number, a bad ``seed`` or
            ``simulate_re``.
        lmermagic.FitError
            R failed to compute the pieces or simulate (R's message quoted).

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> checks = m.check()
        >>> checks["check"].tolist()
        ['singular', 'convergence', 'collinearity', 'sim_uniformity', 'sim_dispersion',
         'sim_outliers']
        >>> bool(checks.loc[0, "ok"])  # not singular
        True
        """
        return checks.check(self, nsim=nsim, seed=seed, simulate_re=simulate_re)

    def refit(self, newresponse: Any) -> LmerModel:
        """Fit the same model to a new response, as lme4's ``refit(m, newresp)``.

        Parameters
        ----------
        newresponse : pandas.Series or pandas.DataFrame or array-like
            One number per observation: aligned on the model data's index (a
            Series or DataFrame with that index), or in the order of the
            model's rows (all rows, or only those R used). A binomial model
            with ``cbind(s, f)`` takes two columns.

        Returns
        -------
        lmermagic.LmerModel
            A new model (same formula, design and options). As in R, its
            ``update()`` fits to the original data again, and it has no
            ``r_code()``.

        Raises
        ------
        lmermagic.DataError
            ``newresponse`` is not numeric, has the wrong length or number of
            columns, or is missing in rows the model uses.
        lmermagic.FitError
            R failed to refit (R's message quoted).

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> y = m.simulate(seed=1)["sim_1"]
        >>> m2 = m.refit(y)
        >>> m2.formula == m.formula, m2.nobs
        (True, 180)
        """
        return refitting.refit(self, newresponse)

    def update(self, formula: str | None = None, **changes: Any) -> LmerModel:
        """Refit with a changed formula and/or options, as R's ``update(m, ...)``.

        The refit goes through the same checks and fitting as
        :func:`lmermagic.lmer`, on the caller's data as it is now.

        Parameters
        ----------
        formula : str or None
            A new formula; ``.`` stands for the old left or right side, as in
            R's ``update.formula``: ``". ~ . - Days"``, ``". ~ . + (1 |
            Pig)"``. None: the same formula.
        **changes : object
            Any option of :func:`lmermagic.lmer` or :func:`lmermagic.glmer`
            (``reml``, ``ddf``, ``family``, ``factors``, ``weights``,
            ``offset``, ``contrasts``, ``control``, ``nagq``,
            ``allow_functions``, ...), or ``data=`` a new DataFrame. Settings
            of ``factors`` and ``contrasts`` for columns the new formula no
            longer uses are dropped, as R does.

        Returns
        -------
        lmermagic.LmerModel
            The new fit (a glmer model when a ``family`` is given, an lmer
            model with ``family=None``).

        Raises
        ------
        lmermagic.DataError
            An unknown option or a bad value, or the model has no data
            attached (give ``data=``).
        lmermagic.FormulaError
            The new formula does not parse, names a column the data lacks, or
            calls a function outside the allowlist
            (:class:`lmermagic.UnsafeFormulaError`).
        lmermagic.FitError
            R failed to fit (R's message quoted).
        lmermagic.LmerTimeoutError
            The fit ran longer than its ``timeout``.

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> m0 = m.update(". ~ . - Days")
        >>> m0.formula
        'Reaction ~ (Days | Subject)'
        >>> m.update(reml=False).reml
        False
        """
        return refitting.update(self, formula, **changes)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model to one file, which :func:`lmermagic.load_model` reads back.

        The file holds what was fitted (the options, the row index, the
        versions), the tables and R's ``serialize()`` of the fit and its data
        (the columns the model uses, not the caller's whole data frame); it is
        written atomically (a temporary file renamed).

        Parameters
        ----------
        path : str or os.PathLike
            The file to write (replaced if it exists).

        Raises
        ------
        lmermagic.FitError
            R failed to serialize the fit (R's message quoted).
        OSError
            The file cannot be written.

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> m.save("sleep.lmm")
        >>> back = lmermagic.load_model("sleep.lmm")
        >>> print(round(back.loglik, 2))
        -871.81
        """
        savefile.save(self, path)

    def r_code(self, path: str | os.PathLike[str] | None = None, write: bool = False) -> str:
        """Write a self-contained R script that reproduces this fit.

        The script loads lme4 (and lmerTest), sets the R options lmermagic
        sets around a fit, reads the model's columns from a CSV file with
        their classes and factor levels, fits with the same call and options,
        and prints ``summary(fit)``.

        Parameters
        ----------
        path : str or os.PathLike or None
            The CSV file the script reads; None: ``<data_name>.csv`` (or
            ``data.csv``).
        write : bool
            Also write the model's columns to ``path``, so that the script
            runs as it is.

        Returns
        -------
        str
            The R script.

        Raises
        ------
        lmermagic.DataError
            The model was refitted to a new response (which is not in its
            data); a factor level is the empty string (a CSV file cannot keep
            it); with ``write``, ``path`` is a directory or its folder does not
            exist or is not writable.
        lmermagic.FitError
            R failed to write the data (R's message quoted).

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> code = m.r_code("sleep.csv", write=True)
        >>> "lmerTest::lmer(Reaction ~ Days + (Days | Subject)" in code
        True
        >>> import os
        >>> os.path.exists("sleep.csv")
        True
        """
        return rcode.r_code(self, path, write=write)

    def tidy(self, effects: str | tuple[str, ...] | list[str] = ("fixed", "ran_pars"),
             conf_int: bool = True, conf_level: float = 0.95, scales: str = "sdcor",
             exponentiate: bool = False, standardize: str | None = None) -> pd.DataFrame:
        """List the parameters, one row each, as broom.mixed's ``tidy(m)`` in snake_case.

        Built from the model's fields in Python (no call into R) unless
        ``effects`` includes ``"ran_vals"`` or ``standardize`` is given.

        Parameters
        ----------
        effects : str or tuple of str or list of str
            Any of ``"fixed"`` (fixed effects), ``"ran_pars"`` (standard
            deviations and correlations of the random effects, and the
            residual SD), ``"ran_vals"`` (conditional modes per level, with
            their conditional SDs), ``"ran_coefs"`` (per-level coefficients, as
            R's ``coef(m)``). Rows come in that order whatever the order
            given.
        conf_int : bool
            Add ``conf_low, conf_high``: Wald limits with a t quantile at the
            model's df for lmer with Satterthwaite or Kenward-Roger df, a
            normal quantile for glmer and ``ddf="lme4"``; normal for
            ran_vals; NaN for ran_pars and ran_coefs (as broom.mixed's
            default).
        conf_level : float
            Confidence level of the limits.
        scales : {"sdcor", "vcov"}
            ran_pars as standard deviations and correlations (``sd__``,
            ``cor__``) or variances and covariances (``var__``, ``cov__``).
        exponentiate : bool
            Fixed effects as ``exp(estimate)``, with exponentiated limits and
            the delta-method standard error ``exp(estimate) * std_error``.
        standardize : {None, "refit", "basic"}
            Add standardized fixed effects, as effectsize's
            ``standardize_parameters(m, method)`` (computed by lmermagic):
            ``std_estimate`` and, with ``conf_int``, ``std_conf_low,
            std_conf_high``; NaN on other rows. ``"refit"`` fits the model
            again on standardized data.

        Returns
        -------
        pandas.DataFrame
            Columns ``effect, group, [level,] term, estimate, std_error,
            statistic, df, p_value[, conf_low, conf_high]``; ``level`` with
            ran_vals or ran_coefs. Variance parameters are named as
            broom.mixed names them: ``sd__(Intercept)``,
            ``cor__(Intercept).Days``, and the residual's ``sd__Observation``
            in group ``Residual``. ``group`` is missing for fixed effects;
            ran_pars rows carry only an estimate.

        Raises
        ------
        lmermagic.DataError
            An unknown effect, ``scales`` or ``standardize``, or a
            ``conf_level`` outside (0, 1).
        lmermagic.FitError
            R failed (``"ran_vals"``, ``standardize``; R's message quoted).

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> t = m.tidy()
        >>> list(t.columns)
        ['effect', 'group', 'term', 'estimate', 'std_error', 'statistic', 'df',
         'p_value', 'conf_low', 'conf_high']
        >>> t["term"].tolist()
        ['(Intercept)', 'Days', 'sd__(Intercept)', 'cor__(Intercept).Days', 'sd__Days',
         'sd__Observation']
        """
        return tidying.tidy(self, effects=effects, conf_int=conf_int, conf_level=conf_level,
                            scales=scales, exponentiate=exponentiate,
                            standardize=standardize)

    def glance(self) -> pd.DataFrame:
        """Summarize the fit in one row, as broom.mixed's ``glance(m)`` in snake_case.

        Returns
        -------
        pandas.DataFrame
            One row: ``nobs`` (int), ``sigma, loglik, aic, bic`` (float),
            ``reml_crit`` (broom.mixed's ``REMLcrit``; NaN for ML fits),
            ``deviance`` (R's ``deviance(m)`` for ML fits and glmer; for REML
            fits the ML deviance at the REML estimates), ``df_residual``
            (int), and lmermagic's ``converged, singular`` (bool),
            ``n_warnings`` (int), ``r2_marginal, r2_conditional`` (as
            :meth:`lmermagic.LmerModel.r2`) and ``icc`` (the adjusted ICC, as
            :meth:`lmermagic.LmerModel.icc`); these three are NaN where those
            methods give NaN, without their warning.

        Raises
        ------
        lmermagic.FitError
            R failed to compute the pieces of R² and the ICC (R's message
            quoted).

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> g = m.glance()
        >>> list(g.columns)
        ['nobs', 'sigma', 'loglik', 'aic', 'bic', 'reml_crit', 'deviance',
         'df_residual', 'converged', 'singular', 'n_warnings', 'r2_marginal',
         'r2_conditional', 'icc']
        >>> print(round(g.loc[0, "aic"], 1))
        1755.6
        """
        return tidying.glance(self)

    def r2(self) -> pd.Series:
        """Compute the marginal and conditional R² (Nakagawa & Schielzeth), as
        performance's ``r2_nakagawa(m)``.

        Computed by lmermagic from the fit's variance components (Gaussian;
        binomial with logit, probit or cloglog link; Poisson or negative
        binomial with log link; Gamma), so performance need not be installed.

        Returns
        -------
        pandas.Series
            ``r2_marginal`` (the fixed effects' share of the variance) and
            ``r2_conditional`` (fixed and random effects'), named ``"r2"``;
            ``attrs["variances"]`` holds the variance components. A singular
            fit gives NaN for ``r2_conditional`` (for both with a log-link
            count family).

        Raises
        ------
        lmermagic.FitError
            R failed to compute the variance components (R's message quoted).

        Warns
        -----
        lmermagic.SingularFitWarning
            The fit is singular: the random effects' share is not defined.
        lmermagic.LmerWarning
            No distribution-specific variance is defined for the family and
            link (NaN).

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> print(m.r2().round(3).to_string())
        r2_marginal       0.279
        r2_conditional    0.799
        """
        return goodness.r2(self)

    def icc(self) -> pd.Series:
        """Compute the adjusted and unadjusted intra-class correlation, as
        performance's ``icc(m)``.

        Computed by lmermagic from the fit's variance components, as
        :meth:`lmermagic.LmerModel.r2`.

        Returns
        -------
        pandas.Series
            ``icc_adjusted`` (random / (random + residual) variance) and
            ``icc_unadjusted`` (random / total, the fixed effects' variance
            included), named ``"icc"``; ``attrs["variances"]`` holds the
            variance components. NaN for a singular fit.

        Raises
        ------
        lmermagic.FitError
            R failed to compute the variance components (R's message quoted).

        Warns
        -----
        lmermagic.SingularFitWarning
            The fit is singular: the ICC is not defined.
        lmermagic.LmerWarning
            No distribution-specific variance is defined for the family and
            link (NaN).

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> print(m.icc().round(3).to_string())
        icc_adjusted      0.722
        icc_unadjusted    0.521
        """
        return goodness.icc(self)

    def augment(self) -> pd.DataFrame:
        """Add per-observation results to the data, as broom.mixed's ``augment(m)``.

        Returns
        -------
        pandas.DataFrame
            On the caller's index, every row of the caller's data (rows R
            dropped for missing values hold NaN in the added columns): the
            caller's columns the model uses, then broom.mixed's columns under
            its names: ``.fitted`` (with the random effects, link scale),
            ``.resid`` (R's ``residuals(m)``), ``.hat``, ``.cooksd``,
            ``.fixed`` (fixed effects only, link scale), and lme4's response
            module's ``.mu, .offset, .sqrtXwt, .sqrtrwt, .weights, .wtres,
            .eta``.

        Raises
        ------
        lmermagic.FitError
            R failed to compute the columns (R's message quoted).

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> a = m.augment()
        >>> a.shape
        (180, 15)
        >>> list(a.columns[:6])
        ['Reaction', 'Days', 'Subject', '.fitted', '.resid', '.hat']
        """
        return tidying.augment(self)

    @property
    def ranef_table(self) -> pd.DataFrame:
        """The random effects with their conditional SDs, as R's
        ``as.data.frame(ranef(m, condVar = TRUE))``.

        One row per grouping factor, term and level; columns ``group, term,
        level, condval, condsd``. Computed by R each time it is read.

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> t = m.ranef_table
        >>> t.shape, list(t.columns)
        ((36, 5), ['group', 'term', 'level', 'condval', 'condsd'])
        """
        return random_effects.ranef_table(self)

    # -- plots: a matplotlib Figure each (pip install 'lmermagic[plots]') ---------

    def plot_ranef(self, group: str | None = None, term: str | None = None,
                   level: float = 0.95, ax: Any = None) -> Any:
        """Draw the caterpillar plot of the random effects, as lme4's
        ``dotplot(ranef(m, condVar = TRUE))``.

        One panel per grouping factor and term: each level's conditional mode
        with its interval, the levels sorted by the mode of the factor's
        first term (the same order in each of its panels).

        Parameters
        ----------
        group : str or None
            Draw only this grouping factor.
        term : str or None
            Draw only this term (e.g. ``"(Intercept)"``).
        level : float
            Intervals are the conditional mode -/+ z times the conditional
            SD, z the normal quantile for ``level``.
        ax : matplotlib.axes.Axes, optional
            Draw into this Axes (the plot must then be one panel).

        Returns
        -------
        matplotlib.figure.Figure
            The figure drawn into (``ax``'s figure when given).

        Raises
        ------
        lmermagic.DataError
            ``group`` or ``term`` is not one of the model's, ``level`` is not
            in (0, 1), or ``ax`` is given for more than one panel.
        lmermagic.OptionalDependencyError
            matplotlib is not installed (``pip install 'lmermagic[plots]'``).
        lmermagic.FitError
            R failed to compute the random effects (R's message quoted).

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> fig = m.plot_ranef()
        >>> len(fig.axes)
        2
        >>> fig = m.plot_ranef(term="Days")
        """
        return plots.plot_ranef(self, group=group, term=term, level=level, ax=ax)

    def plot_coefs(self, intercept: bool = False, exponentiate: bool = False,
                   ax: Any = None) -> Any:
        """Draw a forest plot of the fixed effects with their 95 % Wald intervals
        (``m.coefs``), as sjPlot's ``plot_model(m)``.

        Parameters
        ----------
        intercept : bool
            Include the intercept (left out by default: it is on another
            scale).
        exponentiate : bool
            For glmer with a log or logit link: rate or odds ratios, on a log
            axis.
        ax : matplotlib.axes.Axes, optional
            Draw into this Axes.

        Returns
        -------
        matplotlib.figure.Figure
            The figure drawn into (``ax``'s figure when given).

        Raises
        ------
        lmermagic.DataError
            No fixed effect besides the intercept (and ``intercept=False``),
            or ``exponentiate`` for a model without a log or logit link.
        lmermagic.OptionalDependencyError
            matplotlib is not installed (``pip install 'lmermagic[plots]'``).

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> fig = m.plot_coefs(intercept=True)
        """
        return plots.plot_coefs(self, intercept=intercept, exponentiate=exponentiate, ax=ax)

    def plot_diagnostics(self, panel: str | None = None, ax: Any = None) -> Any:
        """Draw the residual diagnostics, as R's ``plot(m)`` and ``qqmath(m)``.

        Panels: residuals vs fitted with a smoother (``residuals_vs_fitted``),
        scale-location (``scale_location``), a normal Q-Q plot of the
        residuals (``qq_residuals``) and one of each random-effect term
        (``"qq_ranef <group>: <term>"``). Binomial models get binned residuals
        (``binned_residuals``, as ``arm::binnedplot``) instead of the first
        three.

        Parameters
        ----------
        panel : str or None
            Draw only this panel (e.g. ``"qq_residuals"``). ``"simulated"``:
            DHARMa's two panels of the scaled residuals instead
            (``"simulated_qq"``, ``"simulated_vs_predicted"``: one of them),
            from the simulations :meth:`lmermagic.LmerModel.check` uses.
        ax : matplotlib.axes.Axes, optional
            With ``panel``: draw into this Axes.

        Returns
        -------
        matplotlib.figure.Figure
            The figure drawn into (``ax``'s figure when given).

        Raises
        ------
        lmermagic.DataError
            ``panel`` is not a panel of this model's diagnostics, or ``ax`` is
            given for more than one panel.
        lmermagic.OptionalDependencyError
            matplotlib is not installed (``pip install 'lmermagic[plots]'``).
        lmermagic.FitError
            R failed to compute the residuals (R's message quoted).

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> fig = m.plot_diagnostics()
        >>> fig = m.plot_diagnostics(panel="qq_residuals")
        """
        return plots.plot_diagnostics(self, panel=panel, ax=ax)

    def plot_predict(self, x: str, by: str | None = None, level: float = 0.95,
                     n: int = 100, ax: Any = None) -> Any:
        """Draw the population-level prediction along ``x`` with its band over the
        data, as sjPlot's ``plot_model(m, type = "pred")``.

        The line is the fixed-effects prediction (``X beta``) on the response
        scale; other fixed-effect variables are held at their mean (numbers)
        or first level (factors), shown in the title.

        Parameters
        ----------
        x : str
            A numeric column of the fixed effects.
        by : str or None
            A grouping factor: one line per group (conditional predictions
            with that factor's random effects, over the group's own range of
            ``x``). Or a factor of the fixed effects: one population line and
            band per level.
        level : float
            Coverage of the band, from the fixed effects' covariance (link
            scale, then through the inverse link).
        n : int
            Points along ``x``.
        ax : matplotlib.axes.Axes, optional
            Draw into this Axes.

        Returns
        -------
        matplotlib.figure.Figure
            The figure drawn into (``ax``'s figure when given).

        Raises
        ------
        lmermagic.DataError
            ``x`` or ``by`` is not a column of the model's data, ``x`` is not
            numeric, ``by`` is neither a grouping factor nor a fixed-effect
            factor, or ``level`` is not in (0, 1).
        lmermagic.OptionalDependencyError
            matplotlib is not installed (``pip install 'lmermagic[plots]'``).
        lmermagic.FitError
            R failed to compute the predictions (R's message quoted).

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> fig = m.plot_predict("Days")
        >>> fig = m.plot_predict("Days", by="Subject")
        """
        return plots.plot_predict(self, x, by=by, level=level, n=n, ax=ax)

    # -- maketables' plug-in protocol: maketables.ETable([m1, m2]) (no import here) --

    @property
    def __maketables_coef_table__(self) -> pd.DataFrame:
        return paper.coef_table(self)

    def __maketables_stat__(self, key: str) -> Any:
        return paper.stat(self, key)

    @property
    def __maketables_depvar__(self) -> str:
        return paper.depvar(self)

    @property
    def __maketables_default_stat_keys__(self) -> list[str]:
        return paper.default_stat_keys(self)

    @property
    def __maketables_stat_labels__(self) -> dict[str, str]:
        return dict(paper.STAT_LABELS)

    @property
    def __maketables_var_labels__(self) -> dict[str, str] | None:
        return paper.var_labels(self)

    # -- text -----------------------------------------------------------------

    def summary(self) -> str:
        """Print R's own ``summary(m)`` of the model, as text.

        lme4's summary; for lmer with Satterthwaite or Kenward-Roger df its
        coefficient table has the df and p-value columns lmerTest's
        ``summary(m, ddf = ...)`` prints. The versions the numbers were
        computed with are on its last line.

        Returns
        -------
        str
            R's printed summary, then a line of versions (lmermagic, R, lme4,
            lmerTest, Matrix, rpy2).

        Raises
        ------
        lmermagic.FitError
            R failed to summarize the model (R's message quoted).

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> print(m.summary())
        Linear mixed model fit by REML...
        Formula: Reaction ~ Days + (Days | Subject)
        ...
        Number of obs: 180, groups:  Subject, 18
        ...
        lmermagic ..., R ..., lme4 ...
        """
        from .rbridge import get_r

        text = get_r().run("lmm_summary_text", self.r_object, self.ddf, self.data_name)
        return (str(text[0] if isinstance(text, list) else text)
                + f"\n\n{rcode.versions_line(self.versions)}")

    def _model_line(self) -> str:
        if self.kind == "lmer":
            how = "REML" if self.reml else "ML"
            head = f"Linear mixed model ({how})"
        else:
            head = f"Generalized linear mixed model, {self.family} ({self.link})"
        return head

    def __repr__(self) -> str:
        groups = ", ".join(f"{g}: {n}" for g, n in self.ngroups.items())
        lines = [
            f"<{self._model_line()}: {self.formula}",
            f"  data '{self.data_name}', {self.nobs} observations; groups {groups}",
            f"  logLik {self.loglik:.4f}, AIC {self.aic:.4f}"
            + ("; singular fit" if self.singular else "")
            + ("" if self.converged else "; NOT converged") + ">",
        ]
        return "\n".join(lines)

    # -- notebook -------------------------------------------------------------

    def _repr_html_(self) -> str:
        esc = html.escape
        rows = []
        for term, r in self.coefs.iterrows():
            rows.append(
                "<tr>" + f"<td style='text-align:left'><code>{esc(str(term))}</code></td>"
                + "".join(f"<td>{_fmt(r[c])}</td>" for c in
                          ("estimate", "std_error", "df", "statistic"))
                + f"<td>{_fmt_p(r['p_value'])}</td><td>{_stars(r['p_value'])}</td>"
                + f"<td>[{_fmt(r['conf_low'])}, {_fmt(r['conf_high'])}]</td></tr>"
            )
        stat = "z" if self.kind == "glmer" else "t"
        fixed = (
            "<table><thead><tr><th style='text-align:left'>term</th><th>estimate</th>"
            f"<th>std. error</th><th>df</th><th>{stat}</th><th>p</th><th></th>"
            "<th>95% CI</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
        )
        vc_rows = []
        for _, r in self.varcorr.iterrows():
            has_var2 = not pd.isna(r["var2"])
            var1 = "" if pd.isna(r["var1"]) else str(r["var1"])
            var = f"{var1} : {r['var2']}" if has_var2 else var1
            what = "corr" if has_var2 else "sd"
            vc_rows.append(
                f"<tr><td style='text-align:left'>{esc(str(r['group']))}</td>"
                f"<td style='text-align:left'>{esc(var)}</td>"
                f"<td>{_fmt(r['vcov'])}</td><td>{what} {_fmt(r['sdcor'])}</td></tr>"
            )
        random = (
            "<table><thead><tr><th style='text-align:left'>group</th>"
            "<th style='text-align:left'>term</th><th>variance/cov</th><th>sd/corr</th>"
            "</tr></thead><tbody>" + "".join(vc_rows) + "</tbody></table>"
        )
        groups = ", ".join(f"{esc(g)} ({n})" for g, n in self.ngroups.items())
        crit = (f"REML criterion {self.reml_criterion:.4f}" if self.reml
                else f"deviance {self.deviance:.4f}")
        if len(self.dropped):
            cols = ", ".join(f"{esc(c)} ({n})" for c, n in self.missing.items())
            groups += f" · {len(self.dropped)} rows dropped for missing values in {cols}"
        stats_line = (f"{self.nobs} obs · groups: {groups} · logLik {self.loglik:.4f} · "
                      f"AIC {self.aic:.2f} · BIC {self.bic:.2f} · {crit}")
        df_note = {"satterthwaite": "Satterthwaite df (lmerTest)",
                   "kenward-roger": "Kenward-Roger df (pbkrtest)",
                   "lme4": ""}.get(self.ddf, "")
        return (
            _html_head(self._model_line(), self.formula, self.data_name, stats_line)
            + f"<div style='margin-top:6px'><b>Fixed effects</b> "
            f"<span style='color:#777'>{df_note}</span></div>{fixed}"
            f"<div style='margin-top:6px'><b>Random effects</b></div>{random}"
            + _html_tail(self.warnings, rcode.versions_line(self.versions))
        )
