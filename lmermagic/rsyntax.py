"""R's syntax for names and strings, for code lmermagic writes or completes.

Pure Python and light (no pandas): the completion at ``%load_ext`` time and
the R scripts of ``r_code()`` use it.
"""

from __future__ import annotations

import re

__all__ = ["is_r_name", "r_string", "r_symbol"]

_R_NAME = re.compile(r"^(?:[A-Za-z]|\.[A-Za-z._]|\.$)[A-Za-z0-9._]*$")
_R_RESERVED = frozenset({
    "if", "else", "repeat", "while", "function", "for", "in", "next", "break", "TRUE",
    "FALSE", "NULL", "Inf", "NaN", "NA", "NA_integer_", "NA_real_", "NA_character_",
    "NA_complex_"})


def is_r_name(name: str) -> bool:
    """Whether R reads ``name`` as a symbol without backticks."""
    return bool(_R_NAME.match(name)) and name not in _R_RESERVED and not re.match(
        r"^\.\.(\.|\d+)$", name)


def r_string(text: str) -> str:
    """``text`` as an R string literal."""
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{escaped}"'


def r_symbol(name: str) -> str:
    """A column name as R code: bare if R reads it as a name, else in backticks."""
    if is_r_name(name):
        return name
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"
