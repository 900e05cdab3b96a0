"""Test set-up: the suite needs the real R, lme4 and lmerTest and says so loudly."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

INSTALL = (
    "lmermagic's tests need R with lme4 and lmerTest. On Debian/Ubuntu run `make test` "
    "(it installs r-base-core r-cran-lme4 r-cran-lmertest r-cran-pbkrtest r-cran-geepack "
    "r-cran-emmeans), or apt-get install them yourself; elsewhere see README.md."
)


def pytest_sessionstart(session: pytest.Session) -> None:
    try:
        from lmermagic.rbridge import get_r

        r = get_r()
        r.require("lmerTest")
        r.require("pbkrtest")
        r.require("geepack")
    except Exception as exc:  # fail the whole run, never skip the core
        pytest.exit(f"R is not usable: {exc}\n{INSTALL}", returncode=3)


class RRef:
    """Evaluate R code for reference values, through rpy2's high-level API."""

    def __init__(self) -> None:
        import rpy2.robjects as ro

        self.ro = ro

    def __call__(self, code: str) -> Any:
        from lmermagic.rbridge import _lock

        with _lock:
            return self.py(self.ro.r(f"local({{\n{code}\n}})"))

    def py(self, obj: Any) -> Any:
        ro = self.ro
        if isinstance(obj, ro.vectors.ListVector) or type(obj).__name__ == "ListSexpVector":
            names = list(obj.names) if obj.names is not ro.NULL else None
            items = [self.py(v) for v in obj]
            return dict(zip(names, items)) if names else items
        if isinstance(obj, ro.vectors.StrVector):
            return [str(v) if v is not ro.NA_Character else None for v in obj]
        if isinstance(obj, (ro.vectors.FloatVector, ro.vectors.IntVector,
                            ro.vectors.BoolVector)):
            arr = np.array(obj)
            if isinstance(obj, ro.vectors.IntVector):
                arr = arr.astype(float)
                arr[np.array(obj) == ro.NA_Integer] = np.nan
            return arr
        return obj


@pytest.fixture(scope="session")
def rref() -> RRef:
    return RRef()


@pytest.fixture(scope="session")
def shell() -> Any:
    """A real IPython shell with the extension loaded; run_cell re-raises."""
    from IPython.core.interactiveshell import InteractiveShell

    sh = InteractiveShell.instance()
    sh.run_cell("%load_ext lmermagic", store_history=False)
    return sh


@pytest.fixture(scope="session")
def dietox() -> Any:
    import lmermagic

    return lmermagic.datasets.load("dietox", package="geepack")


@pytest.fixture(scope="session")
def sleepstudy() -> Any:
    import lmermagic

    return lmermagic.datasets.load("sleepstudy")


@pytest.fixture(scope="session")
def cbpp() -> Any:
    import lmermagic

    return lmermagic.datasets.load("cbpp")


@pytest.fixture(scope="session")
def cbpp_model(cbpp: Any) -> Any:
    """The binomial GLMM of lme4's examples (shared by the toolbox and plot tests)."""
    import lmermagic

    return lmermagic.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)


def grouped_counts(seed: int, exposure: tuple[float, float], beta: tuple[float, float],
                   sd: float, size: float | None = None) -> dict[str, Any]:
    """Counts for 30 groups of 10 with an exposure and a covariate x: Poisson,
    or negative binomial with shape ``size``."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(30), 10)
    x = rng.uniform(-1, 1, g.size)
    t = rng.uniform(*exposure, g.size)
    mu = t * np.exp(beta[0] + beta[1] * x + rng.normal(0, sd, 30)[g])
    y = rng.poisson(mu) if size is None else rng.negative_binomial(size, size / (size + mu))
    return {"rng": rng, "g": g, "x": x, "log_t": np.log(t), "y": y}


def id_as_fixed_effect(levels: int = 20_000, n: int = 40_000) -> Any:
    """The issue-14 slip's data: ``y ~ id + (1 | g)`` with an ID column of
    ``levels`` levels, meant as a grouping factor, written as a fixed effect."""
    import pandas as pd

    rng = np.random.default_rng(11)
    return pd.DataFrame({"y": rng.normal(size=n),
                         "id": np.tile(np.arange(levels), n // levels).astype(str),
                         "g": rng.integers(0, 50, n).astype(str)})


def child_processes() -> set[str]:
    """``pid: command line`` of the live processes whose parent is this one,
    read from /proc (workers are not multiprocessing's children), but for
    multiprocessing's resource tracker (one per interpreter, for its life)."""
    import os

    me = str(os.getpid())
    out = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if fields[1] != me or fields[0] == "Z":
                    continue
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "resource_tracker" not in cmd:
                out.add(f"{pid}: {cmd}")
    return out


def task_processes() -> list[str]:
    """Live worker processes (lmermagic/spawn.py's) but the warm ones the
    session's pool keeps between jobs (lmermagic/pool.py), by design.
    Kernels other tests keep for their module are not workers."""
    from lmermagic.pool import get_pool

    kept = {str(pid) for pid in get_pool().pids()}
    return sorted(p for p in child_processes()
                  if "lmermagic.spawn" in p and p.split(":")[0] not in kept)


def loose_processes(before: set[str]) -> set[str]:
    """Child processes that were not there ``before`` and that the pool does
    not keep (a worker the pool keeps is there by design)."""
    from lmermagic.pool import get_pool

    kept = {str(pid) for pid in get_pool().pids()}
    return {p for p in child_processes() - before if p.split(":")[0] not in kept}


@pytest.fixture()
def empty_fit_cache() -> Any:
    """No fit remembered in memory before or after the test."""
    import lmermagic

    lmermagic.clear_cache()
    yield
    lmermagic.clear_cache()


def model_method_results(m: Any, data: Any, response: Any) -> dict[str, Any]:
    """What the toolbox methods give for a sleepstudy lmer or a cbpp glmer: a
    model restored from bytes must give the same as the fresh fit."""
    return {
        "predict": m.predict(),
        "predict_new": m.predict(newdata=data.head(12)),
        "refit": m.refit(response).coefs,
        "simulate": m.simulate(nsim=2, seed=7),
        "anova": m.anova() if m.kind == "lmer" else m.drop1(),
        "confint": m.confint(method="wald"),
        "update": m.update(". ~ . - 1" if m.kind == "lmer" else ". ~ 1 + (1 | herd)").coefs,
    }


def run_cell(shell: Any, cell: str) -> Any:
    """Run ``cell`` in the IPython shell; raise what it raised (before or during
    execution); return its result."""
    result = shell.run_cell(cell, store_history=False)
    for err in (result.error_before_exec, result.error_in_exec):
        if err is not None:
            raise err
    return result.result
