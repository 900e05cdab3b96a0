"""%lmer_power: the magic form of m.power()."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import run_cell as run
from lmermagic.errors import DataError


@pytest.fixture()
def ns(shell, sleepstudy):
    shell.user_ns.update(sleep=sleepstudy)
    run(shell, "%lmer -d sleep -o pm -q  Reaction ~ Days + (Days | Subject)")
    return shell.user_ns


def test_magic_equals_the_method(shell, ns):
    out = run(shell, "%lmer_power pm Days --effect 4 --along Subject --n 6,10 --nsim 20 "
                     "--seed 7 -o pw")
    assert out is ns["pw"]
    same = ns["pm"].power("Days", effect=4, along="Subject", n=[6, 10], nsim=20, seed=7,
                          progress=False)
    pd.testing.assert_frame_equal(out.table, same.table)
    pd.testing.assert_frame_equal(out.simulations, same.simulations)
    assert list(out.table["n"]) == [6, 10]


@pytest.mark.parametrize("line, match", [
    ("nosuch Days", "'nosuch' is not defined"),
    ("sleep Days", "is a DataFrame"),
    ("pm Days --n 6,x --along Subject", "whole numbers"),
    ("pm Days --nsim", "expected one argument"),
    ("pm", "term"),
    ("pm Dayz --effect 1 --nsim 2", "Dayz"),
])
def test_bad_lines_are_one_clear_message(shell, ns, line, match):
    with pytest.raises(DataError, match=match):
        run(shell, f"%lmer_power {line}")
