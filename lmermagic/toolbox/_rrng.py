"""R's default random stream, continued in Python.

DHARMa randomises its scaled residuals with R's ``runif()`` and draws its
bootstrap with R's ``sample()``. To give the numbers DHARMa gives for the same
simulations and seed, lmermagic continues R's own stream: R hands over
``.Random.seed`` after simulating (Mersenne-Twister, sample.kind "Rejection",
R's defaults since 3.6.0) and this module draws what R would draw next.

R's Mersenne-Twister is the reference MT19937 (numpy's generator, given R's
624 words and position), its ``unif_rand()`` the 32-bit output times
2.3283064365386963e-10, nudged off 0; ``runif(a, b)`` is ``a + (b - a) * u``
and draws nothing when ``a == b``; ``sample()`` takes uniform integers below
``n`` by rejection from the next power of two, built from 16-bit pieces of
``unif_rand()`` (R's ``R_unif_index``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import DataError

__all__ = ["RStream"]

_MT_CODE = 3  # .Random.seed[1] %% 100 for Mersenne-Twister
_REJECTION = 1  # .Random.seed[1] %/% 10000 for sample.kind = "Rejection"
_TO_UNIT = 2.3283064365386963e-10  # 1 / 2^32, R's MT_genrand scale
_TINY = 0.5 * 2.328306437080797e-10  # R's fixup() for an exact 0


class RStream:
    """R's random stream from a ``.Random.seed`` vector (626 integers)."""

    def __init__(self, seed: Sequence[int] | np.ndarray) -> None:
        state = np.asarray(seed, dtype=np.int64)
        if state.size != 626 or state[0] % 100 != _MT_CODE or state[0] // 10000 != _REJECTION:
            raise DataError("R's random state is not Mersenne-Twister with rejection "
                            "sampling; lmermagic sets these itself, so this is a bug.")
        pos = int(state[1])
        if not 0 < pos <= 624:
            raise DataError(f"R's Mersenne-Twister position {pos} is out of range.")
        self._bits = np.random.MT19937()
        self._bits.state = {"bit_generator": "MT19937",
                            "state": {"key": state[2:].astype(np.uint32), "pos": pos}}
        self._buf = np.empty(0)
        self._at = 0

    def unif(self, k: int) -> np.ndarray:
        """The next ``k`` values of R's ``unif_rand()``."""
        if self._at + k > self._buf.size:
            more = max(k, 4096)
            raw = self._bits.random_raw(more).astype(np.float64) * _TO_UNIT
            raw[raw <= 0.0] = _TINY
            self._buf = np.concatenate([self._buf[self._at:], raw])
            self._at = 0
        out = self._buf[self._at:self._at + k]
        self._at += k
        return out

    def runif(self, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
        """R's ``runif(length(lower), lower, upper)``, with ``lower <= upper``."""
        lower = np.asarray(lower, dtype=float)
        upper = np.asarray(upper, dtype=float)
        out = lower.copy()
        draw = lower != upper
        k = int(draw.sum())
        if k:
            u = self.unif(k)
            out[draw] = lower[draw] + (upper[draw] - lower[draw]) * u
        return out

    def index(self, n: int, size: int) -> np.ndarray:
        """R's ``sample.int(n, size, replace = TRUE) - 1``: 0-based indices."""
        if n < 1:
            raise DataError("sample from an empty set")
        bits = math.ceil(math.log2(n)) if n > 1 else 0
        pieces = bits // 16 + 1  # rbits() loops while its bit count <= bits
        mask = (1 << bits) - 1
        out = np.empty(0, dtype=np.int64)
        while out.size < size:
            need = size - out.size
            # enough attempts for the expected acceptance rate, drawn ahead
            attempts = int(need * (1 << bits) / n) + 16
            u = self._peek(attempts * pieces).reshape(attempts, pieces)
            v = np.zeros(attempts, dtype=np.int64)
            for j in range(pieces):
                v = v * 65536 + np.floor(u[:, j] * 65536).astype(np.int64)
            v &= mask
            ok = np.flatnonzero(v < n)
            if ok.size >= need:
                last = ok[need - 1]
                self._at += (last + 1) * pieces
                out = np.concatenate([out, v[ok[:need]]])
            else:
                self._at += attempts * pieces
                out = np.concatenate([out, v[ok]])
        return out

    def _peek(self, k: int) -> np.ndarray:
        """The next ``k`` uniforms without consuming them."""
        got = self.unif(k).copy()
        self._at -= k
        return got
