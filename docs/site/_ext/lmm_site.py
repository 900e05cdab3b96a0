"""Sphinx extension of lmermagic's site: the magics' and %config's reference pages, and the
build's own checks.

- ``.. lmm-magics::`` renders every magic: its help text (the docstring ``%lmer?`` shows)
  and a table of its options, read from the magic's argument parser.
- ``.. lmm-config::`` renders the ``%config`` traits of every magics class: name, type,
  default and help, read from the traits themselves.
- A notebook whose code cells were not all executed is a warning (an error under -W).
- A public name of lmermagic that the API pages do not document is a warning.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from lmermagic import _magics_classes

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[3]


def _help_text(doc: str) -> str:
    """The docstring up to argparse's option list (which the table shows instead)."""
    lines = inspect.cleandoc(doc).splitlines()
    for i, line in enumerate(lines):
        if line.rstrip() in ("options:", "optional arguments:", "positional arguments:"):
            return "\n".join(lines[:i]).rstrip()
    return "\n".join(lines).rstrip()


def _value(action: argparse.Action) -> str:
    if action.nargs == 0:
        return "flag"
    if action.choices:
        return "one of " + ", ".join(str(c) for c in action.choices)
    kind = getattr(action.type, "__name__", None) or "str"
    return f"{kind} ({action.metavar})" if action.metavar else kind


def _default(action: argparse.Action) -> str:
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS):
        return ""
    return repr(action.default)


def _table(header: list[str], rows: list[list[str]], widths: list[int],
           literal: tuple[int, ...] = (0, 2)) -> nodes.table:
    """A table of text; the ``literal`` columns as code (names and defaults)."""
    table = nodes.table(classes=["lmm-table"])
    group = nodes.tgroup(cols=len(header))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    group += head
    body = nodes.tbody()
    group += body
    for target, cells in [(head, header), *((body, r) for r in rows)]:
        row = nodes.row()
        for i, cell in enumerate(cells):
            entry = nodes.entry()
            para = nodes.paragraph()
            para += (nodes.literal(text=cell) if target is body and i in literal and cell
                     else nodes.Text(cell))
            entry += para
            row += entry
        target += row
    return table


class MagicsDirective(SphinxDirective):
    """Every magic of lmermagic: help text and options."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        out: list[nodes.Node] = []
        for cls in _magics_classes():
            names: dict[str, list[str]] = {}
            for kind, prefix in (("line", "%"), ("cell", "%%")):
                for magic, method in cls.magics[kind].items():
                    names.setdefault(method, []).append(prefix + magic)
            for method, spelled in names.items():
                out.append(self._magic(getattr(cls, method), spelled))
        return out

    def _magic(self, func: Any, spelled: list[str]) -> nodes.section:
        title = ", ".join(spelled)
        section = nodes.section(ids=[nodes.make_id("magic-" + spelled[0].lstrip("%"))])
        section += nodes.title(text=title)
        doc = inspect.getdoc(func)
        if not doc:
            logger.warning("magic %s has no docstring", title, location=self.get_location())
            return section
        body = nodes.container()
        self.state.nested_parse(StringList(_help_text(doc).splitlines(), self.env.docname),
                                self.content_offset, body)
        section += body.children
        parser = getattr(func, "parser", None)
        if parser is not None:
            rows = [[", ".join(a.option_strings) or a.dest, _value(a), _default(a), a.help or ""]
                    for a in parser._actions if not isinstance(a, argparse._HelpAction)]
            section += _table(["option", "value", "default", "meaning"], rows, [18, 18, 10, 54])
        return section


def _trait_type(trait: Any) -> str:
    names = {"Float": "float", "Unicode": "str", "Bool": "bool", "Int": "int",
             "List": "list of str", "CaselessStrEnum": "str", "Enum": "str"}
    name = type(trait).__name__
    values = getattr(trait, "values", None)
    if values:
        return "one of " + ", ".join(repr(v) for v in values)
    return names.get(name, name)


def _trait_default(trait: Any) -> str:
    value = trait.default_value
    return "[]" if type(trait).__name__ == "List" else repr(value)


class ConfigDirective(SphinxDirective):
    """Every ``%config`` trait of lmermagic's magics."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        rows = []
        for cls in _magics_classes():
            for name, trait in sorted(cls.class_traits(config=True).items()):
                if not trait.help:
                    logger.warning("%%config %s.%s has no help", cls.__name__, name,
                                   location=self.get_location())
                rows.append([f"{cls.__name__}.{name}", _trait_type(trait),
                             _trait_default(trait), trait.help])
        return [_table(["trait", "type", "default", "meaning"], rows, [26, 14, 12, 48])]


def check_notebook(app: Sphinx, docname: str, source: list[str]) -> None:
    """An executed notebook has an execution count on every code cell with code."""
    path = Path(app.env.doc2path(docname))
    if path.suffix != ".ipynb":
        return
    cells = json.loads(source[0]).get("cells", [])
    missing = [i for i, cell in enumerate(cells, 1) if cell.get("cell_type") == "code"
               and "".join(cell.get("source", "")).strip()
               and cell.get("execution_count") is None]
    if missing:
        logger.warning("notebook %s was not executed (code cells %s have no output count): "
                       "run `make demo`, or `make docs EXECUTE=1`", path.name,
                       ", ".join(map(str, missing[:10])), location=docname)


def check_public_names(app: Sphinx, env: Any) -> None:
    """Every public name of lmermagic is documented on an API page (of a site that has
    the API reference)."""
    if "api/index" not in env.found_docs:
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from public_api import public_objects

    documented = set(env.get_domain("py").objects)
    for p in public_objects():
        if f"lmermagic.{p.name}" not in documented:
            logger.warning("lmermagic.%s is public but the API reference does not show it",
                           p.name, location="api/index")


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("lmm-magics", MagicsDirective)
    app.add_directive("lmm-config", ConfigDirective)
    app.connect("source-read", check_notebook)
    app.connect("env-check-consistency", check_public_names)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
