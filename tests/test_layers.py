"""The package's imports run one way (docs/architecture.md): no cycle, no import
of a higher layer from a lower one, deferred imports included. The checks live
in scripts/imports.py, which also prints the graph."""

from __future__ import annotations

import importlib.util
import operator
from pathlib import Path

import pytest

from conftest import task_processes
from lmermagic import workers

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def layers():
    spec = importlib.util.spec_from_file_location("lmermagic_imports",
                                                  ROOT / "scripts" / "imports.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_imports_run_one_way(layers):
    assert layers.problems() == []


def test_every_long_file_is_justified_in_the_architecture_doc(layers):
    doc = (ROOT / "docs" / "architecture.md").read_text()
    for path in layers.LONG_FILES:
        assert path in doc


def test_docstrings_do_not_count_towards_the_line_limit(layers):
    text = ('"""Module.\n\nMore."""\n\n\nclass A:\n    """One."""\n\n'
            '    def f(self):\n        """Two\n        lines."""\n        return "x"\n')
    assert layers.docstring_lines(text) == 3 + 1 + 2
    assert layers.docstring_lines("x = 1\n'not a docstring'\n") == 0


def test_the_walker_sees_deferred_and_type_checking_imports(layers, tmp_path):
    pkg = tmp_path / "lmermagic" / "toolbox"
    pkg.mkdir(parents=True)
    path = pkg / "job.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "from ._common import call\n"
        "if TYPE_CHECKING:\n"
        "    from ..model import LmerModel\n"
        "def f():\n"
        "    from .. import api, errors\n"
        "    import lmermagic.magics\n")
    known = {"lmermagic", "lmermagic.api", "lmermagic.errors", "lmermagic.model",
             "lmermagic.magics", "lmermagic.toolbox._common", "lmermagic.toolbox.job"}
    assert layers.imports("lmermagic.toolbox.job", path, known) == {
        "lmermagic.toolbox._common", "lmermagic.model", "lmermagic.api", "lmermagic.errors",
        "lmermagic.magics"}
    assert layers.layer_of("lmermagic.toolbox.job") > layers.layer_of("lmermagic.model")


def test_the_cycle_finder(layers):
    assert layers.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layers.cycles({"a": {"b"}, "b": set()}) == []


# The worker-process machinery on its own, without R: setup(payload) once per
# process, work(state, task) per task (operator.pow: state ** task).


@pytest.mark.parametrize("n_workers", [1, 2])
def test_workers_run_every_task_once(n_workers):
    seen: dict[int, int] = {}
    tasks = list(range(12))
    workers.run_tasks(operator.pow, tasks, seen.__setitem__, setup=int, payload="3",
                      workers=n_workers)
    assert seen == {t: 3 ** t for t in tasks}
    assert task_processes() == []  # no process left behind


def test_workers_raise_a_task_error_and_leave_no_process():
    with pytest.raises(ZeroDivisionError):
        workers.run_tasks(operator.truediv, [1, 0, 2], lambda t, r: None, setup=int,
                          payload="0", workers=2)
    assert task_processes() == []


def test_chunks_cover_every_item_once():
    for n, pieces in [(1, 100), (40, 100), (1000, 100), (60, 20), (7, 3)]:
        runs = workers.chunks(n, pieces)
        items = [i for a, b in runs for i in range(a, b + 1)]
        assert items == list(range(1, n + 1))
        assert len(runs) <= pieces
