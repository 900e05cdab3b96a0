"""The parsed call: what to fit, independent of how it was asked for.

Pure Python, no R: both the magics and the Python API build a
:class:`FitRequest`, and validation of option values happens here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import DataError
from .rformula import formula_text, no_nul, raise_formula_problem

__all__ = [
    "ALLOWED_FUNCTIONS",
    "FAMILIES",
    "LINKS",
    "FitRequest",
    "allowlist",
    "formula_text",
    "normalize_ddf",
    "parse_family",
    "raise_formula_problem",
]

# Functions a formula may call, by the R package that defines them. Formula
# operators are part of the tree lme4 reads; the transformations are those seen
# in real models. Anything else (system, eval, get, ::, $, {, function, ...) is
# refused before R evaluates the formula. Extend per call with
# allow_functions=[...] or for the session with %config LmerMagics.allow.
# lme4 2.x's covariance terms us()/diag()/cs()/ar1() are no functions: R's half
# (R/formula.R) allows them where lme4 reads them, in lme4's shapes only.
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


CONTRAST_TYPES = ("treatment", "sum", "helmert", "poly", "SAS")
OPTIMIZERS = ("bobyqa", "Nelder_Mead", "nloptwrap", "nlminbwrap")
CHECK_KEYS = (
    "check.nobs.vs.rankZ", "check.nobs.vs.nlev", "check.nlev.gtreq.5", "check.nlev.gtr.1",
    "check.nobs.vs.nRE", "check.scaleX", "check.conv.grad", "check.conv.singular",
    "check.conv.hess",
)
CHECK_ACTIONS = ("ignore", "warning", "message", "stop")
KINDS = ("lmer", "glmer", "glmer.nb")
WARM_STARTS = ("subsample", "mixedlm")


def _names(value: str | list[str] | tuple[str, ...] | None, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if not all(isinstance(v, str) for v in value):
        raise DataError(f"{what} takes column names (strings).")
    return tuple(value)


def parse_contrasts(spec: str | dict[str, object] | None) -> dict[str, dict[str, str]]:
    """``{"Evit": "sum", "Cu": "treatment:Cu035"}`` or ``"Evit=sum,Cu=treatment:Cu035"``.

    Returns column -> {"type", "ref"}, checked against fixed lists.
    """
    if spec is None:
        return {}
    if isinstance(spec, str):
        items: dict[str, object] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            if "=" not in part:
                raise DataError(f"--contrasts: {part!r} is not COLUMN=TYPE, e.g. Evit=sum.")
            col, _, kind = part.partition("=")
            items[col.strip()] = kind.strip()
        spec = items
    out: dict[str, dict[str, str]] = {}
    for col, value in spec.items():
        if isinstance(value, tuple) and len(value) == 2:
            kind, ref = str(value[0]), str(value[1])
        else:
            kind, _, ref = str(value).partition(":")
        kind = kind.strip().lower().removeprefix("contr.")
        kind = {"sas": "SAS", "deviation": "sum", "effect": "sum"}.get(kind, kind)
        if kind not in CONTRAST_TYPES:
            raise DataError(
                f"contrasts for '{col}': {value!r} is not one of {', '.join(CONTRAST_TYPES)} "
                "(treatment may name its reference level: 'treatment:LEVEL')."
            )
        no_nul(str(col), "a contrasts column name")
        no_nul(ref, f"the reference level of contrasts for '{col}'")
        if ref and kind != "treatment":
            raise DataError(f"contrasts for '{col}': only treatment takes a reference level.")
        out[str(col)] = {"type": kind, "ref": ref.strip()}
    return out


def parse_control(control: dict[str, object] | None) -> dict[str, object] | None:
    """lmerControl/glmerControl settings from fixed lists: optimizer, maxfun,
    calc_derivs and the ``check.*`` actions."""
    if not control:
        return None
    out: dict[str, object] = {}
    checks: dict[str, str] = {}
    for key, value in control.items():
        if key == "optimizer":
            if value not in OPTIMIZERS:
                raise DataError(f"control optimizer {value!r}: use one of {', '.join(OPTIMIZERS)}.")
            out["optimizer"] = value
        elif key == "maxfun":
            if not isinstance(value, (int, float)) or value < 1:
                raise DataError("control maxfun takes a positive number.")
            out["maxfun"] = int(value)
        elif key in ("calc_derivs", "calc.derivs"):
            out["calc_derivs"] = bool(value)
        elif key in CHECK_KEYS:
            if value not in CHECK_ACTIONS:
                raise DataError(f"control {key}: use one of {', '.join(CHECK_ACTIONS)}.")
            checks[key] = str(value)
        else:
            raise DataError(
                f"control key {key!r} is not supported; use optimizer, maxfun, calc_derivs "
                f"or one of {', '.join(CHECK_KEYS)}."
            )
    if checks:
        out["checks"] = checks
    return out


def _timeout(value: float | None) -> float | None:
    if value is None or value == 0:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise DataError(f"timeout={value!r} is not a number of seconds.") from None
    if not seconds >= 0:  # also NaN, which compares false with everything
        raise DataError(f"timeout={value!r}: give a positive number of seconds (0 or None: "
                        "no limit).")
    return None if seconds == float("inf") else seconds


def _positive(value: Any, what: str, most: float | None = None) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{what}={value!r} is not a number.") from None
    if not out > 0 or (most is not None and out > most):
        bound = f" and at most {most:g}" if most is not None else ""
        raise DataError(f"{what} must be greater than 0{bound}; got {value!r}.")
    return out


@dataclass(frozen=True)
class FitRequest:
    """One model to fit."""

    formula: str
    kind: Literal["lmer", "glmer", "glmer.nb"] = "lmer"
    reml: bool = True
    ddf: str = "satterthwaite"
    family: str | None = None
    link: str | None = None
    factors: tuple[str, ...] = ()
    weights: str | None = None
    offset: str | None = None
    contrasts: dict[str, dict[str, str]] = field(default_factory=dict)
    control: dict[str, object] | None = None
    nagq: int | None = None
    data_name: str = "data"
    name: str | None = None
    extra_functions: tuple[str, ...] = field(default=())
    timeout: float | None = None
    # The design-size pre-flight (preflight.py): refuse a design needing more
    # than memory_share of the available memory or an estimated max_seconds
    # of work, unless allow_large.
    allow_large: bool = False
    memory_share: float = 0.5
    max_seconds: float = 300.0
    # Fit in a worker process (isolation.py) with at most memory_limit GB
    # (None: 80 % of the memory available when the fit starts).
    isolate: bool = False
    memory_limit: float | None = None
    cache_dir: str | None = None
    warm_start: str | None = None  # None, "subsample", "mixedlm": R/warmstart.R

    @classmethod
    def build(
        cls,
        formula: str,
        *,
        kind: str = "lmer",
        reml: bool = True,
        ddf: str = "satterthwaite",
        family: str | None = None,
        factors: str | list[str] | tuple[str, ...] | None = None,
        weights: str | None = None,
        offset: str | None = None,
        contrasts: str | dict[str, object] | None = None,
        control: dict[str, object] | None = None,
        nagq: int | None = None,
        data_name: str = "data",
        name: str | None = None,
        extra_functions: tuple[str, ...] | list[str] = (),
        timeout: float | None = None,
        allow_large: bool = False,
        memory_share: float = 0.5,
        max_seconds: float = 300.0,
        isolate: bool = False,
        memory_limit: float | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        warm_start: str | None = None,
    ) -> FitRequest:
        formula = formula_text(formula)
        fam, link = "gaussian", "identity"
        if kind == "glmer":
            text = family or "binomial"
            if text.replace("_", ".").replace(" ", ".").lower() in (
                    "negative.binomial", "negbin", "nb"):
                kind, fam, link = "glmer.nb", "negative.binomial", "log"
            else:
                fam, link = parse_family(text)  # type: ignore[assignment]
                if fam == "gaussian" and link in (None, "identity"):
                    raise DataError(
                        "family gaussian with identity link is a linear mixed model: use lmer."
                    )
        if kind not in KINDS:
            raise DataError(f"internal: unknown model kind {kind!r}")
        for what, col in (("weights", weights), ("offset", offset)):
            if col is not None and not isinstance(col, str):
                raise DataError(f"{what}= takes the name of a column of the data.")
        for what, value in (("weights=", weights), ("offset=", offset), ("the data's name",
                           data_name), ("the model's name", name), ("family=", family)):
            if isinstance(value, str):
                no_nul(value, what)
        if warm_start is not None and (kind != "lmer" or warm_start not in WARM_STARTS):
            raise DataError(f"warm_start={warm_start!r}: use 'subsample' or 'mixedlm', with "
                            "lmer only (glmer fits start from lme4's default).")
        if nagq is not None and (kind != "glmer" or int(nagq) < 0):
            raise DataError("nAGQ applies to glmer only and is a whole number >= 0.")
        return cls(
            formula=formula,
            kind=kind,  # type: ignore[arg-type]
            reml=bool(reml) if kind == "lmer" else False,
            ddf=normalize_ddf(ddf) if kind == "lmer" else "lme4",
            family=fam,
            link=link,
            factors=_names(factors, "factors"),
            weights=weights,
            offset=offset,
            contrasts=parse_contrasts(contrasts),
            control=parse_control(control),
            nagq=None if nagq is None else int(nagq),
            data_name=data_name,
            name=name,
            extra_functions=tuple(extra_functions),
            timeout=_timeout(timeout),
            allow_large=bool(allow_large),
            memory_share=_positive(memory_share, "memory_share", most=1.0),
            max_seconds=_positive(max_seconds, "max_seconds"),
            isolate=bool(isolate),
            memory_limit=None if memory_limit is None else _positive(memory_limit,
                                                                     "memory_limit"),
            cache_dir=os.fspath(cache_dir) if cache_dir else None,
            warm_start=warm_start,
        )

    def r_options(self) -> dict[str, object]:
        """The options list lmm_fit() takes in R (no R code, only values)."""
        return {
            "kind": self.kind,
            "reml": self.reml,
            "ddf": self.ddf,
            "family": self.family,
            "link": self.link or "",
            "weights": self.weights,
            "offset": self.offset,
            "factors": list(self.factors),
            "contrasts": self.contrasts or None,
            "control": self.control,
            "nagq": self.nagq,
            **({"warm_start": self.warm_start} if self.warm_start else {}),  # old keys hold
        }

