"""Stored fits: a model saved to a file (``load_model``) and the fit cache
(``clear_cache``). Re-exported by api.py, as ``lmermagic.load_model`` and
``lmermagic.clear_cache``."""

from __future__ import annotations

import os

from . import cache, savefile, tmb_save
from .model import LmerModel
from .tmb_model import TmbModel

__all__ = ["clear_cache", "load_model"]


def load_model(path: str | os.PathLike[str],
               allow_functions: list[str] | tuple[str, ...] = ()) -> LmerModel | TmbModel:
    """Read a model that ``m.save(path)`` wrote, with every method working.

    The file's R objects are checked before R reads them (R never runs code
    while unserializing), and the formula passes the same allowlist as a new
    fit's. A glmmTMB model comes back as a :class:`lmermagic.TmbModel`.

    Parameters
    ----------
    path : str or os.PathLike
        The file ``m.save(path)`` wrote.
    allow_functions : list of str, optional
        Functions beyond lmermagic's allowlist that the model's formula may
        call, as for ``lmer(allow_functions=...)``: given by you, never taken
        from the file. Default none.

    Returns
    -------
    lmermagic.LmerModel or lmermagic.TmbModel
        The model, with its tables, data and R fit as when it was saved.

    Raises
    ------
    FileNotFoundError
        There is no file at ``path``.
    lmermagic.ModelFileError
        The file is not a whole model saved by lmermagic (a byte changed, cut
        short, another kind of file, a directory), was saved by a newer
        lmermagic or an lme4 this R cannot read back, holds R objects
        lmermagic does not write, or its formula calls a function outside the
        allowlist and ``allow_functions`` (see ``docs/reliability.md``).
    lmermagic.RPackageMissingError
        The file holds a glmmTMB model and R's glmmTMB is not installed.
    lmermagic.RNotAvailableError
        R or rpy2 cannot be started.

    Examples
    --------
    >>> import lmermagic
    >>> sleep = lmermagic.datasets.load("sleepstudy")
    >>> m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    >>> m.save("sleep.lmm")
    >>> m2 = lmermagic.load_model("sleep.lmm")
    >>> m2.formula
    'Reaction ~ Days + (Days | Subject)'
    >>> print(round(float(m2.coefs.loc["Days", "estimate"]), 2))
    10.47
    """
    tmb = tmb_save.load_fields(path, tuple(allow_functions))  # a glmmTMB model's file
    if tmb is not None:
        return TmbModel(**tmb)
    return LmerModel(**savefile.load_fields(path, tuple(allow_functions)))


def clear_cache(cache_dir: str | os.PathLike[str] | None = None) -> int:
    """Forget the fits remembered in memory and, with ``cache_dir``, delete the
    fits stored there.

    Every fit is remembered for the session, so that the same request on the
    same data is not fitted twice; a fit with ``cache_dir=`` is also stored in
    that directory. The directory itself (and its key) stays.

    Parameters
    ----------
    cache_dir : str or os.PathLike, optional
        A directory given as ``cache_dir=`` to a fit. Default None: only the
        fits in memory are forgotten.

    Returns
    -------
    int
        How many stored fits were deleted from ``cache_dir`` (0 without it).

    Raises
    ------
    OSError
        Rarely: ``cache_dir`` was opened but cannot be listed. A directory
        that cannot be opened privately gives a ``lmermagic.CacheWarning``
        instead, and nothing is deleted there.

    Examples
    --------
    >>> import lmermagic
    >>> lmermagic.clear_cache()
    0
    >>> sleep = lmermagic.datasets.load("sleepstudy")
    >>> m = lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleep, cache_dir="fits")
    >>> m.meta["cache"]
    'miss'
    >>> again = lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleep, cache_dir="fits")
    >>> again.meta["cache"]
    'memory'
    >>> lmermagic.clear_cache("fits")
    1
    """
    return cache.clear(cache_dir)
