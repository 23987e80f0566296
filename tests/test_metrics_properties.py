"""Property tests: what must hold for any data, not just the hand-worked cases.

Scores are small whole numbers (many ties on purpose) so that the strictly monotone
transforms below stay strictly monotone in floating point (exp of two distinct floats can
round to one value; of distinct integers in [-20, 20] it cannot).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from idv.metrics.calibration_quality import expected_calibration_error, reliability_table
from idv.metrics.detection import auc
from idv.metrics.identification import identification_report
from idv.metrics.ranking import (
    average_precision,
    precision_at_k,
    recall_at_fpr,
    roc_auc,
    roc_points,
)
from idv.metrics.verification import (
    fnmr_at_fmr,
    fnmr_fmr,
    verification_eer,
    verification_report,
)

CHEAP = settings(max_examples=50, deadline=None)
TRANSFORMS = {
    "affine": lambda x: 3.0 * x + 7.0,
    "exp": np.exp,
    "cube": lambda x: x**3,
}
TARGETS = (0.5, 0.25, 0.1)  # resolvable with the sizes drawn here (6, 12, 30 impostors)

score = st.integers(-20, 20)


@st.composite
def two_classes(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """(scores, labels) with at least one of each class, in a drawn order."""
    pos = draw(st.lists(score, min_size=1, max_size=40))
    neg = draw(st.lists(score, min_size=1, max_size=40))
    s = np.array(pos + neg, dtype=np.float64)
    y = np.array([1] * len(pos) + [0] * len(neg))
    order = np.array(draw(st.permutations(range(len(s)))))
    return s[order], y[order]


@st.composite
def comparison_tables(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(4, 60))
    subjects_a = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    subjects_b = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    scores = draw(st.lists(score, min_size=n, max_size=n))
    acquired = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    table = pd.DataFrame(
        {
            "comparison_id": [f"c{i}" for i in range(n)],
            "sample_id_a": [f"a{i}" for i in range(n)],
            "sample_id_b": [f"b{i}" for i in range(n)],
            "subject_id_a": [f"s{k}" for k in subjects_a],
            "subject_id_b": [f"s{k}" for k in subjects_b],
            "score": np.array(scores, dtype=np.float64),
            "acquired": np.array(acquired) | (np.arange(n) % 3 > 0),  # mostly acquired
        }
    )
    table["genuine"] = table["subject_id_a"] == table["subject_id_b"]
    if table["genuine"].all() or not table["genuine"].any():  # force both kinds
        table.loc[0, "subject_id_b"] = (
            "other" if table["genuine"].all() else table.loc[0, "subject_id_a"]
        )
        table["genuine"] = table["subject_id_a"] == table["subject_id_b"]
        if table["genuine"].all() or not table["genuine"].any():
            table.loc[1, "subject_id_b"] = "other2"
            table["genuine"] = table["subject_id_a"] == table["subject_id_b"]
    return table


@st.composite
def search_tables(draw: st.DrawFn) -> pd.DataFrame:
    """Searches with 1-4 candidates of falling scores; mated ones may hold the mate anywhere
    or not at all; some searches fail to acquire."""
    rows = []
    n = draw(st.integers(2, 40))
    for i in range(n):
        mated = i == 0 or (i > 1 and draw(st.booleans()))  # search 0 mated, 1 non-mated
        acquired = i < 2 or draw(st.integers(0, 4)) > 0
        probe = f"p{draw(st.integers(0, 12))}"
        tops = sorted(draw(st.lists(score, min_size=1, max_size=4)), reverse=True)
        mate_at = draw(st.integers(0, len(tops))) if mated else len(tops)  # len: not returned
        for rank, value in enumerate(tops, start=1):
            candidate = probe if rank - 1 == mate_at else f"g{rank}_{probe}"
            rows.append((f"q{i}", f"q{i}_p", probe, mated, rank, candidate, float(value), acquired))
    columns = ["search_id", "probe_sample_id", "probe_subject_id", "mated", "rank"]
    return pd.DataFrame(rows, columns=[*columns, "candidate_subject_id", "score", "acquired"])


@CHEAP
@given(data=two_classes(), name=st.sampled_from(sorted(TRANSFORMS)))
def test_rank_metrics_invariant_to_monotone_transform(data, name) -> None:
    s, y = data
    t = TRANSFORMS[name](s)
    genuine = y.astype(bool)
    assert abs(verification_eer(s, genuine).rate - verification_eer(t, genuine).rate) <= 1e-12
    assert roc_auc(s, y) == roc_auc(t, y) and auc(s, y) == auc(t, y)
    assert average_precision(s, y) == average_precision(t, y)
    for target in TARGETS:
        assert fnmr_at_fmr(s, genuine, target) == fnmr_at_fmr(t, genuine, target)
        assert recall_at_fpr(s, y, target) == recall_at_fpr(t, y, target)
    for k in (1, len(s) // 2 + 1, len(s)):
        assert precision_at_k(s, y, k) == precision_at_k(t, y, k)


@CHEAP
@given(data=two_classes(), seed=st.integers(0, 2**16))
def test_metrics_invariant_to_row_order(data, seed) -> None:
    s, y = data
    order = np.random.default_rng(seed).permutation(len(s))
    ps, py = s[order], y[order]
    assert verification_eer(s, y) == verification_eer(ps, py)
    assert roc_auc(s, y) == roc_auc(ps, py)
    assert abs(average_precision(s, y) - average_precision(ps, py)) <= 1e-12
    assert roc_points(s, y).equals(roc_points(ps, py))
    for k in (1, len(s) // 2 + 1):
        assert abs(precision_at_k(s, y, k) - precision_at_k(ps, py, k)) <= 1e-12
    p = (s + 20) / 40  # probabilities in [0, 1]
    assert abs(expected_calibration_error(p, y) - expected_calibration_error(p[order], py)) < 1e-12


@CHEAP
@given(data=two_classes())
def test_agrees_with_sklearn(data) -> None:
    s, y = data
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    points = roc_points(s, y)
    np.testing.assert_array_equal(points["threshold"], thresholds)
    np.testing.assert_allclose(points["fpr"], fpr, rtol=0, atol=1e-15)
    np.testing.assert_allclose(points["tpr"], tpr, rtol=0, atol=1e-15)
    assert abs(roc_auc(s, y) - roc_auc_score(y, s)) <= 1e-12
    assert abs(average_precision(s, y) - average_precision_score(y, s)) <= 1e-12


@CHEAP
@given(table=comparison_tables(), seed=st.integers(0, 2**16))
def test_verification_report_symmetric_and_order_free(table, seed) -> None:
    kwargs = {"fmr_targets": TARGETS, "min_subjects": 2}
    report = verification_report(table, **kwargs)
    swapped = table.rename(
        columns={
            "sample_id_a": "sample_id_b",
            "sample_id_b": "sample_id_a",
            "subject_id_a": "subject_id_b",
            "subject_id_b": "subject_id_a",
        }
    )
    assert verification_report(swapped, **kwargs) == report
    shuffled = table.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    assert verification_report(shuffled, **kwargs) == report


@CHEAP
@given(table=comparison_tables(), flip=st.integers(0, 59))
def test_failure_to_acquire_only_ever_rejects(table, flip) -> None:
    # Marking one more comparison unacquired never lowers FNMR and never raises FMR.
    row = flip % len(table)
    before = verification_report(table, fmr_targets=(), min_subjects=1)
    t = np.unique(table["score"].to_numpy()).tolist() + [-100.0, 100.0]
    failed = table.copy()
    failed.loc[row, "acquired"] = False

    def rates(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        s = np.where(frame["acquired"], frame["score"], -np.inf)
        return fnmr_fmr(s, frame["genuine"].to_numpy(), t)

    fnmr_0, fmr_0 = rates(table)
    fnmr_1, fmr_1 = rates(failed)
    assert (fnmr_1 >= fnmr_0).all() and (fmr_1 <= fmr_0).all()
    assert (
        verification_report(failed, fmr_targets=(), min_subjects=1)["fta_rate"]
        >= before["fta_rate"]
    )


@CHEAP
@given(table=search_tables(), seed=st.integers(0, 2**16), name=st.sampled_from(sorted(TRANSFORMS)))
def test_identification_report_order_free_and_monotone_invariant(table, seed, name) -> None:
    # One comparison for both properties (pandas makes each report cost ~15 ms).
    kwargs = {"fpir_targets": TARGETS, "min_subjects": 1}
    report = identification_report(table, **kwargs)
    changed = table.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    changed["score"] = TRANSFORMS[name](changed["score"].to_numpy())
    assert identification_report(changed, **kwargs) == report
    assert 0.0 <= report["rank_1_rate"] <= report["rank_5_rate"] <= 1.0


@CHEAP
@given(
    p=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=60),
    bins=st.integers(1, 20),
    data=st.data(),
)
def test_reliability_table_accounts_for_every_sample(p, bins, data) -> None:
    y = data.draw(st.lists(st.integers(0, 1), min_size=len(p), max_size=len(p)))
    table = reliability_table(p, y, bins)
    assert table["count"].sum() == len(p) and len(table) == bins
    assert 0.0 <= expected_calibration_error(p, y, bins) <= 1.0
