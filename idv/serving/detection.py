"""Serving a detection bundle (pad, liveness, deepfake, ...): scores and decisions."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from idv.serving.backends import MODEL_FILES
from idv.serving.bundle import Bundle, BundleError
from idv.serving.preprocess import prepare_input
from idv.serving.streaming import STREAM_DIR, STREAM_INPUTS, SessionStream, open_stream


class DetectionBundle(Bundle):
    """`score` images (the primary output, P(attack)) and `decide` on scores or images:
    accept / review / reject, a failure to acquire (NaN) -> reject. A session bundle
    (behaviour) also scores a session as it happens: `stream` (preprocess.json `streaming`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._step = None
        if self.preprocess.get("streaming") is not None:
            name = f"{STREAM_DIR}/{MODEL_FILES[self.backend_name]}"  # now, as just verified
            self._step = self.load_model(name, list(STREAM_INPUTS), "(its streaming step)")

    def stream(self, device: Any) -> SessionStream:
        """A scorer of one session event by event, for the session's device record (a
        mapping of preprocess.json `inputs.device.columns`, or their vector): its `update(t,
        x, y, type)` returns P(bot) after each event, equal to `score` of the events so far."""
        if self._step is None:
            raise BundleError(
                f"bundle {self.path} has no streaming step (preprocess.json has no "
                "`streaming`): score whole sessions, or re-export with the task's streaming: true"
            )
        spec = self.preprocess["streaming"]
        source = self.preprocess["inputs"][spec["events_input"]]["screen"]["input"]
        vector = prepare_input(device, self.preprocess["inputs"][source], source)[0]
        return open_stream(self._step, self.preprocess, vector)

    def score(self, inputs: Any, batch_size: int = 64) -> np.ndarray:
        """P(attack) per item (float32 (N,)): image file paths, RGB uint8 arrays (H, W, 3) or
        (N, H, W, 3), or a preprocessed float (N, 3, H, W) batch of 0-255 RGB values (for a
        model of several inputs: a mapping {input name: value})."""
        return self.run(inputs, batch_size)[self.primary]

    def decide(self, scores_or_inputs: Any, segment: Any = None) -> np.ndarray:
        """'accept' / 'review' / 'reject' per sample, at the primary operating point.

        Scores are a 1-D float sequence (NaN = failure to acquire = reject); anything else is
        scored first (see `score`). `segment` is one segment for all samples ({column: value},
        or a bare value with one segment column) or a sequence of them, one per sample.
        """
        return self.thresholds.decide(self._scores(scores_or_inputs), segment)

    def _scores(self, x: Any) -> np.ndarray:
        if isinstance(x, str | os.PathLike):
            return self.score(x)
        if isinstance(x, Sequence) and not isinstance(x, str | bytes):
            if all(isinstance(v, int | float | np.floating | np.integer) for v in x):
                return np.asarray(x, dtype=np.float64)
            return self.score(x)
        array = x.detach().cpu().numpy() if hasattr(x, "detach") else x
        if isinstance(array, np.ndarray) and array.ndim == 1:
            return array.astype(np.float64)
        return self.score(array)
