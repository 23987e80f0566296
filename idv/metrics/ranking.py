"""Ranking metrics over scores where a higher score means "more likely positive" (label 1).

ROC and DET points, ROC AUC, average precision, recall at a false-positive rate and
precision at k (a review queue's capacity). A sample is flagged when `score >= threshold`.
Scores may be +/-inf (failures to acquire after score substitution: they sit at an end of
every ranking and no threshold moves them); NaN is an error.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm, rankdata

from idv.metrics.resolution import (
    DEFAULT_MIN_SUBJECTS,
    NotSupported,
    check_resolution,
    count_subjects,
)


def roc_points(scores: Sequence[float], labels: Sequence[int]) -> pd.DataFrame:
    """(threshold, fpr, tpr) at +inf and at every distinct score, thresholds descending.

    The same points as sklearn.metrics.roc_curve(drop_intermediate=False).
    """
    s, y = checked_scores(scores, labels, need_both=True)
    t = np.unique(s)[::-1]
    if t[0] < np.inf:
        t = np.insert(t, 0, np.inf)  # nothing flagged
    pos, neg = np.sort(s[y]), np.sort(s[~y])
    # Counts over n, not 1 - share, so rates compare exactly with targets like 0.01.
    tpr = (len(pos) - np.searchsorted(pos, t, side="left")) / len(pos)
    fpr = (len(neg) - np.searchsorted(neg, t, side="left")) / len(neg)
    return pd.DataFrame({"threshold": t, "fpr": fpr, "tpr": tpr})


def det_points(scores: Sequence[float], labels: Sequence[int]) -> pd.DataFrame:
    """ROC points plus fnr and the normal-deviate (probit) axes of a DET plot.

    Rates of 0 or 1 would map to -/+inf, so they are clipped to half a count
    (0.5 / n and 1 - 0.5 / n, n = negatives for fpr, positives for fnr) to stay plottable.
    """
    points = roc_points(scores, labels)
    _, y = checked_scores(scores, labels, need_both=True)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    points["fnr"] = 1.0 - points["tpr"]
    points["probit_fpr"] = norm.ppf(np.clip(points["fpr"], 0.5 / n_neg, 1 - 0.5 / n_neg))
    points["probit_fnr"] = norm.ppf(np.clip(points["fnr"], 0.5 / n_pos, 1 - 0.5 / n_pos))
    return points


def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """P(positive score > negative score) + 0.5 P(tie) (Mann-Whitney U over midranks)."""
    s, y = checked_scores(scores, labels, need_both=True)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    return float((rankdata(s)[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(scores: Sequence[float], labels: Sequence[int]) -> float:
    """AP = sum over distinct thresholds (descending) of (R_n - R_(n-1)) * P_n, without
    interpolation: the definition of sklearn.metrics.average_precision_score."""
    s, y = checked_scores(scores, labels, need_both=False)
    if not y.any():
        raise ValueError("average precision needs at least one positive")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.append(np.nonzero(s[1:] != s[:-1])[0], len(s) - 1)  # end of each tie group
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall = tp / y.sum()
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def recall_at_fpr(
    scores: Sequence[float],
    labels: Sequence[int],
    max_fpr: float,
    subjects: Sequence | np.ndarray | None = None,
    min_subjects: int = DEFAULT_MIN_SUBJECTS,
) -> float | NotSupported:
    """Recall (TPR) at the smallest threshold with FPR <= `max_fpr`, or NotSupported when the
    negatives cannot resolve `max_fpr` (rule of three; with `subjects`, one id per row, also
    fewer than `min_subjects` distinct subjects among the negatives)."""
    s, y = checked_scores(scores, labels, need_both=True)
    verdict = check_resolution(max_fpr, int((~y).sum()), count_subjects(subjects, ~y), min_subjects)
    if verdict is not None:
        return verdict
    points = roc_points(s, y)  # fpr rises down the table; the last point meeting it is best
    ok = np.nonzero(points["fpr"].to_numpy() <= max_fpr)[0]
    if len(ok) == 0:
        return NotSupported(
            f"+inf scores flag more than {max_fpr:g} of the negatives at any threshold"
        )
    return float(points["tpr"].iloc[ok[-1]])


def threshold_at_fpr(scores: Sequence[float], labels: Sequence[int], max_fpr: float) -> float:
    """The smallest threshold whose FPR (negatives at or above it) is <= `max_fpr`: the
    operating point of `recall_at_fpr` (+inf when even the top score breaks the target)."""
    points = roc_points(scores, labels)
    ok = np.nonzero(points["fpr"].to_numpy() <= max_fpr)[0]
    return float(points["threshold"].iloc[ok[-1]])


def precision_at_k(scores: Sequence[float], labels: Sequence[int], k: int) -> float:
    """Of the k highest scores (a review queue of capacity k), the share that is positive.

    Ties at the cut are broken by expectation, not by row order: the r places left for a tie
    group of m rows holding p positives count r * p / m positives (the mean precision over
    random tie-breaks), so the result does not depend on how the rows are ordered.
    """
    s, y = checked_scores(scores, labels, need_both=False)
    if not 1 <= k <= len(s):
        raise ValueError(f"k must be between 1 and the number of scores ({len(s)}), got {k}")
    cut = np.sort(s)[::-1][k - 1]
    above = s > cut
    tied = s == cut
    places = k - int(above.sum())
    positives = y[above].sum() + places * y[tied].sum() / tied.sum()
    return float(positives / k)


def checked_scores(
    scores: Sequence[float], labels: Sequence[int], need_both: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Scores as float64 (NaN an error, +/-inf allowed) and labels as bool; with `need_both`,
    both classes must be present. Shared by every metric over (score, label) arrays."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.shape != y.shape or s.ndim != 1 or len(s) == 0:
        raise ValueError(f"scores and labels must be 1-D of one length, got {s.shape}, {y.shape}")
    if np.isnan(s).any():
        raise ValueError(f"scores are NaN at positions {np.nonzero(np.isnan(s))[0][:10].tolist()}")
    if y.dtype != bool:
        if not pd.Series(y).isin([0, 1]).all():
            raise ValueError(f"labels must be 0 or 1, got values {pd.unique(y)[:5].tolist()}")
        y = y.astype(bool)
    if need_both and (y.all() or not y.any()):
        raise ValueError("need both positive (1) and negative (0) labels")
    return s, y
