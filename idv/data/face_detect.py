"""Face detection with facenet-pytorch's own MTCNN: boxes, probabilities and 5 landmarks.

The importers' detector, and the reference the served, torch-free detector (idv.faces.mtcnn
over the exported networks) is checked against, within a pixel.

A thin wrapper that hides MTCNN's quirks (see ../shared/design/platform-notes.md):
- with numpy 2, ``MTCNN.detect(..., keep_all=True)`` returns ``dtype=object`` arrays: they
  are converted to float32 before any arithmetic;
- its batch mode crashes when one image of the batch has no face: images go one at a time.
The weights ship inside the facenet-pytorch package (``facenet_pytorch/data/*.pt``) and are
loaded from there: nothing is downloaded. ``Detection`` and the settings are
idv.faces.detection's (shared with serving).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from idv.faces.detection import (
    DEFAULT_FACTOR,
    DEFAULT_MIN_FACE_SIZE,
    DEFAULT_THRESHOLDS,
    Detection,
    DetectorSettings,
    check_rgb,
    frozen,
)

__all__ = ["Detection", "FaceDetector"]


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
        self.settings = DetectorSettings(
            min_probability=min_probability,
            min_face_size=min_face_size,
            thresholds=tuple(thresholds),
            factor=factor,
        )
        if threads is not None and int(threads) < 1:
            raise ValueError(f"threads must be >= 1 or None, got {threads}")
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
                min_face_size=self.settings.min_face_size,
                thresholds=list(self.settings.thresholds),
                factor=self.settings.factor,
            ).eval()
        return self._mtcnn

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in one (H, W, 3) uint8 RGB image, largest box first; [] when none."""
        image = check_rgb(image)
        if not self.settings.fits(image.shape):
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
            Detection(box=frozen(box), probability=float(p), landmarks=frozen(lm))
            for box, p, lm in zip(boxes, probs, points, strict=True)
            if p >= self.settings.min_probability
        ]


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
