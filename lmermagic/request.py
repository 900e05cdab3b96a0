"""The parsed call: what to fit, independent of how it was asked for.

Pure Python, no R: both the magics and the Python API build a
:class:`FitRequest`, and validation of option values happens here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from .errors import DataError

__all__ = [
    "FitRequest",
    "normalize_ddf",
    "parse_family",
    "allowlist",
    "ALLOWED_FUNCTIONS",
    "FAMILIES",
    "LINKS",
]

# Functions a formula may call, by the R package that defines them. Formula
# operators are part of the tree lme4 reads; the transformations are those seen
# in real models. Anything else (system, eval, get, ::, $, {, function, ...) is
# refused before R evaluates the formula. Extend per call with
# allow_functions=[...] or for the session with %config LmerMagics.allow.
ALLOWED_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "base": (
        "~", "+", "-", "*", "/", "^", ":", "|", "||", "%in%", "(",
        "==", "!=", "<", ">", "<=", ">=", "&", "!", "%%", "%/%",
        "I", "log", "log1p", "log2", "log10", "exp", "expm1", "sqrt", "abs",
        "sin", "cos", "tan", "asin", "acos", "atan", "round", "floor", "ceiling",
        "trunc", "sign", "scale", "factor", "ordered", "as.factor", "as.ordered",
        "as.numeric", "as.integer", "cbind", "interaction", "pmin", "pmax", "cut",
        "c", "ifelse", "droplevels", "min", "max", "mean", "is.na", "nlevels",
        "list",
    ),
    "stats": ("poly", "offset", "relevel", "qlogis", "plogis", "qnorm", "pnorm", "sd",
              "median"),
    "splines": ("ns", "bs"),
}

_IDENT = re.compile(r"^[A-Za-z.][A-Za-z0-9._]*$")


def allowlist(extra: tuple[str, ...] | list[str] = ()) -> dict[str, list[str]]:
    """The allowlist sent to R: package -> names; ``extra`` go under ``""``."""
    for name in extra:
        if not isinstance(name, str) or not _IDENT.match(name):
            raise DataError(f"allow_functions: {name!r} is not an R function name.")
    out = {pkg: list(names) for pkg, names in ALLOWED_FUNCTIONS.items()}
    out[""] = list(extra)
    return out


DDF_ALIASES = {
    "satterthwaite": "satterthwaite",
    "s": "satterthwaite",
    "kenward-roger": "kenward-roger",
    "kenward_roger": "kenward-roger",
    "kenwardroger": "kenward-roger",
    "kr": "kenward-roger",
    "lme4": "lme4",
    "none": "lme4",
}

# glmer families and the links R accepts for each (stats::family docs).
FAMILIES: dict[str, tuple[str, ...]] = {
    "binomial": ("logit", "probit", "cauchit", "log", "cloglog"),
    "poisson": ("log", "identity", "sqrt"),
    "Gamma": ("inverse", "identity", "log"),
    "gaussian": ("identity", "log", "inverse"),
    "inverse.gaussian": ("1/mu^2", "inverse", "identity", "log"),
}
LINKS = sorted({link for links in FAMILIES.values() for link in links})

_FAMILY_RE = re.compile(
    r"""^\s*(?P<name>[A-Za-z][A-Za-z.]*)\s*
        (?:\(\s*(?:link\s*=\s*)?(?P<q>["']?)(?P<link>[A-Za-z0-9/^]*)(?P=q)\s*\))?\s*$""",
    re.VERBOSE,
)


def normalize_ddf(ddf: str) -> str:
    """Map the user's spelling of a df method to one of three names."""
    key = str(ddf).strip().lower().replace(" ", "-")
    try:
        return DDF_ALIASES[key]
    except KeyError:
        raise DataError(
            f"ddf={ddf!r} is not a df method; use 'satterthwaite', 'kenward-roger' or 'lme4'."
        ) from None


def parse_family(text: str) -> tuple[str, str | None]:
    """Parse ``"binomial"``, ``"poisson(link='log')"``, ``"Gamma(log)"``.

    Returns (family, link or None). Checked against fixed lists: the text never
    reaches R as code.
    """
    m = _FAMILY_RE.match(text)
    by_lower = {f.lower(): f for f in FAMILIES}
    if not m or m.group("name").lower() not in by_lower:
        raise DataError(
            f"family {text!r} is not supported; use one of {', '.join(FAMILIES)}, "
            "optionally with a link, e.g. \"Gamma(link='log')\"."
        )
    name = by_lower[m.group("name").lower()]
    link = m.group("link") or None
    if link is not None and link not in FAMILIES[name]:
        raise DataError(
            f"link {link!r} is not available for family {name}; "
            f"use one of {', '.join(FAMILIES[name])}."
        )
    return name, link


@dataclass(frozen=True)
class FitRequest:
    """One model to fit."""

    formula: str
    kind: Literal["lmer", "glmer"] = "lmer"
    reml: bool = True
    ddf: str = "satterthwaite"
    family: str | None = None
    link: str | None = None
    factors: tuple[str, ...] = ()
    weights: str | None = None
    data_name: str = "data"
    extra_functions: tuple[str, ...] = field(default=())

    @classmethod
    def build(
        cls,
        formula: str,
        *,
        kind: Literal["lmer", "glmer"] = "lmer",
        reml: bool = True,
        ddf: str = "satterthwaite",
        family: str | None = None,
        factors: str | list[str] | tuple[str, ...] | None = None,
        weights: str | None = None,
        data_name: str = "data",
        extra_functions: tuple[str, ...] | list[str] = (),
    ) -> FitRequest:
        if not isinstance(formula, str) or not formula.strip():
            raise DataError("the formula is empty: give one like 'y ~ x + (1 | group)'.")
        fam, link = (None, None)
        if kind == "glmer":
            fam, link = parse_family(family or "binomial")
            if fam == "gaussian" and link in (None, "identity"):
                raise DataError(
                    "family gaussian with identity link is a linear mixed model: use lmer."
                )
        if isinstance(factors, str):
            factors = tuple(f.strip() for f in factors.split(",") if f.strip())
        if weights is not None and not isinstance(weights, str):
            raise DataError("weights= takes the name of a column of the data.")
        return cls(
            formula=formula.replace("\r", " ").replace("\n", " ").strip(),
            kind=kind,
            reml=bool(reml) if kind == "lmer" else False,
            ddf=normalize_ddf(ddf) if kind == "lmer" else "lme4",
            family=fam if kind == "glmer" else "gaussian",
            link=link if kind == "glmer" else "identity",
            factors=tuple(factors or ()),
            weights=weights,
            data_name=data_name,
            extra_functions=tuple(extra_functions),
        )
