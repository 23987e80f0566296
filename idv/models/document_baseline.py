"""The hand-crafted document-forgery baseline: error-level analysis, noise inconsistency and
spectrum features of the capture, standardised, through logistic regression.

What the field used before CNNs: a re-saved JPEG differs most where the image was edited and
compressed again (error-level analysis, ELA), a pasted or re-rendered patch carries another
noise level than the print around it (block-wise noise inconsistency), and a recapture of a
screen or print adds periodic energy and shifts colours (spectral bands, colour histogram).
Block statistics are taken over a grid so that a local edit shows as an outlier block.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import cv2
import numpy as np
from PIL import Image

from idv.models.handcrafted import HandcraftedPAD, colour_histogram, spectral_bands

ELA_QUALITY = 90
BLOCK = 16  # px: the grid of block statistics


def _blocks(values: np.ndarray, block: int) -> np.ndarray:
    """Mean of `values` (H, W) over a grid of block x block cells."""
    h, w = (values.shape[0] // block) * block, (values.shape[1] // block) * block
    return values[:h, :w].reshape(h // block, block, w // block, block).mean(axis=(1, 3))


def _outliers(cells: np.ndarray) -> list[float]:
    """How far the strongest blocks stand out: max, 95th / median and robust z of the max."""
    flat = cells.ravel()
    median = float(np.median(flat))
    mad = float(np.median(np.abs(flat - median))) + 1e-6
    top = float(flat.max())
    return [top, float(np.percentile(flat, 95)) / (median + 1e-6), (top - median) / mad,
            float(flat.std())]  # fmt: skip


def ela_map(image: np.ndarray, quality: int = ELA_QUALITY) -> np.ndarray:
    """|image - the image re-saved as JPEG at `quality`|, grey (H, W) float32."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    resaved = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return np.abs(image.astype(np.float32) - resaved.astype(np.float32)).mean(axis=2)


def noise_map(image: np.ndarray) -> np.ndarray:
    """|grey - its 3x3 median|: the print and sensor noise left after the content."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return np.abs(grey.astype(np.float32) - cv2.medianBlur(grey, 3).astype(np.float32))


def document_features(image: np.ndarray, block: int = BLOCK) -> np.ndarray:
    ela, noise = ela_map(image), noise_map(image)
    return np.concatenate([
        [ela.mean(), ela.std(), noise.mean(), noise.std()],
        _outliers(_blocks(ela, block)), _outliers(_blocks(noise, block)),
        spectral_bands(image), colour_histogram(image),
    ])  # fmt: skip


class HandcraftedDocument(HandcraftedPAD):
    """ELA + noise-inconsistency + spectrum + colour features -> logistic regression (`score`:
    P(forged)) over RGB uint8 captures."""

    def features(self, items: Iterable[np.ndarray]) -> np.ndarray:
        return np.stack([document_features(i) for i in items])
