"""Several threads fitting at once: isolated fits share one worker process and
one pipe, in-process fits share one R; each thread gets its own model (the
serial one), and a timeout counts the time spent waiting for another fit."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

import lmermagic
from conftest import id_as_fixed_effect
from lmermagic import isolation

# Different models (different terms, different sizes): a thread given another
# thread's model cannot pass for its own.
MODELS = [
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy"),
    ("Reaction ~ 1 + (1 | Subject)", "sleepstudy"),
    ("Weight ~ Time + Evit + (1 | Pig)", "dietox"),
]
ROUNDS = 6


@pytest.fixture(scope="module")
def frames(sleepstudy, dietox):
    return {"sleepstudy": sleepstudy, "dietox": dietox}


def _summary(m) -> tuple:
    return (list(m.coefs.index), m.coefs["estimate"].to_numpy(), m.nobs, m.loglik)


def _same(got: tuple, want: tuple) -> bool:
    return (got[0] == want[0] and got[2] == want[2]
            and np.allclose(got[1], want[1], rtol=1e-9) and np.isclose(got[3], want[3]))


def test_isolated_fits_from_several_threads_get_their_own_models(frames):
    """Issue 24 (2): three threads x six rounds, started together each round, on
    the one worker. Before the fix threads received each other's models, or
    WorkerMemoryError, UnpicklingError, EOF or 'process object is closed', or hung."""
    serial = [_summary(lmermagic.lmer(f, frames[d], isolate=True)) for f, d in MODELS]
    barrier = threading.Barrier(len(MODELS))
    failures: list[str] = []

    def work(i: int) -> None:
        formula, data = MODELS[i]
        for r in range(ROUNDS):
            barrier.wait(timeout=120)
            try:
                got = _summary(lmermagic.lmer(formula, frames[data], isolate=True))
            except Exception as exc:
                failures.append(f"round {r}, {formula}: {type(exc).__name__}: {exc}")
                continue
            if not _same(got, serial[i]):
                failures.append(f"round {r}, {formula}: got the model of terms {got[0]}, "
                                f"nobs {got[2]}")

    with ThreadPoolExecutor(len(MODELS)) as pool:
        futures = [pool.submit(work, i) for i in range(len(MODELS))]
        try:
            for f in futures:
                f.result(timeout=180)  # a hang guard, not a speed bound
        except BaseException:
            barrier.abort()
            isolation.stop_worker()
            raise
    assert not failures, "\n".join(failures)


def _in_thread(fn, *args, **kwargs):
    """Start ``fn`` in a thread; a function returning its result or exception."""
    box: dict = {}

    def run():
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()

    def result(timeout=180):
        t.join(timeout)  # a hang guard, not a speed bound
        assert not t.is_alive(), "the thread hung"
        return box

    return result


def test_timeout_counts_the_wait_for_r(sleepstudy):
    """Issue 24: timeout=1 with R busy for another thread ran the fit after the
    wait, however long; now the wait counts and the message says what it was."""
    from lmermagic.rbridge import _lock

    lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy)  # R started
    with _lock:  # another thread in R, for as long as this block lasts
        result = _in_thread(lmermagic.lmer, "Reaction ~ Days + (Days | Subject)",
                            sleepstudy.assign(Days=sleepstudy.Days + 0.5), timeout=1)
        box = result(timeout=30)
    err = box.get("error")
    assert isinstance(err, lmermagic.LmerTimeoutError), box
    assert "waiting for R, busy with another thread's fit" in str(err)
    assert "time limit of 1 s" in str(err)
    # R is fine and the same call without the wait fits
    m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)",
                       sleepstudy.assign(Days=sleepstudy.Days + 0.5), timeout=60)
    assert m.nobs == 180


def test_timeout_counts_the_wait_for_the_worker(sleepstudy):
    lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy, isolate=True)  # warm
    with isolation._exchange:  # another thread's isolated fit, for this block
        result = _in_thread(lmermagic.lmer, "Reaction ~ Days + (1 | Subject)", sleepstudy,
                            isolate=True, timeout=1)
        box = result(timeout=30)
    err = box.get("error")
    assert isinstance(err, lmermagic.LmerTimeoutError), box
    assert "waiting for the isolated fits' worker process" in str(err)


def _medium() -> pd.DataFrame:
    """A fit of several seconds (about 6 s on this class of machine) that succeeds."""
    rng = np.random.default_rng(7)
    n, groups = 6000, 100
    g = rng.integers(0, groups, n)
    x = rng.normal(size=(n, 3))
    b = rng.normal(size=(groups, 4))
    y = b[g, 0] + (x * (1 + b[g, 1:])).sum(1) + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2],
                         "g": g.astype(str)})


MEDIUM = "y ~ x1 + x2 + x3 + (1 + x1 + x2 + x3 | g)"


def _wait_until_worker_busy() -> None:
    for _ in range(1200):
        if isolation._exchange.locked():
            return
        time.sleep(0.05)
    raise AssertionError("the other thread's isolated fit never started")


def test_ctrl_c_while_waiting_for_the_worker_spares_the_other_threads_fit(sleepstudy):
    import os
    import signal

    d = _medium()
    lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy, isolate=True)  # warm
    other = _in_thread(lmermagic.lmer, MEDIUM, d, ddf="lme4", isolate=True)
    _wait_until_worker_busy()
    main = threading.main_thread().ident

    def interrupt_when_waiting() -> None:
        # Ctrl-C once this thread waits for the worker (in rbridge.held), not
        # after a fixed time: the other fit's length depends on the machine.
        for _ in range(2400):
            frame = sys._current_frames().get(main)
            while frame is not None and frame.f_code.co_name != "held":
                frame = frame.f_back
            if frame is not None:
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.005)

    timer = threading.Thread(target=interrupt_when_waiting, daemon=True)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            # not the warm-up's model: that one the fit cache in memory would serve
            lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy, isolate=True)
    finally:
        timer.join()
    box = other()
    assert "error" not in box, box
    here = lmermagic.lmer(MEDIUM, d, ddf="lme4")
    np.testing.assert_allclose(box["value"].fixef, here.fixef, rtol=1e-8)
    assert box["value"].loglik == pytest.approx(here.loglik, rel=1e-10)


def test_a_timeout_in_one_thread_spares_the_next_threads_fit(sleepstudy):
    """The stuck fit's timeout kills the worker it runs in; the fit waiting
    behind it runs in a new worker and gets its own, correct model."""
    lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy, isolate=True)  # warm
    stuck = _in_thread(lmermagic.lmer, "y ~ id + (1 | g)", id_as_fixed_effect(),
                       allow_large=True, isolate=True, timeout=4)
    _wait_until_worker_busy()
    m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy, isolate=True)
    np.testing.assert_allclose(m.fixef, [251.405104848485, 10.467285959595], rtol=1e-8)
    err = stuck().get("error")
    assert isinstance(err, lmermagic.LmerTimeoutError), err
    assert "worker process was ended" in str(err)


def test_lmer_many_timeout_counts_the_wait_for_r(sleepstudy):
    from lmermagic.rbridge import _lock

    grid = {"a": "Reaction ~ Days + (1 | Subject)", "b": "Reaction ~ Days + (Days | Subject)"}
    with _lock:  # another thread in R, for as long as this block lasts
        result = _in_thread(lmermagic.lmer_many, grid, sleepstudy, timeout=1, progress=False)
        box = result(timeout=30)
    err = box.get("error")
    assert isinstance(err, lmermagic.LmerTimeoutError), box
    assert "waiting for R, busy with another thread's fit" in str(err)
    mm = lmermagic.lmer_many(grid, sleepstudy, timeout=60, progress=False)
    assert mm.n_failed == 0
