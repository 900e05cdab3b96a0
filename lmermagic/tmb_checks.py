"""``m.check()`` of a glmmTMB fit: singular fit, convergence and the Hessian as
glmmTMB reports them, collinearity of the conditional model, overdispersion and
zero-inflation as R's performance package computes them for glmmTMB fits
(``check_singularity``, ``check_convergence``, ``check_collinearity(component =
"conditional")``, ``check_overdispersion``, ``check_zeroinflation``).

R extracts the fit's pieces (``R/tmb_goodness.R``'s ``lmm_tmb_check_pieces``);
every number is computed here, so the checks work where performance is not
installed. The rows have lmer's ``check()`` schema (docs/schema.md); DHARMa's
simulated-residual rows are lmer's only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .fitted import FittedModel
from .toolbox._common import cached_call, check_model
from .toolbox.checks import _collinearity_rows, _row, check_frame, dispersion_row, vec, zero_row

__all__ = ["SINGULAR_TOLERANCE", "check"]

# performance::check_singularity()'s default for glmmTMB fits: a variance of
# the conditional model's random effects below this is (near) zero
SINGULAR_TOLERANCE = 1e-5
_NEGBIN = ("nbinom1", "nbinom2", "truncated_nbinom2")


def _pieces(m: FittedModel) -> dict[str, Any]:
    return cached_call(m, "_tmb_check_pieces", "lmm_tmb_check_pieces", m.r_object,
                       what="the model checks")


def _one(x: Any) -> Any:
    return np.asarray(x).ravel()[0]


def _count(family: str) -> bool:
    """insight's is_count: a Poisson or negative binomial family (truncated too)."""
    return "poisson" in family or "nbinom" in family


def _fit_rows(p: dict[str, Any]) -> list[dict[str, Any]]:
    v = vec(p["variances"])
    singular = bool(v.size) and bool(np.min(np.abs(v)) < SINGULAR_TOLERANCE)
    rows = [_row("singular", "singular", float(singular), not singular,
                 f"singular fit: a random-effect variance is below {SINGULAR_TOLERANCE:g}; "
                 "consider simplifying the random effects" if singular else "not singular")]
    code = int(_one(p["code"]))
    message = str(_one(p["message"]))
    rows.append(_row("convergence", "optimizer code", float(code), code == 0,
                     "the optimizer converged" + (f" ({message})" if message else "")
                     if code == 0 else f"the optimizer did not converge (code {code}"
                     + (f": {message})" if message else ")")))
    pd_hess = bool(_one(p["pd_hess"]))
    rows.append(_row("pd_hessian", "pdHess", float(pd_hess), pd_hess,
                     "the Hessian is positive definite" if pd_hess else
                     "non-positive-definite Hessian: the standard errors are unreliable and "
                     "the fit may not be at a minimum (glmmTMB's troubleshooting vignette)"))
    return rows


def _dispersion_rows(p: dict[str, Any]) -> list[dict[str, Any]]:
    family = str(_one(p["family"]))
    if not (_count(family) or family == "binomial") or bool(_one(p["bernoulli"])):
        return []
    pearson = vec(p["pearson"])
    rdf = float(_one(p["df_residual"]))
    if not pearson.size:
        return [_row("overdispersion", "dispersion ratio", math.nan, True,
                     "not computed: glmmTMB has no Pearson residuals for this model", df=rdf)]
    return [dispersion_row(pearson, rdf)]


def _zero_rows(p: dict[str, Any]) -> list[dict[str, Any]]:
    family = str(_one(p["family"]))
    if not _count(family):
        return []
    # as performance: the fitted means (zero-inflation included) in a Poisson or,
    # for the negative binomial families, a negative binomial of size sigma(m)
    theta = float(_one(p["sigma"])) if family in _NEGBIN else math.nan
    return [zero_row(vec(p["observed"]), vec(p["mu"]), theta)]


def check(m: FittedModel) -> pd.DataFrame:
    """One row per check: ``check, term, statistic, value, adjusted, df, p_value,
    observed, expected, ok, verdict`` (lmer's ``check()`` schema): ``singular``,
    ``convergence``, ``pd_hessian``, ``collinearity`` (conditional model),
    ``overdispersion`` and ``zero_inflation`` where they apply."""
    check_model(m)
    p = _pieces(m)
    rows = (_fit_rows(p) + _collinearity_rows(p) + _dispersion_rows(p) + _zero_rows(p))
    return check_frame(rows)
