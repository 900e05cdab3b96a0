"""Runs INSIDE a compat root: writes OUT.json (versions + result) and OUT.row (a markdown row).

Called by in_root.sh with the stack's venv python (or the root's python3 when the venv is
missing). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

R_PACKAGES = ["lme4", "lmerTest", "Matrix", "pbkrtest", "numDeriv", "emmeans", "geepack",
              "broom.mixed", "car",
              "performance", "effectsize", "DHARMa", "MuMIn"]   # optional: not in every suite
PY_DISTS = ["rpy2", "rpy2-rinterface", "rpy2-robjects", "cffi", "numpy", "pandas", "pytest",
            "maketables"]
SECTION = re.compile(r"^_{3,} (?:ERROR (?:at|collecting) )?(.+?) _{3,}$")
RESULT = re.compile(
    r"\b(\d+ (passed|failed|errors?|skipped|xfailed|xpassed)|no tests ran)\b.* in [\d.]+s")


def os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "?"


def r_versions() -> dict[str, str]:
    code = (
        'cat("R", as.character(getRversion()), "\\n");'
        f"for (p in c({', '.join(repr(p) for p in R_PACKAGES)}))"
        ' cat(p, tryCatch(as.character(packageVersion(p)), error = function(e) "missing"), "\\n")'
    )
    try:
        out = subprocess.run(["Rscript", "--vanilla", "-e", code], capture_output=True,
                             text=True, timeout=120, check=True).stdout
    except (OSError, subprocess.SubprocessError) as e:
        return {"R": f"? ({e.__class__.__name__})"}
    return dict(line.strip().split(None, 1) for line in out.splitlines() if " " in line.strip())


def py_versions(venv: str) -> dict[str, str | None]:
    inside = sys.prefix == venv
    res: dict[str, str | None] = {}
    for d in PY_DISTS:
        try:
            res[d] = metadata.version(d) if inside else None
        except metadata.PackageNotFoundError:
            res[d] = None
    return res


def pytest_summary(log: Path) -> tuple[str, list[str]]:
    """The closing result line and, per failing test, its id and first error line."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "no log", []
    result = ""
    for line in reversed(lines):
        if RESULT.search(line):
            result = line.strip().strip("=").strip()
            break
    first_error: dict[str, str] = {}   # failure-section title -> its first "E " line
    title = None
    for line in lines:
        m = SECTION.match(line)
        if m:
            title = m.group(1)
        elif title and title not in first_error and line.startswith("E "):
            first_error[title] = line[1:].strip()
    failures = []
    for line in lines:
        if line.startswith(("FAILED ", "ERROR ")):
            kind, _, rest = line.partition(" ")
            nodeid = rest.split(" - ", 1)[0].strip()
            test = nodeid.rsplit("::", 1)[-1]
            cls = nodeid.split("::")[-2] if nodeid.count("::") > 1 else ""
            why = (first_error.get(test) or first_error.get(f"{cls}.{test}")
                   or next((v for k, v in first_error.items() if test in k), "")
                   or rest.split(" - ", 1)[-1].strip())
            failures.append(f"{kind} {nodeid} - {why}")
    return result, failures


def main() -> int:
    ap = argparse.ArgumentParser()
    for a in ("--suite", "--line", "--venv", "--out"):
        ap.add_argument(a, required=True)
    for a in ("--install-rc", "--test-rc", "--install-seconds", "--test-seconds"):
        ap.add_argument(a, type=int, required=True)
    a = ap.parse_args()
    out = Path(a.out)
    rv = r_versions()
    pv = py_versions(a.venv)
    result, failures = pytest_summary(Path(f"{a.out}.log"))
    if a.install_rc != 0:
        status = "ERROR"
        cell = f"ERROR: pip install failed (exit {a.install_rc}; see {out.name}.install.log)"
    elif a.test_rc == 0:
        status, cell = "PASS", f"PASS: {result}"
    elif a.test_rc == 1:
        status, cell = "FAIL", f"FAIL: {result}"
    else:
        why = {2: "interrupted", 3: "internal error", 4: "usage error", 5: "no tests ran"}
        status = "ERROR"
        cell = f"ERROR: pytest exit {a.test_rc} ({why.get(a.test_rc, 'killed?')}) {result}".strip()
    rpy2 = pv.get("rpy2") or "not installed"
    if pv.get("rpy2-rinterface"):
        rpy2 += f" (rinterface {pv['rpy2-rinterface']}, robjects {pv.get('rpy2-robjects')})"
    record = {
        "stack": f"{a.suite}:{a.line}",
        "suite": a.suite,
        "rpy2_line": a.line,
        "os": os_name(),
        "r": rv.get("R", "?"),
        "r_packages": {p: rv.get(p, "?") for p in R_PACKAGES},
        "python": platform.python_version(),
        "python_dists": pv,
        "install_exit": a.install_rc,
        "install_seconds": a.install_seconds,
        "pytest_exit": a.test_rc,
        "test_seconds": a.test_seconds,
        "result": result,
        "status": status,
        "failures": failures[:100],
    }
    Path(f"{a.out}.json").write_text(json.dumps(record, indent=2) + "\n")
    row = [record["os"], record["r"], rv.get("lme4", "?"), rv.get("lmerTest", "?"), rpy2,
           record["python"], cell]
    Path(f"{a.out}.row").write_text("| " + " | ".join(c.replace("|", "/") for c in row) + " |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
