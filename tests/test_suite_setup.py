"""The suite refuses to run without R's packages, loudly, also split across processes
(pytest-xdist, as `make test` runs it): exit status 3 and the install instructions, no
test run and none skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def test_missing_r_packages_stop_a_parallel_run(tmp_path):
    pytest.importorskip("xdist")
    empty = tmp_path / "library"
    empty.mkdir()
    # R without its site and user libraries: where Debian, CRAN's installers and conda's
    # r-lme4 put lme4
    env = dict(os.environ, R_LIBS_SITE=str(empty), R_LIBS_USER=str(empty), R_LIBS="")
    probe = subprocess.run(["Rscript", "-e", 'cat(nzchar(system.file(package = "lme4")))'],
                           env=env, capture_output=True, text=True, check=False)
    if probe.stdout.strip() != "FALSE":
        pytest.skip(f"lme4 is in R's own library here, it cannot be hidden: {probe.stdout}")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadfile", "-p", "no:cacheprovider",
         "tests/test_layers.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out
    assert "R is not usable" in out and "apt-get install" in out, out
    assert " passed" not in out and " skipped" not in out, out
