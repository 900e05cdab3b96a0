"""The optimizer check: the model refitted with every optimizer, as lme4's
``allFit()``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..fitted import FittedModel
from ._common import call, check_model, positive_int, r_options

__all__ = ["allfit"]


def allfit(m: FittedModel, maxfun: int = 100_000) -> pd.DataFrame:
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
    check_model(m)
    v = call("lmm_tb_allfit", m.r_object, m.r_data, r_options(m),
             float(positive_int(maxfun, "maxfun")), what="allFit")
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
