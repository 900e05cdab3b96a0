"""Fitting a glmmTMB model: a :class:`~lmermagic.tmb_request.TmbRequest` and
data in, the model's fields out (R/tmb.R's ``lmm_tmb_fit``).

Every formula (``formula``, ``ziformula``, ``dispformula``) is checked against
the data's columns and the allowlist by R/formula.R before R builds it; only
the columns they use are sent to R; the caller's frame is read, never changed.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd

from . import cache, convert, tables, tmb_cache
from .errors import DataError, FitError, RPackageMissingError, did_you_mean, excerpt
from .rbridge import get_r
from .request import raise_formula_problem
from .tmb_request import TmbRequest

__all__ = ["GLMMTMB_ADVICE", "coef_table", "require_glmmtmb", "table_fields", "tmb_fields",
           "varcorr_table"]

GLMMTMB_ADVICE = ("apt-get install r-cran-glmmtmb  |  conda install -c conda-forge "
                  "r-glmmtmb  |  in R: install.packages('glmmTMB')")

COEF_COLUMNS = ["component", "term", "estimate", "std_error", "statistic", "p_value",
                "conf_low", "conf_high"]
VARCORR_COLUMNS = ["component", "group", "var1", "var2", "vcov", "sdcor"]


def require_glmmtmb() -> str:
    """glmmTMB's version; RPackageMissingError if R does not have it."""
    version = get_r().run("lmm_tmb_version")
    value = version[0] if isinstance(version, list) else version
    if value is None or (isinstance(value, float) and np.isnan(value)):
        raise RPackageMissingError(f"R package 'glmmTMB' is not installed: {GLMMTMB_ADVICE}")
    return str(value)


def _col(v: dict[str, Any], key: str) -> Any:
    got = v.get(key)
    return [] if got is None else got


def coef_table(c: dict[str, Any]) -> pd.DataFrame:
    """component, term, estimate, std_error, statistic (Wald z), p_value,
    conf_low, conf_high (95 % Wald), as glmmTMB's ``summary(m)$coefficients``."""
    out = pd.DataFrame({k: (list(c[k]) if k in ("component", "term")
                            else np.asarray(c[k], dtype=float)) for k in COEF_COLUMNS})
    return out


def varcorr_table(v: dict[str, Any]) -> pd.DataFrame:
    """lmer's varcorr columns (group, var1, var2, vcov, sdcor) after ``component``."""
    n = len(_col(v, "group"))
    return pd.DataFrame({
        "component": list(_col(v, "component")),
        "group": list(_col(v, "group")),
        "var1": list(_col(v, "var1")) if n else [],
        "var2": list(_col(v, "var2")) if n else [],
        "vcov": np.asarray(_col(v, "vcov"), dtype=float),
        "sdcor": np.asarray(_col(v, "sdcor"), dtype=float),
    }, columns=VARCORR_COLUMNS)


def _used(request: TmbRequest, columns: list[str]) -> list[str]:
    r = get_r()
    allowed = r.allowed(request.extra_functions)
    used: list[str] = []
    for what, text, one_sided in (("the formula", request.formula, False),
                                  ("ziformula", request.ziformula, True),
                                  ("dispformula", request.dispformula, True)):
        if text is None:
            continue
        chk = r.run("lmm_check_formula", text, columns, allowed, one_sided, packed=True)
        raise_formula_problem(chk, text, columns, what=what,
                              data=f"'{request.data_name}'")
        used += [v for v in (chk.get("vars") or []) if v not in used]
    for col in request.factors:
        if col not in columns:
            raise DataError(f"factors: '{col}' is not a column of '{request.data_name}'."
                            + did_you_mean(col, columns))
        if col not in used:
            raise DataError(f"factors: '{col}' is not used in the formulas.")
    for option, column in (("weights", request.weights), ("offset", request.offset)):
        if column is not None:
            if column not in columns:
                raise DataError(f"{option}: '{column}' is not a column of "
                                f"'{request.data_name}'." + did_you_mean(column, columns))
            if column not in used:
                used.append(column)
    return used


def tmb_fields(request: TmbRequest, data: Any) -> dict[str, Any]:
    """Fit ``request`` on ``data`` with glmmTMB: the model's fields (R's
    warnings in ``warnings``, not yet issued).

    As lmer's fits (fitting.fit_fields): the same request on the same column
    contents comes from the fit cache, in memory or (``cache_dir``) on disk;
    ``meta["cache"]`` says from where. ``isolate``: fitted in a worker."""
    df = convert.as_pandas(data, request.data_name)
    convert.check_labels(df, request.data_name)
    if len(df) == 0:
        raise DataError(f"'{request.data_name}' has no rows: there is nothing to fit.")
    version = require_glmmtmb()
    used = _used(request, list(df.columns))
    r = get_r()
    columns = [convert.encode_column(c, df[c]) for c in used]
    versions = {**r.stack_versions(), "glmmTMB": version}
    key = cache.fit_key(request, columns, len(df), versions)
    cells = len(df) * len(columns)
    source = "memory"
    entry = cache.recall(key)
    disk = cache.directory(request.cache_dir) if request.cache_dir else None
    if entry is None and disk is not None:
        source = "disk"
        entry = tmb_cache.from_disk(request, disk, key, cells)
    if entry is None:
        source = "miss"
        run = tmb_cache.run_isolated if request.isolate else tmb_cache.run
        res = run(request, columns, len(df), disk is not None)
        if "error" in res:
            _raise(request, res)
        texts = list(res.get("warnings") or []) + list(res.get("messages") or [])
        entry = cache.Entry(res["fit"], res["data"], res["tables"], tuple(texts), cells)
        if disk is not None:
            tmb_cache.to_disk(disk, key, res["cache_tables"], res["fit"], res["data"],
                              res.get("payload"))
    cache.remember(key, entry)
    # copies: a model's tables are its own, whoever else got the same entry
    fields = table_fields(request, data, df.index, copy.deepcopy(entry.tables),
                          list(entry.texts), version, versions)
    fields.update(r_object=entry.fit, r_data=entry.data)
    fields["meta"]["cache"] = source
    if request.isolate and source == "miss":
        fields["meta"]["isolated"] = True
    return fields


def _raise(request: TmbRequest, res: dict[str, Any]) -> None:
    msg = str(res["error"][0])
    if str(res["error_class"][0]) == "lmm_preflight":
        raise DataError(f"'{request.data_name}': {msg}")
    raise FitError(f"R could not fit {request.formula!r} with glmmTMB: {excerpt(msg)}",
                   r_message=msg)


def table_fields(request: TmbRequest, data: Any, index: pd.Index, t: dict[str, Any],
                 texts: list[str], version: str, versions: dict[str, str]
                 ) -> dict[str, Any]:
    """The model's fields from R's tables (lmm_tmb_tables), but its R objects."""
    dropped = np.asarray(t["dropped"] if t["dropped"] is not None else [], dtype=np.int64)
    conv = str((t.get("opt_message") or [""])[0])
    warn = list(dict.fromkeys(texts))
    meta = {k: (v[0] if isinstance(v, (list, np.ndarray)) and len(v) == 1 else v)
            for k, v in (t.get("meta") or {}).items()}
    meta["glmmTMB"] = version
    return {
        "formula": request.formula,
        "kind": "glmmTMB",
        "family": str(t["family"][0]),
        "link": str(t["link"][0]),
        "reml": bool(t["reml"][0]),
        "ddf": "asymptotic",
        "coefs": coef_table(t["coefs"]),
        "ranef": tables.ranef_tables(t["ranef"]),
        "varcorr": varcorr_table(t["varcorr"]),
        "fitted": tables.on_caller_index(t["fitted"], dropped, index, "fitted"),
        "residuals": tables.on_caller_index(t["residuals"], dropped, index, "residuals"),
        "nobs": int(t["nobs"][0]),
        "ngroups": {k: int(v) for k, v in (t["ngroups"] or {}).items()},
        "loglik": float(t["loglik"][0]),
        "df_model": int(t["df_model"][0]),
        "df_resid": float(t["df_resid"][0]),
        "aic": float(t["aic"][0]),
        "bic": float(t["bic"][0]),
        "deviance": float(t["deviance"][0]),
        "reml_criterion": float("nan"),
        "sigma": float(t["sigma"][0]),
        "converged": bool(t["converged"][0]),
        "singular": not bool(t["pd_hess"][0]),
        "warnings": warn + ([f"glmmTMB's optimizer: {conv}"] if conv and not bool(
            t["converged"][0]) else []),
        "dropped": index[dropped - 1] if len(dropped) else index[:0],
        "missing": {k: int(v) for k, v in (t.get("na_counts") or {}).items() if v},
        "theta": np.zeros(0),
        "data_name": request.data_name,
        "request": request,
        "data": data,
        "name": request.name,
        "meta": meta,
        "versions": versions,
    }
