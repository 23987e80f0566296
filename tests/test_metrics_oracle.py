"""Every operating-point metric against a brute-force oracle over all thresholds.

`metric_oracle` evaluates each rate by direct counting at every threshold that can matter
(each distinct score, +/-inf and the midpoints between neighbouring scores) and picks the
operating point from its definition; the implementation picks among its own candidates. Sets
come in four seeded families (`metric_oracle.FAMILIES`): continuous scores, heavily tied
whole-number scores, tiny sets (1-3 per class) and perfectly separated sets, some with
failures to acquire. Rates that are ratios of counts must agree exactly; the interpolated EER
(rate and threshold) to 1e-12. `scripts/metrics_conformance.py` runs many more seeds.
"""

from __future__ import annotations

import math

import metric_oracle as oracle
import numpy as np
import pandas as pd
import pytest

from idv.metrics.detection import (
    apcer_at_bpcer,
    apcer_per_species,
    bpcer,
    bpcer_at_worst_apcer,
    eer,
    threshold_at_worst_apcer,
)
from idv.metrics.identification import (
    cmc,
    fnir,
    fnir_at_fpir,
    fpir,
    rank_k_rate,
    threshold_at_fpir,
)
from idv.metrics.ranking import recall_at_fpr
from idv.metrics.resolution import NotSupported
from idv.metrics.verification import (
    fnmr_at_fmr,
    fnmr_fmr,
    tar_at_far,
    threshold_at_fmr,
    verification_eer,
)

SEEDS = range(25)
CASES = [
    pytest.param(family, seed, id=f"{family}-{seed}")
    for family in oracle.FAMILIES
    for seed in SEEDS
]
RANKS = (None, 1, 2, 3)
EER_TOLERANCE = 1e-12


def close(a: float, b: float) -> bool:
    """Equal to EER_TOLERANCE; nan matches nan and an infinity matches itself."""
    if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return abs(a - b) <= EER_TOLERANCE


def some_thresholds(rng: np.random.Generator, scores: np.ndarray, count: int = 8) -> list[float]:
    """A sample of the oracle's thresholds (distinct scores and midpoints), one infinity and
    one normal draw."""
    dense = oracle.all_thresholds(scores)[1:-1]
    picked = rng.choice(np.array(dense), size=min(count, len(dense)), replace=False)
    end = -math.inf if rng.random() < 0.5 else math.inf
    return [float(t) for t in picked] + [end, float(rng.normal())]


# --- detection (PAD) ----------------------------------------------------------------------


def detection_case(family: str, seed: int) -> tuple[np.random.Generator, oracle.TwoClassSet]:
    rng = np.random.default_rng(seed)
    return rng, oracle.two_class_set(family, rng, failure_sign="detection")


@pytest.mark.parametrize(("family", "seed"), CASES)
def test_detection_rates_at_a_threshold(family: str, seed: int) -> None:
    rng, d = detection_case(family, seed)
    y = d.positive.astype(int)
    for t in some_thresholds(rng, d.scores):
        assert apcer_per_species(d.scores, y, d.groups, t) == oracle.apcer_per_species(
            d.scores, y, d.groups, t
        )
        assert bpcer(d.scores, y, t) == oracle.bpcer(d.scores, y, t)


@pytest.mark.parametrize(("family", "seed"), CASES)
def test_bpcer_at_worst_apcer(family: str, seed: int) -> None:
    rng, d = detection_case(family, seed)
    y = d.positive.astype(int)
    per_species = [int(((y == 1) & (d.groups == g)).sum()) for g in set(d.groups[y == 1])]
    for target in oracle.draw_targets(rng, per_species, zero=True):
        expected = oracle.bpcer_at_worst_apcer(d.scores, y, d.groups, target)
        assert bpcer_at_worst_apcer(d.scores, y, d.groups, target) == expected
        t = threshold_at_worst_apcer(d.scores, y, d.groups, target)
        assert oracle.worst_apcer(d.scores, y, d.groups, t) <= target
        assert oracle.bpcer(d.scores, y, t) == expected


@pytest.mark.parametrize(("family", "seed"), CASES)
def test_apcer_at_bpcer(family: str, seed: int) -> None:
    rng, d = detection_case(family, seed)
    y = d.positive.astype(int)
    bona = y == 0
    for target in oracle.draw_targets(rng, [int(bona.sum())]):
        for subjects in (None, d.subjects):
            min_subjects = int(rng.choice(oracle.MIN_SUBJECTS_CHOICES))
            n_subjects = None if subjects is None else oracle.distinct_subjects(subjects, bona)
            ok = oracle.resolvable(target, int(bona.sum()), n_subjects, min_subjects)
            expected = oracle.apcer_at_bpcer(d.scores, y, d.groups, target) if ok else None
            got = apcer_at_bpcer(d.scores, y, d.groups, target, subjects, min_subjects)
            if expected is None:
                assert isinstance(got, NotSupported)
            else:
                assert got == expected


@pytest.mark.parametrize(("family", "seed"), CASES)
def test_eer(family: str, seed: int) -> None:
    _, d = detection_case(family, seed)
    rate, threshold = oracle.equal_error_rate(d.scores, d.positive)
    got = eer(d.scores, d.positive.astype(int))
    assert close(got.rate, rate)
    assert close(got.threshold, threshold)


# --- verification (1:1) and ranking -------------------------------------------------------


def verification_case(family: str, seed: int) -> tuple[np.random.Generator, oracle.TwoClassSet]:
    rng = np.random.default_rng(seed)
    return rng, oracle.two_class_set(family, rng, failure_sign="verification")


@pytest.mark.parametrize(("family", "seed"), CASES)
def test_verification_rates_at_a_threshold(family: str, seed: int) -> None:
    rng, v = verification_case(family, seed)
    thresholds = some_thresholds(rng, v.scores)
    got_fnmr, got_fmr = fnmr_fmr(v.scores, v.positive, thresholds)
    assert got_fnmr.tolist() == [oracle.fnmr(v.scores, v.positive, t) for t in thresholds]
    assert got_fmr.tolist() == [oracle.fmr(v.scores, v.positive, t) for t in thresholds]


@pytest.mark.parametrize(("family", "seed"), CASES)
def test_fnmr_and_tar_at_fmr(family: str, seed: int) -> None:
    rng, v = verification_case(family, seed)
    impostor = ~v.positive
    for target in oracle.draw_targets(rng, [int(impostor.sum())], zero=True):
        expected = oracle.fnmr_at_fmr(v.scores, v.positive, target)
        t = threshold_at_fmr(v.scores, v.positive, target)  # no resolution rule: any set
        assert oracle.fmr(v.scores, v.positive, t) <= target
        assert oracle.fnmr(v.scores, v.positive, t) == expected
        if target == 0:
            continue  # a target rate must lie in (0, 1] for the resolved figures
        for pairs in (None, v.pairs):
            min_subjects = int(rng.choice(oracle.MIN_SUBJECTS_CHOICES))
            n_subjects = None if pairs is None else oracle.distinct_subjects(pairs, impostor)
            ok = oracle.resolvable(target, int(impostor.sum()), n_subjects, min_subjects)
            got = fnmr_at_fmr(v.scores, v.positive, target, pairs, min_subjects)
            got_tar = tar_at_far(v.scores, v.positive, target, pairs, min_subjects)
            if not ok:
                assert isinstance(got, NotSupported)
                assert isinstance(got_tar, NotSupported)
            else:
                assert got == expected
                assert got_tar == oracle.tar_at_far(v.scores, v.positive, target)


@pytest.mark.parametrize(("family", "seed"), CASES)
def test_verification_eer(family: str, seed: int) -> None:
    _, v = verification_case(family, seed)
    if not np.isfinite(v.scores).any():
        pytest.skip("every comparison failed: the EER is undefined")
    rate, threshold = oracle.verification_eer(v.scores, v.positive)
    got = verification_eer(v.scores, v.positive)
    assert close(got.rate, rate)
    assert close(got.threshold, threshold)


@pytest.mark.parametrize(("family", "seed"), CASES)
def test_recall_at_fpr(family: str, seed: int) -> None:
    rng, d = detection_case(family, seed)  # generalised PAD scores: +inf negatives included
    negative = ~d.positive
    for target in oracle.draw_targets(rng, [int(negative.sum())]):
        min_subjects = int(rng.choice(oracle.MIN_SUBJECTS_CHOICES))
        n_subjects = oracle.distinct_subjects(d.subjects, negative)
        ok = oracle.resolvable(target, int(negative.sum()), n_subjects, min_subjects)
        expected = oracle.recall_at_fpr(d.scores, d.positive, target) if ok else None
        got = recall_at_fpr(d.scores, d.positive, target, d.subjects, min_subjects)
        if expected is None:
            assert isinstance(got, NotSupported)
        else:
            assert got == expected


# --- identification (1:N) -----------------------------------------------------------------


def identification_case(
    family: str, seed: int
) -> tuple[np.random.Generator, pd.DataFrame, oracle.Searches]:
    rng = np.random.default_rng(seed)
    table = oracle.search_table(family, rng)
    return rng, table, oracle.Searches.read(table)


@pytest.mark.parametrize(("family", "seed"), CASES)
def test_identification_rates_at_a_threshold(family: str, seed: int) -> None:
    rng, table, searched = identification_case(family, seed)
    for t in some_thresholds(rng, searched.row_score, count=1):
        assert fpir(table, t) == searched.fpir(t)
        rank = RANKS[int(rng.integers(0, len(RANKS)))]
        assert fnir(table, t, rank) == searched.fnir(t, rank)
    k = int(rng.integers(1, 6))
    assert rank_k_rate(table, k) == searched.identification_rate(k)
    curve = cmc(table, max_rank=5)["identification_rate"].tolist()
    assert curve == [searched.identification_rate(k) for k in range(1, 6)]


@pytest.mark.parametrize(("family", "seed"), CASES)
def test_fnir_at_fpir(family: str, seed: int) -> None:
    rng, table, searched = identification_case(family, seed)
    n_non_mated, n_subjects = searched.non_mated_trials()
    for target in oracle.draw_targets(rng, [n_non_mated], count=2):
        rank = RANKS[int(rng.integers(0, len(RANKS)))]
        min_subjects = int(rng.choice(oracle.MIN_SUBJECTS_CHOICES))
        ok = oracle.resolvable(target, n_non_mated, n_subjects, min_subjects)
        expected = searched.fnir_at_fpir(target, rank) if ok else None
        got = fnir_at_fpir(table, target, rank, min_subjects)
        if expected is None:
            assert isinstance(got, NotSupported)
        else:
            assert got == expected


@pytest.mark.parametrize(("family", "seed"), CASES)
def test_threshold_at_fpir(family: str, seed: int) -> None:
    rng, table, searched = identification_case(family, seed)
    n_non_mated, _ = searched.non_mated_trials()
    for target in oracle.draw_targets(rng, [n_non_mated], count=2, zero=True):
        rank = RANKS[int(rng.integers(0, len(RANKS)))]
        t = threshold_at_fpir(table, target, rank)
        assert searched.fpir(t) <= target
        assert searched.fnir(t, rank) == searched.fnir_at_fpir(target, rank)
