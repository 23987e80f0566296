"""Detection metrics against hand-computed cases and scikit-learn's ROC."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from idv.metrics.detection import (
    acer_legacy,
    apcer_per_species,
    auc,
    bpcer,
    bpcer_at_worst_apcer,
    detection_report,
    eer,
    error_rates,
    generalised_scores,
    threshold_at_worst_apcer,
)
from idv.metrics.wrappers import DetectionMetrics

# 4 bona fide, 6 attacks of two species. Hand-worked below.
SCORES = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.5, 0.7, 0.8, 0.9, 0.95])
LABELS = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
SPECIES = np.array(["bona_fide"] * 4 + ["print", "replay", "print", "replay", "print", "replay"])


def test_rates_at_a_threshold_by_hand() -> None:
    # Attack iff score >= 0.5: attacks 0.4 (print) missed; bona fide 0.6 flagged.
    assert apcer_per_species(SCORES, LABELS, SPECIES, 0.5) == {"print": 1 / 3, "replay": 0.0}
    assert bpcer(SCORES, LABELS, 0.5) == 0.25
    assert acer_legacy(1 / 3, 0.25) == pytest.approx((1 / 3 + 0.25) / 2)
    apcer, bpcer_ = error_rates(SCORES, LABELS, np.array([0.0, 0.5, 1.0]))
    np.testing.assert_allclose(apcer, [0.0, 1 / 6, 1.0])
    np.testing.assert_allclose(bpcer_, [1.0, 0.25, 0.0])


def test_auc_by_hand_and_against_sklearn() -> None:
    # Of 24 (attack, bona fide) pairs only (0.4 vs 0.6) and (0.5 vs 0.6) are misordered.
    assert auc(SCORES, LABELS) == pytest.approx(22 / 24)
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=500), 1)  # ties on purpose
    labels = rng.integers(0, 2, 500)
    assert auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))


def test_eer_interpolation_convention() -> None:
    # Threshold 0.5 -> (APCER 1/6, BPCER 1/4): gap = BPCER - APCER = +1/12.
    # Threshold 0.6 -> (APCER 2/6, BPCER 1/4): gap = -1/12, the first point with APCER >= BPCER.
    # Linear interpolation on that segment: alpha = (1/12) / (1/12 + 1/12) = 1/2, so
    # EER = 1/6 + 1/2 (1/3 - 1/6) = 1/4 at threshold 0.5 + 1/2 (0.6 - 0.5) = 0.55.
    point = eer(SCORES, LABELS)
    assert point.rate == pytest.approx(0.25)
    assert point.threshold == pytest.approx(0.55)


def test_eer_exact_crossing_and_perfect_separation() -> None:
    assert eer([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]).rate == 0.0
    exact = eer([0.1, 0.6, 0.4, 0.9], [0, 0, 1, 1])  # at t=0.6: APCER 1/2, BPCER 1/2
    assert exact.rate == pytest.approx(0.5)


def test_eer_matches_sklearn_roc_crossing() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 2000)
    scores = rng.normal(size=2000) + 1.2 * labels
    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1 - tpr
    k = np.argmax(fnr <= fpr)
    # sklearn's ROC points are the same (BPCER=fpr, APCER=fnr) points; interpolate likewise.
    a, b = fpr[k - 1] - fnr[k - 1], fpr[k] - fnr[k]
    alpha = a / (a - b)
    expected = fnr[k - 1] + alpha * (fnr[k] - fnr[k - 1])
    assert eer(scores, labels).rate == pytest.approx(expected, abs=1e-3)


def test_bpcer_at_worst_species_apcer() -> None:
    # Worst APCER = 0 needs every attack caught, so t <= 0.4 (the lowest attack, a print);
    # the largest such t is 0.4, where only the bona fide 0.6 is flagged: BPCER 1/4.
    assert threshold_at_worst_apcer(SCORES, LABELS, SPECIES, 0.0) == 0.4
    assert bpcer_at_worst_apcer(SCORES, LABELS, SPECIES, 0.0) == 0.25
    # Worst APCER <= 1/3 allows t = 0.7 (print misses 0.4, replay misses 0.5: 1/3 each);
    # at t = 0.8 print would miss 0.4 and 0.7 (2/3). At 0.7 no bona fide is flagged.
    assert threshold_at_worst_apcer(SCORES, LABELS, SPECIES, 1 / 3) == 0.7
    assert bpcer_at_worst_apcer(SCORES, LABELS, SPECIES, 1 / 3) == 0.0


def test_report_keys_name_their_threshold() -> None:
    report = detection_report(SCORES, LABELS, SPECIES, 0.5, "val_eer_threshold")
    assert report["apcer_worst@val_eer_threshold"] == pytest.approx(1 / 3)
    assert report["bpcer@val_eer_threshold"] == 0.25
    assert {"auc", "eer", "bpcer_at_worst_apcer_1pct", "bpcer_at_worst_apcer_10pct"} <= set(report)


@pytest.mark.parametrize(
    "bad",
    [
        dict(scores=[0.1, np.nan], labels=[0, 1]),
        dict(scores=[0.1, 0.2], labels=[0, 0]),
        dict(scores=[0.1, 0.2], labels=[0, 2]),
    ],
)
def test_bad_inputs_are_errors(bad) -> None:
    with pytest.raises(ValueError):
        auc(**bad)


def test_torchmetrics_wrapper_equals_functions_across_batches() -> None:
    species_names = ["bona_fide", "print", "replay"]
    index = torch.tensor([species_names.index(s) for s in SPECIES])
    metric = DetectionMetrics(species_names)
    for chunk in np.array_split(np.arange(10), 3):
        metric.update(torch.tensor(SCORES[chunk]), torch.tensor(LABELS[chunk]), index[chunk])
    result = metric.compute()
    assert result["eer"].item() == pytest.approx(0.25)
    assert result["auc"].item() == pytest.approx(22 / 24)
    assert result["apcer_print@eer_threshold"].item() == pytest.approx(1 / 3)


def test_failures_to_acquire_count_against_the_system() -> None:
    # One more bona fide and one more print, neither acquired (+inf after generalisation).
    labels = np.append(LABELS, [0, 1])
    scores = generalised_scores(
        np.append(SCORES, [np.nan, np.nan]), np.append(np.ones(10, bool), [False, False]), labels
    )
    species = np.append(SPECIES, ["bona_fide", "print"])
    report = detection_report(scores, labels, species, 0.5, "t")
    assert report["bpcer@t"] == pytest.approx(2 / 5)  # 0.6 and the unacquired bona fide
    assert report["apcer_print@t"] == pytest.approx(2 / 4)  # 0.4 and the unacquired print
    assert 0 < report["eer"] < 0.5 and 0.5 < report["auc"] < 1
    with pytest.raises(ValueError, match="NaN"):
        auc([0.1, np.nan], [0, 1])
