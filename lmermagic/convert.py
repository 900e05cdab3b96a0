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

__all__ = ["NA_INTEGER", "NA_REAL", "RColumn", "as_pandas", "check_labels", "encode_column",
           "r_text"]

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
        if type(data).__name__ == "LazyFrame":
            raise DataError(f"'{what}' is a polars LazyFrame, a query not yet run: pass "
                            f"{what}.collect(), the DataFrame it computes.")
        if type(data).__name__ != "DataFrame":
            raise DataError(f"'{what}' is a polars {type(data).__name__}, not a DataFrame.")
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
        base = type(s.dtype).__name__ if not isinstance(s.dtype, type) else s.dtype.__name__
        # Types R gets no column for (dates, durations, bytes, ...) keep their
        # Python values: encode_column refuses them, naming the type, if and only
        # if the model uses the column.
        if isinstance(s.dtype, pl.Datetime):
            values = pd.Series(s.to_numpy()).astype("datetime64[ns]")
            out[name] = (values if s.dtype.time_zone is None else
                         values.dt.tz_localize("UTC").dt.tz_convert(s.dtype.time_zone))
        elif isinstance(s.dtype, pl.Enum):
            # An Enum's category list is its level order.
            out[name] = pd.Categorical(s.cast(pl.String).to_list(),
                                       categories=list(s.dtype.categories))
        elif isinstance(s.dtype, pl.Categorical):
            # polars' Categorical has no fixed level order: R's factor() sorts.
            out[name] = pd.Series(s.cast(pl.String).to_list(), dtype=object)
        elif s.dtype.is_integer() and base not in ("Int8", "Int16", "Int32", "Int64",
                                                    "UInt8", "UInt16", "UInt32"):
            # Int128 and UInt64: through Python ints, range-checked as Int64.
            values = s.to_list()
            present = [v for v in values if v is not None]
            if present and (min(present) < -(2**63) or max(present) >= 2**63):
                raise ConversionError(f"column '{name}' ({s.dtype}) holds integers beyond "
                                      "±2**63; convert them explicitly.")
            out[name] = pd.array(values, dtype="Int64")
        elif s.dtype.is_numeric() and s.null_count() and s.dtype.is_integer():
            out[name] = pd.array(s.to_list(), dtype="Int64")
        elif s.dtype.is_numeric() or (s.dtype == pl.Boolean and not s.null_count()):
            out[name] = s.to_numpy()
        else:
            out[name] = pd.Series(s.to_list(), dtype=object)
    return pd.DataFrame(out)


# R's parser takes a name of at most 10,000 bytes and a token of at most 8,192
# (MAXELTSIZE); a longer column name breaks the formula's parse with "input
# buffer overflow".
MAX_NAME_BYTES = 8000


def r_text(value: str, where: str) -> str:
    """``value`` if R can hold it faithfully as text: no NUL (R ends a string
    there, so labels differing after one would merge) and valid Unicode (a lone
    surrogate has no UTF-8 form)."""
    if "\x00" in value:
        at = value.index("\x00")
        raise ConversionError(
            f"{where} contains a NUL character (\\x00) at position {at} (after "
            f"{value[:at][-20:]!r}); R ends text at a NUL, so values differing after it "
            "would become one. Remove it, e.g. .str.replace('\\x00', '').")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConversionError(
            f"{where} is not valid Unicode ({exc.reason} at position {exc.start}: "
            f"{value[max(0, exc.start - 10):exc.start + 1]!r}); R stores text as UTF-8. "
            "Repair it, e.g. .encode('utf-8', 'replace').decode()."
        ) from None
    return value


def _levels(name: str, levels: tuple[str, ...]) -> tuple[str, ...]:
    for i, level in enumerate(levels):
        r_text(level, f"level {i + 1} of column '{name}' ({level[:40]!r})")
    return levels


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
        r_text(label, f"column name {label[:40]!r} of '{what}'")
        if len(label.encode("utf-8")) > MAX_NAME_BYTES:
            raise DataError(
                f"a column name of '{what}' is {len(label):,} characters long "
                f"({label[:30]!r}...); R reads names of at most {MAX_NAME_BYTES:,} bytes in a "
                "formula. Rename it.")


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
    levels = _levels(name, tuple(_format_level(u) for u in uniques))
    out = codes.astype(np.int32) + 1
    out[codes < 0] = NA_INTEGER
    return RColumn(name, "factor", out, levels=levels, sort_levels=True)


def _categorical(name: str, s: pd.Series) -> RColumn:
    dtype = s.dtype
    levels = _levels(name, tuple(_format_level(c) for c in dtype.categories))
    if len(set(levels)) != len(levels):
        raise ConversionError(
            f"categories of column '{name}' are distinct in pandas but print alike "
            f"({list(dtype.categories)[:6]}...); rename them."
        )
    codes = s.cat.codes.to_numpy().astype(np.int32)
    out = codes + 1
    out[codes < 0] = NA_INTEGER
    return RColumn(name, "factor", out, levels=levels, ordered=bool(dtype.ordered))


# Python values of an object column that R gets no column for, and the fix.
_UNSENT = {
    "date": "R's Date is not sent; use a number, e.g. days since a start date, or "
            "pd.to_datetime(df['{c}'])",
    "datetime": "convert them to naive datetimes, e.g. pd.to_datetime(df['{c}'], utc=True)"
                ".dt.tz_localize(None)",
    "time": "convert them to a number, e.g. the hour",
    "timedelta": "convert them to a number, e.g. pd.to_timedelta(df['{c}']).dt.total_seconds()",
    "bytes": "decode them to text, e.g. df['{c}'].str.decode('utf-8')",
    "period": "convert them to timestamps or numbers",
    "interval": "convert them to numbers, e.g. their midpoints",
    "complex": "split them into real and imaginary columns",
}


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
        if inferred in _UNSENT:
            raise ConversionError(f"column '{name}' holds {inferred} values, which lmermagic "
                                  f"does not send to R; {_UNSENT[inferred].format(c=name)}.")
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
