"""Power by simulation (simr's ``powerSim``/``powerCurve``, without simr): simulate
responses from the model with the tested effect set, refit each, count the
significant tests.

All random numbers are drawn first, in the notebook's R (R's ``simulate()``),
so the refits can run here, on worker processes or on Dask and give the same
table, bit for bit. Each refit is a fresh ``lmer()``/``glmer()`` fit of the same
design with a new response: the design (lme4's ``lFormula()``) is built once per
design size and copied for each response (:mod:`.many`'s design reuse).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .. import convert
from ..cluster import local_cluster, run_on_dask
from ..errors import DataError, LmerWarning, caller_stacklevel, did_you_mean
from ..fitted import FittedModel
from ..fitting import used_columns
from ..rbridge import get_r
from ..workers import WorkerDied, progress, run_tasks
from ._common import call, check_model, positive_int, r_options, seed_arg
from ._power_result import PowerResult, power_table
from .many import _backend, _client_workers

__all__ = ["PowerResult", "power"]

TESTS = ("satterthwaite", "kenward-roger", "lrt", "z")
_ALIASES = {"kr": "kenward-roger", "kenward_roger": "kenward-roger", "lr": "lrt",
            "likelihood-ratio": "lrt", "wald": "z"}


def _test(test: Any, kind: str) -> str:
    if test is None:
        return "satterthwaite" if kind == "lmer" else "z"
    name = str(test).strip().lower()
    name = _ALIASES.get(name, name)
    if name not in TESTS:
        raise DataError(f"test={test!r}: use one of {', '.join(map(repr, TESTS))}.")
    if kind == "lmer" and name == "z":
        raise DataError("test='z' is the Wald z test of a glmer model; for lmer use "
                        "'satterthwaite', 'kenward-roger' or 'lrt'.")
    if kind != "lmer" and name in ("satterthwaite", "kenward-roger"):
        raise DataError(f"test={name!r} is a t test of a linear mixed model; for glmer use "
                        "'z' (Wald z, summary()'s p-value) or 'lrt'.")
    return name


def _number(value: Any, what: str) -> float:
    if isinstance(value, (bool, np.bool_)):
        raise DataError(f"{what}={value!r} is not a number.")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{what}={value!r} is not a number.") from None
    if not math.isfinite(out):
        raise DataError(f"{what}={value!r}: give a finite number.")
    return out


def _sizes(along: Any, n: Any, m: FittedModel) -> tuple[str | None, list[int] | None]:
    if along is None:
        if n is not None:
            raise DataError("n= gives design sizes along a grouping factor: give along= "
                            "too, e.g. along='Subject', n=[10, 20, 40].")
        return None, None
    groups = list(m.ngroups)
    if not isinstance(along, str) or along not in groups:
        raise DataError(f"along={along!r} is not a grouping factor of this model (its grouping "
                        f"factors: {', '.join(groups)})." + did_you_mean(str(along), groups))
    if m.data is None or along not in m.data.columns:
        raise DataError(f"along={along!r}: extending a design needs '{along}' as a column of "
                        "the model's data (a grouping factor built in the formula, as a:b or "
                        "a/b, cannot be extended).")
    if n is None:
        return along, [int(m.ngroups[along])]
    values = [n] if np.isscalar(n) else list(n)
    if not values:
        raise DataError("n= is empty: give the numbers of levels to try.")
    out = []
    for v in values:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer, float)) \
                or not float(v).is_integer() or v < 2:
            raise DataError(f"n: {v!r} is not a whole number of {along} levels >= 2.")
        out.append(int(v))
    if len(set(out)) != len(out):
        raise DataError(f"n={out}: a size is given twice.")
    if max(out) > 100_000:
        raise DataError(f"n: {max(out)} levels of {along} is more than 100,000.")
    return along, out


@dataclass(frozen=True)
class _Job:
    """What each process needs once: the model's data, formula and options, and
    the layout of every design size (no R object: it must pickle)."""

    columns: list[convert.RColumn]
    nrow: int
    factors: list[str]
    kept: np.ndarray
    formula: str
    extra_functions: tuple[str, ...]
    options: dict[str, Any]
    test: str
    term: str
    along: str | None
    rows: dict[str, np.ndarray]
    labels: dict[str, list[str]]
    levels: dict[str, list[str]]
    ncol: int
    colnames: list[str]


def _setup(job: _Job) -> Any:
    from ..rbridge import RFrame

    return call("lmm_tb_power_state", RFrame(job.columns, job.nrow), job.factors, job.kept,
                job.formula, get_r().allowed(job.extra_functions), job.options, job.test,
                job.term, job.along, job.rows, job.labels, job.levels, job.ncol, job.colnames,
                what="the power simulation's designs", keep=("state",))["state"]


def _work(state: Any, task: tuple[int, int, np.ndarray]) -> dict[str, Any]:
    i, first, y = task
    out: dict[str, Any] = get_r().run("lmm_tb_power_chunk", state, i, first, y)
    return out


def power(m: FittedModel, term: str, *, effect: float | None = None, along: str | None = None,
          n: Sequence[int] | int | None = None, nsim: int = 1000, alpha: float = 0.05,
          test: str | None = None, seed: int | None = None, workers: int | None = None,
          backend: Any = None, progress_bar: bool = True) -> PowerResult:
    """Power to detect the fixed effect ``term``, by simulation.

    For each design size, ``nsim`` responses are simulated from the model
    (R's ``simulate(m, nsim, newdata = <design>, newparams = list(beta =
    <fixef, term set to effect>, theta = <fitted theta>), use.u = FALSE)``:
    every random effect, of every grouping factor, drawn anew from the fitted
    variance components, and new residuals), each is refitted as a fresh
    ``lmer()``/``glmer()`` of the same formula and options, ``term`` is tested,
    and the power is the share of p-values below ``alpha``.

    Parameters
    ----------
    term : str
        A fixed-effect coefficient, as named in ``m.coefs`` (``"Days"``,
        ``"condB"``).
    effect : float, optional
        The coefficient's value to simulate with (glmer: on the link scale).
        Default: the fitted estimate, with a warning: power at the observed
        effect is post hoc power, a function of the p-value already seen (as
        simr warns).
    along, n : str, list of int, optional
        Design sizes along a grouping factor that is a column of the data
        (simr's ``extend(along=)``): ``n`` levels. Shrinking keeps the first
        ``n`` levels (the factor's level order); growing adds levels whose rows
        copy the rows of the existing levels in turn: new level ``j`` (``j >
        L``) copies the rows of level ``((j - 1) mod L) + 1`` and is named
        ``"<that level>#<copy>"``. Only the random effects differ between a
        level and its copies (they are drawn anew); other grouping factors keep
        their levels (crossed: the copies meet the same items). Without
        ``along`` the design is the model's own rows and ``n`` in the table is
        its number of observations.
    nsim : int
        Simulations per design size.
    alpha : float
        Significance level, in (0, 1).
    test : {"satterthwaite", "kenward-roger", "lrt", "z"}, optional
        ``"satterthwaite"`` (lmer's default): the t test of ``summary()`` of an
        lmerTest fit (lmermagic's own Satterthwaite df, lmerTest's numbers).
        ``"kenward-roger"``: lmerTest's Kenward-Roger t test (pbkrtest; slow).
        ``"z"`` (glmer's default): the Wald z test of ``summary()``.
        ``"lrt"``: the likelihood ratio test of the model against the model
        without the term's column of the fixed-effects matrix, both fitted by
        maximum likelihood (``REML = FALSE``) from lme4's default start, as
        ``anova(m0, m1)`` of two ML fits computes it (chi-square of twice the
        log-likelihood difference, floored at 0, on the difference in
        parameters). ``anova()`` of two REML fits refits them by ML from their
        REML estimates and can differ in the optimizer's last digits.
    seed : int, optional
        ``set.seed(seed)`` once, then one ``simulate()`` per design size, in
        the order of ``n``: with one size, ``simulate(m, nsim, seed = seed, ...)``.
        R's random state is restored afterwards. None: R's current stream.
    workers, backend :
        As in ``lmer_many``: ``workers=2`` refits in two worker processes,
        ``backend="dask"`` on a Dask LocalCluster, or a ``distributed.Client``.
        The table is the same, bit for bit, on every backend.
    progress_bar : bool
        The progress line (refits done and failed).

    Returns
    -------
    PowerResult
        ``.table`` (power per size with its Clopper-Pearson interval),
        ``.simulations`` (one row per refit), ``.plot()``, a repr in words.

    Notes
    -----
    A refit that fails, or gives no finite p-value, counts in ``n_failed``
    and is left out of the power's denominator (``power = successes / (nsim
    - n_failed)``); simr logs such errors separately as well. Singular and
    non-converged refits are kept and counted (``n_singular``,
    ``n_not_converged``).
    """
    check_model(m)
    opts = r_options(m)
    kind = m.kind
    if kind not in ("lmer", "glmer"):
        raise DataError(f"power() simulates lmer and glmer models; this is a {kind} model.")
    test = _test(test, kind)
    terms = list(m.coefs.index)
    if not isinstance(term, str) or term not in terms:
        raise DataError(f"term={term!r} is not a fixed effect of this model (its fixed "
                        f"effects: {', '.join(terms)})." + did_you_mean(str(term), terms))
    if effect is None:
        effect_value = float(m.coefs.loc[term, "estimate"])
        warnings.warn(
            f"power(): no effect= given, so the fitted estimate of {term!r} "
            f"({effect_value:.4g}) is simulated: power at the observed effect is post hoc "
            "power, which only restates the p-value already seen. Give the smallest effect "
            "of interest as effect=.", LmerWarning, stacklevel=caller_stacklevel())
    else:
        effect_value = _number(effect, "effect")
    along_name, sizes = _sizes(along, n, m)
    nsim = positive_int(nsim, "nsim")
    a = _number(alpha, "alpha")
    if not 0 < a < 1:
        raise DataError(f"alpha={alpha!r}: give a significance level between 0 and 1.")
    seed = seed_arg(seed)
    name, n_workers = _backend(backend, workers)
    if m.data is None or not isinstance(m.data, pd.DataFrame):
        raise DataError("power() needs the model's data frame (a model loaded from a file "
                        "without it cannot be simulated).")
    if test == "kenward-roger" and not m.reml:
        raise DataError("test='kenward-roger' needs a REML fit; refit with reml=True.")
    data = m.data
    cols = used_columns(m.request, list(data.columns))
    if along_name is not None and along_name not in cols:
        cols.append(along_name)
    encoded = [convert.encode_column(c, data[c]) for c in cols]

    setup = call("lmm_tb_power_setup", m.r_object, m.r_data, term, effect_value, along_name,
                 np.asarray(sizes or [0], dtype=np.int32), nsim, seed,
                 what="the simulated responses")
    kept = np.asarray(setup["kept"], dtype=np.int32)
    size_list = sizes or [len(kept)]
    rows = {str(i + 1): np.asarray(r, dtype=np.int32) for i, r in enumerate(setup["rows"])}
    labels = {str(i + 1): [str(s) for s in v] for i, v in enumerate(setup.get("labels") or [])}
    levels = {str(i + 1): [str(s) for s in v] for i, v in enumerate(setup.get("levels") or [])}
    ncol = int(np.asarray(setup["ncol"]).ravel()[0])
    colnames = [str(c) for c in (setup.get("colnames") or [])]
    ys = [np.asarray(y, dtype=np.float64) for y in setup["y"]]
    job = _Job(encoded, len(data), list(m.request.factors), kept, m.formula,
               tuple(m.request.extra_functions), opts, test, term, along_name, rows, labels,
               levels, ncol, colnames)

    parallel = n_workers if name != "client" else max(1, _client_workers(backend))
    per_size = max(1, min(100, math.ceil(nsim * len(size_list) / (8 * parallel)
                                        / len(size_list))))
    tasks = []
    for i, y in enumerate(ys):
        width = len(rows[str(i + 1)]) * ncol
        for first in range(1, nsim + 1, per_size):
            last = min(nsim, first + per_size - 1)
            tasks.append((i + 1, first, np.ascontiguousarray(y[(first - 1) * width:last * width])))
    parts: list[tuple[int, dict[str, Any]]] = []
    t0 = time.monotonic()
    with progress(nsim * len(size_list), "power", unit="fit", enabled=progress_bar) as bar:

        def done(task: Any, res: dict[str, Any]) -> None:
            parts.append((task[0], res))
            fails = np.asarray(res["failed"], dtype=bool)
            bar.update(len(fails), failed=int(fails.sum()))

        def died(task: Any, exc: WorkerDied) -> None:
            count = len(task[2]) // (len(rows[str(task[0])]) * ncol)
            sims = list(range(task[1], task[1] + count))
            parts.append((task[0], {"sim": sims, "failed": [True] * count,
                                    "message": [str(exc)] * count}))
            bar.update(count, failed=count)

        if name == "serial":
            run_tasks(_work, tasks, done, setup=_setup, payload=job)
        elif name == "processes":
            run_tasks(_work, tasks, done, setup=_setup, payload=job, workers=n_workers,
                      died=died, idle=bar.refresh)
        else:
            client = local_cluster(n_workers) if name == "dask" else backend
            try:
                run_on_dask(_work, tasks, done, setup=_setup, payload=job, client=client,
                            died=died, idle=bar.refresh)
            finally:
                if name == "dask":
                    client.close()
                    client.cluster.close()
    sims = _simulations(parts, size_list)
    table = power_table(sims, size_list, nsim, a)
    meta = {"term": term, "effect": effect_value, "test": test, "alpha": a,
            "along": along_name, "seed": seed, "backend": name, "workers": parallel,
            "seconds": time.monotonic() - t0, "kind": kind}
    return PowerResult(table=table, simulations=sims, meta=meta)


_COLUMNS = ("estimate", "std_error", "statistic", "df", "p_value")


def _simulations(parts: list[tuple[int, dict[str, Any]]], sizes: list[int]) -> pd.DataFrame:
    """The chunks' results in (size, simulation) order, whatever finished first."""
    frames = []
    for i, res in parts:
        sim = np.asarray(res["sim"], dtype=int).ravel()
        k = len(sim)

        def col(nm: str, fill: Any, dtype: Any, res: dict[str, Any] = res, k: int = k) -> Any:
            v = res.get(nm)
            return np.full(k, fill, dtype=dtype) if v is None else \
                np.asarray(v, dtype=dtype).ravel()

        f = pd.DataFrame({"n": np.full(k, sizes[i - 1]), "sim": sim})
        for c in _COLUMNS:
            f[c] = col(c, np.nan, float)
        f["singular"] = pd.array(col("singular", None, object), dtype="boolean")
        f["converged"] = pd.array(col("converged", None, object), dtype="boolean")
        f["failed"] = col("failed", True, bool)
        msg = res.get("message")
        f["message"] = [""] * k if msg is None else [str(s) for s in np.asarray(msg).ravel()]
        f["_size"] = i
        frames.append(f)
    out = pd.concat(frames, ignore_index=True).sort_values(["_size", "sim"], kind="stable")
    return out.drop(columns="_size").reset_index(drop=True)
