"""m.save(path) and lmermagic.load_model(path) for glmmTMB models: the loaded
model has the saved one's tables and its methods the same numbers; a file is
hostile input, so a fit part that would run code in R, or options that are no
fit's, end in ModelFileError before R reads the fit, with no code run."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic import savefile
from test_glmmtmb_cache import ATTACKS, FORMULA, crafted, same_methods, same_tables

KW: dict[str, Any] = {"family": "nbinom2", "ziformula": "~ mined"}


@pytest.fixture(scope="module")
def sal() -> pd.DataFrame:
    d = lmermagic.datasets.load("Salamanders", package="glmmTMB")
    return d.set_index(pd.Index([f"r{i}" for i in range(len(d))]))


@pytest.fixture(scope="module")
def model(sal: pd.DataFrame) -> Any:
    return lmermagic.glmmtmb(FORMULA, sal, data_name="sal", **KW)


def test_round_trip(model: Any, sal: pd.DataFrame, tmp_path: Any) -> None:
    path = tmp_path / "zinb.lmm"
    model.save(path)
    m = lmermagic.load_model(path)
    assert isinstance(m, lmermagic.TmbModel)
    same_tables(model, m)
    assert m.fitted.index.equals(sal.index)
    assert (m.data_name, m.family, m.link, m.request.ziformula) == (
        "sal", "nbinom2", "log", "~ mined")
    same_methods(model, m, sal)
    assert m.r_code() == model.r_code()
    m.save(tmp_path / "again.lmm")  # a loaded model saves too
    same_tables(model, lmermagic.load_model(tmp_path / "again.lmm"))


def test_dispersion_model_round_trip(sal: pd.DataFrame, tmp_path: Any) -> None:
    d = sal.assign(y=np.log1p(sal["count"]) + np.linspace(0, 1, len(sal)))
    m0 = lmermagic.glmmtmb("y ~ mined + (1 | site)", d, dispformula="~ mined", reml=True)
    m0.save(tmp_path / "g.lmm")
    m = lmermagic.load_model(tmp_path / "g.lmm")
    same_tables(m0, m)
    assert m.reml and m.predict(d.head(4)).equals(m0.predict(d.head(4)))


def rewrite(path: Any, out: Any, meta: Any = None, payload: bytes | None = None) -> None:
    parts = savefile.read(path)
    if meta is not None:
        parts[0] = json.dumps(meta(json.loads(parts[0]))).encode()
    if payload is not None:
        parts[2] = payload
    savefile.write(out, parts)  # a whole file: its digest matches


@pytest.mark.parametrize("how", ATTACKS)
def test_a_file_whose_fit_would_run_code_is_refused(model: Any, tmp_path: Any,
                                                   how: str) -> None:
    model.save(tmp_path / "m.lmm")
    marker = tmp_path / "code-ran"
    payload = crafted(savefile.read(tmp_path / "m.lmm")[2], marker, how, model)
    rewrite(tmp_path / "m.lmm", tmp_path / "bad.lmm", payload=payload)
    with pytest.raises(lmermagic.ModelFileError, match="does not hold a model lmermagic can"):
        lmermagic.load_model(tmp_path / "bad.lmm")
    assert not marker.exists()


def _set(**kw: Any) -> Any:
    def change(meta: Any) -> Any:
        meta["request"].update(kw)
        return meta
    return change


FORMULA_REFUSED = "formula does not pass|safety check"


@pytest.mark.parametrize("change,match", [
    (_set(family="system"), "not a glmmTMB family"),
    (_set(link="system('x')"), "options are not a fit's"),
    (_set(ziformula="~ system('touch x')"), FORMULA_REFUSED),
    (_set(formula="count ~ mined + (1 | site) + system('x')"), FORMULA_REFUSED),
    (_set(reml="yes"), "options are not a glmmTMB fit's"),
    (_set(extra_functions=["system"]), "allow_functions"),
    (_set(weights="nonesuch"), FORMULA_REFUSED),
])
def test_a_file_with_options_no_fit_has_is_refused(model: Any, tmp_path: Any, change: Any,
                                                  match: str) -> None:
    model.save(tmp_path / "m.lmm")
    rewrite(tmp_path / "m.lmm", tmp_path / "bad.lmm", meta=change)
    with pytest.raises(lmermagic.ModelFileError, match=match):
        lmermagic.load_model(tmp_path / "bad.lmm")
    # R still works
    assert lmermagic.load_model(tmp_path / "m.lmm").nobs == model.nobs


def test_a_damaged_file_is_refused(model: Any, tmp_path: Any) -> None:
    model.save(tmp_path / "m.lmm")
    raw = bytearray((tmp_path / "m.lmm").read_bytes())
    raw[-40] ^= 0xFF
    (tmp_path / "bad.lmm").write_bytes(bytes(raw))
    with pytest.raises(lmermagic.ModelFileError, match="damaged"):
        lmermagic.load_model(tmp_path / "bad.lmm")
