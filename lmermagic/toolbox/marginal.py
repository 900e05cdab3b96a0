"""Estimated marginal means, trends and their contrasts, from R's emmeans.

Names, level labels, method names and weights go to R as data, never as R
text; method names are checked against :data:`CONTRAST_METHODS` first.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, did_you_mean
from ..fitted import FittedModel
from ..rbridge import get_r
from ._common import call, check_model, r_columns, r_options, table

__all__ = ["emmeans", "emtrends"]


EMMEANS_ADJUST = ("tukey", "scheffe", "sidak", "bonferroni", "dunnettx", "mvt", "holm",
                  "hochberg", "hommel", "BH", "BY", "fdr", "none")
# emmeans' named contrast methods that lmermagic passes on (R checks again).
CONTRAST_METHODS = ("pairwise", "revpairwise", "trt.vs.ctrl", "consec", "poly", "eff")

Names = str | Sequence[str] | None
At = Mapping[str, Any] | None


def _names_arg(value: Any, what: str, columns: list[str]) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise DataError(f"{what} takes column names (strings); got {item!r}.")
        for part in (p.strip() for p in item.replace("+", ",").split(",")):
            part = part.lstrip("~").strip()
            if not part:
                continue
            if part not in columns:
                raise DataError(f"{what}: '{part}' is not a variable of the model."
                                + did_you_mean(part, columns))
            out.append(part)
    return out


def _kinds(m: FittedModel, cols: list[str]) -> dict[str, tuple[bool, list[str]]]:
    """Per column: (numeric?, levels) of the model's R data."""
    if not cols:
        return {}
    raw = call("lmm_tb_at_kinds", m.r_data, list(cols), what="the model's columns")
    out = {}
    for col in cols:
        info = raw[col]
        levels = info.get("levels")
        levels = [] if levels is None else [str(v) for v in np.atleast_1d(levels)]
        out[col] = (bool(np.asarray(info["numeric"]).ravel()[0]), levels)
    return out


def _number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _at_arg(m: FittedModel, at: At, columns: list[str]
            ) -> tuple[dict[str, Any] | None, list[str]]:
    """at= -> (values per column for R, columns set to mean -/0/+ SD)."""
    if at is None:
        return None, []
    if not isinstance(at, Mapping):
        raise DataError("at takes a dict: column -> list of values, or 'sd' for "
                        "mean - SD, mean, mean + SD of a numeric column.")
    for col in at:
        if not isinstance(col, str) or col not in columns:
            raise DataError(f"at: {col!r} is not a variable of the model."
                            + did_you_mean(str(col), columns))
    kinds = _kinds(m, list(at))
    values: dict[str, Any] = {}
    sd_cols: list[str] = []
    for col, val in at.items():
        numeric, levels = kinds[col]
        if isinstance(val, str) and val == "sd":
            if not numeric:
                raise DataError(f"at: '{col}' is not numeric; 'sd' (mean - SD, mean, "
                                "mean + SD) takes a numeric column.")
            sd_cols.append(col)
            continue
        items: list[Any] = [val] if isinstance(val, (str, numbers.Number)) else list(val)
        if not items:
            raise DataError(f"at: the list of values for '{col}' is empty.")
        if numeric:
            if not all(_number(v) for v in items):
                raise DataError(f"at: '{col}' is numeric; give numbers (or 'sd'), "
                                f"got {items!r}.")
            if not all(math.isfinite(float(v)) for v in items):
                raise DataError(f"at: the values for '{col}' must be finite; got {items!r}.")
            values[col] = np.array([float(v) for v in items], dtype=np.float64)
        else:
            labels = [str(v) for v in items]
            for lab in labels:
                if lab not in levels:
                    raise DataError(f"at: '{lab}' is not a level of '{col}' (levels: "
                                    f"{', '.join(levels)})." + did_you_mean(lab, levels))
            values[col] = labels
    return values or None, sd_cols


def _level_arg(level: Any) -> float:
    if not _number(level) or not 0 < float(level) < 1:
        raise DataError(f"level={level!r}: give a confidence level between 0 and 1, "
                        "e.g. 0.95.")
    return float(level)


def _adjust_arg(adjust: Any) -> str | None:
    if adjust is not None and adjust not in EMMEANS_ADJUST:
        raise DataError(f"adjust={adjust!r}: use one of {', '.join(EMMEANS_ADJUST)}.")
    return adjust  # type: ignore[no-any-return]


def _contrast_arg(pairwise: bool, contrasts: Any, ref: Any
                  ) -> tuple[str | None, dict[str, np.ndarray] | None, str | None]:
    """(method, weights, ref) for R; one of method and weights, or neither."""
    if contrasts is None:
        method = "pairwise" if pairwise else None
        weights = None
    elif isinstance(contrasts, str):
        if contrasts not in CONTRAST_METHODS:
            raise DataError(f"contrasts={contrasts!r}: use one of "
                            f"{', '.join(CONTRAST_METHODS)}, or a dict of weights."
                            + did_you_mean(contrasts, CONTRAST_METHODS))
        if pairwise and contrasts != "pairwise":
            raise DataError(f"pairwise=True and contrasts={contrasts!r} ask for two "
                            "different contrasts; give one.")
        method, weights = contrasts, None
    elif isinstance(contrasts, Mapping):
        if pairwise:
            raise DataError("pairwise=True and custom contrasts ask for two different "
                            "contrasts; give one.")
        if not contrasts:
            raise DataError("contrasts: the dict of weights is empty.")
        method, weights = None, {}
        for name, w in contrasts.items():
            if not isinstance(name, str) or not name:
                raise DataError(f"contrasts: each contrast needs a name (a non-empty "
                                f"string); got {name!r}.")
            items: list[Any] = [w] if isinstance(w, (str, numbers.Number)) else list(w)
            if not items or not all(_number(v) and math.isfinite(float(v)) for v in items):
                raise DataError(f"contrasts: the weights of '{name}' must be finite "
                                f"numbers; got {w!r}.")
            weights[name] = np.array([float(v) for v in items], dtype=np.float64)
    else:
        raise DataError("contrasts takes a method name ('pairwise', 'trt.vs.ctrl', ...) "
                        f"or a dict {{name: weights}}; got {type(contrasts).__name__}.")
    if ref is not None:
        if method != "trt.vs.ctrl":
            raise DataError("ref (the control level) goes with contrasts='trt.vs.ctrl'.")
        if not isinstance(ref, (str, numbers.Number)) or isinstance(ref, bool):
            raise DataError(f"ref takes the control's level label; got {ref!r}.")
        ref = str(ref)
    return method, weights, ref


def _raise_problem(value: dict[str, Any]) -> None:
    problem = value.get("problem")
    if problem is None:
        return
    kind = str(np.atleast_1d(problem)[0])
    labels = [str(v) for v in np.atleast_1d(value.get("labels") or [])]
    rows = ", ".join(f"{i + 1}: {lab}" for i, lab in enumerate(labels))
    if kind == "weights":
        name = str(np.atleast_1d(value["name"])[0])
        size = int(np.atleast_1d(value["size"])[0])
        raise DataError(f"contrasts: '{name}' has {size} weights, but the grid has "
                        f"{len(labels)} rows (within each 'by' group): {rows}.")
    if kind == "ref":
        ref = str(np.atleast_1d(value["ref"])[0])
        raise DataError(f"ref: '{ref}' is not a row of the grid ({rows})."
                        + did_you_mean(ref, labels))
    fixed = [str(v) for v in np.atleast_1d(value.get("fixed") or [])]
    var = str(np.atleast_1d(value["var"])[0])
    raise DataError(f"var: '{var}' is not a variable of the model's fixed effects ("
                    + (", ".join(fixed) or "it has none") + "); emtrends gives the "
                    "slope of a fixed-effect variable.")


def _frame(value: dict[str, Any], at: dict[str, Any] | None) -> pd.DataFrame:
    df = table(value, index_name=None).reset_index(drop=True)
    if at:
        df.attrs["at"] = {k: [float(x) if _number(x) else str(x) for x in np.atleast_1d(v)]
                          for k, v in at.items()}
    return df


def _contrasts(value: dict[str, Any]) -> pd.DataFrame:
    con = table(value, index_name=None).reset_index(drop=True)
    # emmeans gives the labels as a factor or as text depending on the grid.
    if "contrast" in con:
        con["contrast"] = con["contrast"].astype(str)
    con.attrs["adjust"] = str(con["p_adjust"].iloc[0]) if len(con) else "none"
    return con


def emmeans(m: FittedModel, specs: str | Sequence[str], by: Names = None,
            pairwise: bool = False, adjust: str | None = None, type: str = "response",
            at: At = None, contrasts: str | Mapping[str, Sequence[float]] | None = None,
            ref: str | None = None, level: float = 0.95
            ) -> pd.DataFrame | dict[str, pd.DataFrame]:
    """Estimated marginal means, as R's ``emmeans::emmeans(m, specs, by = by, at = at)``,
    and their contrasts, as ``emmeans::contrast(emm, method, adjust = adjust)``.

    Parameters
    ----------
    specs : str or list of str
        The variables to give means for, e.g. ``"Evit"`` or ``["Product",
        "Information"]`` (``"Product + Information"`` works too).
    by : str or list of str, optional
        Means (and contrasts) within each level of these.
    pairwise : bool
        Also the pairwise contrasts; the same as ``contrasts="pairwise"``.
    adjust : str, optional
        p-value adjustment for the contrasts: tukey, sidak, bonferroni, holm,
        fdr, mvt, dunnettx, none, ...; by default emmeans' own for the method.
    type : {"response", "link"}
        For glmer: means on the response scale (back-transformed; contrasts are
        then ratios or odds ratios) or on the link scale.
    at : dict, optional
        The reference grid's values: ``{column: [values]}`` (numbers for a
        numeric column, level labels for a factor), or ``{column: "sd"}`` for
        mean - SD, mean, mean + SD of a numeric column over the rows the model
        used (sample SD, as R's ``sd()``). The values used are in
        ``df.attrs["at"]``.
    contrasts : str or dict, optional
        emmeans' method: "pairwise", "revpairwise", "trt.vs.ctrl", "consec",
        "poly", "eff"; or custom contrasts ``{name: weights}``, one weight per
        row of the grid within each ``by`` group (in the table's order).
    ref : str, optional
        With ``contrasts="trt.vs.ctrl"``: the control, a row label of the grid
        (the level, or the levels joined by spaces for several specs); by
        default the first row.
    level : float
        Confidence level of the means' intervals.

    Returns
    -------
    DataFrame, or dict ``{"emmeans": DataFrame, "contrasts": DataFrame}`` with
    contrasts. Columns as R's summary, renamed: ``emmean`` (or ``response``,
    ``prob``, ``rate``), ``std_error``, ``df``, ``conf_low``, ``conf_high``;
    contrasts ``contrast``, ``estimate`` (or ``ratio``, ``odds_ratio``),
    ``std_error``, ``df``, ``t_ratio``/``z_ratio``, ``p_value``, ``p_adjust``
    (the adjustment emmeans applied, "none" if none; also
    ``df.attrs["adjust"]``). Degrees of freedom for lmer models are emmeans'
    default (Kenward-Roger); ``inf`` for glmer.

    Examples
    --------
    >>> m = lmermagic.lmer("Weight ~ Time + Evit + (1 | Pig)", dietox, factors=["Evit"])
    >>> m.emmeans("Evit", contrasts="trt.vs.ctrl", ref="Evit000")["contrasts"]
    >>> m.emmeans("Evit", contrasts={"100 vs rest": [-0.5, 1, -0.5]})
    """
    check_model(m)
    r = get_r()
    r.require("emmeans")
    columns = r_columns(m)
    spec_list = _names_arg(specs, "specs", columns)
    if not spec_list:
        raise DataError("specs names the variables to give means for, e.g. 'Evit'.")
    by_list = _names_arg(by, "by", columns)
    adjust = _adjust_arg(adjust)
    if type not in ("response", "link"):
        raise DataError(f"type={type!r}: use 'response' or 'link'.")
    level = _level_arg(level)
    method, weights, ref = _contrast_arg(bool(pairwise), contrasts, ref)
    at_values, sd_cols = _at_arg(m, at, columns)
    value = call("lmm_tb_emmeans", m.r_object, m.r_data, r_options(m), spec_list,
                 by_list or None, at_values, sd_cols or None, method, weights, ref,
                 adjust, type, level, what="emmeans")
    _raise_problem(value)
    emm = _frame(value["emmeans"], value.get("at"))
    if method is None and weights is None:
        return emm
    return {"emmeans": emm, "contrasts": _contrasts(value["contrasts"])}


def emtrends(m: FittedModel, var: str, specs: Names = None, by: Names = None,
             at: At = None, adjust: str | None = None, level: float = 0.95,
             pairwise: bool = False) -> pd.DataFrame | dict[str, pd.DataFrame]:
    """Slopes of a numeric variable, as R's ``emmeans::emtrends(m, specs, var = var,
    by = by, at = at)`` (``specs = ~1`` when not given: one overall slope).

    Parameters
    ----------
    var : str
        The numeric fixed-effect variable whose slope is estimated.
    specs, by : str or list of str, optional
        A slope per level (or per ``at`` value) of these variables.
    at : dict, optional
        As for :func:`emmeans`; simple slopes at a numeric moderator's mean and
        mean ± SD: ``m.emtrends("Days", specs="mod", at={"mod": "sd"})``.
    adjust : str, optional
        p-value adjustment of the pairwise contrasts (Tukey by default).
    level : float
        Confidence level of the slopes' intervals.
    pairwise : bool
        Also the pairwise differences of the slopes (``contrast(., "pairwise")``).

    Returns
    -------
    DataFrame with the specs' columns (``1`` = "overall" without specs), ``trend``
    (emmeans' ``<var>.trend``; the variable is in ``df.attrs["var"]``),
    ``std_error``, ``df``, ``conf_low``, ``conf_high``; with ``pairwise`` a dict
    ``{"emtrends": ..., "contrasts": ...}``, contrasts as for :func:`emmeans`.
    """
    check_model(m)
    r = get_r()
    r.require("emmeans")
    columns = r_columns(m)
    if not isinstance(var, str):
        raise DataError(f"var takes a column name (a string); got {var!r}.")
    if var not in columns:
        raise DataError(f"var: '{var}' is not a variable of the model."
                        + did_you_mean(var, columns))
    if not _kinds(m, [var])[var][0]:
        raise DataError(f"var: '{var}' is not numeric; emtrends gives slopes of a numeric "
                        "variable (for a factor use m.emmeans).")
    spec_list = _names_arg(specs, "specs", columns)
    by_list = _names_arg(by, "by", columns)
    if (by_list or pairwise) and not spec_list:
        raise DataError(f"{'by' if by_list else 'pairwise'} needs specs: give the "
                        "variables the slope varies with, e.g. specs='Evit'.")
    adjust = _adjust_arg(adjust)
    level = _level_arg(level)
    at_values, sd_cols = _at_arg(m, at, columns)
    value = call("lmm_tb_emtrends", m.r_object, m.r_data, r_options(m), var,
                 spec_list or None, by_list or None, at_values, sd_cols or None,
                 bool(pairwise), adjust, level, what="emtrends")
    _raise_problem(value)
    tr = _frame(value["emtrends"], value.get("at"))
    tr.attrs["var"] = var
    if not pairwise:
        return tr
    return {"emtrends": tr, "contrasts": _contrasts(value["contrasts"])}
