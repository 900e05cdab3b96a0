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

    Parameters
    ----------
    formula : str
        e.g. ``"rating ~ temp + contact + (1 | judge)"``: the response an
        ordered categorical, at least one random-effect term. Every variable
        must be a column of ``data``; every function an allowed one.
    data : pandas.DataFrame or polars.DataFrame
        The response column must be an ordered Categorical (its category
        order is the order of the levels, lowest first): e.g.
        ``data["rating"] = pd.Categorical(data["rating"], categories=[1, 2, 3,
        4, 5], ordered=True)``. An unordered or numeric response is refused.
        The frame is not changed; only the columns the formula uses go to R.
    link : {"logit", "probit", "cloglog", "loglog", "cauchit"}
    threshold : {"flexible", "symmetric", "symmetric2", "equidistant"}
        As ordinal's ``clmm(link=, threshold=)``.
    allow_functions : sequence of str
        Functions to allow in the formula beyond the built-in allowlist.
    timeout : float, optional
        Seconds after which R is stopped and LmerTimeoutError raised.

    Returns
    -------
    ClmmModel

    Examples
    --------
    >>> wine = lmermagic.datasets.load("wine", package="ordinal")
    >>> m = lmermagic.clmm("rating ~ temp + contact + (1 | judge)", wine)
    >>> round(m.coefs.loc["tempwarm", "estimate"], 4)
    3.063
    """
    request = ClmmRequest.build(formula, link=link, threshold=threshold,
                                extra_functions=tuple(allow_functions), timeout=timeout)
    return fit_clmm(request, data)


def fit_clmm(request: ClmmRequest, data: Any) -> ClmmModel:
    """Fit ``request`` on ``data`` and return the model (R's warnings issued)."""
    fields = fit_fields(request, data)
    issue_warnings(fields["warnings"])
    return ClmmModel(**fields)
