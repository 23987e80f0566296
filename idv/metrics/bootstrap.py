"""Subject-level (cluster) bootstrap intervals for biometric error rates.

Samples of one person are correlated (same face, same device, same attack instrument), so a
bootstrap that resamples rows understates the uncertainty. Everything here resamples SUBJECTS: a
resample draws `n_subjects` subjects with replacement, and every row of a drawn subject enters
with the subject's multiplicity. A resample is thus a vector of per-subject counts, and a set of
resamples is one integer matrix `counts` of shape (n_resamples, n_subjects) (`resample_counts`).
All statistics are computed for many resamples at once from that matrix:

- Rates at a FIXED threshold (APCER of a species, BPCER, FNMR or FMR at a given threshold) are
  ratios of sums of per-row outcomes: per-subject sums, then one matrix product per resample set,
  `counts @ outcomes_per_subject / counts @ rows_per_subject` (`bootstrap_rate`,
  `paired_rate_difference`).
- Threshold-dependent statistics (EER, BPCER at an APCER target, FNMR at an FMR target) need the
  whole error curve of each resample. The scores are sorted once; for a chunk of resamples the
  rows' weights (their subject's count) are summed cumulatively along the sorted order, which
  gives the weighted error curves at every candidate threshold for every resample of the chunk
  (`WeightedROC`); a statistic maps those curves to one value per resample (`bootstrap_curve`,
  `paired_bootstrap_difference`). Weights are integer counts and the cumulative sums are integer
  sums, so they are exact (no float32 round-off); only the final rates are float64.

Conventions are those of `idv.metrics.detection`: label 1 is the positive class, a higher score
means "more likely label 1", and a row is decided label 1 when `score >= threshold`. So at
threshold t, APCER(t) = weighted share of label-1 rows with score < t, and BPCER(t) = weighted
share of label-0 rows with score >= t. For comparison scores (similarities, label 1 = genuine,
label 0 = impostor) the same two curves are FNMR(t) and FMR(t). Scores may be infinite, for the
generalised rates (a failure to acquire is +inf in detection, -inf for similarities: see
`detection.generalised_scores`, `verification.generalised_similarities`); NaN is an error. The
candidate thresholds of every resample are those of the original data (every distinct score,
plus +inf): a score that a resample does not contain only repeats a point of that resample's ROC,
so every statistic here equals the point statistic computed on the resampled rows themselves
(tested bit for bit).

Intervals are percentile intervals. The same `seed` and the same subjects give the same resamples,
so metrics computed with one seed share their resamples (joint resampling across a report). A
rate of exactly 0 or 1 on the original data gives a zero-width interval: report the resolution
(rule of three, 3 / n) next to it rather than trusting the interval there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = [
    "Interval",
    "PairedInterval",
    "WeightedROC",
    "apcer_at_bpcer_statistic",
    "bootstrap_curve",
    "bootstrap_rate",
    "auc_statistic",
    "average_precision_statistic",
    "bpcer_at_apcer_statistic",
    "bpcer_at_worst_apcer_statistic",
    "curve_replicates",
    "eer_statistic",
    "fnmr_at_fmr_statistic",
    "paired_bootstrap_difference",
    "paired_rate_difference",
    "percentile_interval",
    "worst_group_replicates",
    "rate_replicates",
    "recall_at_fpr_statistic",
    "resample_counts",
    "worst_apcer_at_bpcer_statistic",
]

# Target working memory of one chunk of the curve bootstrap (EER's arrays, the largest of the
# ready-made statistics, are accounted for in `_Layout.bytes_per_resample`). Larger chunks are
# not faster: past a few tens of MB every chunk's fresh buffers cost page faults, and 8-16
# resamples of 100k rows ran fastest (2-core benchmark).
_CHUNK_BUDGET_BYTES = 64 * 2**20
_DRAW_BLOCK = 2**20  # (resample, subject) cells processed at once outside the curve chunks


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile bootstrap interval.

    `estimate` is the statistic on the original data; `low` / `high` are the (1 - level) / 2 and
    (1 + level) / 2 quantiles of the replicates; `n_resamples` counts the replicates used and
    `n_dropped` those left out because the statistic is undefined there (a resample without any
    row in a rate's denominator, or without one of the two classes).
    """

    estimate: float
    low: float
    high: float
    level: float
    n_resamples: int
    n_dropped: int


@dataclass(frozen=True)
class PairedInterval(Interval):
    """Interval of a difference candidate - baseline under one shared subject resample.

    `share_positive` is the share of used resamples where the difference is > 0 (ties count as
    not positive). For an error rate, a difference > 0 means the candidate is worse, so
    `share_positive` works as a one-sided bootstrap p-value for "the candidate is no worse".
    """

    share_positive: float


# --------------------------------------------------------------------------- validation helpers


def _subject_codes(subjects: np.ndarray, n_rows: int | None = None) -> tuple[np.ndarray, int]:
    subj = np.asarray(subjects)
    if subj.ndim != 1:
        raise ValueError(f"subjects must be 1-D, got shape {subj.shape}")
    if n_rows is not None and len(subj) != n_rows:
        raise ValueError(f"subjects has {len(subj)} rows, expected {n_rows}")
    if len(subj) == 0:
        raise ValueError("no rows: need at least 2 subjects")
    _, codes = np.unique(subj, return_inverse=True)
    n_subjects = int(codes.max()) + 1
    if n_subjects < 2:
        raise ValueError(f"need at least 2 distinct subjects to resample, got {n_subjects}")
    return codes.reshape(-1).astype(np.intp), n_subjects


def _check_resampling(n_resamples: int, level: float) -> None:
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")


def _check_codes(codes: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(codes)
    k = np.asarray(counts)
    if c.ndim != 1 or not np.issubdtype(c.dtype, np.integer):
        raise ValueError("codes must be a 1-D integer array (from resample_counts)")
    if k.ndim != 2 or not np.issubdtype(k.dtype, np.integer):
        raise ValueError("counts must be a 2-D integer array (n_resamples, n_subjects)")
    if len(c) and (c.min() < 0 or c.max() >= k.shape[1]):
        raise ValueError(f"codes must lie in [0, {k.shape[1]}) to index the counts' columns")
    if (k < 0).any():
        raise ValueError("counts must be non-negative")
    return c.astype(np.intp), k


def _score_arrays(
    scores: np.ndarray, labels: np.ndarray, n_rows: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"scores and labels must be 1-D of one length, got {s.shape}, {y.shape}")
    if n_rows is not None and len(s) != n_rows:
        raise ValueError(f"scores have {len(s)} rows, expected {n_rows}")
    if np.isnan(s).any():
        raise ValueError(
            "scores contain NaN: score failures to acquire as +inf (detection, see "
            "generalised_scores) or -inf (similarities, see generalised_similarities)"
        )
    if not ((y == 0) | (y == 1)).all():
        raise ValueError("labels must be 0 or 1")
    y = y.astype(np.int8)
    if len(y) == 0 or y.min() == y.max():
        raise ValueError("need rows of both classes (label 0 and label 1)")
    return s, y


def _outcomes(errors: np.ndarray, where: np.ndarray | None, n_rows: int) -> np.ndarray:
    e = np.asarray(errors, dtype=np.float64)
    if e.shape != (n_rows,):
        raise ValueError(f"errors must be 1-D with one value per row ({n_rows}), got {e.shape}")
    if not np.isfinite(e).all():
        raise ValueError("errors contain NaN or infinite values")
    if where is None:
        return e
    w = np.asarray(where)
    if w.shape != (n_rows,) or w.dtype != bool:
        raise ValueError(f"where must be a boolean mask with one value per row ({n_rows})")
    if not w.any():
        raise ValueError("where selects no rows")
    return e


# ------------------------------------------------------------------------------------ resampling


def resample_counts(
    subjects: np.ndarray, n_resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Subject resamples as counts: (codes, counts).

    `codes[i]` is the subject index of row i (subjects in sorted order, so the result does not
    depend on the row order); `counts[r, j]` is how often subject j is drawn in resample r when
    drawing `n_subjects` subjects uniformly with replacement (each row of `counts` is
    multinomial and sums to n_subjects). `counts` is int32, n_resamples x n_subjects x 4 bytes.
    Deterministic given `seed` and the set of subjects.
    """
    codes, n_subjects = _subject_codes(subjects)
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    rng = np.random.default_rng(seed)
    counts = np.empty((int(n_resamples), n_subjects), dtype=np.int32)
    block = max(1, _DRAW_BLOCK // n_subjects)
    for start in range(0, counts.shape[0], block):
        stop = min(counts.shape[0], start + block)
        draws = rng.integers(0, n_subjects, size=(stop - start, n_subjects))
        draws += np.arange(stop - start)[:, None] * n_subjects
        flat = np.bincount(draws.ravel(), minlength=(stop - start) * n_subjects)
        counts[start:stop] = flat.reshape(stop - start, n_subjects)
    return codes, counts


def _weighted_sums(counts: np.ndarray, per_subject: np.ndarray) -> np.ndarray:
    """counts @ per_subject in float64, a block of resamples at a time (bounded memory). Exact
    for integer per-subject values: every sum stays far below 2**53."""
    out = np.empty((counts.shape[0], per_subject.shape[1]), dtype=np.float64)
    block = max(1, _DRAW_BLOCK // max(1, counts.shape[1]))
    for start in range(0, counts.shape[0], block):
        out[start : start + block] = counts[start : start + block].astype(np.float64) @ per_subject
    return out


def percentile_interval(estimate: float, replicates: np.ndarray, level: float) -> Interval | None:
    """The percentile interval of `replicates` around `estimate`: the (1 - level) / 2 and
    (1 + level) / 2 quantiles of the defined replicates (NaN ones, resamples where the
    statistic is undefined, are dropped and counted); None when none is defined."""
    replicates = np.asarray(replicates, dtype=np.float64)
    kept = replicates[~np.isnan(replicates)]
    if len(kept) == 0:
        return None
    low, high = np.quantile(kept, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return Interval(
        float(estimate), float(low), float(high), level, len(kept), len(replicates) - len(kept)
    )


def _interval(estimate: float, replicates: np.ndarray, level: float) -> Interval:
    interval = percentile_interval(estimate, replicates, level)
    if interval is None:
        raise ValueError("the statistic is undefined in every resample")
    return interval


def _paired_interval(
    estimate: float, baseline: np.ndarray, candidate: np.ndarray, level: float
) -> PairedInterval:
    diff = candidate - baseline  # NaN where either is undefined
    base = _interval(estimate, diff, level)
    kept = diff[~np.isnan(diff)]
    return PairedInterval(**vars(base), share_positive=float((kept > 0).mean()))


# -------------------------------------------------------------------------- fixed-threshold rates


def rate_replicates(
    errors: np.ndarray, codes: np.ndarray, counts: np.ndarray, where: np.ndarray | None = None
) -> np.ndarray:
    """The rate sum(errors) / n_rows over the rows selected by `where` (all rows by default), in
    every resample of `counts`: (n_resamples,), NaN where a resample has no selected row."""
    c, k = _check_codes(codes, counts)
    e = _outcomes(errors, where, len(c))
    if where is not None:
        c, e = c[where], e[where]
    per_subject = np.bincount(c, weights=e, minlength=k.shape[1])
    rows = np.bincount(c, minlength=k.shape[1]).astype(np.float64)
    num, den = _weighted_sums(k, np.stack([per_subject, rows], axis=1)).T
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


def worst_group_replicates(
    errors: np.ndarray,
    groups: np.ndarray,
    names: Sequence[str],
    codes: np.ndarray,
    counts: np.ndarray,
    where: np.ndarray | None = None,
) -> np.ndarray:
    """The worst (largest) of the groups' rates in every resample: each group `name` is the rows
    with `groups == name` (and `where`); a group absent from a resample is ignored there, and
    a resample without any group is NaN. The worst-species APCER of ISO/IEC 30107-3, taken
    inside every resample so that its interval is of the maximum, not of one species."""
    groups = np.asarray(groups)
    rows = np.ones(len(groups), dtype=bool) if where is None else np.asarray(where, dtype=bool)
    per = np.stack(
        [rate_replicates(errors, codes, counts, where=rows & (groups == n)) for n in names]
    )
    with np.errstate(all="ignore"):
        worst = np.where(np.isnan(per), -np.inf, per).max(axis=0)
    return np.where(np.isfinite(worst), worst, np.nan)


def bootstrap_rate(
    errors: np.ndarray,
    subjects: np.ndarray,
    *,
    where: np.ndarray | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """Subject-bootstrap interval of a rate at a FIXED threshold: the mean of per-row outcomes
    (0/1 errors or fractional ones), e.g. BPCER = `errors = scores[bona] >= t` with the bona fide
    rows' subjects.

    `where` (optional boolean mask) restricts the rate to some rows while resampling all the
    subjects of `subjects`, e.g. the APCER of one species within a whole evaluation set, so that
    it shares its resamples with the other metrics of the set; resamples with no selected row are
    dropped (counted in `n_dropped`). The estimate is the plain mean over the selected rows.
    """
    _check_resampling(n_resamples, level)
    codes, counts = resample_counts(subjects, n_resamples, seed)
    e = _outcomes(errors, where, len(codes))
    estimate = float(np.mean(e if where is None else e[where]))
    return _interval(estimate, rate_replicates(e, codes, counts, where), level)


def paired_rate_difference(
    baseline_errors: np.ndarray,
    candidate_errors: np.ndarray,
    subjects: np.ndarray,
    *,
    where: np.ndarray | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedInterval:
    """Paired subject bootstrap of (candidate rate - baseline rate) at fixed thresholds: both
    systems' per-row outcomes are aligned on the same rows and every resample is shared."""
    _check_resampling(n_resamples, level)
    codes, counts = resample_counts(subjects, n_resamples, seed)
    a = _outcomes(baseline_errors, where, len(codes))
    b = _outcomes(candidate_errors, where, len(codes))
    sel = slice(None) if where is None else where
    estimate = float(np.mean(b[sel]) - np.mean(a[sel]))
    return _paired_interval(
        estimate,
        rate_replicates(a, codes, counts, where),
        rate_replicates(b, codes, counts, where),
        level,
    )


# ------------------------------------------------------------------------------ weighted curves


class _Layout:
    """What does not depend on the resample, computed once per score vector: the score order,
    the candidate thresholds and, per block of rows (label 1, label 0, each label-1 species), the
    block's subject codes in score order and how many of its rows lie below each threshold."""

    def __init__(
        self,
        scores: np.ndarray,
        labels: np.ndarray,
        codes: np.ndarray,
        n_subjects: int,
        species: np.ndarray | None,
    ) -> None:
        order = np.argsort(scores, kind="stable")
        s, y, c = scores[order], labels[order], codes[order]
        self.thresholds = np.unique(np.append(s, np.inf))
        self.n_rows = len(s)
        masks = {"pos": y == 1, "neg": y == 0}
        self.species: tuple[str, ...] = ()
        if species is not None:
            sp = np.asarray(species).astype(str)[order]
            self.species = tuple(sorted(set(sp[y == 1].tolist())))
            for name in self.species:
                masks[("species", name)] = (y == 1) & (sp == name)
        self.blocks = {
            key: (c[m], np.searchsorted(s[m], self.thresholds, side="left"))
            for key, m in masks.items()
        }
        self.rows_per_subject = {
            key: np.bincount(c[m], minlength=n_subjects).astype(np.float64)
            for key, m in masks.items()
            if key in ("pos", "neg")
        }
        self.max_rows_per_subject = int(np.bincount(c).max())

    def bytes_per_resample(self) -> int:
        # int32 gathers + cumulative sums over the rows; EER's apcer, bpcer, gap (float64) and the
        # integer gathers over the thresholds.
        return 8 * self.n_rows + 36 * len(self.thresholds)

    def class_totals(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        per_subject = np.stack([self.rows_per_subject["pos"], self.rows_per_subject["neg"]], 1)
        n_pos, n_neg = _weighted_sums(counts, per_subject).T
        return n_pos, n_neg


class WeightedROC:
    """Weighted error curves of a chunk of resamples, over the original candidate thresholds.

    Row i weighs `counts[r, codes[i]]` in resample r. All arrays have one row per resample of the
    chunk. With label 1 = attack these are APCER / BPCER; with comparison scores (label 1 =
    genuine, score = similarity) `apcer` is FNMR and `bpcer` is FMR. Threshold indices refer to
    `thresholds` (ascending; the last is +inf, where everything is decided label 0).

    Statistics for `bootstrap_curve` are functions `WeightedROC -> (n_resamples,) float array`
    built from these members; values for resamples lacking a class are discarded by the caller.
    """

    def __init__(self, layout: _Layout, counts: np.ndarray) -> None:
        self._layout = layout
        self._counts = counts
        self._cum: dict[object, np.ndarray] = {}
        # Weighted block totals are at most (draws in a resample) x (rows of the largest subject).
        bound = int(counts.sum(axis=1).max(initial=0)) * layout.max_rows_per_subject
        self._dtype = np.int32 if bound < 2**31 else np.int64

    @property
    def thresholds(self) -> np.ndarray:
        return self._layout.thresholds

    @property
    def n_resamples(self) -> int:
        return self._counts.shape[0]

    @property
    def species(self) -> tuple[str, ...]:
        """Attack species (of label-1 rows) passed to the bootstrap; empty if none were."""
        return self._layout.species

    def _block(self, key: object) -> tuple[np.ndarray, np.ndarray]:
        """(cum, below): cum[r, m] = weight of the block's first m rows in score order in
        resample r (shape (n_resamples, m_rows + 1)); below[j] = block rows with score < t_j."""
        if key not in self._layout.blocks:
            if isinstance(key, tuple):
                raise ValueError(
                    f"unknown species {key[1]!r}: pass species= to the bootstrap "
                    f"(known: {list(self.species)})"
                )
            raise KeyError(key)
        codes, below = self._layout.blocks[key]
        if key not in self._cum:
            cum = np.zeros((self.n_resamples, len(codes) + 1), dtype=self._dtype)
            weights = np.take(self._counts, codes, axis=1)
            np.cumsum(weights, axis=1, dtype=self._dtype, out=cum[:, 1:])
            self._cum[key] = cum
        return self._cum[key], below

    def _key(self, species: str | None) -> object:
        return "pos" if species is None else ("species", species)

    @cached_property
    def apcer(self) -> np.ndarray:
        """(n_resamples, n_thresholds): weighted share of label-1 rows with score < t."""
        cum, below = self._block("pos")
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.take(cum, below, axis=1) / cum[:, -1:]

    @cached_property
    def bpcer(self) -> np.ndarray:
        """(n_resamples, n_thresholds): weighted share of label-0 rows with score >= t, computed
        as (n - count below t) / n, like `idv.metrics.detection.error_rates`."""
        cum, below = self._block("neg")
        with np.errstate(divide="ignore", invalid="ignore"):
            return (cum[:, -1:] - np.take(cum, below, axis=1)) / cum[:, -1:]

    def apcer_at(self, index: np.ndarray, species: str | None = None) -> np.ndarray:
        """APCER (of all label-1 rows, or of one species) at threshold index `index[r]`; NaN for
        an index past the last threshold."""
        cum, below = self._block(self._key(species))
        rows = np.arange(self.n_resamples)
        index = np.asarray(index)
        valid = index < len(below)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = cum[rows, below[np.where(valid, index, 0)]] / cum[:, -1]
        return np.where(valid, rate, np.nan)

    def bpcer_at(self, index: np.ndarray) -> np.ndarray:
        """BPCER at threshold index `index[r]`, as (count at or above) / total, like
        `idv.metrics.detection.bpcer`."""
        cum, below = self._block("neg")
        rows = np.arange(self.n_resamples)
        total = cum[:, -1]
        with np.errstate(divide="ignore", invalid="ignore"):
            return (total - cum[rows, below[index]]) / total

    def last_index_apcer_at_most(self, max_apcer: float, species: str | None = None) -> np.ndarray:
        """Per resample, the largest threshold index whose APCER (all label-1 rows, or one
        species) is <= `max_apcer`; the last index where that block has no weight (an absent
        species constrains nothing)."""
        cum, below = self._block(self._key(species))
        total = cum[:, -1:]
        # APCER only rises with the threshold, so the rows meeting the target are a prefix of the
        # block in score order: m_ok = its length - 1, and a threshold is fine iff below <= m_ok.
        with np.errstate(divide="ignore", invalid="ignore"):
            m_ok = (cum / total <= max_apcer).sum(axis=1) - 1
        index = np.searchsorted(below, m_ok, side="right") - 1
        return np.where(total[:, 0] > 0, index, len(below) - 1)

    def first_index_bpcer_at_most(self, max_bpcer: float) -> np.ndarray:
        """Per resample, the smallest threshold index whose BPCER (label-0 share >= t) is
        <= `max_bpcer`: the lowest APCER that meets the target (FNMR at an FMR target);
        `len(thresholds)` where no threshold meets it (`apcer_at` gives NaN there)."""
        cum, below = self._block("neg")
        total = cum[:, -1:]
        # BPCER only falls with the threshold: the prefix of rows that still miss the target
        # has length m_min, and a threshold meets it iff below >= m_min. None does (the index
        # is then len(thresholds)) only when +inf scores (failures to acquire) alone exceed it.
        with np.errstate(divide="ignore", invalid="ignore"):
            m_min = ((total - cum) / total > max_bpcer).sum(axis=1)
        return np.searchsorted(below, m_min, side="left")


Statistic = Callable[[WeightedROC], np.ndarray]


def _check_target(value: float, name: str) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a rate in [0, 1], got {value!r}")
    return float(value)


def eer_statistic(roc: WeightedROC) -> np.ndarray:
    """EER per resample, with the exact convention of `idv.metrics.detection.eer`: at the first
    threshold where APCER >= BPCER, linear interpolation along the segment from the previous ROC
    point (that point itself when the gap is exactly 0). With +inf scores (failures to
    acquire) the curves may never cross: NaN there (the resample is dropped)."""
    apcer, bpcer = roc.apcer, roc.bpcer
    gap = bpcer - apcer
    crossed = gap <= 0  # gap is non-increasing and, without +inf scores, ends at -1
    k = np.argmax(crossed, axis=1)
    rows = np.arange(len(k))
    g_k, g_prev = gap[rows, k], gap[rows, k - 1]
    a_k, a_prev = apcer[rows, k], apcer[rows, k - 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = g_prev / (g_prev - g_k)
        rate = a_prev + alpha * (a_k - a_prev)
    rate = np.where((g_k == 0) | (k == 0), a_k, rate)
    return np.where(crossed[rows, k], rate, np.nan)


def auc_statistic(roc: WeightedROC) -> np.ndarray:
    """ROC AUC per resample, = P(attack > bona fide) + 0.5 P(tie) as `detection.auc`: the
    trapezoids between consecutive thresholds (ties share a threshold, so they count half),
    closed at (0, 0) so that +inf scores (failures to acquire) tie among themselves too."""
    tpr = 1.0 - roc.apcer  # share of label-1 rows with score >= t
    fpr = roc.bpcer
    end = np.zeros((roc.n_resamples, 1))
    tpr, fpr = np.concatenate([tpr, end], axis=1), np.concatenate([fpr, end], axis=1)
    return np.sum((fpr[:, :-1] - fpr[:, 1:]) * (tpr[:, :-1] + tpr[:, 1:]), axis=1) / 2.0


def _at_or_above(roc: WeightedROC, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(weight of the block's rows with score >= t per threshold, block total), as integer
    counts: precision needs counts, not rates, and counts keep the sums exact."""
    cum, below = roc._block(key)
    total = cum[:, -1:]
    return total - np.take(cum, below, axis=1), total


def average_precision_statistic(roc: WeightedROC) -> np.ndarray:
    """Average precision per resample, without interpolation as
    `idv.metrics.ranking.average_precision` and sklearn's average_precision_score: the sum over
    thresholds, descending, of (R_n - R_(n-1)) * P_n. A threshold absent from a resample repeats
    the previous point (R_n = R_(n-1)), so it adds nothing; where nothing is flagged the
    precision is 0 / 0 but its recall step is 0, so it counts as 0."""
    tp, n_pos = _at_or_above(roc, "pos")
    fp, _ = _at_or_above(roc, "neg")
    tp, fp = tp[:, ::-1], fp[:, ::-1]  # thresholds descending
    flagged = tp + fp
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = tp / n_pos
        precision = np.where(flagged > 0, tp / np.maximum(flagged, 1), 0.0)
    return np.sum(np.diff(recall, axis=1, prepend=0.0) * precision, axis=1)


def recall_at_fpr_statistic(max_fpr: float) -> Statistic:
    """Recall (TPR, share of label-1 rows with score >= t) at the smallest threshold whose FPR
    (label-0 share >= t) is <= `max_fpr`, as `idv.metrics.ranking.recall_at_fpr`; NaN where no
    threshold meets it. Unlike that function it does not check the resolution (rule of three):
    check it once on the original data."""
    _check_target(max_fpr, "max_fpr")

    def statistic(roc: WeightedROC) -> np.ndarray:
        index = roc.first_index_bpcer_at_most(max_fpr)
        tp, n_pos = _at_or_above(roc, "pos")
        valid = index < tp.shape[1]
        rows = np.arange(roc.n_resamples)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = tp[rows, np.where(valid, index, 0)] / n_pos[:, 0]
        return np.where(valid, rate, np.nan)

    statistic.__name__ = f"recall_at_fpr_{max_fpr:g}"
    return statistic


def bpcer_at_apcer_statistic(max_apcer: float) -> Statistic:
    """BPCER at the largest threshold whose APCER over all label-1 rows is <= `max_apcer` (as
    `idv.metrics.detection.bpcer_at_worst_apcer` with a single species)."""

    _check_target(max_apcer, "max_apcer")

    def statistic(roc: WeightedROC) -> np.ndarray:
        return roc.bpcer_at(roc.last_index_apcer_at_most(max_apcer))

    statistic.__name__ = f"bpcer_at_apcer_{max_apcer:g}"
    return statistic


def bpcer_at_worst_apcer_statistic(max_apcer: float) -> Statistic:
    """BPCER at the largest threshold whose WORST-species APCER is <= `max_apcer` (BPCER10/20/100
    of ISO/IEC 30107-3, as `idv.metrics.detection.bpcer_at_worst_apcer`). Needs `species=` in
    the bootstrap. APCER only rises with the threshold, so the largest threshold meeting the
    target for all species is the minimum over species of each one's largest: one vectorised
    pass per species. A species with no row in a resample is ignored in that resample."""

    _check_target(max_apcer, "max_apcer")

    def statistic(roc: WeightedROC) -> np.ndarray:
        if not roc.species:
            raise ValueError("bpcer_at_worst_apcer_statistic needs species= in the bootstrap")
        index = np.full(roc.n_resamples, len(roc.thresholds) - 1)
        for name in roc.species:
            index = np.minimum(index, roc.last_index_apcer_at_most(max_apcer, name))
        return roc.bpcer_at(index)

    statistic.__name__ = f"bpcer_at_worst_apcer_{max_apcer:g}"
    return statistic


def apcer_at_bpcer_statistic(max_bpcer: float) -> Statistic:
    """APCER (all label-1 rows) at the smallest threshold whose BPCER is <= `max_bpcer`."""

    _check_target(max_bpcer, "max_bpcer")

    def statistic(roc: WeightedROC) -> np.ndarray:
        return roc.apcer_at(roc.first_index_bpcer_at_most(max_bpcer))

    statistic.__name__ = f"apcer_at_bpcer_{max_bpcer:g}"
    return statistic


def worst_apcer_at_bpcer_statistic(max_bpcer: float) -> Statistic:
    """Worst-species APCER at the smallest threshold whose BPCER is <= `max_bpcer` (as
    `idv.metrics.detection.apcer_at_bpcer`). Needs `species=` in the bootstrap; a species with
    no row in a resample is ignored in that resample."""
    _check_target(max_bpcer, "max_bpcer")

    def statistic(roc: WeightedROC) -> np.ndarray:
        if not roc.species:
            raise ValueError("worst_apcer_at_bpcer_statistic needs species= in the bootstrap")
        index = roc.first_index_bpcer_at_most(max_bpcer)
        per_species = np.stack([roc.apcer_at(index, name) for name in roc.species])
        worst = np.max(np.where(np.isnan(per_species), -np.inf, per_species), axis=0)
        return np.where(np.isfinite(worst), worst, np.nan)

    statistic.__name__ = f"worst_apcer_at_bpcer_{max_bpcer:g}"
    return statistic


def fnmr_at_fmr_statistic(max_fmr: float) -> Statistic:
    """FNMR at the smallest threshold with FMR <= `max_fmr`, for comparison similarity scores
    with label 1 = genuine and 0 = impostor (FNMR(t) = genuine < t, FMR(t) = impostor >= t).
    Structurally APCER at a BPCER target. Mind the resolution: an FMR target needs at least
    3 / max_fmr impostor comparisons (rule of three), which this function does not check."""
    statistic = apcer_at_bpcer_statistic(_check_target(max_fmr, "max_fmr"))
    statistic.__name__ = f"fnmr_at_fmr_{max_fmr:g}"
    return statistic


def _layout(
    scores: np.ndarray,
    labels: np.ndarray,
    codes: np.ndarray,
    n_subjects: int,
    species: np.ndarray | None,
) -> _Layout:
    s, y = _score_arrays(scores, labels, len(codes))
    if species is not None and np.shape(species) != s.shape:
        raise ValueError(f"species must have one value per row ({len(s)}), got {np.shape(species)}")
    return _Layout(s, y, codes, n_subjects, species)


def _replicates(
    layout: _Layout, counts: np.ndarray, statistic: Statistic, chunk: int | None
) -> np.ndarray:
    if chunk is None:
        chunk = max(1, _CHUNK_BUDGET_BYTES // layout.bytes_per_resample())
    if int(chunk) != chunk or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    n_pos, n_neg = layout.class_totals(counts)
    out = np.empty(counts.shape[0], dtype=np.float64)
    for start in range(0, counts.shape[0], int(chunk)):
        part = counts[start : start + int(chunk)]
        values = np.asarray(statistic(WeightedROC(layout, part)), dtype=np.float64)
        if values.shape != (part.shape[0],):
            raise ValueError(
                f"statistic must return one value per resample, shape ({part.shape[0]},), "
                f"got {values.shape}"
            )
        out[start : start + part.shape[0]] = values
    out[(n_pos == 0) | (n_neg == 0)] = np.nan  # a resample lacking a class has no curve
    return out


def curve_replicates(
    scores: np.ndarray,
    labels: np.ndarray,
    codes: np.ndarray,
    counts: np.ndarray,
    statistic: Statistic,
    *,
    species: np.ndarray | None = None,
    chunk: int | None = None,
) -> np.ndarray:
    """A curve statistic in every resample of (`codes`, `counts`) from `resample_counts` (or any
    non-negative integer weights per subject): (n_resamples,), NaN where a resample lacks a
    class. Use it to evaluate several statistics on one set of resamples."""
    c, k = _check_codes(codes, counts)
    return _replicates(_layout(scores, labels, c, k.shape[1], species), k, statistic, chunk)


def bootstrap_curve(
    scores: np.ndarray,
    labels: np.ndarray,
    subjects: np.ndarray,
    statistic: Statistic,
    *,
    species: np.ndarray | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    chunk: int | None = None,
) -> Interval:
    """Subject-bootstrap interval of a threshold-dependent statistic (`eer_statistic`,
    `bpcer_at_apcer_statistic(0.05)`, `bpcer_at_worst_apcer_statistic(0.05)` with `species`,
    `fnmr_at_fmr_statistic(1e-3)`, ...). The threshold is re-chosen inside every resample.

    `chunk` resamples are processed at once (default: sized for ~64 MiB of working memory,
    e.g. 15 resamples for 100k rows); it changes speed and memory, never the result.
    """
    _check_resampling(n_resamples, level)
    codes, counts = resample_counts(subjects, n_resamples, seed)
    layout = _layout(scores, labels, codes, counts.shape[1], species)
    estimate = _replicates(layout, np.ones((1, counts.shape[1]), np.int32), statistic, 1)[0]
    return _interval(estimate, _replicates(layout, counts, statistic, chunk), level)


def paired_bootstrap_difference(
    baseline_scores: np.ndarray,
    candidate_scores: np.ndarray,
    labels: np.ndarray,
    subjects: np.ndarray,
    statistic: Statistic,
    *,
    species: np.ndarray | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    chunk: int | None = None,
) -> PairedInterval:
    """Paired subject bootstrap of statistic(candidate) - statistic(baseline) for two systems
    scored on the same rows (shared labels, subjects and species): the same subject resample is
    applied to both, and each system's threshold is re-chosen inside every resample. Use it as a
    regression gate or a vendor comparison on an owned evaluation set."""
    _check_resampling(n_resamples, level)
    codes, counts = resample_counts(subjects, n_resamples, seed)
    ones = np.ones((1, counts.shape[1]), np.int32)
    reps, points = [], []
    for scores in (baseline_scores, candidate_scores):
        layout = _layout(scores, labels, codes, counts.shape[1], species)
        points.append(_replicates(layout, ones, statistic, 1)[0])
        reps.append(_replicates(layout, counts, statistic, chunk))
    return _paired_interval(points[1] - points[0], reps[0], reps[1], level)
