"""Subject-disjoint splitting into train / val / calib / test.

Splits are drawn over subjects, never samples: a face seen in training must not be scored at
test time, and an attack lands with the person it depicts (its `subject_id`). Subjects are
stratified by their label / species profile so every split sees every species where possible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from idv.data.manifest import SPLITS

DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.6, "val": 0.1, "calib": 0.15, "test": 0.15}


def subject_strata(
    frame: pd.DataFrame, columns: Sequence[str] = ("label", "attack_type")
) -> pd.Series:
    """One stratum key per subject: the sorted set of values it has in `columns`."""
    present = [c for c in columns if c in frame.columns]
    if not present:
        return pd.Series("all", index=pd.Index(frame["subject_id"].unique(), name="subject_id"))
    keys = frame[present].astype(str).agg("|".join, axis=1)
    return keys.groupby(frame["subject_id"], sort=False).agg(lambda k: "+".join(sorted(set(k))))


def assign_splits(
    frame: pd.DataFrame,
    *,
    seed: int,
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    stratify: Sequence[str] = ("label", "attack_type"),
) -> pd.Series:
    """Return a `split` per row, grouped by `subject_id`, deterministic given `seed`.

    Within each stratum, subjects are shuffled and cut at the cumulative fractions; rounding
    remainders are carried across strata so the overall proportions stay close to `fractions`.
    """
    unknown = set(fractions) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split name(s) {sorted(unknown)}; expected {SPLITS}")
    total = sum(fractions.values())
    if total <= 0 or any(f < 0 for f in fractions.values()):
        raise ValueError(f"split fractions must be non-negative with a positive sum: {fractions}")
    names = [s for s in SPLITS if fractions.get(s, 0) > 0]
    shares = np.array([fractions[s] / total for s in names])

    rng = np.random.default_rng(seed)
    strata = subject_strata(frame, stratify)
    split_of: dict[object, str] = {}
    carry = np.zeros(len(names))
    for key in sorted(strata.unique()):
        subjects = np.array(sorted(strata.index[strata == key], key=str), dtype=object)
        rng.shuffle(subjects)
        want = shares * len(subjects) + carry
        counts = np.floor(want).astype(int)
        # Hand out what flooring left over to the splits furthest below their share.
        for j in np.argsort(-(want - counts), kind="stable")[: len(subjects) - counts.sum()]:
            counts[j] += 1
        carry = want - counts
        start = 0
        for name, n in zip(names, counts, strict=True):
            for subject in subjects[start : start + n]:
                split_of[subject] = name
            start += n
    return frame["subject_id"].map(split_of).rename("split")
