"""Plots of a fitted model, each computed first (a ``*Display`` object keeps the
numbers drawn, from the model's own tables) and drawn second into a matplotlib
Figure made without pyplot; ``ax=`` draws a one-panel plot into the caller's Axes.

matplotlib is optional: ``pip install 'lmermagic[plots]'``.
"""

from __future__ import annotations

from .coefs import CoefsDisplay, plot_coefs
from .diagnostics import DiagnosticsDisplay, binned_residuals, plot_diagnostics
from .predict import PredictDisplay, plot_predict
from .ranef import RanefDisplay, plot_ranef

__all__ = [
    "CoefsDisplay",
    "DiagnosticsDisplay",
    "PredictDisplay",
    "RanefDisplay",
    "binned_residuals",
    "plot_coefs",
    "plot_diagnostics",
    "plot_predict",
    "plot_ranef",
]
