"""Fitting a glmmTMB model: a :class:`~lmermagic.tmb_request.TmbRequest` and
data in, the model's fields out (R/tmb.R's ``lmm_tmb_fit``).

Every formula (``formula``, ``ziformula``, ``dispformula``) is checked against
the data's columns and the allowlist by R/formula.R before R builds it; only
the columns they use are sent to R; the caller's frame is read, never changed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from . import convert, tables
from .errors import DataError, FitError, RPackageMissingError, did_you_mean, excerpt
from .rbridge import RFrame, get_r
from .request import raise_formula_problem
from .tmb_request import TmbRequest

__all__ = ["GLMMTMB_ADVICE", "coef_table", "require_glmmtmb", "tmb_fields", "varcorr_table"]

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
    warnings in ``warnings``, not yet issued)."""
    df = convert.as_pandas(data, request.data_name)
    convert.check_labels(df, request.data_name)
    if len(df) == 0:
        raise DataError(f"'{request.data_name}' has no rows: there is nothing to fit.")
    version = require_glmmtmb()
    used = _used(request, list(df.columns))
    r = get_r()
    columns = [convert.encode_column(c, df[c]) for c in used]
    res = r.run("lmm_tmb_fit", RFrame(columns, len(df)), request.formulas(),
                request.r_options(), r.allowed(request.extra_functions),
                keep=("fit", "data"), timeout=request.timeout, packed=True)
    texts = list(res.get("warnings") or []) + list(res.get("messages") or [])
    if "error" in res:
        msg = str(res["error"][0])
        if str(res["error_class"][0]) == "lmm_preflight":
            raise DataError(f"'{request.data_name}': {msg}")
        raise FitError(f"R could not fit {request.formula!r} with glmmTMB: {excerpt(msg)}",
                       r_message=msg)
    t = res["tables"]
    dropped = np.asarray(t["dropped"] if t["dropped"] is not None else [], dtype=np.int64)
    index = df.index
    conv = str((t.get("opt_message") or [""])[0])
    warn = list(dict.fromkeys(texts))
    meta = {k: (v[0] if isinstance(v, (list, np.ndarray)) and len(v) == 1 else v)
            for k, v in (t.get("meta") or {}).items()}
    meta["glmmTMB"] = version
    versions = {**r.stack_versions(), "glmmTMB": version}
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
        "r_object": res["fit"],
        "r_data": res["data"],
        "request": request,
        "data": data,
        "name": request.name,
        "meta": meta,
        "versions": versions,
    }
