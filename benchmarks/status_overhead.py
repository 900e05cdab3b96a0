"""What the live status costs a short fit: sleepstudy, with and without it.

    python benchmarks/status_overhead.py [--reps N] [--out PATH]

Fits ``Reaction ~ Days + (Days | Subject)`` (lmerTest df) alternately with the
status watching the fit (as the magic does with ``LmerMagics.progress = True``:
the optimizer's printout parsed, a clock read per R event tick) and without it,
in one process after a warm-up, and writes the medians to benchmarks/STATUS.md.
A fit this short never shows the line (it appears after one second).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time

import lmermagic
from lmermagic.status import LiveStatus, terminal_line
from lmermagic.rbridge import watching

HERE = os.path.dirname(os.path.abspath(__file__))
FORMULA = "Reaction ~ Days + (Days | Subject)"


class _Counting(LiveStatus):
    """The status as the magic uses it, counting R's event ticks."""

    ticks = 0

    def tick(self) -> None:
        self.ticks += 1
        super().tick()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--out", default=os.path.join(HERE, "STATUS.md"))
    args = ap.parse_args()
    sleep = lmermagic.datasets.load("sleepstudy")
    for _ in range(5):
        lmermagic.lmer(FORMULA, sleep)
    times: dict[str, list[float]] = {"off": [], "on": []}
    ticks = []
    for _ in range(args.reps):
        t = time.perf_counter()
        lmermagic.lmer(FORMULA, sleep)
        times["off"].append(time.perf_counter() - t)
        status = _Counting("fitting", terminal_line(io.StringIO()))
        t = time.perf_counter()
        with watching(status):
            lmermagic.lmer(FORMULA, sleep)
        times["on"].append(time.perf_counter() - t)
        assert status.updates == 0
        ticks.append(status.ticks)
    off, on = (statistics.median(times[k]) * 1000 for k in ("off", "on"))
    q = {k: statistics.quantiles([x * 1000 for x in v], n=4) for k, v in times.items()}
    text = f"""# Live status: what a short fit pays

`python benchmarks/status_overhead.py --reps {args.reps}`: sleepstudy
`{FORMULA}` with lmerTest df, {args.reps} fits each way, alternating, one process.

| | median ms | quartiles ms |
|---|---|---|
| status off | {off:.2f} | {q['off'][0]:.2f} – {q['off'][2]:.2f} |
| status on (not shown: fit < 1 s) | {on:.2f} | {q['on'][0]:.2f} – {q['on'][2]:.2f} |
| difference | {on - off:+.2f} ({(on - off) / off * 100:+.1f} %) | |

R event ticks per fit (each one clock read): median {statistics.median(ticks):.0f}.
"""
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write(text)
    print(text)


if __name__ == "__main__":
    main()
