"""Goodness of fit: Nakagawa & Schielzeth's marginal and conditional R² and the
intra-class correlation, as R's ``performance::r2_nakagawa()`` and
``performance::icc()`` compute them by default (performance >= 0.12, insight
>= 0.20.2).

R (``R/toolbox/goodness.R``, lme4 alone) computes the pieces that need the
fit's matrices; the formulas are here, so that :func:`from_pieces` also turns
the pieces that many-model chunks return into numbers. The variances:

- fixed: the variance of the fixed-effect predictions ``X beta`` (offsets
  left out), with the ``n - 1`` denominator of R's ``var()``;
- random: the sum over random-effect terms of Johnson's (2014) mean variance
  ``mean_i z_i' Sigma z_i`` (``z_i`` the observation's row of the term's own
  model matrix: random slopes count at the observed covariate values); terms
  whose grouping factor has one level per observation are left out (for GLMMs
  they are the additive dispersion);
- distribution-specific (Nakagawa et al. 2017, their "lognormal"
  approximation where one is needed): Gaussian ``sigma²``; binomial
  ``pi²/3`` (logit), ``1`` (probit), ``pi²/6`` (cloglog), each divided by the
  mean number of trials of a ``cbind()`` response; Poisson ``log(1 + 1/mu)``
  and negative binomial ``log(1 + 1/mu + 1/theta)`` with ``mu = exp(b0 + v0/2)``
  from the null model's intercept ``b0`` and random variance ``v0``; Gamma
  ``log(1 + sigma²)`` (log link) or ``sigma²`` (inverse, identity).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import pandas as pd

from ..errors import LmerWarning, SingularFitWarning, caller_stacklevel
from ..fitted import FittedModel
from ._common import call, check_model, r_options

__all__ = ["GOODNESS_COLUMNS", "PIECES", "from_pieces", "icc", "pieces", "r2", "variances"]

# What R returns per fit (goodness.R's lmm_gf_pieces), in this order.
PIECES = ("family", "link", "nobs", "var_fixed", "var_random", "var_observation",
          "singular", "sigma", "nb_theta", "trials", "null_intercept", "null_var_random")
# The glance columns computed here.
GOODNESS_COLUMNS = ("r2_marginal", "r2_conditional", "icc")

_NAN = math.nan
_BINOMIAL = {"logit": math.pi ** 2 / 3, "probit": 1.0, "cloglog": math.pi ** 2 / 6}


def pieces(m: FittedModel) -> dict[str, Any]:
    """R's pieces of the model's variances, computed once and kept on the model.

    For a log-link Poisson or negative binomial model that is not singular this
    fits the null model (its random-effect terms and an intercept) once.
    """
    check_model(m)
    cached = m.meta.get("_goodness")
    if cached is None:
        value = call("lmm_tb_goodness", m.r_object, m.r_data, r_options(m), what="R²")
        cached = {k: scalar(value[k]) for k in PIECES}
        m.meta["_goodness"] = cached
    return dict(cached)


def scalar(v: Any) -> Any:
    """One piece R returned as a Python scalar (NaN for none)."""
    if isinstance(v, (list, tuple)):
        v = v[0] if len(v) else None
    if hasattr(v, "item"):
        v = v.item()
    return _NAN if v is None else v


def piece_float(p: dict[str, Any], key: str) -> float:
    """``p[key]`` as a float; NaN where it is missing or not a number."""
    try:
        return float(p.get(key))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return _NAN



def _distribution_variance(p: dict[str, Any]) -> float:
    family, link = str(p["family"]), str(p["link"])
    sigma = piece_float(p, "sigma")
    if family == "gaussian":
        return sigma ** 2 if link == "identity" else _NAN
    if family == "binomial":
        return _BINOMIAL.get(link, _NAN) / piece_float(p, "trials")
    if family in ("poisson", "negative_binomial"):
        theta = piece_float(p, "nb_theta") if family == "negative_binomial" else math.inf
        if link == "sqrt":
            # Nakagawa et al.'s square-root link: 0.25 times the scale
            # (1 for Poisson; performance takes theta for the negative binomial).
            return 0.25 * (theta if family == "negative_binomial" else 1.0)
        if link != "log":
            return _NAN
        mu = math.exp(piece_float(p, "null_intercept") + 0.5 * piece_float(p, "null_var_random"))
        return math.log1p(1.0 / mu + 1.0 / theta)
    if family == "Gamma":
        if link == "log":
            return math.log1p(sigma ** 2)
        return sigma ** 2 if link in ("inverse", "identity") else _NAN
    return _NAN


def variances(p: dict[str, Any]) -> dict[str, float]:
    """The variance components of R's pieces ``p``: ``var_fixed``,
    ``var_random`` (NaN for a singular fit), ``var_distribution``,
    ``var_dispersion`` and ``var_residual`` (their sum)."""
    gaussian = p["family"] == "gaussian"
    dist = _distribution_variance(p)
    dispersion = 0.0 if gaussian else piece_float(p, "var_observation")
    return {"var_fixed": piece_float(p, "var_fixed"),
            "var_random": _NAN if bool(p["singular"]) else piece_float(p, "var_random"),
            "var_distribution": dist, "var_dispersion": dispersion,
            "var_residual": dist + dispersion}


def from_pieces(p: dict[str, Any]) -> dict[str, float]:
    """``r2_marginal, r2_conditional, icc_adjusted, icc_unadjusted`` of R's pieces.

    As performance: with no random-effect variance (a singular fit) the
    marginal R² is ``fixed / (fixed + residual)`` and the rest is NaN; for a
    singular log-link count model every value is NaN (performance returns NA:
    its distribution variance needs the null model's random variance, which it
    does not compute then).
    """
    count = p["family"] in ("poisson", "negative_binomial") and p["link"] == "log"
    return shares(variances(p), marginal_without_random=not count)


def shares(v: dict[str, float], marginal_without_random: bool) -> dict[str, float]:
    """``r2_marginal, r2_conditional, icc_adjusted, icc_unadjusted`` of the
    variance components ``v``; without a random variance (NaN) all NaN but the
    marginal R², ``fixed / (fixed + residual)`` if ``marginal_without_random``."""
    f, r, res = v["var_fixed"], v["var_random"], v["var_residual"]
    if math.isnan(r):
        marginal = f / (f + res) if marginal_without_random else _NAN
        return {"r2_marginal": marginal, "r2_conditional": _NAN,
                "icc_adjusted": _NAN, "icc_unadjusted": _NAN}
    total = f + r + res
    return {"r2_marginal": f / total, "r2_conditional": (f + r) / total,
            "icc_adjusted": r / (r + res), "icc_unadjusted": r / total}


def _warn(p: dict[str, Any], what: str) -> None:
    level = caller_stacklevel()
    if bool(p["singular"]):
        warnings.warn(f"{what}: a random-effect variance is zero (singular fit), so the "
                      "random effects' share is not defined: NaN, as performance gives NA.",
                      SingularFitWarning, stacklevel=level)
    elif math.isnan(_distribution_variance(p)):
        warnings.warn(f"{what}: no distribution-specific variance is defined for family "
                      f"{p['family']} with link {p['link']}: NaN.", LmerWarning,
                      stacklevel=level)


def r2(m: FittedModel) -> pd.Series:
    """Nakagawa & Schielzeth's marginal and conditional R², as
    ``performance::r2_nakagawa(m)``.

    Parameters
    ----------
    m : LmerModel
        An lmer or glmer model (Gaussian; binomial with logit, probit or
        cloglog link; Poisson or negative binomial with log link; Gamma).

    Returns
    -------
    pandas.Series
        ``r2_marginal`` (the fixed effects' share of the variance) and
        ``r2_conditional`` (fixed and random effects'), float, named ``"r2"``;
        ``attrs["variances"]`` holds the variance components. A singular fit
        gives NaN for ``r2_conditional`` (and for both with a log-link count
        family) with a :class:`~lmermagic.errors.SingularFitWarning`.
    """
    return _series(m, ("r2_marginal", "r2_conditional"), "r2", "R²")


def icc(m: FittedModel) -> pd.Series:
    """The intra-class correlation, adjusted and unadjusted, as
    ``performance::icc(m)``.

    Returns
    -------
    pandas.Series
        ``icc_adjusted`` (random / (random + residual) variance) and
        ``icc_unadjusted`` (random / total, the fixed effects' variance
        included), float, named ``"icc"``; NaN for a singular fit, with a
        :class:`~lmermagic.errors.SingularFitWarning`.
    """
    return _series(m, ("icc_adjusted", "icc_unadjusted"), "icc", "ICC")


def _series(m: FittedModel, keys: tuple[str, str], name: str, what: str) -> pd.Series:
    """Two of the model's numbers as a named Series, the variance components
    in its attrs; the singular-fit warning says ``what``."""
    p = pieces(m)
    out = from_pieces(p)
    _warn(p, what)
    return share_series(out, keys, name, variances(p))


def share_series(out: dict[str, float], keys: tuple[str, str], name: str,
                 components: dict[str, float]) -> pd.Series:
    """``out``'s ``keys`` as a float Series named ``name``, the variance
    ``components`` in its ``attrs["variances"]``."""
    s = pd.Series({k: out[k] for k in keys}, dtype=float, name=name)
    s.attrs["variances"] = components
    return s


def glance_values(m: FittedModel) -> dict[str, float]:
    """The glance columns ``r2_marginal, r2_conditional, icc`` (adjusted ICC)."""
    out = from_pieces(pieces(m))
    return {"r2_marginal": out["r2_marginal"], "r2_conditional": out["r2_conditional"],
            "icc": out["icc_adjusted"]}
