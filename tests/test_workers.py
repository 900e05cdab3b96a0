"""Worker processes started from lmermagic's own entry point (lmermagic/spawn.py)
and worker processes that die: a plain script without a main guard, or one read
from stdin, gets its many models; a worker that dies while starting raises
WorkerDied at once, whatever the size of its start-up data; a task that kills
its worker is reported by died= and the other tasks go on, in local processes
and on Dask (cluster.run_on_dask)."""

from __future__ import annotations

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
from lmermagic import cluster, workers
from lmermagic.workers import Worker, WorkerDied

ROOT = Path(lmermagic.__file__).resolve().parent.parent
HANG_GUARD = 240  # seconds: a regression fails rather than hangs

# -- module-level functions: they pickle by name, and the workers import this module


def _exit_at_setup(payload: Any) -> None:
    os._exit(3)


def _size(payload: Any) -> int:
    return len(payload)


def _kill_on_three(state: int, task: int) -> int:
    if task == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return state + task


def _within(seconds: float, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """fn(*args, **kwargs), or a failure if it has not returned after ``seconds``."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn(*args, **kwargs)
        except BaseException as exc:
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still waiting after {seconds} s"
    if "error" in out:
        raise out["error"]
    return out["value"]


def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=str(ROOT) + (os.pathsep + path if path else ""))


def _loose(before: set[int]) -> set[int]:
    """Child processes not there ``before`` but for the ones the session's pool
    keeps warm between jobs (by design: lmermagic/pool.py)."""
    return _children() - before - set(workers.get_pool().pids())


def _children() -> set[int]:
    """The processes whose parent is this one, zombies too (Linux's /proc)."""
    me, out = str(os.getpid()), set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:
            out.add(int(pid))
    return out


# -- scripts without a main guard


SCRIPT = textwrap.dedent("""\
    import importlib
    import sys

    sys.path.insert(0, sys.argv[3])  # a checkout of lmermagic, as a developer runs it
    import pandas as pd
    import lmermagic
    from lmermagic import workers

    wide = pd.read_pickle(sys.argv[1])
    responses = [c for c in wide.columns if c.startswith("y")]
    mm = lmermagic.lmer_many("~ Days + (Days | Subject)", wide, responses=responses,
                             workers=2, progress=False)
    mm.coefs.to_pickle(sys.argv[2])
    print(mm.meta["backend"], mm.meta["workers"])
    # the lmermagic the workers imported: getattr(importlib.import_module("lmermagic"), ...)
    workers.run_tasks(getattr, ["__file__"], lambda t, r: print(r), workers=2,
                      setup=importlib.import_module, payload="lmermagic")
""")


@pytest.fixture(scope="module")
def wide() -> pd.DataFrame:
    """sleepstudy with 60 responses: the start-up data (~90 kB) exceed a pipe's buffer."""
    d = lmermagic.datasets.load("sleepstudy")
    rng = np.random.default_rng(24)
    extra = {f"y{i}": d["Reaction"].to_numpy() + rng.normal(0, 20, len(d)) for i in range(60)}
    return pd.concat([d, pd.DataFrame(extra)], axis=1)


@pytest.mark.parametrize("how", ["file", "stdin"])
def test_many_workers_from_a_plain_script(how, wide, tmp_path):
    """`python fit.py` without `if __name__ == "__main__":` and `python - < fit.py`:
    the workers never re-import the caller's __main__, and the tables are the
    serial backend's, bit for bit. The script puts a checkout of lmermagic on
    its sys.path, and its directory (the working directory) holds a decoy
    lmermagic: the workers import the caller's lmermagic."""
    script, data, out = tmp_path / "fit.py", tmp_path / "wide.pkl", tmp_path / "coefs.pkl"
    script.write_text(SCRIPT)
    (tmp_path / "lmermagic").mkdir()
    (tmp_path / "lmermagic" / "__init__.py").write_text("raise ImportError('the decoy')\n")
    wide.to_pickle(data)
    args = [str(data), str(out), str(ROOT)]
    if how == "file":
        cmd, stdin = [sys.executable, str(script), *args], None
    else:
        cmd, stdin = [sys.executable, "-", *args], script.open()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    try:
        proc = subprocess.run(cmd, stdin=stdin, capture_output=True, text=True, cwd=tmp_path,
                              env=env, timeout=HANG_GUARD)
    finally:
        if stdin is not None:
            stdin.close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["processes", "2", str(ROOT / "lmermagic" / "__init__.py")]
    serial = lmermagic.lmer_many("~ Days + (Days | Subject)", wide,
                                 responses=[f"y{i}" for i in range(60)], progress=False)
    assert serial.n_failed == 0
    pd.testing.assert_frame_equal(pd.read_pickle(out), serial.coefs, check_exact=True)


def test_a_function_of_main_is_refused_in_words(tmp_path):
    """What multiprocessing's re-import of __main__ used to make possible: a
    work function defined in the script. It cannot load in the worker, which
    says why, rather than running the script again."""
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent("""\
        from lmermagic import workers

        def setup(payload):
            return payload

        try:
            workers.run_tasks(pow, [1, 2], lambda t, r: None, setup=setup, payload=2,
                              workers=2)
        except RuntimeError as exc:
            print(exc)
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=tmp_path, env=_env(), timeout=HANG_GUARD)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "importable from a module, not __main__" in proc.stdout
    # Python's own words for the missing function differ by release
    assert "'setup'" in proc.stdout


# -- workers that die while starting


def test_a_worker_dying_in_setup_raises_at_once():
    before = _children()
    w = Worker(_exit_at_setup, b"x" * 5_000_000)
    try:
        with pytest.raises(WorkerDied, match="exited with code 3") as info:
            _within(60, w.call, _kill_on_three, 1)
        assert info.value.exitcode == 3 and not w.alive
    finally:
        w.stop()
    assert _loose(before) == set()


def test_a_worker_killed_before_it_read_its_start_up_data():
    """50 MB of start-up data, the worker killed as it starts: the caller is
    told, never blocked writing to a process that is gone."""
    w = Worker(_size, b"x" * 50_000_000)

    def kill_as_it_starts() -> None:
        # call() starts the process; it is killed while call() sends it the
        # start-up data or waits for its answer. (Killed before call(), it
        # would just be replaced, as any ended worker is.)
        for _ in range(6000):
            if w.pid is not None:
                os.kill(w.pid, signal.SIGKILL)
                return
            time.sleep(0.001)

    killer = threading.Thread(target=kill_as_it_starts, daemon=True)
    try:
        killer.start()
        with pytest.raises(WorkerDied, match="SIGKILL"):
            _within(60, w.call, _kill_on_three, 1)
        killer.join()
        assert _within(60, w.call, _kill_on_three, 1) == 50_000_001  # a new process
    finally:
        w.stop()


def test_run_tasks_reports_a_task_that_killed_its_worker():
    before = _children()
    got: dict[int, int] = {}
    dead: list[tuple[int, WorkerDied]] = []
    _within(HANG_GUARD, workers.run_tasks, _kill_on_three, list(range(8)), got.__setitem__,
            setup=int, payload="10", workers=2, died=lambda t, e: dead.append((t, e)))
    assert got == {t: 10 + t for t in range(8) if t != 3}
    assert [t for t, _ in dead] == [3] and dead[0][1].signal == signal.SIGKILL
    with pytest.raises(WorkerDied, match="SIGKILL"):  # without died=: raised
        _within(HANG_GUARD, workers.run_tasks, _kill_on_three, list(range(8)),
                lambda t, r: None, setup=int, payload="10", workers=2)
    assert _loose(before) == set()  # no worker left behind, none a zombie


# -- Dask


def _dask_batch(client: Any) -> None:
    """Eight tasks, the fourth kills its worker: seven results and one death,
    and the cluster runs the next job."""
    got: dict[int, int] = {}
    dead: list[tuple[int, WorkerDied]] = []
    _within(HANG_GUARD, cluster.run_on_dask, _kill_on_three, list(range(8)), got.__setitem__,
            setup=len, payload=b"x" * 1_000_000, client=client,
            died=lambda t, e: dead.append((t, e)))
    assert got == {t: 1_000_000 + t for t in range(8) if t != 3}
    assert [t for t, _ in dead] == [3] and "Dask worker process" in str(dead[0][1])
    assert client.submit(sum, [1, 2]).result() == 3
    again: dict[int, int] = {}
    _within(HANG_GUARD, cluster.run_on_dask, _kill_on_three, [4, 5], again.__setitem__,
            setup=len, payload=b"xy", client=client)
    assert again == {4: 6, 5: 7}


def test_dask_survives_a_task_that_kills_its_worker():
    pytest.importorskip("distributed")
    client = cluster.local_cluster(2)
    try:
        _dask_batch(client)
        with pytest.raises(WorkerDied, match="Dask worker process"):  # without died=
            _within(HANG_GUARD, cluster.run_on_dask, _kill_on_three, list(range(5)),
                    lambda t, r: None, setup=len, payload=b"x", client=client)
        assert client.submit(sum, [1, 2]).result() == 3
    finally:
        client.close()
        client.cluster.close()


def test_dask_callers_client_survives_a_task_that_kills_a_worker():
    """A caller's cluster keeps its own allowed-failures (Dask's default: 3)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as local, \
            distributed.Client(local, set_as_default=False) as client:
        _dask_batch(client)
