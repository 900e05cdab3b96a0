"""m.save(path) and lmermagic.load_model(path) (issue 18 item 5): a loaded
model has the saved model's tables and every method gives the same numbers;
a file that is not a whole model saved by lmermagic is refused with
ModelFileError (a ValueError) saying what it is, and no code in a file runs."""

from __future__ import annotations

import os
import pickle
import struct
import threading

import numpy as np
import pandas as pd
import pytest

from conftest import model_method_results
import lmermagic
from lmermagic import savefile

FORMULA = "Reaction ~ Days + (Days | Subject)"
GLMER = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def saved(sleepstudy, tmp_path_factory):
    m = lmermagic.lmer(FORMULA, sleepstudy)
    path = tmp_path_factory.mktemp("saved") / "sleep.lmm"
    m.save(path)
    return m, path


def _same_tables(a, b):
    for name in ("coefs", "varcorr"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True)
    for name in ("fitted", "residuals"):
        pd.testing.assert_series_equal(getattr(a, name), getattr(b, name), check_exact=True)
    for g in a.ranef:
        pd.testing.assert_frame_equal(a.ranef[g], b.ranef[g], check_exact=True)
    for name in ("loglik", "aic", "bic", "deviance", "sigma", "nobs", "formula", "kind",
                 "family", "link", "warnings", "singular", "versions"):
        assert getattr(a, name) == getattr(b, name), name


def _methods(m, data, response):
    return {**model_method_results(m, data, response), "tidy": m.tidy(), "glance": m.glance()}


@pytest.mark.parametrize("kind", ["lmer", "glmer"])
def test_a_loaded_model_has_the_same_tables_and_methods(sleepstudy, cbpp, tmp_path, kind):
    if kind == "lmer":
        m = lmermagic.lmer(FORMULA, sleepstudy)
        data, response = sleepstudy, sleepstudy["Reaction"] * 1.5
    else:
        m = lmermagic.glmer(GLMER, cbpp, family="binomial")
        data = cbpp
        response = np.column_stack([cbpp["incidence"] + 1, cbpp["size"] - cbpp["incidence"]])
    path = tmp_path / "model.lmm"
    m.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.lmm"]  # one file, no leftovers
    back = lmermagic.load_model(path)
    _same_tables(m, back)
    expected, got = _methods(m, data, response), _methods(back, data, response)
    for name, value in expected.items():
        if isinstance(value, pd.Series):
            pd.testing.assert_series_equal(got[name], value, check_exact=True, obj=name)
        else:
            pd.testing.assert_frame_equal(got[name], value, check_exact=True, obj=name)


def test_allowed_functions_come_from_the_caller(sleepstudy, tmp_path):
    m = lmermagic.lmer("Reaction ~ atan2(Days, 3) + (1 | Subject)", sleepstudy,
                       allow_functions=["atan2"])
    path = tmp_path / "atan.lmm"
    m.save(path)
    with pytest.raises(lmermagic.ModelFileError, match=r"atan2.*allow_functions=\['atan2'\]"):
        lmermagic.load_model(path)
    back = lmermagic.load_model(path, allow_functions=["atan2"])
    pd.testing.assert_series_equal(back.predict(newdata=sleepstudy.head()),
                                   m.predict(newdata=sleepstudy.head()), check_exact=True)


def _refused(path, match):
    with pytest.raises(lmermagic.ModelFileError, match=match) as info:
        lmermagic.load_model(path)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("offset", [3, 20, 60, -50, -1])
def test_one_byte_changed_is_refused(saved, tmp_path, offset):
    raw = bytearray(saved[1].read_bytes())
    raw[offset] ^= 0x01
    path = tmp_path / "changed.lmm"
    path.write_bytes(bytes(raw))
    _refused(path, "damaged|not a model saved|newer lmermagic|cut short|after its end")


@pytest.mark.parametrize("keep", [0, 5, 16, 40, 100, -1, -1000])
def test_a_file_cut_short_is_refused(saved, tmp_path, keep):
    raw = saved[1].read_bytes()
    path = tmp_path / "cut.lmm"
    path.write_bytes(raw[:keep])
    _refused(path, "empty" if keep == 0 else "cut short|not a model saved")


def test_other_kinds_of_file_are_refused(saved, sleepstudy, tmp_path):
    cases = {
        "png": (b"\x89PNG\r\n\x1a\n" + bytes(100), "PNG image"),
        "pickle": (pickle.dumps({"model": 1}), "pickle"),
        "text": (b"Reaction ~ Days\n", "not a model saved by lmermagic"),
    }
    for name, (content, match) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        _refused(path, match)
    d = tmp_path / "cache"
    lmermagic.clear_cache()  # from memory, nothing would be written
    lmermagic.lmer(FORMULA, sleepstudy, cache_dir=d)
    [entry] = [p for p in d.iterdir() if p.suffix == ".lmmfit"]
    _refused(entry, "entry of lmermagic's fit cache")
    lmermagic.clear_cache()


def test_a_newer_format_says_to_upgrade(saved, tmp_path):
    raw = bytearray(saved[1].read_bytes())
    struct.pack_into(">I", raw, 8, savefile.FORMAT + 1)
    path = tmp_path / "newer.lmm"
    path.write_bytes(bytes(raw))
    _refused(path, rf"format {savefile.FORMAT + 1}.*upgrade lmermagic")


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_fifo_or_directory_does_not_hang(tmp_path, kind):
    path = tmp_path / kind
    os.mkfifo(path) if kind == "fifo" else path.mkdir()
    outcome = []

    def load():
        try:
            lmermagic.load_model(path)
        except lmermagic.ModelFileError as exc:
            outcome.append(str(exc))

    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(60)  # a hang guard, not a timing
    assert outcome and "not a regular file" in outcome[0]


def test_code_in_a_file_with_a_right_digest_does_not_run(saved, tmp_path):
    from test_rdsguard import crafted

    _, path = saved
    marker = tmp_path / "code-ran"
    parts = savefile.read(path)
    bad = tmp_path / "bad.lmm"
    savefile.write(bad, [parts[0], parts[1], crafted(parts[2], marker, "promise")])
    _refused(bad, "does not hold a model lmermagic can load")
    assert not marker.exists()


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        lmermagic.load_model(tmp_path / "nothing.lmm")


@pytest.mark.parametrize("change, match", [
    ({"formula": "Reaction ~ system('touch x') + (1 | Subject)"}, "system"),
    ({"ddf": "bogus"}, "not a df method"),
    ({"kind": "glmer"}, "ddf 'satterthwaite' for a glmer model"),
    ({"control": {"optimizer": 1}}, "options are not a fit's"),
    ({"extra_functions": "atan2"}, "options are not a fit's"),
    ({"weights": "nope"}, "nope"),
])
def test_options_in_a_file_are_checked_as_a_new_fits(saved, tmp_path, change, match):
    import json

    parts = savefile.read(saved[1])
    meta = json.loads(parts[0])
    meta["request"].update(change)
    path = tmp_path / "options.lmm"
    savefile.write(path, [json.dumps(meta).encode(), parts[1], parts[2]])
    _refused(path, match)
