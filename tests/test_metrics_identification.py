"""1:N open-set search metrics: hand-computed FNIR / FPIR / CMC, failures, resolution, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from idv.metrics.identification import (
    cmc,
    fnir,
    fnir_at_fpir,
    fpir,
    identification_report,
    rank_k_rate,
    searches,
    threshold_at_fpir,
)
from idv.metrics.resolution import NotSupported

COLUMNS = [
    "search_id",
    "probe_sample_id",
    "probe_subject_id",
    "mated",
    "rank",
    "candidate_subject_id",
    "score",
    "acquired",
]


def search_table(
    searches_: list[tuple[str, str, bool, list[tuple[str, float]], bool]],
) -> pd.DataFrame:
    """Rows from (search_id, probe subject, mated, [(candidate, score), ...], acquired); an
    unacquired search (or an empty candidate list) is one row with rank, candidate, score NaN."""
    rows = []
    for sid, probe, mated, candidates, acquired in searches_:
        if not candidates or not acquired:
            rows.append((sid, f"{sid}_p", probe, mated, np.nan, None, np.nan, acquired))
        for rank, (candidate, score) in enumerate(candidates if acquired else [], start=1):
            rows.append((sid, f"{sid}_p", probe, mated, rank, candidate, score, acquired))
    return pd.DataFrame(rows, columns=COLUMNS)


# Five mated searches (probe subject A*, enrolled):
#   m1: mate at rank 1, score 0.9         m2: mate at rank 2, score 0.7
#   m3: mate at rank 6, score 0.1         m4: mate not returned
#   m5: failed to acquire: a miss at every rank and threshold
MATED = [
    ("m1", "A1", True, [("A1", 0.9), ("X", 0.5)], True),
    ("m2", "A2", True, [("X", 0.8), ("A2", 0.7)], True),
    (
        "m3",
        "A3",
        True,
        [("X", 0.6), ("Y", 0.4), ("Z", 0.3), ("W", 0.2), ("V", 0.15), ("A3", 0.1)],
        True,
    ),  # noqa: E501
    ("m4", "A4", True, [("X", 0.4), ("Y", 0.3)], True),
    ("m5", "A5", True, [("A5", 0.99)], False),
]
# Four non-mated searches: top scores 0.75, 0.65, 0.2, and one that failed (returns nothing).
NON_MATED = [
    ("n1", "B1", False, [("X", 0.75), ("Y", 0.1)], True),
    ("n2", "B2", False, [("X", 0.65)], True),
    ("n3", "B3", False, [("Y", 0.2)], True),
    ("n4", "B4", False, [("X", 0.99)], False),
]
SMALL = search_table(MATED + NON_MATED)


def large_table(non_mated_subjects: int = 20) -> pd.DataFrame:
    """The five mated searches and 1000 non-mated ones: top scores 0.95, 0.85, 0.75, seven at
    0.65 and 990 at 0.2."""
    tops = [0.95, 0.85, 0.75] + [0.65] * 7 + [0.2] * 990
    non_mated = [
        (f"n{i}", f"B{i % non_mated_subjects}", False, [("G", top)], True)
        for i, top in enumerate(tops)
    ]
    return search_table(MATED + non_mated)


def test_fnir_fpir_by_hand() -> None:
    # FPIR(0.7): of 4 non-mated searches only n1 (0.75) returns a candidate >= 0.7 -> 1/4;
    # the failed n4 returns nothing but stays in the denominator.
    assert fpir(SMALL, 0.7) == 0.25
    assert fpir(SMALL, -np.inf) == 0.75  # the failed search is never a false positive
    # FNIR(any rank, T = 0.7): mates found at >= 0.7 in m1 (0.9) and m2 (0.7) -> 3/5 missed.
    assert fnir(SMALL, 0.7) == pytest.approx(0.6)
    # FNIR(R = 1, T = 0.7): only m1 -> 4/5.
    assert fnir(SMALL, 0.7, rank=1) == pytest.approx(0.8)


def test_cmc_and_rank_k_by_hand() -> None:
    # Mate ranks: m1 1, m2 2, m3 6, m4 absent, m5 failed -> over 5 mated searches.
    assert rank_k_rate(SMALL, 1) == pytest.approx(1 / 5)
    assert rank_k_rate(SMALL, 5) == pytest.approx(2 / 5)
    curve = cmc(SMALL, max_rank=6)
    np.testing.assert_allclose(curve["identification_rate"], [0.2, 0.4, 0.4, 0.4, 0.4, 0.6])
    assert curve["rank"].tolist() == [1, 2, 3, 4, 5, 6]


def test_threshold_at_fpir_by_hand() -> None:
    # Candidates: the mates' scores 0.1 (m3), 0.7 (m2), 0.9 (m1) and the non-mated top scores
    # 0.2, 0.65, 0.75 (n4 failed: -inf, never a candidate), plus +inf. FPIR at each:
    # 0.1 -> 3/4, 0.2 -> 3/4, 0.65 -> 2/4, 0.7 -> 1/4, 0.75 -> 1/4, 0.9 -> 0, +inf -> 0.
    # The smallest threshold meeting FPIR <= 1/4 is m2's mate score 0.7 (not 0.75: the top of
    # the admissible range), with FPIR <= 0.6 it is 0.65, with FPIR 0 it is 0.9 (not +inf).
    assert threshold_at_fpir(SMALL, 0.25) == 0.7
    assert threshold_at_fpir(SMALL, 0.6) == 0.65
    assert threshold_at_fpir(SMALL, 0.0) == 0.9
    # Rank 1: only m1's mate (0.9) is a rank-1 candidate, so 1/4 is met first at 0.75.
    assert threshold_at_fpir(SMALL, 0.25, rank=1) == 0.75
    assert fpir(SMALL, threshold_at_fpir(SMALL, 0.25)) <= 0.25


def test_fnir_at_fpir_minimal_case() -> None:
    # Six non-mated searches with top scores 0.1 .. 0.6 and one mated search whose mate is at
    # rank 1 with score 0.35. At FPIR 0.5 the threshold is 0.35 (FPIR 3/6) and the mate is
    # found: FNIR 0 (choosing among the non-mated top scores alone gave 0.4 and FNIR 1).
    non_mated = [
        (f"n{i}", f"B{i}", False, [("X", top)], True)
        for i, top in enumerate((0.1, 0.2, 0.3, 0.4, 0.5, 0.6))
    ]
    table = search_table([("m", "A", True, [("A", 0.35)], True), *non_mated])
    assert threshold_at_fpir(table, 0.5, rank=1) == 0.35
    assert fnir_at_fpir(table, 0.5, rank=1, min_subjects=1) == 0.0


def test_fnir_at_fpir_with_tied_scores() -> None:
    # A vendor on a coarse scale: every non-mated top score ties at 50 and every mate scores 80.
    # The threshold is 80 (FPIR 0, every mate found), never +inf (FNIR 1).
    non_mated = [(f"n{i}", f"B{i}", False, [("X", 50.0)], True) for i in range(30)]
    mated = [(f"m{i}", f"A{i}", True, [(f"A{i}", 80.0), ("X", 50.0)], True) for i in range(5)]
    table = search_table(mated + non_mated)
    assert threshold_at_fpir(table, 0.1) == 80.0
    assert fnir_at_fpir(table, 0.1, min_subjects=1) == 0.0


def test_fnir_at_fpir_and_report_by_hand() -> None:
    table = large_table()
    # FPIR is 3/1000 = 0.003 (exact, must meet the 0.003 target) for any T in (0.65, 0.75],
    # and 10/1000 at 0.65. At FPIR 0.003 the smallest candidate is m2's mate score 0.7: m1
    # (0.9) and m2 (0.7) clear it, FNIR = 3/5 (T = 0.75, the top of the range, gave 4/5).
    # T = 0.65 at FPIR 0.01 -> m1 (0.9) and m2 (0.7): FNIR = 3/5.
    assert fnir_at_fpir(table, 0.003) == pytest.approx(0.6)
    assert fnir_at_fpir(table, 0.01) == pytest.approx(0.6)
    # 0.001 needs 3000 non-mated searches; there are 1000.
    assert isinstance(fnir_at_fpir(table, 0.001), NotSupported)
    report = identification_report(table)
    assert report["fnir_at_fpir_3e-03"] == pytest.approx(0.6)
    assert report["fnir_at_fpir_1e-02"] == pytest.approx(0.6)
    assert isinstance(report["fnir_at_fpir_1e-03"], NotSupported)
    assert report["rank_1_rate"] == pytest.approx(0.2)
    assert report["rank_5_rate"] == pytest.approx(0.4)
    assert report["mated_searches"] == 5 and report["non_mated_searches"] == 1000
    assert report["fta_rate"] == pytest.approx(1 / 1005)  # m5
    # Rank-limited FNIR: at rank 1 and T = 0.65, only m1 -> 4/5.
    assert fnir_at_fpir(table, 0.01, rank=1) == pytest.approx(0.8)


def test_resolution_counts_non_mated_subjects() -> None:
    verdict = fnir_at_fpir(large_table(non_mated_subjects=5), 0.003)
    assert isinstance(verdict, NotSupported) and "subjects" in verdict.reason
    assert isinstance(fnir_at_fpir(large_table(5), 0.003, min_subjects=5), float)


def test_empty_candidate_list_is_a_miss_and_not_a_failure() -> None:
    table = search_table(MATED[:1] + [("m9", "A9", True, [], True)] + NON_MATED[:1])
    per_search = searches(table)
    assert per_search.loc["m9", "acquired"] and per_search.loc["m9", "mate_rank"] == np.inf
    assert rank_k_rate(table, 1) == 0.5
    assert identification_report(table, fpir_targets=())["fta_rate"] == 0.0


def test_table_permutation_and_integer_flags() -> None:
    shuffled = SMALL.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert fnir(shuffled, 0.7) == fnir(SMALL, 0.7)
    assert cmc(shuffled, 6).equals(cmc(SMALL, 6))
    as_ints = SMALL.assign(mated=SMALL["mated"].astype(int), acquired=SMALL["acquired"].astype(int))
    assert fpir(as_ints, 0.7) == 0.25


def test_clear_errors() -> None:
    with pytest.raises(ValueError, match="lacks column\\(s\\) \\['rank'\\]"):
        searches(SMALL.drop(columns="rank"))
    both = SMALL.copy()
    both.loc[both["search_id"] == "m1", "mated"] = [True, False]
    with pytest.raises(ValueError, match="mated differs within one search.*search_id 'm1'"):
        searches(both)
    shifted = SMALL.copy()
    shifted.loc[shifted["search_id"] == "m2", "rank"] = [2, 3]
    with pytest.raises(ValueError, match="ranks must run 1, 2, 3.*search_id 'm2'"):
        searches(shifted)
    repeated = SMALL.copy()
    repeated.loc[repeated["search_id"] == "m2", "rank"] = [1, 1]
    with pytest.raises(ValueError, match="duplicate rank \\(search_id 'm2', rank 1"):
        searches(repeated)
    nan_score = SMALL.copy()
    nan_score.loc[(nan_score["search_id"] == "n2"), "score"] = np.nan
    with pytest.raises(
        ValueError, match="score is NaN or infinite in 1 acquired row.*search_id 'n2'"
    ):
        searches(nan_score)
    rising = SMALL.copy()
    rising.loc[rising["search_id"] == "m1", "score"] = [0.1, 0.9]  # a distance, not similarity
    with pytest.raises(ValueError, match="score rises with rank at row 1 \\(search_id 'm1'\\)"):
        searches(rising)
    own = search_table([("n1", "B1", False, [("B1", 0.9)], True), *MATED[:1]])
    with pytest.raises(
        ValueError,
        match="non-mated search returns the probe's own subject at row 0 \\(search_id 'n1'",
    ):
        searches(own)
    with pytest.raises(ValueError, match="no non-mated searches"):
        fpir(search_table(MATED), 0.5)
    with pytest.raises(ValueError, match="no mated searches"):
        rank_k_rate(search_table(NON_MATED), 1)
    unnamed = SMALL.copy()
    unnamed.loc[3, "probe_subject_id"] = None
    with pytest.raises(ValueError, match="'probe_subject_id' is empty at row 3"):
        searches(unnamed)
    with pytest.raises(ValueError, match="'mated' must be one of 0 / 1"):
        searches(SMALL.assign(mated="yes"))
