"""p-values of the model checks as R computes them, without R or SciPy.

- ``ks_uniform``: R's ``ks.test(x, "punif")``, two-sided: the exact
  distribution (Marsaglia, Tsang & Wang 2003, as R's C code) when n < 100 and
  no values are tied, else the limiting Kolmogorov distribution with R's
  truncation of its series (tolerance 1e-6).
- ``binom_two_sided``: R's ``binom.test(x, n, p)$p.value``: the probabilities
  of outcomes no likelier than x (relative slack 1e-7), summed.
- ``chisq_upper``: R's ``pchisq(q, df, lower.tail = FALSE)`` through the
  regularised incomplete gamma function.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["binom_two_sided", "chisq_upper", "ks_uniform"]

_KS_TOL = 1e-6
_BIG = 1e140


def ks_uniform(x: np.ndarray) -> tuple[float, float, bool]:
    """(D, p, exact) of the two-sided one-sample KS test against U(0, 1)."""
    x = np.sort(np.asarray(x, dtype=float))
    n = x.size
    ties = np.unique(x).size < n
    cdf = np.clip(x, 0.0, 1.0) - np.arange(n) / n
    d = float(max(np.max(cdf), np.max(1.0 / n - cdf)))
    exact = n < 100 and not ties
    p = 1.0 - _kolmogorov_exact(d, n) if exact else _kolmogorov_limit_upper(math.sqrt(n) * d)
    return d, min(1.0, max(0.0, p)), exact


def _kolmogorov_limit_upper(x: float) -> float:
    """P(K > x) for Kolmogorov's limiting distribution, as R sums it."""
    if x <= 0:
        return 1.0
    k_max = int(math.sqrt(2 - math.log(_KS_TOL)))
    if x < 1:
        z = -(math.pi / 2 * math.pi / 4) / (x * x)
        w = math.log(x)
        s = sum(math.exp(k * k * z - w) for k in range(1, k_max, 2))
        return 1.0 - s / (1 / math.sqrt(2 * math.pi))
    # the alternating series 2 * sum (-1)^(k-1) exp(-2 k^2 x^2), stopped as R
    # stops it: after the first term no larger than the tolerance
    z = -2 * x * x
    total, sign, k = 0.0, 1.0, 1
    while True:
        term = 2 * math.exp(z * k * k)
        total += sign * term
        if term <= _KS_TOL:
            return total
        sign, k = -sign, k + 1


def _kolmogorov_exact(d: float, n: int) -> float:
    """P(D_n < d), the matrix-power method of Marsaglia, Tsang & Wang."""
    k = int(n * d) + 1
    m = 2 * k - 1
    h = k - n * d
    i, j = np.indices((m, m))
    gap = i - j + 1
    H = (gap >= 0).astype(float)
    H[:, 0] -= h ** np.arange(1, m + 1)
    H[m - 1, :] -= h ** np.arange(m, 0, -1)
    if 2 * h - 1 > 0:
        H[m - 1, 0] += (2 * h - 1) ** m
    fact = np.array([math.factorial(int(g)) if g > 0 else 1 for g in gap.ravel()],
                    dtype=float).reshape(m, m)
    H = np.where(gap > 0, H / fact, H)
    Q, e = _power(H, n)
    s = Q[k - 1, k - 1]
    for t in range(1, n + 1):
        s = s * t / n
        if s < 1 / _BIG:
            s *= _BIG
            e -= 140
    return float(s * 10.0 ** e)


def _power(A: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """A**n as (matrix, decimal exponent), rescaled to stay in range."""
    if n == 1:
        return A.copy(), 0
    half, e = _power(A, n // 2)
    out = half @ half
    e *= 2
    if n % 2:
        out = A @ out
    mid = A.shape[0] // 2
    if out[mid, mid] > _BIG:
        out /= _BIG
        e += 140
    return out, e


def _log_dbinom(x: np.ndarray, n: int, p: float) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    lg = np.vectorize(math.lgamma)
    return (math.lgamma(n + 1) - lg(x + 1) - lg(n - x + 1)
            + x * math.log(p) + (n - x) * math.log1p(-p))


def binom_two_sided(x: int, n: int, p: float) -> float:
    """R's ``binom.test(x, n, p)$p.value`` (alternative two.sided)."""
    if p <= 0 or p >= 1:
        return float(x == round(n * p))
    support = np.arange(n + 1)
    dens = np.exp(_log_dbinom(support, n, p))
    d = dens[x]
    m = n * p
    if x == m:
        return 1.0
    rel = 1 + 1e-7
    if x < m:
        upper = support[math.ceil(m):]
        y = int(np.sum(dens[upper] <= d * rel))
        pval = float(dens[:x + 1].sum() + dens[n - y + 1:].sum())
    else:
        lower = support[:math.floor(m) + 1]
        y = int(np.sum(dens[lower] <= d * rel))
        pval = float(dens[:y].sum() + dens[x:].sum())
    return min(1.0, pval)


def chisq_upper(q: float, df: float) -> float:
    """P(X > q) for X ~ chi-squared(df)."""
    if q <= 0:
        return 1.0
    return _gamma_upper(df / 2, q / 2)


def _gamma_upper(a: float, x: float) -> float:
    """The regularised upper incomplete gamma function Q(a, x)."""
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        # series for P(a, x) = x^a e^-x / Gamma(a+1) * sum x^n / ((a+1)...(a+n))
        term = total = 1.0 / a
        ap = a
        for _ in range(10000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-17:
                break
        return 1.0 - total * math.exp(log_front)
    # continued fraction for Q(a, x), modified Lentz
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    dd = 1 / b
    f = dd
    for i in range(1, 10000):
        an = -i * (i - a)
        b += 2
        dd = an * dd + b
        dd = tiny if abs(dd) < tiny else dd
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        dd = 1 / dd
        delta = dd * c
        f *= delta
        if abs(delta - 1) < 1e-16:
            break
    return math.exp(log_front) * f
