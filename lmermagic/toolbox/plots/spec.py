"""The magic's ``--plot`` option: which plot methods of the model to call."""

from __future__ import annotations

from ...errors import DataError, did_you_mean

__all__ = ["plot_calls"]

_PLOTS = {"ranef": "plot_ranef", "coefs": "plot_coefs", "diagnostics": "plot_diagnostics",
          "predict": "plot_predict"}


def plot_calls(spec: str) -> list[tuple[str, list[str]]]:
    """``--plot ranef,predict:Time:Pig`` -> [("plot_ranef", []),
    ("plot_predict", ["Time", "Pig"])]: the model's method and its arguments."""
    calls = []
    for item in filter(None, (p.strip() for p in spec.split(","))):
        kind, *pos = item.split(":")
        if kind not in _PLOTS:
            raise DataError(f"--plot {kind}: not a plot; use {', '.join(_PLOTS)}."
                            + did_you_mean(kind, list(_PLOTS)))
        if (kind == "predict") != bool(pos) or len(pos) > 2:
            raise DataError(f"--plot {item}: give predict a variable, predict:X or "
                            "predict:X:BY; the other plots take none.")
        calls.append((_PLOTS[kind], pos))
    return calls
