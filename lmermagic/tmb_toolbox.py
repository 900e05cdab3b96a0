"""What a user does after a glmmTMB fit: predictions, simulations, intervals,
broom.mixed's tables, the random effects with their SDs, likelihood-ratio
tests and the R script behind the fit (R/tmb.R's ``lmm_tmb_*``)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from . import convert, tables
from .errors import DataError
from .fitted import FittedModel
from .rbridge import RFrame, get_r
from .rsyntax import r_string, r_symbol
from .toolbox._common import call, check_model, positive_int, r_columns, seed_arg
from .toolbox._common import table as r_table
from .toolbox.selection import lr_table
from .toolbox.rcode import _args, script, script_data

__all__ = ["BROOM_COLUMNS", "augment", "compare", "confint", "glance", "predict",
           "r_code", "ranef_table", "simulate", "summary_text", "tidy"]

PREDICT_TYPES = ("response", "link", "zprob", "zlink", "conditional", "disp")

# broom.mixed's column names -> ours (snake_case, as LmerModel.tidy()).
BROOM_COLUMNS = {"std.error": "std_error", "p.value": "p_value", "conf.low": "conf_low",
                 "conf.high": "conf_high", "logLik": "loglik", "AIC": "aic", "BIC": "bic",
                 "df.residual": "df_resid", "nobs": "nobs", ".fitted": "fitted",
                 ".resid": "resid", ".se.fit": "se_fit", ".rownames": "rownames"}


def _col(v: dict[str, Any], key: str) -> Any:
    got = v.get(key)
    return [] if got is None else got


def _is_tmb(m: Any) -> bool:
    return isinstance(m, FittedModel) and m.kind == "glmmTMB"


def _newdata(m: FittedModel, newdata: Any) -> tuple[Any, pd.Index]:
    df = convert.as_pandas(newdata, "newdata")
    convert.check_labels(df, "newdata")
    used = [c for c in df.columns if c in r_columns(m)]
    return RFrame([convert.encode_column(c, df[c]) for c in used], len(df)), df.index


def predict(m: FittedModel, newdata: Any = None, type: str = "response",
            se_fit: bool = False) -> pd.Series | pd.DataFrame:
    """glmmTMB's ``predict(m, newdata, type, se.fit, allow.new.levels = TRUE)``."""
    check_model(m)
    if type not in PREDICT_TYPES:
        raise DataError(f"type={type!r}: use one of {', '.join(PREDICT_TYPES)}.")
    rnew, index = (None, m.fitted.index) if newdata is None else _newdata(m, newdata)
    value = call("lmm_tmb_predict", m.r_object, m.r_data, rnew, type, bool(se_fit),
                 what="predict")
    if "bad_levels" in value:
        raise DataError("newdata has levels the model was not fitted with ("
                        + "; ".join(value["bad_levels"]) + ").")
    dropped = np.asarray([] if newdata is not None else m.fitted.index.get_indexer(
        m.dropped) + 1, dtype=np.int64)
    out = {k: tables.on_caller_index(np.asarray(value[k], dtype=float), dropped, index, k)
           for k in ("fit", "se_fit") if k in value}
    if not se_fit:
        return out["fit"].rename("predicted")
    return pd.DataFrame({"predicted": out["fit"], "se_fit": out["se_fit"]}, index=index)


def simulate(m: FittedModel, nsim: int = 1, seed: int | None = None) -> pd.DataFrame:
    """Responses simulated from the fit, as ``simulate(m, nsim)`` after
    ``set.seed(seed)`` (R's random state is put back afterwards)."""
    check_model(m)
    nsim = positive_int(nsim, "nsim")
    value = call("lmm_tmb_simulate", m.r_object, nsim, seed_arg(seed), what="simulate")
    df = r_table(value, index_name=None)
    keep = ~m.fitted.index.isin(m.dropped)
    out = pd.DataFrame(np.nan, index=m.fitted.index, columns=list(df.columns))
    out.loc[keep, :] = df.to_numpy(dtype=float)
    return out


def confint(m: FittedModel, method: str = "wald", level: float = 0.95) -> pd.DataFrame:
    """glmmTMB's ``confint(m, method, level)``: rows as glmmTMB names them,
    columns ``conf_low, conf_high, estimate``."""
    check_model(m)
    method = str(method).lower()
    if method not in ("wald", "profile", "uniroot"):
        raise DataError(f"method={method!r}: use 'wald', 'profile' or 'uniroot'.")
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise DataError(f"level={level!r}: give a number between 0 and 1.")
    v = call("lmm_tmb_confint", m.r_object, method, float(level), what="confint")
    return pd.DataFrame({"conf_low": np.asarray(v["low"], dtype=float),
                         "conf_high": np.asarray(v["high"], dtype=float),
                         "estimate": np.asarray(v["estimate"], dtype=float)},
                        index=pd.Index(list(v["terms"]), name="term"))


def _broom(m: FittedModel, what: str, conf_int: bool = True,
           conf_level: float = 0.95) -> pd.DataFrame:
    check_model(m)
    value = call("lmm_tmb_broom", m.r_object, what, bool(conf_int), float(conf_level),
                 what=f"broom.mixed's {what}")
    df = r_table(value, index_name=None).reset_index(drop=True)
    return df.rename(columns={c: BROOM_COLUMNS.get(c, c) for c in df.columns})


def tidy(m: FittedModel, conf_int: bool = True, conf_level: float = 0.95) -> pd.DataFrame:
    """broom.mixed's ``tidy(m, conf.int, conf.level)`` in snake_case: effect,
    component, group, term, estimate, std_error, statistic, p_value, conf_low,
    conf_high."""
    return _broom(m, "tidy", conf_int, conf_level)


# glance's columns whatever broom.mixed adds (newer releases add deviance)
GLANCE = ["nobs", "sigma", "loglik", "aic", "bic", "df_resid"]
AUGMENT = ["fitted", "se_fit", "resid"]


def glance(m: FittedModel) -> pd.DataFrame:
    """broom.mixed's ``glance(m)`` in snake_case: nobs, sigma, loglik, aic, bic,
    df_resid."""
    return _broom(m, "glance")[GLANCE]


def augment(m: FittedModel) -> pd.DataFrame:
    """broom.mixed's ``augment(m)``: the model frame, then fitted, se_fit and
    resid (whatever else a broom.mixed release adds is left out)."""
    df = _broom(m, "augment")
    frame = [c for c in df.columns if not str(c).startswith(".") and c not in AUGMENT
             and c != "rownames"]
    return df[frame + [c for c in AUGMENT if c in df.columns]]


def ranef_table(m: FittedModel) -> pd.DataFrame:
    """component, group, term, level, condval, condsd, as glmmTMB's
    ``as.data.frame(ranef(m))``."""
    check_model(m)
    v = call("lmm_tmb_ranef_table", m.r_object, what="ranef")
    return pd.DataFrame({"component": list(_col(v, "component")),
                         "group": list(_col(v, "group")),
                         "term": list(_col(v, "term")),
                         "level": list(_col(v, "level")),
                         "condval": np.asarray(_col(v, "condval"), dtype=float),
                         "condsd": np.asarray(_col(v, "condsd"), dtype=float)})


def compare(models: list[FittedModel], labels: list[str]) -> pd.DataFrame:
    """Likelihood-ratio tests of glmmTMB fits, as glmmTMB's ``anova(m0, m1)``."""
    if not all(_is_tmb(m) for m in models):
        raise DataError("anova(m0, m1): compare glmmTMB fits with glmmTMB fits only "
                        "(R's anova() cannot mix glmmTMB and lme4 models).")
    value = call("lmm_tmb_compare", {lab: m.r_object for lab, m in zip(labels, models)},
                 {lab: m.r_data for lab, m in zip(labels, models)}, labels,
                 what="the model comparison")
    # glmmTMB's Df is the parameter count and "Chi Df" the test's df: lme4's
    # npar and Df, named as lmermagic.anova(m0, m1) names them for lmer fits
    return lr_table(value, labels, models[0].nobs, rename={"df": "npar", "Chi Df": "df"},
                    data_name=models[0].data_name)


def summary_text(m: FittedModel) -> str:
    check_model(m)
    text = get_r().run("lmm_tmb_summary_text", m.r_object, m.data_name)
    return str(text[0] if isinstance(text, list) else text)


def r_code(m: FittedModel, path: str | os.PathLike[str] | None = None,
           write: bool = False) -> str:
    """A self-contained R script that reproduces the glmmTMB fit."""
    check_model(m)
    req = m.request
    where, spec = script_data(m, path, write)
    ns = "stats" if req.family in ("gaussian", "binomial", "poisson", "Gamma") else "glmmTMB"
    pairs = [("", req.formula), ("data", "data"),
             ("family", f"{ns}::{req.family}(link = {r_string(req.link)})")]
    if req.ziformula:
        pairs.append(("ziformula", req.ziformula))
    if req.dispformula:
        pairs.append(("dispformula", req.dispformula))
    for option in ("weights", "offset"):
        col = getattr(req, option)
        if col is not None:
            pairs.append((option, r_symbol(col)))
    if req.reml:
        pairs.append(("REML", "TRUE"))
    return script(m, where, spec, package="glmmTMB", libs=["glmmTMB"],
                  fit=f"fit <- glmmTMB::glmmTMB({_args(pairs, 24)})",
                  versions=f", glmmTMB {m.versions.get('glmmTMB', '')}")
