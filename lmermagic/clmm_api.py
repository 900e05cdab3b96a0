"""The Python API for ordinal mixed models: ``clmm``. The ``%clmm`` magic calls it.

(Not ``lmermagic/clmm.py``: a submodule named ``clmm`` would replace the
function ``lmermagic.clmm`` on the package once imported.)
"""

from __future__ import annotations

from typing import Any

from .clmm_fit import ClmmRequest, fit_fields
from .clmm_model import ClmmModel
from .fitting import issue_warnings

__all__ = ["clmm", "fit_clmm"]


def clmm(
    formula: str,
    data: Any,
    *,
    link: str = "logit",
    threshold: str = "flexible",
    allow_functions: list[str] | tuple[str, ...] = (),
    timeout: float | None = None,
) -> ClmmModel:
    """Fit a cumulative link mixed model with R's ``ordinal::clmm``.

    An ordinal regression with random effects, fitted by the Laplace
    approximation: ``F^-1(P(Y <= j)) = theta_j - x'beta - z'b``, with
    thresholds ``theta``, location effects ``beta`` and random effects ``b``.
    The call equals R's ``ordinal::clmm(formula, data, link = link, threshold =
    threshold)``. The formula is checked against lmermagic's allowlist before R
    sees it; only the columns it uses cross to R. A fit with the same call and
    column contents is taken from the session's fit cache.

    Parameters
    ----------
    formula : str
        e.g. ``"rating ~ temp + contact + (1 | judge)"``: the response an
        ordered categorical, at least one random-effect term. Every variable
        must be a column of ``data``; every function an allowed one.
    data : pandas.DataFrame or polars.DataFrame
        The response column must be an ordered Categorical (its category
        order is the order of the levels, lowest first), e.g.
        ``data["rating"] = pd.Categorical(data["rating"], categories=[1, 2, 3,
        4, 5], ordered=True)``, or a polars ``Enum``. An unordered or numeric
        response is refused. The frame is not changed.
    link : {"logit", "probit", "cloglog", "loglog", "cauchit"}
        The link function (ordinal's ``link``); default ``"logit"``.
    threshold : {"flexible", "symmetric", "symmetric2", "equidistant"}
        The structure of the thresholds (ordinal's ``threshold``); default
        ``"flexible"``, one free threshold per pair of adjacent levels.
    allow_functions : list of str or tuple of str
        Functions to allow in the formula beyond the built-in allowlist.
    timeout : float, optional
        Seconds after which R is stopped and ``lmermagic.LmerTimeoutError``
        raised.

    Returns
    -------
    lmermagic.ClmmModel
        The fit; R's warnings are issued as Python warnings and kept in
        ``m.warnings``.

    Raises
    ------
    lmermagic.DataError
        ``link`` or ``threshold`` is not one of ordinal's, the response is not
        an ordered categorical (the message says how to make one), ``data`` is
        empty or not a data frame, or R's checks of the data refused it.
    lmermagic.FormulaError
        The formula cannot be parsed, names a variable that is not a column,
        or calls a function outside the allowlist
        (``lmermagic.UnsafeFormulaError`` for code that could run).
    lmermagic.RPackageMissingError
        The R package ordinal is not installed.
    lmermagic.FitError
        ``clmm()`` stopped with an error (R's message is kept in
        ``r_message``).
    lmermagic.LmerTimeoutError
        The fit took longer than ``timeout``.

    See Also
    --------
    lmermagic.ClmmModel : The fitted model and its methods.

    Examples
    --------
    ordinal's wine data: bitterness ratings 1 to 5 (an ordered Categorical)
    by nine judges, as R's ``clmm(rating ~ temp + contact + (1 | judge), data
    = wine)``:

    >>> import lmermagic
    >>> wine = lmermagic.datasets.load("wine", package="ordinal")
    >>> m = lmermagic.clmm("rating ~ temp + contact + (1 | judge)", wine)
    >>> print(round(float(m.coefs.loc["tempwarm", "estimate"]), 2))
    3.06
    >>> print(round(float(m.varcorr.loc[0, "sdcor"]), 2))  # judge's SD
    1.13
    """
    request = ClmmRequest.build(formula, link=link, threshold=threshold,
                                extra_functions=tuple(allow_functions), timeout=timeout)
    return fit_clmm(request, data)


def fit_clmm(request: ClmmRequest, data: Any) -> ClmmModel:
    """Fit ``request`` on ``data`` and return the model (R's warnings issued)."""
    fields = fit_fields(request, data)
    issue_warnings(fields["warnings"])
    return ClmmModel(**fields)
