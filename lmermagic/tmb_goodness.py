"""Nakagawa & Schielzeth's R² and the ICC of glmmTMB fits, as
``performance::r2_nakagawa(m)`` (``r2()`` of a glmmTMB mixed model) and
``performance::icc(m)`` compute them by default with insight >= 0.20.2
(``model_component = "full"``, the lognormal approximation).

R (``R/tmb_goodness.R``, glmmTMB and stats alone) returns the fit's pieces;
the formulas are here. As for lmer (:mod:`lmermagic.toolbox.goodness`): the
fixed-effect variance is ``var(X beta)`` of the conditional model, the random
variance Johnson's mean ``z_i' Sigma z_i`` over the conditional model's
random-effect terms (observation-level terms count as additive dispersion),
and the distribution-specific variance is, with ``b0, v0`` the null model's
intercept and random variance, ``sigma`` glmmTMB's ``sigma(m)``:

- gaussian ``sigma²``; binomial ``pi²/3`` (logit), ``1`` (probit), ``pi²/6``
  (cloglog), divided by the mean number of trials; Gamma ``log(1 + sigma²)``
  (log link) or ``sigma²``;
- poisson ``log(1 + 1/mu)``, nbinom1/nbinom2 ``log(1 + 1/mu + 1/sigma)``,
  ``mu = exp(b0 + v0/2)``; zero-inflated: ``sigma`` (the 1 of Poisson)
  replaced by Zuur et al.'s mean variance of a zero-inflated count
  ``mean((1-p) v(mu_i) + mu_i² (p² + p))`` (Poisson ``(1-p)(mu_i + p mu_i²)``);
- tweedie ``log(1 + sigma mu^(power-2))``;
- truncated (hurdle) families ``log(1 + V(mu)/mu²)``, ``mu = exp(b0)``, V
  glmmTMB's variance function of the family;
- beta (logit) ``log(1 + (1 - mu) / (mu (1 + sigma)))``, ``mu = plogis(b0)``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import pandas as pd

from .errors import LmerWarning, SingularFitWarning, caller_stacklevel
from .fitted import FittedModel
from .rbridge import get_r
from .toolbox._common import call, check_model, r_options
from .toolbox.goodness import piece_float as _f
from .toolbox.goodness import scalar, share_series, shares

__all__ = ["TOLERANCE", "from_pieces", "icc", "pieces", "r2", "variances"]

PIECES = ("family", "link", "nobs", "var_fixed", "var_random", "var_observation",
          "smallest_variance", "sigma", "zero_inflated", "trials", "tweedie_power",
          "null_intercept", "null_var_random", "zi_variance", "truncated_variance")
# A random-effect variance below this counts as zero (performance's
# check_singularity() with r2_nakagawa()'s tolerance).
TOLERANCE = 1e-8
_NAN = math.nan
_BINOMIAL = {"logit": math.pi ** 2 / 3, "probit": 1.0, "cloglog": math.pi ** 2 / 6}
# families whose distribution-specific variance needs the null model's v0
_NEEDS_V0 = ("poisson", "nbinom1", "nbinom2", "tweedie")


def pieces(m: FittedModel) -> dict[str, Any]:
    """R's pieces of the glmmTMB fit's variances, computed once per model (the
    null model fitted once where its numbers are used)."""
    check_model(m)
    cached = m.meta.get("_tmb_goodness")
    if cached is None:
        req = m.request
        value = call("lmm_tmb_goodness", m.r_object, m.r_data, req.formulas(), r_options(m),
                     get_r().allowed(req.extra_functions), what="R²")
        cached = {k: scalar(value[k]) for k in PIECES}
        m.meta["_tmb_goodness"] = cached
    return dict(cached)


def singular(p: dict[str, Any]) -> bool:
    """No random-effect variance: none above :data:`TOLERANCE` (or no term)."""
    small = _f(p, "smallest_variance")
    return math.isnan(small) or small < TOLERANCE


def _distribution_variance(p: dict[str, Any]) -> float:
    family, link = str(p["family"]), str(p["link"])
    sigma = _f(p, "sigma")
    b0, v0 = _f(p, "null_intercept"), _f(p, "null_var_random")
    zi = bool(p["zero_inflated"])
    if family == "gaussian":
        return sigma ** 2 if link == "identity" else _NAN
    if family == "binomial":
        return _BINOMIAL.get(link, _NAN) / _f(p, "trials")
    if family == "Gamma":
        if link == "log":
            return math.log1p(sigma ** 2)
        return sigma ** 2 if link in ("inverse", "identity") else _NAN
    if family in ("poisson", "nbinom1", "nbinom2"):
        if link == "sqrt":
            return 0.25 * (1.0 if family == "poisson" else sigma)
        if link != "log":
            return _NAN
        mu = math.exp(b0 + 0.5 * v0)
        if family == "poisson":
            return math.log1p((_f(p, "zi_variance") if zi else 1.0) / mu)
        return math.log1p(1.0 / mu + 1.0 / (_f(p, "zi_variance") if zi else sigma))
    if family == "tweedie":
        mu = math.exp(b0 + 0.5 * v0)
        return math.log1p(sigma * mu ** _f(p, "tweedie_power") / mu ** 2)
    if family.startswith("truncated_"):
        mu = math.exp(b0)
        return math.log1p(_f(p, "truncated_variance") / mu ** 2)
    if family == "beta" and link == "logit":
        mu = 1.0 / (1.0 + math.exp(-b0))
        return math.log1p(mu * (1 - mu) / (1 + sigma) / mu ** 2)
    return _NAN


def variances(p: dict[str, Any]) -> dict[str, float]:
    """``var_fixed``, ``var_random`` (NaN without a random-effect variance),
    ``var_distribution``, ``var_dispersion``, ``var_residual`` (their sum)."""
    dist = _distribution_variance(p)
    dispersion = 0.0 if p["family"] == "gaussian" else _f(p, "var_observation")
    return {"var_fixed": _f(p, "var_fixed"),
            "var_random": _NAN if singular(p) else _f(p, "var_random"),
            "var_distribution": dist, "var_dispersion": dispersion,
            "var_residual": dist + dispersion}


def from_pieces(p: dict[str, Any]) -> dict[str, float]:
    """``r2_marginal, r2_conditional, icc_adjusted, icc_unadjusted``; without a
    random-effect variance the marginal R² is ``fixed / (fixed + residual)``
    (NaN where the distribution variance needs it) and the rest NaN."""
    return shares(variances(p), marginal_without_random=p["family"] not in _NEEDS_V0)


def _warn(p: dict[str, Any], what: str) -> None:
    level = caller_stacklevel()
    if singular(p):
        warnings.warn(f"{what}: no random-effect variance above {TOLERANCE:g} (a singular "
                      "fit, or no random effects), so the random effects' share is not "
                      "defined: NaN, as performance gives NA.", SingularFitWarning,
                      stacklevel=level)
    elif math.isnan(_distribution_variance(p)):
        why = ("the model has a dispersion formula, so there is no one residual variance"
               if math.isnan(_f(p, "sigma")) and p["family"] != "binomial" else
               f"no distribution-specific variance is defined for glmmTMB family "
               f"{p['family']} with link {p['link']}")
        warnings.warn(f"{what}: {why}: NaN, as performance gives NA.", LmerWarning,
                      stacklevel=level)


def _series(m: FittedModel, keys: tuple[str, str], name: str, what: str) -> pd.Series:
    p = pieces(m)
    out = from_pieces(p)
    _warn(p, what)
    return share_series(out, keys, name, variances(p))


def r2(m: FittedModel) -> pd.Series:
    """``r2_marginal``, ``r2_conditional`` (float, named ``"r2"``), as
    ``performance::r2(m)`` for a glmmTMB mixed model; ``attrs["variances"]``
    holds the variance components."""
    return _series(m, ("r2_marginal", "r2_conditional"), "r2", "R²")


def icc(m: FittedModel) -> pd.Series:
    """``icc_adjusted``, ``icc_unadjusted`` (float, named ``"icc"``), as
    ``performance::icc(m)`` for a glmmTMB mixed model."""
    return _series(m, ("icc_adjusted", "icc_unadjusted"), "icc", "ICC")
