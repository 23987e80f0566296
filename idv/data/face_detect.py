"""Face detection with facenet-pytorch's MTCNN: boxes, probabilities and 5 landmarks.

A thin wrapper that hides MTCNN's quirks (see ../shared/design/platform-notes.md):
- with numpy 2, ``MTCNN.detect(..., keep_all=True)`` returns ``dtype=object`` arrays: they
  are converted to float32 before any arithmetic;
- its batch mode crashes when one image of the batch has no face: images go one at a time.
The weights ship inside the facenet-pytorch package (``facenet_pytorch/data/*.pt``) and are
loaded from there: nothing is downloaded. MTCNN's landmark order (left eye, right eye, nose,
left mouth corner, right mouth corner; "left" = smaller x in the image) is the order of
:data:`idv.data.align.ARCFACE_TEMPLATE_112`, so ``Detection.landmarks`` feed
:func:`idv.data.align.align_face` directly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

#: facenet-pytorch's MTCNN defaults (P-, R-, O-net thresholds; smallest face in pixels).
DEFAULT_THRESHOLDS: tuple[float, float, float] = (0.6, 0.7, 0.7)
DEFAULT_MIN_FACE_SIZE = 20
DEFAULT_FACTOR = 0.709


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


class FaceDetector:
    """MTCNN on CPU, built on first use and reused; keeps faces with p >= min_probability.

    The O-net threshold (``thresholds[2]``) already discards weak candidates;
    ``min_probability`` is the stricter bar a caller counts faces with (background clutter
    often scores 0.7-0.9, real faces above 0.99). ``threads``: torch intra-op threads during
    a detection (restored after; None leaves torch's setting). MTCNN's small convolutions
    gain little from a second thread and lose a lot to OpenMP barriers on a busy machine:
    on 2 shared cores, 0.15 s per 512x512 photo with 1 thread against 1.4 s with 2. The
    setting is process-wide, so do not detect from several Python threads at once.
    """

    def __init__(
        self,
        *,
        min_probability: float = 0.9,
        min_face_size: int = DEFAULT_MIN_FACE_SIZE,
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        factor: float = DEFAULT_FACTOR,
        threads: int | None = 1,
    ) -> None:
        thresholds = tuple(float(t) for t in thresholds)
        if len(thresholds) != 3 or not all(0.0 <= t <= 1.0 for t in thresholds):
            raise ValueError(f"thresholds must be 3 values in [0, 1], got {thresholds}")
        if not 0.0 <= float(min_probability) <= 1.0:
            raise ValueError(f"min_probability must lie in [0, 1], got {min_probability}")
        if int(min_face_size) < 1 or not 0.0 < float(factor) < 1.0:
            raise ValueError(
                f"min_face_size must be >= 1 and factor in (0, 1), got {min_face_size}, {factor}"
            )
        if threads is not None and int(threads) < 1:
            raise ValueError(f"threads must be >= 1 or None, got {threads}")
        self.min_probability = float(min_probability)
        self.min_face_size = int(min_face_size)
        self.thresholds = thresholds
        self.factor = float(factor)
        self.threads = None if threads is None else int(threads)
        self._mtcnn: Any = None

    @property
    def mtcnn(self) -> Any:
        """The underlying ``facenet_pytorch.MTCNN``, constructed once, on first use."""
        if self._mtcnn is None:
            from facenet_pytorch import MTCNN  # heavy import, only when detecting

            self._mtcnn = MTCNN(
                keep_all=True,
                device="cpu",
                min_face_size=self.min_face_size,
                thresholds=list(self.thresholds),
                factor=self.factor,
            ).eval()
        return self._mtcnn

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in one (H, W, 3) uint8 RGB image, largest box first; [] when none."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"image must be an (H, W, 3) uint8 RGB array, got {image.shape} {image.dtype}"
            )
        if min(image.shape[:2]) < max(self.min_face_size, 12):
            # No pyramid level fits (MTCNN would crash on an empty torch.cat), and no face
            # of at least min_face_size pixels fits in the image anyway.
            return []
        with _torch_threads(self.threads):
            boxes, probs, points = self.mtcnn.detect(np.ascontiguousarray(image), landmarks=True)
        if boxes is None:
            return []
        boxes = np.asarray(boxes).astype(np.float32).reshape(-1, 4)
        probs = np.asarray(probs).astype(np.float64).reshape(-1)
        points = np.asarray(points).astype(np.float32).reshape(-1, 5, 2)
        return [
            Detection(box=_frozen(box), probability=float(p), landmarks=_frozen(lm))
            for box, p, lm in zip(boxes, probs, points, strict=True)
            if p >= self.min_probability
        ]


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array, dtype=np.float32)
    array.setflags(write=False)
    return array


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with `threads` torch intra-op threads, then restore the setting."""
    import torch

    previous = torch.get_num_threads()
    if threads is not None and threads != previous:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
