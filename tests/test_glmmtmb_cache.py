"""glmmTMB fits in the fit cache (memory and disk) and in a worker process, as
lmer's: a hit gives the fresh fit's tables and methods' numbers, another
option is a miss, a stored entry that would run code in R is refused before R
reads it and the model refitted, and a timed-out isolated fit leaves R
usable."""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic import cache
from lmermagic.rbridge import _lock

FORMULA = "count ~ mined + (1 | site)"
KW: dict[str, Any] = {"family": "poisson", "ziformula": "~ mined"}

pytestmark = pytest.mark.usefixtures("empty_fit_cache")


@pytest.fixture(scope="module")
def sal() -> pd.DataFrame:
    d = lmermagic.datasets.load("Salamanders", package="glmmTMB")
    return d.assign(w=np.linspace(0.5, 1.5, len(d)), off=np.linspace(0, 0.1, len(d)))


def same_tables(a: Any, b: Any) -> None:
    for name in ("coefs", "varcorr", "fitted", "residuals"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.equals(y), name
    assert (a.loglik, a.aic, a.nobs, a.converged) == (b.loglik, b.aic, b.nobs, b.converged)
    np.testing.assert_equal(a.sigma, b.sigma)  # NaN with a dispersion model


def same_methods(a: Any, b: Any, sal: pd.DataFrame) -> None:
    assert a.predict().equals(b.predict())
    assert a.predict(sal.head(5), type="zprob").equals(b.predict(sal.head(5), type="zprob"))
    assert a.simulate(seed=3).equals(b.simulate(seed=3))
    assert a.tidy().equals(b.tidy())
    assert a.confint().equals(b.confint())


def test_memory_hit_is_the_fresh_fits_tables(sal: pd.DataFrame) -> None:
    first = lmermagic.glmmtmb(FORMULA, sal, **KW)
    again = lmermagic.glmmtmb(FORMULA, sal.copy(), data_name="other", **KW)
    assert (first.meta["cache"], again.meta["cache"]) == ("miss", "memory")
    same_tables(first, again)
    assert again.data_name == "other"
    again.coefs.loc[0, "estimate"] = 99.0  # a hit shares no mutable table
    assert lmermagic.glmmtmb(FORMULA, sal, **KW).coefs.loc[0, "estimate"] != 99.0


@pytest.mark.parametrize("change", [
    {"ziformula": "~ 1"}, {"ziformula": None}, {"family": "nbinom2"},
    {"family": "poisson(link='sqrt')"}, {"dispformula": "~ mined", "family": "nbinom2"},
    {"reml": True}, {"weights": "w"}, {"offset": "off"}, "data"])
def test_another_option_or_data_is_a_miss(sal: pd.DataFrame, change: Any) -> None:
    lmermagic.glmmtmb(FORMULA, sal, **KW)
    if change == "data":
        m = lmermagic.glmmtmb(FORMULA, sal.assign(count=sal["count"][::-1].to_numpy()), **KW)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = lmermagic.glmmtmb(FORMULA, sal, **{**KW, **change})
    assert m.meta["cache"] == "miss"


def entries(d: Any) -> list[str]:
    return sorted(p for p in os.listdir(d) if p.endswith(cache.SUFFIX))


def test_disk_hit_after_the_memory_is_cleared(sal: pd.DataFrame, tmp_path: Any) -> None:
    d = tmp_path / "fits"
    first = lmermagic.glmmtmb(FORMULA, sal, cache_dir=d, **KW)
    assert first.meta["cache"] == "miss" and len(entries(d)) == 1
    lmermagic.clear_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("error", lmermagic.CacheWarning)
        again = lmermagic.glmmtmb(FORMULA, sal, cache_dir=d, **KW)
    assert again.meta["cache"] == "disk"
    same_tables(first, again)
    same_methods(first, again, sal)
    lmermagic.clear_cache()
    other = lmermagic.glmmtmb(FORMULA, sal, cache_dir=d, family="nbinom2", ziformula="~ mined")
    assert other.meta["cache"] == "miss" and len(entries(d)) == 2


# -- entries that are hostile --------------------------------------------------

def honest(sal: pd.DataFrame, d: Any) -> tuple[Any, bytes, list[bytes]]:
    m = lmermagic.glmmtmb(FORMULA, sal, cache_dir=d, **KW)
    [name] = entries(d)
    key = bytes.fromhex(name.removesuffix(cache.SUFFIX))
    lmermagic.clear_cache()
    return m, key, cache.load(d, key)


# Payloads an attacker signs with the directory's secret (or a saved file
# holds): each runs code in R (creates `marker`) when lmermagic's reader takes
# the fit out of what unserialize() gave, unless the stream is refused first.
_CRAFT = """function(raw, marker, how, fit) {
    honest <- unserialize(raw)
    if (how == "active binding") {
        e <- new.env()
        e$format <- honest$format; e$data <- honest$data
        makeActiveBinding("fit", function() { file.create(marker); honest$fit }, e)
        return(serialize(e, NULL))
    }
    if (how == "promise") {
        e <- new.env()
        e$format <- honest$format; e$data <- honest$data
        delayedAssign("fit", { file.create(marker); honest$fit }, assign.env = e)
        return(serialize(e, NULL))
    }
    if (how == "foreign closure") {
        honest$fit$modelInfo$family <- function(...) file.create(marker)
        return(serialize(honest, NULL))
    }
    if (how == "foreign call") {
        honest$fit$call$data <- call("system", paste("touch", shQuote(marker)))
        return(serialize(honest, NULL))
    }
    # the fit as glmmTMB made it, unstripped: TMB's closures, the formula's
    # environment (glmmTMB itself, the family's closures)
    serialize(list(format = honest$format, fit = fit, data = honest$data), NULL)
}"""
ATTACKS = ["active binding", "promise", "foreign closure", "foreign call", "unstripped"]


def crafted(raw: bytes, marker: Any, how: str, m: Any) -> bytes:
    import rpy2.robjects as ro
    from rpy2.rinterface import ByteSexpVector

    with _lock:
        fun = ro.r(_CRAFT)
        return bytes(fun(ByteSexpVector(raw), str(marker), how, m.r_object.sexp))


@pytest.mark.parametrize("how", ATTACKS)
def test_a_signed_entry_that_would_run_code_is_refused(sal: pd.DataFrame, tmp_path: Any,
                                                      how: str) -> None:
    d = tmp_path / "fits"
    first, key, parts = honest(sal, d)
    fresh = lmermagic.glmmtmb(FORMULA, sal, **KW)  # an R fit to craft from
    lmermagic.clear_cache()
    marker = tmp_path / "code-ran"
    cache.store(d, key, [parts[0], crafted(parts[1], marker, how, fresh)])
    assert cache.load(d, key) is not None  # the MAC verifies: only the check stands
    with pytest.warns(lmermagic.CacheWarning, match="not one lmermagic writes"):
        m = lmermagic.glmmtmb(FORMULA, sal, cache_dir=d, **KW)
    assert m.meta["cache"] == "miss"
    same_tables(first, m)
    m.predict(sal.head(3))
    m.simulate(seed=1)
    assert not marker.exists()


@pytest.mark.parametrize("how", ["flip a byte of the fit", "flip a byte of the tables",
                                 "truncate"])
def test_a_damaged_entry_is_refused_and_refitted(sal: pd.DataFrame, tmp_path: Any,
                                                how: str) -> None:
    d = tmp_path / "fits"
    first, _, parts = honest(sal, d)
    path = d / entries(d)[0]
    raw = bytearray(path.read_bytes())
    if how == "truncate":
        raw = raw[:-100]
    else:
        at = len(raw) - 50 if how.endswith("fit") else len(raw) - len(parts[1]) - 50
        raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.warns(lmermagic.CacheWarning, match="refitting"):
        m = lmermagic.glmmtmb(FORMULA, sal, cache_dir=d, **KW)
    assert m.meta["cache"] == "miss"
    same_tables(first, m)


def test_verified_lmer_tables_are_not_a_glmmtmb_fits(sal: pd.DataFrame, tmp_path: Any,
                                                    sleepstudy: pd.DataFrame) -> None:
    d = tmp_path / "fits"
    _, key, parts = honest(sal, d)
    lmermagic.lmer("Reaction ~ Days + (1 | Subject)", sleepstudy, cache_dir=tmp_path / "l")
    [lname] = entries(tmp_path / "l")
    lparts = cache.load(tmp_path / "l", bytes.fromhex(lname.removesuffix(cache.SUFFIX)))
    cache.store(d, key, [lparts[0], parts[1]])
    lmermagic.clear_cache()
    with pytest.warns(lmermagic.CacheWarning, match="tables could not be read"):
        assert lmermagic.glmmtmb(FORMULA, sal, cache_dir=d, **KW).meta["cache"] == "miss"


# -- isolate ----------------------------------------------------------------------

def test_isolated_fit_is_the_same_fit(sal: pd.DataFrame) -> None:
    here = lmermagic.glmmtmb(FORMULA, sal, **KW)
    lmermagic.clear_cache()
    there = lmermagic.glmmtmb(FORMULA, sal, isolate=True, **KW)
    assert there.meta["isolated"] is True and there.meta["cache"] == "miss"
    same_tables(here, there)
    same_methods(here, there, sal)


def test_isolated_fit_fails_as_here(sal: pd.DataFrame) -> None:
    with pytest.raises(lmermagic.FitError, match="glmmTMB"):
        lmermagic.glmmtmb("count ~ mined + (1 | site)", sal.assign(count=-sal["count"]),
                          isolate=True, **KW)


def slow_data(n: int = 60000) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    g = rng.integers(0, 3000, n)
    return pd.DataFrame({"y": rng.poisson(2, n), "x": rng.normal(size=n),
                         "g": g.astype(str), "h": (g % 700).astype(str)})


def test_timeout_ends_an_isolated_glmmtmb_fit(sal: pd.DataFrame) -> None:
    lmermagic.glmmtmb(FORMULA, sal, isolate=True, **KW)  # a warm worker
    with pytest.raises(lmermagic.LmerTimeoutError, match="worker process was ended"):
        lmermagic.glmmtmb("y ~ x + (x | g) + (x | h)", slow_data(), family="nbinom2",
                          ziformula="~ x + (1 | g)", isolate=True, timeout=3)
    lmermagic.clear_cache()
    m = lmermagic.glmmtmb(FORMULA, sal, isolate=True, **KW)
    assert m.meta["cache"] == "miss" and m.nobs == len(sal)
    lmermagic.clear_cache()
    assert lmermagic.glmmtmb(FORMULA, sal, **KW).predict().notna().all()
