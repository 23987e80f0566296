"""Subject-disjoint, stratified, deterministic splitting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from idv.data.splits import assign_splits


def pad_like(subjects: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(subjects):
        species = ["print", "replay", "mask"][s % 3]
        for k in range(3):
            rows.append(
                {
                    "sample_id": f"{s}_{k}",
                    "subject_id": f"s{s}",
                    "label": 0,
                    "attack_type": "bona_fide",
                }
            )
            if rng.random() < 0.9:
                rows.append(
                    {
                        "sample_id": f"{s}_{k}_a",
                        "subject_id": f"s{s}",
                        "label": 1,
                        "attack_type": species,
                        "source_sample_id": f"{s}_{k}",
                    }
                )
    return pd.DataFrame(rows)


def test_subject_disjoint_and_attacks_follow_sources() -> None:
    frame = pad_like()
    frame["split"] = assign_splits(frame, seed=3)
    assert frame.groupby("subject_id")["split"].nunique().max() == 1
    split_of = dict(zip(frame["sample_id"], frame["split"], strict=True))
    attacks = frame[frame["label"] == 1]
    assert (attacks["source_sample_id"].map(split_of) == attacks["split"]).all()


def test_fractions_and_stratification() -> None:
    frame = pad_like()
    frame["split"] = assign_splits(frame, seed=3)
    subjects = frame.drop_duplicates("subject_id")
    shares = subjects["split"].value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.6, abs=0.02)
    assert shares["test"] == pytest.approx(0.15, abs=0.02)
    # Every split sees every species.
    species = frame[frame["label"] == 1].groupby("split")["attack_type"].nunique()
    assert (species == 3).all(), species


def test_deterministic_by_seed() -> None:
    frame = pad_like()
    a = assign_splits(frame, seed=11)
    assert a.equals(assign_splits(frame, seed=11))
    assert a.equals(assign_splits(frame.sample(frac=1.0, random_state=0).sort_index(), seed=11))
    assert not a.equals(assign_splits(frame, seed=12))


def test_bad_fractions() -> None:
    with pytest.raises(ValueError, match="unknown split"):
        assign_splits(pad_like(10), seed=0, fractions={"train": 0.5, "dev": 0.5})
    with pytest.raises(ValueError, match="non-negative"):
        assign_splits(pad_like(10), seed=0, fractions={"train": -1.0, "test": 0.5})
