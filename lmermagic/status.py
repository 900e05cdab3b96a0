"""A live status line for long fits: elapsed time, optimizer evaluations and the
current deviance, shown once a fit has run for about a second and replaced when
it ends.

R reports its progress through the bridge's :func:`~lmermagic.rbridge.watching`:
the optimizer's own printout (lme4's ``verbose = 1``) and R's event ticks, both
in the thread that called R. Nothing is shown, and nothing but a clock read per
tick is spent, for fits shorter than ``delay``. In Jupyter the line is one
display that is updated; in a terminal one line rewritten with ``\\r``.

The counting progress of many tasks (:func:`lmermagic.tally.progress`: the
bootstrap, many models) is drawn by the same displays: :func:`progress_display`
is the factory ``lmermagic/__init__.py`` installs there (the fit machinery may
not import this module).
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
from .tally import Redraw

__all__ = ["LiveStatus", "Progress", "live_status", "progress_display"]

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
        self._redraw = Redraw(show, delay, interval, clock)

    @property
    def updates(self) -> int:
        """How many times the line was drawn."""
        return self._redraw.updates

    # -- the bridge's Watcher protocol: called from R's callbacks, never raise --

    def consume(self, text: str) -> bool:
        try:
            return self.progress.consume(text)
        except Exception:  # a status line must never break a fit
            return False

    def tick(self) -> None:
        self._redraw(self.line)  # drawn if due; never raises

    def line(self, elapsed: float) -> str:
        parts = [f"{self.what}: {elapsed:.1f} s"]
        if self.progress.evals:
            parts.append(f"{self.progress.evals} evaluations")
        if not math.isnan(self.progress.deviance):
            parts.append(f"deviance {self.progress.deviance:.4f}")
        return " · ".join(parts)

    def close(self) -> None:
        self._redraw.close()


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


def _progress_wanted(shell: Any) -> bool:
    """``%config LmerMagics.progress``: the magics' setting once the extension is
    loaded, else what the shell's configuration says (default: on)."""
    magics = getattr(getattr(shell, "magics_manager", None), "registry", {}).get("LmerMagics")
    if magics is not None:
        return bool(magics.progress)
    section = getattr(shell, "config", {}).get("LmerMagics", {})
    return bool(section.get("progress", True))


def progress_display() -> Callable[[str | None], None] | None:
    """The display of a counting progress line (:mod:`lmermagic.tally`): in a
    Jupyter kernel one updated output, in a terminal IPython one line on
    stdout, as the fit status; None when ``%config LmerMagics.progress`` is
    False. Outside IPython one line on stderr when stderr is a terminal, else
    none (a log file would keep every redraw)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        isatty = getattr(sys.stderr, "isatty", None)
        return terminal_line(sys.stderr) if isatty is not None and isatty() else None
    if not _progress_wanted(shell):
        return None
    return jupyter_display() if getattr(shell, "kernel", None) is not None else terminal_line()
