"""What ``m.power()`` returns: the power table, the simulations behind it, its
curve, and the Clopper-Pearson interval computed without SciPy."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["PowerResult", "clopper_pearson", "power_table"]

TARGET = 0.8


def _binom_upper_tail(x: int, n: int, p: float) -> float:
    """P(X >= x) for X ~ Binomial(n, p), summed in log space."""
    if x <= 0:
        return 1.0
    if x > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    k = np.arange(x, n + 1, dtype=float)
    logc = (math.lgamma(n + 1) - np.array([math.lgamma(v + 1) for v in k])
            - np.array([math.lgamma(n - v + 1) for v in k]))
    logs = logc + k * math.log(p) + (n - k) * math.log1p(-p)
    top = float(logs.max())
    return float(min(1.0, math.exp(top) * np.exp(logs - top).sum()))


def _solve(f: Any, target: float) -> float:
    """The p in [0, 1] where the increasing function f reaches target (bisection
    to the last bit of a double)."""
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def clopper_pearson(x: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a binomial proportion, as R's
    ``binom.test(x, n, conf.level = level)$conf.int``: the lower bound is where
    P(X >= x) = (1 - level) / 2, the upper where P(X <= x) = (1 - level) / 2."""
    if n <= 0:
        return math.nan, math.nan
    a = (1.0 - level) / 2.0
    lower = 0.0 if x == 0 else _solve(lambda p: _binom_upper_tail(x, n, p), a)
    upper = 1.0 if x == n else _solve(lambda p: -(1.0 - _binom_upper_tail(x + 1, n, p)), -a)
    return lower, upper


def power_table(sims: pd.DataFrame, sizes: list[int], nsim: int, alpha: float) -> pd.DataFrame:
    """One row per design size from the per-simulation table."""
    rows = []
    for n in sizes:
        s = sims[sims["n"] == n]
        failed = int(s["failed"].sum())
        ok = s[~s["failed"]]
        successes = int((ok["p_value"] < alpha).sum())
        trials = nsim - failed
        low, high = clopper_pearson(successes, trials)
        rows.append({"n": n, "nsim": nsim, "successes": successes,
                     "power": successes / trials if trials else math.nan,
                     "conf_low": low, "conf_high": high, "n_failed": failed,
                     "n_singular": int(ok["singular"].fillna(False).astype(bool).sum()),
                     "n_not_converged": int((~ok["converged"].fillna(True).astype(bool)).sum())})
    return pd.DataFrame(rows)


@dataclass(eq=False)
class PowerResult:
    """Power of a test of one fixed effect, by simulation (from ``m.power()``).

    What :meth:`lmermagic.LmerModel.power` returns: the power per design size
    with its exact interval, every simulation behind it, a summary in words
    (its repr) and the power curve (:meth:`lmermagic.PowerResult.plot`).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per design size: ``n`` (levels of ``along``; without it, the
        model's number of observations), ``nsim``, ``successes`` (p < alpha),
        ``power`` = successes / (nsim - n_failed), ``conf_low``/``conf_high``
        (95 % Clopper-Pearson interval of the power, as R's ``binom.test``),
        ``n_failed`` (refits without a p-value: left out of the denominator),
        ``n_singular`` and ``n_not_converged`` (among the refits that gave a
        p-value: counted in).
    simulations : pandas.DataFrame
        One row per simulation: ``n, sim, estimate, std_error, statistic, df,
        p_value, singular, converged, failed, message`` (the term's test in
        that refit; ``message`` says why a failed one failed).
    meta : dict
        term, effect, test, alpha, along, seed, backend, workers, seconds,
        kind.

    Examples
    --------
    >>> import lmermagic
    >>> sleep = lmermagic.datasets.load("sleepstudy")
    >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    >>> pr = m.power("Days", effect=5, along="Subject", n=[6, 12], nsim=10, seed=1,
    ...              progress=False)
    >>> pr.table["n"].tolist()
    [6, 12]
    >>> list(pr.table.columns)
    ['n', 'nsim', 'successes', 'power', 'conf_low', 'conf_high', 'n_failed',
     'n_singular', 'n_not_converged']
    >>> pr.simulations.shape
    (20, 11)
    >>> pr.meta["term"], pr.meta["test"]
    ('Days', 'satterthwaite')

    A real study takes the default ``nsim=1000``:

    >>> pr = m.power("Days", effect=5, along="Subject", n=[6, 12, 18])  # doctest: +SKIP
    """

    table: pd.DataFrame
    simulations: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def smallest_n(self) -> int | None:
        """The smallest n of ``table`` whose estimated power reaches 80 %, or None
        if none does."""
        hit = self.table[self.table["power"] >= TARGET]
        return None if hit.empty else int(hit["n"].min())

    def summary(self) -> str:
        """The result in words: the power and its interval, or along a grouping
        factor the smallest tried n that reaches 80 % power.

        Returns
        -------
        str
            One sentence naming the term, the effect, the test, alpha and the
            simulations per size.

        Raises
        ------
        TypeError
            ``meta`` lacks ``effect`` or ``alpha`` (a PowerResult built by
            hand, not by ``m.power()``).

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> pr = m.power("Days", effect=5, along="Subject", n=[6, 12], nsim=10, seed=1,
        ...              progress=False)
        >>> print(pr.summary())
        power to detect 'Days' = 5 (satterthwaite test, alpha = 0.05, 10 simulations per
        size): ...
        """
        m = self.meta
        t = self.table
        what = (f"power to detect {m.get('term')!r} = {m.get('effect'):.4g} "
                f"({m.get('test')} test, alpha = {m.get('alpha'):g}, "
                f"{int(t['nsim'].iloc[0])} simulations per size)")
        along = m.get("along")
        if along is None:
            r = t.iloc[0]
            return (f"{what}: {100 * r['power']:.1f} % "
                    f"(95 % CI {100 * r['conf_low']:.1f} to {100 * r['conf_high']:.1f} %).")
        n = self.smallest_n
        if n is None:
            best = t.loc[t["power"].idxmax()] if t["power"].notna().any() else None
            tail = ("" if best is None else f"; the highest is {100 * best['power']:.1f} % "
                    f"at n = {int(best['n'])}")
            return f"{what}: no tried number of {along} levels reaches 80 % power{tail}."
        r = t[t["n"] == n].iloc[0]
        return (f"{what}: the smallest tried number of {along} levels reaching 80 % power "
                f"is n = {n} ({100 * r['power']:.1f} %, 95 % CI {100 * r['conf_low']:.1f} "
                f"to {100 * r['conf_high']:.1f} %).")

    def __repr__(self) -> str:
        failed = int(self.table["n_failed"].sum())
        note = f" {failed} refits failed (left out of the power)." if failed else ""
        return f"<PowerResult: {self.summary()}{note}>\n{self.table.to_string(index=False)}"

    def _repr_html_(self) -> str:
        return (f"<div><p>{html.escape(self.summary())}</p>"
                f"{self.table.to_html(index=False)}</div>")

    def plot(self, ax: Any = None) -> Any:
        """Draw the power curve over n with its 95 % intervals and the 80 % line.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Draw into these axes; default None: a new figure of its own.

        Returns
        -------
        matplotlib.figure.Figure
            The figure drawn (``ax``'s figure when ``ax`` is given).

        Raises
        ------
        lmermagic.OptionalDependencyError
            matplotlib is not installed.

        Examples
        --------
        >>> import lmermagic
        >>> sleep = lmermagic.datasets.load("sleepstudy")
        >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
        >>> pr = m.power("Days", effect=5, along="Subject", n=[6, 12], nsim=10, seed=1,
        ...              progress=False)
        >>> fig = pr.plot()
        >>> import matplotlib.pyplot as plt
        >>> fig, ax = plt.subplots()
        >>> _ = pr.plot(ax=ax)
        """
        from .plots._draw import panels

        t = self.table
        fig, (a,) = panels(ax, 1, 1, size=(5.0, 3.5))
        x = t["n"].to_numpy(dtype=float)
        y = t["power"].to_numpy(dtype=float)
        err = np.vstack([y - t["conf_low"].to_numpy(dtype=float),
                         t["conf_high"].to_numpy(dtype=float) - y])
        a.axhline(TARGET, color="0.6", lw=0.8, ls="--", zorder=0)
        a.errorbar(x, y, yerr=err, fmt="o-", color="#1f77b4", capsize=3, ms=4)
        a.set_ylim(0, 1.02)
        a.set_xlabel(f"levels of {self.meta['along']}" if self.meta.get("along")
                     else "observations")
        a.set_ylabel("power (95 % CI)")
        a.set_title(f"{self.meta.get('term')}: {self.meta.get('test')} test, "
                    f"alpha = {self.meta.get('alpha'):g}", fontsize=10)
        return fig
