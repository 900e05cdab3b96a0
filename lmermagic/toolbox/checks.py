"""Model checks (``m.check()``): singular fit and convergence as lme4 checks
them, collinearity, overdispersion and zero-inflation as R's performance
package computes them, and DHARMa's simulation-based scaled residuals with
their uniformity, dispersion, outlier and zero-inflation tests.

R extracts the fit's pieces and simulates responses (``R/toolbox/checks.R``);
every number is computed here, so the checks work where performance and
DHARMa are not installed (tests compare with both where they are).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ..fitted import FittedModel
from . import _dharma
from ._common import cached_call, call, check_model, positive_int, r_options, seed_arg
from ._pvalues import chisq_upper
from ._rrng import RStream

__all__ = ["COLUMNS", "check", "simulated_residuals"]

COLUMNS = ["check", "term", "statistic", "value", "adjusted", "df", "p_value", "observed",
           "expected", "ok", "verdict"]
GRAD_TOL = 0.002  # lme4's check.conv.grad tolerance
VIF_MODERATE, VIF_HIGH = 5.0, 10.0  # performance's bands
ZERO_TOLERANCE = 0.05  # performance's check_zeroinflation(tolerance)
ALPHA = 0.05
SIMULATE_RE = ("conditional", "unconditional")
# DHARMa's integer families (simulateResiduals' integerResponse = NULL)
_INTEGER = ("binomial", "poisson", "Negative Binomial")


def _pieces(m: FittedModel) -> dict[str, Any]:
    return cached_call(m, "_check_pieces", "lmm_tb_check_pieces", m.r_object,
                       what="the model checks")


def vec(x: Any) -> np.ndarray:
    """``x`` as a float array (``None``: empty)."""
    return np.asarray(x if x is not None else [], dtype=float)


def _flag(x: Any) -> bool:
    return bool(np.asarray(x).ravel()[0])


def _row(check: str, statistic: str, value: float, ok: bool, verdict: str,
         **extra: Any) -> dict[str, Any]:
    return {"check": check, "term": extra.pop("term", ""), "statistic": statistic,
            "value": value, "ok": ok, "verdict": verdict, **extra}


def _family(p: dict[str, Any]) -> str:
    return str(np.asarray(p["family"]).ravel()[0])


def _count(family: str) -> bool:
    return family == "poisson" or family.startswith("Negative Binomial")


def _fit_rows(m: FittedModel, p: dict[str, Any]) -> list[dict[str, Any]]:
    singular = _flag(p["singular"])
    rows = [_row("singular", "singular", float(singular), not singular,
                 "singular fit: a variance is (near) zero or a correlation is ±1; "
                 "consider simplifying the random effects" if singular else "not singular")]
    grad, hess = vec(p.get("gradient")), vec(p.get("hessian"))
    value = math.nan
    if grad.size and hess.size:
        try:
            # lme4's checkConv: solve(chol(Hessian), gradient), and per
            # component the smaller of the scaled and the raw gradient
            upper = np.linalg.cholesky(hess.reshape(grad.size, grad.size)).T
            scaled = np.linalg.solve(upper, grad)
            value = float(np.max(np.minimum(np.abs(scaled), np.abs(grad))))
        except np.linalg.LinAlgError:
            value = math.inf
    notes = [w for w in m.warnings if "converge" in w.lower() or "grad" in w.lower()]
    if math.isnan(value):
        verdict = ("no derivatives kept by lme4 (large data or calc.derivs = FALSE); "
                   + ("the optimizer reported convergence" if m.converged else
                      "the fit did not converge: " + "; ".join(notes)))
        ok = m.converged
    elif singular:
        ok = m.converged
        verdict = (f"max|grad| = {value:.3g}; lme4 does not check the gradient of a "
                   "singular fit")
    else:
        ok = m.converged and value <= GRAD_TOL
        verdict = (f"converged: max|grad| {value:.3g} <= {GRAD_TOL}" if ok else
                   f"failed to converge: max|grad| {value:.3g} > {GRAD_TOL}"
                   if value > GRAD_TOL else "did not converge: " + "; ".join(notes))
    rows.append(_row("convergence", "max|grad|", value, ok, verdict, expected=GRAD_TOL))
    return rows


def vif_table(p: dict[str, Any]) -> pd.DataFrame:
    """VIF (GVIF for terms of several columns) and performance's adjusted VIF of
    each fixed-effect term, from the fixed effects' covariance."""
    names = [str(n) for n in p["coef_names"]]
    assign = np.asarray(p["assign"], dtype=int)
    labels = [str(t) for t in p["term_labels"]]
    dof = vec(p["term_df"])
    V = np.asarray(p["vcov"], dtype=float).reshape(len(names), len(names))
    if "(Intercept)" in names:
        keep = [i for i, n in enumerate(names) if n != "(Intercept)"]
        V, assign = V[np.ix_(keep, keep)], assign[keep]
    if len(labels) < 2:
        return pd.DataFrame(columns=["term", "vif", "adjusted", "df"])
    sd = np.sqrt(np.diag(V))
    R = V / np.outer(sd, sd)
    det_all = np.linalg.det(R)
    rows = []
    for t, label in enumerate(labels, start=1):
        sub = np.flatnonzero(assign == t)
        if not sub.size:
            continue
        rest = np.setdiff1d(np.arange(assign.size), sub)
        vif = (np.linalg.det(R[np.ix_(sub, sub)]) *
               (np.linalg.det(R[np.ix_(rest, rest)]) if rest.size else 1.0) / det_all)
        rows.append({"term": label, "vif": float(vif),
                     "adjusted": float(vif ** (1 / (2 * dof[t - 1]))), "df": dof[t - 1]})
    return pd.DataFrame(rows)


def _collinearity_rows(p: dict[str, Any]) -> list[dict[str, Any]]:
    t = vif_table(p)
    if t.empty:
        return [_row("collinearity", "VIF", math.nan, True,
                     "not computed: fewer than two fixed-effect terms")]
    inflated = _flag(p["interactions"]) and bool((t["vif"] > VIF_HIGH).any())
    rows = []
    for r in t.itertuples():
        band = ("high" if r.vif >= VIF_HIGH else "moderate" if r.vif >= VIF_MODERATE
                else "low")
        verdict = f"{band} correlation (VIF {r.vif:.2f})"
        if inflated:
            verdict += ("; the model has interaction terms, so VIFs may be inflated: "
                        "center the interacting variables")
        rows.append(_row("collinearity", "VIF", r.vif, r.vif < VIF_MODERATE, verdict,
                         term=r.term, adjusted=r.adjusted, df=r.df))
    return rows


def _dispersion_rows(p: dict[str, Any]) -> list[dict[str, Any]]:
    family = _family(p)
    if not (_count(family) or family == "binomial") or _flag(p["bernoulli"]):
        return []
    return [dispersion_row(vec(p["pearson"]), float(np.asarray(p["df_residual"]).ravel()[0]))]


def dispersion_row(pearson: np.ndarray, rdf: float) -> dict[str, Any]:
    """performance's check_overdispersion: Pearson χ² over the residual df (lmer's
    and glmmTMB's ``check()``)."""
    chisq = float(np.sum(pearson ** 2))
    ratio, pval = chisq / rdf, chisq_upper(chisq, rdf)
    ok = pval > ALPHA
    return _row("overdispersion", "dispersion ratio", ratio, ok,
                "no overdispersion detected" if ok else
                f"overdispersion detected (Pearson χ² / df = {ratio:.2f})",
                df=rdf, p_value=pval, observed=chisq)


def _zero_rows(p: dict[str, Any]) -> list[dict[str, Any]]:
    family = _family(p)
    if not _count(family):
        return []
    theta = float(vec(p["nb_theta"])[0]) if vec(p["nb_theta"]).size else math.nan
    return [zero_row(vec(p["observed"]), vec(p["mu"]), theta)]


def zero_row(y: np.ndarray, mu: np.ndarray, theta: float) -> dict[str, Any]:
    """performance's check_zeroinflation: zeros expected under a Poisson of the
    fitted means or (``theta`` not NaN) a negative binomial of size ``theta``,
    over the observed zeros (lmer's and glmmTMB's ``check()``)."""
    observed = int(np.count_nonzero(y == 0))
    if observed == 0:
        return _row("zero_inflation", "predicted/observed zeros", math.nan, True,
                    "the response has no zeros", observed=0.0)
    p0 = np.exp(-mu) if math.isnan(theta) else (theta / (theta + mu)) ** theta
    predicted = float(np.round(np.sum(p0)))
    ratio = predicted / observed
    if ratio < 1 - ZERO_TOLERANCE:
        ok, verdict = False, "model is underfitting zeros (probable zero-inflation)"
    elif ratio > 1 + ZERO_TOLERANCE:
        ok, verdict = False, "model is overfitting zeros"
    else:
        ok, verdict = True, "ratio of predicted to observed zeros within the tolerance"
    return _row("zero_inflation", "predicted/observed zeros", ratio, ok,
                f"{verdict} (±{ZERO_TOLERANCE})", observed=float(observed),
                expected=predicted)


def simulated_residuals(m: FittedModel, nsim: int = 250, seed: int | None = 123,
                        simulate_re: str = "conditional") -> _dharma.Simulated:
    """DHARMa's scaled residuals from ``nsim`` responses R simulates with ``seed``
    (``seed=None``: a seed drawn from R's current stream)."""
    check_model(m)
    nsim = positive_int(nsim, "nsim")
    if nsim < 2:
        raise DataError("nsim must be at least 2 to scale residuals; DHARMa's default is 250.")
    if simulate_re not in SIMULATE_RE:
        raise DataError(f"simulate_re={simulate_re!r}: use 'conditional' (on the fitted "
                        "random effects, DHARMa >= 0.5's default) or 'unconditional' "
                        "(new random effects, lme4's and DHARMa 0.4's default).")
    p = _pieces(m)
    seed = seed_arg(seed)
    if seed is None:
        seed = int(np.random.default_rng().integers(1, 2**31 - 1))
    value = call("lmm_tb_check_simulate", m.r_object, m.r_data, r_options(m), nsim, seed,
                 simulate_re == "conditional", what="the simulated residuals")
    observed = vec(p["observed"])
    sims = np.asarray(value["sims"], dtype=float).reshape(observed.size, nsim, order="F")
    integer = _family(p).startswith(_INTEGER)
    return _dharma.scaled_residuals(sims, observed, vec(p["predicted"]), integer,
                                    RStream(np.asarray(value["state"])))


def _simulated_rows(s: _dharma.Simulated, family: str) -> list[dict[str, Any]]:
    d, pval = _dharma.uniformity_test(s)
    rows = [_row("sim_uniformity", "KS D", d, pval >= ALPHA,
                 "scaled residuals deviate from uniform (KS test)" if pval < ALPHA
                 else "no significant deviation from uniform (KS test)", p_value=pval)]
    ratio, pval, obs, exp_ = _dharma.dispersion_test(s)
    word = "overdispersion" if ratio > 1 else "underdispersion"
    rows.append(_row("sim_dispersion", "dispersion", ratio, pval >= ALPHA,
                     f"significant {word}" if pval < ALPHA else "no significant dispersion "
                     "problem", p_value=pval, observed=obs, expected=exp_))
    o = _dharma.outlier_test(s)
    n = s.observed.size
    more = o["frequency"] > o["expected"]  # type: ignore[operator]
    rows.append(_row("sim_outliers", "outlier frequency", float(o["frequency"]),
                     float(o["p_value"]) >= ALPHA,
                     (f"{'more' if more else 'fewer'} outliers than expected"
                      if float(o["p_value"]) < ALPHA else "no significant outlier problem")
                     + f" ({o['type']} test)", p_value=float(o["p_value"]),
                     observed=float(o["outliers"]), expected=float(o["expected"]) * n))
    if _count(family):
        zo, zs, _, pval = _dharma.zero_test(s)
        ratio = zs / zo if zo > 0 else math.nan
        verdict = ("no significant zero-inflation" if pval >= ALPHA else
                   "more zeros than simulated (zero-inflation)" if zo > zs else
                   "fewer zeros than simulated")
        rows.append(_row("sim_zero_inflation", "simulated/observed zeros", ratio,
                         pval >= ALPHA, verdict, p_value=pval, observed=zo, expected=zs))
    return rows


def check(m: FittedModel, nsim: int = 250, seed: int | None = 123,
          simulate_re: str = "conditional") -> pd.DataFrame:
    """One row per check: ``check, term, statistic, value, adjusted, df, p_value,
    observed, expected, ok, verdict`` (see docs/schema.md)."""
    check_model(m)
    p = _pieces(m)
    rows = _fit_rows(m, p) + _collinearity_rows(p) + _dispersion_rows(p) + _zero_rows(p)
    s = simulated_residuals(m, nsim=nsim, seed=seed, simulate_re=simulate_re)
    rows += _simulated_rows(s, _family(p))
    return check_frame(rows)


def check_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows of a ``check()`` in its schema's columns and types."""
    out = pd.DataFrame(rows).reindex(columns=COLUMNS)
    for c in ("value", "adjusted", "df", "p_value", "observed", "expected"):
        out[c] = out[c].astype(float)
    out["ok"] = out["ok"].astype(bool)
    for c in ("check", "term", "statistic", "verdict"):
        out[c] = out[c].fillna("").astype(object)
    return out
