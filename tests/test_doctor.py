"""``python -m lmermagic doctor``: the optional model packages (glmmTMB for
lmermagic.glmmtmb, ordinal for lmermagic.clmm) by version, or "not installed"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest



def _doctor(env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lmermagic", "doctor"], capture_output=True,
                          text=True, env=env, timeout=300)


def test_doctor_reports_glmmtmb_and_ordinal(rref):
    proc = _doctor()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for pkg in ("glmmTMB", "ordinal"):
        installed = rref(f'nzchar(system.file(package = "{pkg}"))')[0]
        line = next(x for x in proc.stdout.splitlines() if x.startswith(pkg + " "))
        if installed:
            version = rref(f'as.character(utils::packageVersion("{pkg}"))')[0]
            assert line.split() == [pkg, version]
        else:
            assert "not installed" in line


def test_doctor_says_not_installed(rref, tmp_path):
    """R started with a library holding everything but glmmTMB and ordinal
    (links to the real packages): doctor names them as not installed."""
    paths = rref(".libPaths()")
    base = rref(".Library")[0]
    homes = rref('find.package(c("glmmTMB", "ordinal"), quiet = TRUE)')
    if any(os.path.dirname(h) == base for h in homes):
        pytest.skip("glmmTMB/ordinal live in R's own library, which R always searches")
    lib = tmp_path / "lib"
    lib.mkdir()
    for path in paths:
        if path == base or not os.path.isdir(path):
            continue
        for entry in sorted(os.listdir(path)):
            if entry not in ("glmmTMB", "ordinal") and not (lib / entry).exists():
                (lib / entry).symlink_to(Path(path) / entry)
    env = {**os.environ, "R_LIBS_SITE": str(lib), "R_LIBS_USER": str(lib), "R_LIBS": ""}
    proc = _doctor(env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for pkg, needs in (("glmmTMB", "lmermagic.glmmtmb"), ("ordinal", "lmermagic.clmm")):
        line = next(x for x in lines if x.startswith(pkg + " "))
        assert "not installed" in line and needs in line and "apt-get install" in line
    assert "all required packages present" in proc.stdout
