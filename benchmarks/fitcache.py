"""The fit cache after a kernel restart (issue 13, item 2).

    python benchmarks/fitcache.py [--model InstEval] [--rounds 2] [--json OUT]

Round by round, with an empty cache directory: one fresh process, as after a
kernel restart, runs the model's cell (``lmermagic.lmer(..., cache_dir=DIR)``):
a fit, stored on disk. A second fresh process runs the same cell: the fit comes
back from the disk. Both time the whole cell (``import lmermagic`` and R's start
included); a third process times the restore alone (R started before). Reported
as ratios to the cell that fits. Prints a table; writes JSON rows for bench.py.
Never fails because something is slow.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from models import MODELS  # noqa: E402
from startup import emit  # noqa: E402

PY = sys.executable

CELL = """
import json, sys, time
sys.path.insert(0, {here!r})
from models import MODELS, load
spec = MODELS[{name!r}]
df = load({name!r})
t0 = time.perf_counter()
import lmermagic
from lmermagic.rbridge import get_r
{warm}
t1 = time.perf_counter()
m = lmermagic.lmer(spec["formula"], df, cache_dir={cache!r})
m.coefs
t2 = time.perf_counter()
print(json.dumps({{"source": m.meta["cache"], "start": t1 - t0, "call": t2 - t1,
                  "fit": m.meta.get("r_fit_seconds"), "size": sum(
                      os.path.getsize(os.path.join({cache!r}, f))
                      for f in os.listdir({cache!r}))}}))
"""


def cell(name: str, cache: str, warm: bool) -> dict:
    code = "import os\n" + CELL.format(here=HERE, name=name, cache=cache,
                                       warm="get_r()" if warm else "")
    proc = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=3600,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip()[-600:])
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="InstEval", choices=sorted(MODELS))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="one round")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    fits, cells, restores, sizes, errors = [], [], [], [], []
    for _ in range(rounds):
        cache = tempfile.mkdtemp(prefix="lmermagic-fitcache-")
        try:
            first = cell(args.model, cache, warm=False)  # after a restart, no entry yet
            assert first["source"] == "miss", first
            fits.append(first["start"] + first["call"])
            sizes.append(first["size"])
            again = cell(args.model, cache, warm=False)  # a restart: the whole cell
            assert again["source"] == "disk", again
            cells.append(again["start"] + again["call"])
            alone = cell(args.model, cache, warm=True)  # R started first: the restore
            assert alone["source"] == "disk", alone
            restores.append(alone["call"])
        except Exception as exc:  # a benchmark records what went wrong, never fails
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    rows = []
    fit = statistics.median(fits) if fits else None
    label = MODELS[args.model].get("label", args.model)
    for what, values in (((f"{label}: the cell after a restart, fitted (import, R start, "
                          "fit)"), fits),
                         ((f"{label}: the cell again after a restart (import, R start, "
                          "restore from disk)"), cells),
                         (f"{label}: the restore from disk alone (R started before)",
                          restores)):
        med = statistics.median(values) if values else None
        ratio = med / fit if med is not None and fit else None
        rows.append({"what": what, "median": med, "n": len(values), "values": values,
                     "ratio_to_fit": ratio})
        shown = "-" if med is None else f"{med:8.2f} s"
        share = "" if ratio is None else f"  {ratio * 100:5.1f} % of the fit"
        print(f"{what:96s} {shown}{share}", flush=True)
    notes = []
    if sizes:
        notes.append(f"disk entry: {statistics.median(sizes) / 1e6:.1f} MB "
                     "(the packed tables, R's serialize() of the fit and its data, the "
                     "header)")
    notes.extend(f"error: {e}" for e in errors[:3])
    emit(rows, notes, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
