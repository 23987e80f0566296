"""1:1 verification metrics (NIST FRTE 1:1, ISO/IEC 19795-1) over comparison scores.

Conventions: a comparison score is a similarity (higher = same person) and `genuine` is 1 for
same-person comparisons. A pair is declared a match when `score >= t`, so
FNMR(t) = share of genuine comparisons with score < t and FMR(t) = share of impostor
comparisons with score >= t.

Failure to acquire (no face found, a vendor that did not answer) is a rejection: its score
becomes -inf, so it adds to FNMR on genuine comparisons and can never be a false match. Rates
over such scores are the generalised rates of ISO/IEC 19795-1 (the failures stay in the
denominators), and -inf is the only non-finite score accepted.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from idv.metrics.detection import EER, eer
from idv.metrics.resolution import (
    DEFAULT_MIN_SUBJECTS,
    NotSupported,
    check_resolution,
    count_subjects,
)
from idv.score_tables import COMPARISON_COLUMNS, validate_comparison_table

__all__ = [
    "COMPARISON_COLUMNS",
    "fnmr_at_fmr",
    "fnmr_fmr",
    "generalised_similarities",
    "tar_at_far",
    "threshold_at_fmr",
    "verification_eer",
    "verification_report",
]

DEFAULT_FMR_TARGETS = (1e-2, 1e-3, 1e-4)


def generalised_similarities(
    scores: Sequence[float], acquired: Sequence[bool] | None
) -> np.ndarray:
    """Scores with every failure to acquire replaced by -inf (a non-match at any threshold).

    Unacquired rows may hold anything (NaN included); acquired rows must be finite.
    """
    s = np.asarray(scores, dtype=np.float64).copy()
    if acquired is None:
        ok = np.ones(len(s), dtype=bool)
    else:
        ok = _bools(acquired, "acquired")
        if ok.shape != s.shape:
            raise ValueError(f"scores and acquired differ in shape: {s.shape}, {ok.shape}")
    bad = np.nonzero(ok & ~np.isfinite(s))[0]
    if len(bad):
        raise ValueError(
            f"acquired comparisons have non-finite scores at positions {bad[:10].tolist()}: "
            "mark a failure to acquire with acquired=False instead"
        )
    s[~ok] = -np.inf
    return s


def fnmr_fmr(
    scores: Sequence[float], genuine: Sequence[bool], thresholds: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """(FNMR, FMR) at each threshold, over all genuine / impostor comparisons."""
    s, g = _comparisons(scores, genuine)
    t = np.asarray(thresholds, dtype=np.float64)
    gen, imp = np.sort(s[g]), np.sort(s[~g])
    fnmr = np.searchsorted(gen, t, side="left") / len(gen)
    # Counts over n, not 1 - share: 3/300 must compare equal to a 0.01 target.
    fmr = (len(imp) - np.searchsorted(imp, t, side="left")) / len(imp)
    return fnmr, fmr


def threshold_at_fmr(scores: Sequence[float], genuine: Sequence[bool], max_fmr: float) -> float:
    """The smallest threshold with FMR <= `max_fmr`: the lowest FNMR that meets the target.

    Candidates are the distinct scores and +inf (where FMR = 0); every achievable
    (FNMR, FMR) pair is reached at one of them.
    """
    s, g = _comparisons(scores, genuine)
    t = np.append(np.unique(s), np.inf)
    _, fmr = fnmr_fmr(s, g, t)
    return float(t[np.argmax(fmr <= max_fmr)])  # FMR falls with t and is 0 at +inf


def fnmr_at_fmr(
    scores: Sequence[float],
    genuine: Sequence[bool],
    max_fmr: float,
    subjects: Sequence | np.ndarray | None = None,
    min_subjects: int = DEFAULT_MIN_SUBJECTS,
) -> float | NotSupported:
    """FNMR at the threshold where FMR <= `max_fmr`, or NotSupported when the impostor
    comparisons cannot resolve `max_fmr` (rule of three; with `subjects`, one id or an
    (a, b) pair per comparison, also fewer than `min_subjects` impostor subjects)."""
    s, g = _comparisons(scores, genuine)
    verdict = check_resolution(max_fmr, int((~g).sum()), count_subjects(subjects, ~g), min_subjects)
    if verdict is not None:
        return verdict
    fnmr, _ = fnmr_fmr(s, g, [threshold_at_fmr(s, g, max_fmr)])
    return float(fnmr[0])


def tar_at_far(
    scores: Sequence[float],
    genuine: Sequence[bool],
    max_far: float,
    subjects: Sequence | np.ndarray | None = None,
    min_subjects: int = DEFAULT_MIN_SUBJECTS,
) -> float | NotSupported:
    """True accept rate (1 - FNMR, counted: accepted genuine over genuine) at FMR <= `max_far`;
    same resolution rules as fnmr_at_fmr."""
    s, g = _comparisons(scores, genuine)
    verdict = check_resolution(max_far, int((~g).sum()), count_subjects(subjects, ~g), min_subjects)
    if verdict is not None:
        return verdict
    return float((s[g] >= threshold_at_fmr(s, g, max_far)).mean())


def verification_eer(scores: Sequence[float], genuine: Sequence[bool]) -> EER:
    """EER where FNMR = FMR, and its threshold on the similarity scale.

    Reuses `detection.eer` by giving the genuine class the role of the detection positive
    (the class that scores high), not by negating the scores: detection's APCER(t) = share of
    positives < t is then exactly FNMR(t), and BPCER(t) = share of negatives >= t is FMR(t),
    with the same `>=` at ties. Failures to acquire (-inf) take a finite stand-in below every
    score; a threshold interpolated into that gap is reported as the lowest finite score.
    """
    s, g = _comparisons(scores, genuine)
    finite = np.isfinite(s)
    if not finite.any():
        raise ValueError("every comparison failed to acquire: the EER is undefined")
    low = float(s[finite].min())
    stand_in = low - max(1.0, float(s[finite].max()) - low)
    point = eer(np.where(finite, s, stand_in), g.astype(np.int64))
    return EER(point.rate, max(point.threshold, low))


def verification_report(
    table: pd.DataFrame,
    fmr_targets: Sequence[float] = DEFAULT_FMR_TARGETS,
    min_subjects: int = DEFAULT_MIN_SUBJECTS,
) -> dict[str, float | NotSupported]:
    """Headline 1:1 figures over a comparison table, flat keys (`fnmr_at_fmr_1e-03`, ...).

    Columns: comparison_id, sample_id_a, sample_id_b, subject_id_a, subject_id_b, genuine,
    score, and optionally acquired (False = failure to acquire; its score may be NaN).
    Subjects are counted on both sides of the impostor comparisons for resolution.
    """
    g, s, pairs, acquired = _comparison_table(table)
    result: dict[str, float | NotSupported] = {
        "genuine_comparisons": int(g.sum()),
        "impostor_comparisons": int((~g).sum()),
        "impostor_subjects": count_subjects(pairs, ~g),
        "fta_rate": float(1.0 - acquired.mean()),
    }
    point = verification_eer(s, g)
    result["eer"] = point.rate
    result["eer_threshold"] = point.threshold
    for target in fmr_targets:
        result[f"fnmr_at_fmr_{target:.0e}"] = fnmr_at_fmr(s, g, target, pairs, min_subjects)
        result[f"tar_at_far_{target:.0e}"] = tar_at_far(s, g, target, pairs, min_subjects)
    return result


def _bools(values: Sequence, name: str) -> np.ndarray:
    """A boolean array from booleans or 0/1 (NaN, None and other values are errors)."""
    v = np.asarray(values)
    if v.dtype == bool:
        return v
    if not pd.Series(v.ravel()).isin([True, False]).all():  # isin(True) also takes 1, 1.0
        raise ValueError(f"{name} must be boolean (or 0/1), got values {pd.unique(v.ravel())[:5]}")
    return v.astype(bool)


def _comparisons(scores: Sequence[float], genuine: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    g = _bools(genuine, "genuine")
    if s.shape != g.shape or s.ndim != 1:
        raise ValueError(f"scores and genuine must be 1-D of one length, got {s.shape}, {g.shape}")
    if np.isnan(s).any() or np.isposinf(s).any():
        bad = np.nonzero(np.isnan(s) | np.isposinf(s))[0]
        raise ValueError(
            f"scores are NaN or +inf at positions {bad[:10].tolist()}: only a failure to "
            "acquire may be non-finite, and it becomes -inf (see generalised_similarities)"
        )
    if g.all() or not g.any():
        raise ValueError("need both genuine and impostor comparisons")
    return s, g


def _comparison_table(
    table: pd.DataFrame,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(genuine, generalised scores, (subject_a, subject_b) pairs, acquired), validated by the
    comparison table's contract (`idv.score_tables`)."""
    t = validate_comparison_table(table, table.attrs.get("source"))
    acquired = t["acquired"].to_numpy()
    s = generalised_similarities(t["score"].to_numpy(), acquired)
    pairs = t[["subject_id_a", "subject_id_b"]].to_numpy(dtype=object)
    return t["genuine"].to_numpy(), s, pairs, acquired
