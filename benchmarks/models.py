"""The benchmark models and how every Python-side tool loads their data.

Shared by the driver (``bench.py``) and the workers (``worker.py``), which run in
different virtual environments; it needs only the standard library until ``load``
is called (which needs pandas).
"""

from __future__ import annotations

import os

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")

# name -> specification. ``factors`` are read as factors by R (colClasses) and as
# categoricals by pandas (categories sorted as R sorts them), so every tool fits the
# same design. ``big`` marks the cases quick mode shortens or skips.
MODELS: dict[str, dict] = {
    "sleepstudy": {
        "csv": "sleepstudy.csv",
        "formula": "Reaction ~ Days + (Days|Subject)",
        "factors": ["Subject"],
        "family": None,
        "label": "sleepstudy (180 rows)",
        "size": "small",
        # statsmodels MixedLM: one grouping factor with a random slope
        "sm": {"fixed": "Reaction ~ Days", "groups": "Subject", "re_formula": "~Days"},
    },
    "dietox": {
        "csv": "dietox.csv",
        "formula": "Weight ~ Time + (1 + Time|Pig)",
        "factors": ["Pig", "Evit", "Cu", "Litter"],
        "family": None,
        "label": "dietox (861 rows)",
        "size": "small",
        "sm": {"fixed": "Weight ~ Time", "groups": "Pig", "re_formula": "~Time"},
    },
    "cbpp": {
        "csv": "cbpp.csv",
        "formula": "cbind(incidence, size - incidence) ~ period + (1|herd)",
        "factors": ["herd", "period"],
        "family": "binomial",
        "label": "cbpp glmer binomial (56 rows)",
        "size": "small",
        "sm": None,
        "sm_reason": (
            "statsmodels has no maximum-likelihood binomial GLMM (only the variational "
            "Bayes BinomialBayesMixedGLM, which estimates a different quantity)"
        ),
    },
    "synthetic100k": {
        "csv": "synthetic_100k.csv",
        "formula": "y ~ x1 + x2 + cond + (1|g1) + (1|g2)",
        "factors": ["g1", "g2", "cond"],
        "family": None,
        "label": "synthetic (100,000 rows, 2 crossed factors)",
        "size": "large",
        "sm": None,
        "sm_reason": (
            "crossed factors need variance components in one all-covering group, whose "
            "gradient forms the nearly dense V^-1 Z (n x levels); already InstEval (73k "
            "rows) exhausts a 6 GB cap"
        ),
    },
    "InstEval": {
        "csv": "InstEval.csv",
        "formula": "y ~ service + (1|s) + (1|d) + (1|dept)",
        "factors": ["s", "d", "studage", "lectage", "service", "dept"],
        "family": None,
        "label": "InstEval (73,421 rows, 3 crossed factors)",
        "size": "large",
        # crossed factors: variance components inside one all-covering group
        "sm": {
            "fixed": "y ~ service",
            "groups": None,
            "vc": {"s": "0 + C(s)", "d": "0 + C(d)", "dept": "0 + C(dept)"},
        },
        "sm_quick_reason": (
            "skipped in quick mode: crossed factors as variance components in one "
            "all-covering group; in full mode it runs out of a 6 GB memory cap"
        ),
    },
    "synthetic1M": {
        "csv": "synthetic_1M.csv",
        "formula": "y ~ x1 + x2 + cond + (1|g1) + (1|g2)",
        "factors": ["g1", "g2", "cond"],
        "family": None,
        "label": "synthetic (1,000,000 rows, 2 crossed factors)",
        "size": "huge",
        "sm": None,
        "sm_reason": (
            "crossed factors need variance components in one all-covering group, whose "
            "gradient forms the nearly dense V^-1 Z (n x levels); already InstEval (73k "
            "rows) exhausts a 6 GB cap, so 1M rows x 2,300 levels is not attempted"
        ),
    },
}

# The small model every worker fits once before timing (loads R, packages, caches).
WARMUP = "sleepstudy"


def csv_path(name: str, datadir: str = DATA) -> str:
    return os.path.join(datadir, MODELS[name]["csv"])


def load(name: str, datadir: str = DATA):
    """The model's data as pandas reads it, with factors as (string) categoricals."""
    import pandas as pd

    spec = MODELS[name]
    dtypes = dict.fromkeys(spec["factors"], str)
    df = pd.read_csv(csv_path(name, datadir), dtype=dtypes, float_precision="round_trip",
                     keep_default_na=True)
    for c in spec["factors"]:
        # R's read.csv(colClasses = "factor") sorts levels in the C/English order; for
        # these data (digits, ASCII letters) Python's sort is the same.
        df[c] = pd.Categorical(df[c], categories=sorted(df[c].dropna().unique()))
    return df
