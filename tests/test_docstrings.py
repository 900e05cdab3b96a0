"""Every public name has a numpydoc docstring (issue 22): the API reference is built from them.

Functions and methods: a summary, Parameters naming each parameter of the signature with
its type, Returns (unless the annotation says None), Raises, and an Examples section with
a `>>>` example (test_doctests.py runs them). Classes: a summary and, for result classes,
Attributes naming every public field with its type. Properties, errors: a summary.
Pure Python: numpydoc parses the text; nothing here calls R.
"""

from __future__ import annotations

import inspect
import warnings

import pytest
from numpydoc.docscrape import ClassDoc, FunctionDoc, NumpyDocString

from public_api import PublicObject, dataclass_fields, public_objects

OBJECTS = [p for p in public_objects() if p.kind != "data"]


def _doc(p: PublicObject) -> NumpyDocString:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpydoc warns on an unknown section
        if p.kind in ("class", "error"):
            return ClassDoc(p.obj, config={"show_class_members": False})
        return FunctionDoc(p.obj)


def _parameters(func: object) -> list[str]:
    names = []
    for param in inspect.signature(func).parameters.values():  # type: ignore[arg-type]
        if param.name in ("self", "cls"):
            continue
        prefix = {param.VAR_POSITIONAL: "*", param.VAR_KEYWORD: "**"}.get(param.kind, "")
        names.append(prefix + param.name)
    return names


@pytest.mark.parametrize("p", OBJECTS, ids=lambda p: p.name)
def test_has_a_summary(p: PublicObject) -> None:
    assert inspect.getdoc(p.obj), f"lmermagic.{p.name} has no docstring"
    doc = _doc(p)
    assert doc["Summary"], f"lmermagic.{p.name}: the docstring has no one-line summary"


CALLABLES = [p for p in OBJECTS if p.kind in ("function", "method")]


@pytest.mark.parametrize("p", CALLABLES, ids=lambda p: p.name)
def test_parameters_each_with_a_type(p: PublicObject) -> None:
    doc = _doc(p)
    documented = {}
    for param in doc["Parameters"]:
        for name in param.name.split(","):  # "x, y : float" documents both
            documented[name.strip()] = param.type
    expected = _parameters(p.obj)
    assert sorted(documented) == sorted(expected), (
        f"lmermagic.{p.name}: Parameters lists {sorted(documented)}, "
        f"the signature has {sorted(expected)}")
    untyped = [name for name, kind in documented.items() if not kind.strip()]
    assert not untyped, f"lmermagic.{p.name}: no type for {untyped}"


@pytest.mark.parametrize("p", CALLABLES, ids=lambda p: p.name)
def test_returns_raises_and_examples(p: PublicObject) -> None:
    doc = _doc(p)
    returns_none = inspect.signature(p.obj).return_annotation in (None, "None")
    if not returns_none:
        assert doc["Returns"] or doc["Yields"], f"lmermagic.{p.name}: no Returns section"
    assert doc["Raises"], f"lmermagic.{p.name}: no Raises section"
    examples = "\n".join(doc["Examples"])
    assert ">>>" in examples, f"lmermagic.{p.name}: no Examples section with a >>> example"


CLASSES = [p for p in OBJECTS if p.kind == "class"]


@pytest.mark.parametrize("p", CLASSES, ids=lambda p: p.name)
def test_result_classes_list_their_fields(p: PublicObject) -> None:
    fields = dataclass_fields(p.obj)
    doc = _doc(p)
    documented = {a.name.strip(): a.type for a in doc["Attributes"]}
    missing = [f for f in fields if f not in documented]
    assert not missing, f"lmermagic.{p.name}: Attributes does not list {missing}"
    untyped = [name for name in fields if not documented[name].strip()]
    assert not untyped, f"lmermagic.{p.name}: no type for attributes {untyped}"


def test_the_walk_sees_every_kind() -> None:
    names = {p.name: p.kind for p in public_objects()}
    assert names["lmer"] == "function"
    assert names["LmerModel.confint"] == "method"
    assert names["LmerModel.fixef"] == "property"  # inherited from fitted.FittedModel
    assert names["TmbModel.plot_ranef"] == "method"
    assert names["ManyModels.n_failed"] == "property"
    assert names["FitError"] == "error"
    assert names["datasets.load"] == "function"
    assert "LmerModel.coefs" not in names  # a field: listed under Attributes
