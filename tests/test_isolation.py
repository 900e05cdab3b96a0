"""Isolated fits: a worker process with its own R that a timeout, Ctrl-C or
running out of memory ends without harm to the caller; its results equal the
in-process fit's. The worker machinery itself is tested without R first."""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings

import numpy as np
import pandas as pd
import pytest

import lmermagic
from conftest import id_as_fixed_effect
from lmermagic import isolation
from lmermagic.request import FitRequest
from lmermagic.workers import Worker, WorkerDied

# -- the worker machinery, without R (module-level functions: they pickle)


def _sleep(state, seconds):
    time.sleep(seconds)
    return state + seconds


def _allocate(state, nbytes):
    return len(bytearray(nbytes))


def _kill_self(state, sig):
    os.kill(os.getpid(), sig)


@pytest.fixture()
def worker():
    w = Worker(int, "1")
    yield w
    w.stop()


def test_worker_timeout_and_interrupt_end_the_process(worker):
    assert worker.call(_sleep, 0.5) == 1.5
    first = worker.pid
    start = time.time()
    with pytest.raises(TimeoutError):
        worker.call(_sleep, 100, timeout=1)
    assert time.time() - start < 5 and not worker.alive
    timer = threading.Timer(1, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    start = time.time()
    with pytest.raises(KeyboardInterrupt):
        worker.call(_sleep, 100)
    assert time.time() - start < 5 and not worker.alive
    assert worker.call(_sleep, 0) == 1 and worker.pid != first  # a new process


def test_worker_memory_limit_and_death(worker):
    with pytest.raises(MemoryError):
        worker.call(_allocate, 4 * 10**9, memory=10**9)
    assert worker.alive  # Python's MemoryError: the process lives on
    assert worker.call(_allocate, 2 * 10**8) == 2 * 10**8  # the limit was for one task
    with pytest.raises(WorkerDied, match="SIGKILL") as info:
        worker.call(_kill_self, signal.SIGKILL)
    assert info.value.signal == signal.SIGKILL
    assert worker.call(_sleep, 0) == 1


# -- isolated fits


def test_isolated_fit_equals_the_fit_here(sleepstudy):
    here = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy, isolate=True)
    assert m.meta["isolated"] is True
    pd.testing.assert_frame_equal(m.coefs, here.coefs)
    pd.testing.assert_frame_equal(m.varcorr, here.varcorr)
    assert m.loglik == here.loglik and m.nobs == here.nobs
    # the R fit came back serialized: the toolbox unserializes it when needed
    assert "serialized" in repr(m.r_object)
    pd.testing.assert_frame_equal(m.anova(), here.anova())
    np.testing.assert_allclose(m.predict(), here.predict(), rtol=1e-12)
    assert "unserialized" in repr(m.r_object)
    assert "REML criterion at convergence: 1743.6" in m.summary()
    # update() refits the way the model was fitted
    m0 = m.update(". ~ . - Days")
    assert m0.meta["isolated"] and list(m0.coefs.index) == ["(Intercept)"]


def test_isolated_warnings_point_at_the_caller(sleepstudy):
    d = sleepstudy.assign(g=np.repeat(np.arange(6), 30).astype(str))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lmermagic.lmer("Reaction ~ Days + (1 | Subject) + (1 | g)", d, isolate=True)
    singular = [w for w in caught if issubclass(w.category, lmermagic.SingularFitWarning)]
    assert singular and singular[0].filename == __file__


def test_timeout_ends_an_isolated_fit_stuck_in_native_code(sleepstudy):
    """The issue's case: model.matrix and the QR of a 40,000 x 20,000 matrix,
    where no R interrupt check runs."""
    lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy, isolate=True)  # warm
    d = id_as_fixed_effect()
    start = time.time()
    with pytest.raises(lmermagic.LmerTimeoutError, match="worker process was ended"):
        lmermagic.lmer("y ~ id + (1 | g)", d, allow_large=True, isolate=True, timeout=5)
    assert time.time() - start < 10  # the bound
    m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy, isolate=True)
    np.testing.assert_allclose(m.fixef, [251.405104848485, 10.467285959595], rtol=1e-8)
    m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy)
    np.testing.assert_allclose(m.fixef, [251.405104848485, 10.467285959595], rtol=1e-8)


def test_a_worker_out_of_memory_spares_the_caller(sleepstudy):
    d = id_as_fixed_effect()
    with pytest.raises(lmermagic.WorkerMemoryError, match="ran out of memory") as info:
        lmermagic.lmer("y ~ id + (1 | g)", d, allow_large=True, isolate=True,
                       memory_limit=2)
    assert isinstance(info.value, MemoryError)
    assert "limit: 2.0 GB" in str(info.value)
    assert isolation.memory_limit(FitRequest.build("y ~ x", memory_limit=2)) == 2e9
    m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy, isolate=True)
    assert m.nobs == 180

