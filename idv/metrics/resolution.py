"""Can the data resolve this operating point? An answer of "no" is reported, never a number.

Rule of three: with zero errors in n independent trials the 95% upper bound on the error rate
is about 3/n, so an operating point at error rate p (FMR, APCER, FPIR, ...) is only measurable
with at least 3/p trials on the side whose rate is fixed. Trials of the same people are
correlated, so the distinct subjects on that side are counted as well.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_MIN_SUBJECTS = 10


@dataclass(frozen=True)
class NotSupported:
    """An operating point the data cannot resolve, and why (stands in for the number)."""

    reason: str

    def __str__(self) -> str:
        return f"not supported: {self.reason}"


def min_trials(target_rate: float) -> int:
    """Trials needed for `target_rate` by the rule of three: ceil(3 / p)."""
    _check_rate(target_rate)
    return math.ceil(round(3.0 / target_rate, 6))  # round: 3 / 1e-3 must not become 3001


def check_resolution(
    target_rate: float,
    n_trials: int,
    n_subjects: int | None,
    min_subjects: int = DEFAULT_MIN_SUBJECTS,
) -> NotSupported | None:
    """None when `n_trials` (and `n_subjects`, unless None = not counted) resolve `target_rate`."""
    needed = min_trials(target_rate)
    if n_trials < needed:
        return NotSupported(
            f"a rate of {target_rate:g} needs at least {needed} trials (rule of three), "
            f"have {n_trials}"
        )
    if n_subjects is not None and n_subjects < min_subjects:
        return NotSupported(
            f"a rate of {target_rate:g} needs trials from at least {min_subjects} distinct "
            f"subjects, have {n_subjects}"
        )
    return None


def count_subjects(subjects: Sequence | np.ndarray | None, rows: np.ndarray) -> int | None:
    """Distinct subjects over the selected `rows` (a boolean mask); None when not given.

    `subjects` has one id per row, or a pair per row (shape (n, 2), e.g. both sides of a
    comparison), in which case every id in the pair counts.
    """
    if subjects is None:
        return None
    ids = np.asarray(subjects, dtype=object)
    if ids.ndim not in (1, 2) or len(ids) != len(rows):
        raise ValueError(
            f"subjects must have one id (or one pair of ids) per row: {len(rows)} rows, "
            f"got shape {ids.shape}"
        )
    return len(set(ids[rows].ravel().tolist()))


def _check_rate(rate: float) -> None:
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"a target rate must lie in (0, 1], got {rate!r}")
