"""The site's build fails on what issue 22 names: a broken internal link, a public name
with no docstring, a notebook that was not executed, a public name missing from the API
reference. Each case builds a small site with the real configuration (docs/site/conf.py,
-W -n) and must fail with a message that names the fault; a clean one must pass.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _build_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_docs", ROOT / "scripts" / "build_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_docs = _build_docs()


def _build(tmp_path: Path, pages: dict[str, str], *, pythonpath: Path | None = None
           ) -> subprocess.CompletedProcess:
    src = tmp_path / "src"
    for name, text in pages.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text, encoding="utf-8")
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    return build_docs.sphinx_build(src, tmp_path / "out", tmp_path / "doctrees",
                                   capture_output=True, text=True, env=env)


HOME = "# Home\n\nSome text.\n\n```{toctree}\n:hidden:\n\nother\n```\n"


def _notebook(executed: bool) -> str:
    cell = {"cell_type": "code", "id": "code", "metadata": {}, "source": ["print(1)"],
            "execution_count": 1 if executed else None,
            "outputs": [{"output_type": "stream", "name": "stdout", "text": ["1\n"]}]
            if executed else []}
    title = {"cell_type": "markdown", "id": "title", "metadata": {},
             "source": ["# A notebook"]}
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3"},
            "language_info": {"name": "python"}}
    return json.dumps({"cells": [title, cell], "nbformat": 4, "nbformat_minor": 5,
                       "metadata": meta})


def test_a_clean_site_builds(tmp_path: Path) -> None:
    done = _build(tmp_path, {"index.md": HOME, "other.ipynb": _notebook(True)})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "other.html").is_file()


def test_a_broken_link_fails(tmp_path: Path) -> None:
    page = "# Other\n\nSee [the missing page](missing.md) and [a heading](index.md#nowhere).\n"
    done = _build(tmp_path, {"index.md": HOME, "other.md": page})
    assert done.returncode != 0
    assert "missing" in done.stderr and "nowhere" in done.stderr


def test_a_notebook_not_executed_fails(tmp_path: Path) -> None:
    done = _build(tmp_path, {"index.md": HOME, "other.ipynb": _notebook(False)})
    assert done.returncode != 0
    assert "other.ipynb was not executed" in done.stderr


def test_a_name_without_docstring_fails(tmp_path: Path) -> None:
    mod = tmp_path / "mod"
    mod.mkdir()
    (mod / "undocumented.py").write_text("def fit(x):\n    return x\n", encoding="utf-8")
    page = "# Other\n\n```{eval-rst}\n.. autofunction:: undocumented.fit\n```\n"
    done = _build(tmp_path, {"index.md": HOME, "other.md": page}, pythonpath=mod)
    assert done.returncode != 0
    assert "GL08" in done.stderr and "undocumented.fit" in done.stderr


def test_a_public_name_missing_from_the_api_pages_fails(tmp_path: Path) -> None:
    page = "# API\n\n```{eval-rst}\n.. autofunction:: lmermagic.lmer\n```\n"
    home = HOME.replace("other", "api/index")
    done = _build(tmp_path, {"index.md": home, "api/index.md": page})
    assert done.returncode != 0
    assert "lmermagic.glmer is public but the API reference does not show it" in done.stderr
    assert "lmermagic.lmer is public" not in done.stderr


def test_make_docs_wants_executed_notebooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    """Without `make demo`'s executed copies the build stops and says what to run."""
    monkeypatch.setattr(build_docs, "BUILD", tmp_path)
    with pytest.raises(SystemExit, match="make demo"):
        build_docs.executed_copies(execute=False)
    assert sys.executable  # the runner is this interpreter's
