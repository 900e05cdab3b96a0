"""Confidence intervals: Wald, profile and the parametric bootstrap (its refits
spread over worker processes by :mod:`lmermagic.workers`)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings as _warnings
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, LmerWarning, caller_stacklevel
from ..fitted import FittedModel
from ..rbridge import get_r
from ..workers import chunks, progress, run_tasks
from ._common import call, check_model, positive_int, r_options, seed_arg

__all__ = ["confint"]


def _level(level: Any) -> float:
    try:
        out = float(level)
    except (TypeError, ValueError):
        raise DataError(f"level={level!r} is not a number.") from None
    if not 0 < out < 1:
        raise DataError(f"level must be between 0 and 1 (e.g. 0.95); got {level!r}.")
    return out


def _ci_frame(rows: list[str], lower: Any, upper: Any, names: list[str],
              readable: list[str], estimate: Any, level: float, method: str) -> pd.DataFrame:
    pretty = dict(zip(names, readable))
    est = dict(zip(names, np.asarray(estimate, dtype=float)))
    df = pd.DataFrame({
        "parameter": [pretty.get(r, r) for r in rows],
        "estimate": [est.get(r, np.nan) for r in rows],
        "conf_low": np.asarray(lower, dtype=float),
        "conf_high": np.asarray(upper, dtype=float),
    }, index=pd.Index(rows, name="term"))
    df.attrs.update(level=level, method=method)
    return df


def confint(m: FittedModel, method: str = "wald", level: float = 0.95, nsim: int = 1000,
            seed: int | None = None, workers: int = 1, progress: bool = True) -> pd.DataFrame:
    """Confidence intervals for the fixed effects and the variance components.

    As lme4's ``confint(m, method = "Wald" | "profile" | "boot", level, nsim)``.

    Parameters
    ----------
    method : {"wald", "profile", "boot"}
        ``"wald"``: from the standard errors (R gives none for variance
        components: NaN). ``"profile"``: likelihood profile. ``"boot"``:
        parametric bootstrap percentile intervals (``bootMer``).
    level : float
    nsim : int
        Bootstrap samples.
    seed : int, optional
        Bootstrap seed: the intervals equal R's ``confint(m, method = "boot",
        nsim = nsim, seed = seed)``, whatever ``workers``. R's random number
        state is restored afterwards.
    workers : int
        Bootstrap refits in this many processes (each starts its own R, ~1.5 s
        and ~300 MB); 1 refits here, in chunks.
    progress : bool
        Show the bootstrap's progress line (refits done and failed, time
        elapsed and left) once it has run for about a second, as the live
        status of long fits does; in IPython, ``%config LmerMagics.progress =
        False`` turns it off too.

    Returns
    -------
    pandas.DataFrame
        Index: R's row names (``.sig01``, ``.sig02``, ``.sigma``, fixed
        effects); columns ``parameter`` (lme4's readable name:
        ``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``, ``sigma``),
        ``estimate``, ``conf_low``, ``conf_high``.

    Examples
    --------
    >>> m.confint(method="profile")
    >>> m.confint(method="boot", nsim=500, seed=1, workers=2)
    """
    check_model(m)
    how = str(method).strip().lower()
    how = {"bootstrap": "boot", "parametric": "boot"}.get(how, how)
    if how not in ("wald", "profile", "boot"):
        raise DataError(f"method={method!r}: use 'wald', 'profile' or 'boot'.")
    lev = _level(level)
    if how == "boot":
        return _confint_boot(m, lev, positive_int(nsim, "nsim"), seed_arg(seed),
                             positive_int(workers, "workers"), bool(progress))
    value = call("lmm_tb_confint", m.r_object, m.r_data, r_options(m), how, lev,
                 what=f"{how} confidence intervals")
    return _ci_frame(list(value["rows"]), value["lower"], value["upper"], list(value["names"]),
                     list(value["readable"]), value["estimate"], lev, how)


def _confint_boot(m: FittedModel, level: float, nsim: int, seed: int | None,
                  workers: int, show: bool) -> pd.DataFrame:
    """Parametric bootstrap as lme4's bootMer, refits in chunks.

    bootMer simulates all nsim responses first (one random stream), then refits
    each; refits use no random numbers. So the simulation runs here, once, and
    the refits in chunks -- in this process or in worker processes -- with
    identical results.
    """
    setup = call("lmm_tb_boot_setup", m.r_object, m.r_data, r_options(m), nsim, seed,
                 what="the bootstrap", keep=("state",))
    state = setup["state"]
    names = list(setup["names"])
    k = len(names)
    values = np.full((nsim, k), np.nan)
    messages: list[str] = []
    errors: list[str] = []
    def done(task: tuple[int, int], out: tuple[np.ndarray, list[str], list[str]]) -> None:
        a, b = task
        values[a - 1:b] = out[0].reshape(b - a + 1, k)
        messages.extend(out[1])
        errors.extend(out[2])
        bar.update(b - a + 1, failed=len(out[2]))

    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(progress(nsim, "bootstrap", unit="fit", enabled=show))
        if workers == 1:  # here, on the state in this R: nothing to ship
            run_tasks(_boot_chunk, chunks(nsim, 100), done, setup=_same, payload=state)
        else:  # each worker reads the state once, from a file R wrote
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="lmermagic-boot-"))
            path = os.path.join(tmp, "state.rds")
            get_r().run("lmm_tb_boot_save", state, path)
            run_tasks(_boot_chunk, chunks(nsim, workers * 10), done, setup=_boot_load,
                      payload=path, workers=workers, idle=bar.refresh)
    if messages:
        first = next(iter(dict.fromkeys(messages)))
        _warnings.warn(f"bootstrap: {len(messages)} warning(s) from the {nsim} refits, "
                       f"e.g. {first!r}", LmerWarning, stacklevel=caller_stacklevel())
    if errors:
        _warnings.warn(f"bootstrap: {len(errors)} of {nsim} refits failed and are left out, "
                       f"e.g. {errors[0]!r}", LmerWarning, stacklevel=caller_stacklevel())
    ci = call("lmm_tb_boot_ci", m.r_object, np.ascontiguousarray(values.ravel(order="F")),
              nsim, level, what="bootstrap confidence intervals")
    df = _ci_frame(list(ci["rows"]), ci["lower"], ci["upper"], names,
                   list(setup["readable"]), setup["t0"], level, "boot")
    df.attrs.update(nsim=nsim, seed=seed, failed=len(errors))
    return df


# The bootstrap's tasks (run by lmermagic.workers, here or in a worker process).

def _same(state: Any) -> Any:
    return state


def _boot_load(path: str) -> Any:
    return get_r().run("lmm_tb_boot_load", path, keep=("state",))["state"]


def _boot_chunk(state: Any, task: tuple[int, int]) -> tuple[np.ndarray, list[str], list[str]]:
    a, b = task
    out = get_r().run("lmm_tb_boot_chunk", state, a, b)
    return (np.asarray(out["values"], dtype=float),
            list(out.get("warnings") or []), list(out.get("errors") or []))
