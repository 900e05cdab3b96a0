"""The R code behind a result: a script that reproduces the fit in plain R.

The script is built from the model's request (every option as lmermagic passed
it to lme4) and from the data lme4 was given (its columns' classes and factor
levels); the data themselves go to a CSV file that lmermagic can write. Only
values are written into the script, as R literals; the formula is the one that
passed lmermagic's allowlist.
"""

from __future__ import annotations

import os
import re
from typing import Any, Protocol

from ..errors import DataError
from ..fitted import FittedModel
from ..rformula import no_nul
from ..rsyntax import is_r_name, r_string, r_symbol
from ._common import call, check_model

__all__ = ["r_code", "versions_line"]

# The versions a script's header names, in this order.
STACK = ("lmermagic", "R", "lme4", "lmerTest", "Matrix", "rpy2")


def _comment(text: str) -> str:
    """One R comment line, whatever ``text`` holds."""
    return "# " + " ".join(text.splitlines())


def _r_value(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return f"{value}L"
    if isinstance(value, float):
        return repr(value)
    return r_string(str(value))


def _wrap(items: list[str], indent: int, first: int = 0) -> str:
    """``items`` joined by commas in lines of at most 88 characters; continuation
    lines indented by ``indent``, the first one starting at column ``first``."""
    out, line, width = [], "", first
    for item in items:
        if line and width + len(line) + len(item) + 2 > 88:
            out.append(line + ",")
            line, width = " " * indent + item, 0
        else:
            line = f"{line}, {item}" if line else item
    out.append(line)
    return "\n".join(out)


def _args(pairs: list[tuple[str, str]], indent: int) -> str:
    return _wrap([f"{name} = {value}" if name else value for name, value in pairs],
                 indent, indent)


def _r_vector(values: list[str]) -> str:
    """A character vector; a long one on lines of its own."""
    text = "c(" + ", ".join(r_string(v) for v in values) + ")"
    if len(text) <= 40:
        return text
    return "c(\n    " + _wrap([r_string(v) for v in values], 4, 4) + ")"


def versions_line(versions: dict[str, Any]) -> str:
    """``lmermagic 0.1.0, R 4.2.2, lme4 1.1.31, ...`` for what is known."""
    return ", ".join(f"{k} {versions[k]}" for k in STACK if versions.get(k))


def _control(m: FittedModel) -> str | None:
    control = m.request.control
    if not control:
        return None
    pairs: list[tuple[str, str]] = []
    if "optimizer" in control:
        pairs.append(("optimizer", r_string(str(control["optimizer"]))))
    if "maxfun" in control:
        pairs.append(("optCtrl", f"list(maxfun = {int(str(control['maxfun']))}L)"))
    if "calc_derivs" in control:
        pairs.append(("calc.derivs", _r_value(bool(control["calc_derivs"]))))
    checks = control.get("checks") or {}
    assert isinstance(checks, dict)
    pairs += [(name, r_string(str(action))) for name, action in checks.items()]
    fun = "lme4::lmerControl" if m.kind == "lmer" else "lme4::glmerControl"
    return f"{fun}({_args(pairs, len(fun) + 5)})"


def _contrasts(m: FittedModel, spec: dict[str, Any]) -> str | None:
    if not m.request.contrasts:
        return None
    funs = {"treatment": "contr.treatment", "sum": "contr.sum", "helmert": "contr.helmert",
            "poly": "contr.poly", "SAS": "contr.SAS"}
    items = []
    for col, c in m.request.contrasts.items():
        levels = f"levels(data[[{r_string(col)}]])"
        arg = levels
        if c["type"] == "treatment" and c["ref"]:
            base = list(spec[col]["levels"]).index(c["ref"]) + 1
            arg = f"{levels}, base = {base}L"
        name = col if is_r_name(col) else r_string(col)
        items.append(f"{name} = stats::{funs[c['type']]}({arg})")
    return "list(" + ", ".join(items) + ")"


def _read_data(spec: dict[str, Any], path: str) -> list[str]:
    classes = {"numeric": "numeric", "integer": "integer", "logical": "logical",
               "factor": "character", "ordered": "character", "POSIXct": "character"}
    col_classes = _wrap([f"{r_string(n)} = {r_string(classes[s['class']])}"
                         for n, s in spec.items()], 4, 4)
    lines = [
        f"data <- utils::read.csv({r_string(path)}, check.names = FALSE, na.strings = \"\",",
        f"                        encoding = \"UTF-8\", colClasses = c(\n    {col_classes}))",
    ]
    for name, s in spec.items():
        col = f"data[[{r_string(name)}]]"
        if s["class"] in ("factor", "ordered"):
            ordered = ", ordered = TRUE" if s["class"] == "ordered" else ""
            lines.append(f"{col} <- factor({col}, levels = {_r_vector(list(s['levels']))}"
                         f"{ordered})")
        elif s["class"] == "POSIXct":
            lines.append(f'{col} <- as.POSIXct({col}, tz = "UTC", '
                         f'format = "%Y-%m-%d %H:%M:%OS")')
    return lines


def _fit_call(m: FittedModel, spec: dict[str, Any]) -> tuple[list[str], str, str]:
    """(library calls, the fit's call, the summary call)."""
    req = m.request
    pairs: list[tuple[str, str]] = [("", req.formula), ("data", "data")]
    if m.kind == "lmer":
        lmertest = m.ddf != "lme4"
        libs = ["lme4", "lmerTest"] if lmertest else ["lme4"]
        fun = "lmerTest::lmer" if lmertest else "lme4::lmer"
        pairs.append(("REML", _r_value(bool(req.reml))))
        method = {"satterthwaite": "Satterthwaite", "kenward-roger": "Kenward-Roger"}
        summary = (f"summary(fit, ddf = {r_string(method[m.ddf])})" if lmertest
                   else "summary(fit)")
    else:
        libs, summary = ["lme4"], "summary(fit)"
        fun = "lme4::glmer.nb" if m.kind == "glmer.nb" else "lme4::glmer"
        if m.kind == "glmer":
            link = f"link = {r_string(req.link)}" if req.link else ""
            pairs.append(("family", f"stats::{req.family}({link})"))
    for option in ("weights", "offset"):
        col = getattr(req, option)
        if col is not None:
            pairs.append((option, r_symbol(col)))
    contrasts = _contrasts(m, spec)
    if contrasts:
        pairs.append(("contrasts", contrasts))
    control = _control(m)
    if control:
        pairs.append(("control", control))
    if m.kind == "glmer" and req.nagq is not None:
        pairs.append(("nAGQ", f"{int(req.nagq)}L"))
    if re.search(r"\b(ns|bs)\s*\(", req.formula):
        libs.append("splines")
    return libs, f"fit <- {fun}({_args(pairs, len(fun) + 8)})", summary


def _check_target(path: str) -> None:
    """Say which path cannot be written before R tries (R's own words name no file)."""
    no_nul(path, "r_code()'s path")
    target = os.path.expanduser(path)
    folder = os.path.dirname(os.path.abspath(target))
    if os.path.isdir(target):
        raise DataError(f"r_code(): {path!r} is a directory; give a file name, e.g. "
                        f"{os.path.join(path, 'data.csv')!r}.")
    if not os.path.isdir(folder):
        raise DataError(f"r_code(): cannot write {path!r}: the directory {folder!r} does not "
                        "exist. Create it first (os.makedirs) or give another path.")
    if not os.access(folder, os.W_OK):
        raise DataError(f"r_code(): cannot write {path!r}: the directory {folder!r} is not "
                        "writable by this user.")


class Fit(Protocol):
    """What a script needs of a fit (lmer's, glmmTMB's and clmm's fields)."""

    @property
    def formula(self) -> str: ...
    @property
    def data_name(self) -> str: ...
    @property
    def versions(self) -> dict[str, str]: ...
    @property
    def request(self) -> Any: ...
    @property
    def r_data(self) -> Any: ...


def script_data(m: Fit, path: str | os.PathLike[str] | None,
                write: bool) -> tuple[str, dict[str, dict[str, Any]]]:
    """A script's data file (``path``, by default named after the data) and the
    classes and levels of the model's columns; ``write=True`` writes them
    there. A level that is the empty string is refused: a CSV file cannot keep it."""
    if path is None:
        path = f"{m.data_name}.csv" if is_r_name(m.data_name) else "data.csv"
    path = os.fspath(path)
    spec = {name: {"class": v["class"][0], "levels": list(v["levels"] or [])}
            for name, v in call("lmm_tb_data_spec", m.r_data, what="r_code()").items()}
    for name, s in spec.items():
        if "" in (s["levels"] or []):
            raise DataError(f"r_code(): column '{name}' has a level that is the empty string, "
                            "which a CSV file cannot tell from a missing value; rename it.")
    if write:
        _check_target(path)
        call("lmm_tb_write_data", m.r_data, path, what="r_code()")
    return path, spec


def script(m: Fit, path: str, spec: dict[str, dict[str, Any]], *, package: str,
           libs: list[str], fit: str, summary: str = "summary(fit)", versions: str = "",
           extra: list[str] | None = None) -> str:
    """The script around a fit call ``fit``: a header (``versions`` after the
    stack's, the data given to ``package``), ``libs``, a note on the
    ``extra`` functions the formula may call, R's defaults, reading the data
    from ``path`` as ``spec`` says, then ``fit`` and ``summary``."""
    extra = list(m.request.extra_functions) if extra is None else extra
    lines = [
        _comment(m.formula),
        _comment(f"fitted by lmermagic on '{m.data_name}'; {versions_line(m.versions)}"
                 + versions),
        _comment(f"Reads the columns the model uses from {r_string(path)}, as lmermagic "
                 f"gave them to {package}"),
        "# (m.r_code(path, write=True) writes them there).",
        *(f"library({lib})" for lib in libs),
        *([_comment(f"The formula may call {', '.join(extra)} (allowed with --allow or "
                    "allow_functions): define it before running.")] if extra else []),
        "",
        "# R's defaults, which lmermagic sets around every fit",
        'options(contrasts = c(unordered = "contr.treatment", ordered = "contr.poly"),',
        '        na.action = "na.omit")',
        *_read_data(spec, path),
        "",
        fit,
        summary,
    ]
    return "\n".join(lines) + "\n"


def r_code(m: FittedModel, path: str | os.PathLike[str] | None = None,
           write: bool = False) -> str:
    """A self-contained R script that reproduces the fit; see ``LmerModel.r_code``."""
    check_model(m)
    if "refit_of" in m.meta:
        raise DataError("r_code(): this model was refitted to a new response, which is not "
                        "in its data; write the response into the data and fit that instead.")
    where, spec = script_data(m, path, write)
    libs, fit, summary = _fit_call(m, spec)
    return script(m, where, spec, package="lme4", libs=libs, fit=fit, summary=summary)
