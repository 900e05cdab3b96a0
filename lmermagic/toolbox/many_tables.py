"""The tables of many models (:class:`ManyModels`), from the stacked columns
R returns for each chunk of models (many.R)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..rbridge import get_r
from ..tables import COEF_COLUMNS

__all__ = ["GLANCE_COLUMNS", "ManyModels", "assemble"]

GLANCE_COLUMNS = ["nobs", "sigma", "loglik", "aic", "bic", "deviance", "converged",
                  "singular", "n_warnings"]
_INTS = {"nobs", "n_warnings"}
_BOOLS = {"converged", "singular"}


@dataclass
class ManyModels:
    """The tables of many fitted models, one row per model and term.

    Attributes
    ----------
    key : list of str
        The columns that name a model: ``response``, the ``by`` columns, or
        ``model`` (a formula grid).
    coefs : DataFrame
        The key, then ``term, estimate, std_error, df, statistic, p_value,
        p_adjusted, conf_low, conf_high``. ``p_adjusted`` is R's
        ``p.adjust`` of each term's p-values across the models.
    glance : DataFrame
        The key, then ``nobs, sigma, loglik, aic, bic, deviance, converged,
        singular, n_warnings``: one row per fitted model.
    varcorr : DataFrame
        The key, then ``group, var1, var2, vcov, sdcor`` (R's
        ``as.data.frame(VarCorr(m))``).
    errors : DataFrame
        The key, then ``error_type, message``: one row per model that failed.
    warnings : DataFrame
        The key, then ``message``: R's warnings and messages, per model.
    meta : dict
        backend, workers, chunk_size, seconds, p_adjust, kind.
    models : dict
        With ``keep_models=True``: key -> the fitted LmerModel.
    """

    key: list[str]
    coefs: pd.DataFrame
    glance: pd.DataFrame
    varcorr: pd.DataFrame
    errors: pd.DataFrame
    warnings: pd.DataFrame
    meta: dict[str, Any]
    n_models: int
    models: dict[Any, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.n_models

    @property
    def n_failed(self) -> int:
        return len(self.errors)

    def tidy(self) -> pd.DataFrame:
        """broom.mixed's ``tidy()`` rows of every model, stacked: the key, then
        ``effect, group, term, estimate, std_error, statistic, df, p_value,
        p_adjusted, conf_low, conf_high``; fixed effects, then the variance
        parameters (``sd__(Intercept)``, ``cor__(Intercept).Days``,
        ``sd__Observation`` in group ``Residual``)."""
        fixed = self.coefs.assign(effect="fixed", group=None)
        vc = self.varcorr
        sd = vc["var2"].isna()
        term = np.where(sd, "sd__" + vc["var1"].fillna("Observation").astype(str),
                        "cor__" + vc["var1"].astype(str) + "." + vc["var2"].astype(str))
        ran = vc[self.key].assign(effect="ran_pars", group=vc["group"].to_numpy(), term=term,
                                  estimate=vc["sdcor"].to_numpy())
        out = pd.concat([fixed, ran], ignore_index=True)
        order = [*self.key, "effect", "group", "term", "estimate", "std_error", "statistic",
                 "df", "p_value", "p_adjusted", "conf_low", "conf_high"]
        return out[order]

    def __repr__(self) -> str:
        m = self.meta
        return (f"<ManyModels: {self.n_models} {m.get('kind', 'lmer')} models by "
                f"{', '.join(self.key) or 'formula'}; {self.n_models - self.n_failed} fitted, "
                f"{self.n_failed} failed, {int((~self.glance['converged']).sum())} not "
                f"converged, {int(self.glance['singular'].sum())} singular; "
                f"{m.get('seconds', 0):.1f} s on {m.get('backend')} x{m.get('workers')}>")

    def _repr_html_(self) -> str:
        head = html.escape(repr(self))
        return (f"<div><p>{head}</p>{self.coefs.head(10).to_html(index=False)}"
                f"<p>coefs: {len(self.coefs)} rows · glance, varcorr, errors, warnings, "
                "tidy()</p></div>")


def _column(parts: list[dict[str, Any]], table: str, name: str) -> list[Any]:
    out: list[Any] = []
    for p in parts:
        t = p.get(table) or {}
        v = t.get(name)
        if v is not None:
            out.extend(np.atleast_1d(v).tolist() if not isinstance(v, list) else v)
    return out


def _stack(parts: list[dict[str, Any]], table: str, names: list[str],
           keys: pd.DataFrame) -> pd.DataFrame:
    """One table of every chunk, in model order (rows of a model in R's order)."""
    ids = np.asarray(_column(parts, table, "id"), dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    frame = keys.iloc[ids[order] - 1].reset_index(drop=True)
    for name in names:
        values = np.asarray(_column(parts, table, name), dtype=object)[order] \
            if len(ids) else np.asarray([], dtype=object)
        frame[name] = values
    return frame


def assemble(keys: pd.DataFrame, parts: list[dict[str, Any]], p_adjust: str,
             meta: dict[str, Any]) -> ManyModels:
    """The ManyModels of R's chunk results ``parts``, in any order."""
    key = list(keys.columns)
    coefs = _stack(parts, "coefs", ["terms", *COEF_COLUMNS], keys).rename(
        columns={"terms": "term"})
    for c in COEF_COLUMNS:
        coefs[c] = coefs[c].astype(float)
    coefs["term"] = coefs["term"].astype(str)
    coefs.insert(coefs.columns.get_loc("p_value") + 1, "p_adjusted",
                 _p_adjust(coefs["p_value"].to_numpy(), coefs["term"].to_numpy(), p_adjust))
    glance = _stack(parts, "glance", GLANCE_COLUMNS, keys)
    for c in GLANCE_COLUMNS:
        glance[c] = glance[c].astype(int if c in _INTS else bool if c in _BOOLS else float)
    varcorr = _stack(parts, "varcorr", ["group", "var1", "var2", "vcov", "sdcor"], keys)
    for c in ("vcov", "sdcor"):
        varcorr[c] = varcorr[c].astype(float)
    errors = _stack(parts, "errors", ["type", "message"], keys).rename(
        columns={"type": "error_type"})
    warnings = _stack(parts, "warnings", ["message"], keys)
    return ManyModels(key, coefs, glance, varcorr, errors, warnings, meta, len(keys))


def _p_adjust(p: np.ndarray, terms: np.ndarray, method: str) -> np.ndarray:
    """R's p.adjust of each term's p-values across models (NaN stays NaN)."""
    if method == "none" or len(p) == 0:
        return p.astype(float).copy()
    codes, _ = pd.factorize(terms)
    out = get_r().run("lmm_many_p_adjust", np.ascontiguousarray(p, dtype=np.float64),
                      np.ascontiguousarray(codes, dtype=np.int32), method)
    return np.asarray(out, dtype=float)
