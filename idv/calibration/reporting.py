"""What every calibrator shares: bootstrap options, rates with intervals, the Markdown view."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from idv import markdown
from idv.metrics.bootstrap import percentile_interval
from idv.thresholds import Rate, Thresholds

DEFAULT_BOOTSTRAP = {"n_resamples": 1000, "seed": 0, "level": 0.95}


def check_bootstrap(bootstrap: Mapping[str, Any] | None) -> dict[str, Any]:
    """The bootstrap options with defaults filled in; unknown keys and bad values are errors."""
    boot = {**DEFAULT_BOOTSTRAP, **dict(bootstrap or {})}
    unknown = set(boot) - set(DEFAULT_BOOTSTRAP)
    if unknown:
        raise KeyError(
            f"unknown bootstrap option(s) {sorted(unknown)}; known: n_resamples, seed, level"
        )
    if int(boot["n_resamples"]) != boot["n_resamples"] or boot["n_resamples"] < 1:
        raise ValueError(f"bootstrap.n_resamples must be a positive integer: {boot['n_resamples']}")
    if not 0.0 < boot["level"] < 1.0:
        raise ValueError(f"bootstrap.level must lie in (0, 1), got {boot['level']!r}")
    return {
        "n_resamples": int(boot["n_resamples"]),
        "seed": int(boot["seed"]),
        "level": float(boot["level"]),
    }


def rate_from_replicates(
    estimate: float, replicates: np.ndarray | None, level: float, n: int | None, count: int | None
) -> Rate:
    """A rate with its percentile interval over the bootstrap replicates (NaN replicates, from
    resamples without the rows, are dropped); no interval without replicates."""
    interval = None if replicates is None else percentile_interval(estimate, replicates, level)
    if interval is None:
        return Rate(float(estimate), n=n, count=count)
    return Rate(float(estimate), interval.low, interval.high, float(level), n, count)


def check_score_range(
    scores: np.ndarray, score_range: tuple[float, float], source: str, ids: np.ndarray
) -> tuple[float, float]:
    """The declared range of the scores; an acquired score outside it is an error naming it."""
    lo, hi = (float(v) for v in score_range)
    if not lo < hi:
        raise ValueError(f"score_range must be [lo, hi] with lo < hi, got {list(score_range)}")
    outside = (scores < lo) | (scores > hi)
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"{source}: score {float(scores[first])!r} of {ids[first]!r} lies outside the task's "
            f"score_range [{lo:g}, {hi:g}] ({int(outside.sum())} scores do): set task.score_range "
            "to the range the scores live in"
        )
    return lo, hi


def markdown_summary(thresholds: Thresholds) -> str:
    """thresholds.md: one line per threshold with its edges, source and the headline test
    rates (those without a species or group suffix), for every kind of task."""
    t = thresholds
    boot = t.settings.get("bootstrap") or {}
    headline = list(
        dict.fromkeys(name for e in t.entries for name in e.test.rates if "/" not in name)
    )
    lines = [
        f"# Thresholds{' for ' + t.task if t.task else ''} ({t.kind})",
        "",
        f"Chosen on split `{t.calibration_split}` only; rates on `{t.report_split}` with "
        f"{boot.get('level', 0.95):.0%} {boot.get('unit', 'subject')}-bootstrap intervals "
        f"({boot.get('n_resamples', '?')} resamples).",
        f"Headline operating point: {t.operating_point.metric} <= {t.operating_point.max:g}. "
        f"Decision rule: {t.decision.describe()}.",
        "",
    ]
    header = ["target", "segment", "threshold", "review at or above", "source"]
    rows = [
        [
            f"{e.operating_point.metric} <= {e.operating_point.max:g}",
            e.segment_name,
            f"{e.threshold:.4f}",
            f"{e.review_at_or_above:.4f}",
            e.source,
            *(str(e.test.rates.get(name, Rate(None))) for name in headline),
        ]
        for e in t.entries
    ]
    lines.append(markdown.table(header + [f"test {name}" for name in headline], rows))
    notes = sorted({e.test.note for e in t.entries if e.test.note})
    lines += ["", *[f"- {note}" for note in notes]] if notes else []
    extra = t.details.get("score_calibration")
    if extra:
        before = extra["test"]["ece_before"]
        lines += [
            "",
            f"Score calibration `{extra['params']['method']}` (fitted on calib): ECE on test "
            f"{'n/a' if before is None else f'{before:.4f}'} before, "
            f"{extra['test']['ece_after']:.4f} after.",
        ]
    for name, item in (t.inputs or {}).items():
        if isinstance(item, Mapping) and item.get("path"):
            lines += ["", f"Input {name}: `{item['path']}` (sha256 `{item.get('sha256')}`)."]
    return "\n".join(lines) + "\n"
