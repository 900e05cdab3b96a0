"""The design-size pre-flight: a model whose matrices would not fit in memory,
or whose rank check would run for hours, is refused before R builds them.

lme4 builds the fixed-effects matrix X dense (n rows x p columns, 8 bytes a
cell) and runs a rank-revealing QR on it, in native code that neither Ctrl-C
nor a timeout can stop. A factor written as a fixed effect instead of a
grouping factor (``y ~ id + (1 | g)``, 20,000 levels) asks for gigabytes and
hours. R counts the columns from the formula's terms and the columns' levels
(``R/preflight.R``: R's own terms() rules, without building a matrix) and
compares the cost with the limits this module sets; this module turns R's
report into the error a user reads. ``allow_large=True`` skips the check.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DesignTooLargeError

__all__ = ["available_memory", "describe", "limits", "refusal"]

_CGROUP_LIMITS = (  # (limit, usage) files: cgroup v2, then v1
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
     "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
)


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):  # absent, or "max" (no limit)
        return None


def available_memory(meminfo: str | None = None) -> int | None:
    """Bytes this process can still take: the kernel's MemAvailable, or what a
    cgroup's memory limit leaves, whichever is less; None if unknown."""
    out: int | None = None
    try:
        text = meminfo if meminfo is not None else Path("/proc/meminfo").read_text()
        for line in text.splitlines():
            if line.startswith("MemAvailable:"):
                out = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        out = None
    if out is None:
        try:
            out = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            out = None
    if meminfo is None:
        for limit_file, usage_file in _CGROUP_LIMITS:
            limit, usage = _read_int(limit_file), _read_int(usage_file)
            if limit is not None and usage is not None and limit < 2**60:
                left = max(limit - usage, 0)
                out = left if out is None else min(out, left)
    return out


def limits(allow_large: bool, memory_share: float, max_seconds: float) -> dict[str, float] | None:
    """The limits R checks the design against: bytes and seconds; None with
    ``allow_large`` (no check)."""
    if allow_large:
        return None
    avail = available_memory()
    return {"bytes": float("inf") if avail is None else memory_share * avail,
            "seconds": float(max_seconds)}


def _size(nbytes: float) -> str:
    if nbytes >= 1e9:
        return f"{nbytes / 1e9:.1f} GB"
    return f"{max(nbytes / 1e6, 0.1):.1f} MB"


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    if seconds >= 120:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds:.0f} s"


def _scalar(value: Any) -> float:
    """R's length-one vector (an array after unpack) as a number."""
    return float(np.asarray(value, dtype=float).ravel()[0])


def _seq(value: Any) -> list[Any]:
    """R's vector as a list (a length-one character vector may come as str)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(np.asarray(value).ravel()) if not isinstance(value, list) else value


def describe(report: dict[str, Any]) -> str:
    """The term responsible for the design's size and what it costs, e.g.
    "`id` has 20,000 levels as a fixed effect: a 40,000 x 20,001 matrix,
    6.4 GB; did you mean `(1 | id)`?"."""
    n, p = int(_scalar(report["n"])), int(_scalar(report["p"]))
    x_bytes = float(_scalar(report["x_bytes"]))
    matrix = f"a {n:,} x {p:,} matrix, {_size(x_bytes)}"
    terms = report.get("terms") or {}
    labels, ncols = _seq(terms.get("labels")), [int(k) for k in _seq(terms.get("ncols"))]
    levels, column_factor = _seq(terms.get("levels")), _seq(terms.get("column_factor"))
    re = report.get("re") or {}
    re_labels = _seq(re.get("labels"))
    re_size = [int(c) * int(g) for c, g in zip(_seq(re.get("ncols")), _seq(re.get("groups")))]
    q = int(_scalar(report["q"]))
    # The random effects are the culprit when their dense block (RZX, q x p)
    # outweighs X itself.
    if re_size and q > n and max(re_size) * 2 > (max(ncols) if ncols else 0):
        i = re_size.index(max(re_size))
        return (f"the random-effect term `({re_labels[i]})` makes {re_size[i]:,} random "
                f"effects, beside the fixed effects' {matrix}.")
    if not ncols:
        return f"the fixed effects make {matrix}."
    i = ncols.index(max(ncols))
    label = labels[i]
    if column_factor[i] and not np.isnan(levels[i]):
        return (f"`{label}` has {int(levels[i]):,} levels as a fixed effect: {matrix}; "
                f"did you mean `(1 | {label})`?")
    return f"`{label}` makes {ncols[i]:,} columns of the fixed effects: {matrix}."


def refusal(report: dict[str, Any], memory_share: float, max_seconds: float,
            limit_bytes: float) -> DesignTooLargeError:
    """The error for a design R found over the limits (``lmm_design_check``)."""
    need = float(_scalar(report["bytes"]))
    seconds = float(_scalar(report["seconds"]))
    costs = []
    if need > limit_bytes:
        costs.append(f"about {_size(need)} of memory (the limit: {memory_share:.0%} of the "
                     f"{_size(limit_bytes / memory_share)} available)")
    if seconds > max_seconds:
        costs.append(f"about {_duration(seconds)} for the rank check alone (a QR of that "
                     "matrix, in native code that Ctrl-C cannot stop; the limit: "
                     f"{max_seconds:g} s)")
    return DesignTooLargeError(
        f"{describe(report)}\nFitting it would take {' and '.join(costs)}. Refused before "
        "R built it.\nTo fit it anyway: allow_large=True (magic: --allow-large), best with "
        "isolate=True (--isolate), which can be stopped at any time. The limits: %config "
        "LmerMagics.max_memory_share and LmerMagics.max_seconds.")
