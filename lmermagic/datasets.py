"""Data sets shipped with installed R packages, as pandas DataFrames."""

from __future__ import annotations

import pandas as pd

from .errors import DataError, FitError
from .rformula import no_nul

__all__ = ["SEARCH_PACKAGES", "load"]

# Where load() looks when no package is named, in this order.
SEARCH_PACKAGES = ("lme4", "lmerTest", "geepack", "pbkrtest", "emmeans", "ordinal", "datasets")


def load(name: str, package: str | None = None) -> pd.DataFrame:
    """Load a data set of an installed R package, as R's ``data(name, package = package)``.

    Parameters
    ----------
    name : str
        The data set's name in R, e.g. ``"sleepstudy"``, ``"cbpp"``,
        ``"dietox"``, ``"ham"``.
    package : str or None, optional
        The R package holding it (``"geepack"`` for ``dietox``). Default None:
        the packages of ``lmermagic.datasets.SEARCH_PACKAGES`` are searched in
        turn (lme4, lmerTest, geepack, pbkrtest, emmeans, ordinal for
        ``wine``, then R's own datasets), skipping those not installed.

    Returns
    -------
    pandas.DataFrame
        R's data frame (``as.data.frame()`` of the object), one column per R
        column; factors become Categoricals with R's level order.

    Raises
    ------
    lmermagic.DataError
        ``name`` or ``package`` is not a non-empty string, or holds a NUL
        character; or no package searched has a data set of that name.
    lmermagic.RPackageMissingError
        ``package`` is one lmermagic knows (lme4, lmerTest, emmeans, ...) and
        is not installed in this R.
    lmermagic.RNotAvailableError
        R or rpy2 cannot be started (R starts at the first call that needs it).

    Examples
    --------
    >>> from lmermagic import datasets
    >>> sleep = datasets.load("sleepstudy")
    >>> sleep.shape
    (180, 3)
    >>> list(sleep.columns)
    ['Reaction', 'Days', 'Subject']
    >>> str(sleep["Subject"].dtype)
    'category'
    >>> datasets.load("cbpp", package="lme4").shape
    (56, 4)
    """
    from .rbridge import frame_to_pandas, get_r

    for what, value in (("name", name), ("package", package)):
        if not (isinstance(value, str) and value.strip()) and (what == "name" or value is not None):
            raise DataError(f"datasets.load(): {what} is the name of an R data set"
                            f"{'' if what == 'name' else ' package'} as text, like "
                            f"{'sleepstudy' if what == 'name' else 'lme4'!r}; got {value!r}.")
        if isinstance(value, str):
            no_nul(value, f"datasets.load()'s {what}")
    r = get_r()
    # a package R's version list does not name (ordinal) is tried: a missing one
    # fails in R like a missing data set
    packages = [package] if package else [p for p in SEARCH_PACKAGES
                                          if p == "datasets" or r.versions.get(p, True)]
    if package is not None and package in r.versions and not r.versions[package]:
        r.require(package)
    for pkg in packages:
        try:
            return r.run("lmm_dataset", name, pkg, convert=frame_to_pandas)
        except FitError:
            continue
    where = f"R package '{package}'" if package else "packages " + ", ".join(packages)
    raise DataError(f"no data set '{name}' in {where}.")
