"""Score calibration: map raw detection scores to probabilities of attack, fitted on calib only.

Two methods, both monotone non-decreasing in the score:
- `platt`: logistic regression on the raw score, P(attack | s) = sigmoid(coef * s + intercept),
  (practically) unregularised;
- `isotonic`: isotonic regression of the label on the score (sklearn), clipped outside the fitted
  range; its prediction is the linear interpolation between the fitted (x, y) points, so the
  stored points reproduce it with `np.interp` alone.

Thresholds stay on the raw score (a strictly monotone map such as Platt's would carry them over,
an isotonic one is flat in places and would merge thresholds): the calibrated probability is an
extra output for consumers that need one. The fitted parameters are plain lists / floats, so a
scorer applies them from `thresholds.json` with numpy only (`apply_score_calibration`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from idv.metrics.calibration_quality import expected_calibration_error

METHODS = ("platt", "isotonic")
ECE_BINS = 15


def _check(scores: Sequence[float], labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 1 or s.shape != y.shape or len(s) == 0:
        raise ValueError(f"scores and labels must be 1-D of one length, got {s.shape}, {y.shape}")
    if not np.isfinite(s).all():
        raise ValueError("score calibration needs finite scores (acquired rows only)")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (bona fide) or 1 (attack)")
    y = y.astype(np.int64)
    if y.min() == y.max():
        raise ValueError("score calibration needs both bona fide (0) and attack (1) samples")
    return s, y


def fit_score_calibration(
    scores: Sequence[float], labels: Sequence[int], method: str
) -> dict[str, Any]:
    """Fit `method` ('platt' | 'isotonic') on (calib) scores; returns its JSON-safe parameters."""
    s, y = _check(scores, labels)
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        # A huge C is (practically) no penalty: Platt scaling is a plain 2-parameter fit.
        model = LogisticRegression(C=1e12, max_iter=1000).fit(s[:, None], y)
        return {
            "method": "platt",
            "coef": float(model.coef_[0, 0]),
            "intercept": float(model.intercept_[0]),
        }
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        model.fit(s, y)
        return {
            "method": "isotonic",
            "x": [float(v) for v in model.X_thresholds_],
            "y": [float(v) for v in model.y_thresholds_],
        }
    raise ValueError(f"unknown score calibration {method!r}; choose one of {list(METHODS)} or null")


def apply_score_calibration(params: Mapping[str, Any], scores: Sequence[float]) -> np.ndarray:
    """Calibrated probabilities of attack from the parameters of `fit_score_calibration`.
    A +inf score (a failure to acquire) maps to 1."""
    s = np.asarray(scores, dtype=np.float64)
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    if params["method"] == "platt":
        z = params["coef"] * s + params["intercept"]
        with np.errstate(over="ignore", invalid="ignore"):
            p = 1.0 / (1.0 + np.exp(-z))
        return np.where(np.isposinf(s), 1.0, p)
    if params["method"] == "isotonic":
        p = np.interp(s, np.asarray(params["x"]), np.asarray(params["y"]))
        return np.where(np.isposinf(s), 1.0, p)
    raise ValueError(f"unknown score calibration method {params['method']!r}")


def calibration_report(
    method: str,
    calib_scores: Sequence[float],
    calib_labels: Sequence[int],
    test_scores: Sequence[float],
    test_labels: Sequence[int],
    bins: int = ECE_BINS,
) -> dict[str, Any]:
    """Fit on calib, judge on test: parameters plus ECE on test before and after.

    ECE before is only defined when the raw scores are already in [0, 1] (read as
    probabilities); otherwise it is null with the reason."""
    params = fit_score_calibration(calib_scores, calib_labels, method)
    s_test, y_test = _check(test_scores, test_labels)
    if ((s_test >= 0) & (s_test <= 1)).all():
        before: float | None = expected_calibration_error(s_test, y_test, bins)
        note = None
    else:
        before, note = None, "raw scores lie outside [0, 1]: not probabilities, no ECE before"
    after = expected_calibration_error(apply_score_calibration(params, s_test), y_test, bins)
    report: dict[str, Any] = {
        "params": params,
        "fitted_on": {"samples": len(np.asarray(calib_scores))},
        "test": {
            "samples": len(s_test),
            "ece_bins": bins,
            "ece_before": before,
            "ece_after": after,
        },
    }
    if note:
        report["test"]["note"] = note
    return report
