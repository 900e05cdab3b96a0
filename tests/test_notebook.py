"""The quickstart notebook, executed in a real Jupyter kernel as ``make demo`` does."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_run_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_demo", ROOT / "scripts" / "run_demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


run_demo = _load_run_demo()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return run_demo.execute(run_demo.NOTEBOOK, tmp_path_factory.mktemp("build"), echo=None)


def test_every_cell_runs(demo) -> None:  # type: ignore[no-untyped-def]
    assert demo.error is None, demo.error
    assert demo.ok


def test_writes_html_and_executed_notebook(demo) -> None:  # type: ignore[no-untyped-def]
    assert demo.html_path.is_file()
    html = demo.html_path.read_text(encoding="utf-8")
    assert "Weight ~ Time + (1 + Time | Pig)" in html
    assert "15.7386" in html
    assert demo.ipynb_path.is_file()
    # the runner's own check cell is not part of what it saves
    assert "run-demo-check" not in demo.ipynb_path.read_text(encoding="utf-8")


def test_dietox_estimates_match_r(demo) -> None:  # type: ignore[no-untyped-def]
    # fixef(lmerTest::lmer(Weight ~ Time + (1 + Time | Pig), dietox)) in R
    assert demo.dietox == pytest.approx({"(Intercept)": 15.73865, "Time": 6.93901}, abs=1e-4)


def test_dietox_tables_in_outputs(demo) -> None:  # type: ignore[no-untyped-def]
    text = demo.output_text
    # m.coefs as pandas prints it: estimates, and Satterthwaite df 71.04 / 71.07
    assert "15.7386" in text
    assert "6.93901" in text
    assert "71.0397" in text or "71.04" in text
    assert "71.0651" in text or "71.07" in text
    # the Evit factor model, both spellings of the terms
    assert "EvitEvit100" in text
    assert "factor(Evit)Evit100" in text


def test_runner_fails_on_an_error_cell(tmp_path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.cells = [
        nbformat.v4.new_code_cell("print('first')"),
        nbformat.v4.new_code_cell("raise ValueError('boom')"),
        nbformat.v4.new_code_cell("print('never')"),
    ]
    path = tmp_path / "bad.ipynb"
    nbformat.write(nb, path)
    result = run_demo.execute(path, tmp_path / "build", echo=None, check_dietox=False)
    assert not result.ok
    assert "boom" in (result.error or "")
    assert result.html_path.is_file()
    assert "never" not in result.output_text


@pytest.mark.parametrize("name,plots", [("dietox_plots", 8), ("glmm_diagnostics", 6)])
def test_gallery_notebooks_show_their_plots(name: str, plots: int, tmp_path: Path) -> None:
    assert ROOT / "docs" / "examples" / f"{name}.ipynb" in run_demo.gallery()
    result = run_demo.execute(ROOT / "docs" / "examples" / f"{name}.ipynb", tmp_path,
                              echo=None, check_dietox=False)
    assert result.ok, result.error
    assert result.images == plots
    assert result.html_path.read_text(encoding="utf-8").count("data:image/png;base64") >= plots


def test_quickstart_shows_a_plot(demo) -> None:  # type: ignore[no-untyped-def]
    assert demo.images == 1


def test_beyond_lme4_notebook_runs(tmp_path: Path) -> None:
    """The glmmTMB and clmm gallery notebook (issue 21) runs in a real kernel."""
    path = ROOT / "docs" / "examples" / "beyond_lme4.ipynb"
    assert path in run_demo.gallery()
    result = run_demo.execute(path, tmp_path, echo=None, check_dietox=False)
    assert result.ok, result.error
    text = result.output_text
    assert "zi" in text and "minedno" in text and "4|5" in text
