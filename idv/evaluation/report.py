"""The Markdown evaluation report: what a person reads before trusting a model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from idv import markdown
from idv.evaluation.segments import Differential


def _fmt(value: object) -> str:
    if value is None:
        return "not supported (see notes)"
    if isinstance(value, float | np.floating):
        return "n/a" if np.isnan(value) else f"{value:.4f}"
    return str(value)


def markdown_table(frame: pd.DataFrame) -> str:
    return markdown.table(frame.columns, frame.itertuples(False), _fmt)


def markdown_report(
    title: str,
    metrics: Mapping[str, object],
    segments: pd.DataFrame,
    differentials: Sequence[Differential],
    notes: Sequence[str] = (),
) -> str:
    """Headline metrics, then per-segment figures and the demographic differentials."""
    lines = [f"# {title}", "", *[f"- {n}" for n in notes], "", "## Headline metrics", ""]
    lines += markdown.table(["metric", "value"], metrics.items(), _fmt).split("\n")
    lines += ["", "## Per segment (one global threshold)", ""]
    if segments.empty:
        lines += ["No per-segment figures: no threshold to compute them at (see the notes).", ""]
    else:
        lines += ["Groups marked `too_small` have too few subjects of a class to be judged.", ""]
        lines += [markdown_table(segments), ""]
    lines += ["## Demographic differential (Max/GeoMean)", ""]
    if not differentials:
        lines.append("No demographic column with two groups large enough to compare.")
    for d in differentials:
        groups = ", ".join(f"{g}: {r:.4f} (n={d.counts[g]})" for g, r in d.rates.items())
        small = f"; too small to judge: {', '.join(d.too_small)}" if d.too_small else ""
        lines.append(
            f"- **{d.column}**, {d.rate.upper()}: {d.value:.2f} (worst group "
            f"{d.worst_group}); {groups}{small}"
        )
    return "\n".join(lines) + "\n"
