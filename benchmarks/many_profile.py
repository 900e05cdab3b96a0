"""Where lmer_many's time goes (issue 11): R's profiler on ``lmm_many_fit`` and
Python's on the rest, one process, the serial route.

    python benchmarks/many_profile.py [--workload sleep] [--n 400] [--out FILE]

Prints (and with --out writes) three parts: the split of the wall time between
R's chunk calls and lmermagic's Python work (planning, conversion, assembly);
``summaryRprof`` of the chunk calls (functions by total time, lmermagic's and
lme4's); cProfile of the whole call in Python, by cumulative time. Needs the
data of ``many.py`` (benchmarks/data/many_*.csv).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import many


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", default="sleep", choices=list(many.WORKLOADS))
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--out")
    args = ap.parse_args(argv)

    import rpy2.robjects as ro

    from lmermagic.toolbox import many as engine

    d = many.read(args.workload, args.n)
    many._warm_serial(args.workload, d)
    many._lmermagic_call(args.workload, d.iloc[:, :12] if args.workload != "sites" else d,
                         backend="serial")  # warm: the many-models code paths
    report = [(f"# lmer_many profile: {args.workload}, {args.n} models, serial, "
              f"load {many.loadavg()}"), ""]

    # 1. wall time split: R's chunk calls (timed around _work) vs the rest
    in_r = [0.0]
    work = engine._work

    def timed(state, chunk):
        t = time.perf_counter()
        try:
            return work(state, chunk)
        finally:
            in_r[0] += time.perf_counter() - t

    engine._work = timed
    t = time.perf_counter()
    mm = many._lmermagic_call(args.workload, d, backend="serial")
    wall = time.perf_counter() - t
    engine._work = work
    n = len(mm)
    report += ["## Wall time split", "",
               f"- whole call: {wall:.2f} s, {1000 * wall / n:.2f} ms/model",
               (f"- R's chunk calls (lmm_many_fit, with the crossing and unpacking): "
               f"{in_r[0]:.2f} s, {1000 * in_r[0] / n:.2f} ms/model "
               f"({100 * in_r[0] / wall:.0f} %)"),
               (f"- the rest (plan, encode, assembly, p.adjust): {wall - in_r[0]:.2f} s, "
               f"{1000 * (wall - in_r[0]) / n:.2f} ms/model"), ""]

    # 2. R's profiler over the same call
    prof = tempfile.NamedTemporaryFile(suffix=".Rprof", delete=False).name
    ro.r["Rprof"](prof, interval=0.002)
    many._lmermagic_call(args.workload, d, backend="serial")
    ro.r["Rprof"](ro.NULL)
    s = ro.r["summaryRprof"](prof)
    total = ro.r("function(s) s$by.total")(s)
    names = list(ro.r["rownames"](total))
    tt = list(total.rx2("total.time"))
    tp = list(total.rx2("total.pct"))
    st = list(total.rx2("self.time"))
    sampled = float(ro.r("function(s) s$sampling.time")(s)[0])
    report += ["## R (summaryRprof, by total time)", "",
               f"sampled {sampled:.2f} s; ms/model = total / {n}", "",
               "| function | total s | % | ms/model | self s |", "|---|---|---|---|---|"]
    for name, a, b, c in list(zip(names, tt, tp, st))[:45]:
        report.append(f"| {name} | {a:.2f} | {b:.1f} | {1000 * a / n:.2f} | {c:.2f} |")
    os.unlink(prof)

    # 3. Python's profiler
    pr = cProfile.Profile()
    pr.enable()
    many._lmermagic_call(args.workload, d, backend="serial")
    pr.disable()
    buf = io.StringIO()
    pstats.Stats(pr, stream=buf).sort_stats("cumulative").print_stats(35)
    report += ["", "## Python (cProfile, cumulative)", "", "```",
               buf.getvalue().strip(), "```"]
    text = "\n".join(report) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
