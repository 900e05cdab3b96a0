"""Ctrl-C and timeouts during a long fit, in a real Jupyter kernel and in-process."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

import lmermagic

# A synthetic fit of about 30-60 s on this class of machine (2 cores), whose
# optimizer lets R check for interrupts at least every ~0.3 s.
LONG_FIT_DATA = """
import numpy as np, pandas as pd
rng = np.random.default_rng(7)
n, G = 100_000, 300
g = rng.integers(0, G, n)
X = rng.normal(size=(n, 4))
b = rng.normal(size=(G, 5))
y = b[g, 0] + (X * (1 + b[g, 1:])).sum(1) + rng.normal(size=n)
big = pd.DataFrame({"y": y, "x1": X[:, 0], "x2": X[:, 1], "x3": X[:, 2], "x4": X[:, 3],
                    "g": g.astype(str)})
"""
LONG_FIT_SETUP = LONG_FIT_DATA + """
import signal, lmermagic
big_before = big.copy()
sleep = lmermagic.datasets.load("sleepstudy")
handler_before = signal.getsignal(signal.SIGINT)
%load_ext lmermagic
"""
LONG_FORMULA = "y ~ x1 + x2 + x3 + x4 + (1 + x1 + x2 + x3 + x4 | g)"


def _long_fit_frame() -> pd.DataFrame:
    """The frame the kernel tests build, here in this process."""
    ns: dict = {}
    exec(LONG_FIT_DATA, ns)
    return ns["big"]


def _kernel():
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3",
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[]))
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return km, kc


def _execute(kc, code, timeout=120):
    # The cells interrupted on purpose run with stop_on_error=False: otherwise the
    # kernel aborts a request that reaches it while it handles the interrupt's error.
    msg_id = kc.execute(code)
    while True:
        reply = kc.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"]


def _value(kc, expr):
    """repr(expr) evaluated in the kernel, read from its stdout."""
    msg_id = kc.execute(f"print(repr({expr}), end='')")
    out = ""
    while True:
        msg = kc.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            out += msg["content"]["text"]
        elif msg["msg_type"] == "error":
            raise AssertionError(msg["content"])
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return out


def _displays(kc, msg_id, until, stop=None):
    """(arrival seconds, msg type, display id, text) of the cell's display
    messages, until the cell is idle or ``stop(messages)`` holds."""
    start, out = time.time(), []
    while time.time() - start < until:
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except Exception:  # queue.Empty: keep waiting
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind in ("display_data", "update_display_data"):
            out.append((time.time() - start, kind,
                        msg["content"].get("transient", {}).get("display_id"),
                        msg["content"]["data"].get("text/plain", "")))
            if stop is not None and stop(out):
                return out
        if kind == "status" and msg["content"]["execution_state"] == "idle":
            return out
    raise AssertionError(f"the cell did not finish in {until} s: {out}")


def _interrupt_after(km, kc, msg_id, seconds):
    """Interrupt the kernel ``seconds`` into cell ``msg_id``: its reply, and
    the time from the interrupt to the reply."""
    time.sleep(seconds)
    sent = time.time()
    km.interrupt_kernel()
    while True:
        reply = kc.get_shell_msg(timeout=60)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply, time.time() - sent


def _execute_after_error(kc, code):
    """Run ``code`` right after a cell failed: ipykernel aborts requests queued
    just after an error, so retry those."""
    for _ in range(5):
        reply = _execute(kc, code)
        if reply["status"] != "aborted":
            break
        time.sleep(1)
    return reply


def test_kernel_interrupt_stops_the_fit_and_the_kernel_lives():
    km, kc = _kernel()
    try:
        assert _execute(kc, LONG_FIT_SETUP)["status"] == "ok"
        msg_id = kc.execute(f"%lmer -d big -o slow --ddf lme4 {LONG_FORMULA}", stop_on_error=False)
        reply, latency = _interrupt_after(km, kc, msg_id, 6)  # well inside the fit
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert latency < 5, latency
        assert km.is_alive()
        # the kernel and R are usable, with correct numbers and no stale error
        ok = _execute(kc, "m = %lmer -d sleep Reaction ~ Days + (Days | Subject)")
        assert ok["status"] == "ok", ok
        assert _value(kc, "[round(v, 6) for v in m.fixef]") == "[251.405105, 10.467286]"
        assert _value(kc, "signal.getsignal(signal.SIGINT) is handler_before") == "True"
        assert _value(kc, "big.equals(big_before)") == "True"
        assert _value(kc, "'slow' in dir()") == "False"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


# The issue's slip: an ID column of 20,000 levels as a fixed effect. lme4's
# model.matrix and its QR run in native code for minutes, where R never checks
# for an interrupt.
NATIVE_FIT_SETUP = """
import time
rng = np.random.default_rng(11)
ids = pd.DataFrame({"y": rng.normal(size=40_000), "id": np.tile(np.arange(20_000), 2).astype(str),
                    "g": rng.integers(0, 50, 40_000).astype(str)})
warm = %lmer -d sleep --isolate Reaction ~ Days + (1 | Subject)
"""


def test_kernel_interrupt_ends_an_isolated_fit_in_native_code():
    km, kc = _kernel()
    try:
        setup = _execute(kc, LONG_FIT_SETUP + NATIVE_FIT_SETUP)
        assert setup["status"] == "ok", setup
        msg_id = kc.execute("%lmer -d ids --isolate --allow-large -o stuck y ~ id + (1 | g)",
                            stop_on_error=False)
        reply, latency = _interrupt_after(km, kc, msg_id, 4)  # the worker is in model.matrix
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert latency < 5, latency  # the bound
        assert km.is_alive()
        # the kernel kept its variables, and fits again
        assert _value(kc, "(len(ids), round(warm.loglik, 4), 'stuck' in dir())") == \
            "(40000, -893.2325, False)"
        ok = _execute(kc, "m = %lmer -d sleep --isolate Reaction ~ Days + (Days | Subject)")
        assert ok["status"] == "ok", ok
        assert _value(kc, "[round(v, 6) for v in m.fixef]") == "[251.405105, 10.467286]"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_timeout_stops_r_and_r_stays_usable(sleepstudy):
    big = _long_fit_frame()
    start = time.time()
    with pytest.raises(lmermagic.LmerTimeoutError):
        lmermagic.lmer(LONG_FORMULA, big, ddf="lme4", timeout=2)
    assert time.time() - start < 10
    with pytest.raises(TimeoutError):  # the builtin a user would catch
        lmermagic.lmer(LONG_FORMULA, big, ddf="lme4", timeout=1)
    m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    np.testing.assert_allclose(m.fixef, [251.405104848485, 10.467285959595], rtol=1e-8)


def test_sigint_in_process_raises_keyboard_interrupt(sleepstudy):
    import os
    import signal
    import threading

    big = _long_fit_frame()
    before = signal.getsignal(signal.SIGINT)
    timer = threading.Timer(2, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    start = time.time()
    with pytest.raises(KeyboardInterrupt):
        lmermagic.lmer(LONG_FORMULA, big, ddf="lme4")
    assert time.time() - start < 7
    assert signal.getsignal(signal.SIGINT) is before
    m = lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy)
    assert m.nobs == 180
