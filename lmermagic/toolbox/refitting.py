"""The same model on a new response (lme4's ``refit()``) or with a changed
formula or options (R's ``update()``)."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from .. import convert
from ..errors import DataError
from ..fitted import FittedModel
from ..fitting import issue_warnings, model_fields
from ..isolation import fit_any
from ..rbridge import get_r, to_py_frames
from ..request import FitRequest, formula_text, raise_formula_problem
from ._common import (
    call,
    caller_index,
    check_model,
    r_columns,
    raise_r_error,
    reissue,
)

__all__ = ["refit", "update"]

M = TypeVar("M", bound=FittedModel)


def _response_values(m: FittedModel, newresponse: Any) -> np.ndarray:
    """The new response for R's rows (the model's rows minus those R dropped)."""
    index = caller_index(m)
    keep = ~index.isin(m.dropped) if len(m.dropped) else np.ones(len(index), dtype=bool)
    try:
        if isinstance(newresponse, (pd.DataFrame, pd.Series)):
            values = newresponse.to_numpy(dtype=float, na_value=np.nan)
            n = len(newresponse)
            by_index = newresponse.index
        else:
            values = np.asarray(newresponse, dtype=float)
            n = values.shape[0] if values.ndim else 0
            by_index = None
    except (TypeError, ValueError) as exc:
        raise DataError(f"newresponse must hold numbers (one per observation); {exc}. "
                        "Convert it, e.g. pd.to_numeric(...).") from None
    if values.ndim not in (1, 2) or (values.ndim == 2 and values.shape[1] not in (1, 2)):
        raise DataError("newresponse is one column (or two, successes and failures, for a "
                        "binomial model).")
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if by_index is not None and n == len(index) and by_index.equals(index):
        values = values[keep]
    elif by_index is not None and n == len(index) and set(by_index) == set(index):
        values = (newresponse.reindex(index).to_numpy(dtype=float))[keep]
    elif n == len(index) and n != m.nobs:
        values = values[keep]
    elif n != m.nobs:
        raise DataError(f"newresponse has {n} values; the model has {m.nobs} observations "
                        f"({len(index)} rows in its data).")
    if np.isnan(values).any():
        raise DataError("newresponse has missing values in rows the model uses.")
    return np.asarray(values, dtype=float)


def refit(m: M, newresponse: Any) -> M:
    """The same model fitted to a new response, as lme4's ``refit(m, newresp)``.

    Parameters
    ----------
    newresponse : Series, array or DataFrame
        One value per observation: aligned on the model data's index (a Series
        or DataFrame with that index), or in the order of the model's rows. A
        binomial model with ``cbind(s, f)`` takes two columns.

    Returns
    -------
    LmerModel
        A new model (same formula, design and options). As in R, its
        ``update()`` would fit to the original data again.
    """
    check_model(m)
    values = _response_values(m, newresponse)
    ncol = 1 if values.ndim == 1 else values.shape[1]
    flat = np.ascontiguousarray(values.ravel(order="F"), dtype=np.float64)
    res = get_r().run("lmm_tb_refit", m.r_object, flat, ncol, m.kind, m.ddf,
                      convert=lambda obj: to_py_frames(obj, ("fit",)))
    texts = list(res.get("warnings") or []) + list(res.get("messages") or [])
    if "error" in res:
        raise_r_error("refit", str(res["error"][0]))
    reissue(texts, "refit")
    value = res["value"]
    return _model_like(m, value["fit"], value["tables"], texts)


def _model_like(m: M, fit: Any, t: dict[str, Any], texts: list[str]) -> M:
    """A copy of m with the R results of a refit."""
    fields = model_fields(t, texts, caller_index(m))
    fields["meta"] = {**fields["meta"], "refit_of": m.formula}
    return dataclasses.replace(m, r_object=fit, name=None, **fields)


def _build_params() -> set[str]:
    return set(inspect.signature(FitRequest.build).parameters) - {"formula", "kind", "cls"}


def _update_formula(m: FittedModel, formula: str) -> tuple[str, list[str]]:
    if not isinstance(formula, str) or not formula.strip():
        raise DataError("update(): formula is a string like '. ~ . - Days' or a full formula.")
    formula = formula_text(formula, "update()'s formula", dot=m.request.formula)
    columns = list(convert.as_pandas(m.data, m.data_name).columns) if m.data is not None \
        else r_columns(m)
    allowed = get_r().allowed(m.request.extra_functions)
    value = call("lmm_tb_update_formula", m.request.formula, formula, columns,
                 allowed, what="update")
    if "check" in value:
        raise_formula_problem(value["check"], formula, columns)
    return str(value["formula"][0]), list(value.get("vars") or [])


def update(m: M, formula: str | None = None, **changes: Any) -> M:
    """Refit with a changed formula and/or options, as R's ``update(m, ...)``.

    Parameters
    ----------
    formula : str, optional
        A new formula; ``.`` stands for the old left or right side as in R's
        ``update.formula``: ``". ~ . - Days"``, ``". ~ . + (1 | Pig)"``.
    **changes
        Any option of :func:`lmermagic.lmer` / :func:`lmermagic.glmer`
        (``reml``, ``ddf``, ``family``, ``factors``, ``weights``, ``offset``,
        ``contrasts``, ``control``, ``nagq``, ``allow_functions``, ...), or
        ``data=`` a new DataFrame.

    Returns
    -------
    LmerModel
        Fitted as :func:`lmermagic.api.fit` fits, on the model's data (the caller's
        DataFrame as it is now).

    Examples
    --------
    >>> m0 = m.update(". ~ . - Days")
    >>> m_ml = m.update(reml=False)
    """
    check_model(m)
    req: FitRequest = m.request
    data = changes.pop("data", m.data)
    if data is None:
        raise DataError("update(): this model has no data attached; pass data=.")
    if "allow_functions" in changes:
        changes["extra_functions"] = tuple(changes.pop("allow_functions") or ())
    params = _build_params()
    unknown = sorted(set(changes) - params)
    if unknown:
        raise DataError(f"update() does not know {', '.join(unknown)}; use formula= or one of "
                        f"{', '.join(sorted(params | {'data', 'allow_functions'}))}.")
    new_formula = req.formula
    if formula is not None:
        new_formula, used = _update_formula(m, formula)
        # Like R, which ignores the contrasts of a variable no longer in the
        # model: drop factors/contrasts settings of columns the formula lost.
        if "factors" not in changes and any(c not in used for c in req.factors):
            changes["factors"] = [c for c in req.factors if c in used]
        if "contrasts" not in changes and any(c not in used for c in req.contrasts):
            changes["contrasts"] = {c: (v["type"] + (":" + v["ref"] if v["ref"] else ""))
                                    for c, v in req.contrasts.items() if c in used}
    family = changes.pop("family", _family_text(req))
    kind = "lmer" if family is None else "glmer"
    probe = FitRequest.build(new_formula, kind=kind, family=family,
                             **dict(changes.items()))
    fields: dict[str, Any] = {"formula": probe.formula}
    for key in changes:
        fields[key] = getattr(probe, key)
    if kind != req.kind or family != _family_text(req):
        fields.update(kind=probe.kind, family=probe.family, link=probe.link,
                      reml=probe.reml, ddf=probe.ddf)
    fields.setdefault("name", None)
    request = dataclasses.replace(req, **fields)
    new = fit_any(request, data)
    issue_warnings(new["warnings"])
    return type(m)(**new)


def _family_text(req: FitRequest) -> str | None:
    if req.kind == "lmer":
        return None
    if req.kind == "glmer.nb":
        return "negative_binomial"
    return f"{req.family}(link='{req.link}')" if req.link else req.family
