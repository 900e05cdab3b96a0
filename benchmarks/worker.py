"""Time one tool on one model, in its own process (the driver reads its peak RSS).

    python worker.py TOOL MODEL REPEATS OUT.json [--datadir DIR]

TOOL is one of
  lmermagic        lmermagic.lmer / glmer with default settings (Satterthwaite df)
  lmermagic-lme4   lmermagic.lmer(..., ddf="lme4")
  rpy2             rpy2's ``%%R -i df -o coefs -o vc`` cell in an IPython shell
  pymer4           pymer4.models.Lmer(...).fit()
  statsmodels      statsmodels MixedLM (where it can fit the model)
  mixedlm, lme-python, interlace
                   the R-free peers (``rfree.py``, in benchmarks/.venv-rfree)

Timed: the call a user makes in a notebook with the data already in a DataFrame,
through to the coefficient table (and variance components) in Python. Not timed:
reading the CSV, imports, and two warm-up fits of sleepstudy with the same tool.
Writes {"times": [...], "warmup": [s, s], "fixef": [...], "fixef_names": [...],
"versions": {...}} or {"error": "..."} to OUT.json; for lmermagic also "r_core":
R's own time (fit + tables) inside each timed call, from ``model.meta``.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import sys
import time
import traceback
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import MODELS, WARMUP, load


# lmermagic: R's own time (fit + tables) of each fit, from model.meta
R_CORE: list[float] = []


class NotSupported(Exception):
    """The tool cannot fit this model; the message says why."""


# ---------------------------------------------------------------- lmermagic
def make_lmermagic(ddf: str | None):
    import lmermagic

    versions = {"lmermagic": getattr(lmermagic, "__version__", "?")}

    def fit(name, df):
        spec = MODELS[name]
        # every repeat fits: the fit cache would answer repeats of the same model
        getattr(lmermagic, "clear_cache", lambda: None)()
        if spec["family"]:
            if ddf is not None:
                raise NotSupported("ddf does not apply to glmer (z tests)")
            m = lmermagic.glmer(spec["formula"], df, family=spec["family"])
        elif ddf is None:
            m = lmermagic.lmer(spec["formula"], df)
        else:
            m = lmermagic.lmer(spec["formula"], df, ddf=ddf)
        coefs = m.coefs  # the table a user looks at (in case it is built lazily)
        for attr in ("varcorr", "ranef_var", "random_effects"):
            if hasattr(type(m), attr) or hasattr(m, attr):
                getattr(m, attr)
                break
        meta = getattr(m, "meta", {})
        if "r_fit_seconds" in meta:  # R's own time inside this call
            R_CORE.append(meta["r_fit_seconds"] + meta["r_tables_seconds"])
        extra = {"se": [float(x) for x in coefs["std_error"]]}
        if "df" in coefs and not spec["family"] and ddf is None:
            extra["df"] = [float(x) for x in coefs["df"]]
        return list(coefs.index), [float(x) for x in coefs["estimate"]], extra

    return fit, versions


# ---------------------------------------------------------------- rpy2 %%R
def make_rpy2():
    import rpy2
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "rpy2.ipython")
    versions = {"rpy2": rpy2.__version__}

    def fit(name, df):
        spec = MODELS[name]
        shell.user_ns["df"] = df
        if spec["family"]:
            call = f"lme4::glmer({spec['formula']}, data = df, family = {spec['family']})"
        else:
            call = f"lmerTest::lmer({spec['formula']}, data = df)"
        cell = (
            f"m <- {call}\n"
            "coefs <- as.data.frame(coef(summary(m)))\n"
            "vc <- as.data.frame(lme4::VarCorr(m))\n"
        )
        shell.run_cell_magic("R", "-i df -o coefs -o vc", cell)
        coefs = shell.user_ns["coefs"]
        return list(coefs.index), [float(x) for x in coefs["Estimate"]]

    return fit, versions


# ---------------------------------------------------------------- pymer4
def make_pymer4():
    import pymer4
    from pymer4.models import Lmer

    versions = {"pymer4": pymer4.__version__}

    def fit(name, df):
        spec = MODELS[name]
        kw = {"family": spec["family"]} if spec["family"] else {}
        m = Lmer(spec["formula"], data=df, **kw)
        with contextlib.redirect_stdout(io.StringIO()):
            m.fit(summarize=False)
        return list(m.coefs.index), [float(x) for x in m.coefs["Estimate"]]

    return fit, versions


# ---------------------------------------------------------------- statsmodels
def make_statsmodels():
    import statsmodels
    import statsmodels.formula.api as smf

    versions = {"statsmodels": statsmodels.__version__}

    def fit(name, df):
        spec = MODELS[name]
        sm = spec.get("sm")
        if not sm:
            raise NotSupported(spec.get("sm_reason", "not supported"))
        if sm.get("vc"):
            # Its gradient forms V^-1 Z (nearly dense: 73,421 x 2,972 for InstEval's
            # students); cap the address space so that a failure is a MemoryError here,
            # not a machine out of memory.
            import resource

            cap_gb = float(os.environ.get("BENCH_SM_MEMORY_GB", "6"))
            cap = int(cap_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
            model = crossed_mixedlm(df, sm["fixed"], sm["vc"])
            try:
                res = model.fit(reml=True)
            except MemoryError as e:
                raise MemoryError(
                    f"out of memory under the {cap_gb:g} GB address-space cap that worker.py "
                    "sets (BENCH_SM_MEMORY_GB): MixedLM's score forms V^-1 Z, nearly dense "
                    f"(n x random-effect levels), for crossed variance components ({e})") from e
        else:
            model = smf.mixedlm(sm["fixed"], df, groups=sm["groups"],
                                re_formula=sm["re_formula"])
            res = model.fit(reml=True)
        fe = res.fe_params
        return list(fe.index), [float(x) for x in fe.values]

    return fit, versions


def crossed_mixedlm(df, fixed: str, vc: dict):
    """Crossed random intercepts in statsmodels: variance components inside one
    group that covers all rows. ``from_formula(vc_formula=..., use_sparse=True)``
    builds each component's indicator matrix dense first (over 10 GB for InstEval),
    so build them here directly as sparse one-hot matrices."""
    import numpy as np
    import patsy
    import statsmodels.api as sm
    from scipy import sparse
    from statsmodels.regression.mixed_linear_model import VCSpec

    y, X = patsy.dmatrices(fixed, df, return_type="dataframe")
    n = len(y)
    names, colnames, mats = [], [], []
    for name in sorted(vc):
        col = df[name]
        codes = col.cat.codes.to_numpy() if hasattr(col, "cat") else col.factorize()[0]
        levels = list(col.cat.categories) if hasattr(col, "cat") else list(col.unique())
        mat = sparse.csr_array((np.ones(n), (np.arange(n), codes)), shape=(n, len(levels)))
        names.append(name)
        colnames.append([[f"{name}[{lev}]" for lev in levels]])
        mats.append([mat])
    return sm.MixedLM(y, X, groups=np.zeros(n), exog_vc=VCSpec(names, colnames, mats))


FACTORIES = {
    "lmermagic": lambda: make_lmermagic(None),
    "lmermagic-lme4": lambda: make_lmermagic("lme4"),
    "rpy2": make_rpy2,
    "pymer4": make_pymer4,
    "statsmodels": make_statsmodels,
}


def factory(tool: str):
    if tool in FACTORIES:
        return FACTORIES[tool]()
    import rfree  # the R-free peers, in their own venv

    return rfree.FACTORIES[tool]()


def main(argv: list[str]) -> int:
    tool, name, repeats, out = argv[0], argv[1], int(argv[2]), argv[3]
    datadir = argv[argv.index("--datadir") + 1] if "--datadir" in argv else None
    result: dict = {"tool": tool, "model": name}
    warnings.simplefilter("ignore")
    try:
        t0 = time.perf_counter()
        fit, versions = factory(tool)
        result["import_s"] = time.perf_counter() - t0
        result["versions"] = versions
        kw = {"datadir": datadir} if datadir else {}
        if MODELS[name].get("sm") is None and tool == "statsmodels":
            raise NotSupported(MODELS[name].get("sm_reason", "not supported"))
        wdf = load(WARMUP, **kw)
        result["warmup"] = []
        for _ in range(2):  # the 2nd fit in a process can still pay one-off costs
            t0 = time.perf_counter()
            fit(WARMUP, wdf)
            result["warmup"].append(time.perf_counter() - t0)
        df = load(name, **kw)
        times = []
        R_CORE.clear()
        for _ in range(repeats):
            gc.collect()
            t0 = time.perf_counter()
            names, est, *extra = fit(name, df)
            times.append(time.perf_counter() - t0)
        result.update(times=times, fixef=est, fixef_names=names)
        if extra:  # standard errors and df, for the agreement columns
            result.update({k: [float(x) for x in v] for k, v in extra[0].items()})
        if len(R_CORE) == len(times):
            result["r_core"] = list(R_CORE)
    except NotSupported as e:
        result["unsupported"] = str(e)
    except BaseException as e:
        result["error"] = f"{type(e).__name__}: {e}"[:2000]
        result["traceback"] = traceback.format_exc()[-4000:]
    with open(out, "w") as fh:
        json.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
