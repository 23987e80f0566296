"""Per-segment detection metrics and the demographic differential, at one global threshold.

Every headline figure is reported per value of each segment column (geography, capture device,
demographic groups) with the sample and subject counts it rests on, and groups too small to
judge are flagged rather than ranked. The differential follows NIST FRVT Part 8: the worst
group's error rate over the geometric mean of all groups' rates (Max/GeoMean).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from idv.metrics.bootstrap import (
    percentile_interval,
    rate_replicates,
    resample_counts,
    worst_group_replicates,
)
from idv.metrics.detection import auc, eer


def _rates(frame: pd.DataFrame, threshold: float) -> dict[str, float]:
    """APCER (worst species) and BPCER at `threshold`; NaN where a class is absent."""
    attacks, bona = frame[frame["label"] == 1], frame[frame["label"] == 0]
    per_species = [
        float((group["score"] < threshold).mean()) for _, group in attacks.groupby("attack_type")
    ]
    return {
        "apcer_worst": max(per_species) if per_species else np.nan,
        "bpcer": float((bona["score"] >= threshold).mean()) if len(bona) else np.nan,
    }


def _rate_intervals(
    frame: pd.DataFrame, threshold: float, n_resamples: int, seed: int, level: float
) -> dict[str, float]:
    """Subject-bootstrap percentile intervals of the group's worst APCER and BPCER: the worst
    species is taken inside every resample, so the interval is of the max, not of one species."""
    subjects = frame["subject_id"].astype(str).to_numpy()
    if len(set(subjects)) < 2:  # nothing to resample: no interval, not a fake zero-width one
        return {}
    codes, counts = resample_counts(subjects, n_resamples, seed)
    scores, labels = frame["score"].to_numpy(), frame["label"].to_numpy()
    species = frame["attack_type"].astype(str).to_numpy()
    intervals = {}
    bona = labels == 0
    if bona.any():
        bpcer = rate_replicates(scores >= threshold, codes, counts, where=bona)
        intervals["bpcer"] = percentile_interval(np.nan, bpcer, level)
    names = sorted(set(species[labels == 1]))
    if names:
        worst = worst_group_replicates(
            scores < threshold, species, names, codes, counts, where=labels == 1
        )
        intervals["apcer_worst"] = percentile_interval(np.nan, worst, level)
    result = {}
    for name, interval in intervals.items():
        if interval is not None:
            result[f"{name}_low"], result[f"{name}_high"] = interval.low, interval.high
    return result


def segment_report(
    table: pd.DataFrame,
    columns: Sequence[str],
    threshold: float,
    min_subjects: int = 10,
    bootstrap: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """One row per (segment column, group): counts, APCER / BPCER at the global `threshold`
    with subject-bootstrap intervals (`bootstrap`: n_resamples, seed, level; None: none), and
    the group's own EER and AUC where it has both classes. `too_small` flags groups with fewer
    than `min_subjects` subjects of either class: their rates are shown, not judged."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise KeyError(
            f"segment column(s) {missing} not in the score table (columns: {sorted(table.columns)})"
        )
    rows = []
    for column in columns:
        for group, frame in table.groupby(column, sort=True):
            attack_subjects = frame.loc[frame["label"] == 1, "subject_id"].nunique()
            bona_subjects = frame.loc[frame["label"] == 0, "subject_id"].nunique()
            both = attack_subjects > 0 and bona_subjects > 0
            rows.append(
                {
                    "segment": column,
                    "group": group,
                    "samples": len(frame),
                    "subjects": frame["subject_id"].nunique(),
                    "attack_samples": int((frame["label"] == 1).sum()),
                    "bona_fide_samples": int((frame["label"] == 0).sum()),
                    **_rates(frame, threshold),
                    "eer": eer(frame["score"], frame["label"]).rate if both else np.nan,
                    "auc": auc(frame["score"], frame["label"]) if both else np.nan,
                    "too_small": min(attack_subjects, bona_subjects) < min_subjects,
                    **(_rate_intervals(frame, threshold, **bootstrap) if bootstrap else {}),
                }
            )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Differential:
    """Max/GeoMean of one error rate over the groups of one column."""

    column: str
    rate: str
    value: float
    worst_group: str
    rates: dict[str, float]  # per group, zero rates floored at the group's resolution
    counts: dict[str, int]  # the denominators (bona fide or attack samples per group)
    too_small: list[str]  # groups with fewer than min_subjects subjects (excluded)


def demographic_differential(
    table: pd.DataFrame,
    column: str,
    threshold: float,
    rate: str = "bpcer",
    min_subjects: int = 10,
) -> Differential:
    """Worst group's `rate` ("bpcer" or "apcer", at one global threshold) over the geometric
    mean of the groups' rates. A zero rate is floored at 1 / (2 n), half the group's
    resolution, so the ratio stays finite; groups too small to judge are left out and listed."""
    if rate not in ("bpcer", "apcer"):
        raise ValueError(f"rate must be 'bpcer' or 'apcer', got {rate!r}")
    if column not in table.columns:
        raise KeyError(f"segment column {column!r} not in the score table")
    label = 0 if rate == "bpcer" else 1
    rates, counts, small = {}, {}, []
    for group, frame in table[table["label"] == label].groupby(column, sort=True):
        name = str(group)
        if frame["subject_id"].nunique() < min_subjects:
            small.append(name)
            continue
        errors = frame["score"] >= threshold if label == 0 else frame["score"] < threshold
        counts[name] = len(frame)
        rates[name] = max(float(errors.mean()), 1.0 / (2 * len(frame)))
    if len(rates) < 2:
        raise ValueError(
            f"demographic differential over {column!r} needs two groups with at "
            f"least {min_subjects} subjects; too small: {small}"
        )
    values = np.array(list(rates.values()))
    worst = max(rates, key=rates.get)
    geomean = float(np.exp(np.log(values).mean()))
    return Differential(column, rate, rates[worst] / geomean, worst, rates, counts, small)


def aggregate_sessions(table: pd.DataFrame, how: str = "mean") -> pd.DataFrame:
    """One row per `session_id` (frames or events of one capture): the mean or max of its
    frame scores. A session is acquired if any frame was; its label must be unique."""
    if "session_id" not in table.columns:
        raise KeyError("session aggregation needs a session_id column")
    if how not in ("mean", "max"):
        raise ValueError(f"how must be 'mean' or 'max', got {how!r}")
    labels = table.groupby("session_id")["label"].nunique()
    mixed = labels[labels > 1]
    if len(mixed):
        raise ValueError(
            f"session {mixed.index[0]!r} mixes labels; frames of one capture must share the label"
        )
    acquired = table[table["acquired"]] if "acquired" in table else table
    scores = acquired.groupby("session_id")["score"].agg(how)
    first = table.groupby("session_id", sort=True).first()
    sessions = first.drop(columns=["score", "sample_id"], errors="ignore")
    sessions["score"] = scores.reindex(sessions.index)
    sessions["acquired"] = sessions["score"].notna()
    sessions["frames"] = table.groupby("session_id").size()
    return sessions.reset_index()
