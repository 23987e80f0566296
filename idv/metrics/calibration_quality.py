"""How well predicted probabilities match observed rates: expected calibration error and the
reliability table behind a reliability diagram.

Bins are equal-width on [0, 1]: bin i holds probabilities in [i / bins, (i + 1) / bins), the
last bin also holds 1.0.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import numpy as np
import pandas as pd


def reliability_table(
    probabilities: Sequence[float], labels: Sequence[int], bins: int = 15
) -> pd.DataFrame:
    """One row per bin, empty bins included (count 0, NaN means) so the layout is fixed:
    bin_low, bin_high, count, mean_predicted, observed_rate (share of label 1)."""
    p, y = _checked(probabilities, labels, bins)
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_predicted = np.bincount(index, weights=p, minlength=bins) / count
        observed = np.bincount(index, weights=y, minlength=bins) / count
    edges = np.arange(bins + 1) / bins
    return pd.DataFrame(
        {
            "bin_low": edges[:-1],
            "bin_high": edges[1:],
            "count": count,
            "mean_predicted": mean_predicted,
            "observed_rate": observed,
        }
    )


def expected_calibration_error(
    probabilities: Sequence[float], labels: Sequence[int], bins: int = 15
) -> float:
    """ECE = sum over bins of (count / n) * |mean predicted - observed rate|."""
    table = reliability_table(probabilities, labels, bins)
    full = table[table["count"] > 0]
    gap = (full["mean_predicted"] - full["observed_rate"]).abs()
    return float((full["count"] * gap).sum() / full["count"].sum())


def _checked(
    probabilities: Sequence[float], labels: Sequence[int], bins: int
) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels)
    if p.shape != y.shape or p.ndim != 1 or len(p) == 0:
        raise ValueError(
            f"probabilities and labels must be 1-D of one length, got {p.shape}, {y.shape}"
        )
    if not (np.isfinite(p) & (p >= 0) & (p <= 1)).all():
        raise ValueError("probabilities must lie in [0, 1] (NaN is an error)")
    if not pd.Series(y).isin([0, 1]).all():
        raise ValueError(f"labels must be 0 or 1, got values {pd.unique(y)[:5].tolist()}")
    if not isinstance(bins, Integral) or bins < 1:
        raise ValueError(f"bins must be a positive whole number, got {bins!r}")
    return p, y.astype(np.float64)
