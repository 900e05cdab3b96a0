"""R ``serialize()`` bytes checked before R's ``unserialize()`` sees them.

R rebuilds whatever a stream describes, and some of what it rebuilds runs
code: a promise runs its expression when the object is used, an active
binding runs a function when a variable is read, a closure runs when a
method calls it, and unserializing a namespace reference (or an ALTREP
object of a package's class) loads that package and runs its ``.onLoad``.
A cache entry is input from outside (its MAC can only say who wrote it), so
lmermagic reads such a stream itself first, in plain Python
(:mod:`lmermagic.rdswalk`), and hands it to R only if it holds nothing but
data and what R wrote itself for a fit in this session:

* XDR binary, version 3 (``serialize(x, NULL)``), whole, nothing after it;
* no promise, no ``...``, no active binding, no external pointer or weak
  reference, no class or generic reference, no byte code outside a function;
* one object R asks its refhook for: lmermagic's formula environment, by
  name, naming only functions of the caller's allowlist (``R/cache.R``
  makes it again from this R's own functions);
* a closure only if its environment is a namespace of the :class:`Known`
  set and the digest of its formals and body (byte code included) is that
  of a closure of that namespace in the known set (an honest stream holds
  none: the formula environment is the only place a fit keeps functions);
* namespaces, package environments, primitives, ALTREP classes and the
  packages S4 classes name (``attr(class, "package")``, which methods loads
  to find the class) only by names in the known set;
* calls outside closures (the model's call, its formula and terms) only of
  function names in the known set, so that a method evaluating the stored
  call or formula can call nothing else.

The known set is measured (:func:`survey`) from what this R session writes
itself (``lmm_cache_reference`` in ``R/cache.R``: the formula environment of
the allowlist, the calls lmermagic and lme4 store, base's ALTREP vectors),
never from the stream it judges. lme4's reference-class objects, which hold
active bindings and a promise, are written as plain field lists and rebuilt
from this lme4's classes after reading (``R/cache.R``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .rdswalk import BASEENV, BASENAMESPACE, MAX_DEPTH, Info, Reader, UnsafeStream

__all__ = ["MAX_DEPTH", "Known", "UnsafeStream", "check", "survey"]


@dataclass(frozen=True)
class Known:
    """What a stream may hold: closures as (namespace, digest of formals and
    body), namespaces, package environments, primitives, ALTREP classes
    (``"package:class"``), and the functions calls outside closures name
    (``"f"`` or ``"pkg::f"``)."""

    closures: frozenset[tuple[str, bytes]] = frozenset()
    namespaces: frozenset[str] = frozenset()
    packages: frozenset[str] = frozenset()
    primitives: frozenset[str] = frozenset()
    altrep: frozenset[str] = frozenset()
    calls: frozenset[str] = frozenset()
    formula_functions: frozenset[str] = frozenset()
    class_packages: frozenset[str] = frozenset()

    def __or__(self, other: Known) -> Known:
        return Known(**{f: getattr(self, f) | getattr(other, f) for f in _FIELDS})


_FIELDS = ("closures", "namespaces", "packages", "primitives", "altrep", "calls",
           "formula_functions", "class_packages")
FORMULA_ENV = "lmm_formula_env"  # the refhook's name of it (R/cache.R)
_BASE = "base"  # base's namespace and environment: their own stream codes


class _Guard(Reader):
    """Checks against ``known``; with None, collects what it meets instead."""

    def __init__(self, raw: bytes, known: Known | None) -> None:
        super().__init__(raw)
        self.known = known
        self.seen: dict[str, set[object]] = {f: set() for f in _FIELDS}

    def allow(self, what: str, name: object, label: str) -> None:
        if self.known is None:
            self.seen[what].add(name)
        elif name not in getattr(self.known, what):
            shown = name[0] if isinstance(name, tuple) else name
            raise UnsafeStream(f"{label} {shown!r} is not one lmermagic writes")

    def on_closure(self, env: Info, digest: bytes) -> None:
        if env[0] == "namespaces":
            where = env[1]
        elif env == ("singleton", BASENAMESPACE) or env == ("singleton", BASEENV):
            where = _BASE
        else:
            raise UnsafeStream("a function whose environment is not a known namespace")
        self.allow("closures", (where, digest), "a function of namespace")

    def on_call_head(self, car: Info) -> None:
        if car[0] == "sym":
            self.allow("calls", car[1], "a call to")
        elif car[0] == "call" and car[2]:  # pkg::f(...)
            self.allow("calls", car[2], "a call to")
        else:  # a call of a computed function, or of a value
            raise UnsafeStream("a call of something that is not a function's name")

    def on_named_env(self, what: str, name: str) -> None:
        self.allow(what, name, "the namespace" if what == "namespaces" else "the package")

    def on_primitive(self, name: str) -> None:
        self.allow("primitives", name, "the primitive")

    def on_altrep(self, name: str) -> None:
        self.allow("altrep", name, "the ALTREP class")

    def on_class_package(self, name: str) -> None:
        # methods loads the package an S4 class names to find the class
        self.allow("class_packages", name, "a class of the package")

    def on_persistent(self, names: list[str]) -> None:
        if names[0] != FORMULA_ENV:
            raise UnsafeStream(f"an object R would ask a hook for: {names[0]!r}")
        for name in names[1:]:
            self.allow("formula_functions", name, "the formula function")


def check(raw: bytes, known: Known) -> None:
    """Raise :class:`UnsafeStream` unless ``raw`` is a stream R may read
    (see the module)."""
    _Guard(raw, known).run()


def survey(raw: bytes, calls: Iterable[str] = ()) -> Known:
    """What a stream this R session wrote holds, as a :class:`Known` set.
    ``calls``: function names that may also be called outside closures."""
    g = _Guard(raw, None)
    g.run()
    s = g.seen
    found: dict[str, Any] = {f: frozenset(s[f]) for f in _FIELDS}
    found["calls"] |= frozenset(calls)
    return Known(**found)
