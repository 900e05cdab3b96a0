"""``python -m lmermagic doctor``: report R, its packages and rpy2."""

from __future__ import annotations

import sys


def doctor() -> int:
    """Print what lmermagic finds and what to install; 0 when all is present."""
    from .errors import LmerError
    from .rbridge import PACKAGE_ADVICE, get_r

    try:
        import rpy2

        print(f"rpy2      {rpy2.__version__}")
    except ImportError:
        print("rpy2      MISSING: pip install 'rpy2>=3.5.13,<3.6'")
        return 1
    try:
        r = get_r()
    except LmerError as exc:
        print(f"R         NOT USABLE: {exc}")
        return 1
    v = r.versions
    print(f"R         {v.get('R')}  (R_HOME {v.get('R_home')})")
    missing = 0
    for pkg in ("lme4", "lmerTest", "numDeriv", "pbkrtest", "emmeans", "geepack"):
        version = v.get(pkg)
        if version:
            print(f"{pkg:<9} {version}")
        else:
            required = pkg in ("lme4", "lmerTest", "numDeriv")
            missing += required
            label = "MISSING" if required else "missing (optional)"
            print(f"{pkg:<9} {label}: {PACKAGE_ADVICE[pkg]}")
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
