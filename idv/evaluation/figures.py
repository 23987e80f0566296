"""Figures of detection systems side by side, shared by the figures scripts (one per task).

Every system is scored on the same items (a score table's rows: `label`, `attack_type`,
`subject_id`), so the intervals are subject bootstraps (95%) and a comparison is a *paired*
subject bootstrap of the EER difference (candidate - reference: > 0 means the reference is
better; an interval excluding 0 is a significant difference). Tables only: no torch here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from idv.metrics.bootstrap import bootstrap_curve, eer_statistic, paired_bootstrap_difference
from idv.metrics.detection import apcer_at_bpcer, apcer_per_species, auc, eer

BPCER_POINTS = (0.05, 0.10)
WORST_AT_BPCER = 0.10  # the operating point of the tables' "worst APCER" column
FIGURE_HEADER = (
    "EER [95% CI]",
    "APCER per species at the EER threshold",
    f"worst APCER @ BPCER {WORST_AT_BPCER:.0%}",
)


def _columns(items: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = items["label"].to_numpy()
    species = items["attack_type"].astype(str).to_numpy()
    return labels, species, items["subject_id"].astype(str).to_numpy()


def detection_figures(
    scores: np.ndarray,
    items: pd.DataFrame,
    resamples: int,
    bpcer_points: Sequence[float] = BPCER_POINTS,
) -> dict[str, Any]:
    """EER with its subject-bootstrap interval, APCER per species at the EER threshold, and
    APCER per species at the thresholds meeting `bpcer_points` (None: not resolvable)."""
    labels, species, subjects = _columns(items)
    point = eer(scores, labels)
    ci = bootstrap_curve(scores, labels, subjects, eer_statistic, n_resamples=resamples)
    at_bpcer = {}
    for target in bpcer_points:
        per = {}
        for name in sorted(set(species[labels == 1])):
            rows = (labels == 0) | (species == name)
            value = apcer_at_bpcer(scores[rows], labels[rows], species[rows], target)
            per[name] = value if isinstance(value, float) else None
        at_bpcer[f"{target:g}"] = per
    per_species = apcer_per_species(scores, labels, species, point.threshold)
    return {
        "eer": float(point.rate),
        "eer_ci": [float(ci.low), float(ci.high)],
        "apcer_at_eer": {k: float(v) for k, v in per_species.items()},
        "apcer_at_bpcer": at_bpcer,
    }


def auc_per_species(scores: np.ndarray, items: pd.DataFrame) -> dict[str, float]:
    """ROC AUC of bona fide against each attack species alone (which attacks a system ranks
    well, whatever threshold it would be run at)."""
    labels, species, _ = _columns(items)
    out = {}
    for name in sorted(set(species[labels == 1])):
        rows = (labels == 0) | (species == name)
        out[name] = float(auc(scores[rows], labels[rows]))
    return out


def paired_eer_difference(
    reference: np.ndarray, candidate: np.ndarray, items: pd.DataFrame, resamples: int
) -> list[float]:
    """[estimate, low, high] of EER(candidate) - EER(reference), paired subject bootstrap."""
    labels, _, subjects = _columns(items)
    diff = paired_bootstrap_difference(
        reference, candidate, labels, subjects, eer_statistic, n_resamples=resamples
    )
    return [diff.estimate, diff.low, diff.high]


def compare_systems(
    systems: Mapping[str, np.ndarray],
    items: pd.DataFrame,
    resamples: int,
    versus: str,
    bpcer_points: Sequence[float] = BPCER_POINTS,
) -> dict[str, dict[str, Any]]:
    """`detection_figures` of every system; each but the first (the reference) also gets
    `eer_minus_<versus>`, its paired EER difference against the reference."""
    reference = next(iter(systems))
    rows = {}
    for name, scores in systems.items():
        rows[name] = detection_figures(scores, items, resamples, bpcer_points)
        if name != reference:
            rows[name][f"eer_minus_{versus}"] = paired_eer_difference(
                systems[reference], scores, items, resamples
            )
    return rows


def rate_cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def difference_cell(d: Sequence[float] | None) -> str:
    """A paired difference as `+0.012 [-0.004, +0.030]`; `-` for the reference itself."""
    return f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]" if d else "-"


def per_species_cell(values: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in values.items())


def figure_cells(f: Mapping[str, Any]) -> list[str]:
    """The FIGURE_HEADER cells of one `detection_figures` result."""
    low, high = f["eer_ci"]
    known = [v for v in f["apcer_at_bpcer"][f"{WORST_AT_BPCER:g}"].values() if v is not None]
    worst = f"{max(known):.3f}" if known else "n/a"
    return [f"{f['eer']:.3f} [{low:.3f}, {high:.3f}]", per_species_cell(f["apcer_at_eer"]), worst]


SYSTEM_HEADER = ("system", *FIGURE_HEADER, "AUC per species")


def compare_with_auc(
    systems: Mapping[str, np.ndarray], items: pd.DataFrame, resamples: int, versus: str
) -> dict[str, dict[str, Any]]:
    """`compare_systems` with each system's AUC per species added (`system_rows` reads it)."""
    rows = compare_systems(systems, items, resamples, versus=versus)
    for name, scores in systems.items():
        rows[name]["auc_per_species"] = auc_per_species(scores, items)
    return rows


def system_rows(systems: Mapping[str, Mapping[str, Any]], versus: str) -> list[list[str]]:
    """One table row per system of `compare_with_auc` (SYSTEM_HEADER, then its paired EER
    difference against the reference)."""
    return [
        [name, *figure_cells(f), per_species_cell(f["auc_per_species"]),
         difference_cell(f.get(f"eer_minus_{versus}"))]
        for name, f in systems.items()
    ]  # fmt: skip
