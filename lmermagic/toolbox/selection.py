"""Model selection by information criteria: AICc, its differences from the best
model and Akaike weights, as MuMIn's ``AICc()`` and ``model.sel()`` give them.

Pure arithmetic on numbers the fits already hold (``AIC``, the number of
parameters ``k`` = ``attr(logLik(m), "df")``, the number of observations
``n``), so it needs no R package: MuMIn is in one Debian suite only.
MuMIn uses each model's own ``logLik()`` -- the REML likelihood for a REML
fit -- and so does :func:`aicc`; the model comparison table works on the
likelihoods its rows show (ML after R's refit).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ._common import table

__all__ = ["AICC_COLUMNS", "add_aicc_columns", "aicc", "akaike_weights", "lr_table"]

AICC_COLUMNS = ("aicc", "delta_aicc", "weight")


def aicc(aic: np.ndarray | float, k: np.ndarray | float, n: np.ndarray | float) -> np.ndarray:
    """``AIC + 2k(k+1)/(n-k-1)``, MuMIn's ``AICc`` (Hurvich and Tsai's correction).

    ``k`` counts every estimated parameter, the variance parameters included
    (R's ``attr(logLik(m), "df")``). As in MuMIn the formula is applied as it
    stands: ``n = k + 1`` gives inf and a smaller ``n`` a value below AIC.
    """
    aic, k, n = (np.asarray(x, dtype=float) for x in (aic, k, n))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(aic + 2.0 * k * (k + 1.0) / (n - k - 1.0))


def akaike_weights(ic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The differences from the smallest criterion and the weights
    ``exp(-delta/2) / sum(exp(-delta/2))``, as MuMIn's ``Weights()``. NaN
    criteria stay out of the sum and get NaN."""
    ic = np.asarray(ic, dtype=float)
    delta = np.full(ic.shape, np.nan)
    weight = np.full(ic.shape, np.nan)
    ok = np.isfinite(ic)
    if ok.any():
        delta[ok] = ic[ok] - ic[ok].min()
        w = np.exp(-delta[ok] / 2.0)
        weight[ok] = w / w.sum()
    return delta, weight


def add_aicc_columns(table: pd.DataFrame, k: np.ndarray, n: np.ndarray,
                     groups: list[str] | None = None) -> pd.DataFrame:
    """``table`` (with an ``aic`` column) with ``aicc, delta_aicc, weight``
    appended; delta and weight within each group of rows sharing ``groups``
    (all rows when ``groups`` is empty; NaN for every row when None, and for
    the rows of a group whose models saw different numbers of observations:
    their criteria are not comparable)."""
    out = table.copy()
    out["aicc"] = aicc(out["aic"].to_numpy(dtype=float), k, n)
    delta = np.full(len(out), np.nan)
    weight = np.full(len(out), np.nan)
    if groups is not None:
        codes = (np.zeros(len(out), dtype=np.int64) if not groups else
                 out.groupby(groups, sort=False, dropna=False, observed=True).ngroup()
                 .to_numpy())
        values = out["aicc"].to_numpy()
        n = np.broadcast_to(np.asarray(n, dtype=float), values.shape)
        for g in np.unique(codes):
            rows = codes == g
            if len(np.unique(n[rows])) == 1:
                delta[rows], weight[rows] = akaike_weights(values[rows])
    out["delta_aicc"], out["weight"] = delta, weight
    return out


def lr_table(value: dict[str, Any], labels: Sequence[str], nobs: int,
             rename: dict[str, str] | None = None, data_name: str | None = None) -> pd.DataFrame:
    """R's likelihood-ratio table of nested fits (``anova(m0, m1)``, rows named
    ``model``; its columns renamed by ``rename``) with ``aicc, delta_aicc,
    weight`` appended and R's heading kept, "Data: data" in it naming
    ``data_name``; a DataError where R found the models' data differ (lmer's,
    glmmTMB's and clmm's comparisons)."""
    if "mismatch" in value:
        raise DataError(
            "all models must be fit to the same data (as R's anova() requires): "
            f"{', '.join(value['mismatch'])} differ(s) from {labels[0]} in the rows or "
            "values of the columns they share.")
    df = table(value, index_name="model")
    if rename:
        df = df.rename(columns=rename)
    heading = df.attrs["heading"]
    # anova() refuses models fitted to different numbers of observations
    df = add_aicc_columns(df, df["npar"].to_numpy(dtype=float), np.full(len(df), nobs),
                          groups=[])
    if data_name is not None:
        heading = heading.replace("Data: data", f"Data: {data_name}", 1)
    df.attrs["heading"] = heading
    return df
