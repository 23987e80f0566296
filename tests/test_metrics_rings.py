"""Ring-level metrics (ring recall, rings recovered from shared attributes, cluster quality) on
hand-built tables, and the average-precision / recall-at-FPR bootstrap statistics against the
point metrics of `idv.metrics.ranking` and sklearn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from idv.metrics.bootstrap import (
    average_precision_statistic,
    bootstrap_curve,
    curve_replicates,
    paired_bootstrap_difference,
    recall_at_fpr_statistic,
    resample_counts,
)
from idv.metrics.ranking import average_precision, recall_at_fpr
from idv.metrics.resolution import NotSupported
from idv.metrics.rings import cluster_quality, recover_rings, ring_recall, ring_report

# ------------------------------------------------------------------------------- hand example

# Ring A: a1..a5 (a5 never flagged); ring B: b1..b3; ring C: c1..c3 (only c1 flagged, shares
# nothing); l1..l3 legitimate (l3 never flagged).
ACCOUNTS = ["a1", "a2", "a3", "a4", "a5", "b1", "b2", "b3", "c1", "c2", "c3", "l1", "l2", "l3"]
RINGS = ["A"] * 5 + ["B"] * 3 + ["C"] * 3 + [None] * 3
FLAGGED = {"a1", "a2", "a3", "a4", "b1", "b2", "b3", "c1", "l1", "l2"}


def links_table(bridge: bool = False) -> pd.DataFrame:
    """Ring A shares a device and an IP block, ring B a device and a document; l1 shares a face
    only with the unflagged l3, a1 an IP only with l3, l2 holds a device of its own. With
    `bridge`, a4 and b1 also share one document (a weak tie between two dense rings)."""
    rows = [(a, "device", "DA") for a in ["a1", "a2", "a3", "a4", "a5"]]
    rows += [(a, "ip_block", "IA") for a in ["a1", "a2", "a3", "a4"]]
    rows += [(b, "device", "DB") for b in ["b1", "b2", "b3"]]
    rows += [(b, "document", "XB") for b in ["b1", "b2", "b3"]]
    rows += [("l1", "face", "F1"), ("l3", "face", "F1"), ("a1", "ip_block", "I9")]
    rows += [("l3", "ip_block", "I9"), ("l2", "device", "D2"), ("a1", "device", "DA")]
    if bridge:
        rows += [("a4", "document", "BR"), ("b1", "document", "BR")]
    return pd.DataFrame(rows, columns=["account_id", "node_type", "node_key"])


def flagged_mask() -> np.ndarray:
    return np.array([a in FLAGGED for a in ACCOUNTS])


def score_table() -> pd.DataFrame:
    flagged = flagged_mask()
    return pd.DataFrame(
        {
            "sample_id": ACCOUNTS,
            "score": np.where(flagged, 0.9, 0.1),
            "label": [int(r is not None) for r in RINGS],
            "subject_id": ACCOUNTS,
            "ring_id": RINGS,
        }
    )


# -------------------------------------------------------------------------------- ring recall


def test_ring_recall_counts_rings_with_enough_flagged_members() -> None:
    # R1: 4 members, 2 flagged; R2: 3 members, 1 flagged; R3: 1 member, flagged;
    # R4: 2 members, none flagged; R5: 2 members, both flagged; legitimate as None and NaN.
    rings = ["R1"] * 4 + ["R2"] * 3 + ["R3"] + ["R4"] * 2 + ["R5"] * 2 + [None, np.nan]
    flagged = np.array([1, 1, 0, 0] + [1, 0, 0] + [1] + [0, 0] + [1, 1] + [1, 1], dtype=bool)
    assert ring_recall(rings, flagged, min_members=1) == pytest.approx(4 / 5)
    assert ring_recall(rings, flagged, min_members=2) == pytest.approx(3 / 5)
    # Only rings smaller than 3 that are flagged whole (R3, R5) are recovered at 3.
    assert ring_recall(rings, flagged, min_members=3) == pytest.approx(2 / 5)
    assert ring_recall(rings, flagged, min_members=10) == pytest.approx(2 / 5)


def test_ring_recall_ignores_flagged_legitimate_accounts() -> None:
    rings = ["R1", "R1", None, None, None]
    assert ring_recall(rings, np.array([0, 0, 1, 1, 1], bool), min_members=1) == 0.0
    assert ring_recall(rings, np.array([1, 1, 0, 0, 0], bool), min_members=2) == 1.0


def test_ring_recall_errors() -> None:
    with pytest.raises(ValueError, match="no ring"):
        ring_recall([None, np.nan], np.array([True, False]), min_members=1)
    with pytest.raises(ValueError, match="min_members"):
        ring_recall(["R1"], np.array([True]), min_members=0)
    with pytest.raises(ValueError, match="flagged"):
        ring_recall(["R1", "R1"], np.array([True]), min_members=1)
    with pytest.raises(ValueError, match="flagged"):
        ring_recall(["R1"], np.array([1]), min_members=1)


# ------------------------------------------------------------------------------ recover rings


@pytest.mark.parametrize("method", ["components", "louvain"])
def test_recover_rings_finds_the_two_rings_and_singletons(method: str) -> None:
    got = recover_rings(ACCOUNTS, flagged_mask(), links_table(), method=method, seed=0)
    expected = {"a1": "c0", "a2": "c0", "a3": "c0", "a4": "c0", "b1": "c1", "b2": "c1"}
    expected |= {"b3": "c1", "c1": "c2", "l1": "c3", "l2": "c4"}
    assert got.to_dict() == expected
    # Indexed by the flagged accounts, in input order.
    assert got.index.tolist() == [a for a in ACCOUNTS if a in FLAGGED]


def test_attributes_held_by_fewer_than_min_shared_flagged_accounts_never_join() -> None:
    # l1 and a1 share F1 / I9 with the unflagged l3 only: l1 stays alone, a1 stays in ring A.
    got = recover_rings(ACCOUNTS, flagged_mask(), links_table())
    assert (got == got["l1"]).sum() == 1
    # Every attribute has at most 4 flagged holders: at min_shared=5 nothing joins.
    alone = recover_rings(ACCOUNTS, flagged_mask(), links_table(), min_shared=5)
    assert alone.nunique() == len(FLAGGED)
    assert alone.tolist() == [f"c{i}" for i in range(len(FLAGGED))]  # sorted by account id
    # At min_shared=4 only ring A's IP block (4 flagged holders) and device still join.
    four = recover_rings(ACCOUNTS, flagged_mask(), links_table(), min_shared=4)
    assert four.value_counts().max() == 4 and four.nunique() == len(FLAGGED) - 3


def test_components_merge_a_weak_bridge_that_louvain_splits() -> None:
    links = links_table(bridge=True)
    comp = recover_rings(ACCOUNTS, flagged_mask(), links, method="components")
    assert comp[["a1", "a4", "b1", "b3"]].nunique() == 1
    louv = recover_rings(ACCOUNTS, flagged_mask(), links, method="louvain", seed=0)
    assert louv[["a1", "a2", "a3", "a4"]].nunique() == 1
    assert louv[["b1", "b2", "b3"]].nunique() == 1
    assert louv["a1"] != louv["b1"]
    again = recover_rings(ACCOUNTS, flagged_mask(), links, method="louvain", seed=0)
    pd.testing.assert_series_equal(louv, again)


def test_recover_rings_with_nothing_flagged_and_with_integer_ids() -> None:
    empty = recover_rings(ACCOUNTS, np.zeros(len(ACCOUNTS), bool), links_table())
    assert empty.empty
    links = pd.DataFrame(
        {"account_id": [10, 2, 10, 2], "node_type": ["device"] * 4, "node_key": [1, 1, 7, 7]}
    )
    got = recover_rings([10, 5, 2], np.ones(3, bool), links)
    assert got.to_dict() == {10: "c0", 5: "c1", 2: "c0"}  # c0 holds the smallest id, 2


def test_recover_rings_errors() -> None:
    with pytest.raises(ValueError, match="components.*louvain"):
        recover_rings(ACCOUNTS, flagged_mask(), links_table(), method="leiden")
    with pytest.raises(ValueError, match="unique"):
        recover_rings(["a1", "a1"], np.ones(2, bool), links_table())
    with pytest.raises(ValueError, match="node_key"):
        recover_rings(ACCOUNTS, flagged_mask(), links_table().drop(columns="node_key"))
    with pytest.raises(ValueError, match="min_shared"):
        recover_rings(ACCOUNTS, flagged_mask(), links_table(), min_shared=0)


# ---------------------------------------------------------------------------- cluster quality


def test_cluster_quality_perfect_recovery() -> None:
    got = cluster_quality(["A", "A", "B", "B", None], ["c0", "c0", "c1", "c1", "c2"])
    assert got == {"purity": 1.0, "ari": 1.0, "clusters": 2, "flagged": 5}


def test_cluster_quality_merged_rings() -> None:
    got = cluster_quality(["A", "A", "B", "B", None], ["c0", "c0", "c0", "c0", "c1"])
    assert got["purity"] == pytest.approx(3 / 5)
    # Pair counting: sum C(n_ij, 2) = 2, rows 6, columns 2, C(5, 2) = 10 -> (2 - 1.2) / 2.8.
    assert got["ari"] == pytest.approx(2 / 7)
    assert got["clusters"] == 1 and got["flagged"] == 5


def test_legitimate_accounts_are_singleton_classes() -> None:
    # Two legitimate accounts in one cluster are a merge, not agreement.
    got = cluster_quality(["A", "A", None, np.nan], ["c0", "c0", "c1", "c1"])
    assert got["purity"] == pytest.approx(3 / 4)
    assert got["ari"] < 1.0
    split = cluster_quality(["A", "A", None, None], ["c0", "c1", "c2", "c3"])
    assert split["purity"] == 1.0 and split["ari"] < 1.0 and split["clusters"] == 0


def test_cluster_quality_empty_and_errors() -> None:
    got = cluster_quality([], [])
    assert np.isnan(got["purity"]) and np.isnan(got["ari"]) and got["flagged"] == 0
    with pytest.raises(ValueError, match="one length"):
        cluster_quality(["A", "A"], ["c0"])


# -------------------------------------------------------------------------------- ring report


def test_ring_report_end_to_end() -> None:
    got = ring_report(score_table(), links_table(), 0.5, min_members=2, method="components", seed=0)
    # Rings A (4 of 5 flagged) and B (3 of 3) recovered, C (1 of 3) not.
    assert got["ring_recall"] == pytest.approx(2 / 3)
    assert got["purity"] == 1.0 and got["ari"] == 1.0
    assert got["clusters"] == 2 and got["flagged"] == len(FLAGGED)
    merged = ring_report(
        score_table(), links_table(bridge=True), 0.5, min_members=2, method="components", seed=0
    )
    assert merged["purity"] == pytest.approx((4 + 1 + 1 + 1) / 10)
    assert merged["clusters"] == 1 and merged["ari"] < 1.0
    split = ring_report(
        score_table(), links_table(bridge=True), 0.5, min_members=2, method="louvain", seed=0
    )
    assert split["purity"] == 1.0 and split["clusters"] == 2
    none = ring_report(score_table(), links_table(), 1.0, min_members=2, method="louvain", seed=0)
    assert none["ring_recall"] == 0.0 and none["flagged"] == 0


def test_ring_report_errors() -> None:
    bad = score_table()
    bad.loc[0, "label"] = 0
    with pytest.raises(ValueError, match="ring_id"):
        ring_report(bad, links_table(), 0.5, min_members=2, method="components", seed=0)
    with pytest.raises(ValueError, match="ring_id"):
        ring_report(
            score_table().drop(columns="ring_id"),
            links_table(),
            0.5,
            min_members=2,
            method="components",
            seed=0,
        )
    legit = score_table().assign(ring_id=None, label=0)
    with pytest.raises(ValueError, match="no ring"):
        ring_report(legit, links_table(), 0.5, min_members=2, method="components", seed=0)
    with pytest.raises(ValueError, match="louvain"):
        ring_report(score_table(), links_table(), 0.5, min_members=2, method="x", seed=0)


# ----------------------------------------------------------------- AP / recall-at-FPR bootstrap


def ranking_table(seed: int = 0, n_subjects: int = 80, per_subject: int = 5) -> dict:
    """Scores rounded to one decimal (many ties), a subject effect, ~30% positives."""
    rng = np.random.default_rng(seed)
    subjects = np.repeat(np.arange(n_subjects), per_subject).astype(str)
    labels = (rng.random(n_subjects * per_subject) < 0.3).astype(int)
    effect = np.repeat(rng.normal(0.0, 0.5, n_subjects), per_subject)
    scores = np.round(rng.normal(0.0, 1.0, len(labels)) + effect + 1.2 * labels, 1)
    return {"scores": scores, "labels": labels, "subjects": subjects}


def unit_weight(scores: np.ndarray, labels: np.ndarray, subjects: np.ndarray, statistic) -> float:
    codes, _ = resample_counts(subjects, 1, 0)
    ones = np.ones((1, codes.max() + 1), np.int32)
    return float(curve_replicates(scores, labels, codes, ones, statistic)[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_precision_statistic_at_unit_weights_is_the_point_ap(seed: int) -> None:
    t = ranking_table(seed)
    assert len(np.unique(t["scores"])) < len(t["scores"]) / 2  # ties matter here
    got = unit_weight(t["scores"], t["labels"], t["subjects"], average_precision_statistic)
    assert got == pytest.approx(average_precision(t["scores"], t["labels"]), rel=1e-12)
    assert got == pytest.approx(average_precision_score(t["labels"], t["scores"]), rel=1e-12)
    interval = bootstrap_curve(
        t["scores"], t["labels"], t["subjects"], average_precision_statistic, n_resamples=50
    )
    assert interval.estimate == pytest.approx(got, rel=1e-12)
    assert interval.low <= interval.estimate <= interval.high


def test_average_precision_statistic_with_infinite_scores() -> None:
    t = ranking_table(3)
    scores = t["scores"].copy()
    scores[:6] = np.inf
    scores[6:12] = -np.inf
    got = unit_weight(scores, t["labels"], t["subjects"], average_precision_statistic)
    assert got == pytest.approx(average_precision(scores, t["labels"]), rel=1e-12)


def test_ap_and_recall_replicates_equal_point_metrics_on_the_resampled_rows() -> None:
    t = ranking_table(4)
    codes, counts = resample_counts(t["subjects"], 8, seed=5)
    ap = curve_replicates(t["scores"], t["labels"], codes, counts, average_precision_statistic)
    rec = curve_replicates(t["scores"], t["labels"], codes, counts, recall_at_fpr_statistic(0.1))
    for r in range(counts.shape[0]):
        repeat = counts[r, codes]
        s, y = np.repeat(t["scores"], repeat), np.repeat(t["labels"], repeat)
        assert ap[r] == pytest.approx(average_precision(s, y), rel=1e-12)
        assert rec[r] == recall_at_fpr(s, y, 0.1)


def test_paired_ap_difference_contains_the_point_difference() -> None:
    t = ranking_table(5)
    rng = np.random.default_rng(6)
    candidate = t["scores"] + np.round(rng.normal(0.0, 0.8, len(t["scores"])), 1)
    got = paired_bootstrap_difference(
        t["scores"],
        candidate,
        t["labels"],
        t["subjects"],
        average_precision_statistic,
        n_resamples=200,
        seed=1,
    )
    point = average_precision(candidate, t["labels"]) - average_precision(t["scores"], t["labels"])
    assert got.estimate == pytest.approx(point, rel=1e-12)
    assert got.low <= point <= got.high
    assert got.estimate < 0 and got.share_positive < 0.5  # added noise degrades the ranking


@pytest.mark.parametrize("max_fpr", [0.02, 0.05, 0.1, 0.3, 1.0])
def test_recall_at_fpr_statistic_at_unit_weights_is_the_point_recall(max_fpr: float) -> None:
    t = ranking_table(7, n_subjects=200)
    expected = recall_at_fpr(t["scores"], t["labels"], max_fpr)
    assert not isinstance(expected, NotSupported)
    got = unit_weight(t["scores"], t["labels"], t["subjects"], recall_at_fpr_statistic(max_fpr))
    assert got == expected
    assert recall_at_fpr_statistic(max_fpr).__name__ == f"recall_at_fpr_{max_fpr:g}"


def test_recall_at_fpr_statistic_nan_when_no_threshold_meets_the_target() -> None:
    scores = np.array([np.inf, np.inf, 0.3, 0.1, 0.5, 0.2])
    labels = np.array([0, 1, 0, 1, 1, 0])
    got = unit_weight(scores, labels, np.arange(6).astype(str), recall_at_fpr_statistic(0.2))
    assert np.isnan(got)
    with pytest.raises(ValueError, match="max_fpr"):
        recall_at_fpr_statistic(1.5)
