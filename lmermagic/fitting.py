"""The fit machinery: a request and data in, every field of a fitted model out.

The formula is checked against the data's columns and the allowlist, only the
columns it uses are sent to R, R's errors become ours, and R's result lists
become the model's fields (:func:`model_fields`, also used when the toolbox
refits). The model class itself is the caller's: :mod:`lmermagic.api` builds
an :class:`~lmermagic.LmerModel`, the toolbox's ``update()`` a model of the
same class as the one it updates.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any, cast

import numpy as np

from . import cache, convert, packed, preflight, rdsguard, tables, warmstart
from .errors import DataError, FitError, did_you_mean, excerpt, reissue
from .rbridge import RFrame, Serialized, get_r, watched
from .request import FitRequest, formula_text, raise_formula_problem

__all__ = ["Prepared", "fit_fields", "issue_warnings", "model_fields", "prepare",
           "result_fields", "run_prepared", "used_columns"]

_MAX_WARNINGS = 5


@dataclass(frozen=True)
class Prepared:
    """One fit, ready for R: the used columns encoded, the options R reads, and
    the caller's row index (fitted values and residuals are laid out on it)."""

    columns: list[convert.RColumn]
    nrow: int
    options: dict[str, Any]
    index: Any


def prepare(request: FitRequest, data: Any) -> Prepared:
    """Check ``data`` and the formula (R parses it, no data goes to R) and
    encode the columns the model uses."""
    df = convert.as_pandas(data, request.data_name)
    convert.check_labels(df, request.data_name)
    if len(df) == 0:
        raise DataError(f"'{request.data_name}' has no rows: there is nothing to fit.")
    r = get_r()
    if request.kind == "lmer" and request.ddf != "lme4":
        r.require("lmerTest")
    if request.ddf == "kenward-roger":
        r.require("pbkrtest")
    columns = list(df.columns)
    allowed = r.allowed(request.extra_functions)
    used = _used_columns(request, _check_formula(r, request, columns, allowed), columns)
    options = request.r_options()
    bounds = preflight.limits(request.allow_large, request.memory_share,
                              request.max_seconds)
    if bounds is not None:
        options["limits"] = bounds
    return Prepared([convert.encode_column(c, df[c]) for c in used], len(df), options,
                    df.index)


def used_columns(request: FitRequest, columns: list[str]) -> list[str]:
    """The columns a fit of ``request`` uses (its formula's, weights, offset),
    once R has checked the formula against ``columns`` and the allowlist
    (a problem raises, naming the data)."""
    r = get_r()
    if request.kind == "lmer" and request.ddf != "lme4":
        r.require("lmerTest")
    allowed = r.allowed(request.extra_functions)
    return _used_columns(request, _check_formula(r, request, columns, allowed), columns)


def run_prepared(request: FitRequest, columns: list[convert.RColumn], nrow: int,
                 options: dict[str, Any], serialized: bool = False,
                 cached: bool = False) -> dict[str, Any]:
    """R's result list for one prepared fit: the fit and its data as R objects,
    or (``serialized``) as one raw vector, ``raw``, of R's serialisation.
    ``cached``: also the tables as bytes for the disk cache, ``cache_tables``."""
    r = get_r()
    # a watched fit (the live status) has lme4 print its evaluations
    progress = () if serialized else (watched(),)
    name, keep = ("lmm_fit_serialized", ("raw",)) if serialized else (
        ("lmm_cache_fit", ("fit", "data", "cache_tables")) if cached
        else ("lmm_fit", ("fit", "data")))
    return cast(dict[str, Any], r.run(
        name, RFrame(columns, nrow), request.formula, options,
        r.allowed(request.extra_functions), *progress, keep=keep, timeout=request.timeout,
        packed=True))


def fit_fields(request: FitRequest, data: Any) -> dict[str, Any]:
    """Fit ``request`` on ``data`` in R: every field of the model, R's warnings
    not yet issued (the caller issues them with :func:`issue_warnings`).

    A fit of the same request on the same column contents comes from the fit
    cache (:mod:`lmermagic.cache`) instead; ``meta["cache"]`` says from where:
    ``"memory"``, ``"disk"`` or ``"miss"``."""
    prep = prepare(request, data)
    key = cache.fit_key(request, prep.columns, prep.nrow, get_r().stack_versions())
    cells = prep.nrow * len(prep.columns)
    source = "memory"
    entry = cache.recall(key)
    disk = cache.directory(request.cache_dir) if request.cache_dir else None
    if entry is None and disk is not None:
        source = "disk"
        entry = _from_disk(request, disk, key, cells)
    if entry is None:
        source = "miss"
        options = warmstart.add_start(request, data, prep.options,
                                      [c.name for c in prep.columns])
        res = run_prepared(request, prep.columns, prep.nrow, options,
                           cached=disk is not None)
        if "error" in res or "too_large" in res:
            return result_fields(request, data, prep, res, None, None)  # raises
        texts = list(res.get("warnings") or []) + list(res.get("messages") or [])
        entry = cache.Entry(res["fit"], res["data"], res["tables"], tuple(texts), cells)
        if disk is not None:
            _to_disk(entry, disk, key, res["cache_tables"])
    cache.remember(key, entry)
    # Copies: a model's tables are its own, whoever else got the same entry.
    res = {"tables": copy.deepcopy(entry.tables), "warnings": list(entry.texts)}
    fields = result_fields(request, data, prep, res, entry.fit, entry.data)
    fields["meta"]["cache"] = source
    return fields


def result_fields(request: FitRequest, data: Any, prep: Prepared, res: dict[str, Any],
                  r_object: Any, r_data: Any) -> dict[str, Any]:
    """The model's fields from R's result list; R's error or the pre-flight's
    refusal raised."""
    r_warnings = list(res.get("warnings") or [])
    r_messages = list(res.get("messages") or [])
    if "error" in res:
        _raise_fit_error(request, str(res["error"][0]), str(res["error_class"][0]))
    if "too_large" in res:
        raise preflight.refusal(res["too_large"], request.memory_share, request.max_seconds,
                                prep.options["limits"]["bytes"])
    t = res["tables"]
    return {
        "formula": request.formula,
        "kind": request.kind,
        "family": str(t["family"][0]),
        "link": str(t["link"][0]),
        "ddf": request.ddf,
        "data_name": request.data_name,
        "r_object": r_object,
        "r_data": r_data,
        "request": request,
        "data": data,
        "name": request.name,
        "versions": get_r().stack_versions(),
        **model_fields(t, r_warnings + r_messages, prep.index),
    }


def _to_disk(entry: cache.Entry, disk: Any, key: bytes, tables_raw: Any) -> None:
    """Store the tables R packed as bytes and R's serialisation of the fit and
    its data, as one entry of two parts."""
    r = get_r()
    parts = [r.raw_bytes(tables_raw),
             r.run("lmm_cache_payload", entry.fit, entry.data)]
    try:
        cache.store(disk, key, parts)
    except OSError as exc:
        cache.warn(f"could not store the fit in {str(disk)!r}: {exc}")


def _from_disk(request: FitRequest, disk: Any, key: bytes,
               cells: int) -> cache.Entry | None:
    """The entry stored under ``key``: its tables read in Python (no R, no
    lme4), the fit and its data left as R's bytes until a method needs them."""
    return stored_entry(disk, key, cells, lambda: _known(request.extra_functions),
                        lambda raw: Serialized(raw, ("fit", "data"),
                                               reader="lmm_cache_unserialize"))


def stored_entry(disk: Any, key: bytes, cells: int, known: Callable[[], rdsguard.Known],
                 bundle: Callable[[bytes], Serialized],
                 check: Callable[[dict[str, Any]], None] | None = None) -> cache.Entry | None:
    """The entry stored under ``key`` (lme4's or glmmTMB's): its tables read in
    Python (``check`` raises PackError for tables not of this kind of fit), its
    fit checked by rdsguard against ``known()`` before R reads it and left as
    R's bytes (``bundle``) until a method needs them; None (with a warning, the
    entry removed) for anything else."""
    parts = cache.load(disk, key)
    if parts is None:
        return None
    try:
        tables, texts = cache.stored_tables(parts)
        if check is not None:
            check(tables)
    except packed.PackError as exc:
        cache.warn(f"the stored tables could not be read ({exc}); refitting.")
        cache.discard(disk, key)
        return None
    try:
        # before R reads a byte of it: R would run what the stream holds
        rdsguard.check(parts[1], known())
    except rdsguard.UnsafeStream as exc:
        cache.warn(f"the stored fit is not one lmermagic writes ({exc}); refitting.")
        cache.discard(disk, key)
        return None
    b = bundle(parts[1])
    return cache.Entry(b.handle("fit"), b.handle("data"), tables, texts, cells)


# What a stored fit may hold (rdsguard.Known), measured once per allowlist
# from what this R session writes itself (lmm_cache_reference, R/cache.R).
_KNOWN: dict[tuple[str, ...], rdsguard.Known] = {}


def _known(extra_functions: Any) -> rdsguard.Known:
    extra = tuple(sorted(extra_functions))
    known = _KNOWN.get(extra)
    if known is None:
        r = get_r()
        known = _KNOWN[extra] = rdsguard.survey(
            r.run("lmm_cache_reference", r.allowed(extra)))
    return known


# Formulas that passed the check, by (formula, columns, allowlist): the check is
# a pure function of these, and notebook cells are re-run all day. R checks the
# formula again before it builds it, so the cache saves time, not safety.
_CHECKED: dict[tuple[Any, ...], list[str]] = {}


def _check_formula(r: Any, request: FitRequest, columns: list[str], allowed: Any) -> list[str]:
    key = (request.formula, tuple(columns), allowed)
    hit = _CHECKED.get(key)
    if hit is not None:
        return list(hit)
    formula_text(request.formula)  # before R recurses over it
    chk = r.run("lmm_check_formula", request.formula, columns, allowed, packed=True)
    raise_formula_problem(chk, request.formula, columns, data=f"'{request.data_name}'")
    vars_ = list(chk.get("vars") or [])
    if len(_CHECKED) >= 256:
        _CHECKED.clear()
    _CHECKED[key] = vars_
    return list(vars_)


def _used_columns(request: FitRequest, vars_: list[str], columns: list[str]) -> list[str]:
    used = list(vars_)

    def known(col: str, what: str) -> None:
        if col not in columns:
            raise DataError(f"{what}: '{col}' is not a column of '{request.data_name}'."
                            + did_you_mean(col, columns))

    for what, cols in (("factors", request.factors), ("contrasts", tuple(request.contrasts))):
        for col in cols:
            known(col, what)
            if col not in used:
                raise DataError(f"{what}: '{col}' is not used in the formula.")
    for option, column in (("weights", request.weights), ("offset", request.offset)):
        if column is not None:
            known(column, option)
            if column not in used:
                used.append(column)
    return used


# R's messages that say nothing to a user, in plain words.
_PLAIN = {
    "objective in x0 returns NA": (
        "the deviance could not be computed at the starting values: look for constant, "
        "extreme or badly scaled values in the response and predictors."),
    "0 (non-NA) cases": "no complete rows: every row has a missing value in a used column.",
}


def _raise_fit_error(request: FitRequest, msg: str, klass: str) -> None:
    if klass == "lmm_preflight":
        raise DataError(f"'{request.data_name}': {msg}")
    for needle, plain in _PLAIN.items():
        if needle in msg:
            raise FitError(f"R could not fit {request.formula!r}: {plain}", r_message=msg)
    raise FitError(f"R could not fit {request.formula!r}: {excerpt(msg)}", r_message=msg)


def issue_warnings(texts: list[str]) -> None:
    """Re-issue R's warnings and messages as Python warnings of our classes,
    at the user's line."""
    reissue(texts, limit=_MAX_WARNINGS)


def model_fields(t: dict[str, Any], texts: list[str], index: Any) -> dict[str, Any]:
    """The LmerModel fields computed from R's ``lmm_tables`` list.

    ``texts`` are R's warnings and messages from the fit; ``index`` is the
    caller's row index, on which fitted values and residuals are laid out.
    """
    conv_msgs = list(t.get("conv_messages") or [])
    all_warnings = list(dict.fromkeys(texts + conv_msgs))
    dropped = np.asarray(t["dropped"] if t["dropped"] is not None else [], dtype=np.int64)
    fields: dict[str, Any] = {
        "reml": bool(t["reml"][0]),
        "coefs": tables.coef_table(t["coefs"]),
        "ranef": tables.ranef_tables(t["ranef"]),
        "varcorr": tables.varcorr_table(t["varcorr"]),
        "fitted": tables.on_caller_index(t["fitted"], dropped, index, "fitted"),
        "residuals": tables.on_caller_index(t["residuals"], dropped, index, "residuals"),
        "nobs": int(t["nobs"][0]),
        "ngroups": {k: int(v) for k, v in t["ngroups"].items()},
        "loglik": float(t["loglik"][0]),
        "df_model": int(t["df_model"][0]),
        "aic": float(t["aic"][0]),
        "bic": float(t["bic"][0]),
        "deviance": float(t["deviance"][0]),
        "reml_criterion": float(t["reml_criterion"][0]),
        "sigma": float(t["sigma"][0]),
        "converged": int(t["opt_code"][0]) == 0 and not any(
            "converge" in w.lower() for w in all_warnings),
        "singular": bool(t["singular"][0]),
        "warnings": all_warnings,
        "dropped": index[dropped - 1] if len(dropped) else index[:0],
        "theta": np.asarray(t["theta"], dtype=float),
        "meta": {k: (v[0] if isinstance(v, (list, np.ndarray)) and len(v) == 1 else v)
                 for k, v in (t.get("meta") or {}).items()},
    }
    if "na_counts" in t:
        fields["missing"] = {k: int(v) for k, v in (t["na_counts"] or {}).items() if v}
    return fields
