"""Human-readable summaries of a manifest: counts per split, species and segment."""

from __future__ import annotations

import pandas as pd
from rich.table import Table

from idv.data.manifest import DEMOGRAPHIC_COLUMNS, SEGMENT_COLUMNS, SPLITS


def count_table(frame: pd.DataFrame, column: str, title: str) -> Table:
    """Samples (and distinct subjects) per value of `column` and split."""
    table = Table(title=title)
    table.add_column(column)
    splits = [s for s in SPLITS if (frame["split"] == s).any()]
    for split in splits:
        table.add_column(split, justify="right")
    table.add_column("total", justify="right")
    samples = pd.crosstab(frame[column], frame["split"])
    subjects = frame.groupby([column, "split"])["subject_id"].nunique().unstack(fill_value=0)
    for value in samples.index:
        cells = [
            f"{samples.at[value, s] if s in samples else 0} "
            f"({subjects.at[value, s] if s in subjects else 0})"
            for s in splits
        ]
        table.add_row(str(value), *cells, str(int(samples.loc[value].sum())))
    return table


def summarize(frame: pd.DataFrame, name: str) -> list[Table]:
    """Tables for species and every segment / demographic column the manifest has.

    Cells read "samples (subjects)"; subjects are what resolution and intervals rest on.
    """
    tables = [count_table(frame, "attack_type", f"{name}: samples (subjects) per species")]
    for column in (*SEGMENT_COLUMNS, *DEMOGRAPHIC_COLUMNS):
        if column in frame.columns:
            tables.append(count_table(frame, column, f"{name}: samples (subjects) per {column}"))
    return tables
