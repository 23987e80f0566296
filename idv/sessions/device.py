"""A session's device record: the columns the model reads, and the device-history count.

The record comes with the session (the client's device report) except `device_sessions`,
which the platform computes from its own history: the earlier sessions of the same device
fingerprint within a window. Computed per split (training data never counts test sessions)
and from the past only (a session never counts later ones), so the count never leaks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from idv.sessions.events import EventError

DEVICE_COLUMNS: tuple[str, ...] = (
    "touch",              # 1: touch screen events, 0: mouse
    "screen_w",           # px (CSS)
    "screen_h",
    "motion_sensors",     # 1: accelerometer / gyroscope readings reported
    "accel_std",          # m/s^2 over the session (0: none, or constant readings)
    "gyro_std",           # rad/s
    "webdriver",          # navigator.webdriver or another automation flag
    "timezone_mismatch",  # device timezone inconsistent with the geography
    "locale_mismatch",
    "device_sessions",    # earlier sessions of the fingerprint in the window (device_sessions)
)  # fmt: skip


def device_sessions(frame: Any, window_ms: float, groups: Sequence[str] = ("split",)) -> np.ndarray:
    """Per row of `frame` (columns `device_id`, `started_at_ms` and `groups`), the number of
    rows of the same device and groups that started before it, within `window_ms`."""
    times = np.asarray(frame["started_at_ms"], dtype=np.float64)
    keys = [np.asarray(frame[c]).astype(str) for c in ("device_id", *groups)]
    key = np.array(["\x1f".join(parts) for parts in zip(*keys, strict=True)])
    counts = np.zeros(len(times), dtype=np.int64)
    for value in np.unique(key):
        rows = np.flatnonzero(key == value)
        order = rows[np.argsort(times[rows], kind="stable")]
        sorted_times = times[order]
        lo = np.searchsorted(sorted_times, sorted_times - window_ms, side="left")
        hi = np.searchsorted(sorted_times, sorted_times, side="left")
        counts[order] = hi - lo
    return counts


def device_vector(record: Mapping[str, Any], columns: Sequence[str], where: str) -> np.ndarray:
    """float32 (D,) of a device record in `columns` order; a missing or non-finite value is
    refused by name (a device report is never silently zero-filled)."""
    values = []
    for column in columns:
        if column not in record:
            raise EventError(f"{where}: the device record has no {column!r}")
        try:
            value = float(record[column])
        except (TypeError, ValueError):
            raise EventError(
                f"{where}: device {column!r} is {record[column]!r}, not a number"
            ) from None
        if not np.isfinite(value):
            raise EventError(f"{where}: device {column!r} is {value} (not finite)")
        values.append(value)
    return np.asarray(values, dtype=np.float32)
