"""Serving a detection bundle (pad, liveness, deepfake, ...): scores and decisions."""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from idv.errors import InputError
from idv.imaging import read_image
from idv.serving.backends import MODEL_FILES
from idv.serving.bundle import Bundle, BundleError
from idv.serving.preprocess import prepare_input
from idv.serving.streaming import STREAM_DIR, STREAM_INPUTS, SessionStream, open_stream


class DetectionBundle(Bundle):
    """`score` images (the primary output, P(attack)) and `decide` on scores or images:
    accept / review / reject, a failure to acquire (NaN) -> reject. A session bundle
    (behaviour) also scores a session as it happens: `stream` (preprocess.json `streaming`).
    A bundle with `rules` (documents: the MRZ checks) fuses their risk, read from the capture
    itself, into `score` (`score_parts` gives both); one with `localisation` maps where the
    image was tampered: `localise`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._step = None
        if self.preprocess.get("streaming") is not None:
            name = f"{STREAM_DIR}/{MODEL_FILES[self.backend_name]}"  # now, as just verified
            self._step = self.load_model(name, list(STREAM_INPUTS), "(its streaming step)")
        self._rules = None
        if self.preprocess.get("rules") is not None:
            spec = self.preprocess["rules"]
            module = importlib.import_module(spec["module"])  # an idv module (schema-checked)
            self._rules = (module, module.RuleOptions.from_config(spec["options"]))

    def localise(self, images: Any, batch_size: int = 64) -> list[np.ndarray]:
        """Per image (file paths or RGB uint8 arrays): the tamper probability of every pixel,
        float32 (H, W) at the image's own size (the model's map resized back)."""
        spec = self.preprocess.get("localisation")
        if spec is None:
            raise BundleError(f"bundle {self.path} has no localisation output (preprocess.json)")
        arrays = self._images(images)
        maps = self.run(arrays, batch_size)[spec["output"]]
        return [
            cv2.resize(m.reshape(m.shape[-2:]), (a.shape[1], a.shape[0]),
                       interpolation=cv2.INTER_LINEAR).astype(np.float32)
            for m, a in zip(maps, arrays, strict=True)
        ]  # fmt: skip

    def score_parts(self, images: Any, batch_size: int = 64) -> dict[str, np.ndarray]:
        """{"model": the network's P(attack), "rules": the rules' risk, "score": fused} per
        image (file paths or RGB uint8 arrays), for a bundle with rules."""
        if self._rules is None:
            raise BundleError(f"bundle {self.path} has no rules (preprocess.json `rules`)")
        module, options = self._rules
        arrays = self._images(images)
        model = self.run(arrays, batch_size)[self.primary]
        risk = module.rule_columns(arrays, options)["risk"]
        fused = module.fuse(model, risk, options).astype(np.float32)
        return {"model": model, "rules": risk.astype(np.float32), "score": fused}

    def _images(self, images: Any) -> list[np.ndarray]:
        """The captures themselves: the rules and the maps work at their own resolution."""
        items = [images] if isinstance(images, str | os.PathLike | np.ndarray) else list(images)
        if len(items) == 1 and isinstance(items[0], np.ndarray) and items[0].ndim == 4:
            items = list(items[0])
        out = []
        for i, item in enumerate(items):
            if isinstance(item, str | os.PathLike):
                out.append(read_image(item))
            elif isinstance(item, np.ndarray) and item.ndim == 3 and item.dtype == np.uint8:
                out.append(item)
            else:
                raise InputError(
                    f"item {i}: this bundle reads the capture itself (its rules or its map): "
                    "give image file paths or RGB uint8 (H, W, 3) arrays"
                )
        return out

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
        model of several inputs: a mapping {input name: value}). With rules, the score is the
        fused one and needs the captures (paths or uint8 arrays)."""
        if self._rules is not None:
            return self.score_parts(inputs, batch_size)["score"]
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
