"""Resident memory over many lmermagic fits (issue 4, item 13).

    python benchmarks/memory.py [--quick] [--fits 200] [--keep 50] [--rows 100000]
                                [--ddf satterthwaite] [--json OUT]

1. Fits the same 100,000-row model ``--fits`` times in a row, dropping each result,
   and prints the process's RSS after fit 1, fit 10 and the last fit. Growth after
   the first ten fits should stay under 50 MB.
2. Keeps ``--keep`` fitted 100,000-row models alive in a list and prints RSS (and
   RSS per kept model), then drops them and prints RSS again.

RSS is the process's VmRSS (Python + embedded R). R's own heap (``gc()``'s "used"
Mb) is printed alongside when rpy2 is importable. Prints figures only: it never
fails because of what it measures.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time

import numpy as np
import pandas as pd

LIMIT_MB = 50.0
FORMULA = "y ~ x + (1|g)"


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def r_heap_mb() -> float | None:
    """Megabytes R reports in use (Ncells + Vcells), after an R garbage collection."""
    try:
        import rpy2.robjects as ro

        return float(ro.r("sum(gc(verbose = FALSE)[, 2])")[0])
    except Exception:
        return None


def make_data(rows: int, seed: int = 13) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_groups = 500
    g = rng.integers(0, n_groups, rows)
    x = rng.standard_normal(rows)
    u = rng.normal(0.0, 1.0, n_groups)
    y = 1.0 + 0.5 * x + u[g] + rng.normal(0.0, 1.0, rows)
    return pd.DataFrame({"y": y, "x": x,
                         "g": pd.Categorical.from_codes(g, [f"g{i:03d}" for i in range(n_groups)])})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="40 fits, 10 kept models")
    ap.add_argument("--fits", type=int)
    ap.add_argument("--keep", type=int)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--ddf", default="satterthwaite", help='"satterthwaite" (default) or "lme4"')
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    fits = args.fits or (40 if args.quick else 200)
    keep = args.keep or (10 if args.quick else 50)
    out: dict = {"fits": fits, "keep": keep, "rows": args.rows, "ddf": args.ddf,
                 "formula": FORMULA}

    def say(msg: str) -> None:
        print(msg, flush=True)

    say(f"memory.py: {args.rows:,}-row model `{FORMULA}` (500 groups), ddf={args.ddf}; "
        f"{fits} consecutive fits, then {keep} kept alive")
    df = make_data(args.rows)
    out["rss_start"] = rss_mb()
    import lmermagic

    out["rss_import"] = rss_mb()

    def fit():
        # every call fits, and the fit cache keeps at most this one model alive
        getattr(lmermagic, "clear_cache", lambda: None)()
        m = lmermagic.lmer(FORMULA, df, ddf=args.ddf)
        m.coefs  # noqa: B018 - the table a user reads
        return m

    # -- 1. consecutive fits
    t0 = time.perf_counter()
    marks = {1, 10, fits}
    fit_times = []
    for i in range(1, fits + 1):
        t = time.perf_counter()
        m = fit()
        fit_times.append(time.perf_counter() - t)
        del m
        if i in marks:
            gc.collect()
            heap = r_heap_mb()  # runs R's garbage collector too
            out[f"rss_after_fit_{i}"] = rss_mb()
            out[f"r_heap_after_fit_{i}"] = heap
            extra = f", R heap {heap:,.0f} MB" if heap is not None else ""
            say(f"  RSS after fit {i:4d}: {out[f'rss_after_fit_{i}']:8,.1f} MB{extra}")
    out["fits_seconds"] = time.perf_counter() - t0
    out["median_fit_s"] = float(np.median(fit_times))
    growth = out[f"rss_after_fit_{fits}"] - out["rss_after_fit_10"]
    out["growth_after_10_mb"] = growth
    verdict = "under" if growth < LIMIT_MB else "OVER"
    say(f"  growth from fit 10 to fit {fits}: {growth:+.1f} MB ({verdict} the {LIMIT_MB:.0f} MB "
        f"target); median fit {out['median_fit_s']:.2f} s, {fits} fits in "
        f"{out['fits_seconds']:.0f} s")

    # -- 2. kept models
    gc.collect()
    r_heap_mb()
    before = rss_mb()
    out["rss_before_keep"] = before
    kept = [fit() for _ in range(keep)]
    gc.collect()
    heap = r_heap_mb()
    after = rss_mb()
    out["rss_with_kept"] = after
    out["per_kept_model_mb"] = (after - before) / keep
    out["r_heap_with_kept"] = heap
    extra = f", R heap {heap:,.0f} MB" if heap is not None else ""
    say(f"  RSS with {keep} fitted models alive: {after:8,.1f} MB ({after - before:+,.1f} MB, "
        f"{(after - before) / keep:.2f} MB per model{extra})")
    del kept
    gc.collect()
    # lmermagic may release R objects lazily, at its next call into R: make one
    # (a 2,000-row fit) before measuring.
    lmermagic.lmer(FORMULA, df.iloc[:2000], ddf="lme4")
    gc.collect()
    heap = r_heap_mb()
    out["rss_after_drop"] = rss_mb()
    out["r_heap_after_drop"] = heap
    extra = f", R heap {heap:,.0f} MB" if heap is not None else ""
    say(f"  RSS after dropping them (+1 small fit): {out['rss_after_drop']:8,.1f} MB{extra}")
    say(f"  (process RSS at start {out['rss_start']:.0f} MB, after import "
        f"{out['rss_import']:.0f} MB)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
