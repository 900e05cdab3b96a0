"""The public names of lmermagic whose docstrings the API reference shows.

test_docstrings.py holds them to numpydoc's sections and test_doctests.py runs their
examples; docs/_ext/lmm_api.py lists the same names on the site.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import lmermagic


@dataclass(frozen=True)
class PublicObject:
    name: str  # dotted, under lmermagic: "lmer", "LmerModel.confint", "datasets.load"
    obj: Any  # the function, the class, or a property's getter
    kind: str  # "function", "method", "property", "class", "error", "data" (a constant)


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()


def public_objects() -> Iterator[PublicObject]:
    """Every public function, class, method and property, inherited ones included."""
    from lmermagic import datasets

    for name in sorted(lmermagic.__all__):
        obj = getattr(lmermagic, name)
        if inspect.ismodule(obj):
            for sub in sorted(getattr(obj, "__all__", ())):
                member = getattr(obj, sub)
                kind = "function" if callable(member) else "data"
                yield PublicObject(f"{name}.{sub}", member, kind)
        elif inspect.isclass(obj) and issubclass(obj, BaseException):
            yield PublicObject(name, obj, "error")
        elif inspect.isclass(obj):
            yield PublicObject(name, obj, "class")
            fields = _fields(obj)
            for member in sorted(dir(obj)):
                if member.startswith("_") or member in fields:
                    continue
                static = inspect.getattr_static(obj, member)
                if isinstance(static, property):
                    yield PublicObject(f"{name}.{member}", static.fget, "property")
                elif callable(static):
                    yield PublicObject(f"{name}.{member}", getattr(obj, member), "method")
        elif callable(obj):
            yield PublicObject(name, obj, "function")
        else:
            yield PublicObject(name, obj, "data")
    assert datasets  # imported for its __all__ above


def public_callables() -> list[PublicObject]:
    return [p for p in public_objects() if p.kind in ("function", "method")]


def dataclass_fields(cls: type) -> list[str]:
    """The public fields of a result class (shown as its Attributes)."""
    return [f for f in sorted(_fields(cls)) if not f.startswith("_")]
