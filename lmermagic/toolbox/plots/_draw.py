"""What every plot shares: matplotlib imported on demand, a figure made without
pyplot (so no global state changes and nothing is shown twice), axes from the
caller's ``ax=`` or a new figure, category labels thinned so they never
overlap, a smoother and normal quantiles."""

from __future__ import annotations

import functools
import math
from statistics import NormalDist
from typing import Any

import numpy as np

from ...errors import DataError, OptionalDependencyError

INSTALL = "pip install 'lmermagic[plots]'"


def matplotlib() -> Any:
    """The matplotlib module, or an error that says how to install it."""
    try:
        import matplotlib as mpl
        import matplotlib.figure
    except ImportError as exc:
        raise OptionalDependencyError(
            f"lmermagic's plots need matplotlib, which is not installed: {INSTALL}"
        ) from exc
    return mpl


@functools.cache
def _figure_class() -> type:
    from matplotlib.figure import Figure

    class LmerFigure(Figure):  # type: ignore[misc]
        """A Figure that shows itself in a notebook as a PNG (IPython's matplotlib
        formatter, when one is active, takes precedence: it matches Figure)."""

        def _repr_png_(self) -> bytes:
            import io

            buf = io.BytesIO()
            self.savefig(buf, format="png", bbox_inches="tight")
            return buf.getvalue()

    return LmerFigure


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure not registered with pyplot."""
    matplotlib()
    return _figure_class()(figsize=(width, height), layout="constrained")


def panels(ax: Any, n: int, ncols: int, size: tuple[float, float],
           sharey: bool = False) -> tuple[Any, list[Any]]:
    """(figure, axes) for ``n`` panels: the caller's ``ax`` when it is one
    panel, else a new figure of ``ncols`` columns with panels of ``size`` inches."""
    if ax is not None:
        if n != 1:
            raise DataError(f"ax= draws one panel; this plot has {n}. Leave ax out for a "
                            "figure of its own, or select one panel (see the arguments).")
        return ax.figure, [ax]
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = new_figure(size[0] * ncols, size[1] * nrows)
    axes = fig.subplots(nrows, ncols, sharey=sharey, squeeze=False).ravel()
    for extra in axes[n:]:
        extra.set_visible(False)
    return fig, list(axes[:n])


def category_axis(ax: Any, labels: list[str], axis: str = "y") -> None:
    """Put ``labels`` at positions 0..n-1 of the axis, thinned at draw time to
    what the axis has room for, so that labels never overlap."""
    from matplotlib.ticker import FuncFormatter, Locator

    n = len(labels)

    class ThinLocator(Locator):  # type: ignore[misc]
        def __call__(self) -> list[int]:
            return self.tick_values(0, n - 1)

        def tick_values(self, vmin: float, vmax: float) -> list[int]:
            # get_tick_space(): how many labels fit at twice the font size apart
            space = max(int(self.axis.get_tick_space()), 1) if self.axis is not None else n
            step = max(1, math.ceil(n / space))
            return list(range(0, n, step))

    def label(pos: float, _: Any) -> str:
        i = round(pos)
        return labels[i] if 0 <= i < n and abs(pos - i) < 1e-9 else ""

    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(ThinLocator())
    target.set_major_formatter(FuncFormatter(label))
    lim = (-0.5, n - 0.5)
    if axis == "y":
        ax.set_ylim(*lim)
    else:
        ax.set_xlim(*lim)


def normal_quantiles(n: int) -> np.ndarray:
    """Theoretical quantiles at R's ``ppoints(n)`` (as ``qqnorm``)."""
    a = 3 / 8 if n <= 10 else 0.5
    p = (np.arange(1, n + 1) - a) / (n + 1 - 2 * a)
    inv = NormalDist().inv_cdf
    return np.array([inv(float(q)) for q in p])


def qq_line(sample: np.ndarray) -> tuple[float, float]:
    """Intercept and slope of R's ``qqline()``: through the quartiles."""
    q = np.quantile(sample, [0.25, 0.75])
    z = np.array([NormalDist().inv_cdf(0.25), NormalDist().inv_cdf(0.75)])
    slope = (q[1] - q[0]) / (z[1] - z[0])
    return float(q[0] - slope * z[0]), float(slope)


def z_value(level: float) -> float:
    if not 0 < level < 1:
        raise DataError(f"level={level!r}: give a probability between 0 and 1, e.g. 0.95.")
    return NormalDist().inv_cdf(0.5 + level / 2)


def smooth(x: np.ndarray, y: np.ndarray, frac: float = 2 / 3,
           points: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """A local linear smoother (lowess without robustness steps) on a grid of x."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3 or np.ptp(x) == 0:
        return np.array([]), np.array([])
    k = max(3, math.ceil(frac * x.size))
    grid = np.linspace(x.min(), x.max(), points)
    out = np.empty_like(grid)
    for i, g in enumerate(grid):
        d = np.abs(x - g)
        h = np.partition(d, k - 1)[k - 1] or 1e-12
        w = np.clip(1 - (d / h) ** 3, 0, None) ** 3
        sw = w.sum()
        mx, my = (w * x).sum() / sw, (w * y).sum() / sw
        vx = (w * (x - mx) ** 2).sum()
        slope = (w * (x - mx) * (y - my)).sum() / vx if vx > 0 else 0.0
        out[i] = my + slope * (g - mx)
    return grid, out
