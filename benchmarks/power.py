"""Power by simulation (issue 20): m.power() against R's plain loop, each route
in a fresh process.

    python benchmarks/power.py [--quick] [--only sleep18,sleep36,cbpp] [--routes ...]
    python benchmarks/power.py --redo report        # rewrite the section from the JSON

Cases (lme4's data sets; nothing to write first):

  sleep18  1,000 simulations of sleepstudy, ``Reaction ~ Days + (Days | Subject)``,
           Days set to 5, 18 subjects (``along="Subject", n=[18]``), Satterthwaite t
  sleep36  the same at 36 subjects (each subject's rows copied once, new random
           effects drawn: ``n=[36]``)
  cbpp     500 simulations of ``cbind(incidence, size - incidence) ~ period + (1 | herd)``,
           binomial, period2 set to -0.5, Wald z

Routes: R's plain loop (``power_r.R``, Rscript: ``simulate()`` with the seed, then
``lmerTest::lmer`` + ``summary()``, or ``glmer`` + ``summary()``, per simulation),
``m.power`` serial, ``workers=2`` (processes), ``backend="dask", workers=2`` (a
LocalCluster of 2 worker processes, 1 thread each, started inside the call) and a
pre-started ``Client`` (its start-up not timed). A probe measures where the time
goes: R's profile of the serial route (simulate / refit / df), and the worker
start-up of each parallel route (a call with 2 simulations).

Timed: the call, the model fitted and one short power call made first in the
process (R's loop: one warm-up refit); the worker routes start their workers
inside the timed call. Nothing here asserts a time. The report goes into
benchmarks/RESULTS.md (quick: RESULTS-quick.md) as the section
"Power by simulation (issue #20)", replacing that section if present.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import re
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(HERE, "data")
LOGS = os.path.join(DATA, "logs")
SECTION = "Power by simulation (issue #20)"

FULL = {"sleep18": 1000, "sleep36": 1000, "cbpp": 500}
QUICK = {"sleep18": 100, "sleep36": 100, "cbpp": 60}
SEED = 20
CASES = {
    "sleep18": {"title": "sleepstudy, 18 subjects, Satterthwaite t test of Days",
                "model": "`Reaction ~ Days + (Days | Subject)`, Days = 5, 180 rows",
                "effect": 5.0},
    "sleep36": {"title": "sleepstudy extended to 36 subjects, Satterthwaite t test of Days",
                "model": "`Reaction ~ Days + (Days | Subject)`, Days = 5, 360 rows",
                "effect": 5.0},
    "cbpp": {"title": "cbpp, binomial GLMM, Wald z test of period2",
             "model": "`cbind(incidence, size - incidence) ~ period + (1 | herd)`, period2 = "
                      "-0.5, 56 rows, 15 herds", "effect": -0.5},
}
ROUTES = ["R", "serial", "processes", "dask", "client"]
ROUTE_LABEL = {
    "R": "R loop: simulate() + lmerTest::lmer + summary() (glmer + summary())",
    "serial": "m.power, serial",
    "processes": "m.power, workers=2 (processes)",
    "dask": 'm.power, backend="dask", workers=2 (LocalCluster started in the call)',
    "client": "m.power, pre-started Client(LocalCluster(2, 1 thread each))",
}
GOALS = {"serial": 0.35, "processes": 0.20}
BREAKDOWN = 100  # simulations R refits again step by step


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def splice(path: str, text: str) -> None:
    """Put ``text`` in place of the report's power section (or, when there is
    none, before "## Machine", or at the end)."""
    old = open(path).read() if os.path.exists(path) else "# lmermagic benchmarks\n\n"
    pat = re.compile(r"^## " + re.escape(SECTION) + r"\n.*?(?=^## |\Z)", re.S | re.M)
    if pat.search(old):
        new = pat.sub(lambda _: text + "\n", old, count=1)
    elif "\n## Machine" in old:
        new = old.replace("\n## Machine", "\n" + text + "\n## Machine", 1)
    else:
        new = old.rstrip("\n") + "\n\n" + text
    with open(path, "w") as fh:
        fh.write(new)


# ---------------------------------------------------------------- children
def _model(case: str):
    import lmermagic

    if case.startswith("sleep"):
        d = lmermagic.datasets.load("sleepstudy")
        return lmermagic.lmer("Reaction ~ Days + (Days | Subject)", d)
    d = lmermagic.datasets.load("cbpp")
    return lmermagic.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", d,
                           family="binomial")


def _power(m, case: str, nsim: int, **kw):
    if case.startswith("sleep"):
        return m.power("Days", effect=CASES[case]["effect"], along="Subject",
                       n=[int(case[5:])], nsim=nsim, seed=SEED, progress=False, **kw)
    return m.power("period2", effect=CASES[case]["effect"], nsim=nsim, seed=SEED,
                   progress=False, **kw)


def child_lmermagic(route: str, case: str, nsim: int) -> dict:
    m = _model(case)
    _power(m, case, 2)  # warm: this process's R has run the power code once
    out: dict = {"n": nsim, "load_start": loadavg()}
    client = cluster = None
    if route == "serial":
        kw: dict = {"backend": "serial"}
    elif route == "processes":
        kw = {"workers": 2}
    elif route == "dask":
        kw = {"backend": "dask", "workers": 2}
    else:
        import distributed

        t = time.perf_counter()
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
        client = distributed.Client(cluster)
        client.wait_for_workers(2)
        out["cluster_start_s"] = time.perf_counter() - t
        kw = {"backend": client}
    t, c = time.perf_counter(), time.process_time()
    res = _power(m, case, nsim, **kw)
    out["seconds"] = time.perf_counter() - t
    out["cpu_s"] = time.process_time() - c  # this process only (serial: all of the work)
    if client is not None:
        client.close()
        cluster.close()
    out["load_end"] = loadavg()
    out["meta"] = {k: (v if isinstance(v, (int, float, str)) or v is None else str(v))
                   for k, v in res.meta.items()}
    out["table"] = json.loads(res.table.to_json(orient="records", double_precision=15))
    sims = res.simulations
    # repr of each double: exact, so that the driver can compare routes bit for bit
    out["p_value"] = [repr(float(v)) for v in sims["p_value"]]
    out["estimate"] = [repr(float(v)) for v in sims["estimate"]]
    out["table_repr"] = [[repr(v) for v in row] for row in res.table.itertuples(index=False)]
    return out


def child_probe(case: str, nsim: int) -> dict:
    """The worker routes' start-up, and R's profile of the serial route."""
    m = _model(case)
    _power(m, case, 2)
    out: dict = {"case": case, "nsim": nsim, "load_start": loadavg()}
    # start-up: a call with 2 simulations on each route (first: once this process
    # has imported rpy2.robjects, Dask's nannies here fail to start their workers)
    for name, kw in (("serial", {"backend": "serial"}), ("processes", {"workers": 2}),
                     ("dask", {"backend": "dask", "workers": 2})):
        t = time.perf_counter()
        _power(m, case, 2, **kw)
        out[f"{name}_2sims_s"] = time.perf_counter() - t
    import rpy2.robjects as ro

    prof = os.path.join(LOGS, f"power-{case}.Rprof")
    ro.r(f'Rprof("{prof}", interval = 0.02)')
    t, c = time.perf_counter(), time.process_time()
    _power(m, case, nsim, backend="serial")
    out["serial_s"] = time.perf_counter() - t
    out["serial_cpu_s"] = time.process_time() - c
    ro.r("Rprof(NULL)")
    tot = ro.r(f'local({{ x <- summaryRprof("{prof}")$by.total; '
               'setNames(x$total.time, rownames(x)) })')
    totals = {str(k).strip('"'): float(v) for k, v in zip(tot.names, tot)}
    all_s = max(totals.values()) if totals else float("nan")
    parts = {"simulate": "lmm_tb_power_setup", "refit": "lmm_power_fit",
             "refit: optimizer": "optwrap", "refit: merMod object": "mkMerMod",
             "df (Satterthwaite)": "lmm_satterthwaite", "test (z)": "lmm_wald_table",
             "test (all)": "lmm_power_test"}
    out["profile"] = {k: totals.get(v, 0.0) / all_s for k, v in parts.items()}
    out["profile_sampled_s"] = all_s
    out["load_end"] = loadavg()
    return out


def child_main(argv: list[str]) -> int:
    route, case, nsim, path = argv[0], argv[1], int(argv[2]), argv[3]
    try:
        res = child_probe(case, nsim) if route == "probe" else child_lmermagic(route, case, nsim)
    except Exception as exc:
        traceback.print_exc()
        res = {"error": f"{type(exc).__name__}: {exc}"}
    with open(path, "w") as fh:
        json.dump(res, fh)
    return 0


# ---------------------------------------------------------------- driver
def run_child(cmd: list[str], name: str, timeout: float) -> dict:
    out = os.path.join(LOGS, f"power-{name}.json")
    if os.path.exists(out):
        os.remove(out)
    log = os.path.join(LOGS, f"power-{name}.log")
    # this checkout's lmermagic first, whichever virtual environment runs it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}
    t = time.perf_counter()
    with open(log, "w") as fh:
        try:
            rc = subprocess.run([*cmd, out], stdout=fh, stderr=subprocess.STDOUT,
                                timeout=timeout, cwd=ROOT, env=env).returncode
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
    me = os.path.abspath(__file__)
    res: dict = {"counts": counts, "results": {}, "started": loadavg(),
                 "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    for case in args.only:
        res["results"][case] = {}
        n = counts[case]
        for route in args.routes:
            if route == "R":
                cmd = ["Rscript", os.path.join(HERE, "power_r.R"), case, str(n), str(SEED),
                       repr(CASES[case]["effect"]), str(min(BREAKDOWN, n))]
            else:
                cmd = [args.project_python, me, "--child", route, case, str(n)]
            print(f"power: {case} / {route} ({n} simulations, load {loadavg()}) ...", flush=True)
            r = run_child(cmd, f"{case}-{route}", args.timeout)
            res["results"][case][route] = r
            if "seconds" in r:
                print(f"   {r['seconds']:.1f} s, {1000 * r['seconds'] / r['n']:.1f} ms/simulation",
                      flush=True)
            else:
                print(f"   {r.get('error')}", flush=True)
    if not args.no_probe:
        res["probe"] = {}
        for case in args.only:
            print(f"power: probe {case} (load {loadavg()}) ...", flush=True)
            res["probe"][case] = run_child(
                [args.project_python, me, "--child", "probe", case,
                 str(min(200, counts[case]))], f"probe-{case}", args.timeout)
    res["ended"] = loadavg()
    return res


# ---------------------------------------------------------------- report
def _fmt_load(r: dict) -> str:
    a, b = r.get("load_start"), r.get("load_end")
    return f"{a[0]:.2f} → {b[0]:.2f}" if a and b else "–"


def _same(a: dict, b: dict) -> bool:
    return all(a.get(k) == b.get(k) for k in ("p_value", "estimate", "table_repr"))


def _r_diff(r: dict, ref: dict) -> str:
    p, q = r.get("p_value"), ref.get("p_value")
    if not p or not q or len(p) != len(q):
        return "–"
    return f"{max(abs(float(a) - float(b)) for a, b in zip(p, q)):.1e}"


def section(res: dict, quick: bool) -> str:
    lines = [f"## {SECTION}", "",
             (f"Written by `benchmarks/power.py`{' --quick' if quick else ''} on {res['date']}"
             f" (load average at start {res['started']}, at end {res['ended']}"
             + "".join(f"; measured again on {r['date']}: "
                       + ", ".join(f"{c} ({', '.join(rs)})" for c, rs in r["what"].items())
                       + f", load {r['started']} → {r['ended']}" for r in res.get("rounds", []))
             + "; 2 cores shared "
             "with other work, so ratios move by 10-30 % from run to run). Each route in a "
             "fresh process; timed: the call through to the power table, the simulation "
             "included (R: `simulate()` and the loop). R's loop warms up with one refit, "
             "the lmermagic routes with a 2-simulation call; the worker routes start their "
             "workers (a Python process and an R each) inside the timed call, except the "
             "pre-started Client. *Load*: the 1-minute load average at the start → end of "
             "the route. *Same table*: the power table and every simulation's estimate and "
             "p-value equal to the serial route's, bit for bit. *p vs R*: the largest "
             f"absolute difference of a p-value from R's loop (the same seed, {SEED})."), ""]
    for case, routes in res["results"].items():
        spec = CASES[case]
        lines += [f"### {spec['title']}", "", spec["model"], "",
                  ("| route | simulations | total s | ms/simulation | × R loop | goal | met? | "
                   "load | same table | p vs R | note |"),
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        r_loop = routes.get("R", {})
        r_ms = 1000 * r_loop["seconds"] / r_loop["n"] if "seconds" in r_loop else None
        serial = routes.get("serial", {})
        totals: dict[str, float] = {}
        for route in ROUTES:
            r = routes.get(route)
            if r is None:
                continue
            if "seconds" not in r:
                lines.append(f"| {ROUTE_LABEL[route]} | – | – | – | – | – | – | – | – | – | "
                             f"{r.get('error', '')[:160]} |")
                continue
            ms = 1000 * r["seconds"] / r["n"]
            totals[route] = r["seconds"]
            ratio = ms / r_ms if r_ms else None
            goal, met = "", ""
            if route in GOALS and ratio is not None:
                goal, met = f"≤ {GOALS[route]:.2f}×", "yes" if ratio <= GOALS[route] else "**no**"
            note = []
            if route in ("R", "serial") and "cpu_s" in r:
                r_cpu = r_loop.get("cpu_s")
                note.append(f"CPU {r['cpu_s']:.1f} s" + (
                    f" = {r['cpu_s'] / r_cpu:.2f}× R's CPU" if route == "serial" and r_cpu
                    else ""))
            if route == "R":
                note.append(f"simulate() {r['simulate_s']:.2f} s")
                same = "–"
            else:
                same = "–" if route == "serial" or "p_value" not in serial else \
                    ("yes" if _same(r, serial) else "**no**")
                t = r.get("table") or [{}]
                note.append(f"power {t[0].get('power', float('nan')):.3f}")
                if t[0].get("n_failed"):
                    note.append(f"{t[0]['n_failed']} failed")
                if t[0].get("n_singular"):
                    note.append(f"{t[0]['n_singular']} singular")
            if route == "client":
                note.append(f"cluster start {r['cluster_start_s']:.1f} s not included")
            lines.append(f"| {ROUTE_LABEL[route]} | {r['n']:,} | {r['seconds']:.1f} | "
                         f"{ms:.1f} | {'–' if ratio is None else f'{ratio:.2f}×'} | {goal} | "
                         f"{met} | {_fmt_load(r)} | {same} | "
                         f"{'–' if route == 'R' else _r_diff(r, r_loop)} | {'; '.join(note)} |")
        for name in ("dask", "client"):
            if name in totals and "processes" in totals:
                rel = totals[name] / totals["processes"]
                lines.append(f"| → {ROUTE_LABEL[name]} vs processes | | | | {rel:.2f}× of "
                             f"processes | ≤ 1.10× | {'yes' if rel <= 1.10 else '**no**'} | | | "
                             "| |")
        steps = r_loop.get("steps")
        if steps:
            parts = [f"lme4 fit alone {1000 * steps['lme4_fit']:.1f} ms"]
            if "lmertest_fit" in steps:
                parts.append(f"lmerTest::lmer fit {1000 * steps['lmertest_fit']:.1f} ms")
            parts.append(f"summary() {1000 * steps['summary']:.1f} ms")
            lines += ["", f"R's loop step by step (the first {steps['n']} simulations refitted "
                      "again): " + ", ".join(parts) + f", against {r_ms:.1f} ms per "
                      "simulation in the loop."]
        lines.append("")
    probe = res.get("probe") or {}
    rows = [(c, p) for c, p in probe.items() if "error" not in p]
    if rows:
        lines += ["### Where the time goes (probe)", "",
                  ("One process per case: R's profiler (`Rprof`, 20 ms samples) over a serial "
                  "`m.power` call, the shares of R's sampled time in each step; then calls "
                  "with 2 simulations on each route, which are almost all worker start-up "
                  "(a Python process and an R each, lme4 loaded, the design built)."), "",
                  ("| case | simulations | serial s (CPU s) | simulate | refit | of which "
                  "optimizer | of which merMod object | test (df or z) | 2 sims: serial | "
                  "2 sims: workers=2 | 2 sims: Dask |"),
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for c, p in rows:
            pr = p["profile"]
            test = pr.get("test (all)", 0.0)
            lines.append(
                f"| {c} | {p['nsim']} | {p['serial_s']:.1f} ({p['serial_cpu_s']:.1f}) | "
                f"{100 * pr['simulate']:.0f} % | {100 * pr['refit']:.0f} % | "
                f"{100 * pr['refit: optimizer']:.0f} % | {100 * pr['refit: merMod object']:.0f} % "
                f"| {100 * test:.0f} % | {p['serial_2sims_s']:.2f} s | "
                f"{p['processes_2sims_s']:.2f} s | {p['dask_2sims_s']:.2f} s |")
        lines.append("")
    for c, p in probe.items():
        if "error" in p:
            lines += [f"Probe {c} failed: {p['error']}", ""]
    if res.get("notes"):
        lines += [res["notes"].rstrip(), ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        return child_main(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="sleep18,sleep36,cbpp")
    ap.add_argument("--routes", default=",".join(ROUTES))
    ap.add_argument("--no-probe", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--json")
    ap.add_argument("--redo", choices=["report"])
    ap.add_argument("--merge", action="store_true",
                    help="keep the earlier run's JSON and replace only the routes (and the "
                         "probe, unless --no-probe) measured now: a second round at a quieter "
                         "moment")
    ap.add_argument("--notes", help="a file of text put at the section's end (the analysis)")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--project-python", default=os.path.join(ROOT, ".venv", "bin", "python"))
    args = ap.parse_args(argv)
    suffix = "-quick" if args.quick else ""
    args.out = args.out or os.path.join(HERE, f"RESULTS{suffix}.md")
    args.json = args.json or os.path.join(DATA, f"power{suffix}.json")
    args.only = args.only.split(",")
    args.routes = args.routes.split(",")
    os.makedirs(LOGS, exist_ok=True)
    if args.redo:
        with open(args.json) as fh:
            res = json.load(fh)
    else:
        res = measure(args)
        if args.merge and os.path.exists(args.json):
            with open(args.json) as fh:
                old = json.load(fh)
            for case, routes in res["results"].items():
                old["results"].setdefault(case, {}).update(routes)
            old.setdefault("probe", {}).update(res.get("probe") or {})
            old.setdefault("rounds", []).append({"date": res["date"], "started": res["started"],
                                                 "ended": res["ended"],
                                                 "what": {c: list(r) for c, r in
                                                          res["results"].items()}})
            res = old
    if args.notes:
        with open(args.notes) as fh:
            res["notes"] = fh.read()
    with open(args.json, "w") as fh:
        json.dump(res, fh)
    splice(args.out, section(res, args.quick))
    print(f"power: wrote the section into {os.path.relpath(args.out, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
