"""A live status line for long fits: elapsed time, optimizer evaluations and the
current deviance, shown once a fit has run for about a second and replaced when
it ends.

R reports its progress through the bridge's :func:`~lmermagic.rbridge.watching`:
the optimizer's own printout (lme4's ``verbose = 1``) and R's event ticks, both
in the thread that called R. Nothing is shown, and nothing but a clock read per
tick is spent, for fits shorter than ``delay``. In Jupyter the line is one
display that is updated; in a terminal one line rewritten with ``\\r``.
"""

from __future__ import annotations

import html
import math
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .rbridge import watching

__all__ = ["LiveStatus", "Progress", "live_status"]

_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
# The printouts of lme4's optimizers with verbose = 1: nloptwrap (nloptr's
# print_level 1), minqa's bobyqa, lme4's Nelder_Mead. R prints a line in
# several chunks; a line that starts with one of these is the optimizer's.
_PREFIXES = ("iteration:", "f(x) =", "(NM)", "start par.", "At return", "eval:")
_PATTERNS = [
    (re.compile(r"^iteration:\s*(\d+)"), "evals"),
    (re.compile(r"^f\(x\) = " + _NUMBER), "deviance"),
    (re.compile(r"^\(NM\)\s*(\d+):\s*f = " + _NUMBER), "both"),
    (re.compile(r"^eval:\s+(\d+)\s+fn:\s+" + _NUMBER), "both"),
    (re.compile(r"^start par\. = .* fn = " + _NUMBER), "deviance"),
]


class Progress:
    """What the optimizer printed so far: evaluations (summed over its
    stages) and the last deviance."""

    def __init__(self) -> None:
        self.evals = 0
        self.deviance = math.nan
        self._base = 0
        self._last = 0
        self._source: Any = None
        self._line = ""

    def _count(self, n: int, source: Any) -> None:
        # a new optimizer stage (glmer: bobyqa, then Nelder_Mead) counts from 1 again
        if n < self._last or source is not self._source:
            self._base += self._last
        self._last, self._source = n, source
        self.evals = self._base + n

    def consume(self, text: str) -> bool:
        """Read one chunk of R's console output; True if it is the optimizer's."""
        line = self._line + text
        if not line.lstrip().startswith(_PREFIXES):
            self._line = ""
            return False
        *done, self._line = line.split("\n")
        for ln in done:
            self._parse(ln.strip())
        return True

    def _parse(self, line: str) -> None:
        for pattern, kind in _PATTERNS:
            m = pattern.search(line)
            if m is None:
                continue
            if kind == "evals":
                self._count(int(m.group(1)), pattern)
            elif kind == "deviance":
                self.deviance = float(m.group(1))
            else:
                self._count(int(m.group(1)), pattern)
                self.deviance = float(m.group(2))
            return


class LiveStatus:
    """Follows an R computation and shows one updating status line.

    Parameters
    ----------
    what : str
        What is computed, e.g. ``"fitting y ~ x + (1 | g)"``.
    show : callable
        ``show(line)`` draws the line, ``show(None)`` removes it.
    delay, interval : float
        Seconds before the line first appears, and between updates.
    clock : callable
        The time source (tests use a fake one).
    """

    def __init__(self, what: str, show: Callable[[str | None], None], delay: float = 1.0,
                 interval: float = 0.25, clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.progress = Progress()
        self.updates = 0
        self._show = show
        self._delay = delay
        self._interval = interval
        self._clock = clock
        self._start = clock()
        self._next = self._start + delay
        self._shown = False

    # -- the bridge's Watcher protocol: called from R's callbacks, never raise --

    def consume(self, text: str) -> bool:
        try:
            return self.progress.consume(text)
        except Exception:  # a status line must never break a fit
            return False

    def tick(self) -> None:
        now = self._clock()
        if now < self._next:
            return
        self._next = now + self._interval
        try:
            self._show(self.line(now - self._start))
            self._shown = True
            self.updates += 1
        except Exception:  # a status line must never break a fit
            pass

    def line(self, elapsed: float) -> str:
        parts = [f"{self.what}: {elapsed:.1f} s"]
        if self.progress.evals:
            parts.append(f"{self.progress.evals} evaluations")
        if not math.isnan(self.progress.deviance):
            parts.append(f"deviance {self.progress.deviance:.4f}")
        return " · ".join(parts)

    def close(self) -> None:
        if self._shown:
            try:
                self._show(None)
            except Exception:
                pass


def jupyter_display() -> Callable[[str | None], None]:
    """One output of the running cell, updated in place (IPython's display ids)."""
    from IPython.display import display

    handle: list[Any] = []

    def show(line: str | None) -> None:
        text = "" if line is None else line
        bundle = {"text/plain": text,
                  "text/html": "" if line is None else
                  f"<pre class='lmermagic-status' style='margin:0'>{html.escape(text)}</pre>"}
        if not handle:
            handle.append(display(bundle, raw=True, display_id=True))
        else:
            handle[0].update(bundle, raw=True)

    return show


def terminal_line(stream: Any = None) -> Callable[[str | None], None]:
    """One terminal line, rewritten with a carriage return."""
    width = [0]

    def show(line: str | None) -> None:
        out = stream if stream is not None else sys.stdout
        text = "" if line is None else line
        out.write("\r" + text.ljust(width[0]) + ("\r" if line is None else ""))
        out.flush()
        width[0] = max(width[0], len(text))

    return show


@contextmanager
def live_status(what: str, shell: Any = None, enabled: bool = True,
                **kwargs: Any) -> Iterator[LiveStatus | None]:
    """Show a :class:`LiveStatus` for the R calls inside the block: as a Jupyter
    display when ``shell`` is a kernel's shell, else as a terminal line
    (``enabled=False``: nothing, and fits print nothing for it)."""
    if not enabled:
        yield None
        return
    show = jupyter_display() if getattr(shell, "kernel", None) is not None else terminal_line()
    status = LiveStatus(what, show, **kwargs)
    try:
        with watching(status):
            yield status
    finally:
        status.close()
