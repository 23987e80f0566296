"""The figures scripts' shared tables (idv.evaluation.figures) on toy score tables: no
training, no torch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from idv.evaluation.figures import (
    BPCER_POINTS,
    auc_per_species,
    compare_systems,
    detection_figures,
    difference_cell,
    figure_cells,
)
from idv.metrics.detection import eer

RESAMPLES = 200
PER_SUBJECT = {"bona_fide": 5, "print": 3, "replay": 2}  # rows of each species per subject


def toy_items(subjects: int = 20) -> pd.DataFrame:
    rows = [
        {"sample_id": f"s{k}/{name}/{i}", "subject_id": f"s{k}", "attack_type": name,
         "label": int(name != "bona_fide")}
        for k in range(subjects) for name, n in PER_SUBJECT.items() for i in range(n)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def toy_scores(items: pd.DataFrame, seed: int = 0, replay_shift: float = 1.0) -> np.ndarray:
    """Bona fide ~ N(0, 1), print ~ N(2, 1) (easy), replay ~ N(replay_shift, 1)."""
    rng = np.random.default_rng(seed)
    mean = items["attack_type"].map({"bona_fide": 0.0, "print": 2.0, "replay": replay_shift})
    return mean.to_numpy() + rng.normal(0.0, 1.0, len(items))


def test_separable_scores_give_zero_error():
    items = toy_items()
    scores = items["label"].to_numpy() * 10.0
    f = detection_figures(scores, items, RESAMPLES)
    assert f["eer"] == 0.0 and f["eer_ci"] == [0.0, 0.0]
    assert f["apcer_at_eer"] == {"print": 0.0, "replay": 0.0}
    assert set(f["apcer_at_bpcer"]) == {f"{p:g}" for p in BPCER_POINTS}
    assert all(v == {"print": 0.0, "replay": 0.0} for v in f["apcer_at_bpcer"].values())


def test_eer_its_interval_and_species_keys():
    items = toy_items()
    scores = toy_scores(items)
    f = detection_figures(scores, items, RESAMPLES, bpcer_points=(0.1,))
    assert f["eer"] == pytest.approx(eer(scores, items["label"].to_numpy()).rate)
    low, high = f["eer_ci"]
    assert 0.0 <= low <= f["eer"] <= high <= 1.0 and low < high
    assert list(f["apcer_at_eer"]) == ["print", "replay"]  # attack species only, sorted
    assert f["apcer_at_eer"]["print"] < f["apcer_at_eer"]["replay"]  # print is the easy one
    assert list(f["apcer_at_bpcer"]) == ["0.1"]


def test_unresolvable_operating_points_are_none():
    items = toy_items(subjects=4)  # 20 bona fide: cannot resolve 5% or 10% (rule of three)
    f = detection_figures(toy_scores(items), items, RESAMPLES)
    assert f["apcer_at_bpcer"]["0.05"] == {"print": None, "replay": None}
    assert f["apcer_at_bpcer"]["0.1"] == {"print": None, "replay": None}  # needs 30
    assert figure_cells(f)[2] == "n/a"  # the worst APCER column has nothing to show


def test_auc_per_species_is_bona_fide_against_that_species():
    items = toy_items()
    scores = np.where(items["attack_type"] == "print", 10.0, 0.0)
    scores = np.where(items["attack_type"] == "replay", -10.0, scores)
    assert auc_per_species(scores, items) == {"print": 1.0, "replay": 0.0}


def test_compare_systems_pairs_every_system_with_the_first():
    items = toy_items()
    good, worse = toy_scores(items, seed=1, replay_shift=2.0), toy_scores(items, seed=1)
    rows = compare_systems(
        {"good": good, "same": good.copy(), "worse": worse}, items, RESAMPLES, "good"
    )
    assert "eer_minus_good" not in rows["good"]
    assert rows["same"]["eer_minus_good"] == [0.0, 0.0, 0.0]
    estimate, low, high = rows["worse"]["eer_minus_good"]
    assert estimate == pytest.approx(rows["worse"]["eer"] - rows["good"]["eer"])
    assert low <= estimate <= high and estimate > 0


def test_cells():
    assert difference_cell(None) == "-"
    assert difference_cell([0.0125, -0.004, 0.03]) == "+0.013 [-0.004, +0.030]"
    f = {"eer": 0.1, "eer_ci": [0.05, 0.2], "apcer_at_eer": {"print": 0.25},
         "apcer_at_bpcer": {"0.1": {"print": 0.5, "replay": None}}}  # fmt: skip
    assert figure_cells(f) == ["0.100 [0.050, 0.200]", "print 0.25", "0.500"]
