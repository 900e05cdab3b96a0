"""Ordinal mixed models (``ordinal::clmm``): the request, the fields of a fit,
and the fit itself (R's half: ``R/clmm.R``).

The formula goes through the same allowlist as lmer's (``R/formula.R``), only
the columns it uses cross to R (``convert``), the link and threshold names are
checked against fixed lists before R sees them, and the response must be an
ordered categorical: a pandas ordered Categorical keeps its category order as
the levels of R's ordered factor.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd

from . import cache, convert, tables
from .errors import DataError, FitError, RPackageMissingError, excerpt
from .rbridge import RFrame, get_r
from .request import raise_formula_problem
from .clmm_request import LINKS, THRESHOLDS, ClmmRequest

__all__ = ["LINKS", "THRESHOLDS", "ClmmFitted", "ClmmRequest", "fit_fields"]


_ADVICE = ("apt-get install r-cran-ordinal  |  conda install -c conda-forge r-ordinal  |  "
           "in R: install.packages('ordinal')")


@dataclass(frozen=True, eq=False, repr=False)
class ClmmFitted:
    """A fitted ``ordinal::clmm`` model's results; documented on
    :class:`lmermagic.ClmmModel`."""

    formula: str
    link: str
    threshold: str
    coefs: pd.DataFrame
    thresholds: pd.DataFrame
    varcorr: pd.DataFrame
    ranef: dict[str, pd.DataFrame]
    ranef_table: pd.DataFrame
    theta: pd.Series
    levels: list[str]
    fitted: pd.Series
    nobs: int
    ngroups: dict[str, int]
    loglik: float
    edf: int
    aic: float
    bic: float
    cond_h: float
    max_grad: float
    neval: int
    converged: bool
    warnings: list[str]
    dropped: pd.Index
    missing: dict[str, int]
    data_name: str
    kind: str = "clmm"
    r_object: Any = field(default=None)
    r_data: Any = field(default=None)
    request: Any = field(default=None)
    data: Any = field(default=None)
    name: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def robj(self) -> Any:
        """The underlying R model: the rpy2 object of R class ``clmm``.

        For R functions lmermagic does not wrap. Drop it in the thread that
        uses R (rpy2's bookkeeping of R objects is not thread-safe).
        """
        return self.r_object.sexp


def _require_ordinal(r: Any) -> str:
    version = r.run("lmm_clmm_version")
    version = version[0] if isinstance(version, list) else version
    if version is None or (isinstance(version, float) and np.isnan(version)):
        raise RPackageMissingError(f"R package 'ordinal' is not installed: {_ADVICE}")
    return str(version)


def _polars_enum(data: Any, column: str) -> bool:
    """Whether ``data`` is a polars frame whose ``column`` is an Enum: polars'
    categorical with a fixed order, which lmermagic's conversion makes an
    (unordered) pandas Categorical in that order."""
    if not type(data).__module__.startswith("polars"):
        return False
    return type(data.schema[column]).__name__ == "Enum"


def _check_response(df: pd.DataFrame, column: str, data_name: str, polars: bool) -> None:
    """An ordered Categorical, or a DataError that says how to make one."""
    s = df[column]
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype) and dtype.ordered:
        return
    fix = f"{data_name}[{column!r}]"
    if polars:
        raise DataError(
            f"the response '{column}' is a polars column "
            "without an order; clmm needs an ordered categorical whose order you state, "
            f"lowest first: {data_name}.with_columns(pl.col({column!r}).cast("
            "pl.Enum([...]))) (an Enum's categories are its order; ordered=True for pandas).")
    if isinstance(dtype, pd.CategoricalDtype):
        cats = list(dtype.categories)
        raise DataError(
            f"the response '{column}' is an unordered Categorical (categories {cats[:12]!r}"
            f"{' ...' if len(cats) > 12 else ''}); clmm needs an ordered one, lowest "
            f"category first: {fix} = {fix}.cat.as_ordered() keeps this order, "
            f"{fix}.astype(pd.CategoricalDtype([...], ordered=True)) sets another.")
    values = pd.unique(s.dropna())
    try:
        shown = sorted(values.tolist())[:12]
    except TypeError:
        shown = values.tolist()[:12]
    raise DataError(
        f"the response '{column}' is {dtype} ({len(values)} distinct values, e.g. "
        f"{shown!r}); clmm needs an ordered categorical whose order you state, lowest "
        f"first: {fix} = pd.Categorical({fix}, categories=[...], ordered=True), or "
        f"{fix}.astype(pd.CategoricalDtype([...], ordered=True)).")


def fit_fields(request: ClmmRequest, data: Any) -> dict[str, Any]:
    """Fit ``request`` on ``data`` with ``ordinal::clmm``: the model's fields
    (R's warnings not yet issued: ``fields["warnings"]``)."""
    df = convert.as_pandas(data, request.data_name)
    convert.check_labels(df, request.data_name)
    if len(df) == 0:
        raise DataError(f"'{request.data_name}' has no rows: there is nothing to fit.")
    r = get_r()
    ordinal_version = _require_ordinal(r)
    columns = [str(c) for c in df.columns]
    allowed = r.allowed(request.extra_functions)
    chk = r.run("lmm_clmm_check", request.formula, columns, allowed, packed=True)
    raise_formula_problem(chk, request.formula, columns, data=f"'{request.data_name}'")
    lhs = (chk.get("lhs") or [""])[0]
    if lhs and _polars_enum(data, lhs):
        df = df.assign(**{lhs: df[lhs].cat.as_ordered()})  # df is our own copy
    if lhs:
        _check_response(df, lhs, request.data_name, df is not data)
    used = list(chk.get("vars") or [])
    columns_r = [convert.encode_column(c, df[c]) for c in used]
    versions = {**r.stack_versions(), "ordinal": ordinal_version}
    versions.pop("lmerTest", None)
    # The session's fit cache (memory), as lmer's: same request, same column
    # contents, same versions -> the same fit, R's objects shared, tables copied.
    key = cache.fit_key(cast(Any, request), columns_r, len(df), versions)
    entry = cache.recall(key)
    source = "memory"
    if entry is None:
        source = "miss"
        res = r.run("lmm_clmm_fit", RFrame(columns_r, len(df)), request.formula,
                    request.r_options(), allowed, keep=("fit", "data"),
                    timeout=request.timeout, packed=True)
        if "error" in res:
            msg, klass = str(res["error"][0]), str(res["error_class"][0])
            if klass == "lmm_preflight":
                raise DataError(f"'{request.data_name}': {msg}")
            raise FitError(f"R could not fit {request.formula!r} with ordinal::clmm: "
                           f"{excerpt(msg)}", r_message=msg)
        texts = list(res.get("warnings") or []) + list(res.get("messages") or [])
        entry = cache.Entry(res["fit"], res["data"], res["tables"], tuple(texts),
                            len(df) * len(columns_r))
        cache.remember(key, entry)
    fields = table_fields(copy.deepcopy(entry.tables), list(entry.texts), df.index)
    fields["meta"]["cache"] = source
    return {
        "formula": request.formula,
        "data_name": request.data_name,
        "name": request.name,
        "request": request,
        "data": data,
        "r_object": entry.fit,
        "r_data": entry.data,
        "versions": versions,
        **fields,
    }


def _coefs(part: dict[str, Any]) -> pd.DataFrame:
    terms = part["terms"]
    return pd.DataFrame({c: np.asarray(part[c], dtype=float) for c in
                         ("estimate", "std_error", "statistic", "p_value", "conf_low",
                          "conf_high")},
                        index=pd.Index(list(terms) if terms is not None else [], name="term"))


def _ranef_long(ranef: dict[str, Any]) -> pd.DataFrame:
    rows: dict[str, list[Any]] = {"group": [], "term": [], "level": [], "condval": [],
                                  "condsd": []}
    for group, item in (ranef or {}).items():
        levels, terms = list(item["levels"]), list(item["terms"])
        values = np.asarray(item["values"], dtype=float).reshape(len(levels), len(terms))
        var = np.asarray(item["condvar"], dtype=float).reshape(len(levels), len(terms))
        for j, term in enumerate(terms):
            rows["group"] += [group] * len(levels)
            rows["term"] += [term] * len(levels)
            rows["level"] += levels
            rows["condval"] += values[:, j].tolist()
            rows["condsd"] += np.sqrt(var[:, j]).tolist()
    return pd.DataFrame(rows).astype({"condval": float, "condsd": float})


def table_fields(t: dict[str, Any], texts: list[str], index: pd.Index) -> dict[str, Any]:
    """The ClmmFitted fields computed from R's ``lmm_clmm_tables`` list."""
    dropped = np.asarray(t["dropped"] if t["dropped"] is not None else [], dtype=np.int64)
    thresholds = _coefs(t["thresholds"])
    levels = [str(v) for v in t["y_levels"]]
    names = [f"{a}|{b}" for a, b in itertools.pairwise(levels)]
    warnings = list(dict.fromkeys(texts))
    return {
        "link": str(t["link"][0]),
        "threshold": str(t["threshold"][0]),
        "coefs": _coefs(t["coefs"]),
        "thresholds": thresholds,
        "varcorr": tables.varcorr_table(t["varcorr"]),
        "ranef": tables.ranef_tables(t["ranef"]),
        "ranef_table": _ranef_long(t["ranef"]),
        "theta": pd.Series(np.asarray(t["theta"], dtype=float), index=names, name="theta"),
        "levels": levels,
        "fitted": tables.on_caller_index(np.asarray(t["fitted"], dtype=float), dropped,
                                         index, "fitted"),
        "nobs": int(t["nobs"][0]),
        "ngroups": {k: int(np.asarray(v).ravel()[0]) for k, v in t["ngroups"].items()},
        "loglik": float(t["loglik"][0]),
        "edf": int(t["edf"][0]),
        "aic": float(t["aic"][0]),
        "bic": float(t["bic"][0]),
        "cond_h": float(t["cond_h"][0]),
        "max_grad": float(t["max_grad"][0]),
        "neval": int(t["neval"][0]),
        "converged": int(t["opt_code"][0]) == 0 and not any(
            "converge" in w.lower() for w in warnings),
        "warnings": warnings,
        "dropped": index[dropped - 1] if len(dropped) else index[:0],
        "missing": {k: int(v) for k, v in (t.get("na_counts") or {}).items() if v},
        "meta": {**{k: (v[0] if isinstance(v, (list, np.ndarray)) and len(v) == 1 else v)
                    for k, v in (t.get("meta") or {}).items()},
                 "niter_inner": int(t["niter_inner"][0])},
    }
