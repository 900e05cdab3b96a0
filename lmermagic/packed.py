"""R's results, flattened by R's ``lmm_pack``, back into Python values.

``lmm_pack`` (``R/rbridge.R``) turns a nested list of atomic vectors into a
table of nodes and a few pools (doubles, integers, strings), so that a fit's
many small tables cross from R in a few vectors. :func:`build` rebuilds the
values from those pools; :mod:`lmermagic.rbridge` hands it the pools read from
R's memory, and :func:`from_bytes` the same pools written as bytes by R's
``lmm_pack_raw``, the form the disk cache keeps a fit's tables in. Both give
the same Python values, so a table read back from disk goes through the same
decoding as one that came from the fit.

The byte form is self-describing and parsed here, nothing else: a magic, six
little-endian int32 counts (nodes, doubles, integers, strings, string bytes,
long vectors), the kind and length of each long vector, then the pools in
that order. Every length is checked against the bytes there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .convert import NA_INTEGER

__all__ = ["MAGIC", "PackError", "build", "from_bytes", "logical", "strings"]

MAGIC = b"LMMPACK1"
_INT = np.dtype("<i4")
_DBL = np.dtype("<f8")
_KINDS = 10  # node kinds 0..9, as lmm_pack numbers them


class PackError(ValueError):
    """Bytes that are not a whole ``lmm_pack_raw`` result."""


@dataclass
class _Nodes:
    """build()'s input and read position. A plain object walked by a module
    function: a recursive closure would be a reference cycle holding R objects
    until Python's cyclic garbage collector happened to run."""

    spec: list[list[int]]
    dbl: np.ndarray
    ints: np.ndarray
    strs: list[str | None]
    kept: Sequence[Any]
    vecs: Sequence[np.ndarray]
    pos: int = 0


def build(spec: np.ndarray, dbl: np.ndarray, ints: np.ndarray, strs: list[str | None],
          vecs: Sequence[np.ndarray], kept: Sequence[Any] = ()) -> Any:
    """The value ``lmm_pack`` flattened: named lists as dicts, lists as lists,
    numeric vectors as numpy arrays (copies; matrices keep their shape),
    logical vectors as bool arrays (pandas' boolean where NA), character
    vectors as lists of str (NA as None), named atomic vectors as dicts, kept
    R objects (kind 7) as the handles in ``kept``."""
    nodes = _Nodes(spec=np.asarray(spec).reshape(-1, 6).tolist(), dbl=dbl, ints=ints,
                   strs=strs, kept=kept, vecs=vecs)
    return _build(nodes)


def _build(st: _Nodes) -> Any:
    kind, n, off, names_off, nrow, ncol = st.spec[st.pos]
    st.pos += 1
    names = st.strs[names_off:names_off + n] if names_off >= 0 else None
    value: Any
    if kind == 0:
        return None
    if kind in (1, 2):
        items = [_build(st) for _ in range(n)]
        return dict(zip(names, items)) if names is not None else items
    if kind == 7:
        return st.kept[off]
    if kind in (5, 6):  # no matrix shape, as rbridge.to_py
        value = logical(st.ints[off:off + n]) if kind == 5 else st.strs[off:off + n]
        return dict(zip(names, list(value))) if names is not None else value
    if kind == 3:
        value = st.dbl[off:off + n].copy()
    elif kind == 4:
        value = st.ints[off:off + n].copy()
    else:  # 8, 9: long vectors that crossed on their own
        value = st.vecs[off].copy()
    if nrow >= 0:
        return value.reshape((nrow, ncol), order="F")
    return dict(zip(names, list(value))) if names is not None else value


def strings(text: bytes, nbytes: Sequence[int]) -> list[str | None]:
    """The string pool: one UTF-8 text cut at the given byte lengths (-1: NA)."""
    out: list[str | None] = []
    at = 0
    for nb in nbytes:
        if nb < 0:
            out.append(None)
        else:
            out.append(text[at:at + nb].decode("utf-8"))
            at += nb
    return out


def logical(raw: np.ndarray) -> Any:
    """R logical values as int32 -> bool array, or pandas' boolean where NA."""
    na = raw == NA_INTEGER
    if not na.any():
        return raw.astype(bool)
    out = pd.array(raw.astype(bool), dtype="boolean")
    out[na] = pd.NA
    return out


class _Reader:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.at = 0

    def take(self, dtype: np.dtype, count: int) -> np.ndarray:
        size = dtype.itemsize * count
        if count < 0 or self.at + size > len(self.raw):
            raise PackError("shorter than its counts say")
        out = np.frombuffer(self.raw, dtype=dtype, count=count, offset=self.at)
        self.at += size
        return out.astype(dtype.newbyteorder("="), copy=True)


def from_bytes(raw: bytes) -> Any:
    """The value R's ``lmm_pack_raw`` wrote, as :func:`build` gives it.

    Raises :class:`PackError` for anything that is not a whole, well-formed
    result (wrong magic, lengths that do not add up, nodes pointing outside
    their pools)."""
    if raw[:len(MAGIC)] != MAGIC:
        raise PackError("not a packed R result")
    rd = _Reader(raw)
    rd.at = len(MAGIC)
    n_spec, n_dbl, n_int, n_str, n_chr, n_vecs = (int(v) for v in rd.take(_INT, 6))
    if n_spec % 6:
        raise PackError("a node table of the wrong shape")
    shapes = rd.take(_INT, 2 * n_vecs).reshape(-1, 2).tolist()
    spec = rd.take(_INT, n_spec)
    dbl = rd.take(_DBL, n_dbl)
    ints = rd.take(_INT, n_int)
    nbytes = rd.take(_INT, n_str).tolist()
    text = bytes(rd.take(np.dtype("u1"), n_chr))
    if any(kind not in (8, 9) for kind, _ in shapes):
        raise PackError("a long vector of an unknown kind")
    vecs = [rd.take(_DBL if kind == 8 else _INT, length) for kind, length in shapes]
    if rd.at != len(raw):
        raise PackError("longer than its counts say")
    if sum(nb for nb in nbytes if nb > 0) != n_chr:
        raise PackError("string lengths that do not add up")
    try:
        strs = strings(text, nbytes)
    except UnicodeDecodeError as exc:
        raise PackError(f"a string that is not UTF-8 ({exc.reason})") from None
    _check_nodes(spec.reshape(-1, 6), {3: n_dbl, 4: n_int, 5: n_int, 6: len(strs)},
                 len(strs), [(kind, len(v)) for (kind, _), v in zip(shapes, vecs)])
    nodes = _Nodes(spec=spec.reshape(-1, 6).tolist(), dbl=dbl, ints=ints, strs=strs,
                   kept=(), vecs=vecs)
    try:
        value = _build(nodes)
    except (IndexError, RecursionError):
        raise PackError("a list with more elements than nodes") from None
    if nodes.pos != len(nodes.spec):
        raise PackError("nodes left over")
    return value


def _check_nodes(spec: np.ndarray, pools: dict[int, int], n_strs: int,
                 vecs: list[tuple[int, int]]) -> None:
    """Every node within its pool, so that building can neither index past a
    pool nor silently read short."""
    for kind, n, off, names_off, nrow, ncol in spec.tolist():
        if not 0 <= kind < _KINDS or kind == 7 or n < 0:
            raise PackError(f"a node of kind {kind} and length {n}")
        if names_off >= 0 and names_off + n > n_strs:
            raise PackError("names outside the string pool")
        if kind in pools and not (0 <= off and off + n <= pools[kind]):
            raise PackError("a vector outside its pool")
        if kind in (8, 9) and not (0 <= off < len(vecs) and vecs[off] == (kind, n)):
            raise PackError("a long vector that is not there")
        if nrow >= 0 and (kind not in (3, 4, 8, 9) or nrow * ncol != n):
            raise PackError("a matrix of the wrong size")
