"""%glmmtmb's --isolate and --memory-limit, and LmerMagics' settings
(%config LmerMagics.isolate / .cache_dir) applying to %glmmtmb as to %lmer."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

import lmermagic

LINE = "%glmmtmb -d sal -o {out} --family poisson {opts} count ~ mined + cover + (1 | site)"


@pytest.fixture(scope="module")
def sal() -> pd.DataFrame:
    return lmermagic.datasets.load("Salamanders", package="glmmTMB")


def _run(shell: Any, out: str, opts: str = "") -> Any:
    shell.run_cell(LINE.format(out=out, opts=opts), store_history=False).raise_error()
    return shell.user_ns[out]


def test_isolate_option(shell: Any, sal: pd.DataFrame) -> None:
    shell.user_ns["sal"] = sal
    lmermagic.clear_cache()
    m = _run(shell, "iso_m", "--isolate --memory-limit 2")
    assert m.meta["cache"] == "miss" and m.meta.get("isolated") is True
    ref = lmermagic.glmmtmb("count ~ mined + cover + (1 | site)", sal, family="poisson")
    pd.testing.assert_frame_equal(m.coefs, ref.coefs)
    lmermagic.clear_cache()
    assert "isolated" not in _run(shell, "plain_m").meta


def test_lmermagics_settings_apply(shell: Any, sal: pd.DataFrame, tmp_path: Any) -> None:
    shell.user_ns["sal"] = sal
    shell.run_cell(f"%config LmerMagics.cache_dir = {str(tmp_path)!r}", store_history=False)
    shell.run_cell("%config LmerMagics.isolate = True", store_history=False)
    try:
        lmermagic.clear_cache()
        first = _run(shell, "cfg_m")
        assert first.meta["cache"] == "miss" and first.meta.get("isolated") is True
        lmermagic.clear_cache()
        again = _run(shell, "cfg_m2")
        assert again.meta["cache"] == "disk"
        pd.testing.assert_frame_equal(again.coefs, first.coefs)
    finally:
        shell.run_cell("%config LmerMagics.cache_dir = ''", store_history=False)
        shell.run_cell("%config LmerMagics.isolate = False", store_history=False)


def test_lmermagics_allow_and_timeout_apply(shell: Any, sal: pd.DataFrame) -> None:
    """%config LmerMagics.allow and .timeout reach %glmmtmb as they reach %lmer."""
    shell.user_ns["sal"] = sal
    line = "%glmmtmb -d sal -o allow_m --family poisson count ~ atan2(cover, 3) + (1 | site)"
    with pytest.raises(lmermagic.UnsafeFormulaError):
        shell.run_cell(line, store_history=False).raise_error()
    shell.run_cell("%config LmerMagics.allow = ['atan2']", store_history=False)
    shell.run_cell("%config LmerMagics.timeout = 1e-9", store_history=False)
    try:
        with pytest.raises(lmermagic.LmerTimeoutError):
            shell.run_cell(line, store_history=False).raise_error()
        shell.run_cell("%config LmerMagics.timeout = 0", store_history=False)
        shell.run_cell(line, store_history=False).raise_error()
        assert "atan2(cover, 3)" in shell.user_ns["allow_m"].fixef.index
    finally:
        shell.run_cell("%config LmerMagics.allow = []", store_history=False)
        shell.run_cell("%config LmerMagics.timeout = 0", store_history=False)
