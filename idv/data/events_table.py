"""A session corpus' events table (`events.parquet`): its one writer and its one reader.

One row per event (`sample_id`, `t` ms, `x`, `y`, `type` as a category of
`idv.sessions.events.EVENT_TYPES`), the sessions in manifest order. The synthetic corpus and
the importers write it through `write_events_table`; `SessionDataset` reads it through
`read_events_table`. Checking the events is `idv.sessions.events.check_events`' job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from idv.atomic import write_parquet
from idv.sessions.events import EVENT_COLUMNS, EVENT_TYPES, EventError, type_codes

EVENTS_NAME = "events.parquet"


def write_events_table(
    sample_ids: Sequence[str], sessions: Sequence[Mapping[str, np.ndarray]], file: Path
) -> None:
    """Write the sessions' events (each a mapping of EVENT_COLUMNS; `type` as names or codes)
    as one table, atomically."""
    codes = [type_codes(s["type"], f"session {sid!r}") for sid, s in zip(sample_ids, sessions,
                                                                         strict=True)]  # fmt: skip
    table = pd.DataFrame({
        "sample_id": np.repeat(np.asarray(sample_ids, dtype=object), [len(c) for c in codes]),
        **{c: np.concatenate([s[c] for s in sessions]) for c in ("t", "x", "y")},
        "type": pd.Categorical.from_codes(np.concatenate(codes), categories=list(EVENT_TYPES)),
    })  # fmt: skip
    write_parquet(table, file)


def read_events_table(file: Path, wanted: Iterable[str]) -> dict[str, dict[str, np.ndarray]]:
    """The events of the `wanted` sessions, per sample id, in stored order (unchecked)."""
    if not file.is_file():
        raise FileNotFoundError(f"{file}: the corpus' events table is missing")
    try:
        table = pd.read_parquet(file, columns=["sample_id", *EVENT_COLUMNS])
    except Exception as err:  # pyarrow raises several types for a damaged or partial file
        raise EventError(f"{file}: not a readable events table with columns "
                         f"{['sample_id', *EVENT_COLUMNS]} ({err})") from err  # fmt: skip
    table = table[table["sample_id"].isin(set(wanted))]
    out = {}
    for sample_id, rows in table.groupby("sample_id", sort=False):
        out[str(sample_id)] = {
            "t": rows["t"].to_numpy(), "x": rows["x"].to_numpy(), "y": rows["y"].to_numpy(),
            "type": rows["type"].astype(str).to_numpy(),
        }  # fmt: skip
    return out
