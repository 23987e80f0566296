"""Hand-crafted session statistics: what a fraud team's first bot model reads (velocity,
curvature, pause and timing statistics), the baseline the sequence model must beat.

Computed from the same per-event features as the network (`idv.sessions.features`), so the
two see the same events; the baseline adds the device record.
"""

from __future__ import annotations

import numpy as np

from idv.sessions.features import DDT_GAIN, FEATURES, TYPE_OFFSET

STATISTICS: tuple[str, ...] = (
    "log_events", "log_duration", "share_move", "share_down", "share_key",
    "dt_mean", "dt_std", "dt_repeat_share", "ddt_mean", "speed_mean", "speed_std",
    "speed_max", "straight_share", "turn_abs_mean", "pause_share", "pause_mean",
    "key_dt_mean", "key_dt_cv", "hold_mean", "hold_std",
)  # fmt: skip
PAUSE_MS = 300.0
REPEAT_LOG_DDT = float(np.log1p(DDT_GAIN * 0.5))  # successive intervals within 0.5 ms


def _col(name: str) -> int:
    return FEATURES.index(name)


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    return (float(values.mean()), float(values.std())) if values.size else (0.0, 0.0)


def session_statistics(features: np.ndarray) -> np.ndarray:
    """float64 (len(STATISTICS),) of one session's event features (L, F)."""
    n = len(features)
    log_dt = features[:, _col("log_dt")]
    dt = np.expm1(log_dt)
    kind = features[:, TYPE_OFFSET:].argmax(axis=1)
    moves = np.flatnonzero(kind == 0)[1:]
    keys = np.flatnonzero(kind == 3)
    speed = features[moves, _col("log_speed")]
    turn_cos = features[moves, _col("turn_cos")]
    turn_sin = features[moves, _col("turn_sin")]
    ddt = features[moves, _col("log_ddt")]
    pauses = dt[dt > PAUSE_MS]
    key_dt = dt[keys[1:]] if keys.size > 1 else np.zeros(0)
    downs = np.flatnonzero(kind == 1)
    holds = np.asarray([dt[d + 1] for d in downs if d + 1 < n and kind[d + 1] == 2])
    dt_mean, dt_std = _mean_std(log_dt[moves])
    speed_mean, speed_std = _mean_std(speed)
    key_mean, key_std = _mean_std(key_dt)
    hold_mean, hold_std = _mean_std(np.log1p(holds))
    return np.asarray([
        np.log1p(n), np.log1p(dt.sum()), (kind == 0).mean(), (kind == 1).mean(), (kind == 3).mean(),
        dt_mean, dt_std, (ddt <= REPEAT_LOG_DDT).mean() if ddt.size else 0.0,
        ddt.mean() if ddt.size else 0.0, speed_mean, speed_std,
        speed.max() if speed.size else 0.0,
        (turn_cos > 0.999).mean() if turn_cos.size else 0.0,
        np.abs(turn_sin).mean() if turn_sin.size else 0.0,
        pauses.size / max(n, 1), np.log1p(pauses).mean() if pauses.size else 0.0,
        np.log1p(key_mean), key_std / key_mean if key_mean > 0 else 0.0, hold_mean, hold_std,
    ], dtype=np.float64)  # fmt: skip
