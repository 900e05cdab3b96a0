"""Warm starts (issue 23, item 4): evaluations and time saved, and how far the optimum moves.

For each model, lmermagic.lmer is run with lme4's default start and with each
warm start, ddf="lme4" (Satterthwaite's evaluations are the same either way),
one fit each (the machine is shared: InstEval is fitted twice only, default
and mixedlm). Reported per fit: lme4's optimizer evaluations
(``fit@optinfo$feval``, meta["optimizer_evals"]), the warm start's own
evaluations and seconds, R's fit seconds (``meta["r_fit_seconds"]``, without
the warm start) and the whole call's wall time; and against the default-start
fit: the largest relative change in theta, the fixed effects and logLik
(relative to max(|default|, 1e-6)), and the change of the criterion
(REML criterion or deviance; negative: the warm fit found a lower one).

As a yardstick for "lme4's own tolerance" the small models are also fitted
with control optimizer="bobyqa" (lme4's other default): two lme4 runs that
each stopped at their own tolerance.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/warmstart.py [--out benchmarks/WARMSTART.md]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # as R's BLAS: single-threaded, before any import

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lmermagic  # noqa: E402
from lmermagic import datasets  # noqa: E402
from make_synthetic import make  # noqa: E402

CASES = [
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)", "sleepstudy",
     ("subsample", "mixedlm", "bobyqa")),
    ("dietox", "Weight ~ Time + (1 + Time | Pig)", "dietox", ("subsample", "mixedlm", "bobyqa")),
    ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin",
     ("subsample", "mixedlm", "bobyqa")),
    ("100k crossed", "y ~ x1 + x2 + cond + (1 | g1) + (1 | g2)", "synthetic",
     ("subsample", "mixedlm")),
    ("InstEval", "y ~ service + (1 | s) + (1 | d) + (1 | dept)", "InstEval", ("mixedlm",)),
]


def load(name: str):  # type: ignore[no-untyped-def]
    if name == "synthetic":
        return make(100_000)
    return datasets.load(name)


def one(formula: str, data, how: str) -> dict:  # type: ignore[no-untyped-def]
    kw: dict = {"ddf": "lme4"}
    if how in ("subsample", "mixedlm"):
        kw["warm_start"] = how
    elif how == "bobyqa":
        kw["control"] = {"optimizer": "bobyqa"}
    lmermagic.clear_cache()
    t0 = time.perf_counter()
    m = lmermagic.lmer(formula, data, **kw)
    wall = time.perf_counter() - t0
    return {"how": how, "wall": wall, "meta": dict(m.meta), "theta": np.asarray(m.theta),
            "fixef": m.coefs["estimate"].to_numpy(), "loglik": m.loglik,
            "crit": m.reml_criterion if m.reml else -2 * m.loglik}


def rel(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.atleast_1d(a), np.atleast_1d(b)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-6)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=None)
    ap.add_argument("--only", default=None, help="comma-separated case names")
    args = ap.parse_args(argv)
    lmermagic.lmer("Reaction ~ Days + (1 | Subject)", datasets.load("sleepstudy"))  # start R
    rows = []
    for name, formula, source, methods in CASES:
        if args.only and name not in args.only.split(","):
            continue
        data = load(source)
        base = one(formula, data, "default")
        rows.append((name, base, base))
        print(name, "default", base["meta"]["optimizer_evals"], f"{base['wall']:.2f}s",
              flush=True)
        for how in methods:
            r = one(formula, data, how)
            rows.append((name, r, base))
            print(name, how, r["meta"].get("optimizer_evals"), r["meta"].get("warm_start"),
                  f"{r['wall']:.2f}s", f"theta {rel(r['theta'], base['theta']):.1e}",
                  f"fixef {rel(r['fixef'], base['fixef']):.1e}", flush=True)
    lines = [
        ("| model | start | lme4 evals | warm-start evals | warm-start s | R fit s | call s | "
         "Δθ rel | Δβ rel | ΔlogLik rel | Δcriterion |"),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r, base in rows:
        meta = r["meta"]
        same = r is base
        lines.append(
            f"| {name} | {r['how'] if r['how'] != 'default' else 'default (nloptwrap)'}"
            f"{'' if meta.get('warm_start') in (None, r['how']) else ' → ' + meta['warm_start']}"
            f" | {meta.get('optimizer_evals')} | {meta.get('warm_start_evals', '')} | "
            f"{meta.get('warm_start_seconds', 0):.2f} | {meta.get('r_fit_seconds', 0):.2f} | "
            f"{r['wall']:.2f} | "
            + (" | | | |" if same else
               f"{rel(r['theta'], base['theta']):.1e} | {rel(r['fixef'], base['fixef']):.1e} | "
               f"{rel(r['loglik'], base['loglik']):.1e} | {r['crit'] - base['crit']:+.1e} |"))
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
