"""What an lme4 user does after the fit: comparisons, F tests, predictions,
intervals, marginal means, optimizer checks.

Each function is a thin wrapper of the R function of the same name (lmerTest's
``anova``/``ranova``/``drop1``, lme4's ``predict``/``confint``/``bootMer``/
``simulate``/``refit``/``allFit``, emmeans' ``emmeans``) and returns a pandas
DataFrame with R's numbers. R's statistic columns get stable snake_case names
(``Pr(>F)`` -> ``p_value``, ``Sum Sq`` -> ``sum_sq``, ...); R's heading is kept in
``df.attrs["heading"]``. R's warnings are re-issued as
:class:`~lmermagic.errors.LmerWarning`, R's errors raised as
:class:`~lmermagic.errors.FitError` with R's message.
"""

from __future__ import annotations

import ast
import concurrent.futures as cf
import dataclasses
import importlib.util
import inspect
import linecache
import math
import multiprocessing
import os
import re
import tempfile
import warnings as _warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from . import convert, tables
from .errors import (
    ConvergenceWarning,
    DataError,
    FitError,
    FormulaError,
    LmerWarning,
    SingularFitWarning,
    UnsafeFormulaError,
    did_you_mean,
)
from .model import LmerModel
from .request import FitRequest, normalize_ddf

__all__ = [
    "allfit",
    "anova",
    "compare",
    "confint",
    "drop1",
    "emmeans",
    "model_anova",
    "predict",
    "ranef_table",
    "ranova",
    "refit",
    "simulate",
    "update",
]

# R's column names -> ours. Columns not listed (factor columns of emmeans
# tables, emmean, response, prob, rate, ratio, contrast, ...) keep R's name.
COLUMN_NAMES = {
    "Sum Sq": "sum_sq",
    "Mean Sq": "mean_sq",
    "NumDF": "num_df",
    "DenDF": "den_df",
    "F value": "f_value",
    "Pr(>F)": "p_value",
    "logLik": "loglik",
    "AIC": "aic",
    "BIC": "bic",
    "LRT": "lrt",
    "Df": "df",
    "Chisq": "chisq",
    "Pr(>Chisq)": "p_value",
    "Pr(Chi)": "p_value",
    "SE": "std_error",
    "lower.CL": "conf_low",
    "upper.CL": "conf_high",
    "asymp.LCL": "conf_low",
    "asymp.UCL": "conf_high",
    "t.ratio": "t_ratio",
    "z.ratio": "z_ratio",
    "p.value": "p_value",
    "odds.ratio": "odds_ratio",
}

_MAX_R_MESSAGE = 600

# R messages that only report progress.
_CHATTER = ("Computing profile confidence intervals", "Computing bootstrap confidence",
            "Loading required namespace")

EMMEANS_ADJUST = ("tukey", "scheffe", "sidak", "bonferroni", "dunnettx", "mvt", "holm",
                  "hochberg", "hommel", "BH", "BY", "fdr", "none")


# ---------------------------------------------------------------------------
# Talking to R
# ---------------------------------------------------------------------------

def _r() -> Any:
    from .rbridge import get_r

    return get_r()


def _py(obj: Any, keep: Sequence[str] = ()) -> Any:
    """R result -> Python inside the locked call: data.frames to pandas, named
    lists to dicts, elements named in ``keep`` to RObject handles."""
    import rpy2.rinterface as ri

    from .rbridge import RObject, _attr, _names, frame_to_pandas, to_py

    if isinstance(obj, ri.ListSexpVector):
        klass = _attr(obj, "class")
        if klass is not None and "data.frame" in [str(c) for c in klass]:
            return frame_to_pandas(obj)
        names = _names(obj)
        if names is None:
            return [_py(v, keep) for v in obj]
        return {n: (RObject(v) if n in keep else _py(v, keep)) for n, v in zip(names, obj)}
    return to_py(obj)


def _call(name: str, *args: Any, what: str, keep: Sequence[str] = (), **kwargs: Any) -> Any:
    """Run an lmm_tb_* function, re-issue R's warnings, raise R's error."""
    res = _r().run(name, *args, convert=lambda obj: _py(obj, keep), **kwargs)
    _reissue(list(res.get("warnings") or []) + list(res.get("messages") or []), what)
    if "error" in res:
        _raise(what, str(res["error"][0]))
    return res.get("value")


def _raise(what: str, msg: str) -> NoReturn:
    # R's text can hold a dump of data values: the message shows its start,
    # r_message all of it.
    short = msg if len(msg) <= _MAX_R_MESSAGE else msg[:_MAX_R_MESSAGE] + " [...]"
    raise FitError(f"R could not compute {what}: {short}", r_message=msg)


def _reissue(texts: Sequence[str], what: str) -> None:
    for text in dict.fromkeys(t for t in texts if t):
        if any(text.startswith(c) for c in _CHATTER):
            continue
        low = text.lower()
        category: type[Warning] = LmerWarning
        if "singular" in low:
            category = SingularFitWarning
        elif "converge" in low:
            category = ConvergenceWarning
        _warnings.warn(f"{what}: {text}", category, stacklevel=_user_stacklevel())


def _user_stacklevel() -> int:
    """warnings.warn's stacklevel that points at the first caller outside lmermagic."""
    level = 1
    frame = inspect.currentframe()
    try:
        f = frame.f_back if frame is not None else None  # the caller of this helper
        while f is not None and str(f.f_globals.get("__name__", "")).startswith("lmermagic"):
            f = f.f_back
            level += 1
        return level
    finally:
        del frame


def _opts(m: LmerModel) -> dict[str, Any]:
    if m.r_object is None or m.r_data is None or m.request is None:
        raise DataError("this model has no R fit attached; fit it with lmermagic.lmer/glmer.")
    opts: dict[str, Any] = m.request.r_options()
    return opts


def _table(value: dict[str, Any], index_name: str | None = "term") -> pd.DataFrame:
    """lmm_tb_table()'s list -> DataFrame with our column names, R's row names."""
    df: pd.DataFrame = value["table"]
    df = df.rename(columns={c: COLUMN_NAMES.get(c, c) for c in df.columns})
    rows = value.get("rows") or []
    if index_name is not None and len(rows) == len(df):
        df.index = pd.Index([str(r) for r in rows], name=index_name)
    heading = value.get("heading") or []
    df.attrs["heading"] = "\n".join(str(h).strip("\n") for h in heading)
    return df


def _r_columns(m: LmerModel) -> list[str]:
    """Names of the columns of the model's R data (cached on the model)."""
    cols = m.meta.get("_r_columns")
    if cols is None:
        cols = _call("lmm_tb_columns", m.r_data, what="the model's columns")
        m.meta["_r_columns"] = list(cols)
    return list(cols)


def _lmertest(m: LmerModel) -> Any:
    """lmerTest's object for an lmer model (its Hessian computed once, kept on m)."""
    handle = m.meta.get("_lmertest")
    if handle is None:
        handle = _call("lmm_tb_as_lmertest", m.r_object, m.r_data, _opts(m),
                       what="lmerTest's df", keep=("fit",))["fit"]
        m.meta["_lmertest"] = handle
    return handle


def _caller_index(m: LmerModel) -> pd.Index:
    return m.fitted.index


def _check_kind(m: LmerModel) -> None:
    if not isinstance(m, LmerModel):
        raise DataError(f"expected a model from lmermagic.lmer/glmer, got {type(m).__name__}.")


# ---------------------------------------------------------------------------
# F tests and likelihood-ratio tests
# ---------------------------------------------------------------------------

_TYPES = {"1": 1, "i": 1, "2": 2, "ii": 2, "3": 3, "iii": 3}


def model_anova(m: LmerModel, type: int | str = 3, ddf: str = "satterthwaite") -> pd.DataFrame:
    """F tests of the fixed-effect terms, as lmerTest's ``anova(m, type, ddf)``.

    Parameters
    ----------
    m : LmerModel
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
    _check_kind(m)
    key = str(type).strip().lower()
    if key not in _TYPES:
        raise DataError(f"type={type!r}: use 3 (Type III), 2 or 1.")
    kind = _TYPES[key]
    method = normalize_ddf(ddf)
    r = _r()
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
    fit = _lmertest(m) if m.kind == "lmer" else m.r_object
    value = _call("lmm_tb_anova", fit, m.r_data, _opts(m), kind, method, what="anova")
    return _table(value)


def ranova(m: LmerModel) -> pd.DataFrame:
    """Likelihood-ratio tests of the random-effect terms, as lmerTest's ``ranova(m)``.

    Each random-effect term is reduced (a slope removed, or the term dropped) and
    the model refitted (REML stays REML). Rows: ``<none>`` (the model itself) and
    one per reduction, as R names them; columns ``npar, loglik, aic, lrt, df,
    p_value``.
    """
    _check_kind(m)
    if m.kind != "lmer":
        raise DataError("ranova() is lmerTest's test for lmer models; for a glmer model "
                        "compare fits with lmermagic.anova(m0, m1).")
    _r().require("lmerTest")
    return _table(_call("lmm_tb_ranova", m.r_object, m.r_data, _opts(m), what="ranova"))


def drop1(m: LmerModel) -> pd.DataFrame:
    """Tests of dropping each fixed-effect term, as R's ``drop1(m)``.

    lmer: lmerTest's F tests (``sum_sq, mean_sq, num_df, den_df, f_value,
    p_value``, with the model's df method). glmer: lme4's likelihood-ratio tests,
    ``drop1(m, test = "Chisq")`` (``npar, aic, lrt, p_value``).
    """
    _check_kind(m)
    fit = m.r_object
    if m.kind == "lmer":
        _r().require("lmerTest")
        fit = _lmertest(m)
    return _table(_call("lmm_tb_drop1", fit, m.r_data, _opts(m), what="drop1"))


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


def compare(*models: LmerModel, names: Sequence[str] | None = None,
            refit: bool = True) -> pd.DataFrame:
    """Likelihood-ratio comparison of models, exactly as R's ``anova(m0, m1, ...)``.

    As lme4's ``anova.merMod``: REML fits are refitted with ML first (unless
    ``refit=False``), rows are sorted by the number of parameters, and each row
    is tested against the one above it.

    Parameters
    ----------
    *models : LmerModel
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
        deviance, chisq, df, p_value``. ``attrs["heading"]`` has R's heading
        with each model's formula.

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
        _check_kind(m)
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
    value = _call("lmm_tb_compare",
                  {lab: m.r_object for lab, m in zip(labels, models)},
                  {lab: m.r_data for lab, m in zip(labels, models)},
                  {lab: _opts(m) for lab, m in zip(labels, models)},
                  labels, refit, what="the model comparison")
    if "mismatch" in value:
        raise DataError(
            f"all models must be fit to the same data (as R's anova() requires): "
            f"{', '.join(value['mismatch'])} differ(s) from {labels[0]} in the rows or "
            "values of the columns they share."
        )
    df = _table(value, index_name="model")
    data_name = models[0].data_name
    df.attrs["heading"] = df.attrs["heading"].replace("Data: data", f"Data: {data_name}", 1)
    return df


def anova(*models: LmerModel, **named_models: Any) -> pd.DataFrame:
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
    named = {k: v for k, v in named_models.items() if isinstance(v, LmerModel)}
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


# ---------------------------------------------------------------------------
# Prediction and simulation
# ---------------------------------------------------------------------------

def _re_form(re_form: Any) -> str | None:
    if re_form is None:
        return None
    if isinstance(re_form, float) and math.isnan(re_form):
        return "NA"
    if not isinstance(re_form, str):
        raise DataError(f"re_form={re_form!r}: use None, '~0' or a formula like "
                        "'~(1 | Subject)'.")
    text = re_form.strip()
    if text.upper() == "NA" or re.fullmatch(r"~\s*0", text):
        return "NA"
    return text if text.startswith("~") else "~" + text


def _formula_problem(chk: dict[str, Any], text: str, columns: list[str], what: str) -> None:
    kind = chk["kind"][0]
    if kind == "parse":
        raise FormulaError(f"R cannot parse {what} {text!r}: {chk['message'][0]}")
    if kind == "shape":
        raise FormulaError(f"{what} {text!r}: {chk['message'][0]}")
    bad = chk.get("bad") or []
    if bad:
        raise UnsafeFormulaError(
            f"{what} {text!r} calls {', '.join(bad)}, which lmermagic does not allow in a "
            "formula (it would run R code)."
        )
    unknown = chk.get("unknown") or []
    if unknown:
        raise FormulaError(f"{what} {text!r}: '{unknown[0]}' is not a column of the model's "
                           "data." + did_you_mean(unknown[0], columns))


def predict(m: LmerModel, newdata: Any = None, re_form: str | None = None,
            allow_new_levels: bool = False, type: str = "response") -> pd.Series:
    """Predictions, as lme4's ``predict(m, newdata, re.form, allow.new.levels, type)``.

    Parameters
    ----------
    newdata : DataFrame, optional
        Rows to predict; without it, the model's own rows (rows R dropped for
        missing values give NaN). Only the model's columns are used. Text and
        Categorical columns are matched to the model's factor levels by label.
    re_form : str, optional
        ``None``: all random effects (R's ``re.form = NULL``); ``"~0"`` or
        ``"NA"``: population level (``re.form = NA``); or a formula of some of
        the model's random-effect terms, e.g. ``"~(1 | Subject)"``.
    allow_new_levels : bool
        Let grouping-factor levels unseen in the fit predict at population
        level for that term (R's ``allow.new.levels``).
    type : {"response", "link"}
        For glmer: the mean (``"response"``) or the linear predictor.

    Returns
    -------
    pandas.Series
        On ``newdata``'s index (or the model data's); rows with missing values
        give NaN.

    Examples
    --------
    >>> new = pd.DataFrame({"Days": [0, 5], "Subject": ["308", "308"]})
    >>> m.predict(new)
    >>> m.predict(new, re_form="~0")
    """
    _check_kind(m)
    if type not in ("response", "link"):
        raise DataError(f"type={type!r}: use 'response' or 'link'.")
    rf = _re_form(re_form)
    from .rbridge import RFrame

    rnew: Any = None
    index = _caller_index(m)
    columns = _r_columns(m)
    if newdata is not None:
        df = convert.as_pandas(newdata, "newdata")
        convert.check_labels(df, "newdata")
        used = [c for c in df.columns if c in columns]
        rnew = RFrame([convert.encode_column(c, df[c]) for c in used], len(df))
        index = df.index
    allowed = _r().allowed(m.request.extra_functions)
    try:
        value = _call("lmm_tb_predict", m.r_object, m.r_data, _opts(m), rnew, rf,
                      bool(allow_new_levels), type, allowed, what="predict")
    except FitError as exc:
        if "new levels detected" in exc.r_message:
            raise DataError(f"newdata has levels the model was not fitted with: R says "
                            f"'{exc.r_message.strip()}'. allow_new_levels=True predicts them "
                            "at the population level for that term.") from None
        hit = re.search(r"object '([^']+)' not found", exc.r_message)
        if newdata is not None and hit and hit.group(1) in columns:
            name = hit.group(1)
            raise DataError(f"newdata has no column '{name}', which the model uses."
                            + did_you_mean(name, list(convert.as_pandas(newdata).columns))
                            ) from None
        raise
    if "check" in value:
        _formula_problem(value["check"], str(re_form), columns, "re_form")
    if "bad_levels" in value:
        bad = "; ".join(value["bad_levels"])
        raise DataError(f"newdata has levels the model was not fitted with ({bad}); a "
                        "fixed effect cannot be predicted for a level it has no estimate for.")
    fit = np.asarray(value["fit"], dtype=float)
    if newdata is None:
        dropped = np.asarray(value["dropped"] if value["dropped"] is not None else [],
                             dtype=np.int64)
        return tables.on_caller_index(fit, dropped, index, "predicted")
    return pd.Series(fit, index=index, name="predicted")


def simulate(m: LmerModel, nsim: int = 1, seed: int | None = None) -> pd.DataFrame:
    """Responses simulated from the fitted model, as R's ``simulate(m, nsim, seed)``.

    New random effects and new noise each time (lme4's ``use.u = FALSE``). With
    ``seed`` the numbers equal R's ``simulate(m, nsim, seed = seed)``, and R's
    random number state is put back afterwards (lme4's own leaves it changed).

    Returns
    -------
    pandas.DataFrame
        Columns ``sim_1 ... sim_<nsim>`` on the model data's index (NaN for rows
        R dropped). For a two-column binomial response (``cbind(successes,
        failures)``) the simulated successes.
    """
    _check_kind(m)
    nsim = _positive_int(nsim, "nsim")
    value = _call("lmm_tb_simulate", m.r_object, nsim, _seed(seed), what="simulate")
    index = _caller_index(m)
    dropped = np.asarray(value["dropped"] if value["dropped"] is not None else [],
                         dtype=np.int64)
    sims = value["sims"]
    cols = sims if isinstance(sims, list) else list(sims.values())
    return pd.DataFrame({name: tables.on_caller_index(np.asarray(col, dtype=float), dropped,
                                                      index, name)
                         for name, col in zip(value["names"], cols)}, index=index)


def _positive_int(value: Any, what: str) -> int:
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise DataError(f"{what}={value!r} is not a whole number.") from None
    if out < 1 or out != value:
        raise DataError(f"{what} must be a positive whole number; got {value!r}.")
    return out


def _seed(seed: Any) -> int | None:
    if seed is None:
        return None
    try:
        out = int(seed)
    except (TypeError, ValueError):
        raise DataError(f"seed={seed!r} is not a whole number.") from None
    if out != seed or abs(out) > 2**31 - 1:
        raise DataError(f"seed must be a whole number within ±2**31; got {seed!r}.")
    return out


# ---------------------------------------------------------------------------
# Confidence intervals
# ---------------------------------------------------------------------------

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


def confint(m: LmerModel, method: str = "wald", level: float = 0.95, nsim: int = 1000,
            seed: int | None = None, workers: int = 1) -> pd.DataFrame:
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
        and ~300 MB); 1 refits here, in chunks. A progress bar (tqdm) is shown.

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
    _check_kind(m)
    how = str(method).strip().lower()
    how = {"bootstrap": "boot", "parametric": "boot"}.get(how, how)
    if how not in ("wald", "profile", "boot"):
        raise DataError(f"method={method!r}: use 'wald', 'profile' or 'boot'.")
    lev = _level(level)
    if how == "boot":
        return _confint_boot(m, lev, _positive_int(nsim, "nsim"), _seed(seed),
                             _positive_int(workers, "workers"))
    value = _call("lmm_tb_confint", m.r_object, m.r_data, _opts(m), how, lev,
                  what=f"{how} confidence intervals")
    return _ci_frame(list(value["rows"]), value["lower"], value["upper"], list(value["names"]),
                     list(value["readable"]), value["estimate"], lev, how)


class _NoBar:
    def update(self, n: int) -> None:
        pass


@contextmanager
def _progress(total: int, desc: str) -> Iterator[Any]:
    try:
        # tqdm.auto picks the notebook widget, which needs ipywidgets (without
        # it, tqdm warns "IProgress not found"): then the text bar.
        if importlib.util.find_spec("ipywidgets") is not None:
            from tqdm.auto import tqdm
        else:
            from tqdm import tqdm
    except ImportError:  # tqdm is optional: no bar
        yield _NoBar()
        return
    bar = tqdm(total=total, desc=desc, unit="fit")
    try:
        yield bar
    finally:
        bar.close()


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size - 1, n)) for a in range(1, n + 1, size)]


def _confint_boot(m: LmerModel, level: float, nsim: int, seed: int | None,
                  workers: int) -> pd.DataFrame:
    """Parametric bootstrap as lme4's bootMer, refits in chunks.

    bootMer simulates all nsim responses first (one random stream), then refits
    each; refits use no random numbers. So the simulation runs here, once, and
    the refits in chunks -- in this process or in worker processes -- with
    identical results.
    """
    setup = _call("lmm_tb_boot_setup", m.r_object, m.r_data, _opts(m), nsim, seed,
                  what="the bootstrap", keep=("state",))
    state = setup["state"]
    names = list(setup["names"])
    k = len(names)
    values = np.full((nsim, k), np.nan)
    messages: list[str] = []
    errors: list[str] = []
    r = _r()
    with _progress(nsim, "bootstrap") as bar:
        if workers == 1:
            for a, b in _chunks(nsim, max(1, math.ceil(nsim / 100))):
                out = r.run("lmm_tb_boot_chunk", state, a, b)
                values[a - 1:b] = np.asarray(out["values"], dtype=float).reshape(b - a + 1, k)
                messages += list(out.get("warnings") or [])
                errors += list(out.get("errors") or [])
                bar.update(b - a + 1)
        else:
            with tempfile.TemporaryDirectory(prefix="lmermagic-boot-") as tmp:
                path = os.path.join(tmp, "state.rds")
                r.run("lmm_tb_boot_save", state, path)
                ctx = multiprocessing.get_context("spawn")
                size = max(1, math.ceil(nsim / (workers * 10)))
                with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                            initializer=_boot_worker_init,
                                            initargs=(path,)) as pool:
                    futures = [pool.submit(_boot_worker_chunk, a, b)
                               for a, b in _chunks(nsim, size)]
                    try:
                        for fut in cf.as_completed(futures):
                            a, b, vals, warns, errs = fut.result()
                            values[a - 1:b] = np.asarray(vals, dtype=float).reshape(
                                b - a + 1, k)
                            messages += warns
                            errors += errs
                            bar.update(b - a + 1)
                    except BaseException:
                        for fut in futures:
                            fut.cancel()
                        raise
    if messages:
        first = next(iter(dict.fromkeys(messages)))
        _warnings.warn(f"bootstrap: {len(messages)} warning(s) from the {nsim} refits, "
                       f"e.g. {first!r}", LmerWarning, stacklevel=_user_stacklevel())
    if errors:
        _warnings.warn(f"bootstrap: {len(errors)} of {nsim} refits failed and are left out, "
                       f"e.g. {errors[0]!r}", LmerWarning, stacklevel=_user_stacklevel())
    ci = _call("lmm_tb_boot_ci", m.r_object, np.ascontiguousarray(values.ravel(order="F")),
               nsim, level, what="bootstrap confidence intervals")
    df = _ci_frame(list(ci["rows"]), ci["lower"], ci["upper"], names,
                   list(setup["readable"]), setup["t0"], level, "boot")
    df.attrs.update(nsim=nsim, seed=seed, failed=len(errors))
    return df


# Worker-process side of the bootstrap (multiprocessing "spawn": a fresh
# interpreter that imports lmermagic and starts its own R).
_WORKER: dict[str, Any] = {}


def _boot_worker_init(path: str) -> None:
    _WORKER["state"] = _r().run("lmm_tb_boot_load", path, keep=("state",))["state"]


def _boot_worker_chunk(a: int, b: int) -> tuple[int, int, np.ndarray, list[str], list[str]]:
    out = _r().run("lmm_tb_boot_chunk", _WORKER["state"], a, b)
    return (a, b, np.asarray(out["values"], dtype=float),
            list(out.get("warnings") or []), list(out.get("errors") or []))


# ---------------------------------------------------------------------------
# Marginal means, random effects, optimizers
# ---------------------------------------------------------------------------

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


def emmeans(m: LmerModel, specs: str | Sequence[str], by: str | Sequence[str] | None = None,
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
    _check_kind(m)
    r = _r()
    r.require("emmeans")
    columns = _r_columns(m)
    spec_list = _names_arg(specs, "specs", columns)
    if not spec_list:
        raise DataError("specs names the variables to give means for, e.g. 'Evit'.")
    by_list = _names_arg(by, "by", columns)
    if adjust is not None and adjust not in EMMEANS_ADJUST:
        raise DataError(f"adjust={adjust!r}: use one of {', '.join(EMMEANS_ADJUST)}.")
    if type not in ("response", "link"):
        raise DataError(f"type={type!r}: use 'response' or 'link'.")
    value = _call("lmm_tb_emmeans", m.r_object, m.r_data, _opts(m), spec_list,
                  by_list or None, bool(pairwise), adjust, type, what="emmeans")
    emm = _table(value["emmeans"], index_name=None).reset_index(drop=True)
    if not pairwise:
        return emm
    con = _table(value["contrasts"], index_name=None).reset_index(drop=True)
    return {"emmeans": emm, "contrasts": con}


def ranef_table(m: LmerModel) -> pd.DataFrame:
    """The conditional modes of the random effects with their conditional SDs.

    As R's ``as.data.frame(ranef(m, condVar = TRUE))``: one row per group,
    term and level; columns ``group, term, level, condval, condsd``.
    """
    _check_kind(m)
    v = _call("lmm_tb_ranef_table", m.r_object, what="ranef")
    return pd.DataFrame({"group": list(v["group"]), "term": list(v["term"]),
                         "level": list(v["level"]),
                         "condval": np.asarray(v["condval"], dtype=float),
                         "condsd": np.asarray(v["condsd"], dtype=float)})


def allfit(m: LmerModel, maxfun: int = 100_000) -> pd.DataFrame:
    """Refit with every available optimizer, as lme4's ``allFit(m)``.

    The standard check after a convergence warning: if all optimizers agree on
    the estimates and the log-likelihood, the warning is a false alarm.
    Optimizers: bobyqa, Nelder_Mead, nlminbwrap, nloptwrap with NLOPT_LN_NELDERMEAD
    and NLOPT_LN_BOBYQA (plus nmkbw and optimx L-BFGS-B when the R packages
    dfoptim / optimx are installed), each with ``maxfun`` evaluations and the
    model's other control settings.

    Returns
    -------
    pandas.DataFrame
        Index: optimizer; columns: the fixed effects, the standard deviations /
        correlations (``sd_(Intercept)|Subject``, ``cor_(Intercept).Days|Subject``,
        ``sigma``), ``loglik``, ``converged`` (no error and no convergence
        message), ``messages`` (R's warnings and messages), ``feval``, ``seconds``.
    """
    _check_kind(m)
    v = _call("lmm_tb_allfit", m.r_object, m.r_data, _opts(m),
              float(_positive_int(maxfun, "maxfun")), what="allFit")
    fe_names = list(v["fixef_names"])
    vc_names = list(v["sdcor_names"])
    records = []
    for row in v["rows"]:
        rec: dict[str, Any] = {"optimizer": row["optimizer"][0]}
        fe = np.asarray(row["fixef"], dtype=float)
        rec.update(zip(fe_names, fe if len(fe) == len(fe_names) else [np.nan] * len(fe_names)))
        sd = np.asarray(row["sdcor"] if row["sdcor"] is not None else [], dtype=float)
        rec.update(zip(vc_names, sd if len(sd) == len(vc_names) else [np.nan] * len(vc_names)))
        ok = bool(np.asarray(row["ok"])[0])
        msg = str((row["messages"] or [""])[0] or "")
        rec["loglik"] = float(np.asarray(row["loglik"], dtype=float)[0])
        rec["converged"] = ok and not msg
        rec["messages"] = msg
        feval = np.asarray(row["feval"] if row["feval"] is not None else [], dtype=float)
        rec["feval"] = float(feval[0]) if len(feval) else np.nan
        rec["seconds"] = float(np.asarray(row["time"], dtype=float)[0])
        records.append(rec)
    return pd.DataFrame.from_records(records).set_index("optimizer")


# ---------------------------------------------------------------------------
# refit() and update()
# ---------------------------------------------------------------------------

def _response_values(m: LmerModel, newresponse: Any) -> np.ndarray:
    """The new response for R's rows (the model's rows minus those R dropped)."""
    index = _caller_index(m)
    keep = ~index.isin(m.dropped) if len(m.dropped) else np.ones(len(index), dtype=bool)
    if isinstance(newresponse, (pd.DataFrame, pd.Series)):
        values = newresponse.to_numpy(dtype=float)
        n = len(newresponse)
        by_index = newresponse.index
    else:
        values = np.asarray(newresponse, dtype=float)
        n = values.shape[0] if values.ndim else 0
        by_index = None
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


def refit(m: LmerModel, newresponse: Any) -> LmerModel:
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
    _check_kind(m)
    values = _response_values(m, newresponse)
    ncol = 1 if values.ndim == 1 else values.shape[1]
    flat = np.ascontiguousarray(values.ravel(order="F"), dtype=np.float64)
    res = _r().run("lmm_tb_refit", m.r_object, flat, ncol, m.kind, m.ddf,
                   convert=lambda obj: _py(obj, ("fit",)))
    texts = list(res.get("warnings") or []) + list(res.get("messages") or [])
    if "error" in res:
        _raise("refit", str(res["error"][0]))
    _reissue(texts, "refit")
    value = res["value"]
    return _model_like(m, value["fit"], value["tables"], texts)


def _model_like(m: LmerModel, fit: Any, t: dict[str, Any], texts: list[str]) -> LmerModel:
    """A copy of m with the R results of a refit."""
    from .api import model_fields

    fields = model_fields(t, texts, _caller_index(m))
    fields["meta"] = {**fields["meta"], "refit_of": m.formula}
    return dataclasses.replace(m, r_object=fit, name=None, **fields)


def _build_params() -> set[str]:
    return set(inspect.signature(FitRequest.build).parameters) - {"formula", "kind", "cls"}


def _update_formula(m: LmerModel, formula: str) -> tuple[str, list[str]]:
    if not isinstance(formula, str) or not formula.strip():
        raise DataError("update(): formula is a string like '. ~ . - Days' or a full formula.")
    columns = list(convert.as_pandas(m.data, m.data_name).columns) if m.data is not None \
        else _r_columns(m)
    allowed = _r().allowed(m.request.extra_functions)
    value = _call("lmm_tb_update_formula", m.request.formula, formula.strip(), columns,
                  allowed, what="update")
    if "check" in value:
        _formula_problem(value["check"], formula, columns, "the formula")
    return str(value["formula"][0]), list(value.get("vars") or [])


def update(m: LmerModel, formula: str | None = None, **changes: Any) -> LmerModel:
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
        Fitted with :func:`lmermagic.api.fit` on the model's data (the caller's
        DataFrame as it is now).

    Examples
    --------
    >>> m0 = m.update(". ~ . - Days")
    >>> m_ml = m.update(reml=False)
    """
    _check_kind(m)
    from .api import fit

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
    return fit(request, data)


def _family_text(req: FitRequest) -> str | None:
    if req.kind == "lmer":
        return None
    if req.kind == "glmer.nb":
        return "negative_binomial"
    return f"{req.family}(link='{req.link}')" if req.link else req.family
