"""The hand-crafted bot baseline: session statistics (`idv.sessions.statistics`: velocity,
curvature, pause and timing) and the device record, gradient-boosted trees (scikit-learn's
HistGradientBoostingClassifier, seeded: deterministic)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from idv.sessions.statistics import session_statistics


def session_table(features: Sequence[np.ndarray], devices: np.ndarray) -> np.ndarray:
    """(N, statistics + device columns) of sessions' event features and device vectors."""
    stats = np.stack([session_statistics(f) for f in features])
    return np.concatenate([stats, np.asarray(devices, dtype=np.float64)], axis=1)


class HandcraftedSession:
    """fit / score on (event features per session, device vectors); score = P(bot)."""

    def __init__(self, seed: int = 0, max_iter: int = 200, learning_rate: float = 0.05) -> None:
        self.model = HistGradientBoostingClassifier(
            max_iter=max_iter, learning_rate=learning_rate, random_state=seed
        )

    def fit(self, features: Sequence[np.ndarray], devices: np.ndarray, labels) -> Self:
        self.model.fit(session_table(features, devices), np.asarray(labels))
        return self

    def score(self, features: Sequence[np.ndarray], devices: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(session_table(features, devices))[:, 1]
