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

**Disk** (opt-in: ``%config LmerMagics.cache_dir``, ``cache_dir=``). An entry is
R's own ``serialize()`` of the fit, its data and R's warnings, behind a
header: magic, format version, key, payload length, and a MAC (keyed BLAKE2b)
over all of it. The MAC's key is a random secret made in the directory when
it is first used. A hit ``unserialize()``s inside R and rebuilds the tables
through the normal path (the coefficient table, whose Satterthwaite df are the
fit's dearest part, travels on the fit). Nothing is ever unpickled.

What is trusted: R's ``unserialize()`` can rebuild objects that run code when
used (closures, promises), so an entry is only read if its MAC verifies, that
is, if it was written with this directory's secret; a crafted, foreign
(another user's or machine's), truncated or corrupt entry is refused with a
warning and the model refitted. The secret is only as safe as the directory:
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
from typing import Any

import numpy as np

from .convert import RColumn
from .errors import CacheWarning
from .request import FitRequest

__all__ = ["MAX_BYTES", "MEMORY_ENTRIES", "Entry", "clear", "directory", "discard", "fit_key",
           "load", "recall", "remember", "store", "warn"]

FORMAT = 1
MAGIC = b"LMMFIT\r\n"  # the \r\n catches a copy that changed line ends
_HEADER = struct.Struct(">8sI32sQ32s")  # magic, format, key, payload length, MAC
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


def _mac(secret: bytes, header: bytes, payload: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=32, key=secret)
    h.update(header)
    h.update(payload)
    return h.digest()


def entry_path(d: Path, key: bytes) -> Path:
    return d / f"{key.hex()}{SUFFIX}"


def store(d: Path, key: bytes, payload: bytes, max_bytes: int = MAX_BYTES) -> None:
    """Write one entry atomically; drop the least recently used ones beyond max_bytes."""
    if _HEADER.size + len(payload) > max_bytes:
        return
    head = struct.pack(">8sI32sQ", MAGIC, FORMAT, key, len(payload))
    mac = _mac(_secret(d), head, payload)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(head + mac)
            fh.write(payload)
        os.replace(tmp, entry_path(d, key))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    prune(d, max_bytes)


def load(d: Path, key: bytes) -> bytes | None:
    """The payload stored under ``key``, or None: absent, or refused with a warning
    (and removed) when it is not a whole entry written here for this key."""
    path = entry_path(d, key)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        warn(f"cannot read {path.name}: {exc}; refitting.")
        return None
    problem = _check(d, key, raw)
    if problem:
        warn(f"ignoring {path.name}: {problem}; refitting.")
        discard(d, key)
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # recently used: pruned last
    return raw[_HEADER.size:]


def _check(d: Path, key: bytes, raw: bytes) -> str | None:
    if len(raw) < _HEADER.size:
        return "truncated (shorter than its header)"
    magic, fmt, stored_key, length, mac = _HEADER.unpack_from(raw)
    if magic != MAGIC:
        return "not an lmermagic cache entry"
    if fmt != FORMAT:
        return f"written in format {fmt}, this lmermagic reads {FORMAT}"
    if stored_key != key:
        return "stored under another key"
    if length != len(raw) - _HEADER.size:
        return f"truncated or padded ({len(raw) - _HEADER.size} bytes of {length})"
    expected = _mac(_secret(d), raw[:_HEADER.size - 32], raw[_HEADER.size:])
    if not hmac.compare_digest(mac, expected):
        return "its MAC does not verify (written elsewhere, or altered)"
    return None


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
