"""Per-event features of a session: the sequence model's input, computed by one definition.

`event_features` is the vectorised form (training, evaluation, serving a whole session);
`StreamingFeatures` computes the same row for one event at a time from the previous events'
state (serving a session as it happens). A test keeps the two equal to float32 precision.
Scale-free where it matters: distances are in screen diagonals, positions in screen shares,
so phones and desktops share the features.

Per event k (the first event has zero deltas). A person's pointer moves arrive on the
display's frame clock (60 Hz, with jitter and dropped frames); `frame_offset` resolves an
interval around that frame finely and `frame_mean` averages it over the session so far: a
trace replayed faster or slower (kinematics time-scaled) moves its whole clock off the frame,
which `log_dt`'s scale barely shows.

| feature | definition |
|---|---|
| `log_dt` | log1p(t_k - t_{k-1} ms) |
| `dx`, `dy` | DELTA_GAIN * (x_k - x_{k-1}) / diagonal, clipped to +-DELTA_CLIP |
| `log_speed` | log1p(1000 * distance / diagonal / max(dt, MIN_DT_MS)): diagonals/s |
| `turn_cos`, `turn_sin` | cos / sin of the heading change from the previous step (0, 0: none) |
| `log_ddt` | log1p(DDT_GAIN * abs(dt_k - dt_{k-1}) ms): the event clock's regularity |
| `px`, `py` | x / screen width, y / screen height |
| `frame_offset` | tanh((dt - FRAME_MS) / FRAME_SCALE_MS) between two moves, else 0 |
| `frame_mean` | the mean `frame_offset` of the move intervals so far (0: none yet) |
| `move`, `down`, `up`, `key` | the event type, one-hot |
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from idv.sessions.events import EVENT_TYPES, Events

FEATURES: tuple[str, ...] = (
    "log_dt", "dx", "dy", "log_speed", "turn_cos", "turn_sin", "log_ddt", "px", "py",
    "frame_offset", "frame_mean", *EVENT_TYPES,
)  # fmt: skip
DDT_GAIN = 4.0  # interval changes in quarter milliseconds: a fixed clock (0) vs a display's jitter
DELTA_GAIN = 10.0
DELTA_CLIP = 10.0
MIN_DT_MS = 0.5
FRAME_MS = 1000.0 / 60.0  # the display frame a person's moves arrive on
FRAME_SCALE_MS = 2.0  # tanh scale of the offset: a frame's jitter is ~1 ms
MOVE = EVENT_TYPES.index("move")
TYPE_OFFSET = FEATURES.index(EVENT_TYPES[0])  # the one-hot event type's first column
SCREEN_COLUMNS = ("screen_w", "screen_h")  # the device record's columns the features scale by


def _screen(width: float, height: float) -> tuple[float, float, float]:
    width, height = float(width), float(height)
    if not (width > 0 and height > 0 and math.isfinite(width) and math.isfinite(height)):
        raise ValueError(f"screen size must be positive, got {width} x {height}")
    return width, height, math.hypot(width, height)


def event_features(events: Events, width: float, height: float) -> np.ndarray:
    """float32 (L, len(FEATURES)) features of a checked session on a width x height screen."""
    width, height, diagonal = _screen(width, height)
    n = len(events)
    t, x, y = events.t, events.x, events.y
    dt = np.zeros(n)
    dx = np.zeros(n)
    dy = np.zeros(n)
    dt[1:] = np.diff(t)
    dx[1:] = np.diff(x)
    dy[1:] = np.diff(y)
    dist = np.hypot(dx, dy)
    ddt = np.zeros(n)
    ddt[1:] = np.abs(np.diff(dt))
    if n > 1:
        ddt[1] = 0.0  # the first delta has no previous one (as StreamingFeatures)
    cos = np.zeros(n)
    sin = np.zeros(n)
    if n > 2:
        norm = dist[1:-1] * dist[2:]
        ok = norm > 0
        dot = dx[1:-1] * dx[2:] + dy[1:-1] * dy[2:]
        cross = dx[1:-1] * dy[2:] - dy[1:-1] * dx[2:]
        safe = np.where(ok, norm, 1.0)
        cos[2:] = np.where(ok, dot / safe, 0.0)
        sin[2:] = np.where(ok, cross / safe, 0.0)
    frame = np.zeros(n)
    moves = np.zeros(n, bool)
    if n > 1:
        moves[1:] = (events.type[1:] == MOVE) & (events.type[:-1] == MOVE)
        frame[1:] = np.where(moves[1:], np.tanh((dt[1:] - FRAME_MS) / FRAME_SCALE_MS), 0.0)
    frame_mean = np.cumsum(frame) / np.maximum(np.cumsum(moves), 1)
    out = np.zeros((n, len(FEATURES)))
    out[:, 0] = np.log1p(dt)
    gain = DELTA_GAIN / diagonal
    out[:, 1] = np.clip(gain * dx, -DELTA_CLIP, DELTA_CLIP)
    out[:, 2] = np.clip(gain * dy, -DELTA_CLIP, DELTA_CLIP)
    out[:, 3] = np.log1p(1000.0 * dist / diagonal / np.maximum(dt, MIN_DT_MS))
    out[:, 4] = cos
    out[:, 5] = sin
    out[:, 6] = np.log1p(DDT_GAIN * ddt)
    out[:, 7] = x / width
    out[:, 8] = y / height
    out[:, FEATURES.index("frame_offset")] = frame
    out[:, FEATURES.index("frame_mean")] = frame_mean
    out[np.arange(n), TYPE_OFFSET + events.type] = 1.0
    return out.astype(np.float32)


class StreamingFeatures:
    """The `event_features` row of each new event, from the state of the previous ones (plain
    Python floats: a numpy call per scalar would cost more than the network's step)."""

    def __init__(self, width: float, height: float) -> None:
        self.width, self.height, self.diagonal = _screen(width, height)
        self.count = 0
        self.t = self.x = self.y = 0.0
        self.dt = 0.0
        self.dx = self.dy = 0.0
        self.kind = -1
        self.frame_sum = 0.0
        self.frame_count = 0

    def update(self, t: float, x: float, y: float, kind: int) -> list[float]:
        """The feature row (a list of len(FEATURES) floats) of the event (t ms, x, y, type
        code); the caller checks order and finiteness (`idv.sessions.stream`)."""
        first = self.count == 0
        dt = 0.0 if first else t - self.t
        dx = 0.0 if first else x - self.x
        dy = 0.0 if first else y - self.y
        dist = math.hypot(dx, dy)
        ddt = 0.0 if self.count < 2 else abs(dt - self.dt)
        cos = sin = 0.0
        if self.count >= 2:
            norm = math.hypot(self.dx, self.dy) * dist
            if norm > 0:
                cos = (self.dx * dx + self.dy * dy) / norm
                sin = (self.dx * dy - self.dy * dx) / norm
        frame = 0.0
        if kind == MOVE and self.kind == MOVE:  # self.kind is -1 before the first
            frame = math.tanh((dt - FRAME_MS) / FRAME_SCALE_MS)
            self.frame_sum += frame
            self.frame_count += 1
        gain = DELTA_GAIN / self.diagonal
        row = [
            math.log1p(dt),
            min(max(gain * dx, -DELTA_CLIP), DELTA_CLIP),
            min(max(gain * dy, -DELTA_CLIP), DELTA_CLIP),
            math.log1p(1000.0 * dist / self.diagonal / max(dt, MIN_DT_MS)),
            cos,
            sin,
            math.log1p(DDT_GAIN * ddt),
            x / self.width,
            y / self.height,
            frame,
            self.frame_sum / max(self.frame_count, 1),
            0.0, 0.0, 0.0, 0.0,
        ]  # fmt: skip
        row[TYPE_OFFSET + kind] = 1.0
        self.count += 1
        self.t, self.x, self.y, self.dt, self.dx, self.dy = t, x, y, dt, dx, dy
        self.kind = kind
        return row


def padded(features: np.ndarray, max_events: int) -> np.ndarray:
    """(max_events, F) float32: the session's rows, then zeros (the model reads `length`)."""
    out = np.zeros((int(max_events), features.shape[1]), dtype=np.float32)
    out[: len(features)] = features[:max_events]
    return out


def screen_of(
    device: np.ndarray, columns: Sequence[str], names: Sequence[str] = SCREEN_COLUMNS
) -> np.ndarray:
    """(..., 2) (width, height) from device vectors (..., D) in `columns` order; `names`:
    the width and height columns (preprocess.json `inputs.events.screen`)."""
    columns = list(columns)
    missing = [c for c in names if c not in columns]
    if missing:
        raise ValueError(f"the device columns {columns} lack {missing}: features need them")
    return np.asarray(device)[..., [columns.index(n) for n in names]].astype(np.float64)
