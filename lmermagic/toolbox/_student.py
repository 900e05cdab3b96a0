"""Quantiles of Student's t distribution for any positive df, without R or SciPy.

The tidy tables' confidence limits use a t quantile per fixed effect
(Satterthwaite or Kenward-Roger df, rarely whole numbers). Calling R for them
would cost a round trip per model, and SciPy is not a dependency, so they are
computed here: the upper tail through the regularised incomplete beta
function's hypergeometric series, then Newton's method from below. Agrees with
R's ``qt()`` to about 1e-13 (tests/test_tidy.py checks it against R).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

__all__ = ["normal_quantile", "t_quantile"]

# Beyond this df the t quantile equals the normal one to about 1e-12 (the first
# correction is (z**3 + z) / (4 df)).
_NORMAL_DF = 1e12
_MAX_STEPS = 200


def normal_quantile(p: float) -> float:
    """The standard normal quantile at probability ``p``."""
    return NormalDist().inv_cdf(p)


def _ibeta(x: float, a: float, b: float, log_beta: float) -> float:
    """Regularised incomplete beta I_x(a, b) for 0 <= x <= 1/2.

    I_x(a, b) = x^a (1-x)^b / (a B(a, b)) * 2F1(a + b, 1; a + 1; x); the series'
    terms shrink at least like x^n, so x <= 1/2 converges in at most ~55 terms.
    """
    if x <= 0.0:
        return 0.0
    total = term = 1.0
    n = 0
    while term > 1e-17 * total and n < 2000:
        term *= x * (a + b + n) / (a + 1.0 + n)
        total += term
        n += 1
    return math.exp(a * math.log(x) + b * math.log1p(-x) - log_beta) / a * total


def _upper_tail(t: float, df: float, log_beta: float) -> float:
    """P(T > t) for t >= 0: half of I_{df/(df+t^2)}(df/2, 1/2)."""
    t2 = t * t
    x = df / (df + t2)
    if x <= 0.5:
        return 0.5 * _ibeta(x, df / 2.0, 0.5, log_beta)
    # The other side of the symmetry I_x(a, b) = 1 - I_{1-x}(b, a), with 1 - x
    # computed directly (no cancellation).
    return 0.5 * (1.0 - _ibeta(t2 / (df + t2), 0.5, df / 2.0, log_beta))


def _log_beta(df: float) -> float:
    """log B(df/2, 1/2)."""
    a = df / 2.0
    if a < 1000.0:
        return math.lgamma(a) + math.lgamma(0.5) - math.lgamma(a + 0.5)
    # lgamma(a) - lgamma(a + 1/2) loses ~log(a) * a * 1e-16 to cancellation;
    # its asymptotic series, exact to 1e-18 here, does not.
    return math.lgamma(0.5) - (0.5 * math.log(a) - 1.0 / (8.0 * a) + 1.0 / (192.0 * a**3))


def _quantile_one(p: float, df: float, z: float) -> float:
    log_beta = _log_beta(df)
    tail = 1.0 - p
    # Cornish-Fisher's first two terms: below the quantile for p > 1/2; if not
    # (tiny df), the normal quantile, which always is.
    t = z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df * df)
    if _upper_tail(t, df, log_beta) < tail:
        t = z
    # The upper tail is convex and decreasing on t > 0: Newton's steps from
    # below stay below the root and increase monotonically to it; a step of
    # 1e-12 leaves an error of the order of its square (rounding keeps later
    # steps from shrinking further at large df).
    for _ in range(_MAX_STEPS):
        density = math.exp(-(df + 1.0) / 2.0 * math.log1p(t * t / df) - log_beta) \
            / math.sqrt(df)
        step = (_upper_tail(t, df, log_beta) - tail) / density
        t += step
        if abs(step) <= 1e-12 * t:
            break
    return t


def t_quantile(p: float, df: np.ndarray) -> np.ndarray:
    """Student's t quantiles at probability ``p`` for each of ``df``.

    Parameters
    ----------
    p : float
        A probability in (1/2, 1), e.g. 0.975 for a 95 % two-sided interval.
    df : numpy.ndarray
        Degrees of freedom; ``inf`` (and anything above 1e12) gives the normal
        quantile, NaN or a df <= 0 gives NaN.

    Returns
    -------
    numpy.ndarray
        Float quantiles, the shape of ``df``.
    """
    if not 0.5 < p < 1.0:
        raise ValueError(f"p must lie in (0.5, 1); got {p!r}")
    df = np.asarray(df, dtype=float)
    z = normal_quantile(p)
    out = np.full(df.shape, np.nan)
    flat = out.reshape(-1)
    for i, d in enumerate(df.reshape(-1).tolist()):
        if d > _NORMAL_DF:
            flat[i] = z
        elif d > 0.0:
            flat[i] = _quantile_one(p, d, z)
    return out
