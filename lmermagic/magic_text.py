"""The text of a magic's line and cell: options split from the formula, ``#``
comments, the ``-d`` expression and the options that change what the magic
shows after the fit (``--emmeans``, ``--emtrends``, ``--at``)."""

from __future__ import annotations

import argparse
import re
from typing import Any

from .errors import DataError, did_you_mean

__all__ = ["at_values", "code_part", "magic_formula", "resolve_data", "split_options",
           "strip_comments", "table_calls"]

_TOKEN = re.compile(r"""\s*("[^"]*"|'[^']*'|\S+)""")
# "name = formula" on a --compare line; a formula has no top-level "=".
_NAMED = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)\s*(.+)$")


def split_options(line: str, parser: argparse.ArgumentParser) -> tuple[list[str], str]:
    """Split ``line`` into option tokens and the free text after them.

    Options come first; the formula starts at the first token that is not an
    option or an option's value, and is returned verbatim (quotes, spacing and
    all), so that argparse never sees or mangles it.
    """
    takes_value: dict[str, bool] = {}
    for action in parser._actions:
        for opt in action.option_strings:
            takes_value[opt] = action.nargs != 0
    tokens: list[str] = []
    pos = 0
    while True:
        m = _TOKEN.match(line, pos)
        if not m:
            return tokens, ""
        tok = m.group(1)
        key = tok.split("=", 1)[0]
        if tok == "--":
            return tokens, line[m.end():].strip()
        if key not in takes_value:
            return tokens, line[m.start(1):].strip()
        tokens.append(tok)
        pos = m.end()
        if takes_value[key] and "=" not in tok:
            m = _TOKEN.match(line, pos)
            if not m:
                return tokens, ""
            value = m.group(1)
            if value[:1] in "\"'" and value[-1:] == value[:1] and len(value) > 1:
                value = value[1:-1]
            tokens.append(value)
            pos = m.end()


def _options_in(formula: str, parser: argparse.ArgumentParser) -> list[str]:
    """The magic's options written inside the formula text (``... --ml``)."""
    known = {opt for action in parser._actions for opt in action.option_strings}
    return [tok for tok in re.findall(r"(?<![\w.])--?[A-Za-z][\w-]*", formula)
            if tok.split("=", 1)[0] in known]


def code_part(line: str) -> str:
    """One line without its ``#`` comment; quotes and R's backticks hide a ``#``."""
    quote = ""
    for i, ch in enumerate(line):
        if ch == "#" and not quote:
            return line[:i]
        if ch in "\"'`" and (not quote or ch == quote):
            quote = "" if quote else ch
    return line


def strip_comments(text: str) -> str:
    """Drop ``#`` comments (outside quotes) and join the lines into one."""
    return " ".join(filter(None, (code_part(line).strip() for line in text.splitlines())))


def magic_formula(kind: str, rest: str, cell: str | None, example: str) -> str:
    """The formula of ``%kind`` (``rest``, the line after the options) or
    ``%%kind`` (the ``cell``), comments dropped; a DataError for text after the
    options of a cell magic or for no formula (``example``: ``%kind``'s
    arguments in the message)."""
    if cell is not None and rest:
        raise DataError(f"%%{kind}: options go on the first line and the formula in the cell "
                        f"body; found {rest!r} after the options.")
    # A trailing ";" only silences the output (IPython); it is not formula.
    formula = strip_comments(cell if cell is not None else rest).rstrip(" ;")
    if not formula:
        raise DataError(f"%{kind}: no formula given. Example: %{kind} {example}")
    return formula


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would sys.exit()
        raise DataError(f"{self.prog}: {message}")


def resolve_data(ns: dict[str, Any], expr: str) -> Any:
    """``-d EXPR`` in the user's namespace; an unknown name or a failing one: DataError."""
    if expr.isidentifier() and expr not in ns:
        raise DataError(f"'{expr}' is not defined."
                        + did_you_mean(expr, [k for k in ns if not k.startswith("_")]))
    try:
        return eval(expr, ns)  # the user's own expression, in their own kernel
    except Exception as exc:
        hint = " Quote an expression with spaces: -d 'df[df.x > 1]'."
        raise DataError(f"-d {expr}: evaluating it raised {type(exc).__name__}: "
                        f"{exc}.{hint if isinstance(exc, SyntaxError) else ''}") from exc


def _number_or_label(text: str) -> float | str:
    try:
        value = float(text)
    except ValueError:
        return text
    if value != value or value in (float("inf"), float("-inf")):
        raise DataError(f"--at: {text!r} is not a finite value.")
    return value


def at_values(items: list[str] | None) -> dict[str, Any] | None:
    """``--at Days=0,5,9 --at mod=sd`` -> ``{"Days": [0.0, 5.0, 9.0], "mod": "sd"}``.

    Numbers become floats, anything else stays a label (a factor level);
    ``sd`` alone asks for mean - SD, mean and mean + SD."""
    if not items:
        return None
    out: dict[str, Any] = {}
    for item in items:
        col, eq, values = (part.strip() for part in item.partition("="))
        parts = [v.strip() for v in values.split(",") if v.strip()]
        if not eq or not col or not parts:
            raise DataError(f"--at {item!r}: write COLUMN=VALUE[,VALUE...] or COLUMN=sd, "
                            "e.g. --at Days=0,5,9 or --at mod=sd.")
        if col in out:
            raise DataError(f"--at names '{col}' twice.")
        out[col] = "sd" if parts == ["sd"] else [_number_or_label(v) for v in parts]
    return out


def _names(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def table_calls(args: argparse.Namespace) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    """The model methods the magic's ``--emmeans``/``--emtrends`` options ask for.

    ``--emmeans Product --by Information --pairwise`` is
    ``m.emmeans(["Product"], by=["Information"], pairwise=True)``;
    ``--emtrends Days --by mod --at mod=sd`` is ``m.emtrends("Days", specs=["mod"],
    at={"mod": "sd"})``: the slope of Days at each value of mod."""
    at = at_values(args.at)
    by = _names(args.by)
    if not args.emmeans and not args.emtrends:
        for flag, given in (("--by", by), ("--at", at), ("--pairwise", args.pairwise)):
            if given:
                raise DataError(f"{flag} goes with --emmeans or --emtrends.")
        return []
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
    if args.emmeans:
        calls.append(("emmeans", (_names(args.emmeans),),
                      {"by": by or None, "at": at, "pairwise": args.pairwise}))
    if args.emtrends:
        var = args.emtrends.strip()
        calls.append(("emtrends", (var,),
                      {"specs": by or None, "at": at, "pairwise": args.pairwise}))
    return calls
