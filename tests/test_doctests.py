"""The Examples of every public docstring run, against the real R (issue 22).

Each docstring's examples run in a namespace of their own, as a reader would type them:
they import what they use. An example too slow for the suite says so with
``# doctest: +SKIP``. Outputs are compared with ELLIPSIS and NORMALIZE_WHITESPACE, so an
example shows rounded numbers or names, never digits that move between R versions.
"""

from __future__ import annotations

import doctest
import inspect

import pytest

from public_api import PublicObject, public_objects

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _with_examples() -> list[PublicObject]:
    return [p for p in public_objects()
            if p.kind != "data" and ">>>" in (inspect.getdoc(p.obj) or "")]


@pytest.mark.parametrize("p", _with_examples(), ids=lambda p: p.name)
def test_examples_run(p: PublicObject, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)  # an example that saves a file writes it here
    monkeypatch.setenv("MPLBACKEND", "Agg")
    parser = doctest.DocTestParser()
    test = parser.get_doctest(inspect.getdoc(p.obj) or "", {}, f"lmermagic.{p.name}",
                              None, 0)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    out: list[str] = []
    try:
        runner.run(test, out=out.append)
    finally:
        import matplotlib.pyplot as plt

        plt.close("all")
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(out)
