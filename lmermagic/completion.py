"""Tab completion inside ``%lmer``, ``%glmer``, ``%glmmtmb`` and ``%clmm`` (line
and cell).

A matcher of IPython's kernel-side API (v2): it sees the whole cell and the
cursor, so it works in every front end (JupyterLab, Notebook 7, VS Code,
terminal IPython) and inside a cell magic's body, where IPython's older
``complete_command`` hook never fires. It is appended to the shell's
``Completer.custom_matchers``: the built-in matchers keep working, and are
suppressed only where lmermagic has matches inside its own magic (a formula,
an option name, an option's value other than ``-d``).

What it offers: each magic's option names; the values of ``--family``, ``--ddf``,
``--optimizer`` and ``--contrasts`` (``%glmmtmb``: glmmTMB's families; ``%clmm``:
``--link`` and ``--threshold``); the DataFrames of the namespace after
``-d``; and in the formula (and after ``--factors``, ``--weights``,
``--offset``, ``--emmeans``, ``--emtrends``, ``--by``, the column of ``--at``, and
``%glmmtmb``'s one-sided ``--zi`` and ``--disp``) the
columns of the frame named by ``-d`` and the functions a
formula may call. A column that is not a syntactic R name is offered in
backticks, as R needs it.

Completion runs no user code: ``-d`` is resolved only when it is a plain name
or an attribute chain (``df``, ``data.sleep``), walked with
:func:`inspect.getattr_static` (no properties, no ``__getattr__``), and only an
object whose type is exactly pandas' or polars' DataFrame is asked for its
columns. Nothing here imports pandas or starts R.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Iterable
from typing import Any, cast

from IPython.core.completer import (
    CompletionContext,
    SimpleCompletion,
    SimpleMatcherResult,
    context_matcher,
)

from .clmm_magics import ClmmMagics
from .clmm_request import LINKS, THRESHOLDS
from .magics import LmerMagics, code_part
from .request import ALLOWED_FUNCTIONS, CONTRAST_TYPES, FAMILIES, OPTIMIZERS
from .rsyntax import is_r_name
from .tmb_magics import TmbMagics
from .tmb_request import TMB_FAMILIES

__all__ = ["complete", "register"]

MATCHER_ID = "lmermagic.formula"

# IPython's SimpleMatcherResult: completions, matched_fragment, suppress.
Result = dict[str, Any]

# A line magic, possibly assigned: "%lmer ...", "m = %glmer ...".
_LINE_MAGIC = re.compile(
    r"^\s*(?:[A-Za-z_][\w.]*\s*=\s*)?%(lmer|glmer|glmmtmb|clmm)(?=\s|$)")
_CELL_MAGIC = re.compile(r"^\s*%%(lmer|glmer|glmmtmb|clmm)(?=\s|$)")
_TOKEN = re.compile(r"""("[^"]*"?|'[^']*'?|\S+)""")
_CHAIN = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")
_WORD_END = re.compile(r"[A-Za-z0-9._]*$")

VALUES: dict[str, tuple[str, ...]] = {
    "--family": (*FAMILIES, "negative_binomial"),
    "--ddf": ("satterthwaite", "kenward-roger", "lme4"),
    "--optimizer": OPTIMIZERS,
}
# Where a magic's closed lists differ from %lmer's.
MAGIC_VALUES: dict[str, dict[str, tuple[str, ...]]] = {
    "glmmtmb": {"--family": tuple(TMB_FAMILIES)},
    "clmm": {"--link": LINKS, "--threshold": THRESHOLDS},
}
# Options whose value is a one-sided formula: completed as the formula is.
FORMULA_OPTIONS = ("--zi", "--disp")
# Options whose value is one column, or a comma-separated list of columns.
COLUMN_OPTIONS = ("--factors", "--weights", "--offset", "--emmeans", "--emtrends", "--by")
# Formula functions with a name one can type (operators are left out).
# lme4 2.x's covariance terms are offered too (on lme4 1.1 the fit says which lme4
# they need).
FUNCTIONS = tuple(sorted({f for names in ALLOWED_FUNCTIONS.values() for f in names
                          if is_r_name(f)} | {"us", "diag", "cs", "ar1"}))


def _options(magic: str = "lmer") -> dict[str, str]:
    """Every option string of ``magic`` -> its long name (``-d`` -> ``--data``), or
    ``""`` if it takes no value."""
    parser = {"glmmtmb": TmbMagics.glmmtmb, "clmm": ClmmMagics.clmm}.get(
        magic, LmerMagics.lmer).parser
    out: dict[str, str] = {}
    for action in parser._actions:
        long = max(action.option_strings, key=len, default="")
        for opt in action.option_strings:
            out[opt] = long if action.nargs != 0 else ""
    return out


def resolve_frame(expr: str, namespace: dict[str, Any]) -> Any:
    """The DataFrame named by ``expr`` in ``namespace``, or None.

    Only a name or an attribute chain is followed, attribute by attribute
    with :func:`inspect.getattr_static`, which reads instance and class
    dictionaries and calls nothing; a property or any other descriptor on the
    way ends the walk. Nothing is evaluated.
    """
    if not _CHAIN.match(expr):
        return None
    first, *rest = expr.split(".")
    if first not in namespace:
        return None
    obj = namespace[first]
    for name in rest:
        try:
            obj = inspect.getattr_static(obj, name)
        except AttributeError:
            return None
        if inspect.getattr_static(type(obj), "__get__", None) is not None:
            return None  # a descriptor (property, function, ...): reading it runs code
    return obj if is_frame(obj) else None


def is_frame(obj: Any) -> bool:
    """Exactly pandas' or polars' DataFrame: a subclass could run code in ``columns``."""
    t = type(obj)
    # Only modules already imported by the user: completion imports neither.
    return any(t is getattr(sys.modules.get(lib), "DataFrame", None)
               for lib in ("pandas", "polars"))


def columns_of(frame: Any) -> list[str]:
    try:
        return [c for c in list(frame.columns) if isinstance(c, str) and c]
    except Exception:  # a broken frame completes nothing
        return []


def _column_items(columns: Iterable[str], frag: str) -> list[SimpleCompletion]:
    out = []
    if frag.startswith("`"):
        for c in columns:
            if c.startswith(frag[1:]) and "`" not in c:
                out.append(SimpleCompletion(f"`{c}`", type="column"))
        return out
    for c in columns:
        if c.startswith(frag):
            out.append(SimpleCompletion(c if is_r_name(c) else f"`{c}`", type="column"))
    return out


def _formula(columns: list[str], text: str) -> Result:
    """Completions at the end of formula text ``text``."""
    if code_part(text) != text:
        return _nothing()  # the cursor is in a comment
    if text.count("`") % 2:
        frag = text[text.rfind("`"):]
        items = _column_items(columns, frag)
    else:
        frag = _WORD_END.search(text).group(0)  # type: ignore[union-attr]
        if frag[:1].isdigit():
            return _nothing()
        items = _column_items(columns, frag)
        items += [SimpleCompletion(f, type="function") for f in FUNCTIONS
                  if f.startswith(frag)]
    return {"completions": items, "matched_fragment": frag, "suppress": True}


def _nothing() -> Result:
    return {"completions": [], "suppress": False}


def _value(option: str, frag: str, columns: list[str],
           namespace: dict[str, Any], magic: str = "lmer") -> Result:
    """Completions of the value of ``option`` (its long name) ending in ``frag``."""
    values = {**VALUES, **MAGIC_VALUES.get(magic, {})}
    if option in FORMULA_OPTIONS:
        return _formula(columns, frag)
    if option == "--data":
        names = [k for k, v in namespace.items()
                 if not k.startswith("_") and k.startswith(frag) and is_frame(v)]
        items = [SimpleCompletion(k, type="DataFrame") for k in sorted(names)]
    elif option in values:
        items = [SimpleCompletion(v, type="value") for v in values[option]
                 if v.startswith(frag)]
    elif option == "--at" and "=" not in frag:
        # COL=VALUES: the column before "=" (the values are the user's).
        items = [SimpleCompletion(c, type="column") for c in columns if c.startswith(frag)]
    elif option == "--contrasts":
        # COL=TYPE[,COL=TYPE...]: a column before "=", a contrast type after it.
        part = frag.rsplit(",", 1)[-1]
        col, eq, kind = part.partition("=")
        frag = kind if eq else col
        if eq:
            items = [SimpleCompletion(t, type="value") for t in CONTRAST_TYPES
                     if t.startswith(kind)]
        else:
            items = [SimpleCompletion(c, type="column") for c in columns
                     if c.startswith(col)]
    elif option in COLUMN_OPTIONS:
        frag = frag.rsplit(",", 1)[-1]
        items = [SimpleCompletion(c, type="column") for c in columns if c.startswith(frag)]
    else:
        return _nothing()
    # -d may be any expression: Python's own completions stay; the other values
    # come from closed lists or the columns, where Python's names are noise.
    return {"completions": items, "matched_fragment": frag, "suppress": option != "--data"}


def _data_name(option_text: str, options: dict[str, str]) -> str | None:
    tokens = [m.group(1) for m in _TOKEN.finditer(option_text)]
    for i, tok in enumerate(tokens):
        key, eq, value = tok.partition("=")
        if options.get(key) == "--data":
            name = value if eq else (tokens[i + 1] if i + 1 < len(tokens) else "")
            return name.strip("\"'")
    return None


def _on_option_line(text: str, options: dict[str, str], columns: list[str],
                    namespace: dict[str, Any], magic: str = "lmer") -> Result:
    """Completions at the end of ``text``, the option line after the magic's name."""
    found = list(_TOKEN.finditer(text))
    partial = found.pop().group(1) if found and found[-1].end() == len(text) else ""
    pending = ""
    for m in found:
        tok = m.group(1)
        if pending:
            pending = ""
            continue
        key = tok.partition("=")[0]
        if tok == "--" or key not in options:
            return _formula(columns, text[m.start(1):] if tok != "--" else text[m.end():])
        if options[key] and "=" not in tok:
            pending = options[key]
    if pending:
        return _value(pending, partial, columns, namespace, magic)
    if partial.startswith("-"):
        key, eq, value = partial.partition("=")
        if eq and options.get(key):
            return _value(options[key], value, columns, namespace, magic)
        names = sorted({o for o in options if o.startswith("--")})
        return {"completions": [SimpleCompletion(o, type="option") for o in names
                                if o.startswith(partial)],
                "matched_fragment": partial, "suppress": True}
    return _formula(columns, partial)


def complete(full_text: str, cursor_line: int, cursor_position: int,
             namespace: dict[str, Any]) -> Result:
    """What to offer at the cursor in ``full_text``; no completions outside our magics."""
    lines = full_text.split("\n")
    if cursor_line >= len(lines):
        return _nothing()
    first = next((i for i, line in enumerate(lines) if line.strip()), 0)
    cell = _CELL_MAGIC.match(lines[first])
    if cell and cursor_line >= first:
        options = _options(cell.group(1))
        option_text = lines[first][cell.end():]
        frame = resolve_frame(_data_name(option_text, options) or "", namespace)
        columns = columns_of(frame) if frame is not None else []
        if cursor_line == first:
            return _on_option_line(option_text[:cursor_position - cell.end()], options,
                                   columns, namespace, cell.group(1))
        line = lines[cursor_line][:cursor_position]
        return _formula(columns, line)
    here = lines[cursor_line]
    magic = _LINE_MAGIC.match(here)
    if not magic or cursor_position < magic.end():
        return _nothing()
    options = _options(magic.group(1))
    frame = resolve_frame(_data_name(here[magic.end():], options) or "", namespace)
    columns = columns_of(frame) if frame is not None else []
    return _on_option_line(here[magic.end():cursor_position], options, columns, namespace,
                           magic.group(1))


def register(shell: Any) -> None:
    """Append the matcher to ``shell.Completer.custom_matchers`` (once)."""
    completer = getattr(shell, "Completer", None)
    if completer is None:
        return

    @context_matcher(identifier=MATCHER_ID)  # type: ignore[misc]
    def lmermagic_matcher(context: CompletionContext) -> SimpleMatcherResult:
        try:
            return cast(SimpleMatcherResult, complete(context.full_text, context.cursor_line,
                            context.cursor_position, shell.user_ns))
        except Exception:  # completion must never break the kernel's other completers
            return cast(SimpleMatcherResult, _nothing())

    completer.custom_matchers[:] = [
        m for m in completer.custom_matchers
        if getattr(m, "matcher_identifier", None) != MATCHER_ID]
    completer.custom_matchers.append(lmermagic_matcher)
