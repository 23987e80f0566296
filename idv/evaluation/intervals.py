"""Subject-bootstrap intervals for the headline detection metrics of a score table."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from idv.metrics.bootstrap import (
    Interval,
    bootstrap_curve,
    bootstrap_rate,
    bpcer_at_worst_apcer_statistic,
    eer_statistic,
)
from idv.metrics.detection import pct


def detection_intervals(
    table: pd.DataFrame,
    threshold: float | None,
    threshold_name: str,
    apcer_targets: Sequence[float],
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Interval]:
    """Intervals keyed like `detection_report`'s metrics (no thresholded ones without a
    threshold); every one resamples subjects with the same seed, so they share resamples."""
    scores = table["score"].to_numpy(np.float64)
    labels = table["label"].to_numpy()
    subjects = table["subject_id"].astype(str).to_numpy()
    species = table["attack_type"].astype(str).to_numpy()
    options = {"n_resamples": n_resamples, "seed": seed, "level": level}
    result = {"eer": bootstrap_curve(scores, labels, subjects, eer_statistic, **options)}
    for target in apcer_targets:
        result[f"bpcer_at_worst_apcer_{pct(target)}"] = bootstrap_curve(
            scores,
            labels,
            subjects,
            bpcer_at_worst_apcer_statistic(target),
            species=species,
            **options,
        )
    if threshold is None:
        return result
    attack, bona = labels == 1, labels == 0
    result[f"bpcer@{threshold_name}"] = bootstrap_rate(
        scores >= threshold, subjects, where=bona, **options
    )
    for name in sorted(set(species[attack])):
        result[f"apcer_{name}@{threshold_name}"] = bootstrap_rate(
            scores < threshold, subjects, where=attack & (species == name), **options
        )
    return result


def flatten(prefix: str, intervals: dict[str, Interval]) -> dict[str, float]:
    """`<prefix><key>_ci_low` / `_ci_high` entries for metrics.json."""
    flat = {}
    for key, interval in intervals.items():
        flat[f"{prefix}{key}_ci_low"] = interval.low
        flat[f"{prefix}{key}_ci_high"] = interval.high
    return flat
