"""lmer_many's design reuse gives every model the fit lmer() gives it alone, in
any order of the models: a response whose transformation makes NaN (sqrt or
log of a negative) drops those rows as lme4's model frame does, one that makes
-Inf (log of 0) fails as lmer() fails, a right-hand side that drops rows
(log of a negative x) is reused with its own rows. Issue 24 (6)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic.errors import DataError, FitError

GRID = {
    "log": "log(y1) ~ x + (1 | g)",
    "sqrt_neg": "sqrt(y2) ~ x + (1 | g)",  # two negative y2: two rows NaN
    "log_zero": "log(y3) ~ x + (1 | g)",  # y3 has a 0: -Inf, lme4 refuses
    "plain": "y1 ~ x + (1 | g)",
    "sqrt_pos": "sqrt(y2 + 2) ~ x + (1 | g)",
    "log_neg": "log(y2) ~ x + (1 | g)",  # the same two rows NaN as sqrt_neg
    "rhs_nan": "y1 ~ log(xx) + (1 | g)",  # xx < 0 on some rows: the design drops them
    "both_nan": "sqrt(y2) ~ log(xx) + (1 | g)",
    "rhs_nan_y4": "y4 ~ log(xx) + (1 | g)",  # y4 has missing values of its own
}


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(24)
    n, groups = 120, 12
    g = np.repeat(np.arange(groups), n // groups)
    x = rng.normal(size=n)
    u = rng.normal(0, 0.4, groups)[g]
    y1 = np.exp(1 + 0.3 * x + u + rng.normal(0, 0.2, n))
    y2 = (2 + 0.5 * x + u + rng.normal(0, 0.5, n)) ** 2
    y2[[5, 40]] = -1.0
    y3 = y1.copy()
    y3[7] = 0.0
    y4 = y1 * 2 + rng.normal(0, 0.3, n)
    y4[[3, 60, 61]] = np.nan
    return pd.DataFrame({"y1": y1, "y2": y2, "y3": y3, "y4": y4, "x": x,
                         "xx": x + 1.5, "x2": 2 * x, "g": g.astype(str)})


def _alone(formula: str, data: pd.DataFrame) -> object:
    """lmer()'s fit of one model (its warnings' texts as ``texts``), or the
    error it raises."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            m = lmermagic.lmer(formula, data)
        except (FitError, DataError) as exc:
            return exc
    m.texts = sorted({str(w.message) for w in caught})
    return m


@pytest.fixture(scope="module")
def alone(data) -> dict[str, object]:
    return {name: _alone(f, data) for name, f in GRID.items()}


def _check_row(mm, key: str, value: str, ref: object) -> None:
    err = mm.errors[mm.errors[key] == value]
    if isinstance(ref, Exception):
        assert len(err) == 1, f"{value}: lmer() fails ({ref}), lmer_many fitted it"
        message = err["message"].iloc[0]
        assert message in str(ref) or message == getattr(ref, "r_message", None), \
            (value, message, str(ref))
        return
    assert err.empty, f"{value}: lmer() fits it, lmer_many says {err.to_dict('records')}"
    coefs = mm.coefs[mm.coefs[key] == value].set_index("term")
    assert list(coefs.index) == list(ref.coefs.index)
    for col in ("estimate", "std_error", "df", "statistic", "p_value"):
        np.testing.assert_allclose(coefs[col], ref.coefs[col], rtol=1e-7, err_msg=value)
    glance = mm.glance.set_index(key).loc[value]
    assert glance["nobs"] == ref.nobs, value
    np.testing.assert_allclose([glance["loglik"], glance["sigma"]], [ref.loglik, ref.sigma],
                               rtol=1e-9, err_msg=value)
    texts = mm.warnings[mm.warnings[key] == value]["message"]
    assert sorted(set(texts)) == ref.texts, value  # "NaNs produced" where lmer() says it
    vc = mm.varcorr[mm.varcorr[key] == value]
    np.testing.assert_allclose(vc["sdcor"].to_numpy(float),
                               ref.varcorr["sdcor"].to_numpy(float), rtol=1e-6,
                               err_msg=value)


def _orders(names: list[str], seed: int, n: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [names, names[::-1]] + [list(rng.permutation(names)) for _ in range(n)]


def test_a_formula_grid_gives_lmers_fits_in_any_order(data, alone):
    # the order first: sqrt(y2) after log(y1) failed with "NA/NaN/Inf in 'y'"
    assert isinstance(alone["log_zero"], FitError)  # lmer() refuses -Inf itself
    assert alone["sqrt_neg"].nobs == 118
    for order in _orders(list(GRID), seed=6, n=4):
        mm = lmermagic.lmer_many({k: GRID[k] for k in order}, data, progress=False)
        for name in order:
            _check_row(mm, "model", name, alone[name])


@pytest.mark.parametrize("rhs", ["~ log(xx) + (1 | g)", "~ x + (1 | g)", "~ x + x2 + (1 | g)"])
def test_per_response_mode_gives_lmers_fits_in_any_order(data, rhs):
    """The right-hand side's own NaN rows (log of a negative xx) made the second
    response fail with "replacement has 120 rows, data has 113"; a model reusing
    a design says what lme4 said building it ("NaNs produced", "rank deficient")."""
    responses = ["y1", "y2", "y4", "y3"]
    ref = {r: _alone(f"{r} {rhs}", data) for r in responses}
    for order in _orders(responses, seed=7, n=2):
        mm = lmermagic.lmer_many(rhs, data, responses=order, progress=False)
        for r in order:
            _check_row(mm, "response", r, ref[r])


def test_glmer_per_response_with_rows_dropped_by_the_rhs(data):
    rng = np.random.default_rng(3)
    d = data.assign(c1=rng.poisson(3, len(data)), c2=rng.poisson(5, len(data)))
    rhs = "~ log(xx) + (1 | g)"
    for order in (["c1", "c2"], ["c2", "c1"]):
        mm = lmermagic.glmer_many(rhs, d, family="poisson", responses=order, progress=False)
        assert mm.errors.empty, mm.errors
        for r in order:
            ref = lmermagic.glmer(f"{r} {rhs}", d, family="poisson")
            coefs = mm.coefs[mm.coefs["response"] == r].set_index("term")
            np.testing.assert_allclose(coefs["estimate"], ref.coefs["estimate"], rtol=1e-6)
            assert mm.glance.set_index("response").loc[r, "nobs"] == ref.nobs
