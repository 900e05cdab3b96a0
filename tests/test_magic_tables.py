"""The magics' --emmeans/--emtrends/--by/--at/--pairwise: the tables R's emmeans
gives for the fitted model, shown under the cell."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import run_cell as run
from lmermagic.errors import DataError
from lmermagic.magic_text import at_values


@pytest.fixture()
def shown(monkeypatch):
    """What the magic displays (IPython.display.display, looked up at call time)."""
    import IPython.display

    out: list = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: out.append(obj))
    return out


@pytest.fixture()
def ns(shell, dietox, sleepstudy):
    shell.user_ns.update(dietox=dietox, sleep=sleepstudy)
    return shell.user_ns


DIETOX = 'e <- new.env(); utils::data("dietox", package = "geepack", envir = e); d <- e$dietox;'


def test_emtrends_simple_slopes_match_r(shell, ns, shown, rref):
    run(shell, "%lmer -d dietox -o m -q --emtrends Time --by Start --at Start=sd "
               "Weight ~ Time * Start + (1 | Pig)")
    (table,) = shown
    ref = rref(DIETOX + """
        fit <- lme4::lmer(Weight ~ Time * Start + (1 | Pig), d)
        s <- d$Start[stats::complete.cases(d[c("Weight", "Time", "Start", "Pig")])]
        at <- mean(s) + c(-1, 0, 1) * stats::sd(s)
        tr <- as.data.frame(summary(emmeans::emtrends(fit, ~ Start, var = "Time",
                                                      at = list(Start = at))))
        c(tr$Start, tr$Time.trend, tr$SE)""")
    ref = np.asarray(ref).reshape(3, 3)
    np.testing.assert_allclose(table["Start"], ref[0], rtol=1e-10)
    np.testing.assert_allclose(table["trend"], ref[1], rtol=1e-8)
    np.testing.assert_allclose(table["std_error"], ref[2], rtol=1e-8)
    assert table.equals(ns["m"].emtrends("Time", specs="Start", at={"Start": "sd"}))


def test_emmeans_at_and_pairwise(shell, ns, shown):
    run(shell, "%lmer -d dietox -o m -q --factors Evit --emmeans Evit --at Time=6 "
               "--pairwise Weight ~ Time + Evit + (1 | Pig)")
    means, contrasts = shown
    expect = ns["m"].emmeans("Evit", at={"Time": [6.0]}, pairwise=True)
    assert means.equals(expect["emmeans"]) and contrasts.equals(expect["contrasts"])
    assert len(means) == 3 and len(contrasts) == 3


@pytest.mark.parametrize("options, match", [
    ("--by Evit", "--by goes with --emmeans or --emtrends"),
    ("--emmeans Evit --at Time", "COLUMN=VALUE"),
    ("--emmeans Evit --at Time=nan", "not a finite value"),
    ("--emmeans Evit --at Time=1 --at Time=2", "twice"),
    ("--emmeans Evit --compare", "--compare"),
    ("--emtrends Tim", "Tim"),
])
def test_bad_table_options(shell, ns, shown, options, match):
    with pytest.raises(DataError, match=match):
        run(shell, f"%lmer -d dietox --factors Evit {options} Weight ~ Time + Evit + (1 | Pig)")
    assert not shown


def test_at_values():
    assert at_values(["Days=0, 5,9", "Subject=308", "mod=sd"]) == {
        "Days": [0.0, 5.0, 9.0], "Subject": [308.0], "mod": "sd"}
    assert at_values(["g=a,b"]) == {"g": ["a", "b"]}
    assert at_values(None) is None
