"""Decision thresholds for a graph task (kind `graph`: rings), chosen on calib, reported on test.

A fraud team's operating point is either a false-positive rate (the share of legitimate
accounts sent to review) or a review capacity (the accounts its analysts can look at: here per
thousand new accounts). Each is an entry of thresholds.json:

- `fpr <= p` for each target p (`targets`, the first is THE operating point): the smallest
  threshold whose FPR on the calib split's legitimate accounts is <= p; it needs at least
  ceil(3 / p) legitimate calib accounts (rule of three), else it is an error;
- `flagged_share <= c / 1000` (`review_per_thousand` = c): the lowest threshold that flags at
  most c per thousand calib accounts (floor(c n / 1000), ties at the cut left out).

Score >= threshold -> `review` (the analyst queue); a watch band [review_at_or_above, threshold)
holding `review_share` of the calib accounts just below it -> `watch` (monitoring); below ->
`clear`. A failure to acquire (no score) goes to review. Test figures at each threshold: recall
(ring members flagged), FPR, precision and the flagged share, with percentile intervals from a
bootstrap that resamples rings (a ring's members are one unit) and legitimate accounts.
Segments are not calibrated separately here (a ring is not a geography): `segments` is
accepted and ignored, and the thresholds say so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from idv.calibration.reporting import check_bootstrap, check_score_range, rate_from_replicates
from idv.metrics.bootstrap import rate_replicates, resample_counts
from idv.metrics.ranking import threshold_at_fpr
from idv.metrics.rings import resampling_units
from idv.score_tables import require_splits, validate_detection_table
from idv.thresholds import (
    GLOBAL,
    DecisionRule,
    Entry,
    OperatingPoint,
    Rate,
    SplitReport,
    Thresholds,
    entry_id,
)

FPR = "fpr"
CAPACITY = "flagged_share"
RULE = DecisionRule(below="clear", review="watch", at_or_above="review", failure="review")
SCORE_RANGE = (0.0, 1.0)
CALIB_NOTE = "calib rates are on the rows the threshold was chosen on (optimistic by design)"


def calibrate_graph(
    table: pd.DataFrame,
    *,
    targets: Sequence[float] = (0.01,),
    review_per_thousand: float | None = 30.0,
    review_share: float = 0.05,
    bootstrap: Mapping[str, Any] | None = None,
    calib_split: str = "calib",
    report_split: str = "test",
    score_range: Sequence[float] = SCORE_RANGE,
    segments: Sequence[str] = (),
    source: str | None = None,
) -> Thresholds:
    """Thresholds at every FPR target and at the review capacity (module docstring)."""
    source = source or table.attrs.get("source", "score table")
    targets = [float(t) for t in (targets if isinstance(targets, Sequence) else [targets])]
    if not targets or any(not 0.0 < t < 1.0 for t in targets):
        raise ValueError(f"FPR targets must lie in (0, 1), got {targets}")
    if not 0.0 <= review_share < 1.0:
        raise ValueError(f"review_share must lie in [0, 1), got {review_share!r}")
    if calib_split == report_split or calib_split == "test":
        raise ValueError("thresholds come from a calibration split, never from the reported one")
    boot = check_bootstrap(bootstrap)
    frame = validate_detection_table(table, source)
    require_splits(frame, [calib_split, report_split], "calibration")
    calib = frame[(frame["split"] == calib_split) & frame["acquired"]]
    test = frame[frame["split"] == report_split]
    check_score_range(calib["score"].to_numpy(), tuple(score_range), source,
                      calib["sample_id"].to_numpy())  # fmt: skip
    s, y = calib["score"].to_numpy(np.float64), calib["label"].to_numpy(np.int64)
    if y.min(initial=1) == 1 or y.max(initial=0) == 0:
        raise ValueError(
            f"{source}: the {calib_split!r} split needs both legitimate and ring accounts"
        )
    entries = []
    for rank, target in enumerate(targets):
        needed = math.ceil(3.0 / target)
        if int((y == 0).sum()) < needed:
            raise ValueError(
                f"{source}: FPR <= {target:g} needs at least {needed} legitimate {calib_split!r} "
                f"accounts (rule of three), there are {int((y == 0).sum())}"
            )
        point = OperatingPoint(FPR, target, rank == 0)
        entries.append(_entry(point, threshold_at_fpr(s, y, target), s, y, calib, test,
                              review_share, boot))  # fmt: skip
    if review_per_thousand:
        share = float(review_per_thousand) / 1000.0
        k = max(1, math.floor(share * len(s) + 1e-9))  # the capacity: never more
        ranked = np.sort(s)[::-1]
        threshold = float(ranked[k - 1])
        if (s >= threshold).sum() > k:  # ties at the cut: flag no more than the capacity
            above = ranked[ranked > threshold]
            threshold = float(above[-1]) if len(above) else float(np.nextafter(threshold, np.inf))
        point = OperatingPoint(CAPACITY, share, True)
        entries.append(_entry(point, threshold, s, y, calib, test, review_share, boot))
    return Thresholds(
        kind="graph",
        task=None,
        decision=RULE,
        score_range=tuple(float(v) for v in score_range),
        operating_point=OperatingPoint(FPR, targets[0]),
        entries=tuple(entries),
        calibration_split=calib_split,
        report_split=report_split,
        settings={
            "targets": targets,
            "review_per_thousand": review_per_thousand,
            "review_share": float(review_share),
            "bootstrap": {**boot, "unit": "ring (members) or account", "interval": "percentile"},
            "segments": f"not calibrated per segment (asked: {list(segments)})",
            "rates": f"thresholds chosen on the acquired {calib_split!r} rows. {CALIB_NOTE}",
        },
        details={},
        source=str(source),
    )


def _entry(point, threshold, s, y, calib, test, review_share, boot) -> Entry:
    review = _watch_band(s, threshold, review_share)
    flagged = s >= threshold
    calib_rates = {
        "recall": Rate(
            float(flagged[y == 1].mean()), n=int((y == 1).sum()), count=int(flagged[y == 1].sum())
        ),
        "fpr": Rate(
            float(flagged[y == 0].mean()), n=int((y == 0).sum()), count=int(flagged[y == 0].sum())
        ),
        "flagged_share": Rate(float(flagged.mean()), n=len(s), count=int(flagged.sum())),
    }
    counts = {"accounts": len(s), "ring_accounts": int((y == 1).sum()),
              "rings": int(calib["ring_id"].nunique()) if "ring_id" in calib else None}  # fmt: skip
    return Entry(
        id=entry_id(point, None, GLOBAL),
        operating_point=point,
        segment_column=None,
        segment_value=GLOBAL,
        source="own",
        threshold=float(threshold),
        review_at_or_above=float(review),
        calib=SplitReport(counts, calib_rates, CALIB_NOTE),
        test=_test_report(test, float(threshold), float(review), boot),
    )


def _watch_band(scores: np.ndarray, threshold: float, share: float) -> float:
    """review_at_or_above: the band just below the threshold holds about `share` of calib."""
    below = np.sort(scores[scores < threshold])[::-1]
    n = int(round(share * len(scores)))
    if n == 0 or len(below) == 0:
        return float(threshold)
    return float(below[min(n, len(below)) - 1])


def _test_report(test: pd.DataFrame, t: float, a: float, boot: dict[str, Any]) -> SplitReport:
    """Recall, FPR, precision, flagged and watch shares on the report rows (no score: flagged)."""
    s = np.where(test["acquired"], test["score"].to_numpy(np.float64), np.inf)
    y = test["label"].to_numpy(np.int64)
    unit = resampling_units(test)
    counts = {"accounts": len(test), "ring_accounts": int((y == 1).sum()),
              "failures_to_acquire": int((~test["acquired"]).sum())}  # fmt: skip
    if len(np.unique(unit)) < 2:
        return SplitReport(counts, {}, "fewer than two resampling units: no bootstrap")
    codes, resamples = resample_counts(unit, boot["n_resamples"], boot["seed"])
    flagged = s >= t

    def rate(hit: np.ndarray, where: np.ndarray) -> Rate | None:
        if not where.any():
            return None
        e = hit.astype(np.float64)
        reps = rate_replicates(e, codes, resamples, where)
        return rate_from_replicates(float(e[where].mean()), reps, boot["level"],
                                    int(where.sum()), int(e[where].sum()))  # fmt: skip

    rates = {
        "recall": rate(flagged, y == 1),
        "fpr": rate(flagged, y == 0),
        "precision": rate(y == 1, flagged),
        "flagged_share": rate(flagged, np.ones(len(s), bool)),
        "watch_share": rate((s >= a) & (s < t), np.ones(len(s), bool)),
    }
    return SplitReport(counts, {k: v for k, v in rates.items() if v is not None})


def options_from_config(cfg) -> tuple[dict[str, Any], list[str]]:
    """`calibrate_graph`'s options from the composed `calibrate` config (no other table)."""
    from omegaconf import OmegaConf

    return {
        "targets": list(cfg.targets),
        "review_per_thousand": cfg.task.get("review_per_thousand"),
        "review_share": float(cfg.review_share),
        "bootstrap": OmegaConf.to_container(cfg.bootstrap, resolve=True),
        "calib_split": cfg.get("calib_split", "calib"),
        "report_split": cfg.get("report_split", "test"),
        "score_range": list(cfg.task.score_range),
        "segments": list(cfg.segments or []),
    }, []
