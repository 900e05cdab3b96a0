"""What an lme4 user does after the fit: comparisons, F tests, predictions,
intervals, marginal means, optimizer checks.

Each function is a thin wrapper of the R function of the same name (lmerTest's
``anova``/``ranova``/``drop1``, lme4's ``predict``/``confint``/``bootMer``/
``simulate``/``refit``/``allFit``, emmeans' ``emmeans``/``emtrends``) and returns a pandas
DataFrame with R's numbers. R's statistic columns get stable snake_case names
(``Pr(>F)`` -> ``p_value``, ``Sum Sq`` -> ``sum_sq``, ...); R's heading is kept in
``df.attrs["heading"]``. R's warnings are re-issued as
:class:`~lmermagic.errors.LmerWarning`, R's errors raised as
:class:`~lmermagic.errors.FitError` with R's message.

One module per job, each with its R half in ``R/toolbox/``: :mod:`.tests`,
:mod:`.prediction`, :mod:`.intervals`, :mod:`.marginal` (emmeans),
:mod:`.optimizers` (allFit), :mod:`.refitting` (refit, update),
:mod:`.random_effects`, :mod:`.tidying` (broom.mixed's tidy, glance and
augment tables), :mod:`.plots` (matplotlib figures); :mod:`._common` is
what they share.
"""

from __future__ import annotations

from ._common import COLUMN_NAMES as COLUMN_NAMES
from .intervals import confint
from .marginal import EMMEANS_ADJUST as EMMEANS_ADJUST
from .marginal import CONTRAST_METHODS as CONTRAST_METHODS
from .marginal import emmeans, emtrends
from .optimizers import allfit
from .power import PowerResult
from .prediction import predict, simulate
from .random_effects import ranef_table
from .refitting import refit, update
from .tests import anova, compare, drop1, model_anova, ranova
from .tidying import augment, glance, glance_values, tidy, tidy_columns

__all__ = [
    "PowerResult",
    "allfit",
    "anova",
    "augment",
    "compare",
    "confint",
    "drop1",
    "emmeans",
    "emtrends",
    "glance",
    "glance_values",
    "model_anova",
    "predict",
    "ranef_table",
    "ranova",
    "refit",
    "simulate",
    "tidy",
    "tidy_columns",
    "update",
]
