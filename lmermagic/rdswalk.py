"""A reader of R's XDR ``serialize()`` streams, version 3, in plain Python.

It follows R's own reader (``ReadItem`` in R's ``serialize.c``) item by item
without building anything, and tells a subclass what it meets through hooks
(:class:`Reader`'s ``on_*`` methods); :mod:`lmermagic.rdsguard` decides
there what a stream may hold. Every length is checked against the bytes
that remain before anything is read, references must point at objects
already read, and the walk is iterative (a stack of generators) with a depth
limit, so that no stream can make it hang, recurse without bound or allocate
what it merely announces.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Generator
from typing import Any

from .rdsbytecode import ByteCodeReader, UnsafeStream

__all__ = ["MAX_DEPTH", "Info", "Reader", "UnsafeStream"]

# How deep R's own reader would recurse, at most: it recurses on every
# nested item and on each cell of a pairlist (its CDR), so both count. An
# honest fit's stream needs under 100 (measured: sleepstudy lmerTest, cbpp).
MAX_DEPTH = 2_000

# SEXP types (R's Rinternals.h) and the serializer's own codes (serialize.c).
SYM, LIST, CLO, ENV, PROM, LANG, SPECIAL, BUILTIN, CHAR = 1, 2, 3, 4, 5, 6, 7, 8, 9
LGL, INT, REAL, CPLX, STR, DOT, VEC, EXPR, BCODE = 10, 13, 14, 15, 16, 17, 19, 20, 21
EXTPTR, WEAKREF, RAW, OBJ = 22, 23, 24, 25
ALTREP, ATTRLIST, ATTRLANG, BASEENV, EMPTYENV = 238, 239, 240, 241, 242
BCREPREF, BCREPDEF, GENERICREF, CLASSREF, PERSIST = 243, 244, 245, 246, 247
PACKAGE, NAMESPACE, BASENAMESPACE, MISSINGARG = 248, 249, 250, 251
UNBOUND, GLOBALENV, NILVALUE, REF = 252, 253, 254, 255

_ATOM_SIZE = {LGL: 4, INT: 4, REAL: 8, CPLX: 16, RAW: 1}
_SINGLETONS = {BASEENV, EMPTYENV, BASENAMESPACE, MISSINGARG, UNBOUND, GLOBALENV, NILVALUE}
ACTIVE_BINDING = 1 << 15  # in a binding cell's gp bits (R's Defn.h)
_INT = struct.Struct(">i")
_PAIR = struct.Struct(">ii")

# What an item read stands for, as far as the checks need it: ("sym", name),
# ("call", head, qualified head or ""), ("char", text), ("list", first cars),
# ("closure", namespace or "", digest), ("namespaces", name), ("singleton",
# type), or (kind,) for anything else.
Info = tuple[Any, ...]
Step = Generator[None, Info, Info]


class Reader(ByteCodeReader):
    """One pass over one stream; ``run()`` raises :class:`UnsafeStream` on
    bytes that are not a whole, well-formed stream, or where a hook refuses."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.pos = 0
        self.refs: list[Info] = []
        self.hashers: list[Any] = []
        self.in_closure = 0
        self.cells = 0  # pairlist cells read in the chains now open
        self._pending: Callable[[], Step | Info] | None = None

    # -- hooks (a subclass checks or collects here) --------------------------
    def on_closure(self, env: Info, digest: bytes) -> None: ...
    def on_call_head(self, car: Info) -> None: ...
    def on_named_env(self, what: str, name: str) -> None: ...
    def on_primitive(self, name: str) -> None: ...
    def on_altrep(self, name: str) -> None: ...
    def on_persistent(self, names: list[str]) -> None: ...
    def on_class_package(self, name: str) -> None: ...

    # -- bytes ---------------------------------------------------------------
    def take(self, n: int) -> bytes:
        if n < 0 or n > len(self.raw) - self.pos:
            raise UnsafeStream(f"truncated: {n} bytes announced at offset {self.pos}, "
                               f"{len(self.raw) - self.pos} left")
        b = self.raw[self.pos:self.pos + n]
        self.pos += n
        return b

    def integer(self, feed: bool = True) -> int:
        v: int = _INT.unpack(self.take(4))[0]
        if feed:
            self.feed(_INT.pack(v))
        return v

    def feed(self, b: bytes) -> None:
        for h in self.hashers:
            h.update(b)

    # -- the walk ------------------------------------------------------------
    def run(self) -> None:
        if self.take(2) != b"X\n":
            raise UnsafeStream("not R's XDR binary serialization")
        version, _writer, _reader = (self.integer() for _ in range(3))
        if version != 3:
            raise UnsafeStream(f"serialization version {version}; lmermagic writes 3")
        n = self.integer()
        if not 0 <= n <= 63 or not self.take(n).isascii():
            raise UnsafeStream("a bad native encoding name")
        stack: list[Step] = []
        value: Info | None = None
        step = self.item()
        while True:
            if isinstance(step, tuple):  # a leaf, read at once
                value = step
            else:
                try:
                    step.send(value) if value is not None else next(step)
                    stack.append(step)
                    if len(stack) + self.cells > MAX_DEPTH:
                        raise UnsafeStream(f"nested deeper than {MAX_DEPTH} levels")
                    value = None
                    how, self._pending = self._pending, None
                    step = how() if how is not None else self.item()
                    continue
                except StopIteration as stop:
                    value = stop.value
            if not stack:
                break
            step = stack.pop()
        if self.pos != len(self.raw):
            raise UnsafeStream(f"{len(self.raw) - self.pos} bytes after the object")

    def child(self, how: Callable[[], Step | Info] | None = None) -> Any:
        """Ask the driver to read the next item (``how``: a reader of a
        special kind of item) and send back its Info: ``yield self.child()``."""
        self._pending = how
        return None

    def item(self) -> Step | Info:
        # A closure's digest says what its code is, not where it sits in the
        # stream: no gp bits, no reference numbers, and a symbol (or a
        # namespace) read again through a reference hashes as when first read.
        flags = self.integer(feed=False)
        if flags < 0:
            raise UnsafeStream("bad item flags")
        t, levels = flags & 0xFF, flags >> 12
        has_attr, has_tag = bool(flags & 512), bool(flags & 1024)
        if t == REF:
            i = flags >> 8 or self.integer(feed=False)
            if not 1 <= i <= len(self.refs):
                raise UnsafeStream("a reference to an object not read before")
            ref = self.refs[i - 1]
            self.feed(repr(ref).encode())
            return ref
        if t == SYM:
            info = ("sym", self.name())
            self.refs.append(info)
            self.feed(repr(info).encode())
            return info
        if t in (NAMESPACE, PACKAGE):
            return self.named_env(t)
        self.feed(b"%d.%d.%d" % (t, has_attr, has_tag))
        if t in _SINGLETONS:
            return ("singleton", t)
        if t in _ATOM_SIZE and not has_attr:
            self.feed(self.take(self.length() * _ATOM_SIZE[t]))
            return ("vector", t)
        if t == CHAR and not has_attr:
            text = self.take(self.char_length())
            self.feed(text)
            return ("char", text.decode("utf-8", "replace"))
        return self.compound(t, levels, has_attr, has_tag)

    def char_length(self) -> int:
        n = self.integer()
        if n < -1:
            raise UnsafeStream("a bad string length")
        return max(n, 0)

    def name(self) -> str:
        """A CHARSXP read in place (a symbol's or a namespace's name)."""
        flags = self.integer(feed=False)
        if flags < 0 or flags & 0xFF != CHAR or flags & 512:
            raise UnsafeStream("a name that is not a string")
        n = self.integer(feed=False)
        if n < -1:
            raise UnsafeStream("a bad string length")
        return self.take(max(n, 0)).decode("utf-8", "replace")

    def length(self) -> int:
        n = self.integer()
        if n == -1:
            hi, lo = self.integer(), self.integer()
            if not 0 <= hi <= 65536:
                raise UnsafeStream("a bad long vector length")
            n = (hi << 32) + (lo & 0xFFFFFFFF)
        if n < 0 or n > len(self.raw) - self.pos:  # every element takes a byte at least
            raise UnsafeStream("a vector longer than the bytes left")
        return n

    def attr(self, has_attr: bool) -> Generator[None, Info, None]:
        if has_attr:
            yield self.child()

    def compound(self, t: int, levels: int, has_attr: bool, has_tag: bool) -> Step | Info:
        if t == PROM:
            raise UnsafeStream("a promise (code R runs when the object is used)")
        if t == DOT:
            raise UnsafeStream("a '...' object")
        if t == PERSIST:
            return self.persistent()
        if t in (CLASSREF, GENERICREF):
            raise UnsafeStream("a class or generic reference")
        if t in (WEAKREF, EXTPTR):
            raise UnsafeStream("a weak reference or an external pointer")
        if t in _ATOM_SIZE:
            return self.atoms(t, has_attr)
        if t in (LIST, LANG):
            return self.cons(t, levels, has_attr, has_tag)
        if t == CLO:
            return self.closure(has_attr, has_tag)
        if t == ENV:
            return self.environment()
        if t in (SPECIAL, BUILTIN):
            return self.primitive(has_attr)
        if t in (CHAR, STR, VEC, EXPR):
            return self.vector(t, has_attr)
        if t == BCODE:
            return self.bytecode(has_attr)
        if t == OBJ:
            return self.s4(has_attr)
        if t == ALTREP:
            return self.altrep()
        raise UnsafeStream(f"an item of type {t}, which lmermagic does not write")

    def atoms(self, t: int, has_attr: bool) -> Step:
        self.feed(self.take(self.length() * _ATOM_SIZE[t]))
        yield from self.attr(has_attr)
        return ("vector", t)

    def cons(self, t: int, levels: int, has_attr: bool, has_tag: bool) -> Step:
        # A pairlist or call: a chain of cells, walked as a loop on the CDR
        # (R reads it so too) so that a long list is not deep.
        kind, cars, cells = t, list[Info](), 0
        while True:
            cells += 1
            self.cells += 1
            if levels & ACTIVE_BINDING:  # a function run when the variable is read
                raise UnsafeStream("an active binding (code R runs when a variable is read)")
            yield from self.attr(has_attr)
            tag = (yield self.child()) if has_tag else None
            car = yield self.child()
            if tag == ("sym", "package") and car[0] == "str":
                self.on_class_package(car[1])
            if len(cars) < 3:
                cars.append(car)
            if kind == LANG and len(cars) == 1 and not self.in_closure:
                self.on_call_head(car)
            flags = self.integer(feed=False)
            t, levels = flags & 0xFF, flags >> 12
            if flags < 0 or t not in (LIST, LANG):
                self.pos -= 4  # the CDR is another kind of item: read it as one
                yield self.child()
                break
            has_attr, has_tag = bool(flags & 512), bool(flags & 1024)
            self.feed(b"%d.%d.%d" % (t, has_attr, has_tag))
        self.cells -= cells
        if kind == LANG and cars[0][0] == "sym":
            qualified = (cars[0][1] in ("::", ":::") and len(cars) == 3
                         and cars[1][0] == cars[2][0] == "sym")
            return ("call", cars[0][1], f"{cars[1][1]}::{cars[2][1]}" if qualified else "")
        return ("list", *cars) if kind == LIST else ("call", "", "")

    def closure(self, has_attr: bool, has_tag: bool) -> Step:
        yield from self.attr(has_attr)
        if not has_tag:
            raise UnsafeStream("a function without an environment")
        env = yield self.child()
        hasher = hashlib.blake2b(digest_size=32, person=b"lmm-closure")
        self.hashers.append(hasher)
        self.in_closure += 1
        yield self.child()  # formals
        yield self.child()  # body, byte code included
        self.in_closure -= 1
        self.hashers.pop()
        digest = hasher.digest()
        self.on_closure(env, digest)
        return ("closure", digest)

    def environment(self) -> Step:
        self.integer()  # locked
        info: Info = ("env",)
        self.refs.append(info)
        for _ in range(4):  # enclosure, frame, hash table, attributes
            yield self.child()
        return info

    def named_env(self, t: int) -> Info:
        names = self.strvec()
        what = "namespaces" if t == NAMESPACE else "packages"
        self.on_named_env(what, names[0])
        info = (what, names[0])
        self.refs.append(info)
        self.feed(repr(info).encode())
        return info

    def strvec(self) -> list[str]:
        """R's InStringVec: a namespace's or a persistent name."""
        if self.integer(feed=False) != 0:
            raise UnsafeStream("a bad name vector")
        n = self.integer(feed=False)
        if not 0 < n <= 4096:
            raise UnsafeStream("a bad name vector")
        return [self.name() for _ in range(n)]

    def persistent(self) -> Info:
        # an object R's unserialize() gets from its refhook (lmermagic's: the
        # formula environment, R/cache.R), by name
        names = self.strvec()
        self.on_persistent(names)
        info = ("persistent", names[0])
        self.refs.append(info)
        self.feed(repr(info).encode())
        return info

    def primitive(self, has_attr: bool) -> Step:
        n = self.integer()
        name = self.take(n).decode("ascii", "replace") if 0 <= n <= 64 else None
        if name is None:
            raise UnsafeStream("a bad primitive")
        self.feed(name.encode())
        self.on_primitive(name)
        yield from self.attr(has_attr)
        return ("primitive", name)

    def vector(self, t: int, has_attr: bool) -> Step:
        if t == CHAR:
            text = self.take(self.char_length())
            self.feed(text)
            yield from self.attr(has_attr)
            return ("char", text.decode("utf-8", "replace"))
        if t == STR:
            start, n = self.pos, self.length()
            self.strings(n)
            yield from self.attr(has_attr)
            # one string: what a class's "package" attribute holds
            return ("str", self.raw[start + 12:self.pos].decode("utf-8", "replace")) \
                if n == 1 else ("vector", t)
        for _ in range(self.length()):
            yield self.child()
        yield from self.attr(has_attr)
        return ("vector", t)

    def strings(self, n: int) -> None:
        """A character vector's elements, read in one loop (a model frame's
        row names are as many strings as it has rows)."""
        raw, pos, end = self.raw, self.pos, len(self.raw)
        unpack = _PAIR.unpack_from
        for _ in range(n):
            if pos + 8 > end:
                raise UnsafeStream(f"truncated: a string at offset {pos}")
            flags, size = unpack(raw, pos)
            if flags < 0 or flags & 0x2FF != CHAR or size < -1:  # a CHARSXP, no attributes
                raise UnsafeStream("an element of a character vector that is not a string")
            pos += 8
            if size > 0:
                pos += size
        if pos > end:
            raise UnsafeStream(f"truncated: a string ends at offset {pos}, after the stream")
        self.feed(raw[self.pos:pos])
        self.pos = pos

    def s4(self, has_attr: bool) -> Step:
        yield from self.attr(has_attr)
        return ("s4",)

    def altrep(self) -> Step:
        info = yield self.child()  # pairlist(class symbol, package symbol, type)
        if info[0] != "list" or len(info) < 3 or info[1][0] != "sym" or info[2][0] != "sym":
            raise UnsafeStream("a bad ALTREP class")
        self.on_altrep(f"{info[2][1]}:{info[1][1]}")
        yield self.child()  # state
        yield self.child()  # attributes
        return ("vector", ALTREP)
