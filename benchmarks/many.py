"""Many models (issue 11): lmer_many / glmer_many against R's natural loop and
the peers' loops, each route in a fresh process.

    python benchmarks/many.py [--quick] [--only sleep,sites,binary] [--routes ...]
    python benchmarks/many.py --redo report        # rewrite the section from the JSON

Workloads (data seeded, written once under benchmarks/data/ so that R and
Python read the same numbers):

  sleep   2,000 responses on sleepstudy's design (Reaction + N(0, 25^2) noise),
          ``~ Days + (Days | Subject)``, Satterthwaite p-values
  sites   500 sites x 200 rows, ``y ~ x + (1 | g)`` per site (``by="site"``)
  binary  500 binary responses on 40 groups x 10 rows, ``~ x + (1 | g)``, binomial

Routes: R's loop (``many_r.R``, Rscript), lmermagic serial, 2 worker processes,
Dask ``backend="dask", workers=2`` (a LocalCluster started inside the call),
a pre-started ``distributed.Client`` (its start-up timed apart; a first, cold
batch and a second, warm one), the pymer4 0.8.2 and statsmodels loops
(benchmarks/.venv-peers). A probe measures what docs/scale.md needs: bytes
shipped, worker start-up, worker memory, and the per-task overhead (chunk size).

Timed: the call, data already in memory; not timed: imports, reading the CSV,
one warm-up fit in the process (not for the worker routes, whose workers start
inside the call: that is their cost). Nothing here asserts a time. The report
goes into benchmarks/RESULTS.md (quick: RESULTS-quick.md) as the section
"Many models (issue #11)", replacing that section if present.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import pickle
import re
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(HERE, "data")
LOGS = os.path.join(DATA, "logs")

FULL = {"sleep": 2000, "sites": 500, "binary": 500}
QUICK = {"sleep": 200, "sites": 100, "binary": 60}
# the peers are slow: a documented sample of the first models, extrapolated
PEER_SAMPLE = {"pymer4": {"sleep": 200, "sites": 150, "binary": 80},
               "statsmodels": {"sleep": 400, "sites": 500, "binary": 0}}
PEER_SAMPLE_QUICK = {"pymer4": {"sleep": 40, "sites": 30, "binary": 20},
                     "statsmodels": {"sleep": 100, "sites": 100, "binary": 0}}

WORKLOADS = {
    "sleep": {"title": "2,000 responses on the sleepstudy design, Satterthwaite df",
              "csv": "many_sleep.csv", "model": "`y_j ~ Days + (Days | Subject)`, 180 rows"},
    "sites": {"title": "500 subsets (sites) of a 100,000-row frame",
              "csv": "many_sites.csv", "model": "`y ~ x + (1 | g)` per site, 200 rows, 10 groups"},
    "binary": {"title": "500 binary responses, glmer binomial",
               "csv": "many_binary.csv",
               "model": "`y_j ~ x + (1 | g)`, binomial, 400 rows, 40 groups"},
}
ROUTES = ["R", "serial", "processes", "dask", "client", "pymer4", "statsmodels"]
ROUTE_LABEL = {
    "R": "R loop: lmerTest::lmer + summary() (glmer + summary())",
    "serial": 'lmermagic, backend="serial"',
    "processes": "lmermagic, workers=2 (processes)",
    "dask": 'lmermagic, backend="dask", workers=2 (LocalCluster started in the call)',
    "client": "lmermagic, pre-started Client(LocalCluster(2)), first batch",
    "client-warm": "lmermagic, same Client, second batch",
    "pymer4": "pymer4 0.8.2 Lmer loop",
    "statsmodels": "statsmodels MixedLM loop",
}
GOALS = {"serial": 0.35, "processes": 0.20}


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------- data
def write_data(n: dict) -> None:
    """The three data sets, seeded; written once (full size; quick reads a prefix)."""
    import numpy as np
    import pandas as pd

    os.makedirs(DATA, exist_ok=True)
    path = os.path.join(DATA, WORKLOADS["sleep"]["csv"])
    if not os.path.exists(path):
        sleep = pd.read_csv(os.path.join(DATA, "sleepstudy.csv"))
        rng = np.random.default_rng(20261111)
        noise = rng.normal(0.0, 25.0, size=(len(sleep), FULL["sleep"]))
        ys = pd.DataFrame(sleep["Reaction"].to_numpy()[:, None] + noise,
                          columns=[f"y{j + 1}" for j in range(FULL["sleep"])])
        pd.concat([sleep, ys], axis=1).to_csv(path, index=False, float_format="%.17g")
    path = os.path.join(DATA, WORKLOADS["sites"]["csv"])
    if not os.path.exists(path):
        rng = np.random.default_rng(20261112)
        n_sites, n_g, per_g = FULL["sites"], 10, 20
        rows = n_sites * n_g * per_g
        site = np.repeat(np.arange(n_sites), n_g * per_g)
        g = np.tile(np.repeat(np.arange(n_g), per_g), n_sites)
        x = rng.normal(size=rows)
        b0 = rng.normal(0, 1, n_sites)[site]
        b1 = 0.5 + rng.normal(0, 0.2, n_sites)[site]
        u = rng.normal(0, 0.7, (n_sites, n_g))[site, g]
        y = b0 + b1 * x + u + rng.normal(size=rows)
        pd.DataFrame({"site": [f"s{s:03d}" for s in site], "g": [f"g{k:02d}" for k in g],
                      "x": x, "y": y}).to_csv(path, index=False, float_format="%.17g")
    path = os.path.join(DATA, WORKLOADS["binary"]["csv"])
    if not os.path.exists(path):
        rng = np.random.default_rng(20261113)
        n_g, per_g, n_y = 40, 10, FULL["binary"]
        g = np.repeat(np.arange(n_g), per_g)
        x = rng.normal(size=n_g * per_g)
        u = rng.normal(0, 1.0, (n_g, n_y))[g, :]
        eta = -0.5 + 0.8 * x[:, None] + u
        y = (rng.random(eta.shape) < 1 / (1 + np.exp(-eta))).astype(int)
        frame = pd.DataFrame({"x": x, "g": [f"g{k:02d}" for k in g]})
        ys = pd.DataFrame(y, columns=[f"y{j + 1}" for j in range(n_y)])
        pd.concat([frame, ys], axis=1).to_csv(path, index=False, float_format="%.17g")


def read(workload: str, n: int):
    import pandas as pd

    d = pd.read_csv(os.path.join(DATA, WORKLOADS[workload]["csv"]))
    if workload == "sleep":
        d = d[["Days", "Subject", *[f"y{j + 1}" for j in range(n)]]]
        d["Subject"] = d["Subject"].astype(str)
    elif workload == "binary":
        d = d[["x", "g", *[f"y{j + 1}" for j in range(n)]]]
    else:
        keep = sorted(d["site"].unique())[:n]
        d = d[d["site"].isin(keep)].reset_index(drop=True)
    return d


# ---------------------------------------------------------------- children
class ChildRSS:
    """Peak and first-seen RSS of this process's child processes (the workers),
    sampled every 0.2 s from /proc while the batch runs."""

    def __init__(self) -> None:
        self.seen: dict[int, list[float]] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            for pid in _descendants(me):
                rss = _rss_mb(pid)
                if rss:
                    first_max = self.seen.setdefault(pid, [rss, rss])
                    first_max[1] = max(first_max[1], rss)
            self._stop.wait(0.2)

    def __enter__(self) -> ChildRSS:
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()


def _descendants(pid: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(name))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def _rss_mb(pid: int | None = None) -> float:
    try:
        with open(f"/proc/{pid or 'self'}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _lmermagic_call(workload: str, d, **kw):
    import lmermagic

    if workload == "sleep":
        ys = [c for c in d.columns if c.startswith("y")]
        return lmermagic.lmer_many("~ Days + (Days | Subject)", d, responses=ys,
                                   progress=False, **kw)
    if workload == "sites":
        return lmermagic.lmer_many("y ~ x + (1 | g)", d, by="site", progress=False, **kw)
    ys = [c for c in d.columns if c.startswith("y")]
    return lmermagic.glmer_many("~ x + (1 | g)", d, family="binomial", responses=ys,
                                progress=False, **kw)


def _warm_serial(workload: str, d) -> None:
    """One fit in this process's R, as R's loop warms up: R started, lme4 loaded."""
    import lmermagic

    if workload == "sites":
        first = d[d["site"] == d["site"].iloc[0]]
        lmermagic.lmer("y ~ x + (1 | g)", first)
    elif workload == "sleep":
        lmermagic.lmer("y1 ~ Days + (Days | Subject)", d)
    else:
        lmermagic.glmer("y1 ~ x + (1 | g)", d, family="binomial")


def child_lmermagic(route: str, workload: str, n: int) -> dict:
    d = read(workload, n)
    out: dict = {"n": n}
    if route == "serial":
        _warm_serial(workload, d)
        out["load_start"] = loadavg()
        t = time.perf_counter()
        mm = _lmermagic_call(workload, d, backend="serial")
        out["seconds"] = time.perf_counter() - t
    elif route in ("processes", "dask"):
        kw = {"workers": 2} if route == "processes" else {"backend": "dask", "workers": 2}
        out["load_start"] = loadavg()
        with ChildRSS() as rss:
            t = time.perf_counter()
            mm = _lmermagic_call(workload, d, **kw)
            out["seconds"] = time.perf_counter() - t
        out["worker_rss_mb"] = sorted((round(v[1], 1) for v in rss.seen.values()
                                       if v[1] > 150), reverse=True)
    else:  # client: a pre-started cluster, then two batches
        import distributed

        out["load_start"] = loadavg()
        t = time.perf_counter()
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
        client = distributed.Client(cluster)
        client.wait_for_workers(2)
        out["cluster_start_s"] = time.perf_counter() - t
        out["worker_rss_start_mb"] = sorted(round(v, 1) for v in client.run(_rss_mb).values())
        t = time.perf_counter()
        mm = _lmermagic_call(workload, d, backend=client)
        out["seconds"] = time.perf_counter() - t
        out["worker_rss_after_mb"] = sorted(round(v, 1) for v in client.run(_rss_mb).values())
        t = time.perf_counter()
        mm2 = _lmermagic_call(workload, d, backend=client)
        out["warm_seconds"] = time.perf_counter() - t
        out["worker_rss_after2_mb"] = sorted(round(v, 1) for v in client.run(_rss_mb).values())
        out["warm_meta"] = {k: v for k, v in mm2.meta.items() if k != "seconds"}
        client.close()
        cluster.close()
    out["load_end"] = loadavg()
    out["meta"] = {k: (v if isinstance(v, (int, float, str)) else str(v))
                   for k, v in mm.meta.items()}
    out["n_failed"] = int(mm.n_failed)
    out["estimate"] = mm.coefs["estimate"].tolist()
    return out


def child_pymer4(workload: str, n: int) -> dict:
    from pymer4.models import Lmer

    d = read(workload, n)
    ys = [c for c in d.columns if c.startswith("y") and c[1:].isdigit()]

    def one(frame, formula, family="gaussian"):
        m = Lmer(formula, data=frame, family=family)
        m.fit(summarize=False, verbose=False)
        return list(m.coefs["Estimate"])

    if workload == "sleep":
        base = d[["Days", "Subject"]].copy()
        fits = [(lambda y=y: (base.assign(y=d[y]), "y ~ Days + (Days | Subject)"))
                for y in ys]
    elif workload == "sites":
        groups = [g for _, g in d.groupby("site", sort=True)]
        fits = [(lambda s=s: (s, "y ~ x + (1 | g)")) for s in groups]
    else:
        base = d[["x", "g"]].copy()
        fits = [(lambda y=y: (base.assign(y=d[y]), "y ~ x + (1 | g)")) for y in ys]
    family = "binomial" if workload == "binary" else "gaussian"
    frame, formula = fits[0]()
    one(frame, formula, family)  # warm-up
    out = {"n": len(fits), "load_start": loadavg()}
    est: list[float] = []
    t = time.perf_counter()
    for make in fits:
        frame, formula = make()
        est.extend(one(frame, formula, family))
    out["seconds"] = time.perf_counter() - t
    out["load_end"] = loadavg()
    out["estimate"] = est
    return out


def child_statsmodels(workload: str, n: int) -> dict:
    import warnings

    import statsmodels.formula.api as smf

    if workload == "binary":
        return {"error": "cannot fit the same model: statsmodels has no maximum-likelihood "
                         "binomial GLMM (only the variational Bayes BinomialBayesMixedGLM, "
                         "a different estimator)"}
    d = read(workload, n)

    def one(frame, fixed, groups, re_formula):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = smf.mixedlm(fixed, frame, groups=frame[groups],
                            re_formula=re_formula).fit(reml=True)
            _ = r.pvalues  # the z tests: statsmodels has no Satterthwaite df
        return list(r.fe_params)

    if workload == "sleep":
        ys = [c for c in d.columns if c.startswith("y")]
        base = d[["Days", "Subject"]].copy()
        fits = [(lambda y=y: base.assign(y=d[y])) for y in ys]
        args = ("y ~ Days", "Subject", "~Days")
    else:
        groups = [g for _, g in d.groupby("site", sort=True)]
        fits = [(lambda s=s: s) for s in groups]
        args = ("y ~ x", "g", None)
    one(fits[0](), *args)
    out = {"n": len(fits), "load_start": loadavg()}
    est: list[float] = []
    t = time.perf_counter()
    for make in fits:
        est.extend(one(make(), *args))
    out["seconds"] = time.perf_counter() - t
    out["load_end"] = loadavg()
    out["estimate"] = est
    return out


# ---------------------------------------------------------------- probe
def _probe_rss(state, task):  # a worker's own RSS (a Worker task)
    return _rss_mb()


def _plan(workload: str, d):
    """lmer_many's plan and job, built as lmermagic.api does (to weigh them)."""
    from lmermagic import convert
    from lmermagic.request import FitRequest
    from lmermagic.toolbox import many

    kind = "glmer" if workload == "binary" else "lmer"
    opts = {"family": "binomial"} if kind == "glmer" else {}
    ys = [c for c in d.columns if c.startswith("y") and c[1:].isdigit()]
    if workload == "sleep":
        formula, kw = "~ Days + (Days | Subject)", {"responses": ys, "by": None}
    elif workload == "sites":
        formula, kw = "y ~ x + (1 | g)", {"responses": None, "by": "site"}
    else:
        formula, kw = "~ x + (1 | g)", {"responses": ys, "by": None}
    request = FitRequest.build(formula, kind=kind, data_name="data", **opts)
    df = convert.as_pandas(d, "data")
    plan = many.plan_models(formula, df, request, **kw)
    job = many._Job(plan.columns, plan.nrow, list(request.factors), request.r_options(),
                    request.extra_functions)
    return plan, job


def child_probe(n_models: dict) -> dict:
    """Bytes shipped, worker start-up and memory, per-task overhead."""
    from lmermagic.toolbox import many
    from lmermagic.workers import Worker

    out: dict = {"load_start": loadavg(), "payload": {}, "worker": {}, "chunks": {}}
    for workload in ("sleep", "sites", "binary"):
        n = n_models[workload]
        d = read(workload, n)
        plan, job = _plan(workload, d)
        size = max(1, min(200, -(-len(plan) // 16)))  # lmer_many's default for 2 workers
        chunks = many._chunks(plan, size)
        w = Worker(many._setup, job)
        t = time.perf_counter()
        rss0 = w.call(_probe_rss, None)
        start_s = time.perf_counter() - t
        results, times = [], []
        for c in chunks:
            t = time.perf_counter()
            results.append(w.call(many._work, c))
            times.append(time.perf_counter() - t)
        rss1 = w.call(_probe_rss, None)
        w.stop()
        out["payload"][workload] = {
            "models": len(plan), "rows": plan.nrow, "columns": len(plan.columns),
            "payload_bytes": len(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)),
            "chunk_size": size, "chunks": len(chunks),
            "task_bytes_mean": sum(len(pickle.dumps(c, protocol=pickle.HIGHEST_PROTOCOL))
                                   for c in chunks) / len(chunks),
            "result_bytes_per_model": sum(len(pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL))
                                          for r in results) / len(plan),
        }
        out["worker"][workload] = {"start_and_setup_s": start_s, "rss_after_setup_mb": rss0,
                                   "rss_after_batch_mb": rss1,
                                   "batch_s": sum(times), "per_model_ms": 1000 * sum(times)
                                   / len(plan),
                                   # the first task loads lme4 (and Matrix) in the worker's R
                                   "first_task_s": times[0],
                                   "later_task_s": sorted(times[1:])[len(times[1:]) // 2]
                                   if len(times) > 1 else None}
        print(workload, out["payload"][workload], out["worker"][workload], flush=True)
    # per-task overhead: the same models in chunks of 1 and of many, one process
    # (R call + conversion per task), then through a Worker's pipe (+ pickling)
    d = read("sleep", n_models["sleep"])
    plan, job = _plan("sleep", d)
    m = min(len(plan), 200)
    sub = many.Plan(plan.keys.iloc[:m], plan.formulas[:m], None, plan.request, plan.columns,
                    plan.nrow)
    state = many._setup(job)
    for c in many._chunks(sub, 50):  # warm: R's design cache and code paths
        many._work(state, c)
    for size in (1, 10, 50, 200):
        t = time.perf_counter()
        for c in many._chunks(sub, size):
            many._work(state, c)
        out["chunks"][f"serial_{size}"] = {"models": m, "tasks": -(-m // size),
                                          "seconds": time.perf_counter() - t}
    w = Worker(many._setup, job)
    w.call(_probe_rss, None)
    for c in many._chunks(sub, 50):
        w.call(many._work, c)
    for size in (1, 10, 50, 200):
        t = time.perf_counter()
        for c in many._chunks(sub, size):
            w.call(many._work, c)
        out["chunks"][f"worker_{size}"] = {"models": m, "tasks": -(-m // size),
                                          "seconds": time.perf_counter() - t}
    w.stop()
    print(out["chunks"], flush=True)
    # Dask: a task through the scheduler, chunks of 1 vs 50, pre-started client
    try:
        import distributed

        import lmermagic

        cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1,
                                           processes=True, dashboard_address=None)
        client = distributed.Client(cluster)
        dsub = d[["Days", "Subject", *[f"y{j + 1}" for j in range(m)]]]
        ys = [f"y{j + 1}" for j in range(m)]
        lmermagic.lmer_many("~ Days + (Days | Subject)", dsub, responses=ys[:50],
                            backend=client, progress=False)
        for size in (1, 50):
            t = time.perf_counter()
            lmermagic.lmer_many("~ Days + (Days | Subject)", dsub, responses=ys,
                                backend=client, progress=False, chunk_size=size)
            out["chunks"][f"dask1_{size}"] = {"models": m, "tasks": -(-m // size),
                                             "seconds": time.perf_counter() - t}
        client.close()
        cluster.close()
    except Exception as exc:
        out["chunks"]["dask_error"] = repr(exc)
    out["load_end"] = loadavg()
    return out


def child_main(argv: list[str]) -> int:
    route, workload, n, path = argv[0], argv[1], int(argv[2]), argv[3]
    gc.collect()
    try:
        if route == "probe":
            res = child_probe(json.loads(workload))
        elif route == "pymer4":
            res = child_pymer4(workload, n)
        elif route == "statsmodels":
            res = child_statsmodels(workload, n)
        else:
            res = child_lmermagic(route, workload, n)
    except Exception as exc:
        traceback.print_exc()
        res = {"error": f"{type(exc).__name__}: {exc}"}
    with open(path, "w") as fh:
        json.dump(res, fh)
    return 0


# ---------------------------------------------------------------- driver
def run_child(cmd: list[str], name: str, timeout: float) -> dict:
    out = os.path.join(LOGS, f"many-{name}.json")
    if os.path.exists(out):
        os.remove(out)
    log = os.path.join(LOGS, f"many-{name}.log")
    t = time.perf_counter()
    with open(log, "w") as fh:
        try:
            rc = subprocess.run([*cmd, out], stdout=fh, stderr=subprocess.STDOUT,
                                timeout=timeout, cwd=ROOT).returncode
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - t
    if not os.path.exists(out):
        with open(log) as fh:
            tail = " ".join(fh.read().strip().splitlines()[-3:])
        return {"error": f"exit {rc}: {tail[-300:]}"}
    with open(out) as fh:
        res = json.load(fh)
    res["process_s"] = wall
    return res


def measure(args) -> dict:
    counts = QUICK if args.quick else FULL
    samples = PEER_SAMPLE_QUICK if args.quick else PEER_SAMPLE
    me = os.path.abspath(__file__)
    res: dict = {"counts": counts, "results": {}, "started": loadavg(),
                 "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    for workload in args.only:
        res["results"][workload] = {}
        csv = os.path.join(DATA, WORKLOADS[workload]["csv"])
        for route in args.routes:
            n = counts[workload]
            if route == "R":
                cmd = ["Rscript", os.path.join(HERE, "many_r.R"), workload, csv, str(n)]
            elif route in ("pymer4", "statsmodels"):
                n = min(n, samples[route][workload]) or n
                if not os.path.exists(args.peers_python):
                    res["results"][workload][route] = {"error": "benchmarks/.venv-peers missing"}
                    continue
                cmd = [args.peers_python, me, "--child", route, workload, str(n)]
            else:
                cmd = [args.project_python, me, "--child", route, workload, str(n)]
            print(f"many: {workload} / {route} ({n} models, load {loadavg()}) ...", flush=True)
            r = run_child(cmd, f"{workload}-{route}", args.timeout)
            r["full_n"] = counts[workload]
            res["results"][workload][route] = r
            if "seconds" in r:
                print(f"   {r['seconds']:.1f} s, {1000 * r['seconds'] / r['n']:.1f} ms/model",
                      flush=True)
            else:
                print(f"   {r.get('error')}", flush=True)
    if not args.no_probe:
        print(f"many: probe (load {loadavg()}) ...", flush=True)
        probe_n = {"sleep": min(400, counts["sleep"]), "sites": counts["sites"],
                   "binary": counts["binary"]}
        res["probe"] = run_child([args.project_python, me, "--child", "probe",
                                  json.dumps(probe_n), "0"], "probe", args.timeout)
    res["ended"] = loadavg()
    return res


# ---------------------------------------------------------------- report
def _agree(est, ref) -> str:
    if not est or not ref:
        return "–"
    k = min(len(est), len(ref))
    worst = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(est[:k], ref[:k]))
    return f"{worst:.1e}"


def _fmt_load(r: dict) -> str:
    a, b = r.get("load_start"), r.get("load_end")
    return f"{a[0]:.2f} → {b[0]:.2f}" if a and b else "–"


def section(res: dict, quick: bool) -> str:
    lines = ["## Many models (issue #11)", "",
             f"Written by `benchmarks/many.py`{' --quick' if quick else ''} on {res['date']}"
             f" (load average at start {res['started']}, at end {res['ended']}"
             + "".join(f"; measured again on {r['date']}: "
                       + ", ".join(f"{w} ({', '.join(rs)})" for w, rs in r["what"].items())
                       + f", load {r['started']} → {r['ended']}" for r in res.get("rounds", []))
             + "; 2 cores shared "
             "with other work, so ratios move by 10-30 % from run to run). Each route in a "
             "fresh process; timed: the call with the data in memory, through to the stacked "
             "coefficient table. R's loop, the serial route and the peers' loops warm up with "
             "one fit first; the worker routes start their workers (a Python process and an R "
             "each) inside the timed call, so their totals include it. *Load* is the 1-minute "
             "load average at the start → end of the route. *Agrees*: the largest relative "
             "difference of any fixed-effect estimate from R's loop.", ""]
    for workload, routes in res["results"].items():
        spec = WORKLOADS[workload]
        lines += [f"### {spec['title']}", "", spec["model"], "",
                  ("| route | models | total s | ms/model | × R loop | goal | met? | load | "
                  "agrees | note |"),
                  "|---|---|---|---|---|---|---|---|---|---|"]
        r_loop = routes.get("R", {})
        ref = r_loop.get("estimate")
        r_ms = 1000 * r_loop["seconds"] / r_loop["n"] if "seconds" in r_loop else None
        totals: dict[str, float] = {}
        rows = []
        for route in ROUTES:
            r = routes.get(route)
            if r is None:
                continue
            if "seconds" not in r:
                rows.append(f"| {ROUTE_LABEL[route]} | – | – | – | – | – | – | – | – | "
                            f"{r.get('error', '')[:160]} |")
                continue
            variants = [(route, r["seconds"], r)]
            if route == "client":
                variants.append(("client-warm", r["warm_seconds"], r))
            for name, secs, rr in variants:
                ms = 1000 * secs / rr["n"]
                full = rr["full_n"]
                total = secs if rr["n"] == full else ms * full / 1000
                totals[name] = total
                ratio = ms / r_ms if r_ms else None
                goal, met = "", ""
                if name in GOALS and ratio is not None:
                    goal, met = f"≤ {GOALS[name]:.2f}×", "yes" if ratio <= GOALS[name] else "**no**"
                note = []
                if rr["n"] != full:
                    note.append(f"sample of the first {rr['n']} models, total extrapolated")
                if name == "client":
                    note.append(f"cluster start {rr['cluster_start_s']:.1f} s not included; "
                                "workers start R on their first task")
                if name == "client-warm":
                    note.append("R already running in the workers; data shipped again")
                if rr.get("worker_rss_mb"):
                    note.append("peak worker RSS " + ", ".join(f"{v:.0f}" for v in
                                                               rr["worker_rss_mb"][:4]) + " MB")
                if name == "client" and rr.get("worker_rss_after_mb"):
                    note.append("worker RSS " + ", ".join(f"{v:.0f}" for v in
                                                          rr["worker_rss_start_mb"])
                                + " MB before, " + ", ".join(
                                    f"{v:.0f}" for v in rr["worker_rss_after_mb"]) + " MB after")
                if route == "statsmodels":
                    note.append("z tests (no Satterthwaite df)")
                if rr.get("n_failed"):
                    note.append(f"{rr['n_failed']} failed")
                if rr.get("meta", {}).get("chunk_size"):
                    note.append(f"chunk {rr['meta']['chunk_size']}")
                agrees = _agree(rr.get("estimate"), ref) if name != "R" else "–"
                rows.append(f"| {ROUTE_LABEL[name]} | {rr['n']:,} | {total:.1f} | {ms:.1f} | "
                            f"{'–' if ratio is None else f'{ratio:.2f}×'} | {goal} | {met} | "
                            f"{_fmt_load(rr)} | {agrees} | {'; '.join(note)} |")
        for name in ("dask", "client", "client-warm"):
            if name in totals and "processes" in totals:
                rel = totals[name] / totals["processes"]
                rows.append(f"| → {ROUTE_LABEL[name]} vs processes | | | | {rel:.2f}× of "
                            f"processes | ≤ 1.10× | {'yes' if rel <= 1.10 else '**no**'} | | | |")
        lines += [*rows, ""]
    probe = res.get("probe") or {}
    if probe and "error" not in probe:
        lines += ["### What docs/scale.md uses (probe)", "",
                  (f"Load {_fmt_load(probe)}. One worker process (`lmermagic.workers.Worker`, "
                  "the same one `workers=` uses) set up with lmer_many's payload, then fed "
                  "lmer_many's chunks one by one."), "",
                  ("| workload | models | rows × used columns | payload pickled | task pickled | "
                  "result per model | worker start + setup | first task (median task) "
                  "| RSS after setup | RSS after batch | ms/model in the worker |"),
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for w, p in probe["payload"].items():
            k = probe["worker"][w]
            lines.append(f"| {w} | {p['models']:,} | {p['rows']:,} × {p['columns']} | "
                         f"{p['payload_bytes'] / 1e3:,.1f} kB | {p['task_bytes_mean']:,.0f} B "
                         f"(chunk {p['chunk_size']}) | {p['result_bytes_per_model']:,.0f} B | "
                         f"{k['start_and_setup_s']:.2f} s | "
                         f"{k.get('first_task_s', float('nan')):.2f} s "
                         f"({k.get('later_task_s') or float('nan'):.2f} s) | "
                         f"{k['rss_after_setup_mb']:.0f} MB | "
                         f"{k['rss_after_batch_mb']:.0f} MB | {k['per_model_ms']:.1f} |")
        ch = probe["chunks"]
        lines += ["", ("Chunk size (sleep design, the same models; per-task overhead = extra "
                  "time per extra task against chunks of 200):"), "",
                  "| where | chunk size | tasks | total s | ms/model | overhead per task |",
                  "|---|---|---|---|---|---|"]
        for where, label in (("serial", "in-process R"), ("worker", "one Worker (pipe)"),
                             ("dask1", "Dask, 1 worker, pre-started")):
            keys = sorted((k for k in ch if k.startswith(where + "_")),
                          key=lambda k: int(k.split("_")[1]))
            if not keys:
                continue
            big = ch[keys[-1]]
            for k in keys:
                c = ch[k]
                over = ((c["seconds"] - big["seconds"]) / (c["tasks"] - big["tasks"]) * 1000
                        if c["tasks"] != big["tasks"] else None)
                lines.append(f"| {label} | {k.split('_')[1]} | {c['tasks']} | "
                             f"{c['seconds']:.2f} | {1000 * c['seconds'] / c['models']:.1f} | "
                             f"{'–' if over is None else f'{over:.1f} ms'} |")
        if "dask_error" in ch:
            lines.append(f"\nDask probe failed: {ch['dask_error']}")
        lines.append("")
    elif probe:
        lines += [f"Probe failed: {probe['error']}", ""]
    return "\n".join(lines) + "\n"


def splice(path: str, text: str) -> None:
    """Put ``text`` in place of the report's many-models section (or at its end,
    before "## Machine" when there is one)."""
    old = open(path).read() if os.path.exists(path) else "# lmermagic benchmarks\n\n"
    pat = re.compile(r"^## Many models \(issue #11\)\n.*?(?=^## |\Z)", re.S | re.M)
    if pat.search(old):
        new = pat.sub(lambda _: text + "\n", old, count=1)
    elif "\n## Machine" in old:
        new = old.replace("\n## Machine", "\n" + text + "\n## Machine", 1)
    else:
        new = old.rstrip("\n") + "\n\n" + text
    with open(path, "w") as fh:
        fh.write(new)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        return child_main(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="sleep,sites,binary")
    ap.add_argument("--routes", default=",".join(ROUTES))
    ap.add_argument("--no-probe", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--json")
    ap.add_argument("--redo", choices=["report"])
    ap.add_argument("--merge", action="store_true",
                    help="keep the earlier run's JSON and replace only the routes (and the "
                         "probe, unless --no-probe) measured now: a second round at a quieter "
                         "moment")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--project-python", default=os.path.join(ROOT, ".venv", "bin", "python"))
    ap.add_argument("--peers-python", default=os.path.join(HERE, ".venv-peers", "bin", "python"))
    args = ap.parse_args(argv)
    suffix = "-quick" if args.quick else ""
    args.out = args.out or os.path.join(HERE, f"RESULTS{suffix}.md")
    args.json = args.json or os.path.join(DATA, f"many{suffix}.json")
    args.only = args.only.split(",")
    args.routes = args.routes.split(",")
    os.makedirs(LOGS, exist_ok=True)
    if args.redo:
        with open(args.json) as fh:
            res = json.load(fh)
    else:
        write_data(FULL)
        res = measure(args)
        if args.merge and os.path.exists(args.json):
            with open(args.json) as fh:
                old = json.load(fh)
            for workload, routes in res["results"].items():
                old["results"].setdefault(workload, {}).update(routes)
            if "probe" in res:
                old["probe"] = res["probe"]
            old.setdefault("rounds", []).append({"date": res["date"], "started": res["started"],
                                                 "ended": res["ended"],
                                                 "what": {w: list(r) for w, r in
                                                          res["results"].items()}})
            res = old
        with open(args.json, "w") as fh:
            json.dump(res, fh)
    splice(args.out, section(res, args.quick))
    print(f"many: wrote the section into {os.path.relpath(args.out, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
