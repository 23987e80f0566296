"""Benchmark of the subject-level bootstrap (idv.metrics.bootstrap) on a synthetic PAD table.

Default: 5,000 subjects x 20 presentations = 100,000 rows (per subject 10 bona fide, 10 attacks of
three species, a subject effect on the scores, EER around 18%), 1,000 subject resamples. Prints
the wall time of each bootstrap, then (second pass, under tracemalloc) its peak traced memory,
and the process's peak RSS.

    .venv/bin/python scripts/bench_bootstrap.py [--subjects 5000] [--per-subject 20]
        [--resamples 1000] [--chunk N] [--no-memory]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import tracemalloc
from collections.abc import Callable

import numpy as np

from idv.metrics.bootstrap import (
    bootstrap_curve,
    bootstrap_rate,
    bpcer_at_apcer_statistic,
    bpcer_at_worst_apcer_statistic,
    eer_statistic,
    paired_bootstrap_difference,
    resample_counts,
)


def synthetic_table(n_subjects: int, per_subject: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    subject_of_row = np.repeat(np.arange(n_subjects), per_subject)
    labels = np.tile(np.arange(per_subject) % 2, n_subjects)
    # Subject effect (correlated samples) plus per-presentation noise; attacks score higher.
    scores = rng.normal(0.0, 1.0, len(labels)) + rng.normal(0.0, 0.5, n_subjects)[subject_of_row]
    scores += 2.0 * labels
    species = np.where(labels == 1, rng.choice(["print", "replay", "mask"], len(labels)), "bona")
    return {
        "scores": scores,
        "labels": labels,
        "subjects": np.array([f"subject{i:05d}" for i in subject_of_row]),
        "species": species,
        "noisy": scores + rng.normal(0.0, 0.3, len(labels)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=5000)
    parser.add_argument("--per-subject", type=int, default=20)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=None, help="resamples per chunk (auto)")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc pass")
    args = parser.parse_args()

    d = synthetic_table(args.subjects, args.per_subject, args.seed)
    s, y, subj, sp = d["scores"], d["labels"], d["subjects"], d["species"]
    bona = y == 0
    n, r = len(s), args.resamples
    common = {"n_resamples": r, "seed": args.seed}
    curve = {**common, "chunk": args.chunk}
    jobs: dict[str, Callable[[], object]] = {
        "resample_counts": lambda: resample_counts(subj, r, args.seed),
        "bootstrap_rate (BPCER at t=1.0)": lambda: bootstrap_rate(
            s[bona] >= 1.0, subj[bona], **common
        ),
        "bootstrap_curve EER": lambda: bootstrap_curve(s, y, subj, eer_statistic, **curve),
        "bootstrap_curve BPCER @ APCER 5%": lambda: bootstrap_curve(
            s, y, subj, bpcer_at_apcer_statistic(0.05), **curve
        ),
        "bootstrap_curve BPCER @ worst APCER 5% (3 species)": lambda: bootstrap_curve(
            s, y, subj, bpcer_at_worst_apcer_statistic(0.05), species=sp, **curve
        ),
        "paired_bootstrap_difference EER": lambda: paired_bootstrap_difference(
            s, d["noisy"], y, subj, eer_statistic, **curve
        ),
    }
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    print(f"{n:,} rows, {args.subjects:,} subjects, {r:,} resamples, {cores} CPU cores available")
    width = max(map(len, jobs))
    for name, job in jobs.items():
        start = time.perf_counter()
        result = job()
        elapsed = time.perf_counter() - start
        shown = "" if isinstance(result, tuple) else f"  {result}"
        print(f"{name:<{width}}  {elapsed:7.2f} s{shown}")
    if not args.no_memory:
        print("peak traced memory (tracemalloc, numpy buffers included):")
        for name, job in jobs.items():
            tracemalloc.start()
            job()
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(f"  {name:<{width}}  {peak / 2**20:8.1f} MiB")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"process peak RSS: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
