"""The progress of many tasks (bootstrap refits, many models): tasks done,
failed, elapsed time and an estimate of the time left, shown as one line that
is updated a few times a second and removed at the end.

What shows the line is not decided here. The entry layer installs a display
factory with :func:`set_display` (``lmermagic/__init__.py`` does on import:
:func:`lmermagic.status.progress_display`, the same Jupyter output or terminal
line as the live status of long fits). :func:`progress` asks it for a display
each time a job starts; with no factory, or when it returns None, nothing is
shown. Nothing is drawn before ``delay`` seconds, so a short job pays a clock
read per update.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["DELAY", "INTERVAL", "Redraw", "Show", "Tally", "progress", "set_display"]

#: ``show(line)`` draws the line, ``show(None)`` removes it.
Show = Callable[[str | None], None]

# Seconds before the line first appears, and at least between two redraws.
DELAY = 1.0
INTERVAL = 0.25

_factory: list[Callable[[], Show | None]] = []


def set_display(factory: Callable[[], Show | None] | None) -> Callable[[], Show | None] | None:
    """Install the display factory :func:`progress` asks for a display (None:
    no display); returns the factory it replaces."""
    previous = _factory[0] if _factory else None
    _factory.clear()
    if factory is not None:
        _factory.append(factory)
    return previous


def _plural(unit: str, n: int) -> str:
    return unit if n == 1 else unit + "s"


def _seconds(s: float, digits: int = 1) -> str:
    if s < 60:
        return f"{s:.{digits}f} s"
    return f"{int(s // 60)} min {int(s % 60):02d} s"


class Redraw:
    """One line drawn through ``show`` once ``delay`` seconds have passed, then
    at most every ``interval`` seconds, and removed by :meth:`close` if it was
    drawn. A failing ``show`` is ignored: a progress line must never break the
    work it reports. Shared by :class:`Tally` and the fit status
    (:class:`lmermagic.status.LiveStatus`)."""

    def __init__(self, show: Show, delay: float, interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.updates = 0
        self._show = show
        self._interval = interval
        self._clock = clock
        self._start = clock()
        self._next = self._start + delay
        self._shown = False

    def __call__(self, line: Callable[[float], str]) -> None:
        """Draw ``line(elapsed seconds)`` if it is due."""
        now = self._clock()
        if now < self._next:
            return
        self._next = now + self._interval
        try:
            self._show(line(now - self._start))
            self._shown = True
            self.updates += 1
        except Exception:
            pass

    def close(self) -> None:
        if self._shown:
            self._shown = False
            try:
                self._show(None)
            except Exception:
                pass


class Tally:
    """Counts finished tasks and shows them through ``show``.

    Parameters
    ----------
    total : int
        How many tasks the job has.
    desc : str
        What runs, the line's first word: ``"bootstrap"``, ``"lmer_many"``.
    unit : str
        One task's name, in the singular: ``"fit"``, ``"model"``.
    show : callable or None
        ``show(line)`` draws, ``show(None)`` removes; None counts only.
    delay, interval : float
        Seconds before the line first appears, and at least between redraws.
    clock : callable
        The time source (tests pass a fake one).
    """

    def __init__(self, total: int, desc: str, unit: str = "fit", show: Show | None = None,
                 delay: float | None = None, interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.done = 0
        self.failed = 0
        self._redraw = None if show is None else Redraw(
            show, DELAY if delay is None else delay,
            INTERVAL if interval is None else interval, clock)

    @property
    def updates(self) -> int:
        """How many times the line was drawn."""
        return 0 if self._redraw is None else self._redraw.updates

    def update(self, n: int = 1, failed: int = 0) -> None:
        """``n`` more tasks finished, ``failed`` of them without a result."""
        self.done += n
        self.failed += failed
        self.refresh()

    def refresh(self) -> None:
        """Redraw the line if it is due (the elapsed time moves on)."""
        if self._redraw is not None:
            self._redraw(self.line)

    def line(self, elapsed: float) -> str:
        """``bootstrap: 340/1000 fits · 2 failed · 12.3 s elapsed · ~24 s left``"""
        parts = [f"{self.desc}: {self.done}/{self.total} {_plural(self.unit, self.total)}"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        parts.append(f"{_seconds(elapsed)} elapsed")
        if 0 < self.done < self.total:
            # an estimate: to the second
            left = elapsed / self.done * (self.total - self.done)
            parts.append(f"~{_seconds(left, digits=0)} left")
        return " · ".join(parts)

    def close(self) -> None:
        """Remove the line, if it was shown."""
        if self._redraw is not None:
            self._redraw.close()


@contextmanager
def progress(total: int, desc: str, unit: str = "fit", *,
             enabled: bool = True) -> Iterator[Tally]:
    """A :class:`Tally` for the block, shown through the installed display
    (``enabled=False``: counted, never shown) and removed when the block ends,
    however it ends::

        with progress(len(tasks), "lmer_many", unit="model") as bar:
            bar.update(1)            # one more done
            bar.update(1, failed=1)  # one more done, and it failed
    """
    show: Show | None = None
    if enabled and _factory:
        try:
            show = _factory[0]()
        except Exception:  # no display is better than no result
            show = None
    bar = Tally(total, desc, unit, show)
    try:
        yield bar
    finally:
        bar.close()
