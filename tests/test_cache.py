"""The fit cache: memory hits equal fresh fits without touching R, disk entries
survive the process and every broken entry is refused with a warning and refitted."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic import cache
from lmermagic.rbridge import R, get_r

FORMULA = "Reaction ~ Days + (Days | Subject)"


# every test starts and ends with an empty fit cache in memory (conftest)
pytestmark = pytest.mark.usefixtures("empty_fit_cache")


def same_numbers(a, b):
    for name in ("coefs", "varcorr", "fitted", "residuals"):
        pd.testing.assert_frame_equal(getattr(a, name).to_frame() if name in (
            "fitted", "residuals") else getattr(a, name), getattr(b, name).to_frame()
            if name in ("fitted", "residuals") else getattr(b, name), check_exact=True)
    for name in ("loglik", "aic", "bic", "deviance", "reml_criterion", "sigma", "nobs"):
        assert getattr(a, name) == getattr(b, name), name
    for g in a.ranef:
        pd.testing.assert_frame_equal(a.ranef[g], b.ranef[g], check_exact=True)
    np.testing.assert_array_equal(a.theta, b.theta)
    assert a.warnings == b.warnings and a.singular == b.singular


def test_memory_hit_equals_a_fresh_fit_without_touching_r(sleepstudy, monkeypatch):
    first = lmermagic.lmer(FORMULA, sleepstudy)
    assert first.meta["cache"] == "miss"
    # the same content under another index and name: a hit, laid out on the new index
    other = sleepstudy.copy()
    other.index = other.index + 1000

    def no_r(*args, **kwargs):
        raise AssertionError("R was called")

    monkeypatch.setattr(R, "run", no_r)
    hit = lmermagic.lmer(FORMULA, other)
    monkeypatch.undo()
    assert hit.meta["cache"] == "memory"
    assert hit.data is other and list(hit.fitted.index) == list(other.index)
    fresh = lmermagic.lmer(FORMULA, sleepstudy, ddf="lme4")  # another request: a miss
    assert fresh.meta["cache"] == "miss"
    lmermagic.clear_cache()
    again = lmermagic.lmer(FORMULA, sleepstudy)
    assert again.meta["cache"] == "miss"
    same_numbers(first, again)
    hit.fitted.index = first.fitted.index
    hit.residuals.index = first.residuals.index
    same_numbers(first, hit)


def test_a_hit_shares_no_mutable_object(sleepstudy):
    a = lmermagic.lmer(FORMULA, sleepstudy)
    b = lmermagic.lmer(FORMULA, sleepstudy)
    assert b.meta["cache"] == "memory"
    estimate = b.coefs.iloc[0, 0]
    a.coefs.iloc[0, 0] = -1.0
    a.theta[0] = -1.0
    a.ranef["Subject"].iloc[0, 0] = -1.0
    a.meta["cache"] = "changed"
    c = lmermagic.lmer(FORMULA, sleepstudy)
    for m in (b, c):
        assert m.coefs.iloc[0, 0] == estimate
        assert m.theta[0] != -1.0 and m.ranef["Subject"].iloc[0, 0] != -1.0
        assert m.meta["cache"] == "memory"


def test_memory_keeps_few_large_fits(monkeypatch):
    monkeypatch.setattr(cache, "MEMORY_CELLS", 250)
    entry = [cache.Entry(None, None, {}, (), cells=100) for _ in range(4)]
    for i, e in enumerate(entry):
        cache.remember(bytes([i]), e)
    assert [cache.recall(bytes([i])) is not None for i in range(4)] == [False, False, True,
                                                                        True]
    cache.remember(b"big", cache.Entry(None, None, {}, (), cells=10_000))
    assert cache.recall(b"big") is not None and cache.recall(bytes([3])) is None


@pytest.mark.parametrize("change", [
    lambda d: d.assign(Reaction=d["Reaction"] + 1e-9),          # one value
    lambda d: d.assign(Subject=d["Subject"].cat.reorder_categories(
        list(d["Subject"].cat.categories[::-1]))),               # factor level order
    lambda d: d.rename(columns={"Days": "days"}),                # a column's name
])
def test_other_content_is_a_miss(sleepstudy, change):
    lmermagic.lmer(FORMULA, sleepstudy)
    changed = change(sleepstudy.copy())
    formula = FORMULA.replace("Days", "days") if "days" in changed else FORMULA
    assert lmermagic.lmer(formula, changed).meta["cache"] == "miss"


def test_the_key_covers_options_and_versions(sleepstudy, monkeypatch):
    cols = [lmermagic.convert.encode_column(c, sleepstudy[c]) for c in sleepstudy]
    base = lmermagic.request.FitRequest.build(FORMULA)
    versions = {"lmermagic": "0.1.0", "R": "4.2.2", "lme4": "1.1.31"}
    key = cache.fit_key(base, cols, len(sleepstudy), versions)
    same = lmermagic.request.FitRequest.build(FORMULA, name="m", data_name="d", timeout=5,
                                               cache_dir="/x")
    assert cache.fit_key(same, cols, len(sleepstudy), versions) == key
    for other in ({"reml": False}, {"ddf": "kenward-roger"}, {"factors": "Days"},
                  {"control": {"optimizer": "Nelder_Mead"}}, {"weights": "Days"},
                  {"extra_functions": ("sinh",)}, {"contrasts": {"Subject": "sum"}}):
        req = lmermagic.request.FitRequest.build(FORMULA, **other)
        assert cache.fit_key(req, cols, len(sleepstudy), versions) != key, other
    assert cache.fit_key(base, cols, len(sleepstudy), {**versions, "lme4": "1.1.32"}) != key


# -- disk ---------------------------------------------------------------------

def entries(d):
    return sorted(p for p in os.listdir(d) if p.endswith(cache.SUFFIX))


RESTORE = """
import json, sys
import lmermagic
from lmermagic.rbridge import get_r
d = lmermagic.datasets.load('sleepstudy')
m = lmermagic.lmer({formula!r}, d, cache_dir={d!r})
loaded = set(get_r().run('lmm_loaded_namespaces'))
out = {{'cache': m.meta['cache'], 'lazy': 'serialized' in repr(m.r_object),
        'lme4_before': 'lme4' in loaded, 'Matrix_before': 'Matrix' in loaded,
        'estimate': m.coefs['estimate'].tolist(), 'df': m.coefs['df'].tolist(),
        'loglik': m.loglik,
        'anova_df': m.anova().loc['Days', 'den_df'],
        'predict': m.predict().tolist(),
        'lme4_after': 'lme4' in set(get_r().run('lmm_loaded_namespaces'))}}
print(json.dumps(out))
"""


def test_disk_entry_survives_the_process(sleepstudy, tmp_path):
    d = tmp_path / "fits"
    first = lmermagic.lmer(FORMULA, sleepstudy, cache_dir=d)
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(d / cache.SECRET).st_mode) & 0o077 == 0
    assert len(entries(d)) == 1
    # another process: R fits nothing, does not even load lme4 until a method
    # needs the fit, and the numbers are the same
    code = RESTORE.format(formula=FORMULA, d=str(d))
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                    text=True, check=True, timeout=300).stdout)
    assert out["cache"] == "disk" and out["lazy"]
    assert not out["lme4_before"] and not out["Matrix_before"] and out["lme4_after"]
    assert out["estimate"] == first.coefs["estimate"].tolist()
    assert out["df"] == first.coefs["df"].tolist() and out["loglik"] == first.loglik
    assert out["anova_df"] == pytest.approx(16.99998, abs=1e-4)
    assert out["anova_df"] == first.anova().loc["Days", "den_df"]
    assert out["predict"] == first.predict().tolist()
    lmermagic.clear_cache()  # memory only
    restored = lmermagic.lmer(FORMULA, sleepstudy, cache_dir=d)
    assert restored.meta["cache"] == "disk"
    same_numbers(first, restored)
    assert lmermagic.clear_cache(d) == 1 and entries(d) == []


def test_a_restored_model_has_the_fitted_models_tables(sleepstudy, tmp_path):
    d = tmp_path / "fits"
    data = sleepstudy.copy()
    data.loc[[3, 50], "Reaction"] = np.nan  # dropped rows and missing counts travel too
    formula = "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"
    first = lmermagic.lmer(formula, data, cache_dir=d)
    lmermagic.clear_cache()
    restored = lmermagic.lmer(formula, data, cache_dir=d)
    assert restored.meta["cache"] == "disk"
    same_numbers(first, restored)
    assert list(restored.ranef) == list(first.ranef)
    for name in ("reml", "nobs", "ngroups", "df_model", "converged", "missing", "family",
                 "link", "kind", "ddf", "formula"):
        assert getattr(restored, name) == getattr(first, name), name
    assert list(restored.dropped) == list(first.dropped) == [3, 50]
    assert {k: v for k, v in restored.meta.items() if k != "cache"} == {
        k: v for k, v in first.meta.items() if k != "cache"}
    # the R object, unserialized on first use, gives R's own answers
    pd.testing.assert_frame_equal(restored.anova(), first.anova())
    pd.testing.assert_series_equal(restored.predict(), first.predict())
    assert "unserialized" in repr(restored.r_object)


def damage(path, how):
    raw = path.read_bytes()
    if how in ("flip a byte of the fit", "flip a byte of the tables"):
        # the tables are the first part, right after the header
        i = len(raw) - 100 if how.endswith("fit") else HEADER + 200
        path.write_bytes(raw[:i] + bytes([raw[i] ^ 1]) + raw[i + 1:])
    elif how == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "foreign secret":
        secret = path.parent / cache.SECRET
        secret.write_bytes(os.urandom(32))
    elif how == "another key":
        other = path.with_name("0" * 64 + cache.SUFFIX)
        path.rename(other)
        return other
    elif how == "not an entry":
        path.write_bytes(b"\x80\x04\x95 this could be a pickle" * 10)
    return path


# magic, format, key, number of parts, two lengths, MAC
HEADER = 8 + 4 + 32 + 4 + 2 * 8 + 32


@pytest.mark.parametrize("how", ["flip a byte of the fit", "flip a byte of the tables",
                                 "truncate", "empty",
                                 "foreign secret", "not an entry"])
def test_a_broken_entry_is_refused_and_refitted(sleepstudy, tmp_path, how):
    d = tmp_path / "fits"
    first = lmermagic.lmer(FORMULA, sleepstudy, cache_dir=d)
    [name] = entries(d)
    damage(d / name, how)
    lmermagic.clear_cache()
    with pytest.warns(lmermagic.CacheWarning, match="refitting"):
        again = lmermagic.lmer(FORMULA, sleepstudy, cache_dir=d)
    assert again.meta["cache"] == "miss"
    same_numbers(first, again)
    # the refit stored a good entry again
    lmermagic.clear_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("error", lmermagic.CacheWarning)
        assert lmermagic.lmer(FORMULA, sleepstudy, cache_dir=d).meta["cache"] == "disk"


def test_an_entry_under_another_key_is_refused(tmp_path):
    d = cache.directory(tmp_path / "fits")
    cache.store(d, b"\x01" * 32, [b"payload"])
    (d / f"{'01' * 32}{cache.SUFFIX}").rename(d / f"{'02' * 32}{cache.SUFFIX}")
    with pytest.warns(lmermagic.CacheWarning, match="another key"):
        assert cache.load(d, b"\x02" * 32) is None
    assert entries(d) == []
    assert cache.load(d, b"\x01" * 32) is None  # absent: no warning
    cache.store(d, b"\x01" * 32, [b"tables", b"", b"fit"])
    assert cache.load(d, b"\x01" * 32) == [b"tables", b"", b"fit"]


def stored_key(d):
    [name] = entries(d)
    return bytes.fromhex(name.removesuffix(cache.SUFFIX))


@pytest.mark.parametrize("tables", [
    b"LMMPACK1 but not the rest",
    b"\x80\x04\x95 this could be a pickle",
    "R's packing of something else",
])
def test_verified_tables_that_are_not_a_fits_are_refused(sleepstudy, tmp_path, tables):
    d = tmp_path / "fits"
    lmermagic.lmer(FORMULA, sleepstudy, cache_dir=d)
    key = stored_key(d)
    parts = cache.load(cache.directory(d), key)
    if isinstance(tables, str):  # well-formed, without the tables
        tables = get_r().run("lmm_pack_raw", {"format": 2, "texts": ["a warning"]})
    # stored with this directory's secret: only the reading can tell
    cache.store(cache.directory(d), key, [tables, parts[1]])
    lmermagic.clear_cache()
    with pytest.warns(lmermagic.CacheWarning, match="tables could not be read"):
        assert lmermagic.lmer(FORMULA, sleepstudy, cache_dir=d).meta["cache"] == "miss"


def test_a_verified_entry_whose_fit_is_no_fit_says_so_when_used(sleepstudy, tmp_path):
    d = tmp_path / "fits"
    lmermagic.lmer(FORMULA, sleepstudy, cache_dir=d)
    key = stored_key(d)
    parts = cache.load(cache.directory(d), key)
    # R's serialisation of something else, stored with this directory's secret
    other = get_r().run("lmm_cache_payload", None, None)
    cache.store(cache.directory(d), key, [parts[0], other])
    lmermagic.clear_cache()
    m = lmermagic.lmer(FORMULA, sleepstudy, cache_dir=d)
    assert m.meta["cache"] == "disk"  # the tables are whole
    with pytest.raises(lmermagic.LmerError, match="could not be read back as a fit"):
        m.anova()


def test_a_directory_others_can_write_is_not_used(sleepstudy, tmp_path):
    d = tmp_path / "shared"
    d.mkdir()
    d.chmod(0o777)
    with pytest.warns(lmermagic.CacheWarning, match="other users"):
        m = lmermagic.lmer(FORMULA, sleepstudy, cache_dir=d)
    assert m.meta["cache"] == "miss" and os.listdir(d) == []


WRITER = """
import sys
from pathlib import Path
from lmermagic import cache
d, tag = Path(sys.argv[1]), sys.argv[2].encode()
for i in range(200):
    cache.store(d, b"k" * 32, [tag * 50_000, tag * 10])
"""


def test_two_processes_writing_one_entry_leave_a_whole_one(tmp_path):
    d = cache.directory(tmp_path / "fits")
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(d), tag])
             for tag in ("a", "b")]
    reads = []
    while any(p.poll() is None for p in procs):
        payload = cache.load(d, b"k" * 32)  # a CacheWarning here fails the test
        if payload is not None:
            reads.append(payload)
    assert [p.wait() for p in procs] == [0, 0]
    final = cache.load(d, b"k" * 32)
    whole = ([b"a" * 50_000, b"a" * 10], [b"b" * 50_000, b"b" * 10])
    assert final in whole
    assert all(r in whole for r in reads)
    assert not [p for p in os.listdir(d) if p.startswith(".tmp-")]


def test_size_limit_drops_the_least_recently_used(tmp_path):
    d = cache.directory(tmp_path / "fits")
    for i in range(5):
        cache.store(d, bytes([i]) * 32, [b"x" * 1000], max_bytes=3500)
        os.utime(d / f"{(bytes([i]) * 32).hex()}{cache.SUFFIX}", (i, i))
    cache.store(d, b"\x09" * 32, [b"x" * 1000], max_bytes=3500)
    kept = {bytes.fromhex(p.removesuffix(cache.SUFFIX))[0] for p in entries(d)}
    assert kept == {3, 4, 9}
    cache.store(d, b"\x0a" * 32, [b"x" * 5000], max_bytes=3500)  # too big: not stored
    assert len(entries(d)) == 3
    assert cache.clear(d) == 3 and entries(d) == []


def test_magic_rerun_and_config(shell, sleepstudy, tmp_path):
    shell.user_ns["sleep"] = sleepstudy
    cell = f"%lmer -q -d sleep -o mc {FORMULA}"
    shell.run_cell(cell, store_history=False)
    shell.run_cell(cell, store_history=False)
    assert shell.user_ns["mc"].meta["cache"] == "memory"
    shell.run_line_magic("config", f"LmerMagics.cache_dir = {str(tmp_path / 'c')!r}")
    try:
        lmermagic.clear_cache()
        shell.run_cell(cell, store_history=False)
        lmermagic.clear_cache()
        shell.run_cell(cell, store_history=False)
        assert shell.user_ns["mc"].meta["cache"] == "disk"
    finally:
        shell.run_line_magic("config", "LmerMagics.cache_dir = ''")

