"""One session's events, checked once: the same rules for a corpus, an importer and serving.

An event is (`t` ms since the session started, `x`, `y` pointer pixels, `type`): `move`,
`down`, `up` or `key` (a key event carries the pointer's last position). Refused, with the
session and the event index named: an empty session, coordinates or times that are not
finite, time going backwards, an unknown type. Equal timestamps are allowed (browsers emit
`up` and a `key` in the same millisecond). A session longer than `max_events` keeps its first
`max_events` events and reports how many it dropped: the caller counts them, nothing is
dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from idv.errors import IdvError

EVENT_TYPES: tuple[str, ...] = ("move", "down", "up", "key")
EVENT_COLUMNS: tuple[str, ...] = ("t", "x", "y", "type")
TYPE_CODES: dict[str, int] = {name: k for k, name in enumerate(EVENT_TYPES)}


class EventError(IdvError, ValueError):
    """A session's events that cannot be scored; the message names the session and event."""


@dataclass(frozen=True)
class Events:
    """A checked session: float64 `t` (ms), float64 `x`, `y` (px), int64 `type` codes
    (indices of EVENT_TYPES), all of one length >= 1; `truncated`: events dropped beyond the
    maximum."""

    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    type: np.ndarray
    truncated: int = 0

    def __len__(self) -> int:
        return len(self.t)


def type_codes(values: Any, where: str) -> np.ndarray:
    """int64 codes of event types given as names or codes."""
    array = np.asarray(values)
    if array.dtype.kind in "iu":
        codes = array.astype(np.int64)
    else:
        names = array.astype(str)
        codes = np.fromiter((TYPE_CODES.get(n, -1) for n in names), np.int64, len(names))
    bad = np.flatnonzero((codes < 0) | (codes >= len(EVENT_TYPES)))
    if bad.size:
        k = int(bad[0])
        raise EventError(
            f"{where}: event {k} has type {getattr(array[k], 'item', lambda: array[k])()!r}; "
            "expected one of "
            f"{list(EVENT_TYPES)}"
        )
    return codes


def check_events(
    data: Mapping[str, Any] | Events, where: str, max_events: int | None = None
) -> Events:
    """The session's events (`data`: a mapping of EVENT_COLUMNS to sequences, e.g. one
    session's rows of the events table), checked, truncated to `max_events`."""
    if isinstance(data, Events):
        data = {"t": data.t, "x": data.x, "y": data.y, "type": data.type}
    missing = [c for c in EVENT_COLUMNS if c not in data]
    if missing:
        raise EventError(f"{where}: events need column(s) {missing} (of {list(EVENT_COLUMNS)})")
    try:
        t, x, y = (np.asarray(data[c], dtype=np.float64).reshape(-1) for c in ("t", "x", "y"))
    except (TypeError, ValueError) as err:
        raise EventError(f"{where}: t, x and y must be numbers ({err})") from None
    kinds = np.asarray(data["type"]).reshape(-1)
    lengths = {c: len(v) for c, v in zip(EVENT_COLUMNS, (t, x, y, kinds), strict=True)}
    if len(set(lengths.values())) > 1:
        raise EventError(f"{where}: event columns of different lengths {lengths}")
    if len(t) == 0:
        raise EventError(f"{where}: an empty session (no events)")
    for name, values in (("t", t), ("x", x), ("y", y)):
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            k = int(bad[0])
            raise EventError(f"{where}: event {k} has {name} = {values[k]} (not finite)")
    back = np.flatnonzero(np.diff(t) < 0)
    if back.size:
        k = int(back[0]) + 1
        raise EventError(
            f"{where}: time goes backwards at event {k} (t = {t[k]} ms after {t[k - 1]} ms)"
        )
    codes = type_codes(kinds, where)
    truncated = 0
    if max_events is not None and len(t) > max_events:
        truncated = len(t) - int(max_events)
        t, x, y, codes = t[:max_events], x[:max_events], y[:max_events], codes[:max_events]
    return Events(t, x, y, codes, truncated)


def events_of_rows(rows: Sequence[Mapping[str, Any]], where: str, **kwargs: Any) -> Events:
    """Events from a list of {t, x, y, type} records (a client's JSON payload)."""
    for k, row in enumerate(rows):
        missing = [c for c in EVENT_COLUMNS if c not in row]
        if missing:
            raise EventError(f"{where}: event {k} has no {missing} (give {list(EVENT_COLUMNS)})")
    return check_events({c: [r[c] for r in rows] for c in EVENT_COLUMNS}, where, **kwargs)
