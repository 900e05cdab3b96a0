"""The R-free peers: Python packages that fit lme4's models without R (issue 23, item 4).

Imported by ``worker.py`` in their own virtual environment (``benchmarks/.venv-rfree``,
built by ``run.sh``), one factory per package. Each ``fit(name, df)`` is the call a user
makes with the DataFrame in hand, through to the coefficient table with its standard
errors and (for an LMM) Satterthwaite df, and returns ``(names, estimates, extra)`` where
``extra`` holds ``se`` and ``df`` for the agreement columns of the report.

The driver pins BLAS, OpenMP, Rayon and Polars to one thread in these processes, as R's
are, so that times compare like with like.
"""

from __future__ import annotations

import re

from models import MODELS

_BAR = re.compile(r"\(([^()|]*\|[^()]*)\)")


def split_formula(formula: str) -> tuple[str, list[str]]:
    """``"y ~ x + (1|g) + (x|h)"`` -> ``("y ~ x", ["(1|g)", "(x|h)"])``."""
    random = [f"({m.group(1).strip()})" for m in _BAR.finditer(formula)]
    fixed = _BAR.sub("", formula)
    fixed = re.sub(r"(\+\s*)+$", "", re.sub(r"\+\s*\+", "+", fixed.strip())).strip()
    fixed = re.sub(r"~\s*\+", "~", fixed)
    return fixed, random


def _binomial_as_proportion(df, formula: str):
    """cbind(successes, trials - successes) ~ rhs -> (proportion column, weights, formula):
    the form these packages take a binomial response in."""
    m = re.match(r"\s*cbind\((\w+),\s*(\w+)\s*-\s*(\w+)\)\s*~(.*)", formula)
    if not m:
        return df, None, formula
    succ, trials, _, rhs = m.groups()
    df = df.assign(_prop=df[succ] / df[trials])
    return df, df[trials].to_numpy(dtype=float), f"_prop ~{rhs}"


def make_mixedlm():
    import mixedlm

    versions = {"mixedlm": mixedlm.__version__}

    def fit(name, df):
        spec = MODELS[name]
        if spec["family"]:
            data, w, formula = _binomial_as_proportion(df, spec["formula"])
            fam = getattr(mixedlm.families, spec["family"].capitalize())()
            res = mixedlm.glmer(formula, data, family=fam, weights=w)
        else:
            res = mixedlm.lmer(spec["formula"], df, REML=True)
        tab = res.tidy()  # Satterthwaite df for an LMM (its default ddf_method)
        extra = {"se": [float(x) for x in tab["std.error"]]}
        if not spec["family"]:
            extra["df"] = [float(x) for x in tab["df"]]
        return list(tab["term"]), [float(x) for x in tab["estimate"]], extra

    return fit, versions


def make_lme_python():
    import lme_python

    versions = {"lme-python": _version("lme_python")}

    def fit(name, df):
        spec = MODELS[name]
        if spec["family"]:
            data, w, formula = _binomial_as_proportion(df, spec["formula"])
            res = lme_python.glmer_weighted(formula, data, spec["family"], 1,
                                            None if w is None else w.tolist())
            extra = {"se": list(res.std_errors)}
        else:
            res = lme_python.lmer(spec["formula"], df, True)
            res.with_satterthwaite(df)
            extra = {"se": list(res.std_errors), "df": list(res.satterthwaite_dfs)}
        return list(res.fixed_names), [float(x) for x in res.coefficients], extra

    return fit, versions


def make_interlace():
    import interlace

    versions = {"interlace-lme": _version("interlace-lme")}

    def fit(name, df):
        spec = MODELS[name]
        fixed, random = split_formula(spec["formula"])
        if spec["family"]:
            data, w, fixed = _binomial_as_proportion(df, fixed)
            res = interlace.glmer(fixed, data, family=spec["family"], random=random,
                                  weights=w)
            extra = {"se": [float(x) for x in res.fe_bse]}
        else:
            res = interlace.fit(fixed, df, random=random, method="REML",
                                df_method="satterthwaite")
            extra = {"se": [float(x) for x in res.fe_bse],
                     "df": [float(x) for x in res.fe_df]}
        return list(res.fe_params.index), [float(x) for x in res.fe_params], extra

    return fit, versions


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


FACTORIES = {
    "mixedlm": make_mixedlm,
    "lme-python": make_lme_python,
    "interlace": make_interlace,
}
