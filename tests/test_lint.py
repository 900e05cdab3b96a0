"""The house style is checked with the suite: ruff on the code and tests, mypy on the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# mypy checks for Python 3.10 whatever runs it, and ruff's verdict does not depend on R:
# the host's suite runs them, the matrix's stacks do not (docs/compatibility.md).
pytestmark = pytest.mark.host_only

ROOT = Path(__file__).parents[1]


def test_ruff():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "lmermagic", "tests", "scripts",
                           "docs/site", "benchmarks"],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy():
    proc = subprocess.run([sys.executable, "-m", "mypy", "lmermagic"], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
