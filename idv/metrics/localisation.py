"""Tamper-localisation metrics from per-item pixel counts (a score table's
`output/<mask>_tp`, `_fp`, `_fn`, `_pixels` columns, made at the task's mask threshold).

As the field reports them: pixel F1 and IoU of the thresholded mask per forged image (an
image whose mask and prediction are both empty scores 1), averaged over forged images, per
species and over all; on genuine images, the false-positive area (share of pixels flagged).
Intervals are subject-bootstrap percentile intervals (`idv.metrics.bootstrap`): a person's
documents are resampled together.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from idv.metrics.bootstrap import percentile_interval, resample_counts

COUNTS = ("tp", "fp", "fn", "pixels")


def localisation_outputs(table: pd.DataFrame) -> list[str]:
    """The mask outputs whose pixel counts the table holds."""
    names = [c[len("output/") : -len("_tp")] for c in table.columns
             if c.startswith("output/") and c.endswith("_tp")]  # fmt: skip
    return [n for n in names if all(f"output/{n}_{k}" in table.columns for k in COUNTS)]


def per_item(table: pd.DataFrame, name: str) -> pd.DataFrame:
    """Pixel F1, IoU and flagged share of every row (NaN where the row has no counts)."""
    tp, fp, fn, pixels = (table[f"output/{name}_{k}"].to_numpy(np.float64) for k in COUNTS)
    union = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(union > 0, 2 * tp / (2 * tp + fp + fn), 1.0)
        iou = np.where(union > 0, tp / union, 1.0)
        flagged = (tp + fp) / pixels
    missing = ~np.isfinite(pixels) | (pixels <= 0)
    f1[missing] = iou[missing] = flagged[missing] = np.nan
    return pd.DataFrame({"f1": f1, "iou": iou, "flagged": flagged}, index=table.index)


def _mean_with_interval(
    values: np.ndarray, subjects: np.ndarray, n_resamples: int, seed: int, level: float
) -> dict[str, float | None]:
    ok = np.isfinite(values)
    values, subjects = values[ok], subjects[ok]
    if len(values) == 0:
        return {"value": None, "ci_low": None, "ci_high": None, "n": 0}
    if len(np.unique(subjects)) < 2:  # no subject bootstrap of one person: no interval
        return {"value": float(values.mean()), "ci_low": None, "ci_high": None, "n": len(values)}
    codes, counts = resample_counts(subjects, n_resamples, seed)
    n_subjects = counts.shape[1]
    sums = np.bincount(codes, weights=values, minlength=n_subjects)
    sizes = np.bincount(codes, minlength=n_subjects).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        replicates = (counts @ sums) / (counts @ sizes)
    estimate = float(values.mean())
    interval = percentile_interval(estimate, replicates, level)
    return {
        "value": estimate,
        "ci_low": None if interval is None else float(interval.low),
        "ci_high": None if interval is None else float(interval.high),
        "n": int(len(values)),
    }


def localisation_report(
    table: pd.DataFrame, name: str, *, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, float | None]:
    """Flat metrics: `<name>_f1`, `<name>_iou` (forged images, with `_ci_low` / `_ci_high`),
    the same per species (`<name>_f1_<species>`), and `<name>_false_positive_area` on
    genuine images."""
    scores = per_item(table, name)
    subjects = table["subject_id"].astype(str).to_numpy()
    forged = (table["label"] == 1).to_numpy()
    out: dict[str, float | None] = {}

    def put(key: str, values: np.ndarray, where: np.ndarray) -> None:
        stats = _mean_with_interval(values[where], subjects[where], n_resamples, seed, level)
        out[key] = stats["value"]
        out[f"{key}_ci_low"], out[f"{key}_ci_high"] = stats["ci_low"], stats["ci_high"]

    for metric in ("f1", "iou"):
        values = scores[metric].to_numpy()
        put(f"{name}_{metric}", values, forged)
        for species in sorted(table.loc[forged, "attack_type"].astype(str).unique()):
            put(
                f"{name}_{metric}_{species}",
                values,
                forged & (table["attack_type"] == species).to_numpy(),
            )
    put(f"{name}_false_positive_area", scores["flagged"].to_numpy(), ~forged)
    return out
