"""R's byte code as its ``serialize()`` writes it (``ReadBC``, ``ReadBC1``,
``ReadBCLang`` in R's ``serialize.c``): the part of
:class:`lmermagic.rdswalk.Reader` that reads a compiled function's body. Its
constants are items like any other and are checked as such; the code itself
only goes into the function's digest (:mod:`lmermagic.rdsguard`).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from functools import partial
from typing import Any

__all__ = ["ByteCodeReader", "UnsafeStream"]

LIST, LANG, BCODE = 2, 6, 21
ATTRLIST, ATTRLANG, BCREPREF, BCREPDEF = 239, 240, 243, 244
_LANGS = (LANG, LIST, ATTRLANG, ATTRLIST)

Info = tuple[Any, ...]
Step = Generator[None, Info, Info]


class UnsafeStream(ValueError):
    """The bytes are not a stream lmermagic would hand to R."""


class ByteCodeReader:
    """Byte-code items for :class:`~lmermagic.rdswalk.Reader`, which provides
    the primitives declared here."""

    raw: bytes
    pos: int
    in_closure: int

    def integer(self, feed: bool = True) -> int:
        raise NotImplementedError

    def child(self, how: Callable[[], Step | Info] | None = None) -> Any:
        raise NotImplementedError

    def attr(self, has_attr: bool) -> Generator[None, Info, None]:
        raise NotImplementedError

    def bytecode(self, has_attr: bool) -> Step:
        if not self.in_closure:
            raise UnsafeStream("byte code outside a function")
        nreps = self.integer()
        if not 0 <= nreps <= len(self.raw):
            raise UnsafeStream("bad byte code")
        yield self.child(partial(self.bc1, nreps))
        yield from self.attr(has_attr)
        return ("bytecode",)

    def bc1(self, nreps: int) -> Step:
        yield self.child()  # the code: an integer vector
        n = self.integer()
        if not 0 <= n <= len(self.raw) - self.pos:
            raise UnsafeStream("bad byte code constants")
        for _ in range(n):
            t = self.integer()
            if t == BCODE:
                yield self.child(partial(self.bc1, nreps))
            elif t in (*_LANGS, BCREPDEF, BCREPREF):
                yield self.child(partial(self.bc_lang, t, nreps))
            else:
                yield self.child()
        return ("bytecode",)

    def bc_lang(self, t: int, nreps: int) -> Step:
        if t == BCREPREF:
            if not 0 <= self.integer() < nreps:
                raise UnsafeStream("bad byte code reference")
            return ("lang",)
        if t not in (BCREPDEF, *_LANGS):
            yield self.child()  # any other item, read whole
            return ("item",)
        if t == BCREPDEF:
            if not 0 <= self.integer() < nreps:
                raise UnsafeStream("bad byte code reference")
            t = self.integer()
        if t not in _LANGS:
            raise UnsafeStream("bad byte code language")
        if t in (ATTRLANG, ATTRLIST):
            yield self.child()
        yield self.child()  # tag
        for _ in range(2):  # car, cdr (most are plain items: read as such)
            nt = self.integer()
            if nt == BCREPREF:
                if not 0 <= self.integer() < nreps:
                    raise UnsafeStream("bad byte code reference")
            elif nt in (BCREPDEF, *_LANGS):
                yield self.child(partial(self.bc_lang, nt, nreps))
            else:
                yield self.child()
        return ("lang",)
