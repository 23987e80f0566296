"""A brute-force oracle for the operating-point metrics of `idv.metrics`, and seeded test sets.

Deliberately naive and independent of the package (it does not import idv): every rate is a
count over a denominator, taken by a direct mask at one threshold, and every operating point
is the best rate over ALL thresholds (`all_thresholds`: each distinct score, both infinities
and the midpoint between each pair of neighbouring distinct scores), never over a list of
candidates chosen the way the implementation chooses them.

Conventions (those of the implementation, restated here from the standards):
- Detection (ISO/IEC 30107-3): label 1 = attack, a sample is classified attack when
  score >= t. APCER(t) = share of a species' attacks with score < t; BPCER(t) = share of
  bona fide with score >= t.
- Verification (1:1): a pair matches when score >= t. FNMR(t) = share of genuine pairs with
  score < t; FMR(t) = share of impostor pairs with score >= t.
- Identification (1:N): FNIR(R, T) = share of mated searches whose mate is not returned at
  rank <= R with score >= T; FPIR(T) = share of non-mated searches returning any candidate
  with score >= T. A failed search returns nothing and stays in the denominator.

A rate is `count / n` in floating point and is compared with a target as it stands, so that
3 of 300 meets a target of 0.01. An operating point the data cannot resolve, or that no
threshold reaches, is `None`. The rule of three: a target rate p is resolvable from n trials
when 3 / n <= p (and, where subjects are counted, from at least `min_subjects` of them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd

FAMILIES = ("continuous", "tied", "tiny", "separated")
DECIMAL_TARGETS = (0.01, 0.05, 0.1, 0.2, 0.25, 0.3, 0.5, 1.0)
MIN_SUBJECTS_CHOICES = (1, 3, 10)
INF = math.inf


# --- thresholds, rates, resolution -------------------------------------------------------


def all_thresholds(scores: Sequence[float]) -> list[float]:
    """-inf, +inf, every distinct score and every midpoint of two neighbouring distinct
    finite scores, ascending (NaN scores are ignored)."""
    distinct = sorted({float(x) for x in scores if not math.isnan(x)} | {-INF, INF})
    mids = {
        (a + b) / 2
        for a, b in zip(distinct, distinct[1:], strict=False)
        if math.isfinite(a) and math.isfinite(b)
    }
    return sorted(set(distinct) | mids)


def share_below(values: np.ndarray, t: float) -> float:
    """Share of `values` strictly below `t` (count / n)."""
    return int(np.count_nonzero(values < t)) / len(values)


def share_at_or_above(values: np.ndarray, t: float) -> float:
    """Share of `values` at or above `t` (count / n)."""
    return int(np.count_nonzero(values >= t)) / len(values)


def resolvable(
    rate: float, n_trials: int, n_subjects: int | None = None, min_subjects: int = 10
) -> bool:
    """Rule of three: 3 / n_trials <= rate, and (when counted) n_subjects >= min_subjects."""
    if n_trials == 0 or 3 / n_trials > rate:
        return False
    return n_subjects is None or n_subjects >= min_subjects


def distinct_subjects(subjects: Sequence | np.ndarray, rows: np.ndarray) -> int:
    """Distinct ids over the selected rows; a row may hold one id or a pair of ids."""
    seen: set = set()
    for entry, keep in zip(subjects, rows, strict=True):
        if keep:
            seen.update(entry if isinstance(entry, (tuple, list, np.ndarray)) else [entry])
    return len(seen)


# --- detection (PAD) ------------------------------------------------------------------------


def apcer_per_species(
    scores: np.ndarray, labels: np.ndarray, species: np.ndarray, t: float
) -> dict[str, float]:
    """APCER of each attack species at threshold t."""
    return {
        name: share_below(scores[(labels == 1) & (species == name)], t)
        for name in sorted(set(species[labels == 1].tolist()))
    }


def worst_apcer(scores: np.ndarray, labels: np.ndarray, species: np.ndarray, t: float) -> float:
    return max(apcer_per_species(scores, labels, species, t).values())


def bpcer(scores: np.ndarray, labels: np.ndarray, t: float) -> float:
    return share_at_or_above(scores[labels == 0], t)


def bpcer_at_worst_apcer(
    scores: np.ndarray, labels: np.ndarray, species: np.ndarray, max_apcer: float
) -> float | None:
    """min over all t with worst-species APCER(t) <= max_apcer of BPCER(t)."""
    ok = [
        bpcer(scores, labels, t)
        for t in all_thresholds(scores)
        if worst_apcer(scores, labels, species, t) <= max_apcer
    ]
    return min(ok) if ok else None


def apcer_at_bpcer(
    scores: np.ndarray, labels: np.ndarray, species: np.ndarray, max_bpcer: float
) -> float | None:
    """min over all t with BPCER(t) <= max_bpcer of the worst-species APCER(t)."""
    ok = [
        worst_apcer(scores, labels, species, t)
        for t in all_thresholds(scores)
        if bpcer(scores, labels, t) <= max_bpcer
    ]
    return min(ok) if ok else None


def equal_error_rate(scores: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """(rate, threshold) by the documented interpolation rule, in exact arithmetic.

    Points: every distinct score and +inf, ascending; miss(t) = share of positives < t rises,
    false alarm(t) = share of negatives >= t falls. At the first point k with miss >= false
    alarm: rate = miss[k] when they are equal or k == 0; otherwise the crossing of the segment
    from point k-1, alpha = gap[k-1] / (gap[k-1] - gap[k]) with gap = false alarm - miss. The
    threshold interpolates the same way, the +inf point standing at the largest finite score.
    (nan, +inf) when no point has miss >= false alarm.
    """
    pos, neg = scores[positive], scores[~positive]
    t = sorted({float(x) for x in scores} | {INF})
    miss = [Fraction(int(np.count_nonzero(pos < x)), len(pos)) for x in t]
    alarm = [Fraction(int(np.count_nonzero(neg >= x)), len(neg)) for x in t]
    crossed = [k for k in range(len(t)) if miss[k] >= alarm[k]]
    if not crossed:
        return math.nan, INF
    k = crossed[0]
    if miss[k] == alarm[k] or k == 0:
        return float(miss[k]), t[k] if math.isfinite(t[k]) else t[k - 1]
    gap_before, gap_at = alarm[k - 1] - miss[k - 1], alarm[k] - miss[k]
    alpha = gap_before / (gap_before - gap_at)
    rate = miss[k - 1] + alpha * (miss[k] - miss[k - 1])
    lo, hi = t[k - 1], t[k] if math.isfinite(t[k]) else t[k - 1]
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return float(rate), math.nan  # the rule interpolates from -inf: no number
    return float(rate), float(Fraction(lo) + alpha * (Fraction(hi) - Fraction(lo)))


# --- verification (1:1) and ranking --------------------------------------------------------


def fnmr(scores: np.ndarray, genuine: np.ndarray, t: float) -> float:
    return share_below(scores[genuine], t)


def fmr(scores: np.ndarray, genuine: np.ndarray, t: float) -> float:
    return share_at_or_above(scores[~genuine], t)


def fnmr_at_fmr(scores: np.ndarray, genuine: np.ndarray, max_fmr: float) -> float | None:
    """min over all t with FMR(t) <= max_fmr of FNMR(t)."""
    ok = [
        fnmr(scores, genuine, t)
        for t in all_thresholds(scores)
        if fmr(scores, genuine, t) <= max_fmr
    ]
    return min(ok) if ok else None


def tar_at_far(scores: np.ndarray, genuine: np.ndarray, max_far: float) -> float | None:
    """max over all t with FMR(t) <= max_far of the share of genuine pairs accepted."""
    ok = [
        share_at_or_above(scores[genuine], t)
        for t in all_thresholds(scores)
        if fmr(scores, genuine, t) <= max_far
    ]
    return max(ok) if ok else None


def verification_eer(scores: np.ndarray, genuine: np.ndarray) -> tuple[float, float]:
    """The EER rule with genuine as the positive class; a threshold the rule would place at
    or next to a failure to acquire (-inf) is the lowest finite score."""
    rate, threshold = equal_error_rate(scores, genuine)
    low = float(scores[np.isfinite(scores)].min())
    return rate, low if math.isnan(threshold) or threshold < low else threshold


def recall_at_fpr(scores: np.ndarray, positive: np.ndarray, max_fpr: float) -> float | None:
    """max over all t with FPR(t) <= max_fpr of TPR(t) (flagged when score >= t)."""
    ok = [
        share_at_or_above(scores[positive], t)
        for t in all_thresholds(scores)
        if share_at_or_above(scores[~positive], t) <= max_fpr
    ]
    return max(ok) if ok else None


# --- identification (1:N) ------------------------------------------------------------------


@dataclass(frozen=True)
class Searches:
    """A search table read row by row: per returned candidate its search (index), rank,
    score and whether it is the probe's mate; per search whether it is mated."""

    mated: np.ndarray  # bool per search
    probe_subject: np.ndarray  # str per search
    row_search: np.ndarray  # int per candidate row
    row_rank: np.ndarray
    row_score: np.ndarray
    row_is_mate: np.ndarray

    @classmethod
    def read(cls, table: pd.DataFrame) -> Searches:
        index: dict = {}
        mated, probe = [], []
        search, rank, score, is_mate = [], [], [], []
        for r in table.to_dict("records"):
            if r["search_id"] not in index:
                index[r["search_id"]] = len(index)
                mated.append(bool(r["mated"]))
                probe.append(str(r["probe_subject_id"]))
            if bool(r.get("acquired", True)) and not math.isnan(r["score"]):
                search.append(index[r["search_id"]])
                rank.append(float(r["rank"]))
                score.append(float(r["score"]))
                is_mate.append(str(r["candidate_subject_id"]) == str(r["probe_subject_id"]))
        return cls(
            np.array(mated, dtype=bool),
            np.array(probe, dtype=object),
            np.array(search, dtype=np.int64),
            np.array(rank, dtype=np.float64),
            np.array(score, dtype=np.float64),
            np.array(is_mate, dtype=bool),
        )

    def thresholds(self) -> list[float]:
        return all_thresholds(self.row_score)

    def fnir(self, t: float, rank: int | None = None) -> float:
        limit = INF if rank is None else rank
        hit = self.row_is_mate & (self.row_rank <= limit) & (self.row_score >= t)
        found = set(self.row_search[hit].tolist())
        mated = np.nonzero(self.mated)[0]
        return sum(1 for s in mated if s not in found) / len(mated)

    def identification_rate(self, rank: int) -> float:
        """Share of mated searches with the mate at rank <= `rank`, no threshold."""
        hit = self.row_is_mate & (self.row_rank <= rank)
        found = set(self.row_search[hit].tolist())
        mated = np.nonzero(self.mated)[0]
        return sum(1 for s in mated if s in found) / len(mated)

    def fpir(self, t: float) -> float:
        alarm = set(self.row_search[self.row_score >= t].tolist())
        non_mated = np.nonzero(~self.mated)[0]
        return sum(1 for s in non_mated if s in alarm) / len(non_mated)

    def non_mated_trials(self) -> tuple[int, int]:
        """(non-mated searches, their distinct probe subjects)."""
        return int((~self.mated).sum()), len(set(self.probe_subject[~self.mated].tolist()))

    def fnir_at_fpir(self, max_fpir: float, rank: int | None = None) -> float | None:
        """min over all T with FPIR(T) <= max_fpir of FNIR(R, T)."""
        ok = [self.fnir(t, rank) for t in self.thresholds() if self.fpir(t) <= max_fpir]
        return min(ok) if ok else None


# --- seeded sets ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TwoClassSet:
    """Scores with a positive class (attack / genuine), a group per row (attack species,
    "bona_fide" for negatives) and subject ids: one per row, and a pair per row."""

    scores: np.ndarray
    positive: np.ndarray
    groups: np.ndarray
    subjects: np.ndarray
    pairs: np.ndarray
    failures: bool  # whether some rows are failures to acquire (infinite scores)


def _sizes(family: str, rng: np.random.Generator) -> tuple[int, int]:
    if family == "tiny":
        return int(rng.integers(1, 4)), int(rng.integers(1, 4))
    return int(rng.integers(5, 81)), int(rng.integers(5, 81))


def _class_scores(
    family: str, rng: np.random.Generator, n_pos: int, n_neg: int
) -> tuple[np.ndarray, np.ndarray]:
    """(positive, negative) scores of one family; positives tend to score higher."""
    tied = family == "tied" or (family == "tiny" and rng.random() < 0.5)
    if tied:  # few distinct whole numbers
        levels = int(rng.integers(2, 6))
        neg = rng.integers(0, levels, n_neg)
        pos = np.minimum(rng.integers(0, levels, n_pos) + rng.integers(0, 2, n_pos), levels - 1)
        return pos.astype(np.float64), neg.astype(np.float64)
    if family == "separated":  # every positive above every negative, or (1 in 4) all below
        pos, neg = rng.uniform(1.5, 2.5, n_pos), rng.uniform(0.0, 1.0, n_neg)
        return (pos, neg) if rng.random() < 0.75 else (pos - 2.0, neg + 2.0)
    return rng.normal(rng.uniform(0.0, 3.0), 1.0, n_pos), rng.normal(0.0, 1.0, n_neg)


def two_class_set(
    family: str, rng: np.random.Generator, failure_sign: str = "detection"
) -> TwoClassSet:
    """A seeded two-class set of `family`. In the continuous and tied families one set in four
    has failures to acquire (about 10% of rows): +inf for a negative and -inf for a positive
    ("detection", generalised PAD scores), or -inf for every failed row ("verification")."""
    n_pos, n_neg = _sizes(family, rng)
    pos, neg = _class_scores(family, rng, n_pos, n_neg)
    scores = np.concatenate([pos, neg])
    positive = np.array([True] * n_pos + [False] * n_neg)
    n_species = int(rng.integers(1, 4))
    names = np.array(["print", "replay", "mask"][:n_species])
    groups = np.where(positive, names[rng.integers(0, n_species, len(scores))], "bona_fide")
    failures = family in ("continuous", "tied") and rng.random() < 0.25
    if failures:
        failed = rng.random(len(scores)) < 0.1
        if failure_sign == "detection":
            scores[failed] = np.where(positive[failed], -INF, INF)
        else:
            scores[failed] = -INF
    n_subjects = int(rng.integers(2, 15))
    subjects = np.array([f"s{k}" for k in rng.integers(0, n_subjects, len(scores))], dtype=object)
    other = [f"s{(int(s[1:]) + int(rng.integers(1, n_subjects))) % n_subjects}" for s in subjects]
    pairs = np.empty((len(scores), 2), dtype=object)
    pairs[:, 0] = subjects
    pairs[:, 1] = np.where(positive, subjects, np.array(other, dtype=object))
    order = rng.permutation(len(scores))
    return TwoClassSet(
        scores[order], positive[order], groups[order], subjects[order], pairs[order], failures
    )


def search_table(family: str, rng: np.random.Generator) -> pd.DataFrame:
    """A seeded 1:N search table of `family` (columns of idv.metrics.identification, plus
    acquired). Gallery subjects are G*, non-mated probes N* (never enrolled). Lists hold 0-5
    candidates (an empty list is one row with rank, candidate and score NaN), a mate appears
    at most twice; scores fall with rank. Continuous, tied and tiny sets have failed searches
    one time in three; in separated sets every mate is at rank 1 above every other score."""
    tiny = family == "tiny"
    n_mated = int(rng.integers(1, 4)) if tiny else int(rng.integers(3, 41))
    n_non = int(rng.integers(1, 4)) if tiny else int(rng.integers(3, 61))
    gallery = [f"G{k}" for k in range(int(rng.integers(3, 12)))]
    non_mated_subjects = int(rng.integers(1, n_non + 1))
    levels = int(rng.integers(2, 5))
    tied = family == "tied" or (tiny and rng.random() < 0.5)
    fail_rate = 0.15 if family != "separated" and rng.random() < 1 / 3 else 0.0

    def score(mate: bool) -> float:
        if family == "separated":
            return float(rng.uniform(2.0, 3.0) if mate else rng.uniform(0.0, 1.0))
        if tied:
            return float(min(int(rng.integers(0, levels)) + int(mate), levels - 1))
        return float(rng.normal(1.5 if mate else 0.0, 1.0))

    rows = []
    for i in range(n_mated + n_non):
        mated = i < n_mated
        probe = str(rng.choice(gallery)) if mated else f"N{i % non_mated_subjects}"
        length = int(rng.integers(1 if family == "separated" else 0, 4 if tiny else 6))
        others = [g for g in gallery if g != probe]
        candidates = [(str(rng.choice(others)), score(False)) for _ in range(length)]
        if mated and length and (family == "separated" or rng.random() < 0.8):
            candidates[int(rng.integers(0, length))] = (probe, score(True))
            if family != "separated" and length > 1 and rng.random() < 0.1:
                candidates[int(rng.integers(0, length))] = (probe, score(True))
        candidates.sort(key=lambda c: -c[1])
        acquired = not rng.random() < fail_rate
        base = {"search_id": f"q{i}", "probe_sample_id": f"p{i}", "probe_subject_id": probe}
        base |= {"mated": mated, "acquired": acquired}
        if not acquired or not candidates:
            rows.append(base | {"rank": np.nan, "candidate_subject_id": None, "score": np.nan})
        for rank, (subject, value) in enumerate(candidates if acquired else [], start=1):
            rows.append(base | {"rank": rank, "candidate_subject_id": subject, "score": value})
    return pd.DataFrame(rows)


def draw_targets(
    rng: np.random.Generator, denominators: Sequence[int], count: int = 4, zero: bool = False
) -> list[float]:
    """Target rates: half from DECIMAL_TARGETS, half k / n for a drawn n of `denominators`
    (a rate the data reach exactly: the boundary case); k = 0 only when `zero`."""
    out = [float(rng.choice(DECIMAL_TARGETS)) for _ in range(count // 2)]
    for _ in range(count - count // 2):
        n = int(rng.choice(list(denominators)))
        out.append(int(rng.integers(0 if zero else 1, n + 1)) / n)
    return out
