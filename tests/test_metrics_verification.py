"""1:1 verification metrics: hand-computed cases, failure to acquire, resolution, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from idv.metrics.detection import eer
from idv.metrics.resolution import NotSupported, check_resolution, min_trials
from idv.metrics.verification import (
    fnmr_at_fmr,
    fnmr_fmr,
    generalised_similarities,
    tar_at_far,
    threshold_at_fmr,
    verification_eer,
    verification_report,
)

# 4 genuine, 5 impostor comparisons (similarities). Hand-worked below.
GEN = [0.9, 0.8, 0.6, 0.3]
IMP = [0.1, 0.2, 0.4, 0.5, 0.7]
SCORES = np.array(GEN + IMP)
GENUINE = np.array([True] * 4 + [False] * 5)


def comparisons(
    gen: list[float], imp: list[float], subjects: int = 20, acquired: list[bool] | None = None
) -> pd.DataFrame:
    """A comparison table: genuine pairs within subject i % subjects, impostor pairs between
    subjects i and i + 1 (mod subjects)."""
    rows = []
    for i, score in enumerate(gen):
        s = f"s{i % subjects}"
        rows.append((f"g{i}", f"{s}_a{i}", f"{s}_b{i}", s, s, True, score))
    for i, score in enumerate(imp):
        a, b = f"s{i % subjects}", f"s{(i + 1) % subjects}"
        rows.append((f"i{i}", f"{a}_x{i}", f"{b}_y{i}", a, b, False, score))
    columns = ["comparison_id", "sample_id_a", "sample_id_b", "subject_id_a", "subject_id_b"]
    table = pd.DataFrame(rows, columns=[*columns, "genuine", "score"])
    if acquired is not None:
        table["acquired"] = acquired
    return table


def test_rates_at_thresholds_by_hand() -> None:
    # t = 0.5: genuine below it {0.3} -> FNMR 1/4; impostors at or above it {0.5, 0.7} -> 2/5.
    # t = 0 accepts everything (FNMR 0, FMR 1); t = 1 rejects everything (FNMR 1, FMR 0).
    fnmr, fmr = fnmr_fmr(SCORES, GENUINE, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(fnmr, [0.0, 0.25, 1.0])
    np.testing.assert_allclose(fmr, [1.0, 0.4, 0.0])


def test_threshold_at_fmr_is_the_smallest_meeting_the_target() -> None:
    # FMR at each distinct score: 0.1 -> 5/5, 0.2 -> 4/5, 0.3 -> 3/5, 0.4 -> 3/5, 0.5 -> 2/5,
    # 0.6 -> 1/5, 0.7 -> 1/5, 0.8 -> 0. The first with FMR <= 1/5 is 0.6; with FMR = 0, 0.8.
    assert threshold_at_fmr(SCORES, GENUINE, 0.2) == 0.6
    assert threshold_at_fmr(SCORES, GENUINE, 0.0) == 0.8
    # Impostors above every genuine score: only +inf gets FMR to 0.
    assert threshold_at_fmr([0.1, 0.9], [True, False], 0.0) == np.inf


def test_fnmr_at_fmr_by_hand_with_exact_count_comparison() -> None:
    # 297 impostors at 0.1 and three at 0.5, 0.6, 0.7; genuine 0.9, 0.8, 0.65, 0.55, 0.1.
    # FMR(0.1) = 1 and FMR(0.5) = 3/300 = 0.01 (must compare equal to the 0.01 target), so
    # t = 0.5 and FNMR = share of genuine below 0.5 = {0.1} -> 1/5.
    gen = [0.9, 0.8, 0.65, 0.55, 0.1]
    imp = [0.1] * 297 + [0.5, 0.6, 0.7]
    s, g = np.array(gen + imp), np.array([True] * 5 + [False] * 300)
    assert threshold_at_fmr(s, g, 0.01) == 0.5
    assert fnmr_at_fmr(s, g, 0.01) == pytest.approx(0.2)
    assert tar_at_far(s, g, 0.01) == pytest.approx(0.8)
    # 1e-3 needs 3000 impostor comparisons: 300 cannot resolve it.
    assert isinstance(fnmr_at_fmr(s, g, 1e-3), NotSupported)
    assert isinstance(tar_at_far(s, g, 1e-3), NotSupported)


def test_eer_by_hand_and_threshold_on_similarity_scale() -> None:
    # FNMR / FMR: t = 0.5 -> 1/4 / 2/5 (FMR - FNMR = +0.15); t = 0.6 -> 1/4 / 1/5 (-0.05),
    # the first point with FNMR >= FMR. alpha = 0.15 / 0.2 = 0.75; EER = 1/4 + 0.75 * 0 = 1/4,
    # threshold 0.5 + 0.75 * (0.6 - 0.5) = 0.575.
    point = verification_eer(SCORES, GENUINE)
    assert point.rate == pytest.approx(0.25)
    assert point.threshold == pytest.approx(0.575)
    # Genuine in the detection-positive role: the same as calling detection.eer directly.
    assert point == eer(SCORES, GENUINE.astype(int))


def test_failure_to_acquire_genuine_raises_fnmr() -> None:
    # Base: FNMR(0.5) = 1/4 ({0.3}). The genuine 0.9 fails to acquire -> -inf -> 2/4.
    acquired = np.ones(9, dtype=bool)
    acquired[0] = False
    s = generalised_similarities(SCORES, acquired)
    assert s[0] == -np.inf
    fnmr, fmr = fnmr_fmr(s, GENUINE, [0.5])
    assert fnmr[0] == 0.5 and fmr[0] == 0.4
    # -inf is a non-match at every finite threshold, however low.
    assert fnmr_fmr(s, GENUINE, [-1e300])[0][0] == 0.25


def test_failure_to_acquire_impostor_never_raises_fmr() -> None:
    # The impostor at 0.7 (a false match at t = 0.5) fails to acquire, its score lost (NaN):
    # FMR(0.5) drops from 2/5 to 1/5, and at no threshold is it above the acquired version.
    raw = SCORES.copy()
    raw[8] = np.nan
    acquired = np.ones(9, dtype=bool)
    acquired[8] = False
    s = generalised_similarities(raw, acquired)
    t = np.append(np.unique(SCORES), [np.inf, -5.0])
    _, fmr_fta = fnmr_fmr(s, GENUINE, t)
    _, fmr_base = fnmr_fmr(SCORES, GENUINE, t)
    assert fnmr_fmr(s, GENUINE, [0.5])[1][0] == 0.2
    assert (fmr_fta <= fmr_base).all()


def test_report_keys_fta_and_by_hand_values() -> None:
    gen = [0.9, 0.8, 0.65, 0.55, 0.1]
    imp = [0.1] * 297 + [0.5, 0.6, 0.7]
    table = comparisons(gen, imp, subjects=20, acquired=[True] * 305)
    report = verification_report(table)
    assert report["genuine_comparisons"] == 5 and report["impostor_comparisons"] == 300
    assert report["impostor_subjects"] == 20
    assert report["fta_rate"] == 0.0
    assert report["fnmr_at_fmr_1e-02"] == pytest.approx(0.2)  # as worked above
    assert report["tar_at_far_1e-02"] == pytest.approx(0.8)
    assert isinstance(report["fnmr_at_fmr_1e-03"], NotSupported)
    assert isinstance(report["tar_at_far_1e-04"], NotSupported)
    assert set(report) >= {"eer", "eer_threshold"}
    # The genuine 0.9 fails (score NaN): FNMR at the same threshold 0.5 becomes 2/5;
    # FTA rate = 1 / 305 comparisons.
    table.loc[0, ["score", "acquired"]] = [np.nan, False]
    report = verification_report(table)
    assert report["fnmr_at_fmr_1e-02"] == pytest.approx(0.4)
    assert report["fta_rate"] == pytest.approx(1 / 305)


def test_eer_with_failures_to_acquire_reports_a_finite_threshold() -> None:
    # Genuine -inf, -inf, 0.9; impostor -inf, 0.1. Below every score (the stand-in for -inf):
    # FNMR 0, FMR 1 (gap FMR - FNMR = 1). At 0.1: FNMR 2/3, FMR 1/2 (gap -1/6). The crossing
    # lies in the gap below the lowest finite score: alpha = 1 / (1 + 1/6) = 6/7,
    # EER = 6/7 * 2/3 = 4/7, and the threshold is reported as 0.1, never the stand-in.
    s = np.array([-np.inf, -np.inf, 0.9, -np.inf, 0.1])
    g = np.array([True, True, True, False, False])
    point = verification_eer(s, g)
    assert point.rate == pytest.approx(4 / 7)
    assert point.threshold == 0.1


def test_resolution_rule_of_three_and_subjects() -> None:
    rng = np.random.default_rng(0)
    gen = list(rng.normal(2, 1, 200))
    # 1e-4 needs 3 / 1e-4 = 30000 impostor comparisons.
    assert min_trials(1e-4) == 30000 and min_trials(1e-3) == 3000
    few = comparisons(gen, list(rng.normal(0, 1, 1000)), subjects=20)
    assert isinstance(verification_report(few)["fnmr_at_fmr_1e-04"], NotSupported)
    imp = list(rng.normal(0, 1, 30000))
    from_five = comparisons(gen, imp, subjects=5)
    verdict = verification_report(from_five, fmr_targets=(1e-4,))["fnmr_at_fmr_1e-04"]
    assert isinstance(verdict, NotSupported) and "subjects" in verdict.reason
    # Without subject ids only the rule of three applies: the same arrays are supported.
    s = from_five["score"].to_numpy()
    g = from_five["genuine"].to_numpy()
    assert isinstance(fnmr_at_fmr(s, g, 1e-4), float)
    enough = verification_report(comparisons(gen, imp, subjects=20), fmr_targets=(1e-4,))
    assert isinstance(enough["fnmr_at_fmr_1e-04"], float)
    assert check_resolution(0.01, 300, 10) is None
    assert isinstance(check_resolution(0.01, 299, None), NotSupported)
    assert isinstance(check_resolution(0.01, 300, 9), NotSupported)
    assert check_resolution(0.01, 300, 3, min_subjects=3) is None


def test_clear_errors() -> None:
    with pytest.raises(ValueError, match="NaN or \\+inf"):
        fnmr_fmr([0.1, np.nan], [True, False], [0.5])
    with pytest.raises(ValueError, match="NaN or \\+inf"):
        fnmr_at_fmr([np.inf, 0.1], [True, False], 0.5)
    with pytest.raises(ValueError, match="both genuine and impostor"):
        fnmr_fmr([0.1, 0.2], [True, True], [0.5])
    with pytest.raises(ValueError, match="genuine must be boolean"):
        fnmr_fmr([0.1, 0.2], [1, 2], [0.5])
    with pytest.raises(ValueError, match="target rate"):
        fnmr_at_fmr(SCORES, GENUINE, 0.0)
    table = comparisons(GEN, IMP)
    with pytest.raises(ValueError, match="lacks column\\(s\\) \\['score'\\]"):
        verification_report(table.drop(columns="score"))
    bad = table.copy()
    bad.loc[2, "score"] = np.nan
    with pytest.raises(ValueError, match="comparison_id 'g2'.*acquired=false"):
        verification_report(bad)
    bad = table.copy()
    bad.loc[5, "genuine"] = True
    with pytest.raises(ValueError, match="genuine disagrees.*comparison_id 'i1'"):
        verification_report(bad)
    bad = table.copy()
    bad.loc[1, "comparison_id"] = "g0"
    with pytest.raises(
        ValueError, match="duplicate comparison_id \\(comparison_id 'g0'\\) at row 0 .* row 1"
    ):
        verification_report(bad)
    with pytest.raises(ValueError, match="'acquired' is empty at row 8"):
        verification_report(table.assign(acquired=[True] * 8 + [None]))
    bad = table.copy()
    bad.loc[6, "subject_id_b"] = None
    with pytest.raises(
        ValueError, match="'subject_id_b' is empty at row 6 \\(comparison_id 'i2'\\)"
    ):
        verification_report(bad)
    with pytest.raises(ValueError, match="every comparison failed"):
        verification_eer([-np.inf, -np.inf], [True, False])
