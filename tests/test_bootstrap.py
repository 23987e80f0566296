"""Subject-level bootstrap: point estimates, equivalence with resampled rows, clustering,
coverage, determinism, paired differences and errors. Small tables: the file runs in seconds."""

from __future__ import annotations

import numpy as np
import pytest

from idv.metrics.bootstrap import (
    Interval,
    PairedInterval,
    apcer_at_bpcer_statistic,
    bootstrap_curve,
    bootstrap_rate,
    bpcer_at_apcer_statistic,
    bpcer_at_worst_apcer_statistic,
    curve_replicates,
    eer_statistic,
    fnmr_at_fmr_statistic,
    paired_bootstrap_difference,
    paired_rate_difference,
    rate_replicates,
    resample_counts,
    worst_apcer_at_bpcer_statistic,
)
from idv.metrics.detection import apcer_per_species, bpcer, bpcer_at_worst_apcer, eer

SPECIES_NAMES = np.array(["print", "replay", "mask"])


def detection_table(
    n_subjects: int = 60, per_subject: int = 6, seed: int = 0, decimals: int | None = None
) -> dict[str, np.ndarray]:
    """Per subject half bona fide, half attacks of random species; a subject effect on scores.
    `decimals` rounds the scores, to create ties."""
    rng = np.random.default_rng(seed)
    subjects = np.repeat(np.arange(n_subjects), per_subject).astype(str)
    labels = np.tile(np.arange(per_subject) % 2, n_subjects)
    effect = rng.normal(0.0, 0.7, n_subjects)[np.repeat(np.arange(n_subjects), per_subject)]
    scores = rng.normal(0.0, 1.0, len(labels)) + effect + 1.5 * labels
    if decimals is not None:
        scores = np.round(scores, decimals)
    species = np.where(labels == 1, rng.choice(SPECIES_NAMES, len(labels)), "bona_fide")
    return {"scores": scores, "labels": labels, "subjects": subjects, "species": species}


def apcer_at_bpcer_reference(
    scores: np.ndarray, labels: np.ndarray, max_bpcer: float, species: np.ndarray | None = None
) -> float:
    """Brute force: (worst-species) APCER at the smallest candidate threshold whose BPCER is
    <= the target; NaN when none is."""
    t = np.unique(np.append(scores, np.inf))
    bpcer_t = np.array([(scores[labels == 0] >= x).mean() for x in t])
    if not (bpcer_t <= max_bpcer).any():
        return float("nan")
    x = t[np.argmax(bpcer_t <= max_bpcer)]
    sp = np.zeros(len(scores)) if species is None else species
    return max(float((scores[(labels == 1) & (sp == k)] < x).mean()) for k in set(sp[labels == 1]))


def bpcer_at_apcer_reference(scores: np.ndarray, labels: np.ndarray, max_apcer: float) -> float:
    """Brute force: BPCER at the largest candidate threshold whose APCER is <= the target."""
    t = np.unique(np.append(scores, np.inf))
    apcer_t = np.array([(scores[labels == 1] < x).mean() for x in t])
    x = t[np.nonzero(apcer_t <= max_apcer)[0][-1]]
    return float((scores[labels == 0] >= x).mean())


# ---------------------------------------------------------------------------- point estimates


def test_rate_estimates_equal_point_rates() -> None:
    d = detection_table()
    bona = d["labels"] == 0
    iv = bootstrap_rate(d["scores"][bona] >= 0.8, d["subjects"][bona], n_resamples=200)
    assert isinstance(iv, Interval)
    assert iv.estimate == bpcer(d["scores"], d["labels"], 0.8)
    assert iv.low <= iv.estimate <= iv.high and iv.level == 0.95
    assert (iv.n_resamples, iv.n_dropped) == (200, 0)
    # APCER of one species within the whole set (all subjects resampled, rate on a subset).
    per_species = apcer_per_species(d["scores"], d["labels"], d["species"], 0.8)
    replay = (d["labels"] == 1) & (d["species"] == "replay")
    iv = bootstrap_rate(d["scores"] < 0.8, d["subjects"], where=replay, n_resamples=200)
    assert iv.estimate == per_species["replay"]


def test_curve_estimates_equal_point_statistics() -> None:
    for decimals in (None, 1):  # continuous scores, and heavy ties
        d = detection_table(decimals=decimals)
        s, y, subj, sp = d["scores"], d["labels"], d["subjects"], d["species"]
        one = np.where(y == 1, "attack", "bona_fide")
        iv = bootstrap_curve(s, y, subj, eer_statistic, n_resamples=50)
        assert iv.estimate == eer(s, y).rate
        for target in (0.0, 0.01, 0.1, 0.3, 1.0):
            iv = bootstrap_curve(s, y, subj, bpcer_at_apcer_statistic(target), n_resamples=20)
            assert iv.estimate == bpcer_at_worst_apcer(s, y, one, target)
            stat = bpcer_at_worst_apcer_statistic(target)
            iv = bootstrap_curve(s, y, subj, stat, species=sp, n_resamples=20)
            assert iv.estimate == bpcer_at_worst_apcer(s, y, sp, target)
            iv = bootstrap_curve(s, y, subj, apcer_at_bpcer_statistic(target), n_resamples=20)
            assert iv.estimate == apcer_at_bpcer_reference(s, y, target)
            stat = worst_apcer_at_bpcer_statistic(target)
            iv = bootstrap_curve(s, y, subj, stat, species=sp, n_resamples=20)
            assert iv.estimate == apcer_at_bpcer_reference(s, y, target, sp)


def test_fnmr_at_fmr_on_similarity_scores() -> None:
    # Comparisons: label 1 = genuine (high similarity), 0 = impostor.
    rng = np.random.default_rng(3)
    n = 400
    genuine = rng.random(n) < 0.3
    sims = np.where(genuine, rng.normal(0.7, 0.1, n), rng.normal(0.3, 0.1, n))
    subjects = rng.integers(0, 40, n)
    for target in (0.01, 0.05):
        iv = bootstrap_curve(
            sims, genuine.astype(int), subjects, fnmr_at_fmr_statistic(target), n_resamples=100
        )
        t = np.append(np.unique(sims), np.inf)
        fmr = np.array([(sims[~genuine] >= x).mean() for x in t])
        j = np.argmax(fmr <= target)  # smallest threshold meeting the FMR target
        assert iv.estimate == (sims[genuine] < t[j]).mean()
        assert iv.low <= iv.estimate <= iv.high


def test_failures_to_acquire_as_infinite_scores() -> None:
    """Generalised rates: a failure to acquire is +inf in detection (decided attack) and -inf
    for similarities (a non-match); both stay in the denominators."""
    rng = np.random.default_rng(4)
    d = detection_table(n_subjects=40)
    s, y, subj = d["scores"].copy(), d["labels"], d["subjects"]
    s[rng.choice(len(s), 12, replace=False)] = np.inf
    for target in (0.05, 0.2):
        iv = bootstrap_curve(s, y, subj, bpcer_at_apcer_statistic(target), n_resamples=50)
        assert iv.estimate == bpcer_at_apcer_reference(s, y, target)
        iv = bootstrap_curve(s, y, subj, apcer_at_bpcer_statistic(0.2), n_resamples=50)
        assert iv.estimate == apcer_at_bpcer_reference(s, y, 0.2)
    # +inf bona fide alone above the BPCER target: no threshold meets it, every resample drops.
    with pytest.raises(ValueError, match="undefined in every resample"):
        bootstrap_curve(s, y, subj, apcer_at_bpcer_statistic(0.0), n_resamples=20)
    # Similarities with -inf failures: EER as detection.eer with a finite stand-in below all.
    sims = d["scores"].copy()
    sims[rng.choice(len(sims), 12, replace=False)] = -np.inf
    stand_in = np.where(np.isfinite(sims), sims, sims[np.isfinite(sims)].min() - 10.0)
    iv = bootstrap_curve(sims, y, subj, eer_statistic, n_resamples=50)
    assert iv.estimate == eer(stand_in, y).rate
    iv = bootstrap_curve(sims, y, subj, fnmr_at_fmr_statistic(0.1), n_resamples=50)
    assert iv.estimate == apcer_at_bpcer_reference(sims, y, 0.1)


# ----------------------------------------------- replicates are the statistic on resampled rows


def test_curve_replicates_equal_point_statistics_on_the_resampled_rows() -> None:
    """A replicate with counts c is the point statistic on the table where every row of subject
    j appears c[j] times: checks the weighted curves, the thresholds, ties and absent subjects."""
    rng = np.random.default_rng(7)
    for case in range(12):
        d = detection_table(n_subjects=15, per_subject=4, seed=case, decimals=1 + case % 2)
        s, y, sp = d["scores"], d["labels"], d["species"]
        codes, _ = resample_counts(d["subjects"], 1, 0)
        counts = rng.poisson(1.0, size=(6, 15)).astype(np.int32)
        counts[0] = 1  # the original data
        stats = {
            "eer": eer_statistic,
            "bpcer_apcer": bpcer_at_apcer_statistic(0.2),
            "bpcer_worst": bpcer_at_worst_apcer_statistic(0.2),
            "apcer_bpcer": apcer_at_bpcer_statistic(0.1),
            "worst_apcer_bpcer": worst_apcer_at_bpcer_statistic(0.1),
        }
        reps = {
            name: curve_replicates(s, y, codes, counts, stat, species=sp, chunk=4)
            for name, stat in stats.items()
        }
        for r in range(len(counts)):
            rows = np.repeat(np.arange(len(s)), counts[r, codes])
            sr, yr, spr = s[rows], y[rows], sp[rows]
            if len(np.unique(yr)) < 2:
                assert all(np.isnan(v[r]) for v in reps.values())
                continue
            one = np.where(yr == 1, "attack", "bona_fide")
            assert reps["eer"][r] == eer(sr, yr).rate
            assert reps["bpcer_apcer"][r] == bpcer_at_worst_apcer(sr, yr, one, 0.2)
            assert reps["bpcer_worst"][r] == bpcer_at_worst_apcer(sr, yr, spr, 0.2)
            assert reps["apcer_bpcer"][r] == apcer_at_bpcer_reference(sr, yr, 0.1)
            assert reps["worst_apcer_bpcer"][r] == apcer_at_bpcer_reference(sr, yr, 0.1, spr)


def test_rate_replicates_equal_rates_on_the_resampled_rows() -> None:
    rng = np.random.default_rng(1)
    subjects = rng.integers(0, 12, 80)
    errors = rng.random(80)  # fractional outcomes are allowed
    codes, counts = resample_counts(subjects, 20, 5)
    reps = rate_replicates(errors, codes, counts)
    for r in range(20):
        rows = np.repeat(np.arange(80), counts[r, codes])
        assert reps[r] == pytest.approx(errors[rows].mean(), rel=1e-12)


# ------------------------------------------------------------------------------ resampling


def test_resample_counts_draw_subjects_with_replacement() -> None:
    subjects = np.array(["b", "a", "c", "a", "b", "d", "d", "d"])
    codes, counts = resample_counts(subjects, 500, 0)
    np.testing.assert_array_equal(codes, [1, 0, 2, 0, 1, 3, 3, 3])
    assert counts.shape == (500, 4) and counts.dtype == np.int32
    assert (counts.sum(axis=1) == 4).all() and (counts >= 0).all()
    # Each subject is drawn on average once; the order of the rows does not matter.
    np.testing.assert_allclose(counts.mean(axis=0), 1.0, atol=0.15)
    perm = np.random.default_rng(0).permutation(len(subjects))
    codes_p, counts_p = resample_counts(subjects[perm], 500, 0)
    np.testing.assert_array_equal(codes_p, codes[perm])
    np.testing.assert_array_equal(counts_p, counts)


def test_deterministic_under_seed_and_seeds_differ() -> None:
    d = detection_table()
    args = (d["scores"], d["labels"], d["subjects"], eer_statistic)
    a = bootstrap_curve(*args, n_resamples=100, seed=3)
    assert bootstrap_curve(*args, n_resamples=100, seed=3) == a
    b = bootstrap_curve(*args, n_resamples=100, seed=4)
    assert b.estimate == a.estimate and (b.low, b.high) != (a.low, a.high)
    errors, subjects = d["scores"] > 1.0, d["subjects"]
    r = bootstrap_rate(errors, subjects, n_resamples=100, seed=3)
    assert bootstrap_rate(errors, subjects, n_resamples=100, seed=3) == r
    assert bootstrap_rate(errors, subjects, n_resamples=100, seed=4) != r


def test_chunking_never_changes_the_result() -> None:
    d = detection_table()
    codes, counts = resample_counts(d["subjects"], 37, 2)
    stat = bpcer_at_worst_apcer_statistic(0.1)
    args = (d["scores"], d["labels"], codes, counts)
    ref = curve_replicates(*args, eer_statistic, chunk=37)
    ref_w = curve_replicates(*args, stat, species=d["species"], chunk=37)
    for chunk in (1, 5, None):
        np.testing.assert_array_equal(curve_replicates(*args, eer_statistic, chunk=chunk), ref)
        got = curve_replicates(*args, stat, species=d["species"], chunk=chunk)
        np.testing.assert_array_equal(got, ref_w)


def test_replicate_with_all_counts_one_is_the_point_estimate() -> None:
    d = detection_table(decimals=1)
    codes, counts = resample_counts(d["subjects"], 1, 0)
    ones = np.ones_like(counts)
    rep = curve_replicates(d["scores"], d["labels"], codes, ones, eer_statistic)
    iv = bootstrap_curve(d["scores"], d["labels"], d["subjects"], eer_statistic, n_resamples=10)
    assert rep[0] == iv.estimate == eer(d["scores"], d["labels"]).rate
    errors = d["scores"] > 0.5
    assert rate_replicates(errors, codes, ones)[0] == errors.mean()


# ------------------------------------------------------- subject resampling, not sample resampling


def naive_row_bootstrap_width(errors: np.ndarray, n_resamples: int, seed: int) -> float:
    """The wrong bootstrap, for contrast: rows resampled independently."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(errors), size=(n_resamples, len(errors)))
    low, high = np.quantile(errors[idx].mean(axis=1), [0.025, 0.975])
    return float(high - low)


def test_clustered_outcomes_widen_the_subject_interval() -> None:
    rng = np.random.default_rng(11)
    n_subjects, per_subject = 100, 10
    subjects = np.repeat(np.arange(n_subjects), per_subject)
    # Strong clustering: every sample of a subject shares the subject's outcome.
    clustered = np.repeat(rng.random(n_subjects) < 0.3, per_subject).astype(float)
    iv = bootstrap_rate(clustered, subjects, n_resamples=1000, seed=0)
    naive = naive_row_bootstrap_width(clustered, 1000, 0)
    assert iv.high - iv.low > 2.0 * naive  # about sqrt(per_subject) = 3.2 times wider
    # Independent outcomes: subject and row bootstrap agree.
    independent = (rng.random(n_subjects * per_subject) < 0.3).astype(float)
    iv = bootstrap_rate(independent, subjects, n_resamples=1000, seed=0)
    ratio = (iv.high - iv.low) / naive_row_bootstrap_width(independent, 1000, 0)
    assert 0.8 < ratio < 1.25


def test_coverage_of_a_known_rate() -> None:
    """Subjects with their own error propensity (Beta around the truth) and varying numbers of
    samples: the 95% interval holds the true population rate in most repetitions."""
    rng = np.random.default_rng(2024)
    truth, hits, repetitions = 0.1, 0, 40
    for rep in range(repetitions):
        n_subjects = 150
        per_subject = rng.integers(1, 9, n_subjects)
        propensity = rng.beta(1.0, 9.0, n_subjects)  # mean 0.1
        subjects = np.repeat(np.arange(n_subjects), per_subject)
        errors = rng.random(len(subjects)) < propensity[subjects]
        iv = bootstrap_rate(errors, subjects, n_resamples=400, seed=rep)
        hits += iv.low <= truth <= iv.high
    assert hits >= 0.85 * repetitions


# ------------------------------------------------------------------------------------ paired


def test_paired_difference_with_itself_is_exactly_zero() -> None:
    d = detection_table()
    s, y, subj = d["scores"], d["labels"], d["subjects"]
    for stat in (eer_statistic, bpcer_at_apcer_statistic(0.1)):
        iv = paired_bootstrap_difference(s, s, y, subj, stat, n_resamples=200)
        assert isinstance(iv, PairedInterval)
        assert (iv.estimate, iv.low, iv.high, iv.share_positive) == (0.0, 0.0, 0.0, 0.0)
    errors = s[y == 0] >= 0.8
    iv = paired_rate_difference(errors, errors, subj[y == 0], n_resamples=200)
    assert (iv.estimate, iv.low, iv.high, iv.share_positive) == (0.0, 0.0, 0.0, 0.0)


def test_monotone_rescoring_leaves_eer_unchanged() -> None:
    d = detection_table(decimals=2)  # ties must stay ties
    s, y, subj = d["scores"], d["labels"], d["subjects"]
    rescored = np.exp(s / 3.0) - 5.0
    assert len(np.unique(rescored)) == len(np.unique(s))  # still strictly monotone in floats
    iv = paired_bootstrap_difference(s, rescored, y, subj, eer_statistic, n_resamples=200)
    assert (iv.estimate, iv.low, iv.high) == (0.0, 0.0, 0.0)


def test_degraded_system_shows_a_positive_difference() -> None:
    d = detection_table(n_subjects=150, per_subject=6)
    s, y, subj = d["scores"], d["labels"], d["subjects"]
    noisy = s + np.random.default_rng(5).normal(0.0, 1.5, len(s))
    iv = paired_bootstrap_difference(s, noisy, y, subj, eer_statistic, n_resamples=300)
    assert iv.estimate == eer(noisy, y).rate - eer(s, y).rate
    assert 0.0 < iv.low < iv.estimate < iv.high
    assert iv.share_positive > 0.975
    # The same through fixed-threshold rates: BPCER at a shared threshold.
    bona = y == 0
    iv = paired_rate_difference(s[bona] >= 1.5, noisy[bona] >= 1.5, subj[bona], n_resamples=300)
    assert iv.low > 0.0 and iv.share_positive > 0.975


# ---------------------------------------------------------------------------- dropped resamples


def test_resamples_without_a_denominator_are_dropped_and_counted() -> None:
    subjects = np.repeat(np.arange(20), 3)
    where = subjects == 0  # the rate concerns one subject's rows only
    errors = np.tile([1.0, 0.0, 1.0], 20)
    codes, counts = resample_counts(subjects, 300, 9)
    iv = bootstrap_rate(errors, subjects, where=where, n_resamples=300, seed=9)
    expected_dropped = int((counts[:, 0] == 0).sum())
    assert 0 < iv.n_dropped == expected_dropped and iv.n_resamples == 300 - expected_dropped
    assert iv.estimate == iv.low == iv.high == 2 / 3
    # Curve bootstrap: only subject 0 has attacks, so resamples without it lack a class.
    labels = (subjects == 0).astype(int)
    scores = np.linspace(0.0, 1.0, len(labels))
    iv = bootstrap_curve(scores, labels, subjects, eer_statistic, n_resamples=300, seed=9)
    assert iv.n_dropped == expected_dropped


# ------------------------------------------------------------------------------------ errors


def test_clear_errors() -> None:
    d = detection_table(n_subjects=6, per_subject=4)
    s, y, subj = d["scores"], d["labels"], d["subjects"]
    with pytest.raises(ValueError, match="one length"):
        bootstrap_curve(s[:-1], y, subj, eer_statistic)
    with pytest.raises(ValueError, match="expected"):
        bootstrap_curve(s[:-1], y[:-1], subj, eer_statistic)
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_curve(np.where(y == 1, np.nan, s), y, subj, eer_statistic)
    with pytest.raises(ValueError, match="both classes"):
        bootstrap_curve(s, np.zeros_like(y), subj, eer_statistic)
    with pytest.raises(ValueError, match="0 or 1"):
        bootstrap_curve(s, y * 2, subj, eer_statistic)
    with pytest.raises(ValueError, match="at least 2 distinct subjects"):
        bootstrap_curve(s, y, np.full(len(s), "only"), eer_statistic)
    with pytest.raises(ValueError, match="at least 2 distinct subjects"):
        bootstrap_rate(np.ones(5), np.zeros(5))
    with pytest.raises(ValueError, match="one value per row"):
        bootstrap_rate(np.ones(5), np.arange(6))
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_rate(np.array([0.0, np.nan, 1.0]), np.arange(3))
    with pytest.raises(ValueError, match="selects no rows"):
        bootstrap_rate(np.ones(4), np.arange(4), where=np.zeros(4, bool))
    with pytest.raises(ValueError, match="level"):
        bootstrap_rate(np.ones(4), np.arange(4), level=95)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_rate(np.ones(4), np.arange(4), n_resamples=0)
    with pytest.raises(ValueError, match="max_apcer"):
        bpcer_at_apcer_statistic(5.0)
    with pytest.raises(ValueError, match="max_fmr"):
        fnmr_at_fmr_statistic(-0.1)
    with pytest.raises(ValueError, match="needs species"):
        bootstrap_curve(s, y, subj, bpcer_at_worst_apcer_statistic(0.1), n_resamples=5)
    with pytest.raises(ValueError, match="species must have one value per row"):
        bootstrap_curve(s, y, subj, eer_statistic, species=d["species"][:-1])
    with pytest.raises(ValueError, match="one value per resample"):
        bootstrap_curve(s, y, subj, lambda roc: np.zeros(1), n_resamples=5)
    with pytest.raises(ValueError, match="chunk"):
        bootstrap_curve(s, y, subj, eer_statistic, n_resamples=5, chunk=0)
    codes, counts = resample_counts(subj, 5, 0)
    with pytest.raises(ValueError, match="codes must lie"):
        curve_replicates(s, y, codes + 100, counts, eer_statistic)
    with pytest.raises(ValueError, match="non-negative"):
        curve_replicates(s, y, codes, -counts, eer_statistic)
    with pytest.raises(ValueError, match="one length"):
        paired_bootstrap_difference(s, s[:-1], y, subj, eer_statistic)
