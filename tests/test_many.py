"""lmer_many / glmer_many: every mode against R's own fits, computed live here."""

from __future__ import annotations

import threading
import _thread

import numpy as np
import pandas as pd
import pytest

import lmermagic
from lmermagic.errors import DataError, FormulaError, LmerTimeoutError, UnsafeFormulaError

from conftest import child_processes, loose_processes

N_RESP = 12

# The responses: sleepstudy's Reaction plus R's own normal draws (seed 11), so
# that the reference fits below see the very same numbers.
SIM = f"""
d <- lme4::sleepstudy
set.seed(11)
Y <- sapply(seq_len({N_RESP}), function(i) d$Reaction + stats::rnorm(nrow(d), sd = 25))
Y[c(3, 50), 4] <- NA   # one response with its own missing-value pattern
"""


@pytest.fixture(scope="module")
def sim(rref):
    Y = np.asarray(rref(SIM + "as.vector(Y)")).reshape(N_RESP, 180).T
    sleep = lmermagic.datasets.load("sleepstudy")
    resp = pd.DataFrame(Y, columns=[f"y{i + 1}" for i in range(N_RESP)])
    return pd.concat([sleep, resp], axis=1)


@pytest.fixture(scope="module")
def per_response(sim):
    return lmermagic.lmer_many("~ Days + (Days | Subject)", sim,
                               responses=[f"y{i + 1}" for i in range(N_RESP)], progress=False)


def _coef_ref(rref, fits: str) -> dict:
    """lmerTest's coefficient table and lme4's glance values of R fits."""
    return rref(fits + """
    lapply(fits, function(m) {
        ct <- coef(summary(m))
        list(estimate = ct[, 1], se = ct[, 2], df = ct[, 3], t = ct[, 4], p = ct[, 5],
             sigma = sigma(m), loglik = as.numeric(logLik(m)), aic = AIC(m), bic = BIC(m),
             nobs = nobs(m), vc = as.data.frame(lme4::VarCorr(m))$sdcor,
             singular = lme4::isSingular(m))
    })""")


def _check_model(row_coefs: pd.DataFrame, row_glance: pd.Series, row_vc: pd.DataFrame,
                 ref: dict, tol: float = 1e-8) -> None:
    c = row_coefs.set_index("term")
    np.testing.assert_allclose(c["estimate"], ref["estimate"], rtol=tol)
    np.testing.assert_allclose(c["std_error"], ref["se"], rtol=tol)
    np.testing.assert_allclose(c["df"], ref["df"], rtol=tol)
    np.testing.assert_allclose(c["statistic"], ref["t"], rtol=tol)
    np.testing.assert_allclose(c["p_value"], ref["p"], rtol=1e-6)
    for name in ("sigma", "loglik", "aic", "bic"):
        np.testing.assert_allclose(row_glance[name], ref[name][0], rtol=tol)
    assert row_glance["nobs"] == ref["nobs"][0]
    np.testing.assert_allclose(row_vc["sdcor"].to_numpy(dtype=float), ref["vc"], rtol=1e-6)


def test_per_response_equals_fresh_lmertest_fits(per_response, rref):
    """The design is reused across responses; each model still equals a
    fresh lmerTest::lmer of its response (a sample of four, one of them with
    its own missing values)."""
    mm = per_response
    assert len(mm) == N_RESP and mm.n_failed == 0
    assert list(mm.glance["response"]) == [f"y{i + 1}" for i in range(N_RESP)]
    sample = [1, 4, 7, 12]
    refs = _coef_ref(rref, SIM + f"""
    fits <- lapply(c({", ".join(map(str, sample))}), function(i) {{
        d$y <- Y[, i]
        lmerTest::lmer(y ~ Days + (Days | Subject), data = d)
    }})""")
    for i, ref in zip(sample, refs):
        name = f"y{i}"
        _check_model(mm.coefs[mm.coefs.response == name], mm.glance.set_index("response").loc[name],
                     mm.varcorr[mm.varcorr.response == name], ref)
    assert mm.glance.set_index("response").loc["y4", "nobs"] == 178


def test_p_adjusted_is_r_p_adjust_per_term(per_response, rref):
    mm = per_response
    for _term, block in mm.coefs.groupby("term", sort=False):
        p = block["p_value"].to_numpy()
        ref = rref(f"p.adjust(c({', '.join(repr(float(v)) for v in p)}), method = 'BH')")
        np.testing.assert_allclose(block["p_adjusted"], ref, rtol=1e-12)
    assert (mm.coefs["p_adjusted"] >= mm.coefs["p_value"]).all()


@pytest.mark.parametrize("method", ["holm", "bonferroni", "BY", "none"])
def test_p_adjust_methods(sim, rref, method):
    mm = lmermagic.lmer_many("~ Days + (1 | Subject)", sim, responses=["y1", "y2", "y3"],
                             p_adjust=method, progress=False)
    days = mm.coefs[mm.coefs.term == "Days"]
    p = days["p_value"].to_numpy()
    ref = rref(f"p.adjust(c({', '.join(repr(float(v)) for v in p)}), method = '{method}')")
    np.testing.assert_allclose(days["p_adjusted"], ref, rtol=1e-12)


def test_tidy_stacks_each_models_tidy_table(per_response, sim):
    tidy = per_response.tidy()
    one = lmermagic.lmer("y5 ~ Days + (Days | Subject)", sim).tidy()
    mine = tidy[tidy.response == "y5"].drop(columns=["response", "p_adjusted"])
    pd.testing.assert_frame_equal(mine.reset_index(drop=True), one.reset_index(drop=True),
                                  check_dtype=False, rtol=1e-12)
    assert set(tidy.effect) == {"fixed", "ran_pars"}


def test_per_subset(rref):
    sleep = lmermagic.datasets.load("sleepstudy")
    data = sleep.assign(half=np.where(sleep.Subject.astype(str) < "340", "a", "b"),
                        arm=np.tile(["x", "y"], 90))
    mm = lmermagic.lmer_many("Reaction ~ Days + (1 | Subject)", data, by=["half", "arm"],
                             progress=False)
    assert mm.key == ["half", "arm"]
    assert list(map(tuple, mm.glance[["half", "arm"]].to_numpy())) == [
        ("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")]
    refs = _coef_ref(rref, """
    d <- lme4::sleepstudy
    d$half <- ifelse(as.character(d$Subject) < "340", "a", "b")
    d$arm <- rep(c("x", "y"), 90)
    fits <- lapply(list(c("a", "x"), c("a", "y"), c("b", "x"), c("b", "y")), function(k) {
        s <- droplevels(d[d$half == k[1] & d$arm == k[2], ])
        lmerTest::lmer(Reaction ~ Days + (1 | Subject), data = s)
    })""")
    for i, ref in enumerate(refs):
        h, a = mm.glance.loc[i, ["half", "arm"]]
        sel = (mm.coefs.half == h) & (mm.coefs.arm == a)
        vsel = (mm.varcorr.half == h) & (mm.varcorr.arm == a)
        _check_model(mm.coefs[sel], mm.glance.loc[i], mm.varcorr[vsel], ref)


def test_formula_grid(rref):
    sleep = lmermagic.datasets.load("sleepstudy")
    grid = {"slope": "Reaction ~ Days + (Days | Subject)",
            "intercept": "Reaction ~ Days + (1 | Subject)",
            "ml": "log(Reaction) ~ Days + (1 | Subject)"}
    mm = lmermagic.lmer_many(grid, sleep, reml=False, progress=False)
    assert list(mm.glance["model"]) == list(grid)
    refs = _coef_ref(rref, """
    d <- lme4::sleepstudy
    fits <- list(lmerTest::lmer(Reaction ~ Days + (Days | Subject), d, REML = FALSE),
                 lmerTest::lmer(Reaction ~ Days + (1 | Subject), d, REML = FALSE),
                 lmerTest::lmer(log(Reaction) ~ Days + (1 | Subject), d, REML = FALSE))""")
    for name, ref in zip(grid, refs):
        _check_model(mm.coefs[mm.coefs.model == name], mm.glance.set_index("model").loc[name],
                     mm.varcorr[mm.varcorr.model == name], ref)


def test_glmer_many_per_response_and_by(rref):
    """Binomial responses on one design (reused) and Poisson per subset, each
    against a fresh glmer in R."""
    sim_b = """
    set.seed(5)
    d <- lme4::cbpp
    B <- sapply(1:4, function(i) stats::rbinom(nrow(d), 1, 0.3 + 0.1 * (as.integer(d$period) > 1)))
    """
    got = rref(sim_b + "as.vector(B)")
    cbpp = lmermagic.datasets.load("cbpp")
    B = np.asarray(got).reshape(4, len(cbpp)).T
    data = pd.concat([cbpp, pd.DataFrame(B, columns=["b1", "b2", "b3", "b4"])], axis=1)
    mm = lmermagic.glmer_many("~ period + (1 | herd)", data, family="binomial",
                              responses=["b1", "b2", "b3", "b4"], progress=False)
    refs = rref(sim_b + """
    lapply(1:4, function(i) { d$b <- B[, i]
        m <- lme4::glmer(b ~ period + (1 | herd), d, family = binomial)
        ct <- coef(summary(m)); list(estimate = ct[, 1], se = ct[, 2], p = ct[, 4],
                                     loglik = as.numeric(logLik(m))) })""")
    for i, ref in enumerate(refs):
        name = f"b{i + 1}"
        c = mm.coefs[mm.coefs.response == name]
        np.testing.assert_allclose(c["estimate"], ref["estimate"], rtol=1e-8)
        np.testing.assert_allclose(c["std_error"], ref["se"], rtol=1e-8)
        np.testing.assert_allclose(c["p_value"], ref["p"], rtol=1e-8)
        np.testing.assert_allclose(mm.glance.loc[i, "loglik"], ref["loglik"][0], rtol=1e-10)
    assert np.isinf(mm.coefs["df"]).all()


def test_one_bad_model_does_not_stop_the_batch(sim):
    data = sim.assign(empty=np.nan, flat=1.0)
    data.loc[:5, "empty"] = 1.0
    mm = lmermagic.lmer_many("~ Days + (Days | Subject)", data,
                             responses=["y1", "empty", "flat", "y2"], progress=False)
    assert list(mm.glance["response"]) == ["y1", "flat", "y2"] or \
        list(mm.glance["response"]) == ["y1", "y2"]
    assert "empty" in set(mm.errors["response"])
    assert mm.errors["message"].str.len().min() > 0
    assert set(mm.coefs.response) >= {"y1", "y2"}


def test_singular_and_nonconverged_are_recorded(sim):
    data = sim.assign(noise=np.random.default_rng(3).normal(size=len(sim)))
    mm = lmermagic.lmer_many("~ Days + (Days | Subject)", data, responses=["y1", "noise"],
                             progress=False)
    g = mm.glance.set_index("response")
    assert bool(g.loc["noise", "singular"]) and not bool(g.loc["y1", "singular"])
    assert g.loc["noise", "n_warnings"] >= 1
    assert (mm.warnings.response == "noise").any()


@pytest.mark.parametrize("kwargs, error, text", [
    ({"formula": "~ Days + (Days | Subjct)", "responses": ["y1"]}, FormulaError, "Subjct"),
    ({"formula": "~ system('ls') + (1 | Subject)", "responses": ["y1"]},
     UnsafeFormulaError, "system"),
    ({"formula": "~ Days + (1 | Subject)", "responses": ["y1", "nope"]}, DataError, "nope"),
    ({"formula": "~ Days + (1 | Subject)", "responses": ["Subject"]}, DataError, "numeric"),
    ({"formula": "Reaction ~ Days + (1 | Subject)", "by": "site"}, DataError, "site"),
    ({"formula": "~ Days + (1 | Subject)", "responses": ["y1"], "p_adjust": "magic"},
     DataError, "p_adjust"),
    ({"formula": "~ Days + (1 | Subject)", "responses": ["y1"], "isolate": True},
     DataError, "isolate"),
    ({"formula": "~ Days + (1 | Subject)", "responses": ["y1"], "backend": "cloud"},
     DataError, "backend"),
])
def test_mistakes_fail_at_once_before_any_worker(sim, kwargs, error, text):
    before = child_processes()
    with pytest.raises(error, match=text):
        lmermagic.lmer_many(data=sim, workers=2, progress=False, **kwargs)
    assert loose_processes(before) == set()


def test_backends_give_identical_tables(sim, per_response):
    """Serial, two worker processes and a Dask LocalCluster of two: the same
    tables, bit for bit, with chunks that split the responses differently."""
    before = child_processes()  # the session's isolated-fit worker, if another test started it
    responses = [f"y{i + 1}" for i in range(N_RESP)]
    procs = lmermagic.lmer_many("~ Days + (Days | Subject)", sim, responses=responses,
                                backend="processes", workers=2, chunk_size=5, progress=False)
    dask = lmermagic.lmer_many("~ Days + (Days | Subject)", sim, responses=responses,
                               backend="dask", workers=2, chunk_size=2, progress=False)
    for other in (procs, dask):
        for table in ("coefs", "glance", "varcorr", "errors"):
            pd.testing.assert_frame_equal(getattr(per_response, table), getattr(other, table),
                                          check_exact=True)
    assert procs.meta["backend"] == "processes" and dask.meta["backend"] == "dask"
    assert loose_processes(before) == set()


@pytest.mark.parametrize("mode", ["by", "grid"])
def test_every_mode_is_identical_on_every_backend(sim, mode):
    """Per subset and formula grid (per response: the test above) on two
    worker processes and on Dask give the serial tables, bit for bit."""
    data = sim.assign(site=sim.Subject.cat.codes % 3)
    if mode == "by":
        call = ("Reaction ~ Days + (1 | Subject)", data)
        kwargs = {"by": "site"}
    else:
        call = ({"a": "y1 ~ Days + (Days | Subject)", "b": "y2 ~ Days + (1 | Subject)",
                 "c": "log(Reaction) ~ Days + (1 | Subject)"}, data)
        kwargs = {}
    serial = lmermagic.lmer_many(*call, progress=False, **kwargs)
    assert serial.n_failed == 0 and len(serial) == 3
    for backend in ("processes", "dask"):
        other = lmermagic.lmer_many(*call, backend=backend, workers=2, chunk_size=1,
                                    progress=False, **kwargs)
        for table in ("coefs", "glance", "varcorr", "errors"):
            pd.testing.assert_frame_equal(getattr(serial, table), getattr(other, table),
                                          check_exact=True)


def test_dask_client_of_the_callers_cluster(sim):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        data = sim.assign(site=sim.Subject.cat.codes % 3)
        mm = lmermagic.lmer_many("Reaction ~ Days + (1 | Subject)", data,
                                 by="site", backend=client, progress=False)
        assert len(mm) == 3 and mm.n_failed == 0
        serial = lmermagic.lmer_many("Reaction ~ Days + (1 | Subject)", data, by="site",
                                     progress=False)
        pd.testing.assert_frame_equal(mm.coefs, serial.coefs, check_exact=True)
        assert mm.meta["backend"] == "client"
        one_level = lmermagic.lmer_many("Reaction ~ Days + (1 | Subject)", data,
                                        by="Subject", backend=client, progress=False)
        assert one_level.n_failed == 18  # a grouping factor with one level: recorded
        assert one_level.errors["message"].str.contains("only one level").all()
        # the caller's cluster is the caller's: still running
        assert client.submit(sum, [1, 2]).result() == 3


def _big(sim: pd.DataFrame, copies: int) -> tuple[pd.DataFrame, list[str]]:
    extra = {f"z{i}": sim["y1"].to_numpy() + i for i in range(copies)}
    return pd.concat([sim, pd.DataFrame(extra)], axis=1), list(extra)


def test_timeout_stops_every_worker(sim):
    data, responses = _big(sim, 400)
    before = child_processes()
    with pytest.raises(LmerTimeoutError, match="time limit"):
        lmermagic.lmer_many("~ Days + (Days | Subject)", data, responses=responses,
                            backend="processes", workers=2, chunk_size=10, timeout=4,
                            progress=False)
    assert loose_processes(before) == set()


def test_ctrl_c_stops_every_worker_and_r_stays_usable(sim):
    data, responses = _big(sim, 400)
    before = child_processes()
    timer = threading.Timer(5.0, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            lmermagic.lmer_many("~ Days + (Days | Subject)", data, responses=responses,
                                backend="processes", workers=2, chunk_size=10,
                                progress=False)
    finally:
        timer.cancel()
    assert loose_processes(before) == set()
    m = lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sim)
    assert abs(m.coefs.loc["Days", "estimate"] - 10.467285959595) < 1e-6


def test_keep_models(sim):
    mm = lmermagic.lmer_many("~ Days + (1 | Subject)", sim, responses=["y1", "y2"],
                             keep_models=True, progress=False)
    assert set(mm.models) == {"y1", "y2"}
    m = mm.models["y2"]
    got = mm.coefs[mm.coefs.response == "y2"].set_index("term")["estimate"]
    np.testing.assert_allclose(m.coefs["estimate"], got, rtol=1e-12)


def test_caller_data_untouched(sim):
    before = sim.copy(deep=True)
    lmermagic.lmer_many("Reaction ~ Days + (1 | Subject)", sim, by="Subject", progress=False)
    pd.testing.assert_frame_equal(sim, before)


def _cell(shell, text: str) -> None:
    result = shell.run_cell(text)
    if result.error_in_exec is not None:
        raise result.error_in_exec


def test_magic_per_response_by_pattern(shell, sim):
    shell.user_ns["wide"] = sim
    _cell(shell, "%lmer_many -d wide -o res -q --responses 'y1*' ~ Days + (Days | Subject)")
    res = shell.user_ns["res"]
    assert list(res.glance.response) == ["y1", "y10", "y11", "y12"]
    api = lmermagic.lmer_many("~ Days + (Days | Subject)", sim,
                              responses=["y1", "y10", "y11", "y12"], progress=False)
    pd.testing.assert_frame_equal(res.coefs, api.coefs, check_exact=True)


def test_magic_formula_grid_and_by(shell, sim):
    shell.user_ns["wide"] = sim.assign(site=sim.Subject.cat.codes % 2)
    _cell(shell, "%%lmer_many -d wide -o grid -q --by site --p-adjust holm\n"
                   "slope = Reaction ~ Days + (Days | Subject)\n"
                   "flat = Reaction ~ 1 + (1 | Subject)  # intercept only\n")
    grid = shell.user_ns["grid"]
    assert grid.key == ["model", "site"]
    assert list(map(tuple, grid.glance[["model", "site"]].to_numpy())) == [
        ("slope", 0), ("slope", 1), ("flat", 0), ("flat", 1)]
    assert grid.meta["p_adjust"] == "holm"


def test_magic_mistakes_say_what_to_do(shell, sim):
    shell.user_ns["wide"] = sim
    with pytest.raises(DataError, match="no column matches"):
        _cell(shell, "%lmer_many -d wide --responses 'zz*' ~ Days + (1 | Subject)")
    with pytest.raises(DataError, match="not defined"):
        _cell(shell, "%lmer_many -d wid --responses y1 ~ Days + (1 | Subject)")


def test_glmer_many_poisson_per_subset(rref):
    cbpp = lmermagic.datasets.load("cbpp")
    data = cbpp.assign(part=cbpp.herd.cat.codes % 2)
    mm = lmermagic.glmer_many("incidence ~ period + (1 | herd)", data, family="poisson",
                              by="part", progress=False)
    refs = rref("""
    d <- lme4::cbpp
    d$part <- (as.integer(d$herd) - 1L) %% 2L
    lapply(0:1, function(k) {
        m <- lme4::glmer(incidence ~ period + (1 | herd), droplevels(d[d$part == k, ]),
                         family = poisson)
        ct <- coef(summary(m)); list(estimate = ct[, 1], se = ct[, 2], p = ct[, 4],
                                     loglik = as.numeric(logLik(m))) })""")
    for k, ref in enumerate(refs):
        c = mm.coefs[mm.coefs.part == k]
        np.testing.assert_allclose(c["estimate"], ref["estimate"], rtol=1e-8)
        np.testing.assert_allclose(c["std_error"], ref["se"], rtol=1e-8)
        np.testing.assert_allclose(c["p_value"], ref["p"], rtol=1e-8)
        np.testing.assert_allclose(mm.glance.loc[k, "loglik"], ref["loglik"][0], rtol=1e-10)


def test_dask_missing_says_what_to_install(sim, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"pip install 'lmermagic\[dask\]'"):
        lmermagic.lmer_many("~ Days + (1 | Subject)", sim, responses=["y1"], backend="dask",
                            progress=False)


def test_progress_line_counts_models_done_and_failed(sim, monkeypatch):
    from lmermagic import tally

    shown: list = []
    monkeypatch.setattr(tally, "DELAY", 0.0)
    monkeypatch.setattr(tally, "INTERVAL", 0.0)
    previous = tally.set_display(lambda: shown.append)
    try:
        data = sim.assign(empty=np.nan)
        lmermagic.lmer_many("~ Days + (1 | Subject)", data, responses=["y1", "empty", "y2"],
                            chunk_size=1)
    finally:
        tally.set_display(previous)
    lines = [s for s in shown if s]
    assert lines and lines[-1].startswith("lmer_many: 3/3 models")
    assert "1 failed" in lines[-1]
    assert shown[-1] is None  # removed at the end


def test_one_response_given_as_a_string(sim):
    one = lmermagic.lmer_many("~ Days + (1 | Subject)", sim, responses="y3", progress=False)
    listed = lmermagic.lmer_many("~ Days + (1 | Subject)", sim, responses=["y3"],
                                 progress=False)
    assert list(one.glance["response"]) == ["y3"]
    pd.testing.assert_frame_equal(one.coefs, listed.coefs, check_exact=True)
