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

    Attributes
    ----------
    coefs : pandas.DataFrame
        Fixed effects indexed by R's term names, columns ``estimate, std_error,
        df, statistic, p_value, conf_low, conf_high`` (95 % Wald intervals; for
        glmer ``df`` is ``inf`` and ``statistic`` is z; with ``ddf="lme4"``
        ``df`` and ``p_value`` are NaN).
    fixef : pandas.Series
        The fixed-effect estimates, as R's ``fixef()``.
    ranef : dict of str to pandas.DataFrame
        As R's ``ranef()``: per grouping factor, rows = levels, columns = terms.
    varcorr : pandas.DataFrame
        As R's ``as.data.frame(VarCorr(m))``: group, var1, var2, vcov, sdcor.
    fitted, residuals : pandas.Series
        On the caller's index; rows R dropped for missing values hold NaN.
    nobs : int
    ngroups : dict of str to int
    loglik, aic, bic, deviance, sigma : float
        As R's ``logLik``, ``AIC``, ``BIC``, ``sigma``; ``deviance`` is the ML
        deviance (for REML fits at the REML estimates, as ``deviance(m,
        REML=FALSE)``); ``reml_criterion`` is R's ``REMLcrit`` (NaN for ML).
    formula, family, link, kind : str
    reml, converged, singular : bool
    warnings : list of str
        R's warnings and messages from the fit, verbatim.
    dropped : pandas.Index
        Caller's index labels of rows dropped for missing values.
    missing : dict of str to int
        Missing values per used column (the columns that caused the drops).
    robj : rpy2 object
        The underlying R model.
    request : FitRequest
        What was fitted, with every option.
    data : DataFrame
        The caller's data (a reference, not a copy), for ``update()``.
    name : str or None
        The name given with the magic's ``-o`` (labels model comparisons).
    versions : dict of str to str
        The versions the result was computed with: lmermagic, R, lme4,
        lmerTest, Matrix, rpy2 (shown on the card and under ``summary()``).
    meta : dict
        How the numbers were computed: for Satterthwaite df ``satterthwaite``
        is ``"lmermagic"`` (lmerTest's finite differences, each deviance
        evaluated once) or
        ``"lmerTest-fallback"`` (lmerTest's own computation, with
        ``fallback_reason``), and ``devfun_evals`` the deviance evaluations;
        ``r_fit_seconds`` and ``r_tables_seconds`` are R's time for the fit
        and for computing the tables (everything else is lmermagic's).
    """

    # -- the R user's toolbox: each method hands over to its lmermagic.toolbox module

    def anova(self, type: int | str | None = None, ddf: str | None = None,
              engine: str | None = None, statistic: str | None = None) -> pd.DataFrame:
        """Tests of the fixed-effect terms: lmerTest's ``anova(m, type, ddf)`` (lmer),
        ``emmeans::joint_tests(m)`` (glmer), ``car::Anova(m, type)`` (``engine="car"``,
        and glmer with ``type=2``/``3``); see :func:`lmermagic.toolbox.tests.model_anova`."""
        return tests.model_anova(self, type=type, ddf=ddf, engine=engine, statistic=statistic)

    def ranova(self) -> pd.DataFrame:
        """Likelihood-ratio tests of the random-effect terms (lmerTest's ``ranova``)."""
        return tests.ranova(self)

    def drop1(self) -> pd.DataFrame:
        """Tests of dropping each fixed-effect term, as R's ``drop1(m)``."""
        return tests.drop1(self)

    def predict(self, newdata: Any = None, re_form: str | None = None,
                allow_new_levels: bool = False, type: str = "response",
                interval: str | None = None,
                level: float = 0.95) -> pd.Series | pd.DataFrame:
        """Predictions as lme4's ``predict()``; ``re_form="~0"`` for population level;
        ``interval="confidence"`` or ``"prediction"`` adds bounds (a DataFrame)."""
        return prediction.predict(self, newdata=newdata, re_form=re_form,
                                  allow_new_levels=allow_new_levels, type=type,
                                  interval=interval, level=level)

    def confint(self, method: str = "wald", level: float = 0.95, nsim: int = 1000,
                seed: int | None = None, workers: int = 1,
                progress: bool = True) -> pd.DataFrame:
        """Confidence intervals for fixed effects and variance components."""
        return intervals.confint(self, method=method, level=level, nsim=nsim, seed=seed,
                                 workers=workers, progress=progress)

    def emmeans(self, specs: str | list[str], by: str | list[str] | None = None,
                pairwise: bool = False, adjust: str | None = None,
                type: str = "response", at: dict[str, Any] | None = None,
                contrasts: str | dict[str, list[float]] | None = None,
                ref: str | None = None, level: float = 0.95) -> Any:
        """Estimated marginal means (and contrasts) from R's emmeans; see
        :func:`lmermagic.toolbox.emmeans`."""
        return marginal.emmeans(self, specs, by=by, pairwise=pairwise, adjust=adjust,
                                type=type, at=at, contrasts=contrasts, ref=ref, level=level)

    def emtrends(self, var: str, specs: str | list[str] | None = None,
                 by: str | list[str] | None = None, at: dict[str, Any] | None = None,
                 adjust: str | None = None, level: float = 0.95,
                 pairwise: bool = False) -> Any:
        """Slopes of a numeric variable (simple slopes) from R's emmeans::emtrends; see
        :func:`lmermagic.toolbox.emtrends`."""
        return marginal.emtrends(self, var, specs=specs, by=by, at=at, adjust=adjust,
                                 level=level, pairwise=pairwise)

    def allfit(self) -> pd.DataFrame:
        """Refit with every available optimizer: estimates and log-likelihoods."""
        return optimizers.allfit(self)

    def simulate(self, nsim: int = 1, seed: int | None = None) -> pd.DataFrame:
        """Responses simulated from the fitted model, as R's ``simulate()``."""
        return prediction.simulate(self, nsim=nsim, seed=seed)

    def power(self, term: str, *, effect: float | None = None, along: str | None = None,
              n: Any = None, nsim: int = 1000, alpha: float = 0.05, test: str | None = None,
              seed: int | None = None, workers: int | None = None, backend: Any = None,
              progress: bool = True) -> power_.PowerResult:
        """Power to detect the fixed effect ``term`` by simulation (simr's powerSim and
        powerCurve); see :func:`lmermagic.toolbox.power.power`."""
        return power_.power(self, term, effect=effect, along=along, n=n, nsim=nsim,
                            alpha=alpha, test=test, seed=seed, workers=workers,
                            backend=backend, progress_bar=progress)

    def check(self, nsim: int = 250, seed: int | None = 123,
              simulate_re: str = "conditional") -> pd.DataFrame:
        """Model checks, one row each: singular fit, convergence, VIFs, overdispersion,
        zero-inflation (performance's) and DHARMa's simulated-residual tests."""
        return checks.check(self, nsim=nsim, seed=seed, simulate_re=simulate_re)

    def refit(self, newresponse: Any) -> LmerModel:
        """The same model fitted to a new response, as lme4's ``refit()``."""
        return refitting.refit(self, newresponse)

    def update(self, formula: str | None = None, **changes: Any) -> LmerModel:
        """Refit with a new formula and/or changed options, as R's ``update()``."""
        return refitting.update(self, formula, **changes)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model to one file; ``lmermagic.load_model(path)`` reads it back."""
        savefile.save(self, path)

    def r_code(self, path: str | os.PathLike[str] | None = None, write: bool = False) -> str:
        """A self-contained R script reproducing this fit; ``write=True`` writes the
        model's columns to ``path`` (CSV), from where the script reads them."""
        return rcode.r_code(self, path, write=write)

    def tidy(self, effects: str | tuple[str, ...] | list[str] = ("fixed", "ran_pars"),
             conf_int: bool = True, conf_level: float = 0.95, scales: str = "sdcor",
             exponentiate: bool = False, standardize: str | None = None) -> pd.DataFrame:
        """One row per parameter, as broom.mixed's ``tidy(m)`` in snake_case;
        ``standardize="refit"|"basic"`` adds effectsize's standardized fixed effects."""
        return tidying.tidy(self, effects=effects, conf_int=conf_int, conf_level=conf_level,
                            scales=scales, exponentiate=exponentiate,
                            standardize=standardize)

    def glance(self) -> pd.DataFrame:
        """The fit statistics in one row, as broom.mixed's ``glance(m)`` in snake_case."""
        return tidying.glance(self)

    def r2(self) -> pd.Series:
        """Marginal and conditional R² (Nakagawa & Schielzeth), as performance's
        ``r2_nakagawa(m)``."""
        return goodness.r2(self)

    def icc(self) -> pd.Series:
        """Adjusted and unadjusted intra-class correlation, as performance's ``icc(m)``."""
        return goodness.icc(self)

    def augment(self) -> pd.DataFrame:
        """The data with fitted values, residuals, hat values, ..., as broom.mixed's
        ``augment(m)``."""
        return tidying.augment(self)

    @property
    def ranef_table(self) -> pd.DataFrame:
        """group, term, level, condval, condsd, as ``as.data.frame(ranef(m, condVar=TRUE))``."""
        return random_effects.ranef_table(self)

    # -- plots: a matplotlib Figure each (pip install 'lmermagic[plots]') ---------

    def plot_ranef(self, group: str | None = None, term: str | None = None,
                   level: float = 0.95, ax: Any = None) -> Any:
        """Caterpillar plot of the random effects, as lme4's ``dotplot(ranef(m))``."""
        return plots.plot_ranef(self, group=group, term=term, level=level, ax=ax)

    def plot_coefs(self, intercept: bool = False, exponentiate: bool = False,
                   ax: Any = None) -> Any:
        """Forest plot of the fixed effects with their 95 % intervals."""
        return plots.plot_coefs(self, intercept=intercept, exponentiate=exponentiate, ax=ax)

    def plot_diagnostics(self, panel: str | None = None, ax: Any = None) -> Any:
        """Residual, scale-location and Q-Q panels (binned residuals for binomial);
        ``panel="simulated"``: DHARMa's QQ and residual-vs-predicted panels."""
        return plots.plot_diagnostics(self, panel=panel, ax=ax)

    def plot_predict(self, x: str, by: str | None = None, level: float = 0.95,
                     n: int = 100, ax: Any = None) -> Any:
        """Population prediction along ``x`` with its band over the data; ``by``: per group."""
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
        """R's own ``summary()`` of the model, as text."""
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
