"""Score-array metrics beyond verification: ranking (ROC / DET / AP / recall at FPR /
precision at k) against hand cases and scikit-learn, calibration quality, and the PAD
additions (APCER at BPCER, generalised scores for failures to acquire)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from idv.metrics.calibration_quality import expected_calibration_error, reliability_table
from idv.metrics.detection import apcer_at_bpcer, generalised_scores
from idv.metrics.ranking import (
    average_precision,
    det_points,
    precision_at_k,
    recall_at_fpr,
    roc_auc,
    roc_points,
)
from idv.metrics.resolution import NotSupported

# 3 negatives, 3 positives. Hand-worked below.
SCORES = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.9])
LABELS = np.array([0, 0, 1, 0, 1, 1])


def test_roc_points_by_hand() -> None:
    # Descending thresholds: +inf (nothing flagged), 0.9, 0.8, 0.4 (tie: one of each), 0.35, 0.1.
    points = roc_points(SCORES, LABELS)
    assert points["threshold"].tolist() == [np.inf, 0.9, 0.8, 0.4, 0.35, 0.1]
    np.testing.assert_allclose(points["tpr"], [0, 1 / 3, 1 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(points["fpr"], [0, 0, 1 / 3, 2 / 3, 2 / 3, 1])


def test_roc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=400), 1)  # ties on purpose
    labels = rng.integers(0, 2, 400)
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    points = roc_points(scores, labels)
    np.testing.assert_array_equal(points["threshold"], thresholds)
    np.testing.assert_allclose(points["fpr"], fpr, rtol=0, atol=1e-15)
    np.testing.assert_allclose(points["tpr"], tpr, rtol=0, atol=1e-15)
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert average_precision(scores, labels) == pytest.approx(
        average_precision_score(labels, scores), abs=1e-12
    )


def test_average_precision_by_hand() -> None:
    # Thresholds 0.9: P 1/1, R 1/3. 0.8: P 1/2, R 1/3 (no recall step). 0.4: P 2/4, R 2/3.
    # 0.35: P 3/5, R 1. AP = 1/3 * 1 + 1/3 * 1/2 + 1/3 * 3/5 = 0.7.
    assert average_precision(SCORES, LABELS) == pytest.approx(0.7)
    assert average_precision(SCORES, LABELS) == pytest.approx(
        average_precision_score(LABELS, SCORES)
    )


def test_det_points_clip_to_half_a_count() -> None:
    # At +inf fpr = 0 -> 0.5 / 3 negatives; fnr = 1 -> 1 - 0.5 / 3 positives.
    points = det_points(SCORES, LABELS)
    first = points.iloc[0]
    assert first["probit_fpr"] == pytest.approx(norm.ppf(0.5 / 3))
    assert first["probit_fnr"] == pytest.approx(norm.ppf(1 - 0.5 / 3))
    assert np.isfinite(points[["probit_fpr", "probit_fnr"]].to_numpy()).all()
    np.testing.assert_allclose(points["fnr"], 1 - points["tpr"])
    # An unclipped point: threshold 0.4 has fpr 2/3.
    assert points.iloc[3]["probit_fpr"] == pytest.approx(norm.ppf(2 / 3))


def test_recall_at_fpr_by_hand_and_resolution() -> None:
    # 300 negatives: 297 at 0.0, three at 0.5, 0.6, 0.7; positives 0.9, 0.65, 0.55, 0.0.
    # FPR(0.5) = 3/300 = 0.01 meets a 1% target exactly; FPR(0.0) = 1. So t = 0.5 and the
    # recall is 3/4. 0.1% needs 3000 negatives.
    scores = np.array([0.0] * 297 + [0.5, 0.6, 0.7] + [0.9, 0.65, 0.55, 0.0])
    labels = np.array([0] * 300 + [1] * 4)
    assert recall_at_fpr(scores, labels, 0.01) == 0.75
    assert isinstance(recall_at_fpr(scores, labels, 0.001), NotSupported)
    subjects = [f"s{i % 4}" for i in range(304)]
    verdict = recall_at_fpr(scores, labels, 0.01, subjects=subjects)
    assert isinstance(verdict, NotSupported) and "subjects" in verdict.reason
    assert recall_at_fpr(scores, labels, 0.01, subjects=subjects, min_subjects=4) == 0.75


def test_precision_at_k_breaks_ties_by_expectation() -> None:
    # k = 2: 0.9 (positive) then 0.8 (negative) -> 1/2.
    assert precision_at_k(SCORES, LABELS, 2) == 0.5
    # k = 3: 0.9, 0.8, then one place for the tie at 0.4 (one positive of two) -> the tie adds
    # 1 * 1/2: (1 + 0 + 0.5) / 3 = 0.5, whatever the row order.
    assert precision_at_k(SCORES, LABELS, 3) == pytest.approx(0.5)
    assert precision_at_k(SCORES[::-1], LABELS[::-1], 3) == pytest.approx(0.5)
    assert precision_at_k(SCORES, LABELS, 6) == 0.5
    with pytest.raises(ValueError, match="k must be between 1 and the number of scores"):
        precision_at_k(SCORES, LABELS, 7)


def test_infinite_scores_sit_at_the_ends() -> None:
    # A failure to acquire substituted as +inf is flagged at every threshold: the ROC starts
    # at its share, not at the origin.
    scores = np.array([np.inf, 0.2, 0.9, 0.1])
    labels = np.array([0, 0, 1, 1])
    points = roc_points(scores, labels)
    assert points["threshold"].iloc[0] == np.inf and points["fpr"].iloc[0] == 0.5
    # 5 of 305 negatives at +inf: FPR >= 5/305 > 1% at every threshold.
    verdict = recall_at_fpr([np.inf] * 5 + [0.0] * 300 + [0.9], [0] * 305 + [1], 0.01)
    assert isinstance(verdict, NotSupported) and "+inf" in verdict.reason
    assert roc_auc([-np.inf, 0.5, 0.2, np.inf], [0, 0, 1, 1]) == 0.75


def test_ranking_errors() -> None:
    with pytest.raises(ValueError, match="NaN at positions \\[1\\]"):
        roc_points([0.1, np.nan], [0, 1])
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        roc_auc([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="both positive"):
        roc_points([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="at least one positive"):
        average_precision([0.1, 0.2], [0, 0])


def test_calibration_error_by_hand() -> None:
    # 10 bins. Bin [0.1, 0.2): two at 0.1, one positive -> |0.1 - 0.5| = 0.4, weight 2/4.
    # Last bin [0.9, 1.0]: 0.9 and 1.0 (1.0 joins the last bin), both positive ->
    # |0.95 - 1| = 0.05, weight 2/4. ECE = 0.2 + 0.025 = 0.225.
    p, y = [0.1, 0.1, 0.9, 1.0], [0, 1, 1, 1]
    assert expected_calibration_error(p, y, bins=10) == pytest.approx(0.225)
    table = reliability_table(p, y, bins=10)
    assert len(table) == 10 and table["count"].tolist() == [0, 2] + [0] * 7 + [2]
    assert table.loc[1, "observed_rate"] == 0.5 and table.loc[9, "mean_predicted"] == 0.95
    assert np.isnan(table.loc[0, "mean_predicted"])  # empty bins stay, with no mean
    assert table.loc[9, "bin_low"] == 0.9 and table.loc[9, "bin_high"] == 1.0
    assert expected_calibration_error([0.0, 1.0], [0, 1], bins=1) == 0.0  # 0.5 vs 0.5
    assert expected_calibration_error([0.0, 1.0], [0, 1], bins=2) == 0.0
    with pytest.raises(ValueError, match="lie in \\[0, 1\\]"):
        expected_calibration_error([0.5, 1.2], [0, 1])
    with pytest.raises(ValueError, match="bins must be a positive whole number"):
        reliability_table([0.5], [1], bins=0)


SPECIES = np.array(["bona_fide"] * 300 + ["print"] * 4 + ["replay"] * 2)


def pad_case() -> tuple[np.ndarray, np.ndarray]:
    """300 bona fide: 297 at 0.1 and 0.5, 0.6, 0.7; print attacks 0.9, 0.55, 0.3, 0.2; replay
    attacks 0.95, 0.4."""
    scores = np.array([0.1] * 297 + [0.5, 0.6, 0.7] + [0.9, 0.55, 0.3, 0.2] + [0.95, 0.4])
    labels = np.array([0] * 300 + [1] * 6)
    return scores, labels


def test_apcer_at_bpcer_by_hand() -> None:
    # BPCER(0.1) = 1; BPCER(0.2) = 3/300 = 1% (must compare equal to the target): the smallest
    # threshold meeting 1% is 0.2. Missed attacks (score < 0.2): none -> worst APCER 0.
    # A 1/300 target needs 900 bona fide presentations: not supported with 300.
    scores, labels = pad_case()
    assert apcer_at_bpcer(scores, labels, SPECIES, 0.01) == 0.0
    assert isinstance(apcer_at_bpcer(scores, labels, SPECIES, 1 / 300), NotSupported)
    # BPCER 2% (needs 150): smallest t with BPCER <= 6/300 is still 0.2 -> 0.
    assert apcer_at_bpcer(scores, labels, SPECIES, 0.02) == 0.0
    # Move two bona fide from 0.1 to 0.35: BPCER(0.2) = 5/300 > 1%, BPCER(0.4) = 3/300.
    # At t = 0.4 print misses 0.3, 0.2 -> 2/4, replay misses none (0.4 >= 0.4) -> worst 1/2.
    moved = scores.copy()
    moved[:2] = 0.35
    assert apcer_at_bpcer(moved, labels, SPECIES, 0.01) == 0.5
    subjects = [f"s{i % 3}" for i in range(306)]
    verdict = apcer_at_bpcer(moved, labels, SPECIES, 0.01, subjects=subjects)
    assert isinstance(verdict, NotSupported) and "subjects" in verdict.reason


def test_generalised_scores_failure_to_acquire() -> None:
    # A bona fide that fails to acquire becomes +inf: flagged at every threshold (BPCER rises
    # to 4/300 at t = 0.2 > 1%, so t moves to 0.55 where BPCER = 2/300 + 1/300 (+inf) = 1%).
    # At 0.55 print misses 0.3, 0.2 -> 2/4; replay misses 0.4 -> 1/2: worst 1/2.
    scores, labels = pad_case()
    scores[0] = np.nan
    acquired = np.ones(306, dtype=bool)
    acquired[0] = False
    s = generalised_scores(scores, acquired)
    assert s[0] == np.inf
    assert apcer_at_bpcer(s, labels, SPECIES, 0.01) == 0.5
    # Without labels, every failure is +inf: an attack that fails counts as caught.
    # Two bona fide at 0.35 put t at 0.4 (as in the test above, worst APCER 1/2 from print
    # 0.3 and 0.2); the print at 0.3 fails -> +inf: print misses only 0.2 -> 1/4.
    scores, _ = pad_case()
    scores[:2] = 0.35
    acquired = np.ones(306, dtype=bool)
    acquired[302] = False  # the print at 0.3
    s = generalised_scores(scores, acquired)
    assert apcer_at_bpcer(s, labels, SPECIES, 0.01) == 0.25
    with pytest.raises(ValueError, match="acquired samples have non-finite scores"):
        generalised_scores([np.nan, 0.2], [True, True])
    # With labels, the failed attack counts against the system (-inf: a missed attack), so it
    # can never lower APCER: print misses 0.2 and the failed 0.3 -> 2/4.
    s = generalised_scores(scores, acquired, labels)
    assert s[302] == -np.inf
    assert apcer_at_bpcer(s, labels, SPECIES, 0.01) == 0.5
    with pytest.raises(ValueError, match="NaN"):
        apcer_at_bpcer([np.nan, 0.2], [0, 1], ["bona_fide", "print"], 0.5)
    # Failures alone above the BPCER target: no threshold reaches it.
    verdict = apcer_at_bpcer([np.inf] * 10 + [0.1] * 20 + [0.9], [0] * 30 + [1], ["x"] * 31, 0.1)
    assert isinstance(verdict, NotSupported)
