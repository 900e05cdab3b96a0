"""R's result lists -> pandas objects with stable names.

Pure Python: the input is the plain dict :func:`lmermagic.rbridge.to_py` made of
the list R's ``lmm_tables`` returned.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["COEF_COLUMNS", "coef_table", "on_caller_index", "ranef_tables", "varcorr_table"]

COEF_COLUMNS = ["estimate", "std_error", "df", "statistic", "p_value", "conf_low", "conf_high"]


def coef_table(coefs: dict[str, Any]) -> pd.DataFrame:
    """Fixed effects, one row per R term name."""
    index = pd.Index(coefs["terms"], name="term")
    return pd.DataFrame({c: np.asarray(coefs[c], dtype=float) for c in COEF_COLUMNS},
                        index=index)


def varcorr_table(vc: dict[str, Any]) -> pd.DataFrame:
    """As R's ``as.data.frame(VarCorr(m))``: group, var1, var2, vcov, sdcor."""
    return pd.DataFrame({
        "group": list(vc["group"]),
        "var1": list(vc["var1"]),
        "var2": list(vc["var2"]),
        "vcov": np.asarray(vc["vcov"], dtype=float),
        "sdcor": np.asarray(vc["sdcor"], dtype=float),
    })


def ranef_tables(ranef: dict[str, Any] | None) -> dict[str, pd.DataFrame]:
    """As R's ``ranef(m)``: grouping factor -> levels x terms."""
    out: dict[str, pd.DataFrame] = {}
    for group, item in (ranef or {}).items():
        values = np.asarray(item["values"], dtype=float).reshape(
            len(item["levels"]), len(item["terms"]))
        out[group] = pd.DataFrame(values, index=pd.Index(item["levels"], name=group),
                                  columns=list(item["terms"]))
    return out


def on_caller_index(values: np.ndarray, dropped: np.ndarray, index: pd.Index,
                    name: str) -> pd.Series:
    """Spread R's per-observation values back over the caller's rows.

    ``dropped`` are R's 1-based positions of rows removed for missing values;
    those rows get NaN.
    """
    full = np.full(len(index), np.nan)
    keep = np.ones(len(index), dtype=bool)
    if len(dropped):
        keep[np.asarray(dropped, dtype=np.int64) - 1] = False
    full[keep] = values
    return pd.Series(full, index=index, name=name)
