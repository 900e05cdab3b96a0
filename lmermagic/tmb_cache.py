"""glmmTMB fits in lmermagic's fit cache and in worker processes, as lmer's
(:mod:`lmermagic.cache`, :mod:`lmermagic.isolation`).

A glmmTMB fit crosses as bytes (a disk-cache entry, a saved model, a worker's
reply) as R's ``serialize()`` of the fit stripped of everything R would run
(``R/tmb_cache.R``: TMB's object as the plain inputs of ``MakeADFun``, the
family as its name and link, no environment). Before R reads bytes that
came from a file, :mod:`lmermagic.rdsguard` checks them against what this R
session writes itself for lme4's and glmmTMB's fits (:func:`known`); the
disk cache's entries are behind the directory's keyed MAC as lmer's are. R
then rebuilds the fit with the request's own formulas, options and the
caller's allowlist, held in Python, never taken from the bytes
(:func:`bundle`).
"""

from __future__ import annotations

from typing import Any

from . import cache, fitting, packed, preflight, rdsguard
from .convert import RColumn
from .isolation import run_in_worker
from .rbridge import RFrame, Serialized, get_r
from .tmb_request import TmbRequest

__all__ = ["TABLES", "bundle", "from_disk", "known", "run", "run_isolated", "to_disk"]

_KNOWN: dict[tuple[str, ...], rdsguard.Known] = {}
# What tmb_fit.table_fields reads (R/tmb.R's lmm_tmb_tables).
TABLES = {"coefs", "varcorr", "ranef", "fitted", "residuals", "dropped", "nobs", "ngroups",
           "loglik", "df_model", "df_resid", "aic", "bic", "deviance", "sigma", "reml",
           "converged", "pd_hess", "family", "link"}


def known(extra_functions: Any) -> rdsguard.Known:
    """What a stored glmmTMB fit may hold: lmer's known set (the allowlist's
    formula functions, base's ALTREP vectors, Matrix's classes) and what
    lmm_tmb_cache_reference() writes (glmmTMB's calls and terms)."""
    extra = tuple(sorted(extra_functions))
    got = _KNOWN.get(extra)
    if got is None:
        r = get_r()
        got = _KNOWN[extra] = fitting._known(extra) | rdsguard.survey(
            r.run("lmm_tmb_cache_reference", r.allowed(extra)))
    return got


def bundle(raw: bytes, request: TmbRequest) -> Serialized:
    """The fit and data of ``raw`` (lmm_tmb_payload's bytes), rebuilt by R on
    first use from the request's formulas, options and allowlist."""
    r = get_r()
    return Serialized(raw, ("fit", "data"), reader="lmm_tmb_unserialize",
                      args=(request.formulas(), request.r_options(),
                            r.allowed(request.extra_functions)))


def run(request: TmbRequest, columns: list[RColumn], nrow: int,
        cached: bool) -> dict[str, Any]:
    """R's result list of one fit in this R (``cached``: also the tables as
    bytes for the disk cache, ``cache_tables``)."""
    r = get_r()
    name, keep = (("lmm_tmb_cache_fit", ("fit", "data", "cache_tables")) if cached
                  else ("lmm_tmb_fit", ("fit", "data")))
    out: dict[str, Any] = r.run(name, RFrame(columns, nrow), request.formulas(),
                                request.r_options(), r.allowed(request.extra_functions),
                                keep=keep, timeout=request.timeout, packed=True)
    if "cache_tables" in out:
        out["cache_tables"] = r.raw_bytes(out["cache_tables"])
    return out


def _fit_in_worker(state: None, task: tuple[Any, ...]
                   ) -> tuple[int, dict[str, Any], bytes | None]:
    request_id, texts, opts, extra, columns, nrow, cached = task
    r = get_r()
    res = r.run("lmm_tmb_fit_serialized", RFrame(columns, nrow), texts, opts,
                r.allowed(extra), cached, keep=("raw", "cache_tables"), packed=True)
    raw = res.pop("raw", None)
    if "cache_tables" in res:
        res["cache_tables"] = r.raw_bytes(res["cache_tables"])
    return request_id, res, None if raw is None else r.raw_bytes(raw)


def run_isolated(request: TmbRequest, columns: list[RColumn], nrow: int,
                 cached: bool) -> dict[str, Any]:
    """As :func:`run`, in a worker process of the pool (the caller holds the
    fit's time limit: Ctrl-C and the timeout end the worker); ``payload``
    holds the fit as bytes, ``fit`` and ``data`` the handles made from it."""
    limit = (request.memory_limit * 1e9 if request.memory_limit is not None
             else _default_limit())
    res, raw = run_in_worker(_fit_in_worker, (
        request.formulas(), request.r_options(), request.extra_functions, columns, nrow,
        cached), limit)
    if raw is not None:
        b = bundle(raw, request)
        res.update(payload=raw, fit=b.handle("fit"), data=b.handle("data"))
    return res


def _default_limit() -> float | None:
    avail = preflight.available_memory()
    return None if avail is None else 0.8 * avail


def to_disk(disk: Any, key: bytes, tables_raw: bytes, fit: Any, data: Any,
            payload: bytes | None = None) -> None:
    """Store one entry: the tables as R packed them, the stripped fit."""
    try:
        if payload is None:
            payload = get_r().run("lmm_tmb_payload", fit, data)
        cache.store(disk, key, [tables_raw, bytes(payload)])
    except OSError as exc:
        cache.warn(f"could not store the fit in {str(disk)!r}: {exc}")


def from_disk(request: TmbRequest, disk: Any, key: bytes, cells: int) -> cache.Entry | None:
    """The entry stored under ``key`` (its MAC verified by cache.load), its
    tables read in Python, its fit checked by rdsguard before R reads it;
    None (with a warning, the entry removed) for anything else."""
    return fitting.stored_entry(disk, key, cells, lambda: known(request.extra_functions),
                                lambda raw: bundle(raw, request), _check_tables)


def _check_tables(tables: dict[str, Any]) -> None:
    if not (TABLES <= set(tables) and isinstance(tables["coefs"], dict)
            and "component" in tables["coefs"]):
        raise packed.PackError("it does not hold the tables of a glmmTMB fit")
