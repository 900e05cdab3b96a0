"""lmer_many's workers= is a count of processes: anything else is refused,
naming the value, before any worker starts (issue 24: workers=0 was taken as
the default)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import lmermagic
from lmermagic.errors import DataError


@pytest.mark.parametrize("workers", [0, -1, -3, 2.5, 2.0, True, False, float("nan"), "2",
                                     np.float64(2.0), np.int64(0)])
@pytest.mark.parametrize("backend", [None, "processes", "serial"])
def test_workers_must_be_a_whole_number_of_at_least_one(sleepstudy, workers, backend):
    with pytest.raises(DataError, match=re.escape(f"workers={workers!r}")):
        lmermagic.lmer_many({"a": "Reaction ~ Days + (1 | Subject)"}, sleepstudy,
                            workers=workers, backend=backend, progress=False)


@pytest.mark.parametrize("workers", [1, np.int64(1), None])
def test_one_worker_or_the_default_fits(sleepstudy, workers):
    mm = lmermagic.lmer_many({"a": "Reaction ~ Days + (1 | Subject)"}, sleepstudy,
                             workers=workers, progress=False)
    assert mm.n_failed == 0 and mm.meta["workers"] == 1
