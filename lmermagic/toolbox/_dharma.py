"""Simulation-based scaled residuals and their tests, computed as DHARMa computes
them (``simulateResiduals`` with its defaults, ``testUniformity``,
``testDispersion``, ``testOutliers``, ``testZeroInflation``).

The scaled residual of an observation is the share of its simulations below
the observed value (PIT residual); where simulations tie with it, a uniform
draw between the share strictly below and the share at or below. The draws
come from R's own random stream (``_rrng.RStream``) in DHARMa's order, so the
same simulations and seed give DHARMa's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._pvalues import binom_two_sided, ks_uniform
from ._rrng import RStream

__all__ = ["Simulated", "dispersion_test", "outlier_test", "scaled_residuals",
           "uniformity_test", "zero_test"]

N_BOOT = 100  # DHARMa's testOutliers(nBoot = 100)
BINOMIAL_ABOVE = 500  # integer responses above this many rows: the binomial outlier test


@dataclass(frozen=True)
class Simulated:
    """What DHARMa keeps: simulations (rows: observations, columns: runs), the
    observed and population-predicted response, the scaled residuals, and the
    stream their randomisation drew from (the outlier bootstrap continues it)."""

    simulated: np.ndarray
    observed: np.ndarray
    predicted: np.ndarray
    residuals: np.ndarray
    integer: bool
    stream: RStream


def pit(simulated: np.ndarray, observed: np.ndarray, stream: RStream) -> np.ndarray:
    """DHARMa's getQuantile(method = "PIT")."""
    nsim = simulated.shape[1]
    lower = np.count_nonzero(simulated < observed[:, None], axis=1) / nsim
    upper = np.count_nonzero(simulated <= observed[:, None], axis=1) / nsim
    return stream.runif(lower, upper)


def scaled_residuals(simulated: np.ndarray, observed: np.ndarray, predicted: np.ndarray,
                     integer: bool, stream: RStream) -> Simulated:
    res = pit(simulated, observed, stream)
    return Simulated(simulated, observed, predicted, res, integer, stream)


def uniformity_test(s: Simulated) -> tuple[float, float]:
    """testUniformity: (D, p) of ks.test(residuals, "punif")."""
    d, p, _ = ks_uniform(s.residuals)
    return d, p


def _sample_var(x: np.ndarray) -> float:
    return float(np.var(x, ddof=1))


def _p_two_sided(simulated: np.ndarray, observed: float) -> float:
    """DHARMa's getP(alternative = "two.sided")."""
    return float(min(min(np.mean(simulated <= observed), np.mean(simulated >= observed)) * 2,
                     1.0))


def dispersion_test(s: Simulated) -> tuple[float, float, float, float]:
    """testDispersion(type = "DHARMa"): (ratio, p, observed spread, mean simulated
    spread); spread = var(response - predicted) / sd(all simulations)^2."""
    expected = float(np.sqrt(_sample_var(s.simulated.ravel())) ** 2)
    observed = _sample_var(s.observed - s.predicted) / expected
    dev = s.simulated - s.predicted[:, None]
    sims = np.var(dev, axis=0, ddof=1) / expected
    return observed / float(np.mean(sims)), _p_two_sided(sims, observed), observed, \
        float(np.mean(sims))


def outlier_type(s: Simulated) -> str:
    """testOutliers(type = "default"): the binomial test for continuous
    responses and above 500 rows, else the bootstrap."""
    n = s.observed.size
    return "binomial" if not s.integer or n > BINOMIAL_ABOVE else "bootstrap"


def outlier_test(s: Simulated) -> dict[str, float | str]:
    """testOutliers(margin = "both", alternative = "two.sided") with its default
    type: outliers (count), frequency, expected frequency, p, type."""
    n, nsim = s.simulated.shape
    kind = outlier_type(s)
    if kind == "binomial":
        edge = 1 / (nsim + 1)
        count = int(np.count_nonzero(s.residuals < edge) +
                    np.count_nonzero(s.residuals > 1 - edge))
        expected = 2 * edge
        return {"type": kind, "outliers": float(count), "frequency": count / n,
                "expected": expected, "p_value": binom_two_sided(count, n, expected)}
    freq = float(np.mean(s.residuals == 0) + np.mean(s.residuals == 1))
    nboot = min(N_BOOT, nsim)
    boot = np.empty(nboot)
    columns = np.arange(nsim)
    for i in range(nboot):
        others = np.delete(columns, i)
        sel = others[s.stream.index(nsim - 1, nsim)]
        r = pit(s.simulated[:, sel], s.simulated[:, i], s.stream)
        boot[i] = np.mean(r == 1) + np.mean(r == 0)
    return {"type": kind, "outliers": freq * n, "frequency": freq,
            "expected": float(np.mean(boot)), "p_value": _p_two_sided(boot, freq)}


def zero_test(s: Simulated) -> tuple[float, float, float, float]:
    """testZeroInflation: (observed zeros, mean simulated zeros, ratio observed /
    simulated, p)."""
    observed = float(np.count_nonzero(s.observed == 0))
    sims = np.count_nonzero(s.simulated == 0, axis=0).astype(float)
    mean = float(np.mean(sims))
    ratio = observed / mean if mean > 0 else float("inf") if observed > 0 else float("nan")
    return observed, mean, ratio, _p_two_sided(sims, observed)
