"""The rpy2 seam's knowledge of which stacks do not work (pure Python, no R)."""

from __future__ import annotations

import pytest

from lmermagic import _rpy2

NEW = {"rpy2": "3.6.9", "rpy2-rinterface": "3.6.7", "rpy2-robjects": "3.6.6"}
OLD = {"rpy2": "3.5.17", "rpy2-rinterface": None, "rpy2-robjects": None}
EARLY_36 = {"rpy2": "3.6.2", "rpy2-rinterface": "3.6.5", "rpy2-robjects": "3.6.2"}


@pytest.mark.parametrize("r_version,dists,error,fix", [
    ("4.2.2", NEW, "", "pip install 'rpy2==3.5.17'"),
    ("4.4.3", NEW, "", "needs R >= 4.5"),
    (None, NEW, "undefined symbol: R_getVar", "pip install 'rpy2==3.5.17'"),
    ("4.5.0", NEW, "", None),
    ("4.6.2", NEW, "", None),
    ("4.2.2", OLD, "", None),
    ("4.6.2", OLD, "", None),
    ("4.2.2", EARLY_36, "", None),
    ("4.2.2", {"rpy2": None, "rpy2-rinterface": None, "rpy2-robjects": None}, "",
     "rpy2 is not installed"),
])
def test_known_problem(r_version, dists, error, fix):
    problem = _rpy2.known_problem(r_version, dists, error)
    if fix is None:
        assert problem is None
    else:
        assert problem is not None and fix in problem


def test_rinterface_version_is_the_code_behind_rinterface():
    assert _rpy2.rinterface_version(NEW) == "3.6.7"
    assert _rpy2.rinterface_version(OLD) == "3.5.17"


def test_installed_stack_has_no_known_problem():
    # The stack the suite runs on (every stack of the compatibility matrix).
    from lmermagic.rbridge import get_r, stack_problem

    problem, words = stack_problem(get_r().versions["R"])
    assert problem is None
    assert "rpy2" in words


def test_no_rpy2_deprecation_warnings_during_a_fit(sleepstudy):
    # rpy2 3.6 renamed names lmermagic uses (obj_in_module -> replace_in_module)
    # and warns on each use of the old ones: on every call into R.
    import warnings

    import lmermagic

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        lmermagic.lmer("Reaction ~ Days + (Days | Subject)", sleepstudy).confint()
    old = [w for w in seen if issubclass(w.category, DeprecationWarning)
           and "rpy2" in str(w.filename)]
    assert not old, [str(w.message) for w in old]


def test_child_processes_inherit_no_library_path_from_r():
    """rpy2 prepends R's library directories to LD_LIBRARY_PATH when R starts;
    a child Python (a worker, a kernel) linked to its own libpython would then
    load the system's."""
    import os

    from lmermagic.rbridge import get_r

    get_r()
    assert "/R/lib" not in os.environ.get("LD_LIBRARY_PATH", "")


def test_r_starts_without_rpy2_running_rscript():
    """rpy2's import runs Rscript once to read R's LD_LIBRARY_PATH, a value
    lmermagic removes again; lmermagic keeps that probe from running. (rpy2
    3.6's initr runs Rscript once more, to read R's environment variables,
    which R's start needs: that call stays.)"""
    import subprocess
    import sys

    code = (
        "import subprocess\n"
        "calls = []\n"
        "real = subprocess.Popen.__init__\n"
        "def spy(self, args, *a, **k):\n"
        "    calls.append(args)\n"
        "    real(self, args, *a, **k)\n"
        "subprocess.Popen.__init__ = spy\n"
        "from lmermagic.rbridge import get_r\n"
        "get_r()\n"
        "import rpy2.situation as s\n"
        "print(repr([c for c in calls if 'LD_LIBRARY_PATH' in str(c)]),"
        " s.r_ld_library_path_from_subprocess.__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    assert out == ["[]", "r_ld_library_path_from_subprocess"]
