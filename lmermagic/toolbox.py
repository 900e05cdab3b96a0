"""What an lme4 user does after the fit: comparisons, F tests, predictions,
intervals, marginal means, optimizer checks. Each is a thin wrapper of the R
function of the same name; results are DataFrames with R's numbers."""

from __future__ import annotations
