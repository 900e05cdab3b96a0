"""The session's pool of warm worker processes (lmermagic/pool.py, issue 23
item 5): a second job takes the first job's processes warm, with its own
state; kept workers end on shutdown_workers(), after the idle timeout and when
the interpreter exits (even killed); a kept worker that died is replaced; a
timeout kills the busy workers only; a memory limit is one task's; isolated
fits borrow the same processes; lmer_many decides whether workers pay off and
says so in meta, with the serial tables, bit for bit, either way."""

from __future__ import annotations

import _thread
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic import workers
from lmermagic.pool import get_pool
from lmermagic.toolbox import many
from lmermagic.workers import Plan, plan_workers, run_tasks

ROOT = Path(lmermagic.__file__).resolve().parent.parent
HANG_GUARD = 240  # seconds: a regression fails rather than hangs


# -- module-level functions: they pickle by name


def _pid(state: Any, task: Any) -> tuple[Any, int]:
    return state, os.getpid()


def _nap(state: Any, seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _vm_size() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _vm_of_worker(state: Any, task: Any) -> int:
    return _vm_size()


def _allocate(state: Any, nbytes: int) -> int:
    return len(bytearray(nbytes))


def _alive(pid: int) -> bool:
    """A live process (not a zombie) of that id runs lmermagic's worker."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"lmermagic.spawn" in f.read()
    except OSError:
        return False


def _batch(payload: str, n: int = 6) -> dict[int, tuple[int, int]]:
    got: dict[int, tuple[int, int]] = {}
    run_tasks(_pid, list(range(n)), got.__setitem__, setup=int, payload=payload, workers=2,
              timeout=HANG_GUARD)
    return got


def _wait_for(cond: Any, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


@pytest.fixture()
def pool() -> Any:
    """The session's pool, empty before and after the test."""
    p = get_pool()
    p.shutdown()
    timeout = p.idle_timeout
    yield p
    p.idle_timeout = timeout
    p.shutdown()


def test_a_second_job_takes_the_first_jobs_workers_with_its_own_state(pool):
    first = _batch("3")
    assert {s for s, _ in first.values()} == {3}
    pids = set(pool.pids())
    assert len(pids) == 2 and pool.warm() == 2 and {p for _, p in first.values()} <= pids
    second = _batch("5", n=20)
    assert {s for s, _ in second.values()} == {5}  # setup ran for this job
    assert {p for _, p in second.values()} <= pids  # no new process started
    assert set(pool.pids()) == pids
    assert 0.05 < pool.start_seconds() < 60  # measured, not the default guess


def test_shutdown_workers_ends_the_kept_ones(pool):
    _batch("1")
    pids = set(pool.pids())
    assert all(_alive(p) for p in pids)
    lmermagic.shutdown_workers()
    assert pool.warm() == 0 and pool.pids() == []
    assert not any(_alive(p) for p in pids)
    assert {s for s, _ in _batch("2").values()} == {2}  # new ones start


def test_kept_workers_end_after_the_idle_timeout(pool):
    pool.idle_timeout = 1.0
    _batch("1")
    pids = set(pool.pids())
    assert _wait_for(lambda: not any(_alive(p) for p in pids), 30)
    assert pool.warm() == 0


def test_a_kept_worker_that_died_is_replaced(pool):
    _batch("1")
    pids = set(pool.pids())
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    assert _wait_for(lambda: not _alive(victim), 10)
    got = _batch("4", n=8)
    assert sorted(got) == list(range(8)) and {s for s, _ in got.values()} == {4}
    assert victim not in {p for _, p in got.values()}


def test_a_timeout_kills_the_busy_workers_only_and_nothing_stays_behind(pool):
    _batch("1")
    pids = set(pool.pids())
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        run_tasks(_nap, [100, 100], lambda t, r: None, setup=int, payload="0", workers=2,
                  timeout=2)
    assert time.monotonic() - start < 30  # a hang guard
    assert not any(_alive(p) for p in pids) and pool.pids() == []
    assert {s for s, _ in _batch("7").values()} == {7}


def test_ctrl_c_on_warm_workers_kills_the_busy_ones(pool):
    _batch("1")
    pids = set(pool.pids())
    timer = threading.Timer(1.0, _thread.interrupt_main)
    timer.start()
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_tasks(_nap, [100, 100, 100], lambda t, r: None, setup=int, payload="0",
                      workers=2)
    finally:
        timer.cancel()
    assert time.monotonic() - start < 30  # a hang guard
    assert _wait_for(lambda: not any(_alive(p) for p in pids), 10) and pool.pids() == []
    assert {s for s, _ in _batch("8").values()} == {8}


def test_a_memory_limit_is_for_one_task_on_a_kept_worker(pool):
    _batch("1")
    (w,), warm = pool.acquire(1)
    try:
        assert warm == 1
        base = w.call(_vm_of_worker, None)
        with pytest.raises(MemoryError):
            w.call(_allocate, 600 * 10**6, memory=base + 200 * 10**6)
        assert w.alive
        assert w.call(_allocate, 600 * 10**6) == 600 * 10**6  # the limit was the task's
    finally:
        pool.release([w])


SCRIPT = textwrap.dedent("""\
    import operator, sys, time
    sys.path.insert(0, sys.argv[1])
    from lmermagic import workers
    got = {}
    workers.run_tasks(operator.pow, [1, 2, 3], got.__setitem__, setup=int, payload="2",
                      workers=2)
    print(" ".join(str(p) for p in workers.get_pool().pids()), flush=True)
    if sys.argv[2] == "killed":
        time.sleep(600)
    sys.stdin.readline()  # exit when the test has seen the workers alive
""")


@pytest.mark.parametrize("how", ["exits", "killed"])
def test_no_worker_outlives_the_interpreter(how, tmp_path):
    """A script that leaves warm workers in the pool and exits (or is killed
    with SIGKILL): none of its worker processes remains."""
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(ROOT), how],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = proc.stdout.readline()
        pids = [int(p) for p in line.split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        if how == "killed":
            proc.kill()
        else:
            proc.stdin.write("\n")  # let the script end normally (its atexit runs)
            proc.stdin.flush()
        proc.wait(HANG_GUARD)
    finally:
        proc.kill()
        proc.wait()
    assert _wait_for(lambda: not any(_alive(p) for p in pids), 10)
    try:
        import psutil
    except ImportError:
        return

    def running(pid: int) -> bool:  # psutil's view, where it is installed
        try:
            proc = psutil.Process(pid)
            return (proc.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
                    and "lmermagic.spawn" in " ".join(proc.cmdline()))
        except psutil.Error:
            return False

    assert _wait_for(lambda: not any(running(p) for p in pids), 10)


# -- with R


def test_an_isolated_fit_borrows_a_warm_worker(pool, sleepstudy):
    _batch("1")
    pids = set(pool.pids())
    m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy, isolate=True)
    np.testing.assert_allclose(m.fixef, [251.405104848485, 10.467285959595], rtol=1e-8)
    assert pool.warm() == 2 and set(pool.pids()) == pids  # no process started for it


@pytest.fixture(scope="module")
def wide() -> pd.DataFrame:
    d = lmermagic.datasets.load("sleepstudy")
    rng = np.random.default_rng(23)
    extra = {f"y{i}": d["Reaction"].to_numpy() + rng.normal(0, 20, len(d)) for i in range(24)}
    return pd.concat([d, pd.DataFrame(extra)], axis=1)


def test_a_tiny_batch_is_fitted_here_and_meta_says_why(pool, wide):
    mm = lmermagic.lmer_many("~ Days + (1 | Subject)", wide, responses=["y0", "y1", "y2"],
                             workers=2, chunk_size=1, progress=False)
    assert mm.meta["workers"] == 2 and mm.meta["workers_used"] == 0
    assert mm.meta["workers_reason"].startswith("here")
    assert mm.meta["workers_estimate"]["here"] > 0
    assert pool.pids() == []  # nothing started for it
    assert "here (no worker processes)" in repr(mm)


def test_first_chunk_here_and_the_rest_on_workers_gives_the_serial_tables(
        pool, wide, monkeypatch):
    responses = [f"y{i}" for i in range(24)]
    serial = lmermagic.lmer_many("~ Days + (Days | Subject)", wide, responses=responses,
                                 progress=False)
    monkeypatch.setattr(many, "plan_workers", lambda *a, **k: Plan(2, "workers (forced)"))
    mixed = lmermagic.lmer_many("~ Days + (Days | Subject)", wide, responses=responses,
                                workers=2, chunk_size=4, progress=False)
    assert mixed.meta["workers_used"] == 2 and len(pool.pids()) == 2
    for table in ("coefs", "glance", "varcorr", "errors", "warnings"):
        pd.testing.assert_frame_equal(getattr(serial, table), getattr(mixed, table),
                                      check_exact=True)


# -- the estimate, without R


def test_plan_workers_weighs_the_start_up_against_the_work(pool):
    assert pool.warm() == 0
    pool._starts = [2.0]
    cores = workers._cores()
    assert plan_workers(10, 0.01, 4).workers == 0  # 0.1 s of work: not worth a 2 s start
    big = plan_workers(2000, 0.02, 2, tasks=16)
    if cores >= 2:
        assert big.workers == 2 and "to start" in big.reason
    else:
        assert big.workers == 0  # one core: no gain
    assert plan_workers(2000, 0.02, 1).workers == 0  # one worker asked for
    # a machine so loaded that this process had a tenth of a core: the workers
    # would get no more each
    assert plan_workers(200, 0.02, 2, tasks=16, cpu_share=0.1).workers == 0
