"""Benchmark driver: every tool on every model, same data, one session.

    python benchmarks/bench.py [--quick] [--out PATH] [--only MODEL,...] [--tools T,...]

Run by ``benchmarks/run.sh`` (``make bench`` / ``make bench-quick``), which first
builds the peers' virtual environment and the data. Standard library only: each
tool-model pair runs in its own subprocess (``worker.py`` in the right venv, or
``bench_r.R`` under Rscript); this driver reads the child's peak RSS from
``os.wait4`` and its timings from a JSON file, then writes RESULTS.md.

Benchmarks never fail because something is slow or broken: whatever could not run
is recorded with its reason.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from models import MODELS, WARMUP  # noqa: E402

DATA = os.path.join(HERE, "data")
LOGS = os.path.join(DATA, "logs")
AGREE_TOL = 1e-4

# tool id -> (label, runner kind)
TOOLS = {
    "R-lme4": "R: lme4 fit alone",
    "R-lme4-table": "R: lme4::lmer + summary() + VarCorr (no df)",
    "R-lmerTest": "R: lmerTest::lmer + summary() + VarCorr",
    "lmermagic": "lmermagic.lmer (Satterthwaite)",
    "lmermagic-lme4": 'lmermagic.lmer(ddf="lme4")',
    "rpy2": "rpy2 %%R -i df cell (lmerTest)",
    "pymer4": "pymer4 Lmer.fit",
    "statsmodels": "statsmodels MixedLM",
    "mixedlm": "mixedlm (Rust, no R)",
    "lme-python": "lme-python (Rust, no R)",
    "interlace": "interlace-lme (Python, no R)",
}
PEERS = ("rpy2", "pymer4", "statsmodels")
# the R-free peers (issue 23): their own venv, benchmarks/.venv-rfree, built by run.sh
RFREE = ("mixedlm", "lme-python", "interlace")
# one thread for BLAS, OpenMP, Rayon and Polars in the R-free peers' processes, as R's
THREADS_1 = dict.fromkeys(("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                           "RAYON_NUM_THREADS", "POLARS_MAX_THREADS"), "1")
# an R-free peer's limit on a large model; one that runs past it is not tried on the
# larger models after it (the issue measured two of them past 570 s on InstEval)
RFREE_TIMEOUT = 300
R_MODES = {"R-lme4": "lme4", "R-lme4-table": "lme4table", "R-lmerTest": "lmerTest"}
# the R route that gives the same output as each lmermagic setting
SAME_OUTPUT = {"lmermagic": "R-lmerTest", "lmermagic-lme4": "R-lme4-table"}

# repeats: (full, quick); quick None = skipped in quick mode
REPEATS = {"small": (20, 5), "large": (3, 1), "huge": (2, None)}
SMALL_ROUNDS = 2
# per tool-model time limit in seconds (includes process start and warm-up)
TIMEOUT = {"small": 300, "large": 1200, "huge": 1500}


# ---------------------------------------------------------------- helpers
def run_child(cmd: list[str], log: str, timeout: float, env: dict | None = None):
    """Run cmd in its own session; return (returncode, wall seconds, peak RSS KB,
    timed_out). Peak RSS is the child's ru_maxrss from wait4 (the largest of the
    process and its waited-for descendants)."""
    with open(log, "w") as fh:
        fh.write("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
        fh.flush()
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, env=env, cwd=ROOT)
        timed_out = False
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout:
                timed_out = True
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, wall, ru.ru_maxrss, timed_out


def tail(path: str, n: int = 6) -> str:
    try:
        with open(path, errors="replace") as fh:
            lines = [ln.rstrip() for ln in fh if ln.strip()]
        return " | ".join(lines[-n:])[-600:]
    except OSError:
        return ""


def capture(cmd: list[str], timeout: float = 120) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        return (r.stdout + r.stderr).strip()
    except Exception as e:
        return f"({type(e).__name__}: {e})"


def fmt_time(s: float | None) -> str:
    if s is None:
        return "–"
    if s < 1:
        return f"{s * 1000:.1f} ms" if s < 0.1 else f"{s * 1000:.0f} ms"
    return f"{s:.2f} s" if s < 10 else f"{s:.1f} s"


def fmt_mb(kb: float | None) -> str:
    if not kb:
        return "–"
    mb = kb / 1024
    return f"{mb:,.0f} MB" if mb < 10240 else f"{mb / 1024:.1f} GB"


def fmt_rel(x: float | None) -> str:
    return "–" if x is None else ("0" if x == 0 else f"{x:.1e}")


def fmt_ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}×"


# ---------------------------------------------------------------- runs
class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.project_py = args.project_python
        self.peers_py = args.peers_python
        self.results: list[dict] = []
        self.peer_problems: dict[str, str] = {}
        self.rfree_py = os.path.join(HERE, ".venv-rfree", "bin", "python")
        self.too_slow: dict[str, str] = {}  # R-free peer -> the model it ran out of time on
        os.makedirs(LOGS, exist_ok=True)

    # -- availability of the peers' venv
    def check_peers(self) -> None:
        status_file = os.path.join(DATA, "peers-status.txt")
        if not os.path.exists(self.peers_py):
            reason = "peers venv missing"
            if os.path.exists(status_file):
                reason = open(status_file).read().strip() or reason
            for t in PEERS:
                self.peer_problems[t] = reason
            return
        self.check_rfree()
        probes = {
            "rpy2": "import rpy2, rpy2.robjects; import IPython; print(rpy2.__version__)",
            "pymer4": "import pymer4.models; import pymer4; print(pymer4.__version__)",
            "statsmodels": "import statsmodels.api; import statsmodels; "
                           "print(statsmodels.__version__)",
        }
        for tool, code in probes.items():
            r = subprocess.run([self.peers_py, "-c", code], capture_output=True, text=True,
                               cwd=HERE, timeout=300)
            if r.returncode != 0:
                err = [ln for ln in (r.stderr or r.stdout).splitlines() if ln.strip()]
                self.peer_problems[tool] = ("import failed in benchmarks/.venv-peers: "
                                            + (err[-1] if err else f"exit {r.returncode}"))

    def check_rfree(self) -> None:
        status_file = os.path.join(DATA, "rfree-status.txt")
        problems = open(status_file).read().strip() if os.path.exists(status_file) else ""
        for tool in RFREE:
            if not os.path.exists(self.rfree_py):
                self.peer_problems[tool] = problems or "R-free peers' venv missing"
                continue
            r = subprocess.run([self.rfree_py, "-c", f"import rfree; rfree.FACTORIES[{tool!r}]()"],
                               capture_output=True, text=True, cwd=HERE, timeout=300)
            if r.returncode != 0:
                err = [ln for ln in (r.stderr or r.stdout).splitlines() if ln.strip()]
                self.peer_problems[tool] = ("import failed in benchmarks/.venv-rfree: "
                                            + (err[-1] if err else f"exit {r.returncode}"))

    def repeats_for(self, model: str) -> int | None:
        full, quick = REPEATS[MODELS[model]["size"]]
        return quick if self.quick else full

    def command(self, tool: str, model: str, repeats: int, out: str) -> list[str]:
        spec = MODELS[model]
        if tool.startswith("R-"):
            w = MODELS[WARMUP]
            return ["Rscript", os.path.join(HERE, "bench_r.R"),
                    R_MODES[tool],
                    os.path.join(DATA, spec["csv"]), spec["formula"], ",".join(spec["factors"]),
                    spec["family"] or "", str(repeats), out,
                    os.path.join(DATA, w["csv"]), w["formula"], ",".join(w["factors"])]
        py = (self.project_py if tool.startswith("lmermagic")
              else self.rfree_py if tool in RFREE else self.peers_py)
        return [py, os.path.join(HERE, "worker.py"), tool, model, str(repeats), out]

    def precheck(self, tool: str, model: str) -> dict:
        """A record that already says why this pair does not run, or {}."""
        rec: dict = {}
        if self.repeats_for(model) is None:
            rec["skipped"] = "skipped in quick mode"
        elif tool in self.peer_problems:
            rec["error"] = self.peer_problems[tool]
        elif tool in self.too_slow:
            rec["skipped"] = (f"not run: did not finish {self.too_slow[tool]} within "
                              f"{RFREE_TIMEOUT} s")
        elif tool == "lmermagic-lme4" and MODELS[model]["family"]:
            rec["skipped"] = "n/a: glmer has no ddf option (same as lmermagic)"
        elif tool == "R-lme4-table" and MODELS[model]["family"]:
            rec["skipped"] = "n/a: for a glmer this is the lmerTest row (z tests, no df)"
        elif tool == "statsmodels" and not MODELS[model].get("sm"):
            rec["unsupported"] = MODELS[model].get("sm_reason", "not supported")
        elif tool == "statsmodels" and MODELS[model]["size"] != "small" and self.quick:
            rec["skipped"] = MODELS[model].get("sm_quick_reason", "skipped in quick mode")
        return rec

    def run_process(self, tool: str, model: str, repeats: int, rnd: int) -> dict:
        """One worker process: warm-up, then ``repeats`` timed fits."""
        rec: dict = {}
        out = os.path.join(LOGS, f"{model}.{tool}.{rnd}.json")
        log = os.path.join(LOGS, f"{model}.{tool}.{rnd}.log")
        if os.path.exists(out):
            os.remove(out)
        timeout = TIMEOUT[MODELS[model]["size"]] * self.args.timeout_scale
        env = None
        if tool in RFREE:
            env = {**os.environ, **THREADS_1}
            if MODELS[model]["size"] != "small":
                timeout = RFREE_TIMEOUT * self.args.timeout_scale
        rc, wall, rss, timed_out = run_child(self.command(tool, model, repeats, out), log,
                                             timeout, env)
        rec.update(process_wall=wall, peak_rss_kb=rss, returncode=rc,
                   log=os.path.relpath(log, ROOT))
        if timed_out:
            rec["error"] = f"timed out after {timeout:.0f} s (limit set by bench.py)"
            if tool in RFREE:
                self.too_slow[tool] = MODELS[model]["label"]
            return rec
        try:
            with open(out) as fh:
                rec.update(json.load(fh))
        except (OSError, ValueError):
            rec["error"] = f"exit code {rc}, no result; log: {tail(log)}"
        return rec

    def run(self) -> None:
        self.check_peers()
        tools = self.args.tools.split(",") if self.args.tools else list(TOOLS)
        models = self.args.only.split(",") if self.args.only else list(MODELS)
        for model in models:
            reps = self.repeats_for(model)
            # Rounds of processes, tools interleaved round by round, so that a burst of
            # other load on the machine hits every tool alike. Small models: the repeats
            # split over SMALL_ROUNDS processes per tool; large ones: one repeat each.
            if reps is None:
                rounds = [None]
            elif MODELS[model]["size"] == "small":
                k = 1 if self.quick else SMALL_ROUNDS
                rounds = [reps // k + (i < reps % k) for i in range(k)]
            else:
                rounds = [1] * reps
            recs = {}
            for tool in tools:
                recs[tool] = {"tool": tool, "model": model, **self.precheck(tool, model)}
                self.results.append(recs[tool])
            for rnd, n in enumerate(rounds):
                for tool in tools:
                    rec = recs[tool]
                    if rnd == 0 and any(k in rec for k in ("skipped", "unsupported", "error")):
                        why = rec.get("error") or rec.get("unsupported") or rec.get("skipped")
                        print(f"{model:12s} {tool:15s} -- {why}", flush=True)
                        continue
                    if rnd > 0 and not rec.get("times"):
                        continue
                    tag = f" round {rnd + 1}/{len(rounds)}" if len(rounds) > 1 else ""
                    print(f"{model:12s} {tool:15s}{tag} ", end="", flush=True)
                    one = self.run_process(tool, model, n, rnd)
                    rec["peak_rss_kb"] = max(rec.get("peak_rss_kb", 0), one.get("peak_rss_kb", 0))
                    rec.setdefault("logs", []).append(one.get("log"))
                    for k in ("versions", "fixef", "fixef_names", "warmup", "import_s",
                              "se", "df"):
                        if k in one:
                            rec[k] = one[k]
                    if one.get("times"):
                        rec.setdefault("times", []).extend(one["times"])
                        if one.get("r_core"):
                            rec.setdefault("r_core", []).extend(one["r_core"])
                        print(f"{', '.join(fmt_time(t) for t in one['times'][:8])}; "
                              f"peak {fmt_mb(one.get('peak_rss_kb'))}", flush=True)
                    else:
                        why = one.get("error") or one.get("unsupported") or "?"
                        for k in ("error", "unsupported", "traceback"):
                            if k in one:
                                rec[k] = one[k]
                        print(f"-- {why[:300]}", flush=True)
        self.analyse()

    # -- ratios and agreement
    def analyse(self) -> None:
        by = {(r["model"], r["tool"]): r for r in self.results}
        for r in self.results:
            if r.get("times"):
                r["median"] = statistics.median(r["times"])
                r["min"] = min(r["times"])
        for r in self.results:
            if "median" not in r:
                continue
            if r.get("r_core") and len(r["r_core"]) == len(r["times"]):
                # lmermagic's own work per fit: wall time minus R's fit and tables,
                # as R timed them inside the same call (model.meta)
                over = [t - c for t, c in zip(r["times"], r["r_core"])]
                r["overhead"] = statistics.median(over)
                r["r_core_median"] = statistics.median(r["r_core"])
                r["overhead_frac"] = statistics.median(
                    o / c for o, c in zip(over, r["r_core"]))
            for base, key in (("R-lme4", "ratio_lme4"), ("R-lme4-table", "ratio_lme4table"),
                              ("R-lmerTest", "ratio_lmertest")):
                b = by.get((r["model"], base))
                if b and b.get("median"):
                    r[key] = r["median"] / b["median"]
            ref = by.get((r["model"], "R-lme4"))
            if not (ref and ref.get("fixef")):
                ref = by.get((r["model"], "R-lmerTest"))
            if ref and ref.get("fixef") and r.get("fixef"):
                a, b = r["fixef"], ref["fixef"]
                if len(a) != len(b):
                    r["agree"] = False
                    r["agree_note"] = f"{len(a)} fixed effects vs R's {len(b)}"
                else:
                    rel = max(abs(x - y) / max(abs(y), 1e-12) for x, y in zip(a, b))
                    r["max_rel_diff"] = rel
                    r["agree"] = rel < AGREE_TOL
            # standard errors and Satterthwaite df against lmerTest's summary()
            lt = by.get((r["model"], "R-lmerTest")) or {}
            for key in ("se", "df"):
                a, b = r.get(key), lt.get(key)
                if a and b and len(a) == len(b) and r["tool"] != "R-lmerTest":
                    r[f"{key}_rel_diff"] = max(abs(x - y) / max(abs(y), 1e-12)
                                               for x, y in zip(a, b))


# ---------------------------------------------------------------- extra measurements
def run_json_script(py: str, script: str, args: list[str], name: str, timeout: float) -> dict:
    out = os.path.join(LOGS, f"{name}.json")
    log = os.path.join(LOGS, f"{name}.log")
    if os.path.exists(out):
        os.remove(out)
    rc, wall, rss, timed_out = run_child([py, os.path.join(HERE, script), *args, "--json", out],
                                         log, timeout)
    try:
        with open(out) as fh:
            d = json.load(fh)
    except (OSError, ValueError):
        d = {"error": ("timed out" if timed_out else f"exit code {rc}") + f"; log: {tail(log)}"}
    d["process_wall"] = wall
    d["peak_rss_kb"] = rss
    d["log"] = os.path.relpath(log, ROOT)
    try:
        d["output"] = open(log).read()
    except OSError:
        pass
    return d


def machine_info(project_py: str, peers_py: str) -> dict:
    info: dict = {
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "loadavg_start": os.getloadavg(),
    }
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                info["mem_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    r_code = ('cat(R.version.string, "| lme4", format(packageVersion("lme4")), '
              '"| lmerTest", format(packageVersion("lmerTest")), "| Matrix", '
              'format(packageVersion("Matrix")), "| BLAS", '
              'basename(extSoftVersion()[["BLAS"]]))')
    info["R"] = capture(["Rscript", "-e", r_code])
    info["project"] = capture([project_py, "-c", (
        "import sys, platform, importlib.metadata as md\n"
        "v = lambda p: (md.version(p) if p else '')\n"
        "out = ['Python ' + platform.python_version()]\n"
        "for p in ('lmermagic', 'rpy2', 'pandas', 'numpy', 'ipython'):\n"
        "    try: out.append(p + ' ' + md.version(p))\n"
        "    except Exception: out.append(p + ' (not installed)')\n"
        "print(', '.join(out))")])
    if os.path.exists(peers_py):
        info["peers"] = capture([peers_py, "-c", (
            "import platform, importlib.metadata as md\n"
            "out = ['Python ' + platform.python_version()]\n"
            "for p in ('rpy2', 'pymer4', 'statsmodels', 'pandas', 'numpy', 'ipython'):\n"
            "    try: out.append(p + ' ' + md.version(p))\n"
            "    except Exception: out.append(p + ' (not installed)')\n"
            "print(', '.join(out))")])
    else:
        info["peers"] = "(no peers venv)"
    rfree_py = os.path.join(HERE, ".venv-rfree", "bin", "python")
    info["rfree"] = capture([rfree_py, "-c", (
        "import platform, importlib.metadata as md\n"
        "out = ['Python ' + platform.python_version()]\n"
        "for p in ('mixedlm', 'lme-python', 'interlace-lme', 'pandas', 'numpy', 'polars'):\n"
        "    try: out.append(p + ' ' + md.version(p))\n"
        "    except Exception: out.append(p + ' (not installed)')\n"
        "print(', '.join(out))")]) if os.path.exists(rfree_py) else "(no R-free peers' venv)"
    return info


# ---------------------------------------------------------------- report
def write_report(path: str, bench: Bench, info: dict, startup: dict | None,
                 memory: dict | None, total_s: float, fitcache: dict | None = None) -> None:
    res = bench.results
    models = list(dict.fromkeys(r["model"] for r in res))
    tools = list(dict.fromkeys(r["tool"] for r in res))
    by = {(r["model"], r["tool"]): r for r in res}
    L: list[str] = []
    mode = "quick (`make bench-quick`)" if bench.quick else "full (`make bench`)"
    L.append("# lmermagic benchmarks\n")
    L.append(f"Written by `benchmarks/bench.py`, mode: {mode}, on {info['date']}; "
             f"the whole run took {total_s / 60:.1f} min. Regenerate with `make bench` "
             "(full) or `make bench-quick`.\n")
    left = [MODELS[m]["label"] for m in MODELS if m not in models]
    if left and not bench.quick:
        L.append(f"Not in this run (`--only`): {', '.join(left)}; `make bench` runs "
                 "every model.\n")
    L.append("Every tool reads the same CSV files (exported from R's lme4/geepack by "
             "`benchmarks/export_data.R`; the synthetic design by "
             "`benchmarks/make_synthetic.py`, seeded). Each tool-model pair runs in a fresh "
             "process: data loading, imports and two warm-up fits (sleepstudy, same tool) "
             "are not timed; the times are the wall time of the call a user makes, "
             "through to the coefficient table in hand. *Peak RSS* is the largest resident "
             "memory of that whole process (interpreter, R, data, warm-up and all "
             "repeats). *Agrees* compares the fixed-effect estimates with R's `lme4::lmer` "
             f"(max relative difference < {AGREE_TOL:g}); *SE* and *df vs lmerTest* are the "
             "largest relative differences of the standard errors and Satterthwaite df "
             "from `summary()` of `lmerTest::lmer` (for a GLMM: `lme4::glmer`'s). The "
             "R-free peers (mixedlm, lme-python, interlace-lme) run with BLAS, OpenMP, "
             "Rayon and Polars pinned to one thread, as R's BLAS is.\n")
    # overview
    L.append("## Overview: median wall time (× R lmerTest + summary)\n")
    L.append("| tool | " + " | ".join(MODELS[m]["label"] for m in models) + " |")
    L.append("|---|" + "---|" * len(models))
    for t in tools:
        cells = []
        for m in models:
            r = by.get((m, t), {})
            if r.get("median") is not None:
                c = fmt_time(r["median"])
                if t != "R-lmerTest" and r.get("ratio_lmertest") is not None:
                    c += f" ({fmt_ratio(r['ratio_lmertest'])})"
                if r.get("agree") is False:
                    c += " ≠"
                cells.append(c)
            elif r.get("unsupported"):
                cells.append("not supported")
            elif r.get("skipped"):
                cells.append("skipped" if "quick" in r["skipped"] else "n/a")
            else:
                cells.append("could not run")
        L.append(f"| {TOOLS[t]} | " + " | ".join(cells) + " |")
    L.append("\n≠: estimates differ from R's by more than the tolerance (see details).\n")
    # targets
    rows = targets(by, startup, memory, fitcache)
    if rows:
        L.append("## Issue targets at a glance\n")
        L.append("Read off the numbers above; nothing fails on them (under load, small "
                 "differences are noise).\n")
        L.append("| target (issue) | measured | met |")
        L.append("|---|---|---|")
        for what, measured, ok in rows:
            L.append(f"| {what} | {measured} | {'yes' if ok else '**no**'} |")
        L.append("")
    # overhead measured inside lmermagic's own process
    over = [(m, t, by[(m, t)]) for m in models for t in tools
            if (by.get((m, t)) or {}).get("overhead") is not None]
    if over:
        L.append("## lmermagic's own work per fit (issue 3, item 2)\n")
        L.append("Inside each timed lmermagic call, R times its own work (the lme4 fit, and "
                 "computing the tables: coefficients with df, VarCorr, ranef, fitted values, "
                 "fit statistics) and reports it in `model.meta`. The rest of the wall time "
                 "is lmermagic's: sending the columns, the formula check, building R's call, "
                 "bringing the results back and building the pandas objects. Unlike the "
                 "cross-process ratios above, this split is measured fit by fit in one "
                 "process, so load on the machine hardly moves it. The issue's yardstick is "
                 "R's own time for the same output (last column; the median of the R "
                 "route in its own process); lmermagic's R work is often less than that "
                 "(it skips `summary()` and computes Satterthwaite df more cheaply), so the "
                 "share of lmermagic's own R time is the stricter figure.\n")
        L.append("| model | tool | median wall | R inside lmermagic: fit + tables "
                 "| lmermagic's own work | as share of that | R's route for the same output "
                 "| own work as share of it |")
        L.append("|---|---|---|---|---|---|---|---|")
        for m, t, r in over:
            same = (by.get((m, SAME_OUTPUT[t])) or {}).get("median")
            L.append(f"| {MODELS[m]['label']} | {TOOLS[t]} | {fmt_time(r['median'])} | "
                     f"{fmt_time(r['r_core_median'])} | {fmt_time(r['overhead'])} | "
                     f"{r['overhead_frac']:.1%} | {fmt_time(same)} | "
                     + (f"{r['overhead'] / same:.1%}" if same else "–") + " |")
        L.append("")
    # details
    L.append("## Details per model\n")
    for m in models:
        spec = MODELS[m]
        fam = f", family {spec['family']}" if spec["family"] else ", REML"
        L.append(f"### {spec['label']}\n")
        L.append(f"`{spec['formula']}`{fam}\n")
        L.append("| tool | median | min | n | × R lme4 | × R lme4+summary | "
                 "× R lmerTest+summary | peak RSS | max rel. diff of fixef vs R | agrees | "
                 "SE vs lmerTest | df vs lmerTest |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for t in tools:
            r = by.get((m, t))
            if not r:
                continue
            if r.get("median") is None:
                why = r.get("unsupported") or r.get("skipped") or r.get("error") or "?"
                why = " ".join(why.split())
                short = why if len(why) < 90 else why[:87] + "…"
                L.append(f"| {TOOLS[t]} | {short} | | | | | | {fmt_mb(r.get('peak_rss_kb'))} "
                         "| | | | |")
                continue
            rel = r.get("max_rel_diff")
            reltxt = "–" if rel is None else ("0" if rel == 0 else f"{rel:.1e}")
            agree = {True: "yes", False: "**no**", None: "–"}[r.get("agree")]
            if r.get("agree_note"):
                agree += f" ({r['agree_note']})"
            L.append(f"| {TOOLS[t]} | {fmt_time(r['median'])} | {fmt_time(r['min'])} | "
                     f"{len(r['times'])} | {fmt_ratio(r.get('ratio_lme4'))} | "
                     f"{fmt_ratio(r.get('ratio_lme4table'))} | "
                     f"{fmt_ratio(r.get('ratio_lmertest'))} | {fmt_mb(r.get('peak_rss_kb'))} | "
                     f"{reltxt} | {agree} | {fmt_rel(r.get('se_rel_diff'))} | "
                     f"{fmt_rel(r.get('df_rel_diff'))} |")
        L.append("")
    # startup
    L.append("## Start-up (issue 3, item 4)\n")
    if startup and not startup.get("error"):
        rows = startup.get("rows", [])
        L.append("Fresh process each time; median of the repeats shown.\n")
        L.append("| what | median | n |")
        L.append("|---|---|---|")
        for row in rows:
            L.append(f"| {row['what']} | {fmt_time(row.get('median'))} | {row.get('n', '')} |")
        if startup.get("notes"):
            L.append("")
            for n in startup["notes"]:
                L.append(f"- {n}")
        L.append("")
    else:
        L.append(f"Could not measure: {(startup or {}).get('error', 'not run')}\n")
    # the fit cache
    L.append("## The fit cache after a restart (issue 13, item 2): `benchmarks/fitcache.py`\n")
    if fitcache and fitcache.get("rows"):
        L.append("Fresh processes, an empty cache directory per round: the cell that fits "
                 "and stores, then the same cell in a new process (a kernel restart).\n")
        L.append("| what | median | n | share of the fit |")
        L.append("|---|---|---|---|")
        for row in fitcache["rows"]:
            share = row.get("ratio_to_fit")
            L.append(f"| {row['what']} | {fmt_time(row.get('median'))} | {row.get('n', '')} | "
                     f"{'' if share is None else f'{share:.1%}'} |")
        L.extend(["", *(f"- {n}" for n in fitcache.get("notes", [])), ""])
    else:
        L.append(f"Could not measure: {(fitcache or {}).get('error', 'not run')}\n")
    # memory
    L.append("## Memory (issue 4, item 13): `benchmarks/memory.py`\n")
    if memory and not memory.get("error"):
        L.append("```")
        text = memory.get("output", "").strip().splitlines()
        L.extend(ln for ln in text if not ln.startswith("$ "))
        L.append("```\n")
    else:
        L.append(f"Could not measure: {(memory or {}).get('error', 'not run')}\n")
    # could not run
    L.append("## Could not run / not supported\n")
    problems = [r for r in res if r.get("median") is None or r.get("error")]
    quick_skipped = [m for m in models
                     if all((by.get((m, t)) or {}).get("skipped") == "skipped in quick mode"
                            for t in tools)]
    for m in quick_skipped:
        L.append(f"- {MODELS[m]['label']}: all tools skipped in quick mode")
    for r in problems:
        if r["model"] in quick_skipped:
            continue
        why = r.get("unsupported") or r.get("skipped") or r.get("error") or "?"
        why = " ".join(why.split())
        if len(why) > 400:
            why = why[:400] + "… (see the log under benchmarks/data/logs/)"
        part = " (some repeats ran)" if r.get("median") is not None else ""
        L.append(f"- **{TOOLS[r['tool']]}**, {r['model']}{part}: {why}")
    if not problems:
        L.append("Everything ran.")
    for tool, why in bench.peer_problems.items():
        L.append(f"- peer **{tool}**: {why}")
    L.append("")
    # machine
    L.append("## Machine\n")
    L.append(f"- date: {info['date']}")
    L.append(f"- nproc: {info.get('nproc')}, CPU: {info.get('cpu', '?')}, "
             f"memory: {info.get('mem_gb', '?')} GB; {info.get('platform')}")
    la0 = ", ".join(f"{x:.2f}" for x in info["loadavg_start"])
    la1 = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    L.append(f"- load average at start: {la0}; at end: {la1} (other work on the machine "
             "inflates times)")
    for line in info.get("redone", []):
        L.append(f"- redone after the run (`bench.py --redo`): {line}")
    L.append(f"- R: {info.get('R')}")
    L.append(f"- lmermagic route (project .venv): {info.get('project')}")
    L.append(f"- peers (benchmarks/.venv-peers): {info.get('peers')}")
    L.append(f"- R-free peers (benchmarks/.venv-rfree): {info.get('rfree', '–')}")
    L.append(f"- repeats: small models {REPEATS['small'][1 if bench.quick else 0]}, InstEval "
             f"and 100k rows "
             f"{REPEATS['large'][1 if bench.quick else 0]}, 1M rows "
             f"{REPEATS['huge'][1 if bench.quick else 0] or 'skipped'}; raw numbers in "
             f"`benchmarks/data/{os.path.basename(bench.args.json)}` (not committed)")
    L.append("")
    text = "\n".join(L)
    kept = spliced_sections(path)
    if kept:
        text = text.replace("\n## Machine", "\n" + kept + "## Machine", 1)
    with open(path, "w") as fh:
        fh.write(text)


# sections that many.py and power.py splice into the report after bench.py wrote it
SPLICED = re.compile(r"^## (?:Many models \(issue #11\)|Power by simulation \(issue #20\))\n"
                     r".*?(?=^## |\Z)", re.S | re.M)


def spliced_sections(path: str) -> str:
    """The other scripts' sections of the report at ``path``, kept when bench.py
    rewrites it (``--redo``); empty when there are none."""
    if not os.path.exists(path):
        return ""
    return "".join(m.group(0) for m in SPLICED.finditer(open(path).read()))


def targets(by: dict, startup: dict | None, memory: dict | None,
            fitcache: dict | None = None) -> list[tuple[str, str, bool]]:
    """The issues' goals, each as (target, measured, met)."""
    rows: list[tuple[str, str, bool]] = []

    def ratio(model: str, tool: str, key: str):
        return (by.get((model, tool)) or {}).get(key)

    for model, limit, label in (("sleepstudy", 0.20, "sleepstudy-size"),
                                ("dietox", 0.20, "sleepstudy-size"),
                                ("cbpp", 0.20, "sleepstudy-size"),
                                ("InstEval", 0.05, "large"), ("synthetic1M", 0.05, "large")):
        for tool in ("lmermagic", "lmermagic-lme4"):
            rec = by.get((model, tool)) or {}
            same = (by.get((model, SAME_OUTPUT[tool])) or {}).get("median")
            if rec.get("overhead") is not None and same:
                f = rec["overhead"] / same
                rows.append(((f"#3.2 {model}: {TOOLS[tool]}, lmermagic's own work ≤ "
                             f"{limit:.0%} of R's time for the same output "
                             f"({TOOLS[SAME_OUTPUT[tool]]}; {label})"),
                             (f"{f:.1%} ({fmt_time(rec['overhead'])} of {fmt_time(same)}; "
                             f"{rec['overhead_frac']:.1%} of lmermagic's own R time)"),
                             f <= limit))
        r = ratio(model, "lmermagic", "ratio_lmertest")
        if r is not None:
            rows.append(((f"#3.2 {model}: lmermagic (Satterthwaite) vs R lmerTest + summary "
                         "+ VarCorr, same output"), fmt_ratio(r), r <= 1 + limit))
        r = ratio(model, "lmermagic-lme4", "ratio_lme4table")
        if r is not None:
            rows.append(((f"#3.2 {model}: lmermagic ddf=\"lme4\" vs R lme4 + summary + "
                         "VarCorr, same output"), fmt_ratio(r), r <= 1 + limit))
    r = ratio("InstEval", "lmermagic", "ratio_lmertest")
    if r is not None:
        rows.append(("#3.3 InstEval: Satterthwaite p-values in ≤ 0.70× R lmerTest + summary",
                     fmt_ratio(r), r <= 0.70))
        rows.append(("#23.3 InstEval: Satterthwaite p-values in ≤ 0.50× R lmerTest + summary",
                     fmt_ratio(r), r <= 0.50))
    p, n = ratio("InstEval", "lmermagic", "median"), ratio("InstEval", "lmermagic-lme4", "median")
    if p and n:
        rows.append(("#23.3 InstEval: with p-values ≤ 1.10× lmermagic.lmer(ddf=\"lme4\")",
                     fmt_ratio(p / n), p / n <= 1.10))
    for model in ("sleepstudy", "dietox"):
        r = ratio(model, "lmermagic", "ratio_lmertest")
        if r is not None:
            rows.append(((f"#23.3 {model}: lmermagic (Satterthwaite) ≤ 0.55× R lmerTest + "
                          "summary"), fmt_ratio(r), r <= 0.55))
    if startup and startup.get("rows"):
        med = {row["what"]: row.get("median") for row in startup["rows"]}
        for what, v in med.items():
            if what.startswith("`%load_ext lmermagic`") and v is not None:
                rows.append((f"#3.4 {what} < 100 ms", fmt_time(v), v < 0.1))
        first = next((v for w, v in med.items() if w.startswith("lmermagic: first fit")), None)
        lib = med.get("`Rscript -e 'library(lmerTest)'` (whole process)")
        if first is not None and lib is not None:
            rows.append(("#3.4 first fit ≤ `Rscript -e 'library(lmerTest)'` + 0.5 s",
                         f"{fmt_time(first)} vs {fmt_time(lib)}", first <= lib + 0.5))
    for row in (fitcache or {}).get("rows", []):
        if "after a restart" in row["what"] and row.get("ratio_to_fit") is not None:
            rows.append((f"#13.2 {row['what']} < 5 % of the fit", f"{row['ratio_to_fit']:.1%}",
                         row["ratio_to_fit"] < 0.05))
    if memory and memory.get("growth_after_10_mb") is not None:
        g = memory["growth_after_10_mb"]
        rows.append((f"#4.13 RSS growth from fit 10 to fit {memory.get('fits')} < 50 MB",
                     f"{g:+.1f} MB", g < 50))
    return rows


def redo_pairs(bench: Bench, args, info: dict) -> None:
    """Measure the pairs --only/--tools select again, in place of the earlier run's."""
    again = Bench(args)
    again.run()
    new = {(r["model"], r["tool"]): r for r in again.results}
    bench.results = [new.pop((r["model"], r["tool"]), r) for r in bench.results]
    bench.results.extend(new.values())
    bench.peer_problems.update(again.peer_problems)
    la = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    models = sorted({r["model"] for r in again.results})
    tools = sorted({r["tool"] for r in again.results})
    at = next(i for i, line in enumerate(info["redone"]) if line.startswith("pairs:"))
    info["redone"][at] += (f" ({', '.join(models)}: {', '.join(tools)}; load average at "
                           f"the end {la})")
    bench.analyse()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, skip the 1M-row case")
    ap.add_argument("--out", help="markdown report (default benchmarks/RESULTS.md, "
                                  "quick: benchmarks/RESULTS-quick.md)")
    ap.add_argument("--json", help="raw results (default benchmarks/data/results[-quick].json)")
    ap.add_argument("--only", help="comma-separated models")
    ap.add_argument("--tools", help="comma-separated tools: " + ",".join(TOOLS))
    ap.add_argument("--project-python", default=os.path.join(ROOT, ".venv", "bin", "python"))
    ap.add_argument("--peers-python", default=os.path.join(HERE, ".venv-peers", "bin", "python"))
    ap.add_argument("--no-startup", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--no-fitcache", action="store_true")
    ap.add_argument("--timeout-scale", type=float, default=1.0)
    ap.add_argument("--redo", action="append",
                    choices=["startup", "memory", "fitcache", "pairs", "report"],
                    help="measure only this part again (or, with 'report', nothing) and take "
                         "everything else from the earlier run's --json; 'pairs': the "
                         "tool-model pairs that --only and --tools select; the report says "
                         "what was redone and when")
    args = ap.parse_args(argv)
    suffix = "-quick" if args.quick else ""
    args.out = args.out or os.path.join(HERE, f"RESULTS{suffix}.md")
    args.json = args.json or os.path.join(DATA, f"results{suffix}.json")
    t_start = time.perf_counter()
    bench = Bench(args)
    if args.redo:
        with open(args.json) as fh:
            old = json.load(fh)
        info, bench.results = old["info"], old["results"]
        bench.peer_problems = old.get("peer_problems", {})
        when = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        info.setdefault("redone", []).extend(f"{part}: measured again on {when}"
                                             for part in args.redo if part != "report")
        args.no_startup = "startup" not in args.redo
        args.no_memory = "memory" not in args.redo
        args.no_fitcache = "fitcache" not in args.redo
        startup, memory = old.get("startup"), old.get("memory")
        fitcache = old.get("fitcache")
        if "pairs" in args.redo:
            redo_pairs(bench, args, info)
    else:
        info = machine_info(args.project_python, args.peers_python)
        print(f"machine: {info.get('nproc')} cores, load {info['loadavg_start']}; "
              f"{info.get('R')}")
        bench.run()
        startup = memory = fitcache = None
    if not args.no_startup:
        print("start-up measurements ...", flush=True)
        startup = run_json_script(args.project_python, "startup.py",
                                  ["--quick"] if args.quick else [], "startup", 900)
        for row in startup.get("rows", []):
            print(f"  {row['what']}: {fmt_time(row.get('median'))}")
        if startup.get("error"):
            print("  " + startup["error"])
    if not args.no_memory:
        print("memory.py ...", flush=True)
        memory = run_json_script(args.project_python, "memory.py",
                                 ["--quick"] if args.quick else [], "memory", 1800)
        print(memory.get("output", "").split("\n", 1)[-1].rstrip() or memory.get("error"))
    if not args.no_fitcache:
        print("fitcache.py ...", flush=True)
        fitcache = run_json_script(args.project_python, "fitcache.py",
                                   ["--quick"] if args.quick else [], "fitcache", 3600)
    total = time.perf_counter() - t_start
    if args.redo:
        total = old.get("total_s", total)
    with open(args.json, "w") as fh:
        json.dump({"info": info, "results": bench.results, "startup": startup,
                   "memory": memory, "fitcache": fitcache, "quick": args.quick,
                   "total_s": total,
                   "peer_problems": bench.peer_problems}, fh, indent=1, default=str)
    write_report(args.out, bench, info, startup, memory, total, fitcache)
    print(f"wrote {os.path.relpath(args.out, ROOT)} ({total / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
