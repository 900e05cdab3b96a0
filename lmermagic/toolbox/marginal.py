"""Estimated marginal means and their contrasts, from R's emmeans."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..errors import DataError, did_you_mean
from ..fitted import FittedModel
from ..rbridge import get_r
from ._common import call, check_model, r_columns, r_options, table

__all__ = ["emmeans"]


EMMEANS_ADJUST = ("tukey", "scheffe", "sidak", "bonferroni", "dunnettx", "mvt", "holm",
                  "hochberg", "hommel", "BH", "BY", "fdr", "none")


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


def emmeans(m: FittedModel, specs: str | Sequence[str], by: str | Sequence[str] | None = None,
            pairwise: bool = False, adjust: str | None = None,
            type: str = "response") -> pd.DataFrame | dict[str, pd.DataFrame]:
    """Estimated marginal means, as R's ``emmeans::emmeans(m, specs, by = by)``.

    Parameters
    ----------
    specs : str or list of str
        The variables to give means for, e.g. ``"Evit"`` or ``["Product",
        "Information"]`` (``"Product + Information"`` works too).
    by : str or list of str, optional
        Means (and contrasts) within each level of these.
    pairwise : bool
        Also the pairwise contrasts (``contrast(emm, "pairwise")``, Tukey
        adjusted unless ``adjust`` says otherwise).
    adjust : str, optional
        p-value adjustment for the contrasts: tukey, sidak, bonferroni, holm,
        fdr, none, ...
    type : {"response", "link"}
        For glmer: means on the response scale (back-transformed) or the link.

    Returns
    -------
    DataFrame, or dict ``{"emmeans": DataFrame, "contrasts": DataFrame}`` when
    ``pairwise``. Columns as R's summary, renamed: ``emmean`` (or ``response``,
    ``prob``, ``rate``), ``std_error``, ``df``, ``conf_low``, ``conf_high``;
    contrasts ``contrast``, ``estimate`` (or ``ratio``, ``odds_ratio``),
    ``std_error``, ``df``, ``t_ratio``/``z_ratio``, ``p_value``. Degrees of
    freedom for lmer models are emmeans' default (Kenward-Roger).

    Examples
    --------
    >>> m = lmermagic.lmer("Weight ~ Time + Evit + (1 | Pig)", dietox, factors=["Evit"])
    >>> m.emmeans("Evit", pairwise=True)["contrasts"]
    """
    check_model(m)
    r = get_r()
    r.require("emmeans")
    columns = r_columns(m)
    spec_list = _names_arg(specs, "specs", columns)
    if not spec_list:
        raise DataError("specs names the variables to give means for, e.g. 'Evit'.")
    by_list = _names_arg(by, "by", columns)
    if adjust is not None and adjust not in EMMEANS_ADJUST:
        raise DataError(f"adjust={adjust!r}: use one of {', '.join(EMMEANS_ADJUST)}.")
    if type not in ("response", "link"):
        raise DataError(f"type={type!r}: use 'response' or 'link'.")
    value = call("lmm_tb_emmeans", m.r_object, m.r_data, r_options(m), spec_list,
                 by_list or None, bool(pairwise), adjust, type, what="emmeans")
    emm = table(value["emmeans"], index_name=None).reset_index(drop=True)
    if not pairwise:
        return emm
    con = table(value["contrasts"], index_name=None).reset_index(drop=True)
    return {"emmeans": emm, "contrasts": con}
