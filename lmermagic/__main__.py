"""``python -m lmermagic doctor``: name the stack, flag what is known not to work."""

from __future__ import annotations

import platform
import sys


def _os_name() -> str:
    try:
        with open("/etc/os-release", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()


# R packages behind lmermagic's other model kinds: optional, reported by version.
OPTIONAL_MODELS = {
    "glmmTMB": ("lmermagic.glmmtmb",
                "apt-get install r-cran-glmmtmb  |  in R: install.packages('glmmTMB')"),
    "ordinal": ("lmermagic.clmm",
                "apt-get install r-cran-ordinal  |  in R: install.packages('ordinal')"),
}


def optional_lines(versions: dict[str, object]) -> list[str]:
    """One line per optional model package: its version, or that it is not
    installed, what needs it and how to install it."""
    out = []
    for pkg, (used_by, advice) in OPTIONAL_MODELS.items():
        version = versions.get(pkg)
        out.append(f"{pkg:<9} {version}" if version else
                   f"{pkg:<9} not installed (optional, for {used_by}): {advice}")
    return out


def doctor() -> int:
    """Print the stack lmermagic runs on and what to install or change;
    0 when it can fit models."""
    from . import __version__
    from .errors import LmerError
    from .rbridge import PACKAGE_ADVICE, get_r, stack_problem

    print(f"lmermagic {__version__}")
    print(f"OS        {_os_name()}")
    print(f"Python    {platform.python_version()}")
    problem, rpy2_line = stack_problem()
    print(f"rpy2      {rpy2_line}")
    if problem:
        print(f"PROBLEM   {problem}")
        return 1
    try:
        r = get_r()
    except LmerError as exc:
        print(f"R         NOT USABLE: {exc}")
        return 1
    v = r.versions
    print(f"R         {v.get('R')}  (R_HOME {v.get('R_home')})")
    problem, _ = stack_problem(v.get("R"))
    if problem:
        print(f"PROBLEM   {problem}")
        return 1
    missing = 0
    for pkg in ("lme4", "lmerTest", "numDeriv", "Matrix", "pbkrtest", "emmeans", "geepack"):
        version = v.get(pkg)
        if version:
            print(f"{pkg:<9} {version}")
        else:
            required = pkg in ("lme4", "lmerTest", "numDeriv", "Matrix")
            missing += required
            label = "MISSING" if required else "missing (optional)"
            print(f"{pkg:<9} {label}: {PACKAGE_ADVICE.get(pkg, '')}")
    for line in optional_lines(v):
        print(line)
    if v.get("lme4"):
        unknown = r.run("lmm_sat_internals")[0]
        print("Satterthwaite df: " + (
            f"lmerTest's own route, slower: {unknown}" if unknown else
            "lmermagic's engine (lme4's internals are the known ones)"))
    print("all required packages present" if not missing else
          f"{missing} required package(s) missing")
    return 1 if missing else 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["doctor"]:
        return doctor()
    print("usage: python -m lmermagic doctor", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
