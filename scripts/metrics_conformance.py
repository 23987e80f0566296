"""Conformance of idv.metrics' operating points with the brute-force oracle of the tests.

For each seed and each of the four families of `tests/metric_oracle.py` (continuous, tied,
tiny, separated) it draws one PAD set, one verification set and one search table, evaluates
every operating-point metric with the implementation and with the oracle (all thresholds,
direct counting), and prints per metric and family: the sets, the evaluations (targets or
thresholds tried), how many of them were not supported (the rule of three, on both sides)
and the largest |implementation - oracle|. A NotSupported on one side only, or a threshold
that misses its target, counts as an infinite difference. Exit code 1 when any difference
exceeds 1e-12.

    .venv/bin/python scripts/metrics_conformance.py [--sets 500] [--jobs N]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from idv.metrics.detection import (
    apcer_at_bpcer,
    apcer_per_species,
    bpcer,
    bpcer_at_worst_apcer,
    eer,
    threshold_at_worst_apcer,
)
from idv.metrics.identification import cmc, fnir, fnir_at_fpir, fpir, threshold_at_fpir
from idv.metrics.ranking import recall_at_fpr
from idv.metrics.resolution import NotSupported
from idv.metrics.verification import (
    fnmr_at_fmr,
    fnmr_fmr,
    tar_at_far,
    threshold_at_fmr,
    verification_eer,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import metric_oracle as oracle  # noqa: E402

TOLERANCE = 1e-12
RANKS = (None, 1, 2, 3)
# One evaluation: (metric, |implementation - oracle|, not supported on both sides).
Evaluation = tuple[str, float, bool]


def difference(got: float | NotSupported, expected: float | None) -> tuple[float, bool]:
    """(|got - expected|, both unsupported); None is the oracle's "not supported". Equal
    infinities and two NaNs differ by 0; a NotSupported on one side only by inf."""
    if isinstance(got, NotSupported) or expected is None:
        both = isinstance(got, NotSupported) and expected is None
        return (0.0 if both else math.inf), both
    if math.isnan(got) or math.isnan(expected):
        return (0.0 if math.isnan(got) and math.isnan(expected) else math.inf), False
    if got == expected:
        return 0.0, False
    return abs(got - expected), False


def thresholds(rng: np.random.Generator, scores: np.ndarray, count: int) -> list[float]:
    """`count` of the oracle's thresholds: one in four an infinity, else a score or midpoint."""
    dense = oracle.all_thresholds(scores)
    return [
        float(rng.choice(dense[:: len(dense) - 1]) if rng.random() < 0.25 else rng.choice(dense))
        for _ in range(count)
    ]


def detection(family: str, seed: int) -> list[Evaluation]:
    rng = np.random.default_rng(seed)
    d = oracle.two_class_set(family, rng, failure_sign="detection")
    s, y, sp = d.scores, d.positive.astype(int), d.groups
    out: list[Evaluation] = []
    for t in thresholds(rng, s, 4):
        got, expected = apcer_per_species(s, y, sp, t), oracle.apcer_per_species(s, y, sp, t)
        same_keys = got.keys() == expected.keys()
        gap = max(abs(got[k] - expected[k]) for k in got) if same_keys else math.inf
        out.append(("apcer_per_species@t", gap, False))
        out.append(("bpcer@t", *difference(bpcer(s, y, t), oracle.bpcer(s, y, t))))
    per_species = [int(((y == 1) & (sp == g)).sum()) for g in set(sp[y == 1])]
    for target in oracle.draw_targets(rng, per_species, count=2, zero=True):
        expected = oracle.bpcer_at_worst_apcer(s, y, sp, target)
        got = bpcer_at_worst_apcer(s, y, sp, target)
        out.append(("bpcer_at_worst_apcer", *difference(got, expected)))
        t = threshold_at_worst_apcer(s, y, sp, target)
        gap, _ = difference(oracle.bpcer(s, y, t), expected)
        met = oracle.worst_apcer(s, y, sp, t) <= target
        out.append(("threshold_at_worst_apcer", gap if met else math.inf, False))
    bona = y == 0
    for target in oracle.draw_targets(rng, [int(bona.sum())], count=2):
        for subjects in (None, d.subjects):
            min_subjects = int(rng.choice(oracle.MIN_SUBJECTS_CHOICES))
            n_subjects = None if subjects is None else oracle.distinct_subjects(subjects, bona)
            ok = oracle.resolvable(target, int(bona.sum()), n_subjects, min_subjects)
            expected = oracle.apcer_at_bpcer(s, y, sp, target) if ok else None
            got = apcer_at_bpcer(s, y, sp, target, subjects, min_subjects)
            out.append(("apcer_at_bpcer", *difference(got, expected)))
    rate, threshold = oracle.equal_error_rate(s, d.positive)
    point = eer(s, y)
    out.append(("eer.rate", *difference(point.rate, rate)))
    out.append(("eer.threshold", *difference(point.threshold, threshold)))
    negative = ~d.positive
    for target in oracle.draw_targets(rng, [int(negative.sum())], count=2):
        min_subjects = int(rng.choice(oracle.MIN_SUBJECTS_CHOICES))
        n_subjects = oracle.distinct_subjects(d.subjects, negative)
        ok = oracle.resolvable(target, int(negative.sum()), n_subjects, min_subjects)
        expected = oracle.recall_at_fpr(s, d.positive, target) if ok else None
        got = recall_at_fpr(s, d.positive, target, d.subjects, min_subjects)
        out.append(("recall_at_fpr", *difference(got, expected)))
    return out


def verification(family: str, seed: int) -> list[Evaluation]:
    rng = np.random.default_rng(seed)
    v = oracle.two_class_set(family, rng, failure_sign="verification")
    s, g = v.scores, v.positive
    out: list[Evaluation] = []
    ts = thresholds(rng, s, 4)
    got_fnmr, got_fmr = fnmr_fmr(s, g, ts)
    for t, a, b in zip(ts, got_fnmr, got_fmr, strict=True):
        gap = max(difference(a, oracle.fnmr(s, g, t))[0], difference(b, oracle.fmr(s, g, t))[0])
        out.append(("fnmr_fmr@t", gap, False))
    impostor = ~g
    for target in oracle.draw_targets(rng, [int(impostor.sum())], count=2):
        expected = oracle.fnmr_at_fmr(s, g, target)
        t = threshold_at_fmr(s, g, target)
        gap, _ = difference(oracle.fnmr(s, g, t), expected)
        out.append(("threshold_at_fmr", gap if oracle.fmr(s, g, t) <= target else math.inf, False))
        pairs = v.pairs if rng.random() < 0.5 else None
        min_subjects = int(rng.choice(oracle.MIN_SUBJECTS_CHOICES))
        n_subjects = None if pairs is None else oracle.distinct_subjects(pairs, impostor)
        ok = oracle.resolvable(target, int(impostor.sum()), n_subjects, min_subjects)
        got = fnmr_at_fmr(s, g, target, pairs, min_subjects)
        out.append(("fnmr_at_fmr", *difference(got, expected if ok else None)))
        got = tar_at_far(s, g, target, pairs, min_subjects)
        out.append(
            ("tar_at_far", *difference(got, oracle.tar_at_far(s, g, target) if ok else None))
        )
    if np.isfinite(s).any():
        rate, threshold = oracle.verification_eer(s, g)
        point = verification_eer(s, g)
        out.append(("verification_eer.rate", *difference(point.rate, rate)))
        out.append(("verification_eer.threshold", *difference(point.threshold, threshold)))
    return out


def identification(family: str, seed: int) -> list[Evaluation]:
    rng = np.random.default_rng(seed)
    table = oracle.search_table(family, rng)
    searched = oracle.Searches.read(table)
    out: list[Evaluation] = []
    (t,) = thresholds(rng, searched.row_score, 1)
    rank = RANKS[int(rng.integers(0, len(RANKS)))]
    out.append(("fpir@t", *difference(fpir(table, t), searched.fpir(t))))
    out.append(("fnir@t", *difference(fnir(table, t, rank), searched.fnir(t, rank))))
    curve = cmc(table, max_rank=5)["identification_rate"].tolist()
    gap = max(difference(c, searched.identification_rate(k))[0] for k, c in enumerate(curve, 1))
    out.append(("cmc", gap, False))
    n_non_mated, n_subjects = searched.non_mated_trials()
    (target,) = oracle.draw_targets(rng, [n_non_mated], count=1)
    min_subjects = int(rng.choice(oracle.MIN_SUBJECTS_CHOICES))
    rank = RANKS[int(rng.integers(0, len(RANKS)))]
    ok = oracle.resolvable(target, n_non_mated, n_subjects, min_subjects)
    expected = searched.fnir_at_fpir(target, rank) if ok else None
    out.append(
        ("fnir_at_fpir", *difference(fnir_at_fpir(table, target, rank, min_subjects), expected))
    )
    (target,) = oracle.draw_targets(rng, [n_non_mated], count=1, zero=True)
    rank = RANKS[int(rng.integers(0, len(RANKS)))]
    t = threshold_at_fpir(table, target, rank)
    gap, _ = difference(searched.fnir(t, rank), searched.fnir_at_fpir(target, rank))
    out.append(("threshold_at_fpir", gap if searched.fpir(t) <= target else math.inf, False))
    return out


DOMAINS: dict[str, Callable[[str, int], list[Evaluation]]] = {
    "detection": detection,
    "verification": verification,
    "identification": identification,
}


def run_chunk(domain: str, family: str, seeds: range) -> list[tuple[int, list[Evaluation]]]:
    return [(seed, DOMAINS[domain](family, seed)) for seed in seeds]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=500, help="seeded sets per family")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    chunk = 25
    tasks = [
        (domain, family, range(start, min(start + chunk, args.sets)))
        for domain in DOMAINS
        for family in oracle.FAMILIES
        for start in range(0, args.sets, chunk)
    ]
    # (metric, family) -> [sets, evaluations, not supported, max difference, worst seed]
    table: dict[tuple[str, str], list] = defaultdict(lambda: [set(), 0, 0, 0.0, None])
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [(task[1], pool.submit(run_chunk, *task)) for task in tasks]
        for family, future in futures:
            for seed, evaluations in future.result():
                for metric, gap, unsupported in evaluations:
                    row = table[(metric, family)]
                    row[0].add(seed)
                    row[1] += 1
                    row[2] += unsupported
                    if gap > row[3]:
                        row[3], row[4] = gap, seed
    metrics = list(dict.fromkeys(metric for metric, _ in table))
    header = (
        f"{'metric':<28}{'family':<12}{'sets':>6}{'evals':>7}{'not sup.':>9}  max |impl - oracle|"
    )
    print(header)
    print("-" * len(header))
    over = 0
    for metric in metrics:
        for family in oracle.FAMILIES:
            if (metric, family) not in table:
                continue
            sets, evals, unsupported, worst, seed = table[(metric, family)]
            flag = ""
            if worst > TOLERANCE:
                over += 1
                flag = f"  <-- over {TOLERANCE:g} (seed {seed})"
            counts = f"{len(sets):>6}{evals:>7}{unsupported:>9}"
            print(f"{metric:<28}{family:<12}{counts}  {worst:.3g}{flag}")
    rows = table.values()
    total_evals = sum(r[1] for r in rows)
    worst = max(r[3] for r in rows)
    print("-" * len(header))
    print(
        f"total: {len(metrics)} metrics x {len(oracle.FAMILIES)} families, "
        f"{args.sets} sets per family and domain, {total_evals} evaluations "
        f"({sum(r[2] for r in rows)} not supported on both sides), max difference {worst:.3g}, "
        f"{over} rows over {TOLERANCE:g}"
    )
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
