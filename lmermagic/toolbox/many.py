"""Many models, one table: one formula's right-hand side on many responses,
one model per subset, or a grid of named formulas, fitted in the notebook's R,
in local worker processes or on a Dask cluster.

Everything that would fail every model (a missing column, an unsafe formula,
a response lmer cannot take) fails here, before any R worker starts. The used
columns are encoded once and shipped to each worker once; a task is a chunk of
models, and R fits a chunk in one call (many.R), reusing the design where the
models share it. A model that fails is recorded in ``errors`` and the rest go
on. The tables are put in model order whatever finished first, so every
backend and number of workers gives the same tables, bit for bit.

``workers=n`` alone means up to n worker processes, when they pay off: a
quarter of the first chunk is fitted here, timed, and :func:`lmermagic.workers.plan_workers`
weighs the rest against the pool's warm workers and measured start-up; the
rest runs on the workers it chooses, or here. ``backend="processes"`` always
uses n processes. ``meta`` says what ran and why.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import convert
from ..cluster import local_cluster, run_on_dask
from ..errors import DataError, FitError, LmerTimeoutError, did_you_mean
from ..fitting import used_columns
from ..rbridge import RFrame, get_r, time_left, time_limit
from ..request import FitRequest
from ..rsyntax import r_symbol
from ..workers import WorkerDied, plan_workers, progress, run_tasks
from .many_tables import ManyModels, assemble

__all__ = ["ManyModels", "Plan", "fit_many", "plan_models"]

P_ADJUST = {"bh": "BH", "fdr": "BH", "by": "BY", "holm": "holm", "bonferroni": "bonferroni",
            "hochberg": "hochberg", "hommel": "hommel", "none": "none"}


@dataclass(frozen=True)
class Plan:
    """The models of a batch: their keys (one row each, in model order), their
    formulas and the rows each uses (1-based; None: every row)."""

    keys: pd.DataFrame
    formulas: list[str]
    rows: list[np.ndarray] | None
    request: FitRequest
    columns: list[convert.RColumn] = field(repr=False)
    nrow: int = 0

    def __len__(self) -> int:
        return len(self.formulas)


def _response_formulas(formula: str, responses: str | Sequence[str], columns: list[str],
                       kind: str, df: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The response columns (one name or several) and the right-hand side of
    ``formula`` on each of them, as formula texts."""
    responses = [responses] if isinstance(responses, str) else list(responses)
    if not responses:
        raise DataError("responses= is empty: give the response columns to fit.")
    if len(set(responses)) != len(responses):
        raise DataError("responses= names a column twice.")
    tilde = formula.find("~")
    if tilde < 0:
        raise DataError(f"the formula {formula!r} has no '~': with responses=, give the "
                        "right-hand side as '~ x + (1 | g)'.")
    rhs = formula[tilde + 1:].strip()
    texts = []
    for name in responses:
        if not isinstance(name, str) or name not in columns:
            raise DataError(f"responses: {name!r} is not a column of the data."
                            + did_you_mean(str(name), columns))
        if kind == "lmer" and not pd.api.types.is_numeric_dtype(df[name]):
            raise DataError(f"responses: '{name}' is {df[name].dtype}, but lmer needs a "
                            "numeric response; for a binary or count response use glmer_many "
                            "with a family.")
        texts.append(f"{r_symbol(name)} ~ {rhs}")
    return responses, texts


def plan_models(formula: str | dict[str, str], df: pd.DataFrame, request: FitRequest, *,
                responses: str | Sequence[str] | None,
                by: str | Sequence[str] | None) -> Plan:
    """Check everything that would fail every model, and lay the models out."""
    columns = list(df.columns)
    key_frames: list[pd.DataFrame] = []
    if isinstance(formula, dict):
        if responses is not None:
            raise DataError("give either a dict of formulas (a grid) or responses=, not both.")
        if not formula:
            raise DataError("the dict of formulas is empty.")
        names = [str(k) for k in formula]
        texts = [str(v).replace("\n", " ").strip() for v in formula.values()]
        checked = texts
        key_frames.append(pd.DataFrame({"model": names}))
    elif responses is not None:
        responses, texts = _response_formulas(formula, responses, columns, request.kind, df)
        checked = texts[:1]  # the same right-hand side: one check covers all
        key_frames.append(pd.DataFrame({"response": responses}))
    else:
        texts = [formula.strip()]
        checked = texts
        key_frames.append(pd.DataFrame(index=range(1)))
    used: list[str] = []
    for text in dict.fromkeys(checked):
        for col in used_columns(dataclasses.replace(request, formula=text), columns):
            if col not in used:
                used.append(col)
    if responses is not None:
        used += [r for r in responses if r not in used]
    rows: list[np.ndarray] | None = None
    by_cols: list[str] = [by] if isinstance(by, str) else list(by or [])
    if by_cols:
        for col in by_cols:
            if col not in columns:
                raise DataError(f"by: '{col}' is not a column of '{request.data_name}'."
                                + did_you_mean(col, columns))
        groups = df.groupby(by_cols, sort=True, dropna=True, observed=True).indices
        if not groups:
            raise DataError(f"by={by_cols}: every row has a missing value in the by columns.")
        labels = [k if isinstance(k, tuple) else (k,) for k in groups]
        key_frames.append(pd.DataFrame(labels, columns=by_cols))
        rows = [np.asarray(v, dtype=np.int32) + 1 for v in groups.values()]
    keys, formulas, model_rows = _cross(key_frames, texts, rows)
    encoded = [convert.encode_column(c, df[c]) for c in used]
    return Plan(keys, formulas, model_rows, request, encoded, len(df))


def _cross(key_frames: list[pd.DataFrame], texts: list[str],
           rows: list[np.ndarray] | None) -> tuple[pd.DataFrame, list[str], Any]:
    """Every formula on every subset: formula-major, subsets in sorted order."""
    first = key_frames[0]
    if len(key_frames) == 1:
        return first.reset_index(drop=True), list(texts), None
    subsets = key_frames[1]
    n_sub = len(subsets)
    keys = pd.concat([first.loc[first.index.repeat(n_sub)].reset_index(drop=True),
                      pd.concat([subsets] * len(first), ignore_index=True)], axis=1)
    assert rows is not None
    # one formula per row of `first` (a single formula when it has no columns)
    return keys, [t for t in texts for _ in range(n_sub)], [r for _ in texts for r in rows]


# ---------------------------------------------------------------- running


@dataclass(frozen=True)
class _Job:
    columns: list[convert.RColumn]
    nrow: int
    factors: list[str]
    options: dict[str, Any]
    extra_functions: tuple[str, ...]


def _setup(job: _Job) -> dict[str, Any]:
    r = get_r()
    data = r.run("lmm_many_data", RFrame(job.columns, job.nrow), job.factors, keep=("data",))
    return {"data": data["data"], "options": job.options,
            "allowed": r.allowed(job.extra_functions), "deadline": None}


def _work(state: dict[str, Any], chunk: tuple[np.ndarray, list[str], Any]) -> dict[str, Any]:
    ids, formulas, rows = chunk
    flat, lengths = rows if rows is not None else (None, None)
    deadline = state["deadline"]
    left = None if deadline is None else max(0.01, deadline - time.monotonic())
    out: dict[str, Any] = get_r().run("lmm_many_fit", state["data"], ids, formulas, flat,
                                      lengths, state["options"], state["allowed"],
                                      packed=True, timeout=left)
    return out


def _chunks(plan: Plan, size: int) -> list[tuple[np.ndarray, list[str], Any]]:
    out = []
    n = len(plan)
    for a in range(0, n, size):
        b = min(n, a + size)
        ids = np.arange(a + 1, b + 1, dtype=np.int32)
        rows = None
        if plan.rows is not None:
            part = plan.rows[a:b]
            rows = (np.concatenate(part).astype(np.int32),
                    np.asarray([len(r) for r in part], dtype=np.int32))
        out.append((ids, plan.formulas[a:b], rows))
    return out


def _check_workers(workers: Any) -> int | None:
    """``workers=`` as a count of processes (None: the default); anything but a
    whole number >= 1 is refused, naming the value."""
    if workers is None:
        return None
    if isinstance(workers, (bool, np.bool_)) or not isinstance(workers, (int, np.integer)) \
            or workers < 1:
        raise DataError(f"workers={workers!r}: give the number of worker processes, a whole "
                        "number >= 1 (workers=1 fits here, in this process), or leave it out "
                        "for the default.")
    return int(workers)


def _backend(backend: Any, workers: Any) -> tuple[str, int]:
    workers = _check_workers(workers)
    if backend is None:
        backend = "serial" if workers in (None, 1) else "processes"
    if isinstance(backend, str):
        name = backend.lower()
        if name not in ("serial", "processes", "dask"):
            raise DataError(f"backend={backend!r}: use 'serial', 'processes', 'dask' or a "
                            "distributed.Client.")
        n = 1 if name == "serial" else (workers or min(4, os.cpu_count() or 1))
        return name, n
    if type(backend).__name__ == "Client":
        return "client", workers or 0
    raise DataError(f"backend={backend!r}: use 'serial', 'processes', 'dask' or a "
                    "distributed.Client.")


def fit_many(plan: Plan, *, backend: Any = None, workers: int | None = None,
             p_adjust: str = "BH", progress_bar: bool = True, chunk_size: int | None = None,
             timeout: float | None = None) -> ManyModels:
    """Fit every model of ``plan`` and return their tables."""
    method = P_ADJUST.get(str(p_adjust).lower())
    if method is None:
        raise DataError(f"p_adjust={p_adjust!r}: use one of BH, BY, holm, hochberg, hommel, "
                        "bonferroni or none (as R's p.adjust).")
    name, n_workers = _backend(backend, workers)
    request = plan.request
    if request.ddf == "kenward-roger":
        raise DataError("ddf='kenward-roger' is not available for many models: use "
                        "'satterthwaite' (the default) or 'lme4'.")
    options = request.r_options()
    job = _Job(plan.columns, plan.nrow, list(request.factors), options,
               request.extra_functions)
    parallel = n_workers if name != "client" else max(1, _client_workers(backend))
    size = chunk_size or max(1, min(200, math.ceil(len(plan) / (8 * parallel))))
    chunks = _chunks(plan, size)
    parts: list[dict[str, Any]] = []
    t0 = time.monotonic()
    limit = None
    desc = "lmer_many" if request.kind == "lmer" else "glmer_many"
    with progress(len(plan), desc, unit="model", enabled=progress_bar) as bar:

        def done(chunk: Any, res: dict[str, Any]) -> None:
            if "error" in res:
                raise FitError(f"R could not run the models: {res['error'][0]}",
                               r_message=str(res["error"][0]))
            parts.append(res)
            n_failed = len((res.get("errors") or {}).get("id", []))
            bar.update(len(chunk[0]), failed=n_failed)

        def died(chunk: Any, exc: WorkerDied) -> None:
            ids = [int(i) for i in chunk[0]]
            parts.append({"errors": {"id": ids, "type": ["WorkerDied"] * len(ids),
                                     "message": [f"{exc} while fitting this chunk of models"]
                                     * len(ids)}})
            bar.update(len(ids), failed=len(ids))

        used, why = parallel, f"backend {name!r}: every chunk on {name}"
        estimate: dict[str, float] = {}
        try:
            if name == "serial" or (backend is None and name == "processes"):
                # R's lock may be another thread's for a while: the wait counts
                with time_limit(timeout) as limit:
                    used, why, estimate = _run_here_first(job, chunks, done, died, n_workers,
                                                          bar.refresh)
            elif name == "processes":
                used = min(n_workers, len(chunks))
                run_tasks(_work, chunks, done, setup=_setup, payload=job, workers=n_workers,
                          timeout=timeout, died=died, idle=bar.refresh)
            else:
                client = local_cluster(n_workers) if name == "dask" else backend
                try:
                    run_on_dask(_work, chunks, done, setup=_setup, payload=job, client=client,
                                timeout=timeout, died=died, idle=bar.refresh)
                finally:
                    if name == "dask":
                        client.close()
                        client.cluster.close()
        except (TimeoutError, LmerTimeoutError):
            waits = "" if limit is None else limit.waits()
            raise LmerTimeoutError(
                f"the models were stopped after the time limit of {timeout:g} s ({len(parts)} "
                f"of {len(chunks)} chunks done){waits}; every worker was stopped.") from None
    meta = {"backend": name, "workers": parallel, "workers_used": used,
            "workers_reason": why, "workers_estimate": estimate, "chunk_size": size,
            "seconds": time.monotonic() - t0, "p_adjust": method, "kind": request.kind,
            "ddf": request.ddf}
    return assemble(plan.keys, parts, method, meta)


def _run_here_first(job: _Job, chunks: list[Any], done: Any, died: Any, n_workers: int,
                    idle: Any) -> tuple[int, str, dict[str, float]]:
    """The first chunk here, timed; the rest on the workers that pay off, or
    here. Returns the workers used (0: none), why, and the estimates."""
    wall, cpu = time.monotonic(), time.process_time()
    state = _setup(job)
    if n_workers < 2:
        for chunk in chunks:
            done(chunk, _work(state, chunk))
        return 0, "workers=1 (or left out): fitted here", {}
    load = time.monotonic() - wall
    # a quarter of the first chunk (4 models at least) is enough to time a model
    n0 = len(chunks[0][0])
    cut = min(n0, max(4, math.ceil(n0 / 4)))
    if cut < n0:
        chunks = [*_split(chunks[0], cut), *chunks[1:]]
    if len(chunks) < 2:
        done(chunks[0], _work(state, chunks[0]))
        return 0, "here: a single chunk", {}
    fit = time.monotonic()
    done(chunks[0], _work(state, chunks[0]))
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    left = sum(len(c[0]) for c in chunks[1:])
    per_model = (time.monotonic() - fit) / len(chunks[0][0])
    plan = plan_workers(left, per_model, min(n_workers, len(chunks) - 1),
                        tasks=len(chunks) - 1, cpu_share=cpu / max(wall, 1e-9),
                        load_seconds=load)
    if plan.workers:
        run_tasks(_work, chunks[1:], done, setup=_setup, payload=job, workers=plan.workers,
                  timeout=time_left(), died=died, idle=idle)
    else:
        for chunk in chunks[1:]:
            done(chunk, _work(state, chunk))
    return plan.workers, plan.reason, plan.estimate


def _split(chunk: tuple[np.ndarray, list[str], Any], k: int) -> list[Any]:
    """A chunk as two: its first ``k`` models and the others."""
    ids, formulas, rows = chunk
    if rows is None:
        return [(ids[:k], formulas[:k], None), (ids[k:], formulas[k:], None)]
    flat, lengths = rows
    at = int(lengths[:k].sum())
    return [(ids[:k], formulas[:k], (flat[:at], lengths[:k])),
            (ids[k:], formulas[k:], (flat[at:], lengths[k:]))]


def _client_workers(client: Any) -> int:
    try:
        return len(client.scheduler_info()["workers"])
    except Exception:  # a client that cannot say: chunks as for one worker
        return 1
