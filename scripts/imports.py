"""Print lmermagic's layers and the imports between its modules; exit 1 on a
problem: an import cycle, an import from a lower layer of a higher one, a
module in no layer, a dynamic import outside the package's ``__init__``, or a
file over MAX_LINES lines (docstrings not counted) that is not a named exception.

Every import counts, at module level or inside a function (deferred for speed)
or under ``if TYPE_CHECKING``: a deferred import is still a dependency.

    python scripts/imports.py           # layers, modules, line counts, imports
    python scripts/imports.py --check   # only the problems

tests/test_layers.py runs the same checks. docs/architecture.md explains the
layers in words.
"""

from __future__ import annotations

import ast
import fnmatch
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lmermagic"

# Top to bottom: a module imports only from its own layer or the layers below,
# and never in a circle.
LAYERS: list[tuple[str, list[str]]] = [
    ("entry points", ["lmermagic", "lmermagic.__main__", "lmermagic.magics", "lmermagic.magic_text",
                      "lmermagic.status", "lmermagic.completion",
                      "lmermagic.many_magics", "lmermagic.power_magics",
                      "lmermagic.tmb_magics", "lmermagic.clmm_magics"]),
    ("api", ["lmermagic.api", "lmermagic.many_api", "lmermagic.stored", "lmermagic.datasets",
             "lmermagic.tmb", "lmermagic.clmm_api"]),
    ("model", ["lmermagic.model", "lmermagic.tmb_model", "lmermagic.clmm_model"]),
    ("toolbox", ["lmermagic.toolbox", "lmermagic.toolbox.*", "lmermagic.tmb_toolbox",
                 "lmermagic.tmb_goodness", "lmermagic.tmb_checks",
                 "lmermagic.tmb_plots", "lmermagic.clmm_tools"]),
    ("fit machinery", ["lmermagic.isolation", "lmermagic.fitting", "lmermagic.preflight",
                       "lmermagic.workers", "lmermagic.tally", "lmermagic.cluster",
                       "lmermagic.cache", "lmermagic.cachedir", "lmermagic.spawn",
                       "lmermagic.pool", "lmermagic.savefile", "lmermagic.warmstart",
                       "lmermagic.tmb_fit", "lmermagic.tmb_cache", "lmermagic.tmb_save",
                       "lmermagic.clmm_fit"]),
    ("bridge", ["lmermagic.rbridge", "lmermagic._rpy2"]),
    ("conversion", ["lmermagic.convert", "lmermagic.tables", "lmermagic.request",
                    "lmermagic.clmm_request",
                    "lmermagic.rsyntax", "lmermagic.rformula", "lmermagic.packed",
                    "lmermagic.fitted", "lmermagic.rdsguard", "lmermagic.rdswalk",
                    "lmermagic.rdsbytecode", "lmermagic.tmb_request"]),
    ("errors", ["lmermagic.errors"]),
]

MAX_LINES = 400
# Files allowed to be longer, each justified in docs/architecture.md.
LONG_FILES = {"lmermagic/rbridge.py"}


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports, anywhere in its file."""
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return {m for m in found if m in known and m != name}


def layer_of(name: str) -> int | None:
    for i, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch.fnmatchcase(name, p) for p in patterns):
            return i
    return None


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of modules (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def dynamic_imports(name: str, path: Path) -> list[int]:
    """Lines that call importlib.import_module or __import__ (invisible to the graph)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            f = node.func
            called = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if called in ("import_module", "__import__"):
                lines.append(node.lineno)
    return lines


def docstring_lines(text: str) -> int:
    """How many lines of a Python file are docstrings (the module's, classes', functions')."""
    count = 0
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                count += (first.end_lineno or first.lineno) - first.lineno + 1
    return count


def line_counts() -> dict[str, int]:
    """Lines of each file, docstrings not counted: the limit is on code, and the API
    reference is made from the docstrings (issue 22), which may be as long as they need."""
    files = sorted([*PACKAGE.rglob("*.py"), *PACKAGE.rglob("*.R")])
    counts = {}
    for path in files:
        text = path.read_text()
        n = len(text.splitlines())
        if path.suffix == ".py":
            n -= docstring_lines(text)
        counts[str(path.relative_to(ROOT))] = n
    return counts


def problems() -> list[str]:
    edges = graph()
    out = []
    for name in sorted(edges):
        layer = layer_of(name)
        if layer is None:
            out.append(f"{name} is in no layer: add it to LAYERS in scripts/imports.py "
                       "and to docs/architecture.md")
            continue
        for dep in sorted(edges[name]):
            dep_layer = layer_of(dep)
            if dep_layer is not None and dep_layer < layer:
                out.append(f"{name} ({LAYERS[layer][0]}) imports {dep} from a higher layer "
                           f"({LAYERS[dep_layer][0]})")
        if name != "lmermagic":
            out += [f"{name}: dynamic import at line {n} (only lmermagic/__init__.py may)"
                    for n in dynamic_imports(name, modules()[name])]
    out += ["import cycle among " + ", ".join(c) for c in cycles(edges)]
    out += [f"{f} has {n} lines (more than {MAX_LINES}); split it by job, or justify it in "
            "docs/architecture.md and LONG_FILES" for f, n in line_counts().items()
            if n > MAX_LINES and f not in LONG_FILES]
    return out


def main(argv: list[str]) -> int:
    found = problems()
    if "--check" not in argv:
        edges = graph()
        counts = line_counts()
        for i, (title, _) in enumerate(LAYERS):
            print(f"{i + 1}. {title}")
            for name in sorted(n for n in edges if layer_of(n) == i):
                path = str(modules()[name].relative_to(ROOT))
                deps = ", ".join(d.removeprefix("lmermagic.") for d in sorted(edges[name]))
                print(f"     {name:<32} {counts[path]:>4} lines  -> {deps or '-'}")
    for p in found:
        print("PROBLEM:", p)
    if not found:
        print("no cycle, no upward import, every module in a layer, no file too long")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
