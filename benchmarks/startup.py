"""Start-up costs (issue 3, item 4), each in a fresh process.

    python benchmarks/startup.py [--quick] [--json OUT]

Run with the project's Python (the one lmermagic is installed in). Measures:
- ``import lmermagic`` inside the process (alone, and with pandas already imported
  as in any notebook that has data), and the whole ``python -c "import
  lmermagic"`` process against ``python -c pass``;
- ``%load_ext lmermagic`` in an IPython shell (the shell's own creation not timed);
- the first fit after import (sleepstudy, default Satterthwaite, coefficient table
  in hand): it starts R and loads lme4/lmerTest; then a second fit for comparison;
- R's own: ``Rscript -e 'library(lmerTest)'`` as a whole process, against
  ``Rscript -e 'invisible(0)'``, and inside R, ``library(lmerTest)`` plus the first
  lmerTest fit + summary.
Prints a table; writes JSON rows for bench.py. Never fails on slowness.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from models import MODELS, csv_path  # noqa: E402

PY = sys.executable
SLEEP = MODELS["sleepstudy"]


def fresh(cmd: list[str]) -> tuple[float, str]:
    """Run cmd in a fresh process; return (wall seconds, stdout)."""
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE, timeout=600)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {(r.stderr or r.stdout).strip()[-400:]}")
    return wall, r.stdout


def inner(code: str) -> float:
    """Run Python code in a fresh process; it prints one float (seconds) last."""
    _, out = fresh([PY, "-c", code])
    return float(out.strip().splitlines()[-1])


CODE_IMPORT = ("import time; t = time.perf_counter(); import lmermagic; "
               "print(time.perf_counter() - t)")
CODE_IMPORT_PD = ("import pandas, numpy, time; t = time.perf_counter(); import lmermagic; "
                  "print(time.perf_counter() - t)")
CODE_LOAD_EXT = (
    "{pre}from IPython.core.interactiveshell import InteractiveShell\n"
    "sh = InteractiveShell.instance()\n"
    "import time; t = time.perf_counter()\n"
    "sh.run_line_magic('load_ext', 'lmermagic')\n"
    "print(time.perf_counter() - t)\n"
)
CODE_FIRST_FIT = (
    "import sys, time; sys.path.insert(0, {here!r})\n"
    "from models import load\n"
    "df = load('sleepstudy')\n"
    "t = time.perf_counter()\n"
    "import lmermagic\n"
    "t1 = time.perf_counter()\n"
    "m = lmermagic.lmer({formula!r}, df); m.coefs\n"
    "lmermagic.clear_cache()  # the second fit fits, not the cache\n"
    "t2 = time.perf_counter()\n"
    "m = lmermagic.lmer({formula!r}, df); m.coefs\n"
    "t3 = time.perf_counter()\n"
    "print(t1 - t, t2 - t1, t3 - t2)\n"
)
CODE_WHOLE = (
    "import sys; sys.path.insert(0, {here!r})\n"
    "from models import load\n"
    "df = load('sleepstudy')\n"
    "import lmermagic\n"
    "m = lmermagic.lmer({formula!r}, df); m.coefs\n"
)
R_INNER = (
    "t0 <- Sys.time(); suppressPackageStartupMessages(library(lmerTest)); "
    "t1 <- Sys.time(); d <- read.csv({csv!r}, colClasses = c(Subject = 'factor')); "
    "t2 <- Sys.time(); m <- lmer({formula}, data = d); co <- summary(m)$coefficients; "
    "vc <- as.data.frame(VarCorr(m)); t3 <- Sys.time(); "
    "cat(as.numeric(t1 - t0, units = 'secs'), as.numeric(t3 - t2, units = 'secs'), '\\n')"
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    n = 3 if args.quick else 5
    rows: list[dict] = []
    notes: list[str] = []

    def add(what: str, values: list[float]) -> float | None:
        med = statistics.median(values) if values else None
        rows.append({"what": what, "median": med, "n": len(values), "values": values})
        shown = "–" if med is None else f"{med * 1000:.0f} ms"
        print(f"{what:72s} {shown:>10s}  (n={len(values)})", flush=True)
        return med

    errors: list[str] = []

    def attempt(fn):
        try:
            return fn()
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}")
            return None

    # Python side
    imp = [v for v in (attempt(lambda: inner(CODE_IMPORT)) for _ in range(n)) if v is not None]
    add("`import lmermagic` (inside the process)", imp)
    imp = [v for v in (attempt(lambda: inner(CODE_IMPORT_PD)) for _ in range(n)) if v is not None]
    add("`import lmermagic` with pandas + numpy already imported (as in a notebook)", imp)
    base = [fresh([PY, "-c", "pass"])[0] for _ in range(n)]
    proc = [v for v in (attempt(lambda: fresh([PY, "-c", "import lmermagic"])[0])
                        for _ in range(n)) if v is not None]
    b = add("`python -c pass` (interpreter alone, whole process)", base)
    p = add("`python -c 'import lmermagic'` (whole process)", proc)
    if b is not None and p is not None:
        notes.append(f"import lmermagic adds {(p - b) * 1000:.0f} ms to a bare interpreter.")
    for pre, what in (("", ""), ("import pandas, numpy\n", ", pandas + numpy already imported")):
        code = CODE_LOAD_EXT.format(pre=pre)
        le = [v for v in (attempt(lambda c=code: inner(c)) for _ in range(n)) if v is not None]
        add(f"`%load_ext lmermagic` in an IPython shell (fresh process{what})", le)
    ff_code = CODE_FIRST_FIT.format(here=HERE, formula=SLEEP["formula"])
    ff = []
    for _ in range(3):
        r = attempt(lambda: fresh([PY, "-c", ff_code])[1])
        if r:
            ff.append([float(x) for x in r.strip().splitlines()[-1].split()])
    add("lmermagic: first fit after import (sleepstudy; starts R, loads lme4/lmerTest)",
        [x[1] for x in ff])
    add("lmermagic: second fit (sleepstudy, same process)", [x[2] for x in ff])

    # R side
    rb = [v for v in (attempt(lambda: fresh(["Rscript", "-e", "invisible(0)"])[0])
                      for _ in range(n)) if v is not None]
    rl = [v for v in (attempt(lambda: fresh(["Rscript", "-e", "library(lmerTest)"])[0])
                      for _ in range(n)) if v is not None]
    add("`Rscript -e 'invisible(0)'` (R start alone, whole process)", rb)
    lib = add("`Rscript -e 'library(lmerTest)'` (whole process)", rl)
    r_code = R_INNER.format(csv=csv_path("sleepstudy"), formula=SLEEP["formula"])
    ri = []
    for _ in range(3):
        r = attempt(lambda: fresh(["Rscript", "-e", r_code]))
        if r:
            ri.append([float(x) for x in r[1].strip().splitlines()[-1].split()] + [r[0]])
    add("R: `library(lmerTest)` inside R", [x[0] for x in ri])
    add("R: first lmerTest fit + summary + VarCorr after library() (sleepstudy)",
        [x[1] for x in ri])
    # Whole processes, each reading the CSV and fitting once with p-values.
    whole = CODE_WHOLE.format(here=HERE, formula=SLEEP["formula"])
    py_whole = add("whole process: python, pandas reads the CSV, `import lmermagic`, first "
                   "fit with Satterthwaite p-values (sleepstudy)",
                   [v for v in (attempt(lambda: fresh([PY, "-c", whole])[0])
                                for _ in range(n)) if v is not None])
    r_whole = add("whole process: `Rscript`, `library(lmerTest)`, read.csv, lmer + "
                  "summary() + VarCorr (sleepstudy)", [x[2] for x in ri])
    if py_whole is not None and r_whole is not None:
        notes.append(f"first result, whole process: lmermagic {py_whole * 1000:.0f} ms, "
                     f"Rscript {r_whole * 1000:.0f} ms ({py_whole / r_whole:.2f}x).")
    first = statistics.median([x[1] for x in ff]) if ff else None
    if first is not None and lib is not None:
        notes.append(
            f"first fit in lmermagic ({first * 1000:.0f} ms, R start included) vs R's "
            f"`Rscript -e 'library(lmerTest)'` ({lib * 1000:.0f} ms): "
            f"{(first - lib) * 1000:+.0f} ms.")
    notes.extend(f"error: {e}" for e in errors[:5])
    emit(rows, notes, args.json)
    return 0


def emit(rows: list[dict], notes: list[str], path: str | None) -> None:
    """Print the notes; write the rows and notes as JSON for bench.py."""
    for note in notes:
        print(note)
    if path:
        with open(path, "w") as fh:
            json.dump({"rows": rows, "notes": notes}, fh, indent=1)


if __name__ == "__main__":
    sys.exit(main())
