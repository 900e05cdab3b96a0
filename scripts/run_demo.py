"""Execute the example notebooks in a real Jupyter kernel and report what they show.

Usage: python scripts/run_demo.py [NOTEBOOK ...] [--build DIR] [--timeout SECONDS] [--no-check]

Runs every cell of each notebook of docs/examples/ (by default; the quickstart first) in
an IPython kernel started from *this* interpreter, prints each cell's plain-text output
to the terminal as it finishes, writes the executed notebook to build/<name>.ipynb and
build/<name>.html, counts the plots each shows, and compares the quickstart's dietox fit
with R's own numbers. Exits non-zero when a cell raises or the numbers differ.

``make demo`` runs it with the project's virtual environment.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"
NOTEBOOK = EXAMPLES / "quickstart.ipynb"
BUILD = ROOT / "build"

# fixef(lmerTest::lmer(Weight ~ Time + (1 + Time | Pig), data = geepack::dietox)) in R 4.2.2,
# lme4 1.1-31.
R_DIETOX = {"(Intercept)": 15.73865, "Time": 6.93901}
TOLERANCE = 1e-4

# Appended to the notebook for the run and removed before it is saved: reads the estimates
# of the notebook's dietox model `m` back from the kernel.
_CHECK_TAG = "run-demo-check"
_CHECK_SOURCE = f"""\
import json as _json
print(_json.dumps({{_t: float(m.coefs.loc[_t, "estimate"]) for _t in {list(R_DIETOX)!r}}}))
"""


@dataclass
class DemoResult:
    """What one run of the notebook produced."""

    notebook: Any
    html_path: Path | None = None
    ipynb_path: Path | None = None
    texts: list[str] = field(default_factory=list)  # plain-text output of each code cell
    error: str | None = None  # the failing cell's error, if a cell raised
    dietox: dict[str, float] | None = None  # estimates of the notebook's `m`
    checked: bool = True  # whether the dietox estimates were to be checked

    @property
    def dietox_matches(self) -> bool:
        if self.dietox is None:
            return False
        return all(
            math.isclose(self.dietox.get(term, math.nan), value, rel_tol=0, abs_tol=TOLERANCE)
            for term, value in R_DIETOX.items()
        )

    @property
    def ok(self) -> bool:
        return self.error is None and (self.dietox_matches or not self.checked)

    @property
    def output_text(self) -> str:
        return "\n".join(self.texts)

    @property
    def images(self) -> int:
        """How many images (plots) the executed cells show."""
        return sum(1 for cell in self.notebook.cells for out in cell.get("outputs", [])
                   if any(k.startswith("image/") for k in out.get("data", {})))


def gallery() -> list[Path]:
    """The notebooks of docs/examples/, the quickstart first."""
    return sorted(EXAMPLES.glob("*.ipynb"), key=lambda p: (p != NOTEBOOK, p.name))


def plain_text(cell: Any) -> str:
    """The text a terminal would show for a code cell's outputs."""
    parts = []
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream":
            parts.append(out.get("text", ""))
        elif kind in ("execute_result", "display_data"):
            data = out.get("data", {})
            if "text/plain" in data:
                parts.append(data["text/plain"])
            elif data:
                parts.append(f"[{', '.join(sorted(data))}]")
        elif kind == "error":
            parts.append(f"{out.get('ename', 'Error')}: {out.get('evalue', '')}")
    return "\n".join(p.rstrip("\n") for p in parts if p)


def _kernel_manager() -> KernelManager:
    # An empty search path leaves only ipykernel's own "python3" spec, which starts
    # sys.executable: the kernel sees exactly the packages this interpreter sees, whatever
    # python3 kernelspecs the user has installed elsewhere.
    specs = KernelSpecManager(kernel_dirs=[])
    return KernelManager(kernel_name="python3", kernel_spec_manager=specs)


def execute(
    notebook: Path = NOTEBOOK,
    build: Path = BUILD,
    *,
    timeout: int = 600,
    echo: Callable[[str], None] | None = print,
    check_dietox: bool = True,
) -> DemoResult:
    """Run ``notebook`` in a fresh python3 kernel and write the executed copy to ``build``.

    Parameters
    ----------
    notebook
        The notebook to execute; it runs with its own folder as working directory.
    build
        Where ``<stem>.ipynb`` and ``<stem>.html`` are written (also after a failing cell,
        to show how far it got).
    timeout
        Seconds allowed for one cell.
    echo
        Called with each cell's input and plain-text output as the cell finishes;
        ``None`` for silence.
    check_dietox
        Read the estimates of the notebook's dietox model ``m`` back from the kernel
        (the quickstart defines it); ``False`` for other notebooks.

    Returns
    -------
    DemoResult
        ``result.ok`` is true when every cell ran and (with ``check_dietox``) the dietox
        estimates match R.
    """
    nb = nbformat.read(notebook, as_version=4)
    if check_dietox:
        check = nbformat.v4.new_code_cell(_CHECK_SOURCE, metadata={"tags": [_CHECK_TAG]})
        nb.cells.append(check)
    result = DemoResult(notebook=nb, checked=check_dietox)

    def on_cell_executed(cell: Any, cell_index: int, execute_reply: Any, **_: Any) -> None:
        if cell.get("cell_type") != "code" or _CHECK_TAG in cell.get("metadata", {}).get(
            "tags", []
        ):
            return
        text = plain_text(cell)
        result.texts.append(text)
        if echo is not None:
            count = (execute_reply or {}).get("content", {}).get("execution_count", cell_index)
            prompt = f"In [{count}]: "
            more = "...: ".rjust(len(prompt))
            lines = cell.source.rstrip().splitlines() or [""]
            echo("\n" + prompt + f"\n{more}".join(lines))
            if text:
                echo(text)

    client = NotebookClient(
        nb,
        km=_kernel_manager(),
        kernel_name="python3",
        # the kernel's own log (e.g. "running over TCP without encryption") is noise here
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
        timeout=timeout,
        allow_errors=False,
        resources={"metadata": {"path": str(notebook.parent)}},
        on_cell_executed=on_cell_executed,
    )
    argv = client.km.kernel_spec.argv if client.km is not None else []
    if echo is not None:
        echo(f"Executing {notebook} with kernel: {' '.join(argv[:3])}")
    try:
        client.execute()
    except CellExecutionError as exc:
        result.error = str(exc)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"

    if result.error is None and check_dietox:
        out = plain_text(nb.cells[-1]).strip().splitlines()
        try:
            result.dietox = {k: float(v) for k, v in json.loads(out[-1]).items()}
        except (IndexError, ValueError, AttributeError) as exc:
            result.error = f"could not read the dietox estimates back from the kernel: {exc}"
    nb.cells = [c for c in nb.cells if _CHECK_TAG not in c.get("metadata", {}).get("tags", [])]

    build.mkdir(parents=True, exist_ok=True)
    result.ipynb_path = build / f"{notebook.stem}.ipynb"
    nbformat.write(nb, result.ipynb_path)
    body, _ = HTMLExporter().from_notebook_node(nb)
    result.html_path = build / f"{notebook.stem}.html"
    result.html_path.write_text(body, encoding="utf-8")
    return result


def dietox_line(result: DemoResult) -> str:
    """One line comparing the notebook's dietox estimates with R's."""
    if result.dietox is None:
        return "dietox: no estimates (the notebook did not get that far)"
    parts = [
        f"{term} {result.dietox.get(term, math.nan):.6f} (R {value})"
        for term, value in R_DIETOX.items()
    ]
    verdict = "match" if result.dietox_matches else f"DIFFER by more than {TOLERANCE}"
    return "dietox Weight ~ Time + (1 + Time | Pig): " + ", ".join(parts) + f": {verdict}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to run (default: all of docs/examples/)")
    parser.add_argument("--build", type=Path, default=BUILD, help="output folder (build/)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (600)")
    parser.add_argument(
        "--no-check", action="store_true", help="skip the quickstart's dietox comparison"
    )
    args = parser.parse_args(argv)

    failed = []
    summary = []
    for notebook in args.notebooks or gallery():
        check = not args.no_check and notebook.resolve() == NOTEBOOK
        result = execute(notebook, args.build, timeout=args.timeout, check_dietox=check)
        print()
        if result.error is not None:
            print(f"FAILED: {notebook}\n{result.error}", file=sys.stderr)
        if result.checked:
            print(dietox_line(result))
        summary.append(f"{result.html_path} ({result.images} plots)")
        if not result.ok:
            failed.append(notebook)
    print("Wrote " + ", ".join(summary))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
