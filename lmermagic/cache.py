"""Fits that are not repeated: a cache in memory, and on disk when asked for.

**The key** is a BLAKE2b hash of the used columns exactly as they go to R
(names, R types, values, factor levels: the encodings :mod:`lmermagic.convert`
makes anyway), every option of the request that reaches R, and the versions
of lmermagic, R, lme4, lmerTest, Matrix and rpy2. The data's name, the model's
name, the row index and the timeout are not in it: they do not change what R
computes, and a hit gets the caller's own.

**Memory.** The last :data:`MEMORY_ENTRIES` fits of the process (fewer when
together they hold more than :data:`MEMORY_CELLS` data cells), each R's fit,
its data and the tables read from it. A hit rebuilds the model's pandas
objects from copies of the tables, so that no two models share a mutable
object; the R objects are shared, as R never changes them in place.

**Disk** (opt-in: ``%config LmerMagics.cache_dir``, ``cache_dir=``). An entry
has two parts behind a header (magic, format version, key, the parts'
lengths, and a MAC, keyed BLAKE2b, over all of it): the tables the fit
returned, exactly as R packed them for the trip to Python (``lmm_pack``,
written as bytes by ``lmm_pack_raw``), with R's warnings and messages; and
R's own ``serialize()`` of the fit and its data. The MAC's key is a random
secret made in the directory when it is first used. A hit reads the tables
in Python (:func:`lmermagic.packed.from_bytes`: plain arrays and strings in
a self-describing layout lmermagic parses itself), and they become the
model's fields through the same decoding as a fresh fit's
(:func:`lmermagic.fitting.model_fields`, :mod:`lmermagic.tables`). The fit
itself stays bytes until a method needs it; R then ``unserialize()``s it
(loading lme4 and Matrix, most of what a restore used to take), as it does
an isolated fit's (:class:`lmermagic.rbridge.Serialized`). Nothing is ever
unpickled.

What is trusted: R's ``unserialize()`` can rebuild objects that run code when
used (closures, promises, active bindings) or load a package, so an entry is
only read if its MAC verifies, that is, if it was written with this directory's
secret; a crafted, foreign (another user's or machine's), truncated or corrupt
entry is refused with a warning and the model refitted. So are verified tables
that are not a fit's (:func:`stored_tables`), and a verified fit part that
holds anything R would run or load beyond what this R session writes itself for
a fit (:mod:`lmermagic.rdsguard`, checked in Python before R sees a byte;
lme4's reference-class objects are stored as plain field lists for that and
rebuilt after reading, ``R/cache.R``). A fit part that passes and that R still
cannot read as a fit can only be lmermagic's own mistake, and the first method
that needs it says so. The secret is only as safe as the directory: it is
created with mode 0o700, and a directory that other users can write to or that
belongs to someone else is not used (with a warning). The directory is opened
once and every file reached through that descriptor
(:mod:`lmermagic.cachedir`): a link swapped in later, a link, FIFO or directory
at an entry's or the secret's path, or a secret that is not 32 bytes is refused
(a bad secret is replaced) and the model refitted. Entries are written to a
temporary file and renamed into place, so two processes storing the same entry
leave one whole entry. The directory is kept under its size limit by dropping
the least recently used entries.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import struct
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np

from . import packed
from .cachedir import Directory, open_private
from .convert import RColumn
from .errors import CacheWarning

__all__ = ["MAX_BYTES", "MEMORY_ENTRIES", "Directory", "Entry", "clear", "directory",
           "discard", "fit_key", "load", "recall", "remember", "store", "stored_tables", "warn"]

FORMAT = 2
MAGIC = b"LMMFIT\r\n"  # the \r\n catches a copy that changed line ends
# magic, format, key, number of parts; then each part's length; then the MAC
_PREFIX = struct.Struct(">8sI32sI")
_LENGTH = struct.Struct(">Q")
_MAC_SIZE = 32
MAX_PARTS = 8
# What the stored tables say they are: lmm_cache_format in R/cache.R.
TABLES_FORMAT = 2
SUFFIX = ".lmmfit"
SECRET = ".secret"

MEMORY_ENTRIES = 16
# Data cells (rows x used columns) the remembered fits may hold together: R keeps
# each fit's model frame, so a few large fits must not stay alive for long. The
# newest fit is always kept.
MEMORY_CELLS = 5_000_000
MAX_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class Entry:
    """What a hit needs: R's fit and data (handles), the tables read from the
    fit (to be copied, never handed out), R's warnings and messages."""

    fit: Any
    data: Any
    tables: dict[str, Any]
    texts: tuple[str, ...]
    cells: int = 0


_memory: OrderedDict[bytes, Entry] = OrderedDict()
_lock = threading.Lock()


class Keyed(Protocol):
    """A request the cache keys: lmer's and glmer's (FitRequest), glmmTMB's
    (TmbRequest, whose r_options() carry its other formulas)."""

    @property
    def formula(self) -> str: ...

    @property
    def extra_functions(self) -> tuple[str, ...]: ...

    def r_options(self) -> dict[str, Any]: ...


def fit_key(request: Keyed, columns: Sequence[RColumn], nrow: int,
            versions: dict[str, str]) -> bytes:
    """The cache key of fitting ``request`` on these encoded columns."""
    h = hashlib.blake2b(digest_size=32, person=b"lmermagic-fit")
    opts = request.r_options()
    parts: list[Any] = [FORMAT, sorted(versions.items()), request.formula,
                        sorted(request.extra_functions), sorted(opts.items(), key=str), nrow]
    h.update(repr(parts).encode())
    for col in columns:
        h.update(repr((col.name, col.kind, col.levels, col.sort_levels, col.ordered,
                       col.values.dtype.str, len(col.values))).encode())
        h.update(np.ascontiguousarray(col.values).view(np.uint8).data)
    return h.digest()


# -- memory -----------------------------------------------------------------

def recall(key: bytes) -> Entry | None:
    with _lock:
        entry = _memory.get(key)
        if entry is not None:
            _memory.move_to_end(key)
        return entry


def remember(key: bytes, entry: Entry) -> None:
    with _lock:
        _memory[key] = entry
        _memory.move_to_end(key)
        while len(_memory) > 1 and (len(_memory) > MEMORY_ENTRIES or sum(
                e.cells for e in _memory.values()) > MEMORY_CELLS):
            _memory.popitem(last=False)


# -- disk -------------------------------------------------------------------

def warn(message: str) -> None:
    """A CacheWarning; the fit goes on without the cache."""
    warnings.warn(f"lmermagic fit cache: {message}", CacheWarning, stacklevel=4)


def directory(path: str | os.PathLike[str] | Directory) -> Directory | None:
    """The cache directory (:func:`lmermagic.cachedir.open_private`: created
    private to the user, opened once, checked on its descriptor); None, with a
    warning, if it cannot be used."""
    try:
        return open_private(path)
    except OSError as exc:
        warn(f"{exc}; fits are not stored on disk there.")
        return None


def _secret(d: Directory) -> bytes:
    """The directory's MAC key: made once, atomically, readable by the user
    only. One that is not 32 bytes of a regular file of ours is replaced
    (with a warning): the entries signed with it are then refitted."""
    for _ in range(3):
        try:
            fd = d.open(SECRET)
            if fd is not None:
                with os.fdopen(fd, "rb") as fh:
                    value = fh.read(33)
                if len(value) == 32:
                    return value
                problem = f"it holds {len(value)} bytes, not 32"
            else:
                problem = None
        except OSError as exc:
            problem = str(exc)
        if problem is not None:
            warn(f"{SECRET} is not usable ({problem}); a new one is made and the entries "
                 "stored under the old one will be refitted.")
            d.write(SECRET, [secrets.token_bytes(32)])
            continue
        with contextlib.suppress(FileExistsError):
            d.write(SECRET, [secrets.token_bytes(32)], link=True)
    raise OSError(f"cannot make a usable {SECRET} in {str(d)!r}")


def _mac(secret: bytes, header: bytes, parts: Sequence[bytes]) -> bytes:
    h = hashlib.blake2b(digest_size=_MAC_SIZE, key=secret)
    h.update(header)
    for part in parts:
        h.update(part)
    return h.digest()


def _header(key: bytes, parts: Sequence[bytes]) -> bytes:
    return _PREFIX.pack(MAGIC, FORMAT, key, len(parts)) + b"".join(
        _LENGTH.pack(len(p)) for p in parts)


def entry_name(key: bytes) -> str:
    return f"{key.hex()}{SUFFIX}"


def _opened(path: str | os.PathLike[str] | Directory) -> Directory:
    d = directory(path)
    if d is None:
        raise OSError(f"the cache directory {str(path)!r} cannot be used")
    return d


def store(path: str | os.PathLike[str] | Directory, key: bytes, parts: Sequence[bytes],
          max_bytes: int = MAX_BYTES) -> None:
    """Write one entry of ``parts`` atomically; drop the least recently used
    ones beyond max_bytes."""
    if not 0 < len(parts) <= MAX_PARTS:
        raise ValueError(f"an entry has 1 to {MAX_PARTS} parts")
    d = _opened(path)
    head = _header(key, parts)
    if len(head) + _MAC_SIZE + sum(len(p) for p in parts) > max_bytes:
        return
    d.write(entry_name(key), [head, _mac(_secret(d), head, parts), *parts])
    prune(d, max_bytes)


def load(path: str | os.PathLike[str] | Directory, key: bytes) -> list[bytes] | None:
    """The parts stored under ``key``, or None: absent, or refused with a warning
    (and removed) when it is not a whole entry written here for this key, or
    not a regular file of ours."""
    d = _opened(path)
    name = entry_name(key)
    try:
        fd = d.open(name)
        if fd is None:
            return None
        with os.fdopen(fd, "rb") as fh:
            problem, parts = _read(d, key, fh, os.fstat(fh.fileno()).st_size)
    except OSError as exc:
        warn(f"cannot read {name}: {exc}; refitting.")
        d.unlink(name)
        return None
    if problem:
        warn(f"ignoring {name}: {problem}; refitting.")
        d.unlink(name)
        return None
    d.touch(name)  # recently used: pruned last
    return parts


def _read(d: Directory, key: bytes, fh: BinaryIO, size: int) -> tuple[str | None, list[bytes]]:
    """(what is wrong with the entry or None, its parts). Lengths are checked
    against the file's size before anything that long is read."""
    prefix = fh.read(_PREFIX.size)
    if len(prefix) < _PREFIX.size:
        return "truncated (shorter than its header)", []
    magic, fmt, stored_key, n = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        return "not an lmermagic cache entry", []
    if fmt != FORMAT:
        return f"written in format {fmt}, this lmermagic reads {FORMAT}", []
    if stored_key != key:
        return "stored under another key", []
    if not 0 < n <= MAX_PARTS:
        return f"a header that announces {n} parts", []
    lengths_raw = fh.read(n * _LENGTH.size)
    mac = fh.read(_MAC_SIZE)
    if len(mac) < _MAC_SIZE:
        return "truncated (shorter than its header)", []
    lengths = [_LENGTH.unpack_from(lengths_raw, i * _LENGTH.size)[0] for i in range(n)]
    body = size - len(prefix) - len(lengths_raw) - _MAC_SIZE
    if sum(lengths) != body:
        return f"truncated or padded ({body} bytes of {sum(lengths)})", []
    parts = [fh.read(length) for length in lengths]
    expected = _mac(_secret(d), prefix + lengths_raw, parts)
    if not hmac.compare_digest(mac, expected):
        return "its MAC does not verify (written elsewhere, or altered)", []
    return None, parts


def stored_tables(parts: list[bytes]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The fit's tables and R's warnings and messages from an entry's first
    part (R's ``lmm_pack_raw``, parsed by :func:`lmermagic.packed.from_bytes`);
    :class:`~lmermagic.packed.PackError` if it holds anything else."""
    if len(parts) != 2:
        raise packed.PackError(f"an entry of {len(parts)} parts, not 2")
    stored = packed.from_bytes(parts[0])
    ok = (isinstance(stored, dict) and isinstance(stored.get("tables"), dict)
          and isinstance(stored.get("format"), np.ndarray)
          and stored["format"].tolist() == [TABLES_FORMAT]
          and isinstance(stored.get("texts"), list)
          and all(isinstance(t, str) for t in stored["texts"]))
    if not ok:
        raise packed.PackError("it does not hold the tables of a fit stored by lmermagic")
    return stored["tables"], tuple(stored["texts"])


def discard(path: str | os.PathLike[str] | Directory, key: bytes) -> None:
    d = directory(path)
    if d is not None:
        d.unlink(entry_name(key))


def _entries(d: Directory) -> Iterable[tuple[float, int, str]]:
    for name in d.names():
        if name.startswith(".") or not name.endswith(SUFFIX):
            continue
        try:
            st = os.stat(name, dir_fd=d.fd, follow_symlinks=False)
        except OSError:  # removed by another process meanwhile
            continue
        yield st.st_mtime, st.st_size, name


def prune(d: Directory, max_bytes: int) -> None:
    """Drop the least recently used entries until the rest fit in max_bytes."""
    entries = sorted(_entries(d))
    total = sum(size for _, size, _ in entries)
    for _, size, name in entries:
        if total <= max_bytes:
            break
        d.unlink(name)
        total -= size


def clear(cache_dir: str | os.PathLike[str] | None = None) -> int:
    """Forget every fit in memory and, with ``cache_dir``, delete its entries
    (the directory and its secret stay). Returns how many entries were deleted
    from ``cache_dir``."""
    with _lock:
        _memory.clear()
    n = 0
    if cache_dir is not None and Path(cache_dir).expanduser().is_dir():
        d = directory(cache_dir)
        if d is not None:
            for _, _, name in list(_entries(d)):
                d.unlink(name)
                n += 1
            for name in d.names():
                if name.startswith(".tmp-"):
                    d.unlink(name)
            d.close()
    return n
