"""A disk-cache entry whose MAC verifies but whose fit would run code in R
(issue 24 item 3): it is refused before R's ``unserialize()`` reads it
(rdsguard), the model refitted honestly with a CacheWarning, and no code of
the entry's runs. Each crafted entry is signed with the directory's real
secret. An honest entry still hits, and every method gives the fresh fit's
numbers after the hit."""

from __future__ import annotations

import os
import struct
import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import model_method_results
import lmermagic
from lmermagic import cache, fitting, rdsguard
from lmermagic.rbridge import _lock

FORMULA = "Reaction ~ Days + (Days | Subject)"
GLMER = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


# every test starts and ends with an empty fit cache in memory (conftest)
pytestmark = pytest.mark.usefixtures("empty_fit_cache")


def r_function(code):
    import rpy2.robjects as ro

    with _lock:
        return ro.r(code)


def call_r(fun, *args):
    from rpy2.rinterface import ByteSexpVector

    with _lock:
        return bytes(fun(*(ByteSexpVector(a) if isinstance(a, bytes) else a for a in args)))


# The honest payload (R's serialisation of the stripped fit and its data)
# read back with a plain unserialize() in the test's R, changed so that the
# formula's environment runs code when lme4 evaluates the model's variables
# (predict with newdata), and written again.
# The honest payload (R's serialisation of the stripped fit and its data)
# read back in the test's R, changed so that the formula's environments run
# code when lme4 evaluates the model's variables (predict with newdata), and
# written again: the changed environments whole, or (a foreign call) by name
# as lmermagic writes them.
_R_CRAFT = """function(raw, marker, how, hook, writer) {
    attack <- function(env) {
        rm("list", envir = env)
        if (how == "promise") {
            delayedAssign("list", { file.create(marker); base::list }, assign.env = env)
        } else if (how == "active binding") {
            makeActiveBinding("list", function() { file.create(marker); base::list }, env)
        } else if (how == "foreign closure") {
            env$list <- function(...) { system(paste("touch", shQuote(marker))); base::list(...) }
        } else if (how == "foreign closure in stats") {
            f <- eval(bquote(function(...) { file.create(.(marker)); base::list(...) }))
            environment(f) <- asNamespace("stats")
            env$list <- f
        } else {
            env$list <- base::list
        }
        env
    }
    obj <- unserialize(raw, refhook = function(name) attack(hook(name)))
    if (how == "foreign call") {
        # a stored call lme4 may evaluate, naming a function outside the set
        obj$fit@call$data <- quote(system(paste("touch", marker)))
        return(writer(obj))
    }
    serialize(obj, NULL)
}"""
ATTACKS = ["promise", "active binding", "foreign closure", "foreign closure in stats",
           "foreign call"]
RUNS_CODE_ON_PREDICT = ATTACKS[:4]


def honest_entry(sleepstudy, d):
    m = lmermagic.lmer(FORMULA, sleepstudy, cache_dir=d)
    [name] = [p for p in os.listdir(d) if p.endswith(cache.SUFFIX)]
    key = bytes.fromhex(name.removesuffix(cache.SUFFIX))
    lmermagic.clear_cache()
    return m, key, cache.load(d, key)


def sign(d, key, tables, payload):
    """Store ``payload`` under ``key`` with the directory's own secret: the MAC
    verifies, only the check of the stream stands between it and R."""
    cache.store(d, key, [tables, payload])
    assert cache.load(d, key)[1] == payload


def lmm(name):
    """One of lmermagic's own R functions (R/cache.R)."""
    from lmermagic.rbridge import get_r

    with _lock:
        return get_r().env[name]


def crafted(raw, marker, how):
    return call_r(r_function(_R_CRAFT), raw, str(marker), how, lmm("lmm_formula_env_from"),
                  lmm("lmm_serialize_fit"))


def namespace_payload(raw, package):
    """``raw`` with a reference to ``package``'s namespace, which R loads
    (running its .onLoad) while unserializing: a symbol put in by R, then
    its bytes swapped for a namespace's (both take one reference slot)."""
    probe = call_r(r_function("""function(raw, hook, writer) {
        obj <- unserialize(raw, refhook = hook)
        attr(obj$data, "lmm_probe") <- as.name("LMMPROBE")
        writer(obj) }"""),
        raw, lmm("lmm_formula_env_from"), lmm("lmm_serialize_fit"))
    sym = struct.pack(">iii", 1, 0x40009, 8) + b"LMMPROBE"
    version = b"1.0"

    def char(s):
        return struct.pack(">ii", 0x40009, len(s)) + s
    ns = struct.pack(">iii", 249, 0, 2) + char(package.encode()) + char(version)
    assert probe.count(sym) == 1
    return probe.replace(sym, ns)


def loaded():
    return set(r_function("loadedNamespaces()"))


def idle_package():
    installed = set(r_function("rownames(utils::installed.packages())"))
    for p in ("foreign", "nnet", "rpart", "class", "spatial", "KernSmooth", "boot"):
        if p in installed and p not in loaded():
            return p
    pytest.skip("no installed R package that is not loaded")


def refused_then_refitted(sleepstudy, d, first, marker):
    with pytest.warns(lmermagic.CacheWarning, match="not one lmermagic writes"):
        m = lmermagic.lmer(FORMULA, sleepstudy, cache_dir=d)
    assert m.meta["cache"] == "miss"
    m.predict(newdata=sleepstudy.head())
    m.anova()
    assert m.coefs["estimate"].tolist() == first.coefs["estimate"].tolist()
    if marker is not None:
        assert not os.path.exists(marker)
    # the honest fit replaced the crafted entry
    lmermagic.clear_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("error", lmermagic.CacheWarning)
        assert lmermagic.lmer(FORMULA, sleepstudy, cache_dir=d).meta["cache"] == "disk"


@pytest.mark.parametrize("how", ATTACKS)
def test_code_in_a_signed_entry_does_not_run(sleepstudy, tmp_path, how):
    d, marker = tmp_path / "fits", tmp_path / "code-ran"
    first, key, parts = honest_entry(sleepstudy, d)
    sign(d, key, parts[0], crafted(parts[1], marker, how))
    refused_then_refitted(sleepstudy, d, first, marker)


def test_an_unknown_namespace_is_not_loaded(sleepstudy, tmp_path):
    d = tmp_path / "fits"
    first, key, parts = honest_entry(sleepstudy, d)
    package = idle_package()
    sign(d, key, parts[0], namespace_payload(parts[1], package))
    refused_then_refitted(sleepstudy, d, first, None)
    assert package not in loaded()


def _rewritten(raw, how):
    return call_r(r_function(f"""function(raw, hook) {{
        serialize(unserialize(raw, refhook = hook), NULL, {how}) }}"""),
        raw, lmm("lmm_formula_env_from"))


def _xdr_v2(raw):
    return _rewritten(raw, "version = 2")


def _ascii(raw):
    return _rewritten(raw, "ascii = TRUE")


def _garbled(raw):
    b = bytearray(raw)
    b[26] = 99  # the first item's type (its flags' low byte): no type R has
    return bytes(b)


BROKEN = {
    "cut in half": lambda raw: raw[:len(raw) // 2],
    "cut by one byte": lambda raw: raw[:-1],
    "a byte after the object": lambda raw: raw + b"\0",
    "an unknown type": _garbled,
    "a vector longer than the stream": lambda raw: raw[:27] + struct.pack(">i", 2**31 - 1)
    + raw[31:],
    "empty": lambda raw: b"",
    "gzip (saveRDS)": lambda raw: b"\x1f\x8b\x08\x00" + raw,
    "XDR version 2": _xdr_v2,
    "ASCII": _ascii,
}


@pytest.mark.parametrize("what", list(BROKEN))
def test_a_broken_or_foreign_format_stream_is_refused(sleepstudy, tmp_path, what):
    d = tmp_path / "fits"
    first, key, parts = honest_entry(sleepstudy, d)
    sign(d, key, parts[0], BROKEN[what](parts[1]))
    refused_then_refitted(sleepstudy, d, first, None)


# -- the checks on streams made up in Python (no fit needed) ------------------

HEADER = b"X\n" + struct.pack(">iii", 3, 0x40202, 0x30500) + struct.pack(">i", 5) + b"UTF-8"


@pytest.mark.parametrize("depth", [10, rdsguard.MAX_DEPTH + 5, 200_000])
def test_nesting_is_walked_without_recursion(depth):
    # list(list(list(...))) as R writes it: VECSXP of length 1, depth deep
    raw = HEADER + struct.pack(">ii", 19, 1) * depth + struct.pack(">i", 254)
    if depth <= rdsguard.MAX_DEPTH:
        rdsguard.check(raw, rdsguard.Known())
    else:
        with pytest.raises(rdsguard.UnsafeStream, match="nested deeper"):
            rdsguard.check(raw, rdsguard.Known())


@pytest.mark.parametrize("cells", [10, 100_000])
def test_a_long_pairlist_counts_as_deep(cells):
    # R's reader recurses on each cell's CDR: pairlist(NULL, NULL, ...)
    raw = HEADER + struct.pack(">ii", 2, 254) * cells + struct.pack(">i", 254)
    if cells <= rdsguard.MAX_DEPTH:
        rdsguard.check(raw, rdsguard.Known())
    else:
        with pytest.raises(rdsguard.UnsafeStream, match="nested deeper"):
            rdsguard.check(raw, rdsguard.Known())


def test_a_reference_to_nothing_read_is_refused():
    with pytest.raises(rdsguard.UnsafeStream, match="not read before"):
        rdsguard.check(HEADER + struct.pack(">i", (5 << 8) | 255), rdsguard.Known())


def test_an_honest_stream_holds_no_code(sleepstudy, tmp_path):
    # the formula environment goes by name (its functions made again on
    # reading), lme4's reference classes as field lists: no closure, no
    # namespace, no primitive is left; the functions named are the caller's
    d = tmp_path / "fits"
    _, _, parts = honest_entry(sleepstudy, d)
    seen = rdsguard.survey(parts[1])
    assert not (seen.closures or seen.namespaces or seen.packages or seen.primitives)
    known = fitting._known(())
    assert seen.formula_functions and seen.formula_functions <= known.formula_functions
    assert {"stats::poly", "splines::ns", "base::log"} <= known.formula_functions
    assert "base::system" not in known.formula_functions


STREAMS = {
    "promise": (("e <- new.env(parent = emptyenv()); delayedAssign('x', stop('ran'), "
                "assign.env = e); serialize(e, NULL)"), "a promise"),
    "active binding": (("e <- new.env(parent = emptyenv()); "
                       "makeActiveBinding('x', function() 1, e); serialize(e, NULL)"),
                       "an active binding"),
    "active binding to a primitive": (
        ("e <- new.env(parent = emptyenv()); makeActiveBinding('x', base::date, e); "
        "serialize(e, NULL, refhook = function(e) NULL)"), "an active binding|function"),
    "global closure": ("serialize(function() 1, NULL)", "function whose environment"),
    "closure in stats": (("f <- function() 1; environment(f) <- asNamespace('stats'); "
                         "serialize(f, NULL)"), "the namespace 'stats'"),
    "stats function": ("serialize(stats::poly, NULL)", "the namespace 'stats'"),
    "namespace": ("serialize(asNamespace('stats'), NULL)", "the namespace 'stats'"),
    "package environment": ("serialize(as.environment('package:stats'), NULL)",
                            "the package 'package:stats'"),
    "another hook's object": (("e <- new.env(); serialize(list(e), NULL, "
                              "refhook = function(e) 'evil')"), "hook for: 'evil'"),
    "formula function outside the list": (
        ("e <- new.env(); serialize(list(e), NULL, refhook = function(e) "
        "c('lmm_formula_env', 'base::system'))"), "formula function 'base::system'"),
    "a class of another package": (
        "serialize(structure(list(), class = structure('x', package = 'tcltk')), NULL)",
        "a class of the package 'tcltk'"),
    "byte code outside a function": ("serialize(compiler::compile(quote(1 + 1)), NULL)",
                                     "byte code outside"),
    "external pointer": ("serialize(new('externalptr'), NULL)", "external pointer"),
    "a call outside the set": ("serialize(quote(system('x')), NULL)",
                               "a call to 'system'"),
    "a computed call": ("serialize(as.call(list(quote(f()))), NULL)",
                        "a call to 'f'"),
    "a call of a value": ("serialize(as.call(list(1)), NULL)", "not a function's name"),
}


@pytest.mark.parametrize("what", list(STREAMS))
def test_each_kind_of_code_is_refused(what):
    code, message = STREAMS[what]
    raw = bytes(r_function(f"local({{ {code} }})"))
    known = fitting._known(())
    with pytest.raises(rdsguard.UnsafeStream, match=message):
        rdsguard.check(raw, known)


def test_an_altrep_class_outside_base_is_refused():
    raw = bytes(r_function("serialize(1:10, NULL)"))
    rdsguard.check(raw, fitting._known(()))
    assert raw.count(b"compact_intseq") == 1
    with pytest.raises(rdsguard.UnsafeStream, match="ALTREP class 'base:compact_intseX'"):
        rdsguard.check(raw.replace(b"compact_intseq", b"compact_intseX"), fitting._known(()))


# -- honest entries: every method after a hit equals the fresh fit ------------

@pytest.mark.parametrize("kind", ["lmer", "glmer"])
def test_an_honest_entry_hits_and_every_method_works(sleepstudy, cbpp, tmp_path, kind):
    d = tmp_path / "fits"
    if kind == "lmer":
        fit = lambda: lmermagic.lmer(FORMULA, sleepstudy, cache_dir=d)  # noqa: E731
        data, response = sleepstudy, sleepstudy["Reaction"] * 1.5
    else:
        fit = lambda: lmermagic.glmer(GLMER, cbpp, family="binomial",  # noqa: E731
                                      cache_dir=d)
        data = cbpp
        response = np.column_stack([cbpp["incidence"] + 1, cbpp["size"] - cbpp["incidence"]])
    fresh = fit()
    assert fresh.meta["cache"] == "miss"
    expected = model_method_results(fresh, data, response)
    lmermagic.clear_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("error", lmermagic.CacheWarning)
        hit = fit()
    assert hit.meta["cache"] == "disk"
    got = model_method_results(hit, data, response)
    for name, value in expected.items():
        if isinstance(value, pd.Series):
            pd.testing.assert_series_equal(got[name], value, check_exact=True, obj=name)
        else:
            pd.testing.assert_frame_equal(got[name], value, check_exact=True, obj=name)


# -- the payloads above are real attacks: without the check, code runs -------

@pytest.mark.parametrize("how", RUNS_CODE_ON_PREDICT)
def test_without_the_check_the_crafted_entries_run_code(sleepstudy, tmp_path, how,
                                                         monkeypatch):
    d, marker = tmp_path / "fits", tmp_path / "code-ran"
    _, key, parts = honest_entry(sleepstudy, d)
    sign(d, key, parts[0], crafted(parts[1], marker, how))
    monkeypatch.setattr(rdsguard, "check", lambda raw, known: None)
    m = lmermagic.lmer(FORMULA, sleepstudy, cache_dir=d)
    assert m.meta["cache"] == "disk"
    m.predict(newdata=sleepstudy.head())
    assert marker.exists()


def test_without_the_check_a_namespace_reference_loads_the_package(sleepstudy, tmp_path,
                                                                  monkeypatch):
    d = tmp_path / "fits"
    _, key, parts = honest_entry(sleepstudy, d)
    package = idle_package()
    sign(d, key, parts[0], namespace_payload(parts[1], package))
    monkeypatch.setattr(rdsguard, "check", lambda raw, known: None)
    m = lmermagic.lmer(FORMULA, sleepstudy, cache_dir=d)
    m.anova()  # R unserializes the fit: the namespace is loaded on the way
    assert package in loaded()


def _counts():
    from conftest import grouped_counts

    c = grouped_counts(3, exposure=(0.5, 3), beta=(0.3, 0.7), sd=0.5, size=2.0)
    return pd.DataFrame({"y": c["y"], "x": c["x"], "log_t": c["log_t"],
                         "g": pd.Categorical(c["g"].astype(str)),
                         "w": np.linspace(0.5, 1.5, len(c["y"]))})


KINDS = {
    "kenward-roger": lambda s, c, d: lmermagic.lmer(
        "Reaction ~ Days + (Days | Subject)", s, ddf="kenward-roger", cache_dir=d),
    "poly, ns, log, weights, control": lambda s, c, d: lmermagic.lmer(
        "log(Reaction) ~ poly(Days, 2) + ns(w, df = 2) + (1 | Subject)",
        s.assign(w=np.linspace(1, 2, len(s))), weights="w", reml=False,
        control={"optimizer": "bobyqa"}, cache_dir=d),
    "allowed extra function": lambda s, c, d: lmermagic.lmer(
        "Reaction ~ atan2(Days, 3) + (1 | Subject)", s, allow_functions=["atan2"],
        cache_dir=d),
    "poisson, offset": lambda s, c, d: lmermagic.glmer(
        "y ~ x + (1 | g)", c, family="poisson", offset="log_t", cache_dir=d),
    "negative binomial": lambda s, c, d: lmermagic.glmer(
        "y ~ x + (1 | g)", c, family="negative_binomial", cache_dir=d),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_of_fit_passes_the_check(sleepstudy, tmp_path, kind):
    d, counts = tmp_path / "fits", _counts()
    fresh = KINDS[kind](sleepstudy, counts, d)
    assert fresh.meta["cache"] == "miss"
    lmermagic.clear_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("error", lmermagic.CacheWarning)
        hit = KINDS[kind](sleepstudy, counts, d)
    assert hit.meta["cache"] == "disk"
    pd.testing.assert_series_equal(hit.predict(), fresh.predict(), check_exact=True)
    pd.testing.assert_frame_equal(hit.simulate(seed=2), fresh.simulate(seed=2),
                                  check_exact=True)
    pd.testing.assert_frame_equal(hit.confint(), fresh.confint(), check_exact=True)
