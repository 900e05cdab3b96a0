"""The disk cache under attack (issue 24, item 3): a directory swapped for a
link between its check and its use, links and FIFOs at an entry's or the
secret's path, a secret of the wrong length. Each is refused with a warning
and the model refitted; no code of the attacker's runs and no number of the
attacker's reaches the model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest

import lmermagic
from lmermagic import cache
from lmermagic.rbridge import _lock

FORMULA = "Reaction ~ Days + (Days | Subject)"


# every test starts and ends with an empty fit cache in memory (conftest)
pytestmark = pytest.mark.usefixtures("empty_fit_cache")


def entry_names(d):
    return sorted(p for p in os.listdir(d) if p.endswith(cache.SUFFIX))


def honest(sleepstudy, d):
    m = lmermagic.lmer(FORMULA, sleepstudy, cache_dir=d)
    [name] = entry_names(d)
    lmermagic.clear_cache()
    return m, name


def crafted_payload(model, marker):
    """R's serialisation of ``model``'s fit whose response object reads its
    fitted values through an active binding that creates ``marker``: what an
    attacker would put in an entry to run code in the victim's R."""
    import rpy2.robjects as ro

    with _lock:
        make = ro.r("""function(fit, data, marker) {
            rsp <- fit@resp$copy()
            e <- as.environment(rsp)
            v <- e$mu
            rm("mu", envir = e)
            makeActiveBinding("mu", function(x) { file.create(marker); v }, e)
            fit@resp <- rsp
            serialize(list(fit = fit, data = data), NULL)
        }""")
        return bytes(make(model.r_object.sexp, model.r_data.sexp, str(marker)))


def attacker_entry(sleepstudy, a, key, marker):
    """In directory ``a`` (the attacker's, with the attacker's secret): an entry
    under the victim's ``key`` holding another fit's tables (estimates of
    Reaction * 2) and a payload that runs code."""
    other = sleepstudy.assign(Reaction=sleepstudy["Reaction"] * 2)
    m = lmermagic.lmer(FORMULA, other, cache_dir=a)
    [name] = entry_names(a)
    parts = cache.load(a, bytes.fromhex(name.removesuffix(cache.SUFFIX)))
    os.unlink(a / name)
    cache.store(a, key, [parts[0], crafted_payload(m, marker)])
    lmermagic.clear_cache()
    return m


def test_directory_swapped_for_a_link_after_its_check(sleepstudy, tmp_path, monkeypatch):
    d, a = tmp_path / "fits", tmp_path / "attacker"
    first, name = honest(sleepstudy, d)
    key = bytes.fromhex(name.removesuffix(cache.SUFFIX))
    marker = tmp_path / "code-ran"
    crafted = attacker_entry(sleepstudy, a, key, marker)
    assert crafted.coefs["estimate"].iloc[0] != first.coefs["estimate"].iloc[0]
    real_load = cache.load

    def swap_then_load(disk, k):
        # the attacker's move, between the directory's check and the entry's open
        os.rename(d, tmp_path / "fits-real")
        os.symlink(a, d)
        return real_load(disk, k)

    monkeypatch.setattr(cache, "load", swap_then_load)
    m = lmermagic.lmer(FORMULA, sleepstudy, cache_dir=d)
    monkeypatch.undo()
    m.predict()
    m.anova()
    assert not marker.exists()
    assert m.coefs["estimate"].tolist() == first.coefs["estimate"].tolist()
    assert m.predict().tolist() == first.predict().tolist()


@pytest.mark.parametrize("size", [0, 31, 64])
def test_a_secret_of_the_wrong_length_is_replaced(sleepstudy, tmp_path, size):
    d = tmp_path / "fits"
    first, _ = honest(sleepstudy, d)
    (d / cache.SECRET).write_bytes(b"\0" * size)
    with pytest.warns(lmermagic.CacheWarning, match=r"\.secret is not usable"):
        again = lmermagic.lmer(FORMULA, sleepstudy, cache_dir=d)
    assert again.meta["cache"] == "miss"  # signed under the old secret: refitted
    assert len((d / cache.SECRET).read_bytes()) == 32
    assert (d / cache.SECRET).read_bytes() != b"\0" * 32
    assert again.coefs.equals(first.coefs)
    lmermagic.clear_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("error", lmermagic.CacheWarning)
        assert lmermagic.lmer(FORMULA, sleepstudy, cache_dir=d).meta["cache"] == "disk"


def test_a_secret_that_is_a_link_is_not_followed(sleepstudy, tmp_path):
    d, a = tmp_path / "fits", tmp_path / "attacker"
    first, name = honest(sleepstudy, d)
    key = bytes.fromhex(name.removesuffix(cache.SUFFIX))
    attacker_entry(sleepstudy, a, key, tmp_path / "code-ran")
    # the attacker's entry and secret, reached through links in our directory
    os.unlink(d / name)
    os.unlink(d / cache.SECRET)
    os.symlink(a / name, d / name)
    os.symlink(a / cache.SECRET, d / cache.SECRET)
    with pytest.warns(lmermagic.CacheWarning):
        m = lmermagic.lmer(FORMULA, sleepstudy, cache_dir=d)
    assert m.meta["cache"] == "miss"
    assert m.coefs.equals(first.coefs)
    assert not (d / cache.SECRET).is_symlink() and not (d / name).is_symlink()


def test_an_entry_that_is_a_link_is_refused(sleepstudy, tmp_path):
    d = tmp_path / "fits"
    _, name = honest(sleepstudy, d)
    os.rename(d / name, tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", d / name)  # a whole, verifiable entry, but a link
    with pytest.warns(lmermagic.CacheWarning, match="refitting"):
        assert lmermagic.lmer(FORMULA, sleepstudy, cache_dir=d).meta["cache"] == "miss"


def test_a_directory_at_an_entry_path_is_refused(sleepstudy, tmp_path):
    d = tmp_path / "fits"
    _, name = honest(sleepstudy, d)
    os.unlink(d / name)
    os.mkdir(d / name)
    with pytest.warns(lmermagic.CacheWarning, match="not a regular file"):
        assert lmermagic.lmer(FORMULA, sleepstudy, cache_dir=d).meta["cache"] == "miss"


FIFO_FIT = """
import json, warnings
import lmermagic
d = lmermagic.datasets.load('sleepstudy')
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter('always')
    m = lmermagic.lmer({formula!r}, d, cache_dir={d!r})
print(json.dumps({{'cache': m.meta['cache'], 'warnings': [str(x.message) for x in w]}}))
"""


@pytest.mark.parametrize("where", ["entry", "secret"])
def test_a_fifo_does_not_hang_the_fit(sleepstudy, tmp_path, where):
    d = tmp_path / "fits"
    _, name = honest(sleepstudy, d)
    path = d / (name if where == "entry" else cache.SECRET)
    os.unlink(path)
    os.mkfifo(path)
    code = FIFO_FIT.format(formula=FORMULA, d=str(d))
    # the hang guard: reading a FIFO with no writer blocks for ever
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=240)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["cache"] == "miss"
    assert any("not a regular file" in w for w in res["warnings"])
