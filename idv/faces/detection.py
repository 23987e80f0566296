"""A detected face, and the settings every MTCNN detector of the project is built with.

MTCNN's landmark order (left eye, right eye, nose, left mouth corner, right mouth corner;
"left" = smaller x in the image) is the order of :data:`idv.faces.align.ARCFACE_TEMPLATE_112`,
so ``Detection.landmarks`` feed :func:`idv.faces.align.align_face` directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from idv.errors import InputError

#: facenet-pytorch's MTCNN defaults (P-, R-, O-net thresholds; smallest face in pixels).
DEFAULT_THRESHOLDS: tuple[float, float, float] = (0.6, 0.7, 0.7)
DEFAULT_MIN_FACE_SIZE = 20
DEFAULT_FACTOR = 0.709
DEFAULT_MIN_PROBABILITY = 0.9


@dataclass(frozen=True, eq=False)  # arrays: compare fields, not objects
class Detection:
    """One face: box (x1, y1, x2, y2), probability, landmarks (5, 2) in template order."""

    box: np.ndarray  # float32 (4,)
    probability: float
    landmarks: np.ndarray  # float32 (5, 2), (x, y) pixels

    @property
    def side(self) -> float:
        """Geometric mean of the box's width and height: the face's size in pixels."""
        width, height = self.box[2] - self.box[0], self.box[3] - self.box[1]
        return float(np.sqrt(max(float(width), 0.0) * max(float(height), 0.0)))

    @property
    def centre(self) -> np.ndarray:
        """The box centre (x, y), float64."""
        box = self.box.astype(np.float64)
        return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])

    def mapped(self, sx: float, sy: float) -> Detection:
        """The same face in an image `sx` times as wide and `sy` times as tall (a photo it was
        downscaled from): pixel-centre coordinates, (x + 0.5) * s - 0.5 per axis."""
        scale = np.array([sx, sy], np.float64)
        points = (self.landmarks.astype(np.float64) + 0.5) * scale - 0.5
        corners = (self.box.astype(np.float64).reshape(2, 2) + 0.5) * scale - 0.5
        return Detection(frozen(corners.reshape(4)), self.probability, frozen(points))

    def summary(self) -> dict[str, Any]:
        """JSON-ready: probability, side and box (pixels), for a failure-to-acquire report."""
        return {
            "probability": round(self.probability, 6),
            "side": round(self.side, 2),
            "box": [round(float(v), 2) for v in self.box],
        }


def frozen(array: Any) -> np.ndarray:
    """A read-only float32 copy (a Detection's arrays never change after detection)."""
    out = np.array(array, dtype=np.float32)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class DetectorSettings:
    """MTCNN's knobs: P-/R-/O-net thresholds, the smallest face searched (pixels), the pyramid
    step, and ``min_probability``, the stricter bar faces are counted with (background clutter
    often scores 0.7-0.9, real faces above 0.99)."""

    min_probability: float = DEFAULT_MIN_PROBABILITY
    min_face_size: int = DEFAULT_MIN_FACE_SIZE
    thresholds: tuple[float, float, float] = DEFAULT_THRESHOLDS
    factor: float = DEFAULT_FACTOR

    def __post_init__(self) -> None:
        thresholds = tuple(float(t) for t in self.thresholds)
        if len(thresholds) != 3 or not all(0.0 <= t <= 1.0 for t in thresholds):
            raise ValueError(f"thresholds must be 3 values in [0, 1], got {thresholds}")
        if not 0.0 <= float(self.min_probability) <= 1.0:
            raise ValueError(f"min_probability must lie in [0, 1], got {self.min_probability}")
        if int(self.min_face_size) < 1 or not 0.0 < float(self.factor) < 1.0:
            raise ValueError(
                f"min_face_size must be >= 1 and factor in (0, 1), got {self.min_face_size}, "
                f"{self.factor}"
            )
        object.__setattr__(self, "thresholds", thresholds)
        object.__setattr__(self, "min_probability", float(self.min_probability))
        object.__setattr__(self, "min_face_size", int(self.min_face_size))
        object.__setattr__(self, "factor", float(self.factor))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> DetectorSettings:
        """From a config / preprocess.json mapping; an unknown key is an error naming it."""
        known = {"min_probability", "min_face_size", "thresholds", "factor"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown detector setting(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_probability": self.min_probability,
            "min_face_size": self.min_face_size,
            "thresholds": list(self.thresholds),
            "factor": self.factor,
        }

    def fits(self, shape: Sequence[int]) -> bool:
        """Whether any pyramid level fits an image of `shape` (MTCNN needs 12 px and
        min_face_size pixels on the short side; a smaller image has no face to find)."""
        return min(int(shape[0]), int(shape[1])) >= max(self.min_face_size, 12)


def check_rgb(image: Any) -> np.ndarray:
    """An (H, W, 3) uint8 RGB array, or an InputError that says what the array was."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise InputError(
            f"image must be an (H, W, 3) uint8 RGB array, got {array.shape} {array.dtype}"
        )
    return array
