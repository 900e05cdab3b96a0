"""Hypothesis tests: lmerTest's F tests (``anova``, ``drop1``), car's Type II/III
and emmeans' joint tests (``anova``), ``ranova``, and the likelihood-ratio
comparison of models (R's ``anova(m0, m1)``)."""

from __future__ import annotations

import ast
import inspect
import linecache
from collections.abc import Sequence
from typing import Any

import pandas as pd

from .. import clmm_tools
from ..clmm_fit import ClmmFitted
from ..errors import DataError
from ..fitted import FittedModel
from ..rbridge import get_r
from ._anova import plan
from ._common import call, check_model, lmertest_fit, r_options, table
from .selection import lr_table

__all__ = ["anova", "compare", "drop1", "model_anova", "ranova"]


# Our names for emmeans' columns (kept out of COLUMN_NAMES: an emmeans table's
# factor may be called df1).
_JOINT_NAMES = {"df1": "num_df", "df2": "den_df", "F.ratio": "f_ratio"}


def model_anova(m: FittedModel, type: int | str | None = None, ddf: str | None = None,
                engine: str | None = None, statistic: str | None = None) -> pd.DataFrame:
    """Tests of the fixed-effect terms: lmerTest's ``anova``, car's ``Anova`` or
    emmeans' ``joint_tests``.

    Parameters
    ----------
    m : FittedModel
    type : {None, 3, 2, 1}
        Type III, II or I (sequential). None: the engine's default (lmerTest: 3;
        car: 2, as ``car::Anova``). ``joint_tests`` takes no type.
    ddf : str, optional
        Denominator df. lmerTest: ``"satterthwaite"`` (default),
        ``"kenward-roger"``, ``"lme4"`` (lme4's table, no tests). car's F tests:
        Kenward-Roger only. ``joint_tests`` of an lmer model: emmeans' ``lmer.df``
        (``"kenward-roger"``, ``"satterthwaite"``, ``"asymptotic"``; None:
        emmeans' default). A glmer model's tests have no df to choose.
    engine : {None, "lmerTest", "car", "joint_tests"}
        None: lmerTest for an lmer model; for a glmer model ``joint_tests``, or
        car when ``type`` is 2 or 3, or lme4's sequential table for ``type=1``.
    statistic : {None, "F", "Chisq"}
        car's ``test.statistic``: Kenward-Roger F tests (lmer, REML fits only; the
        default for lmer) or Wald chi-square tests (the only one for glmer).

    Returns
    -------
    pandas.DataFrame
        One row per term (index ``term``):

        - lmerTest, ``anova(m, type, ddf)``: ``sum_sq, mean_sq, num_df, den_df,
          f_value, p_value``;
        - car, ``car::Anova(m, type = "II"|"III", test.statistic = "F")``:
          ``f_value, num_df, den_df, p_value``; with ``"Chisq"``: ``chisq, df,
          p_value``. car's Type III tests each term's coefficients = 0 with the
          model's own contrasts; they mean main effects only under sum-to-zero
          contrasts (``contrasts={"x": "sum"}``): with R's default treatment
          contrasts they test effects at the reference levels (car does not warn);
        - ``emmeans::joint_tests(m)``: ``num_df, den_df, f_ratio, p_value`` (lmer),
          ``num_df, den_df, f_ratio, chisq, p_value`` when every ``den_df`` is
          infinite (glmer: Wald chi-square tests, ``chisq = f_ratio * num_df``).
          Rows are emmeans' model terms, by variable (``HEIGHT``, not
          ``scale(HEIGHT)``), and ``(confounded)`` for effects no term
          explains (empty cells); emmeans rounds ``f_ratio`` to 3 decimals and the
          df to 2 (``p_value`` is from the unrounded F). A ``note`` column (and
          ``attrs["heading"]``) appears when emmeans reduced a term's df.
        - glmer, ``type=1``: R's sequential ``anova(m)`` (``npar, sum_sq, mean_sq,
          f_value``, no tests).

    Examples
    --------
    >>> ham = lmermagic.datasets.load("ham", package="lmerTest")
    >>> m = lmermagic.lmer("Informed.liking ~ Product * Information + (1 | Consumer)", ham)
    >>> m.anova()                      # Type III, Satterthwaite (lmerTest)
    >>> m.anova(ddf="kenward-roger")
    >>> m.anova(type=2, engine="car")  # car::Anova(m, type = "II", test.statistic = "F")
    >>> g.anova()                      # glmer: emmeans::joint_tests(g)
    >>> g.anova(type=3)                # glmer: car::Anova(g, type = "III")
    """
    check_model(m)
    p = plan(m.kind != "lmer", type, ddf, engine, statistic, reml=m.reml)
    r = get_r()
    for package in p.packages:
        r.require(package)
    if p.engine == "joint_tests" or (p.engine == "car" and p.type == 2):
        # both fail obscurely on a model without terms
        if set(m.fixef.index) <= {"(Intercept)"}:
            raise DataError(f"{p.engine} tests the model's terms, and this model has none "
                            "besides the intercept.")
    fit = lmertest_fit(m) if p.engine == "lmertest" else m.r_object
    value = call("lmm_tb_anova", fit, m.r_data, r_options(m), p.type, p.ddf, p.engine,
                 p.statistic, what={"car": "car::Anova", "joint_tests": "joint_tests"}.get(
                     p.engine, "anova"))
    out = table(value)
    if p.engine == "joint_tests":
        out = out.rename(columns=_JOINT_NAMES)
    num = out.get("num_df")
    if p.engine != "lmertest" and num is not None and bool((num % 1 == 0).all()):
        out["num_df"] = num.astype("int64")  # whole numbers, as lmerTest's
    return out


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
    if any(m.kind == "glmmTMB" for m in models):
        from ..tmb_toolbox import compare as compare_tmb

        return compare_tmb(list(models), labels)
    value = call("lmm_tb_compare",
                 {lab: m.r_object for lab, m in zip(labels, models)},
                 {lab: m.r_data for lab, m in zip(labels, models)},
                 {lab: r_options(m) for lab, m in zip(labels, models)},
                 labels, refit, what="the model comparison")
    return lr_table(value, labels, models[0].nobs, data_name=models[0].data_name)


def anova(*models: FittedModel, **named_models: Any) -> pd.DataFrame:
    """R's ``anova()``: F tests for one model, a likelihood-ratio comparison for several.

    ``anova(m)`` tests the model's fixed-effect terms as ``m.anova()`` does
    (lmerTest's ``anova(m)`` for an lmer fit: Type III, Satterthwaite df).
    ``anova(m0, m1, ...)`` compares the models as R's ``anova(m0, m1, ...)``
    (lme4's ``anova.merMod``; glmmTMB's and ordinal's for their fits): REML
    fits are refitted with ML first (unless ``refit=False``), rows are sorted
    by the number of parameters, and each row is tested against the one above
    it.

    Parameters
    ----------
    *models : lmermagic.LmerModel, lmermagic.TmbModel or lmermagic.ClmmModel
        One model to test, or two or more fitted to the same data to compare.
        Each is labelled by its ``name`` (the magic's ``-o``), else by the
        caller's variable bound to it, else ``model1``, ``model2``, ...
    **named_models : model, or an option (int, str or bool)
        Models given by keyword, labelled with the keyword
        (``anova(null=m0, full=m1)``). Other keywords are options: for one
        model ``type``, ``ddf``, ``engine`` and ``statistic``, as for
        :meth:`lmermagic.LmerModel.anova`; for several ``refit`` (bool,
        default True: refit REML fits with ML, R's ``refit = TRUE``).

    Returns
    -------
    pandas.DataFrame
        For one model, one row per term (index ``term``): lmerTest's
        ``sum_sq, mean_sq, num_df, den_df, f_value, p_value`` for an lmer
        fit; for a glmer fit emmeans' ``joint_tests`` (``num_df, den_df,
        f_ratio, chisq, p_value``) or, with ``type=2``/``3``, car's
        ``Anova`` (see :meth:`lmermagic.LmerModel.anova`). For several, one
        row per model (index: the labels, in R's order): ``npar, aic, bic,
        loglik, deviance, chisq, df, p_value`` (R's; ``chisq``, ``df`` and
        ``p_value`` missing in the first row), then ``aicc, delta_aicc,
        weight`` (MuMIn's AICc of each row, its difference from the
        smallest, the Akaike weights); ``attrs["heading"]`` has R's heading
        with each model's formula. ordinal's table has no ``bic`` and
        ``deviance``.

    Raises
    ------
    lmermagic.DataError
        No model is given; a keyword is neither a model nor an option the
        call takes; an option has a value it does not take; one clmm model
        (ordinal has no tests of a single clmm fit); glmmTMB and lme4 fits
        mixed; an object that is not a lmermagic model; or tests of the
        terms of a model that has none besides the intercept.
    lmermagic.FitError
        R's ``anova`` (or car's, emmeans') stopped with an error, e.g. for
        models fitted to different rows.
    lmermagic.RPackageMissingError
        The R package the test needs (lmerTest, pbkrtest, car, emmeans) is
        not installed.

    Examples
    --------
    >>> import lmermagic
    >>> sleep = lmermagic.datasets.load("sleepstudy")
    >>> m0 = lmermagic.lmer("Reaction ~ 1 + (Days | Subject)", sleep)
    >>> m1 = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    >>> f = lmermagic.anova(m1)                 # Type III F tests (lmerTest)
    >>> list(f.columns)
    ['sum_sq', 'mean_sq', 'num_df', 'den_df', 'f_value', 'p_value']
    >>> print(round(float(f.loc["Days", "f_value"]), 1))
    45.9
    >>> lr = lmermagic.anova(m0, m1)            # LRT after ML refits
    >>> list(lr.index)
    ['m0', 'm1']
    >>> print(round(float(lr.loc["m1", "chisq"]), 1))
    23.5
    >>> lmermagic.anova(small=m0, big=m1, refit=False).index.tolist()
    ['small', 'big']
    """
    named = {k: v for k, v in named_models.items()
             if isinstance(v, (FittedModel, ClmmFitted))}
    options = {k: v for k, v in named_models.items() if k not in named}
    everything: list[Any] = list(models) + list(named.values())
    if not everything:
        raise DataError("anova() needs a model: lmermagic.anova(m) or anova(m0, m1).")
    if any(isinstance(m, ClmmFitted) for m in everything) and len(everything) == 1:
        return clmm_tools.compare(everything, [])  # raises: ordinal has no such test
    if len(everything) == 1 and not named:
        bad = set(options) - {"type", "ddf", "engine", "statistic"}
        if bad:
            raise DataError("anova(m) takes type=, ddf=, engine= and statistic=; not "
                            f"{', '.join(sorted(bad))}.")
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
    if any(isinstance(m, ClmmFitted) for m in everything):
        return clmm_tools.compare(everything, labels)  # ordinal's anova.clm
    return compare(*everything, names=labels, refit=bool(options.get("refit", True)))
