"""Scoring a capture session as it happens: one event at a time, a score after each.

A behaviour bundle with `streaming` in its preprocess.json carries the GRU's single-event
step (`stream/model.ts`, `stream/model.onnx`: `idv.export.wrappers.SessionStepScorer`). A
`SessionStream` keeps what the next event needs: the per-event feature state
(`idv.sessions.features.StreamingFeatures`, the same definition as the whole-session
features) and the network's state (GRU state, running sum, max and count of its outputs).
Its score after event k equals the bundle's whole-session score of the first k events (the
export's parity gate checks it), so a decision is ready the moment the session ends, and an
early one at any event count (thresholds per count: scripts/behavior_figures.py).

Events are checked one by one (finite, time never going backwards, a known type); events
beyond the bundle's `max_events` are counted in `truncated` and leave the score unchanged,
as the whole-session model keeps a session's first `max_events` events.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from idv.serving.preprocess import session_screens
from idv.sessions.events import EVENT_TYPES, TYPE_CODES, EventError
from idv.sessions.features import StreamingFeatures

STREAM_DIR = "stream"
STREAM_INPUTS = ("event", "state", "total", "peak", "count", "device")
STATE_OUTPUTS = {"state": "next_state", "total": "next_total", "peak": "next_peak",
                 "count": "next_count"}  # fmt: skip


class SessionStream:
    """One session's streaming scorer: `update(t, x, y, type)` -> P(bot) after the event."""

    def __init__(
        self,
        step: Any,
        spec: Mapping[str, Any],
        device: np.ndarray,
        screen: tuple[float, float],
        max_events: int,
    ) -> None:
        # A backend that takes inputs in its own dtypes as they are (ONNX Runtime) is called
        # without conversions: the feed below is float32 already.
        self.step = getattr(step, "run_exact", step)
        self.features = StreamingFeatures(*screen)
        layers, hidden = int(spec["state"]["layers"]), int(spec["state"]["hidden"])
        self.feed: dict[str, np.ndarray] = {
            "state": np.zeros((1, layers, hidden), np.float32),
            "total": np.zeros((1, hidden), np.float32),
            "peak": np.full((1, hidden), float(spec["state"]["no_peak"]), np.float32),
            "count": np.zeros((1, 1), np.float32),
            "device": np.asarray(device, np.float32).reshape(1, -1),
        }
        self.max_events = int(max_events)
        self.events = 0
        self.truncated = 0
        self.score = float("nan")  # no event yet: a failure to acquire if decided now
        self._last_t = -math.inf

    def update(self, t: float, x: float, y: float, kind: str | int) -> float:
        """Score after one more event (`t` ms since the session started, pointer `x`, `y`,
        `kind` a type name or code); raises EventError naming the event on bad input."""
        k = self.events + self.truncated
        code = TYPE_CODES.get(kind, -1) if isinstance(kind, str) else int(kind)
        if not 0 <= code < len(EVENT_TYPES):
            raise EventError(f"stream event {k}: type {kind!r} is not one of {list(EVENT_TYPES)}")
        t, x, y = float(t), float(x), float(y)
        if not (math.isfinite(t) and math.isfinite(x) and math.isfinite(y)):
            raise EventError(f"stream event {k}: t, x, y = {t}, {x}, {y} (not finite)")
        if t < self._last_t:
            raise EventError(
                f"stream event {k}: time goes backwards (t = {t} ms after {self._last_t} ms)"
            )
        self._last_t = t
        if self.events >= self.max_events:
            self.truncated += 1
            return self.score
        row = self.features.update(t, x, y, code)
        self.feed["event"] = np.asarray([row], dtype=np.float32)
        out = self.step(self.feed)
        for name, produced in STATE_OUTPUTS.items():
            self.feed[name] = out[produced]
        self.events += 1
        self.score = float(out["score"][0])
        return self.score


def open_stream(step: Any, preprocess: Mapping[str, Any], device: np.ndarray) -> SessionStream:
    """A SessionStream on the `step` backend for one prepared device vector (D,), as
    preprocess.json says: its `streaming` state, the events input's screen and max_events."""
    spec = preprocess["streaming"]
    events = preprocess["inputs"][spec["events_input"]]
    screen = session_screens(preprocess["inputs"], events, np.asarray(device)[None])[0]
    return SessionStream(step, spec, device, (screen[0], screen[1]), events["max_events"])
