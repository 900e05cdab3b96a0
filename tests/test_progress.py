"""The counting progress line of many tasks (lmermagic.tally, workers.progress):
its text, throttling and failed count without R; the display hook status.py
installs; the bootstrap's line in a real Jupyter kernel, with one and two
workers, and Ctrl-C during the bootstrap."""

from __future__ import annotations

import operator
import subprocess
import sys

import pytest

import lmermagic
from conftest import task_processes
from lmermagic import status, tally, workers
from test_interrupt import (
    _displays,
    _execute,
    _execute_after_error,
    _interrupt_after,
    _kernel,
    _value,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("total,done,failed,elapsed,unit,text", [
    (1000, 340, 2, 12.34, "fit",
     "bootstrap: 340/1000 fits · 2 failed · 12.3 s elapsed · ~24 s left"),
    (1000, 0, 0, 1.0, "fit", "bootstrap: 0/1000 fits · 1.0 s elapsed"),
    (50, 50, 0, 3.0, "model", "bootstrap: 50/50 models · 3.0 s elapsed"),
    (1, 0, 0, 1.5, "model", "bootstrap: 0/1 model · 1.5 s elapsed"),
    (400, 100, 0, 75.0, "fit",
     "bootstrap: 100/400 fits · 1 min 15 s elapsed · ~3 min 45 s left"),
])
def test_line_text(total, done, failed, elapsed, unit, text):
    bar = tally.Tally(total, "bootstrap", unit)
    bar.update(done, failed=failed)
    assert bar.line(elapsed) == text


def test_nothing_before_the_delay_then_a_few_redraws_a_second_then_removed():
    clock, shown = Clock(), []
    bar = tally.Tally(1000, "bootstrap", "fit", shown.append, delay=1.0, interval=0.25,
                      clock=clock)
    for i in range(1, 91):  # fast tasks: 100 a second for 0.9 s
        clock.now = i / 100
        bar.update(1)
    assert shown == []  # a short job shows nothing
    for i in range(91, 201):  # 1.1 s more: redrawn at 1.0, 1.25, 1.5, 1.75, 2.0, not per task
        clock.now = i / 100
        bar.update(1, failed=1 if i % 50 == 0 else 0)
    assert len(shown) == 5 and bar.updates == 5
    assert shown[0] == "bootstrap: 100/1000 fits · 1 failed · 1.0 s elapsed · ~9 s left"
    assert shown[-1].startswith("bootstrap: 200/1000 fits · 3 failed · 2.0 s elapsed")
    assert (bar.done, bar.failed) == (200, 3)
    clock.now = 2.05
    bar.refresh()  # not due yet
    clock.now = 2.3
    bar.refresh()  # the clock moves on without a finished task
    assert shown[-1].startswith("bootstrap: 200/1000 fits · 3 failed · 2.3 s elapsed")
    bar.close()
    assert shown[-1] is None and len(shown) == 7
    bar.close()  # removed once
    assert len(shown) == 7


def test_a_short_job_is_never_drawn_nor_removed():
    shown: list[str | None] = []
    bar = tally.Tally(3, "lmer_many", "model", shown.append)
    bar.update(3)
    bar.close()
    assert shown == []


@pytest.fixture
def display():
    """A fake display sink, installed as the factory; everything drawn at once."""
    shown: list[str | None] = []
    asked = []
    previous = tally.set_display(lambda: (asked.append(1), shown.append)[1])
    delay, interval = tally.DELAY, tally.INTERVAL
    tally.DELAY, tally.INTERVAL = 0.0, 0.0
    yield shown, asked
    tally.DELAY, tally.INTERVAL = delay, interval
    tally.set_display(previous)


def test_progress_draws_through_the_installed_display_and_clears_on_error(display):
    shown, asked = display
    with pytest.raises(ZeroDivisionError), workers.progress(4, "lmer_many",
                                                            unit="model") as bar:
        bar.update(1)
        bar.update(1, failed=1)
        raise ZeroDivisionError
    assert shown[0].startswith("lmer_many: 1/4 models · ")
    assert shown[1].startswith("lmer_many: 2/4 models · 1 failed · ")
    assert shown[-1] is None and len(asked) == 1


def test_disabled_or_no_display_counts_and_shows_nothing(display):
    shown, asked = display
    with workers.progress(4, "bootstrap", enabled=False) as bar:
        bar.update(4, failed=2)
    assert (bar.done, bar.failed) == (4, 2)
    assert shown == [] and asked == []
    tally.set_display(lambda: None)  # the display factory says no (e.g. %config)
    with workers.progress(4, "bootstrap") as bar:
        bar.update(4)
    tally.set_display(lambda: 1 / 0)  # a broken display never breaks the job
    with workers.progress(4, "bootstrap") as bar:
        bar.update(4)
    assert bar.done == 4 and shown == []


def test_worker_processes_tick_the_clock():
    ticks = []
    workers.run_tasks(operator.pow, list(range(4)), lambda t, r: None, setup=int, payload="2",
                      workers=2, idle=lambda: ticks.append(1))
    assert ticks and task_processes() == []


def test_importing_lmermagic_installs_the_status_display():
    # bytes, decoded here: text mode would read each "\r" as a new line
    code = ("import lmermagic.workers as w, lmermagic.tally as t, lmermagic.status as s; "
            "f = t.set_display(None); print(f is not None, f(), s.progress_display())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["True", "None", "None"]  # no IPython, stderr no terminal: nothing


def test_status_display_follows_the_config(shell):
    assert lmermagic._progress_display is tally.set_display(lmermagic._progress_display)
    try:
        assert callable(status.progress_display())  # a terminal shell: one stdout line
        shell.run_cell("%config LmerMagics.progress = False")
        assert status.progress_display() is None
    finally:
        shell.run_cell("%config LmerMagics.progress = True")


@pytest.mark.filterwarnings("ignore:bootstrap confidence intervals:lmermagic.LmerWarning")
def test_bootstrap_reports_refits_through_the_display(display, sleepstudy):
    shown, asked = display
    m = lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy)
    a = m.confint(method="boot", nsim=30, seed=4)
    assert shown[0].startswith("bootstrap: ") and "/30 fits" in shown[0]
    assert shown[-2].startswith("bootstrap: 30/30 fits · ") and shown[-1] is None
    shown.clear()
    b = m.confint(method="boot", nsim=30, seed=4, progress=False)
    assert shown == [] and len(asked) == 1
    assert a.equals(b)


def test_terminal_ipython_shows_one_line_rewritten_then_cleared():
    # bytes, decoded here: text mode would read each "\r" as a new line
    code = ("import lmermagic, warnings; warnings.simplefilter('ignore')\n"
            "m = lmermagic.lmer('Reaction ~ Days + (Days | Subject)', "
            "lmermagic.datasets.load('sleepstudy'))\n"
            "ci = m.confint(method='boot', nsim=250, seed=1)\n"
            "print('DONE', len(ci))\n")
    out = subprocess.run([sys.executable, "-m", "IPython", "--no-banner", "--colors=nocolor",
                          "-c", code], capture_output=True, check=True).stdout.decode()
    line, done = out.rsplit("DONE", 1)
    assert done.strip() == "6" and "\n" not in line
    first, *drawn, blank, end = line.split("\r")
    assert len(drawn) >= 2 and all(d.startswith("bootstrap: ") for d in drawn)
    assert "/250 fits · " in drawn[0]
    assert first == end == "" and blank.strip() == ""  # the line is blanked at the end


# -- a real kernel --------------------------------------------------------------

BOOT_SETUP = """
import multiprocessing, lmermagic
%load_ext lmermagic
sleep = lmermagic.datasets.load("sleepstudy")
m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
"""


def _done(text):
    return int(text.split(": ", 1)[1].split("/", 1)[0])


@pytest.mark.parametrize("n_workers", [1, 2])
def test_kernel_shows_the_bootstrap_line_and_interrupt_stops_it(n_workers):
    km, kc = _kernel()
    try:
        assert _execute(kc, BOOT_SETUP)["status"] == "ok"
        # long enough (> 1.5 s) for the line to appear and be updated
        msg_id = kc.execute(f"ci = m.confint(method='boot', nsim=400, seed=1, "
                            f"workers={n_workers})")
        msgs = _displays(kc, msg_id, 180)
        first, *updates, last = msgs
        assert first[1] == "display_data" and first[3].startswith("bootstrap: ")
        assert "/400 fits · " in first[3] and " s elapsed" in first[3]
        assert len(updates) >= 2
        assert {kind for _, kind, _, _ in [*updates, last]} == {"update_display_data"}
        assert {did for _, _, did, _ in msgs} == {first[2]} and first[2]
        counts = [_done(t) for *_, t in [first, *updates]]
        assert counts == sorted(counts) and counts[-1] > counts[0]
        assert updates[-1][0] - first[0] > 0.4  # they arrived while it ran
        assert last[3] == ""  # the line is removed at the end
        assert _value(kc, "(len(ci), ci.attrs['nsim'])") == "(6, 400)"

        # off for the session
        assert _execute(kc, "%config LmerMagics.progress = False")["status"] == "ok"
        msg_id = kc.execute("ci = m.confint(method='boot', nsim=200, seed=1)")
        assert _displays(kc, msg_id, 180) == []
        assert _execute(kc, "%config LmerMagics.progress = True")["status"] == "ok"

        # Ctrl-C in the middle: stopped, no worker left, the kernel fits again
        msg_id = kc.execute(f"ci2 = m.confint(method='boot', nsim=20000, seed=2, "
                            f"workers={n_workers})", stop_on_error=False)
        # ... once refits are done (with workers: once they have started R)
        msgs = _displays(kc, msg_id, 180, stop=lambda ms: len(ms) >= 2 and _done(ms[-1][3]))
        assert msgs[0][3].startswith("bootstrap: ") and 0 < _done(msgs[-1][3]) < 20000
        reply, latency = _interrupt_after(km, kc, msg_id, 0)
        assert reply["content"]["ename"] == "KeyboardInterrupt", reply["content"]
        assert latency < 5, latency  # the worker processes are ended, not waited for
        assert km.is_alive()
        assert _value(kc, "([p for p in multiprocessing.active_children() "
                          "if p.name != 'lmermagic-worker'], 'ci2' in dir())") == "([], False)"
        ok = _execute_after_error(kc, "ci3 = m.confint(method='boot', nsim=20, seed=3)")
        assert ok["status"] == "ok", ok
        assert _value(kc, "len(ci3)") == "6"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
