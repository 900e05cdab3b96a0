"""Hypothesis tests: lmerTest's F tests (``anova``, ``drop1``), ``ranova``, and
the likelihood-ratio comparison of models (R's ``anova(m0, m1)``)."""

from __future__ import annotations

import ast
import inspect
import linecache
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ..fitted import FittedModel
from ..rbridge import get_r
from ..request import normalize_ddf
from ._common import call, check_model, lmertest_fit, r_options, table
from .selection import add_aicc_columns

__all__ = ["anova", "compare", "drop1", "model_anova", "ranova"]


_TYPES = {"1": 1, "i": 1, "2": 2, "ii": 2, "3": 3, "iii": 3}


def model_anova(m: FittedModel, type: int | str = 3, ddf: str = "satterthwaite") -> pd.DataFrame:
    """F tests of the fixed-effect terms, as lmerTest's ``anova(m, type, ddf)``.

    Parameters
    ----------
    m : FittedModel
    type : {3, 2, 1}
        Type III (default, as lmerTest), II or I (sequential) sums of squares.
    ddf : {"satterthwaite", "kenward-roger", "lme4"}
        Denominator df; ``"lme4"`` gives lme4's table without df and p-values.

    Returns
    -------
    pandas.DataFrame
        One row per term: ``sum_sq, mean_sq, num_df, den_df, f_value, p_value``.
        For a glmer model only ``type=1`` exists: R's ``anova(m)`` (``npar,
        sum_sq, mean_sq, f_value``, no tests).

    Examples
    --------
    >>> ham = lmermagic.datasets.load("ham", package="lmerTest")
    >>> m = lmermagic.lmer("Informed.liking ~ Product * Information + (1 | Consumer)", ham)
    >>> m.anova()                      # Type III, Satterthwaite
    >>> m.anova(ddf="kenward-roger")
    """
    check_model(m)
    key = str(type).strip().lower()
    if key not in _TYPES:
        raise DataError(f"type={type!r}: use 3 (Type III), 2 or 1.")
    kind = _TYPES[key]
    method = normalize_ddf(ddf)
    r = get_r()
    if m.kind != "lmer":
        if kind != 1:
            raise DataError(
                "F tests with df (Type II/III) do not exist for a glmer model. Use "
                "m.drop1() for likelihood-ratio tests of each term, lmermagic.anova(m0, m1) "
                "to compare nested models, or m.anova(type=1) for R's sequential table "
                "without tests."
            )
    else:
        r.require("lmerTest")
        if method == "kenward-roger":
            r.require("pbkrtest")
    fit = lmertest_fit(m) if m.kind == "lmer" else m.r_object
    value = call("lmm_tb_anova", fit, m.r_data, r_options(m), kind, method, what="anova")
    return table(value)


def ranova(m: FittedModel) -> pd.DataFrame:
    """Likelihood-ratio tests of the random-effect terms, as lmerTest's ``ranova(m)``.

    Each random-effect term is reduced (a slope removed, or the term dropped) and
    the model refitted (REML stays REML). Rows: ``<none>`` (the model itself) and
    one per reduction, as R names them; columns ``npar, loglik, aic, lrt, df,
    p_value``.
    """
    check_model(m)
    if m.kind != "lmer":
        raise DataError("ranova() is lmerTest's test for lmer models; for a glmer model "
                        "compare fits with lmermagic.anova(m0, m1).")
    get_r().require("lmerTest")
    return table(call("lmm_tb_ranova", m.r_object, m.r_data, r_options(m), what="ranova"))


def drop1(m: FittedModel) -> pd.DataFrame:
    """Tests of dropping each fixed-effect term, as R's ``drop1(m)``.

    lmer: lmerTest's F tests (``sum_sq, mean_sq, num_df, den_df, f_value,
    p_value``, with the model's df method). glmer: lme4's likelihood-ratio tests,
    ``drop1(m, test = "Chisq")`` (``npar, aic, lrt, p_value``).
    """
    check_model(m)
    fit = m.r_object
    if m.kind == "lmer":
        get_r().require("lmerTest")
        fit = lmertest_fit(m)
    return table(call("lmm_tb_drop1", fit, m.r_data, r_options(m), what="drop1"))


def _caller_names(models: Sequence[Any]) -> list[str | None]:
    """The names the caller gave these exact objects, if any.

    Looks at the first frame outside lmermagic. First the call expression
    itself (Python 3.11+ knows its source span): ``anova(full, null)`` gives
    'full', 'null' even when other variables hold the same models. Else the
    frame's variables bound to each object, locals before globals; private
    names (``_``, ``_12``: IPython's output cache) are skipped.
    """
    frame = inspect.currentframe()
    outer = frame.f_back if frame is not None else None
    try:
        while outer is not None and str(outer.f_globals.get("__name__", "")).startswith(
                "lmermagic"):
            outer = outer.f_back
        if outer is None:
            return [None] * len(models)
        scopes = [outer.f_locals, outer.f_globals]
        in_call = _call_arg_names(outer)
        out: list[str | None] = []
        for i, m in enumerate(models):
            name = in_call[i] if i < len(in_call) else None
            if name is not None and not any(s.get(name) is m for s in scopes):
                name = None
            for scope in scopes:
                if name:
                    break
                name = next((k for k, v in list(scope.items())
                             if v is m and not k.startswith("_")), None)
            out.append(name)
        return out
    finally:
        del frame, outer


def _call_arg_names(frame: Any) -> list[str | None]:
    """Positional arguments of the call the frame is executing, as variable names."""
    try:
        positions = list(frame.f_code.co_positions())[frame.f_lasti // 2]
        first, last, col, end_col = positions
        lines = linecache.getlines(frame.f_code.co_filename, frame.f_globals)
        if None in (first, last, col, end_col) or not lines:
            return []
        chunk = lines[first - 1:last]
        chunk[-1] = chunk[-1].encode()[:end_col].decode(errors="ignore")
        chunk[0] = chunk[0].encode()[col:].decode(errors="ignore")
        node = ast.parse("".join(chunk).strip(), mode="eval").body
    except (SyntaxError, ValueError, IndexError, TypeError, AttributeError):
        # no source (exec'd string), Python < 3.11 (no co_positions), odd layout
        return []
    if not isinstance(node, ast.Call):
        return []
    return [a.id if isinstance(a, ast.Name) else None for a in node.args]


def compare(*models: FittedModel, names: Sequence[str] | None = None,
            refit: bool = True) -> pd.DataFrame:
    """Likelihood-ratio comparison of models, exactly as R's ``anova(m0, m1, ...)``.

    As lme4's ``anova.merMod``: REML fits are refitted with ML first (unless
    ``refit=False``), rows are sorted by the number of parameters, and each row
    is tested against the one above it.

    Parameters
    ----------
    *models : FittedModel
        Two or more models fitted to the same data.
    names : list of str, optional
        Row labels, one per model in the order given. Without them each model
        is labelled by its ``name`` (the magic's ``-o``), else by the caller's
        variable bound to it, else ``model1``, ``model2``, ...
    refit : bool
        Refit REML models with ML (R's default ``refit = TRUE``).

    Returns
    -------
    pandas.DataFrame
        Index: model labels in R's order; columns ``npar, aic, bic, loglik,
        deviance, chisq, df, p_value`` (R's), then ``aicc, delta_aicc, weight``:
        MuMIn's AICc of each row (``aic + 2k(k+1)/(n-k-1)``, k = ``npar``, n the
        observations), its difference from the smallest, and the Akaike
        weights. They use the likelihoods of the rows, as ``aic`` does: ML
        after R's refit of REML fits (``refit=False``: each fit's own).
        ``attrs["heading"]`` has R's heading with each model's formula.

    Examples
    --------
    >>> m0 = lmermagic.lmer("Reaction ~ 1 + (Days | Subject)", sleep)
    >>> m1 = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    >>> lmermagic.anova(m0, m1)        # rows 'm0', 'm1'
    """
    if len(models) < 2:
        raise DataError("compare() needs two or more models; for the F tests of one model "
                        "use m.anova().")
    for m in models:
        check_model(m)
    if names is not None:
        labels = [str(n) for n in names]
        if len(labels) != len(models):
            raise DataError(f"names= has {len(labels)} labels for {len(models)} models.")
        if len(set(labels)) != len(labels):
            raise DataError(f"names= must be distinct; got {labels}.")
    else:
        found = _caller_names(models)
        labels = []
        for i, (m, var) in enumerate(zip(models, found), start=1):
            label = m.name or var or f"model{i}"
            base, k = label, 2
            while label in labels:
                label, k = f"{base}_{k}", k + 1
            labels.append(label)
    value = call("lmm_tb_compare",
                 {lab: m.r_object for lab, m in zip(labels, models)},
                 {lab: m.r_data for lab, m in zip(labels, models)},
                 {lab: r_options(m) for lab, m in zip(labels, models)},
                 labels, refit, what="the model comparison")
    if "mismatch" in value:
        raise DataError(
            f"all models must be fit to the same data (as R's anova() requires): "
            f"{', '.join(value['mismatch'])} differ(s) from {labels[0]} in the rows or "
            "values of the columns they share."
        )
    df = table(value, index_name="model")
    heading = df.attrs["heading"]
    # anova() refuses models fitted to different numbers of observations
    df = add_aicc_columns(df, df["npar"].to_numpy(dtype=float), np.full(len(df), models[0].nobs),
                          groups=[])
    df.attrs["heading"] = heading
    data_name = models[0].data_name
    df.attrs["heading"] = df.attrs["heading"].replace("Data: data", f"Data: {data_name}", 1)
    return df


def anova(*models: FittedModel, **named_models: Any) -> pd.DataFrame:
    """R's ``anova()``: F tests for one model, a likelihood-ratio comparison for several.

    ``anova(m)`` is :func:`model_anova` (``type=`` and ``ddf=`` may be given);
    ``anova(m0, m1, ...)`` is :func:`compare`, rows labelled with the variable
    names; ``anova(null=m0, full=m1)`` labels them with the keywords.

    Examples
    --------
    >>> lmermagic.anova(m1)                 # Type III F tests
    >>> lmermagic.anova(m0, m1)             # LRT, rows 'm0', 'm1'
    >>> lmermagic.anova(small=m0, big=m1)   # rows 'small', 'big'
    """
    named = {k: v for k, v in named_models.items() if isinstance(v, FittedModel)}
    options = {k: v for k, v in named_models.items() if k not in named}
    everything = list(models) + list(named.values())
    if not everything:
        raise DataError("anova() needs a model: lmermagic.anova(m) or anova(m0, m1).")
    if len(everything) == 1 and not named:
        bad = set(options) - {"type", "ddf"}
        if bad:
            raise DataError(f"anova(m) takes type= and ddf=; not {', '.join(sorted(bad))}.")
        return model_anova(everything[0], **options)
    bad = set(options) - {"refit"}
    if bad:
        raise DataError("anova(m0, m1, ...) takes models (named or not) and refit=; "
                        f"not {', '.join(sorted(bad))}.")
    found = _caller_names(models)
    labels: list[str] = []
    for i, (m, var) in enumerate(zip(models, found), start=1):
        label = m.name or var or f"model{i}"
        base, k = label, 2
        while label in labels or label in named:
            label, k = f"{base}_{k}", k + 1
        labels.append(label)
    labels += list(named)
    return compare(*everything, names=labels, refit=bool(options.get("refit", True)))
