"""Warm starts from mixedlm (an optional, R-free Python package).

``warm_start="mixedlm"`` fits the same linear mixed model with mixedlm and
hands its variance parameters (lme4's theta, with each term's grouping factor
and columns) to R, where ``lmm_warm_start`` (R/warmstart.R) maps them onto
lme4's own terms and passes them as ``start=``. lme4 still optimizes to its
own tolerance. Anything that goes wrong here (mixedlm missing, a formula it
does not read, an exception of its own) is a reason, not an error: the fit
then uses lme4's default start and ``meta["warm_start"]`` says why.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import numpy as np

from . import convert

from .errors import DataError
from .request import WARM_STARTS, FitRequest

__all__ = ["add_start", "mixedlm_theta", "resolve"]


def resolve(value: object) -> str | None:
    """``warm_start=`` as the request stores it: False/None (lme4's default
    start), ``"subsample"``, ``"mixedlm"``, or True (mixedlm when it is
    installed, else subsample)."""
    if value is None or value is False:
        return None
    if value is True:
        return "mixedlm" if importlib.util.find_spec("mixedlm") is not None else "subsample"
    if isinstance(value, str) and value.strip().lower() in WARM_STARTS:
        return value.strip().lower()
    raise DataError(f"warm_start={value!r}: use False, True, 'subsample' or 'mixedlm'.")


def mixedlm_theta(request: FitRequest, data: Any, used: list[str]) -> dict[str, Any]:
    """mixedlm's theta for ``request`` on ``data`` as R's ``opts$warm_theta``
    reads it: group, ncol (columns per term), cols, theta, evals; or
    ``{"failed": reason}``."""
    try:
        import mixedlm
    except ImportError:
        return {"failed": "the Python package mixedlm is not installed (pip install mixedlm)"}
    t0 = time.perf_counter()
    try:
        df = convert.as_pandas(data, request.data_name)[used].copy()
        for col in request.factors:
            df[col] = df[col].astype(str).astype("category")
        fit = mixedlm.lmer(request.formula, df, REML=request.reml,
                           weights=request.weights, offset=request.offset)
        cnms = mixedlm.getME(fit, "cnms")
        theta = np.asarray(mixedlm.getME(fit, "theta"), dtype=np.float64)
        groups = [str(g) for g in cnms]
        ncol = np.array([len(cnms[g]) for g in cnms], dtype=np.int32)
        cols = [str(c) for g in cnms for c in cnms[g]]
        evals = int(getattr(fit, "function_evals", 0) or 0)
    except Exception as exc:  # any failure means: the default start
        return {"failed": f"mixedlm could not fit the model ({type(exc).__name__}: "
                          f"{str(exc)[:200]})"}
    return {"group": groups, "ncol": ncol, "cols": cols, "theta": np.ascontiguousarray(theta),
            "evals": evals, "seconds": time.perf_counter() - t0}


def add_start(request: FitRequest, data: Any, options: dict[str, Any],
              used: list[str]) -> dict[str, Any]:
    """``options`` for R, with mixedlm's estimate when the request asks for it."""
    if request.warm_start != "mixedlm":
        return options
    return {**options, "warm_theta": mixedlm_theta(request, data, used)}
