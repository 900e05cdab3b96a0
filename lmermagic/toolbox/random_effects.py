"""The random effects with their conditional SDs, as a long table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..fitted import FittedModel
from ._common import call, check_model

__all__ = ["ranef_table"]


def ranef_table(m: FittedModel) -> pd.DataFrame:
    """The conditional modes of the random effects with their conditional SDs.

    As R's ``as.data.frame(ranef(m, condVar = TRUE))``: one row per group,
    term and level; columns ``group, term, level, condval, condsd``.
    """
    check_model(m)
    v = call("lmm_tb_ranef_table", m.r_object, what="ranef")
    return pd.DataFrame({"group": list(v["group"]), "term": list(v["term"]),
                         "level": list(v["level"]),
                         "condval": np.asarray(v["condval"], dtype=float),
                         "condsd": np.asarray(v["condsd"], dtype=float)})
