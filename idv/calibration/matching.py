"""Verification thresholds at FMR targets, chosen on the calib split's comparison table.

The decision rule of 1:1 matching: similarity >= threshold -> match; a review band just below
it (a share of the calib genuine comparisons) -> review; otherwise -> non-match; a failure to
acquire -> non-match. Thresholds come from one comparison protocol (default: ID portrait vs
selfie, the onboarding case), globally and per probe segment where the segment's impostors
resolve the target (rule of three, min_subjects impostor subjects); test rates are reported
beside them with probe-subject bootstrap intervals, never fed back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from idv.metrics.bootstrap import bootstrap_rate
from idv.metrics.resolution import check_resolution, count_subjects
from idv.metrics.verification import generalised_similarities, threshold_at_fmr

SCHEMA_VERSION = 1
METRIC = "fmr"
GLOBAL = "global"


def _scores(rows: pd.DataFrame) -> np.ndarray:
    """Similarities with failures to acquire at -inf (never a match)."""
    return generalised_similarities(rows["score"].to_numpy(np.float64), rows["acquired"])


def _resolves(rows: pd.DataFrame, target: float, min_subjects: int) -> str | None:
    impostors = ~rows["genuine"].to_numpy(bool)
    pairs = rows[["subject_id_a", "subject_id_b"]].to_numpy(dtype=object)
    verdict = check_resolution(
        target, int(impostors.sum()), count_subjects(pairs, impostors), min_subjects
    )
    return None if verdict is None else verdict.reason


def _choose(rows: pd.DataFrame, target: float, review_share: float) -> dict[str, Any]:
    scores, genuine = _scores(rows), rows["genuine"].to_numpy(bool)
    threshold = threshold_at_fmr(scores, genuine, target)
    below = np.sort(scores[genuine & (scores < threshold)])[::-1]
    n_review = int(round(review_share * genuine.sum()))
    review = float(below[n_review - 1]) if 0 < n_review <= len(below) else threshold
    return {
        "threshold": float(threshold),
        "review_at_or_above": review,
        "calib": _rates(scores, genuine, threshold)
        | {"genuine": int(genuine.sum()), "impostors": int((~genuine).sum())},
    }


def _rates(scores: np.ndarray, genuine: np.ndarray, threshold: float) -> dict[str, float]:
    match = scores >= threshold
    return {
        "fnmr": float((~match[genuine]).mean()) if genuine.any() else float("nan"),
        "fmr": float(match[~genuine].mean()) if (~genuine).any() else float("nan"),
    }


def _test_report(rows: pd.DataFrame, threshold: float, boot: Mapping[str, Any]) -> dict:
    scores, genuine = _scores(rows), rows["genuine"].to_numpy(bool)
    report: dict[str, Any] = _rates(scores, genuine, threshold) | {
        "genuine": int(genuine.sum()),
        "impostors": int((~genuine).sum()),
    }
    subjects = rows["subject_id_b"].astype(str).to_numpy()
    if len(set(subjects)) >= 2:
        match = scores >= threshold
        for name, errors, where in (("fnmr", ~match, genuine), ("fmr", match, ~genuine)):
            if where.any():
                interval = bootstrap_rate(errors, subjects, where=where, **boot)
                report[f"{name}_ci"] = [interval.low, interval.high]
    return report


def calibrate_matching(
    table: pd.DataFrame,
    *,
    targets: Sequence[float],
    protocol: str = "portrait_selfie",
    segments: Sequence[str] = ("geography",),
    min_subjects: int = 10,
    review_share: float = 0.05,
    bootstrap: Mapping[str, Any] | None = None,
    calib_split: str = "calib",
    report_split: str = "test",
    source: str = "comparison table",
) -> dict[str, Any]:
    """The content of thresholds.json for a matching task (see the module docstring)."""
    if calib_split == "test" or calib_split == report_split:
        raise ValueError("thresholds come from a calibration split, never from the reported one")
    boot = dict(bootstrap or {"n_resamples": 1000, "seed": 0, "level": 0.95})
    rows = table[table["protocol"] == protocol]
    calib, test = rows[rows["split"] == calib_split], rows[rows["split"] == report_split]
    if calib.empty:
        raise ValueError(f"{source}: no {protocol!r} comparisons in split {calib_split!r}")
    entries = []
    for rank, target in enumerate(float(t) for t in targets):
        problem = _resolves(calib, target, min_subjects)
        if problem:
            raise ValueError(
                f"{source}: the {calib_split!r} split cannot resolve FMR <= {target:g} "
                f"({protocol}): {problem}. Use a larger target or more calibration data"
            )
        point = {"metric": METRIC, "max": target, "primary": rank == 0}
        glob = _choose(calib, target, review_share)
        groups: list[tuple[str | None, Any, pd.DataFrame, pd.DataFrame]] = [
            (None, GLOBAL, calib, test)
        ]
        for column in (c for c in segments if c in rows.columns):
            for value in sorted(rows[column].dropna().unique(), key=str):
                groups.append(
                    (column, value, calib[calib[column] == value], test[test[column] == value])
                )
        for column, value, seg_calib, seg_test in groups:
            chosen, why = glob, "own" if column is None else "global"
            if column is not None:
                problem = _resolves(seg_calib, target, min_subjects) if len(seg_calib) else "absent"
                if problem is None:
                    chosen, why = _choose(seg_calib, target, review_share), "own"
                else:
                    why = f"global (segment: {problem})"
            name = GLOBAL if column is None else f"{column}={value}"
            entries.append(
                {
                    "id": f"{METRIC}<={target:g}|{name}",
                    "operating_point": point,
                    "segment": {"column": column, "value": _plain(value)},
                    "source": why,
                    "threshold": chosen["threshold"],
                    "calib": chosen["calib"],
                    "decision": {
                        "match_at_or_above": chosen["threshold"],
                        "review_at_or_above": chosen["review_at_or_above"],
                    },
                    "test": _test_report(seg_test, chosen["threshold"], boot),
                }
            )
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "matching",
        "decision_rule": (
            "similarity >= match_at_or_above -> match; review_at_or_above <= similarity < "
            "match_at_or_above -> review; otherwise, or a failure to acquire -> non-match"
        ),
        "protocol": protocol,
        "operating_point": {"metric": METRIC, "max": float(targets[0])},
        "targets": [float(t) for t in targets],
        "calibration_split": calib_split,
        "report_split": report_split,
        "segment_columns": [c for c in segments if c in rows.columns],
        "min_subjects": int(min_subjects),
        "review_share": float(review_share),
        "bootstrap": {**boot, "unit": "probe subject", "interval": "percentile"},
        "thresholds": entries,
    }


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def markdown_summary(result: Mapping[str, Any]) -> str:
    """thresholds.md: one line per threshold with its calib and test rates."""
    lines = [
        f"# Verification thresholds ({result['protocol']}, chosen on "
        f"{result['calibration_split']}, reported on {result['report_split']})",
        "",
        f"Rule: {result['decision_rule']}.",
        "",
        "| id | threshold | source | calib FMR | calib FNMR | test FMR | test FNMR |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in result["thresholds"]:
        c, t, name = e["calib"], e["test"], e["id"].replace("|", " / ")
        lines.append(
            f"| {name} | {e['threshold']:.4f} | {e['source']} | {c['fmr']:.4g} | "
            f"{c['fnmr']:.4g} | {t['fmr']:.4g} | {t['fnmr']:.4g} |"
        )
    return "\n".join(lines) + "\n"
