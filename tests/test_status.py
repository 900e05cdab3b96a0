"""The live status line of long fits: the optimizer's printout parsed, the line
shown after a delay and removed at the end, in a real Jupyter kernel (updates
arrive while the fit runs; Ctrl-C still stops it) and in a terminal."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest

import lmermagic
from lmermagic import rbridge
from lmermagic.status import LiveStatus, Progress, terminal_line
from test_interrupt import (
    LONG_FIT_SETUP,
    LONG_FORMULA,
    _displays,
    _execute,
    _execute_after_error,
    _interrupt_after,
    _kernel,
)

NLOPT = ["iteration: 1\n", "\tf(x) = 1773.680331\n", "iteration: 2\n", "\tf(x) = 1778.358182\n"]
# glmer: bobyqa, then lme4's Nelder_Mead, in the chunks R prints them in
GLMER = ["start par. = ", " ", "1", " ", "fn = ", " ", "186.7231", " ", "\n", "At return\n",
         "eval:  18 fn:      184.10869 par:", " 0.641839", "\n", "(NM) ", "20", ": ", "f = ",
         "184.085", " at ", "", "  0.65586", " ", " -1.42312", "\n"]


@pytest.mark.parametrize("chunks,evals,deviance", [
    (NLOPT, 2, 1778.358182),
    (GLMER, 38, 184.085),
    (["start par. =  1 0 1 fn =  1773.68 \n", "At return\n",
      "eval:  98 fn:      1743.6283 par: 0.966733 0.0151691 0.230910\n"], 98, 1743.6283),
])
def test_progress_reads_each_optimizers_printout(chunks, evals, deviance):
    p = Progress()
    assert all(p.consume(c) for c in chunks)
    assert p.evals == evals
    assert p.deviance == pytest.approx(deviance)


def test_other_output_is_left_to_the_console():
    p = Progress()
    assert not p.consume("boundary (singular) fit: see help('isSingular')\n")
    assert p.consume("iteration: 3\n")
    assert not p.consume("Warning message:\n")


def test_line_waits_for_the_delay_then_updates_and_is_removed():
    now = [0.0]
    shown: list[str | None] = []
    st = LiveStatus("fitting y ~ x", shown.append, delay=1.0, interval=0.25,
                    clock=lambda: now[0])
    for t in (0.2, 0.9):
        now[0] = t
        st.tick()
    assert shown == []  # a short fit shows nothing
    st.consume("iteration: 7\n")
    st.consume("\tf(x) = 1743.6\n")
    for t in (1.0, 1.1, 1.3):
        now[0] = t
        st.tick()
    assert shown == ["fitting y ~ x: 1.0 s · 7 evaluations · deviance 1743.6000",
                     "fitting y ~ x: 1.3 s · 7 evaluations · deviance 1743.6000"]
    st.close()
    assert shown[-1] is None


def test_terminal_line_is_one_line_rewritten():
    out = io.StringIO()
    show = terminal_line(out)
    show("fitting: 1.0 s")
    show("fitting: 1.3 s · 5 evaluations")
    show(None)
    text = out.getvalue()
    assert "\n" not in text
    assert text.endswith("\r" + " " * len("fitting: 1.3 s · 5 evaluations") + "\r")


def test_a_watched_fit_is_the_same_fit_and_its_printout_stays_out(sleepstudy):
    shown: list[str | None] = []
    st = LiveStatus("fitting", shown.append, delay=0.0, interval=0.0)
    with rbridge.watching(st):
        m = lmermagic.glmer("Reaction ~ Days + (Days | Subject)", sleepstudy,
                            family="Gamma(link='log')")
    plain = lmermagic.glmer("Reaction ~ Days + (Days | Subject)", sleepstudy,
                            family="Gamma(link='log')")
    assert st.progress.evals > 20 and np.isfinite(st.progress.deviance)
    st.close()
    assert st.updates > 0 and shown[-1] is None
    np.testing.assert_array_equal(m.fixef, plain.fixef)
    assert m.warnings == plain.warnings
    assert "verbose" not in m.summary()


def test_config_turns_the_status_off(shell, sleepstudy, monkeypatch):
    import lmermagic.api

    seen = []
    real = lmermagic.api.fit
    monkeypatch.setattr(lmermagic.api, "fit",
                        lambda *a, **k: (seen.append(rbridge.watched()), real(*a, **k))[1])
    shell.user_ns["sleep"] = sleepstudy
    try:
        shell.run_cell("%lmer -d sleep -q Reaction ~ Days + (1 | Subject)")
        shell.run_cell("%config LmerMagics.progress = False")
        shell.run_cell("%lmer -d sleep -q Reaction ~ Days + (1 | Subject)")
    finally:
        shell.run_cell("%config LmerMagics.progress = True")
    assert seen == [True, False]


def test_kernel_shows_updates_while_a_long_fit_runs_and_interrupt_still_works():
    km, kc = _kernel()
    try:
        assert _execute(kc, LONG_FIT_SETUP)["status"] == "ok"
        # the first fit starts R (seconds): then a short fit shows no status at all
        assert _execute(kc, "%lmer -d sleep -q Reaction ~ Days + (1 | Subject)")["status"] == "ok"
        t0 = time.monotonic()
        msg_id = kc.execute("m = %lmer -d sleep Reaction ~ Days + (Days | Subject)")
        shown = _displays(kc, msg_id, 60)
        if time.monotonic() - t0 < 0.9:  # under the status's 1 s delay (a loaded machine
            assert shown == []           # may take longer, and then rightly shows it)
        msg_id = kc.execute(f"%lmer -d big -o slow --ddf lme4 {LONG_FORMULA}", stop_on_error=False)
        msgs = _displays(kc, msg_id, 120,
                                stop=lambda m: sum("evaluations" in t for *_, t in m) >= 4)
        assert msgs[0][1] == "display_data" and msgs[0][3].startswith("fitting y ~ x1")
        assert all(kind == "update_display_data" for _, kind, *_ in msgs[1:])
        # several updates arrived while R was still fitting, each a later time
        times = [float(t.split(": ", 1)[1].split(" s")[0]) for *_, t in msgs]
        assert len(msgs) >= 4 and times == sorted(times) and times[0] >= 1.0
        assert "deviance" in msgs[-1][3]
        reply, _ = _interrupt_after(km, kc, msg_id, 0)
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        ok = _execute_after_error(kc, "m2 = %lmer -d sleep Reaction ~ Days + (Days | Subject)")
        assert ok["status"] == "ok", ok
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
