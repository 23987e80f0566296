"""Detection metrics (ISO/IEC 30107-3 for PAD): pure functions over score arrays.

Conventions, everywhere: label 1 is the attack (positive), a higher score means "more likely
attack", and a sample is classified attack when `score >= threshold`. So at threshold t:
APCER(t) = share of attacks with score < t; BPCER(t) = share of bona fide with score >= t.
A failure to acquire enters as +inf for a bona fide (raises BPCER) and -inf for an attack
(raises APCER): see `generalised_scores`. NaN is an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from idv.metrics.ranking import checked_scores, roc_auc
from idv.metrics.resolution import (
    DEFAULT_MIN_SUBJECTS,
    NotSupported,
    check_resolution,
    count_subjects,
)

BONA_FIDE = "bona_fide"


def _arrays(scores: Sequence[float], labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Validated float scores and 0/1 int labels with both classes (the ranking module's check;
    failures to acquire arrive as +/-inf, see generalised_scores)."""
    s, y = checked_scores(scores, labels, need_both=True)
    return s, y.astype(np.int64)


def error_rates(
    scores: Sequence[float], labels: Sequence[int], thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(APCER, BPCER) over all attacks / bona fide at each threshold."""
    s, y = _arrays(scores, labels)
    attacks, bona = np.sort(s[y == 1]), np.sort(s[y == 0])
    apcer = np.searchsorted(attacks, thresholds, side="left") / len(attacks)
    # Counts over n, not 1 - share: 3/300 must compare equal to a 0.01 target.
    bpcer = (len(bona) - np.searchsorted(bona, thresholds, side="left")) / len(bona)
    return apcer, bpcer


def candidate_thresholds(scores: np.ndarray) -> np.ndarray:
    """Every distinct score, plus +inf (everything acquired accepted as bona fide)."""
    return np.unique(np.append(scores, np.inf))


def auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """ROC AUC = P(attack score > bona fide score) + 0.5 P(tie) (Mann-Whitney)."""
    s, y = _arrays(scores, labels)
    return roc_auc(s, y)


@dataclass(frozen=True)
class EER:
    """Equal error rate and the threshold where APCER and BPCER cross."""

    rate: float
    threshold: float


def eer(scores: Sequence[float], labels: Sequence[int]) -> EER:
    """EER by linear interpolation between the two ROC points that bracket APCER = BPCER.

    APCER rises and BPCER falls with the threshold; at the first candidate threshold where
    APCER >= BPCER, the crossing of the segment from the previous point is taken, for the
    rate and (linearly) for the threshold. The +inf end point takes the largest finite score.
    """
    s, y = _arrays(scores, labels)
    t = candidate_thresholds(s)
    apcer, bpcer = error_rates(s, y, t)
    gap = bpcer - apcer
    if not (gap <= 0).any():  # failures to acquire keep BPCER above APCER everywhere
        return EER(float("nan"), float("inf"))
    k = int(np.argmax(gap <= 0))  # gap is non-increasing
    if gap[k] == 0 or k == 0:
        return EER(float(apcer[k]), float(t[k] if np.isfinite(t[k]) else t[k - 1]))
    alpha = gap[k - 1] / (gap[k - 1] - gap[k])
    rate = apcer[k - 1] + alpha * (apcer[k] - apcer[k - 1])
    t_hi = t[k] if np.isfinite(t[k]) else t[k - 1]
    return EER(float(rate), float(t[k - 1] + alpha * (t_hi - t[k - 1])))


def apcer_per_species(
    scores: Sequence[float], labels: Sequence[int], species: Sequence[str], threshold: float
) -> dict[str, float]:
    """APCER of each attack species at `threshold` (bona fide rows are ignored)."""
    s, y = _arrays(scores, labels)
    sp = np.asarray(species).astype(str)
    return {
        name: float((s[(y == 1) & (sp == name)] < threshold).mean())
        for name in sorted(set(sp[y == 1]))
    }


def bpcer(scores: Sequence[float], labels: Sequence[int], threshold: float) -> float:
    s, y = _arrays(scores, labels)
    return float((s[y == 0] >= threshold).mean())


def threshold_at_worst_apcer(
    scores: Sequence[float], labels: Sequence[int], species: Sequence[str], max_apcer: float
) -> float:
    """The largest threshold whose worst-species APCER is <= `max_apcer`: the lowest BPCER
    that meets the target (APCER only rises with the threshold)."""
    s, y = _arrays(scores, labels)
    sp = np.asarray(species).astype(str)
    t = candidate_thresholds(s)
    worst = np.zeros(len(t))
    for name in set(sp[y == 1]):
        attack = np.sort(s[(y == 1) & (sp == name)])
        worst = np.maximum(worst, np.searchsorted(attack, t, side="left") / len(attack))
    ok = np.nonzero(worst <= max_apcer)[0]  # never empty: worst APCER is 0 at the lowest score
    return float(t[ok[-1]])


def bpcer_at_worst_apcer(
    scores: Sequence[float], labels: Sequence[int], species: Sequence[str], max_apcer: float
) -> float:
    """BPCER at the operating point where the worst species' APCER is at most `max_apcer`
    (BPCER10 / BPCER20 / BPCER100 for 10% / 5% / 1%)."""
    return bpcer(scores, labels, threshold_at_worst_apcer(scores, labels, species, max_apcer))


def acer_legacy(worst_apcer: float, bpcer_value: float) -> float:
    """ACER = (worst APCER + BPCER) / 2: not in ISO/IEC 30107-3, reported for comparability."""
    return (worst_apcer + bpcer_value) / 2.0


def pct(rate: float) -> str:
    """Operating-point suffix for metric keys: 0.1 -> '10pct', 0.01 -> '1pct'."""
    return f"{rate * 100:g}pct"


def worst_apcer_resolution(
    labels: Sequence[int],
    species: Sequence[str],
    target: float,
    subjects: Sequence | None = None,
    min_subjects: int = DEFAULT_MIN_SUBJECTS,
) -> NotSupported | None:
    """Can every attack species resolve an APCER of `target`? (rule of three per species, and
    `min_subjects` subjects per species when `subjects` is given)."""
    y, sp = np.asarray(labels), np.asarray(species).astype(str)
    for name in sorted(str(n) for n in set(sp[y == 1])):
        rows = (y == 1) & (sp == name)
        verdict = check_resolution(
            target, int(rows.sum()), count_subjects(subjects, rows), min_subjects
        )
        if verdict is not None:
            return NotSupported(f"species {name!r}: {verdict.reason}")
    return None


def detection_report(
    scores: Sequence[float],
    labels: Sequence[int],
    species: Sequence[str],
    threshold: float | None,
    threshold_name: str,
    apcer_targets: Sequence[float] = (0.01, 0.05, 0.10),
    bpcer_targets: Sequence[float] = (0.01,),
    subjects: Sequence | None = None,
    min_subjects: int = DEFAULT_MIN_SUBJECTS,
) -> dict[str, float | NotSupported]:
    """Flat headline metrics; thresholded figures carry `threshold_name` in their key (none
    when `threshold` is None). An operating point the data cannot resolve is a NotSupported,
    never a number."""
    result: dict[str, float | NotSupported] = {
        "auc": auc(scores, labels),
        "eer": eer(scores, labels).rate,
    }
    for target in apcer_targets:
        verdict = worst_apcer_resolution(labels, species, target, subjects, min_subjects)
        result[f"bpcer_at_worst_apcer_{pct(target)}"] = verdict or bpcer_at_worst_apcer(
            scores, labels, species, target
        )
    for target in bpcer_targets:
        result[f"apcer_at_bpcer_{pct(target)}"] = apcer_at_bpcer(
            scores, labels, species, target, subjects, min_subjects
        )
    if threshold is None:
        return result
    per_species = apcer_per_species(scores, labels, species, threshold)
    for name, value in per_species.items():
        result[f"apcer_{name}@{threshold_name}"] = value
    worst = max(per_species.values())
    result[f"apcer_worst@{threshold_name}"] = worst
    result[f"bpcer@{threshold_name}"] = bpcer(scores, labels, threshold)
    result[f"acer_legacy@{threshold_name}"] = acer_legacy(worst, result[f"bpcer@{threshold_name}"])
    return result


def generalised_scores(
    scores: Sequence[float], acquired: Sequence[bool], labels: Sequence[int] | None = None
) -> np.ndarray:
    """Scores with every failure to acquire kept in as an error against the system.

    A bona fide that was not acquired becomes +inf: flagged at every threshold, so it raises
    BPCER (ISO/IEC 19795-1's generalised rates). Given `labels`, an attack that was not
    acquired becomes -inf: passed at every threshold, so it raises APCER. Counting it as caught
    (+inf) would lower APCER, and a system (or a vendor) could look better by failing on its
    hardest attacks; the blueprint's rule is that a failure never lowers APCER or FMR.
    Unacquired rows may hold NaN; acquired rows must be finite.
    """
    s = np.asarray(scores, dtype=np.float64).copy()
    ok = np.asarray(acquired)
    if ok.dtype != bool:
        if not np.isin(ok, (0, 1)).all():
            raise ValueError("acquired must be boolean (or 0/1)")
        ok = ok.astype(bool)
    if ok.shape != s.shape or s.ndim != 1:
        raise ValueError(f"scores and acquired must be 1-D of one length: {s.shape}, {ok.shape}")
    bad = np.nonzero(ok & ~np.isfinite(s))[0]
    if len(bad):
        raise ValueError(
            f"acquired samples have non-finite scores at positions {bad[:10].tolist()}: "
            "mark a failure to acquire with acquired=False instead"
        )
    s[~ok] = np.inf
    if labels is not None:
        s[~ok & (np.asarray(labels) == 1)] = -np.inf
    return s


def apcer_at_bpcer(
    scores: Sequence[float],
    labels: Sequence[int],
    species: Sequence[str],
    max_bpcer: float,
    subjects: Sequence | np.ndarray | None = None,
    min_subjects: int = DEFAULT_MIN_SUBJECTS,
) -> float | NotSupported:
    """Worst-species APCER at the smallest threshold with BPCER <= `max_bpcer` (the lowest
    APCER meeting it), or NotSupported when the bona fide presentations cannot resolve
    `max_bpcer` (rule of three; with `subjects`, one id per row, also fewer than
    `min_subjects` bona fide subjects). Accepts the +/-inf of `generalised_scores`."""
    s = np.asarray(scores, dtype=np.float64)
    if np.isnan(s).any():
        raise ValueError(
            "scores are NaN: only a failure to acquire may be non-finite, as +/-inf "
            "(see generalised_scores)"
        )
    _, y = _arrays(s, labels)
    sp = np.asarray(species).astype(str)
    if sp.shape != s.shape:
        raise ValueError(f"species must have one entry per score, got shape {sp.shape}")
    verdict = check_resolution(
        max_bpcer, int((y == 0).sum()), count_subjects(subjects, y == 0), min_subjects
    )
    if verdict is not None:
        return verdict
    bona = np.sort(s[y == 0])
    t = np.unique(np.append(s, np.inf))
    # Counts over n, not 1 - share: 3/300 must compare equal to a 0.01 target.
    flagged = (len(bona) - np.searchsorted(bona, t, side="left")) / len(bona)
    ok = np.nonzero(flagged <= max_bpcer)[0]
    if len(ok) == 0:  # BPCER falls with t, but failures to acquire are flagged even at +inf
        return NotSupported(
            f"failures to acquire alone put BPCER above {max_bpcer:g} at every threshold"
        )
    return max(float((s[(y == 1) & (sp == name)] < t[ok[0]]).mean()) for name in set(sp[y == 1]))
