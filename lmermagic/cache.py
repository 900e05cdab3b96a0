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
used (closures, promises), so an entry is only read if its MAC verifies, that
is, if it was written with this directory's secret; a crafted, foreign
(another user's or machine's), truncated or corrupt entry is refused with a
warning and the model refitted. So are verified tables that are not a fit's
(:func:`stored_tables`); a verified fit part that R cannot read as a fit
can only be lmermagic's own mistake, and the first method that needs it
says so. The secret is only as safe as the directory:
it is created with mode 0o700, and a directory that other users can write to
or that belongs to someone else is not used (with a warning). Entries are
written to a temporary file and renamed into place, so two processes storing
the same entry leave one whole entry. The directory is kept under its size
limit by dropping the least recently used entries.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import struct
import tempfile
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from . import packed
from .convert import RColumn
from .errors import CacheWarning
from .request import FitRequest

__all__ = ["MAX_BYTES", "MEMORY_ENTRIES", "Entry", "clear", "directory", "discard", "fit_key",
           "load", "recall", "remember", "store", "stored_tables", "warn"]

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


def fit_key(request: FitRequest, columns: Sequence[RColumn], nrow: int,
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


def directory(path: str | os.PathLike[str]) -> Path | None:
    """The cache directory, created private to the user; None (with a warning)
    if it cannot be made or others could write to it."""
    d = Path(path).expanduser()
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = d.stat()
    except OSError as exc:
        warn(f"cannot use {str(d)!r}: {exc}; fits are not stored on disk.")
        return None
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        warn(f"{str(d)!r} belongs to another user; fits are not stored on disk there.")
        return None
    if st.st_mode & 0o022:
        warn(f"{str(d)!r} can be written by other users (mode {st.st_mode & 0o777:o}); "
              "its entries would be read by R, so it is not used. chmod 700 it.")
        return None
    return d


def _secret(d: Path) -> bytes:
    """The directory's MAC key: made once, atomically, readable by the user only."""
    path = d / SECRET
    try:
        value = path.read_bytes()
        if len(value) == 32:
            return value
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".secret-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
        try:
            os.link(tmp, path)  # fails if another process made it first
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
    return path.read_bytes()


def _mac(secret: bytes, header: bytes, parts: Sequence[bytes]) -> bytes:
    h = hashlib.blake2b(digest_size=_MAC_SIZE, key=secret)
    h.update(header)
    for part in parts:
        h.update(part)
    return h.digest()


def _header(key: bytes, parts: Sequence[bytes]) -> bytes:
    return _PREFIX.pack(MAGIC, FORMAT, key, len(parts)) + b"".join(
        _LENGTH.pack(len(p)) for p in parts)


def entry_path(d: Path, key: bytes) -> Path:
    return d / f"{key.hex()}{SUFFIX}"


def store(d: Path, key: bytes, parts: Sequence[bytes], max_bytes: int = MAX_BYTES) -> None:
    """Write one entry of ``parts`` atomically; drop the least recently used
    ones beyond max_bytes."""
    if not 0 < len(parts) <= MAX_PARTS:
        raise ValueError(f"an entry has 1 to {MAX_PARTS} parts")
    head = _header(key, parts)
    if len(head) + _MAC_SIZE + sum(len(p) for p in parts) > max_bytes:
        return
    mac = _mac(_secret(d), head, parts)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(head + mac)
            for part in parts:
                fh.write(part)
        os.replace(tmp, entry_path(d, key))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    prune(d, max_bytes)


def load(d: Path, key: bytes) -> list[bytes] | None:
    """The parts stored under ``key``, or None: absent, or refused with a warning
    (and removed) when it is not a whole entry written here for this key."""
    path = entry_path(d, key)
    try:
        with path.open("rb") as fh:
            problem, parts = _read(d, key, fh, os.fstat(fh.fileno()).st_size)
    except FileNotFoundError:
        return None
    except OSError as exc:
        warn(f"cannot read {path.name}: {exc}; refitting.")
        return None
    if problem:
        warn(f"ignoring {path.name}: {problem}; refitting.")
        discard(d, key)
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # recently used: pruned last
    return parts


def _read(d: Path, key: bytes, fh: BinaryIO, size: int) -> tuple[str | None, list[bytes]]:
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


def discard(d: Path, key: bytes) -> None:
    with contextlib.suppress(OSError):
        entry_path(d, key).unlink()


def _entries(d: Path) -> Iterable[tuple[float, int, Path]]:
    for p in d.glob(f"*{SUFFIX}"):
        if p.name.startswith("."):
            continue
        try:
            st = p.stat()
        except OSError:  # removed by another process meanwhile
            continue
        yield st.st_mtime, st.st_size, p


def prune(d: Path, max_bytes: int) -> None:
    """Drop the least recently used entries until the rest fit in max_bytes."""
    entries = sorted(_entries(d))
    total = sum(size for _, size, _ in entries)
    for _, size, p in entries:
        if total <= max_bytes:
            break
        with contextlib.suppress(OSError):
            p.unlink()
            total -= size


def clear(cache_dir: str | os.PathLike[str] | None = None) -> int:
    """Forget every fit in memory and, with ``cache_dir``, delete its entries
    (the directory and its secret stay). Returns how many entries were deleted
    from ``cache_dir``."""
    with _lock:
        _memory.clear()
    n = 0
    if cache_dir is not None:
        d = Path(cache_dir).expanduser()
        if d.is_dir():
            for _, _, p in list(_entries(d)):
                with contextlib.suppress(OSError):
                    p.unlink()
                    n += 1
            for p in d.glob(".tmp-*"):
                with contextlib.suppress(OSError):
                    p.unlink()
    return n
