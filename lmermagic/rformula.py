"""A formula's shape, read in Python before R sees the text.

R's own parser stays the judge of what a formula means (R/formula.R parses
it and walks the call tree). This module only reads enough of R's grammar to
answer three questions that must be settled before R recurses over the text:

- **comments**: ``#`` outside strings and backquoted names starts a comment up
  to the end of the line. :func:`strip_comments` removes them before the lines
  are joined into one (joining first would let a comment swallow the rest of
  the formula, and ``r_code()`` would write it into the middle of a call);
- **depth**: how deeply the call tree nests. R's formula code, lme4's and
  lmerTest's recurse over the tree in C and in R; under rpy2 the C stack has
  no guard, so a tree deep enough ends the process. ``y ~ x1 + ... + x700``
  is 700 levels deep;
- **terms**: how many terms ``terms()`` would expand the right-hand side into,
  an upper bound computed from the operators (``a*b`` is ``a + b + a:b``,
  ``(a+b+c)^2`` its pairs, ``a/b`` is ``a + a:b``). R's ``terms()`` takes time
  quadratic in that number in native code that neither Ctrl-C nor a timeout
  stops (a full interaction of 16 variables, 65,535 terms: two minutes).

The limits are :data:`MAX_DEPTH` and :data:`MAX_TERMS`, measured as
docs/reliability.md says. Anything this reader does not know (a character it
cannot place) makes it conservative, never permissive: unknown text counts
as deep as it is long.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from .errors import DataError, FormulaError, UnsafeFormulaError, did_you_mean

__all__ = ["MAX_DEPTH", "MAX_TERMS", "Shape", "formula_text", "limit_text", "no_nul",
           "raise_formula_problem", "shape", "strip_comments", "with_dot"]

# lme4 1.1-31 on R 4.2 (Rscript, 8 MB stack) stops with "C stack usage too close
# to the limit" at a sum of about 650 terms; lmermagic allows 400, leaving room
# for the caller's own frames and for threads with smaller stacks.
MAX_DEPTH = 400
# terms() on a full interaction: 4,095 terms 0.1 s, 8,191 0.46 s, 16,383 4.9 s,
# 65,535 about 120 s; lme4 and the pre-flight call it several times.
MAX_TERMS = 4096

_TOKEN = re.compile(
    r"""(?P<space>[ \t\f\r\n]+)
      | (?P<comment>\#[^\n]*)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<name>`(?:[^`\\]|\\.)*`|(?:[^\W\d]|\.(?!\d))[\w.]*)
      | (?P<number>(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)[Li]?)
      | (?P<op>%[^%\n]*%|:::|::|<<-|->>|\|\||&&|<-|->|<=|>=|==|!=|\|>|\[\[
              |[-+*/^:~|&!<>=?$@,;(){}\[\]\\])
    """,
    re.VERBOSE | re.DOTALL,
)
# R's binary operators, loosest first (R's ?Syntax), with their associativity.
_BINARY: dict[str, tuple[int, bool]] = {}
for _level, (_ops, _right) in enumerate((
        (("?",), False), (("=",), True), (("<-", "<<-"), True), (("->", "->>"), False),
        (("~",), False), (("|", "||"), False), (("&", "&&"), False),
        (("==", "!=", "<", ">", "<=", ">="), False), (("+", "-"), False),
        (("*", "/"), False), (("%%", "|>"), False), ((":",), False), (("^",), True),
        (("$", "@"), False), (("::", ":::"), False)), start=1):
    for _op in _ops:
        _BINARY[_op] = (_level, _right)
# unary minus binds tighter than ":", looser than "^"; "!" takes comparisons along
_UNARY = {"-": _BINARY[":"][0], "+": _BINARY[":"][0], "!": _BINARY["&"][0],
          "~": _BINARY["~"][0], "?": 1}


@dataclass(frozen=True)
class Shape:
    """How deep the formula's call tree nests and how many terms its
    right-hand side expands to at most."""

    depth: int
    terms: int


def _tokens(text: str) -> list[tuple[str, str]] | None:
    """(kind, text) pairs without spaces and comments; None when a character
    is not R syntax this reader knows."""
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            return None
        kind = m.lastgroup or ""
        if kind not in ("space", "comment"):
            tok = m.group()
            out.append(("op", "%%") if kind == "op" and tok.startswith("%") else (kind, tok))
        pos = m.end()
    return out


def strip_comments(text: str) -> str:
    """``text`` without R comments (strings and backquoted names kept whole).
    Text this reader cannot tokenise comes back unchanged: R judges it."""
    pieces: list[str] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            return text
        if m.lastgroup != "comment":
            pieces.append(m.group())
        pos = m.end()
    return "".join(pieces)


class _Parser:
    """Precedence climbing over the tokens; each node returns (depth, terms)."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expression(self, floor: int = 0) -> tuple[int, int]:
        left = self.prefix()
        while True:
            op = self.peek()
            if op in ("(", "[", "[["):
                self.take()
                inner = self.arguments({"(": ")", "[": "]", "[[": "]"}[op])
                left = (max(left[0], inner) + 1, 1)
                continue
            if op not in _BINARY or _BINARY[op][0] <= floor:
                return left
            level, right_assoc = _BINARY[op]
            self.take()
            right = self.expression(level - 1 if right_assoc else level)
            left = (max(left[0], right[0]) + 1, _combine(op, left[1], right[1]))

    def prefix(self) -> tuple[int, int]:
        if self.i >= len(self.tokens):
            raise ValueError("unexpected end")
        kind, tok = self.take()
        if kind in ("name", "number", "string"):
            return 0, 1
        if tok in _UNARY:
            inner = self.expression(_UNARY[tok])
            return inner[0] + 1, inner[1]
        if tok == "(":
            inner = self.expression()
            self.expect(")")
            return inner[0] + 1, inner[1]
        if tok == "{":
            depth = 0
            while self.peek() not in ("}", None):
                depth = max(depth, self.expression()[0])
                if self.peek() == ";":
                    self.take()
            self.expect("}")
            return depth + 1, 1
        if tok == "function" or tok == "\\":
            raise ValueError("function")
        raise ValueError(f"unexpected {tok!r}")

    def arguments(self, close: str) -> int:
        depth = 0
        while self.peek() != close:
            if self.peek() is None:
                raise ValueError("unclosed call")
            if self.peek() == ",":
                self.take()
                continue
            depth = max(depth, self.expression(_BINARY["="][0])[0])
            if self.peek() == "=":  # a named argument: name = value
                self.take()
                if self.peek() not in (",", close):
                    depth = max(depth, self.expression(_BINARY["="][0])[0])
        self.take()
        return depth

    def expect(self, tok: str) -> None:
        if self.peek() != tok:
            raise ValueError(f"expected {tok!r}")
        self.take()


def _combine(op: str, a: int, b: int) -> int:
    """At most how many terms ``terms()`` makes of ``A op B``."""
    if op in ("+", "-", "|", "||", "~"):
        return a + b
    if op == "*":
        return a + b + a * b
    if op in (":", "%%"):
        return a * b
    if op == "/":
        return a + a * b
    if op == "^":
        return 2 ** min(a, 64) - 1
    return 1


def with_dot(text: str, dot: str) -> str:
    """``text`` with each ``.`` (update()'s "what was there") replaced by
    ``(dot)``: the formula update() builds is at most that large."""
    tokens = _tokens(text)
    if tokens is None:
        return text
    return " ".join(f"({dot})" if kind == "name" and tok == "." else tok
                    for kind, tok in tokens)


def shape(text: str) -> Shape:
    """The formula's :class:`Shape`. Text this reader cannot follow (a syntax
    error R will report, or syntax it does not know) gets a conservative
    shape: as deep as it has tokens (or characters), and that many terms
    squared."""
    tokens = _tokens(text)
    if tokens is not None:
        parser = _Parser(tokens)
        try:
            depth, terms = parser.expression()
            if parser.i == len(tokens):
                return Shape(depth, terms)
        except (ValueError, IndexError, RecursionError):
            pass
    size = len(tokens) if tokens is not None else len(text)
    return Shape(size, size * size)


def limit_text(shape_: Shape) -> str | None:
    """What is too large about a formula of this shape, or None."""
    if shape_.depth > MAX_DEPTH:
        return (f"it nests {shape_.depth} levels deep (lmermagic allows {MAX_DEPTH}: R's and "
                "lme4's code recurse over the formula, and deeper trees overflow R's C stack)")
    if shape_.terms > MAX_TERMS:
        many = (f"{shape_.terms:,}" if shape_.terms < 10**9
                else f"about 2^{int(math.log2(shape_.terms))}")
        return (f"it expands to {many} terms (lmermagic allows {MAX_TERMS:,}: R's terms() "
                "takes minutes beyond that, and cannot be interrupted)")
    return None


def no_nul(value: str, where: str) -> str:
    """``value`` unchanged, or DataError: R cuts a string at a NUL character, so
    ``'a\\x00b'`` and ``'a\\x00c'`` would both reach it as ``'a'``."""
    if "\x00" in value:
        at = value.index("\x00")
        raise DataError(f"{where} contains a NUL character (\\x00) at position {at} "
                        f"({value[:at][-20:]!r} comes before it); R would cut the text "
                        "there. Remove it, e.g. .replace('\\x00', '').")
    return value


def formula_text(text: Any, what: str = "the formula", dot: str | None = None) -> str:
    """The formula as R is to read it: one line, comments removed, checked for
    NUL characters and for a size R's recursion over it survives
    (:mod:`lmermagic.rformula`; with ``dot``, the size once update() puts
    ``dot`` in place of each ``.``). Raises DataError or FormulaError."""
    if not isinstance(text, str):
        raise DataError(f"{what} is a {type(text).__name__}, not a string: give it as "
                        "text, like 'y ~ x + (1 | group)'.")
    no_nul(text, what)
    one = " ".join(strip_comments(text).splitlines()).strip()
    if not one:
        raise DataError(f"{what} is empty: give one like 'y ~ x + (1 | group)'.")
    full = one if dot is None else with_dot(one, dot)
    too_large = limit_text(shape(full))
    if too_large:
        raise FormulaError(f"{what} is too large for R: {too_large}. Split the model, or "
                           "combine predictors (a matrix column from poly()/ns(), a score).")
    return one


def raise_formula_problem(check: dict[str, Any], text: str, columns: list[str], *,
                          what: str = "the formula", data: str = "the model's data") -> None:
    """Raise the error for R's ``lmm_check_formula`` result, if it found one.

    ``what`` names the formula (``"the formula"``, ``"re_form"``) and ``data``
    the frame its names must be columns of (``"'sleep'"``).
    """
    kind = check["kind"][0]
    message = (check.get("message") or [""])[0]
    if kind == "parse":
        raise FormulaError(f"R cannot parse {what} {text!r}: {message}")
    if kind == "shape":
        raise FormulaError(f"{what} {text!r}: {message}")
    bad = check.get("bad") or []
    if bad:
        raise UnsafeFormulaError(
            f"{what} {text!r} calls {', '.join(bad)}, which lmermagic does not allow in a "
            "formula (it would run R code). Allowed are formula operators and model "
            "transformations such as log, poly, ns, scale, factor, I (the full list: "
            "lmermagic.ALLOWED_FUNCTIONS). To allow more, pass allow_functions=[...] "
            "(magic: --allow NAME)."
        )
    problems = check.get("cov_problems") or []
    if problems:
        raise FormulaError(f"{what} {text!r}: " + "; ".join(problems) + ".")
    missing = check.get("cov_missing") or []
    if missing:
        have = (check.get("lme4") or ["?"])[0]
        terms = ", ".join(f"{name}()" for name in missing)
        raise FormulaError(
            f"{what} {text!r} uses the covariance structure {terms}, which needs lme4 >= 2.0 "
            f"(this R has lme4 {have}). Update lme4, or write the term with plain bars: "
            "(x | g) is unstructured like us(x | g), (x || g) uncorrelated like diag(x | g)."
        )
    unknown = check.get("unknown") or []
    if unknown:
        name = unknown[0]
        raise FormulaError(
            f"'{name}' is not a column of {data}." + did_you_mean(name, columns)
            + ("" if len(unknown) == 1 else
               f" (also unknown: {', '.join(repr(u) for u in unknown[1:])})")
        )
