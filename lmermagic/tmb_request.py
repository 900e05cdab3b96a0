"""A glmmTMB fit's request: its formulas, family and options, checked in Python
before R sees any of them (the family against a fixed list, every formula's
text by :func:`lmermagic.rformula.formula_text`; R walks each formula's tree
against the allowlist, R/formula.R)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import DataError
from .request import _names, _positive, _timeout
from .rformula import formula_text, no_nul

__all__ = ["TMB_FAMILIES", "TmbRequest", "parse_tmb_family"]

# glmmTMB's families and the links it accepts for each, the first its default
# (R/tmb.R holds the same list and checks again).
TMB_FAMILIES: dict[str, tuple[str, ...]] = {
    "gaussian": ("identity", "log", "inverse"),
    "binomial": ("logit", "probit", "cauchit", "log", "cloglog"),
    "poisson": ("log", "identity", "sqrt"),
    "nbinom1": ("log",),
    "nbinom2": ("log",),
    "Gamma": ("inverse", "identity", "log"),
    "beta_family": ("logit", "probit", "cauchit", "cloglog"),
    "tweedie": ("log",),
    "truncated_poisson": ("log",),
    "truncated_nbinom2": ("log",),
}

_FAMILY_RE = re.compile(
    r"""^\s*(?P<name>[A-Za-z][A-Za-z0-9._]*)\s*
        (?:\(\s*(?:link\s*=\s*)?(?P<q>["']?)(?P<link>[A-Za-z0-9/^]*)(?P=q)\s*\))?\s*$""",
    re.VERBOSE,
)


def parse_tmb_family(text: Any) -> tuple[str, str]:
    """``"nbinom2"``, ``"Gamma(link='log')"``, ``"beta_family(probit)"`` ->
    (family, link), checked against :data:`TMB_FAMILIES`."""
    names = ", ".join(TMB_FAMILIES)
    m = _FAMILY_RE.match(text) if isinstance(text, str) else None
    by_lower = {f.lower(): f for f in TMB_FAMILIES}
    if not m or m.group("name").lower() not in by_lower:
        raise DataError(f"family {text!r} is not a glmmTMB family lmermagic supports; use "
                        f"one of {names}, optionally with a link, e.g. \"Gamma(link='log')\".")
    name = by_lower[m.group("name").lower()]
    link = m.group("link") or TMB_FAMILIES[name][0]
    if link not in TMB_FAMILIES[name]:
        raise DataError(f"link {link!r} is not available for glmmTMB family {name}; use "
                        f"{' or '.join(TMB_FAMILIES[name])}.")
    return name, link


def _side(text: Any, what: str) -> str | None:
    if text is None:
        return None
    out = formula_text(text, what)
    if not out.startswith("~"):
        raise DataError(f"{what} {out!r} has a right-hand side only: give it as '~ x' "
                        "(or '~ 1').")
    return out


@dataclass(frozen=True)
class TmbRequest:
    """One glmmTMB model to fit."""

    formula: str
    family: str = "gaussian"
    link: str = "identity"
    ziformula: str | None = None
    dispformula: str | None = None
    reml: bool = False
    factors: tuple[str, ...] = ()
    weights: str | None = None
    offset: str | None = None
    data_name: str = "data"
    name: str | None = None
    extra_functions: tuple[str, ...] = field(default=())
    timeout: float | None = None
    # a worker process (isolation.py's pool) with at most memory_limit GB
    isolate: bool = False
    memory_limit: float | None = None
    cache_dir: str | None = None
    kind: str = "glmmTMB"
    ddf: str = "asymptotic"

    @classmethod
    def build(cls, formula: str, *, family: str = "gaussian", ziformula: str | None = None,
              dispformula: str | None = None, reml: bool = False,
              factors: str | list[str] | tuple[str, ...] | None = None,
              weights: str | None = None, offset: str | None = None,
              data_name: str = "data", name: str | None = None,
              extra_functions: tuple[str, ...] | list[str] = (),
              timeout: float | None = None, isolate: bool = False,
              memory_limit: float | None = None,
              cache_dir: str | os.PathLike[str] | None = None) -> TmbRequest:
        fam, link = parse_tmb_family(family)
        for what, col in (("weights", weights), ("offset", offset)):
            if col is not None and not isinstance(col, str):
                raise DataError(f"{what}= takes the name of a column of the data.")
        for what, value in (("weights=", weights), ("offset=", offset),
                            ("the data's name", data_name), ("the model's name", name)):
            if isinstance(value, str):
                no_nul(value, what)
        if not isinstance(reml, bool):
            raise DataError(f"reml={reml!r}: give True or False.")
        return cls(formula=formula_text(formula), family=fam, link=link,
                   ziformula=_side(ziformula, "ziformula"),
                   dispformula=_side(dispformula, "dispformula"), reml=reml,
                   factors=_names(factors, "factors"), weights=weights, offset=offset,
                   data_name=data_name, name=name, extra_functions=tuple(extra_functions),
                   timeout=_timeout(timeout), isolate=bool(isolate),
                   memory_limit=None if memory_limit is None else _positive(
                       memory_limit, "memory_limit"),
                   cache_dir=os.fspath(cache_dir) if cache_dir else None)

    def formulas(self) -> dict[str, str]:
        """The formula texts R builds: cond, zi, disp ("" when not given)."""
        return {"cond": self.formula, "zi": self.ziformula or "",
                "disp": self.dispformula or ""}

    def r_options(self) -> dict[str, object]:
        """The options lmm_tmb_fit() takes in R (values only, no R code); the
        other formulas too, for the fit cache's key (R reads them from
        formulas())."""
        return {"family": self.family, "link": self.link, "reml": self.reml,
                "weights": self.weights, "offset": self.offset,
                "factors": list(self.factors), "kind": self.kind,
                "ziformula": self.ziformula or "", "dispformula": self.dispformula or ""}
