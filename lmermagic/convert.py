"""pandas (and polars) columns -> plain arrays ready to become R vectors.

Pure Python: the bridge turns each :class:`RColumn` into an R vector with one
buffer copy. The rules are strict on purpose: a column that cannot cross to R
faithfully raises :class:`~lmermagic.errors.ConversionError` naming the column,
instead of arriving in R as text or as silently changed numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from .errors import ConversionError, DataError

__all__ = ["NA_INTEGER", "NA_REAL", "RColumn", "as_pandas", "check_labels", "encode_column"]

NA_INTEGER = np.int32(-(2**31))
# R's NA_real_ is a NaN with payload 1954; a plain NaN would become R's NaN.
NA_REAL = np.array([0x7FF00000000007A2], dtype=np.uint64).view(np.float64)[0]
_INT_MAX = 2**31 - 1
_EXACT = 2**53

Kind = Literal["double", "integer", "logical", "factor", "posixct"]


@dataclass(frozen=True)
class RColumn:
    """One column in R's terms.

    ``values`` is float64 for double/posixct, int32 for integer/logical/factor
    (1-based codes). ``levels``/``sort_levels``/``ordered`` describe factors.
    """

    name: str
    kind: Kind
    values: np.ndarray
    levels: tuple[str, ...] = ()
    sort_levels: bool = False
    ordered: bool = False


def as_pandas(data: Any, what: str = "data") -> pd.DataFrame:
    """Accept a pandas DataFrame, or a polars DataFrame when polars is installed."""
    if isinstance(data, pd.DataFrame):
        return data
    if type(data).__module__.startswith("polars"):
        return _from_polars(data)
    raise DataError(
        f"'{what}' is a {type(data).__name__}, not a DataFrame: pass a pandas "
        "(or polars) DataFrame."
    )


def _from_polars(data: Any) -> pd.DataFrame:
    """polars -> pandas column by column, without needing pyarrow."""
    import polars as pl

    out: dict[str, Any] = {}
    for name in data.columns:
        s = data.get_column(name)
        if isinstance(s.dtype, pl.Enum):
            # An Enum's category list is its level order.
            out[name] = pd.Categorical(s.cast(pl.String).to_list(),
                                       categories=list(s.dtype.categories))
        elif isinstance(s.dtype, pl.Categorical):
            # polars' Categorical has no fixed level order: R's factor() sorts.
            out[name] = pd.Series(s.cast(pl.String).to_list(), dtype=object)
        elif s.dtype.is_numeric() and s.null_count() and s.dtype.is_integer():
            out[name] = pd.array(s.to_list(), dtype="Int64")
        elif s.dtype.is_numeric() or (s.dtype == pl.Boolean and not s.null_count()):
            out[name] = s.to_numpy()
        else:
            out[name] = pd.Series(s.to_list(), dtype=object)
    return pd.DataFrame(out)


def check_labels(df: pd.DataFrame, what: str = "data") -> None:
    """Refuse column labels R cannot represent one to one."""
    if isinstance(df.columns, pd.MultiIndex):
        raise DataError(
            f"'{what}' has MultiIndex columns; flatten them first, e.g. "
            "df.columns = ['_'.join(map(str, c)) for c in df.columns]."
        )
    seen: set[str] = set()
    for label in df.columns:
        if not isinstance(label, str):
            raise DataError(
                f"column label {label!r} of '{what}' is a {type(label).__name__}, "
                "not a string; rename it, e.g. df.columns = df.columns.astype(str)."
            )
        if label == "":
            raise DataError(f"'{what}' has a column with an empty name; rename it.")
        if label in seen:
            raise DataError(f"'{what}' has more than one column named '{label}'; rename them.")
        seen.add(label)


def _format_level(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if f.is_integer():
            return str(int(f))
        return format(f, ".15g")
    return str(value)


def _na_mask(s: pd.Series) -> np.ndarray:
    return np.asarray(s.isna().to_numpy(), dtype=bool)


def _doubles(name: str, values: np.ndarray, mask: np.ndarray) -> RColumn:
    out = np.array(values, dtype=np.float64, copy=True)
    if np.isinf(out).any():
        rows = np.flatnonzero(np.isinf(out))[:5].tolist()
        raise ConversionError(
            f"column '{name}' contains infinite values (at positions {rows}); "
            "replace them with NaN to drop those rows, or with finite values."
        )
    out[mask | np.isnan(out)] = NA_REAL
    return RColumn(name, "double", out)


def _integers(name: str, s: pd.Series, mask: np.ndarray) -> RColumn:
    present = s[~mask]
    if len(present):
        lo, hi = int(present.min()), int(present.max())
        if lo < -_EXACT or hi > _EXACT:
            raise ConversionError(
                f"column '{name}' ({s.dtype}) holds integers beyond ±2**53, which R "
                "stores only as doubles and would round; convert them explicitly."
            )
        if lo <= NA_INTEGER or hi > _INT_MAX:
            # R's integers cannot hold these (and -2**31 is R's NA): use doubles.
            vals = present.to_numpy(dtype=np.float64)
            out = np.full(len(s), NA_REAL)
            out[~mask] = vals
            return RColumn(name, "double", out)
    out32 = np.full(len(s), NA_INTEGER, dtype=np.int32)
    out32[~mask] = present.to_numpy(dtype=np.int64).astype(np.int32)
    return RColumn(name, "integer", out32)


def _logicals(name: str, s: pd.Series, mask: np.ndarray) -> RColumn:
    out = np.full(len(s), NA_INTEGER, dtype=np.int32)
    out[~mask] = s[~mask].to_numpy(dtype=bool).astype(np.int32)
    return RColumn(name, "logical", out)


def _factor(name: str, s: pd.Series) -> RColumn:
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    levels = tuple(_format_level(u) for u in uniques)
    out = codes.astype(np.int32) + 1
    out[codes < 0] = NA_INTEGER
    return RColumn(name, "factor", out, levels=levels, sort_levels=True)


def _categorical(name: str, s: pd.Series) -> RColumn:
    dtype = s.dtype
    levels = tuple(_format_level(c) for c in dtype.categories)
    if len(set(levels)) != len(levels):
        raise ConversionError(
            f"categories of column '{name}' are distinct in pandas but print alike "
            f"({list(dtype.categories)[:6]}...); rename them."
        )
    codes = s.cat.codes.to_numpy().astype(np.int32)
    out = codes + 1
    out[codes < 0] = NA_INTEGER
    return RColumn(name, "factor", out, levels=levels, ordered=bool(dtype.ordered))


def encode_column(name: str, s: pd.Series) -> RColumn:
    """Encode one pandas column for R, or raise ConversionError naming it."""
    dtype = s.dtype
    mask = _na_mask(s)
    if isinstance(dtype, pd.CategoricalDtype):
        return _categorical(name, s)
    if pd.api.types.is_bool_dtype(dtype):
        return _logicals(name, s, mask)
    if pd.api.types.is_integer_dtype(dtype):
        return _integers(name, s, mask)
    if pd.api.types.is_float_dtype(dtype):
        return _doubles(name, s.to_numpy(dtype=np.float64, na_value=np.nan), mask)
    if isinstance(dtype, pd.DatetimeTZDtype):
        raise ConversionError(
            f"column '{name}' holds time-zone-aware datetimes ({dtype}); convert "
            f"explicitly, e.g. df['{name}'].dt.tz_convert('UTC').dt.tz_localize(None)."
        )
    if pd.api.types.is_datetime64_dtype(dtype):
        ns = s.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.float64) / 1e9
        out = ns.copy()
        out[mask] = NA_REAL
        return RColumn(name, "posixct", out)
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        inferred = pd.api.types.infer_dtype(s, skipna=True)
        if inferred == "string":
            return _factor(name, s)
        if inferred == "boolean":
            return _logicals(name, s, mask)
        if inferred == "integer":
            return _integers(name, s.astype("Int64"), mask)
        if inferred in ("floating", "mixed-integer-float", "decimal"):
            return _doubles(name, s.astype("Float64").to_numpy(np.float64, na_value=np.nan),
                            mask)
        if inferred == "empty":
            return RColumn(name, "logical", np.full(len(s), NA_INTEGER, dtype=np.int32))
        kinds = sorted({type(v).__name__ for v in s[~mask].head(1000)})
        raise ConversionError(
            f"column '{name}' (dtype {dtype}) mixes values of types {kinds}; R needs "
            f"one type per column. Convert it, e.g. df['{name}'].astype(str) for a "
            f"factor or pd.to_numeric(df['{name}']) for numbers."
        )
    raise ConversionError(
        f"column '{name}' has dtype {dtype}, which lmermagic does not send to R; "
        "convert it to numbers, strings, booleans or a Categorical."
    )
