"""The threshold of an evaluation's thresholded figures, and where it came from.

Rates at a threshold, segments and differentials need one that did not come from the reported
split: a given `thresholds=<thresholds.json>` (the calibrated one; keys
`...@calibrated_threshold`), else the `val` split's (detection: its EER threshold,
`...@val_eer_threshold`; matching: the first protocol's threshold at the first FMR target). A
table without val rows and without a thresholds file (a vendor's scores on the test set) gets
every other figure, and the report says that the thresholded ones are not available: they are
never taken from the reported split.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

from idv.thresholds import Thresholds

VAL_EER, CALIBRATED = "val_eer_threshold", "calibrated_threshold"


@dataclass(frozen=True)
class OperatingThreshold:
    """The threshold of the thresholded figures, the name their keys carry, and a note."""

    value: float | None
    name: str
    note: str


def operating_threshold(cfg: DictConfig, val: tuple[float, str, str] | None) -> OperatingThreshold:
    """The given thresholds.json's global headline threshold, else `val` = (threshold, name,
    description) from the val split, else none (module docstring)."""
    if cfg.get("thresholds"):
        thresholds = Thresholds.load(cfg.thresholds)
        kind = cfg.task.kind
        if thresholds.kind != kind:
            raise ValueError(
                f"{cfg.thresholds}: thresholds of kind {thresholds.kind!r}, but task "
                f"{cfg.task.name!r} is of kind {kind!r}"
            )
        entry = thresholds.global_entry()
        note = (
            f"Thresholded figures at the calibrated threshold {entry.threshold:.4f} "
            f"(`{entry.id}` of `{cfg.thresholds}`)."
        )
        return OperatingThreshold(entry.threshold, CALIBRATED, note)
    if val is not None:
        value, name, what = val
        return OperatingThreshold(
            value, name, f"Thresholded figures at the {what} threshold {name} = {value:.4f}."
        )
    return OperatingThreshold(
        None,
        CALIBRATED,
        "Thresholded figures (rates at a threshold, segments, differentials) are not "
        "available: the table has no `val` rows and no thresholds.json was given "
        "(thresholds=<file>); a threshold is never taken from the reported split.",
    )
