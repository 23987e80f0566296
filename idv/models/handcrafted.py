"""A hand-crafted PAD baseline: colour histogram + spectral energy, logistic regression.

It tells us what the CNN adds: print and replay artefacts are periodic (halftone, moire) and
shift colours, so a few spectral bands and a colour histogram already catch the strong ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Self

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def colour_histogram(image: np.ndarray, bins: int = 8) -> np.ndarray:
    """Per-channel normalised histograms of an RGB uint8 image (3 * bins values)."""
    return np.concatenate(
        [
            np.histogram(image[..., c], bins=bins, range=(0, 256))[0] / image[..., c].size
            for c in range(3)
        ]
    )


def spectral_bands(image: np.ndarray, bands: int = 12) -> np.ndarray:
    """Mean log power of the grey image's spectrum in `bands` radial frequency rings.

    The high-frequency rings carry halftone and moire energy that bona fide captures lack.
    """
    grey = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    grey = (grey - grey.mean()) * np.outer(np.hanning(grey.shape[0]), np.hanning(grey.shape[1]))
    power = np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(grey))) ** 2)
    h, w = grey.shape
    fy, fx = np.meshgrid(
        np.fft.fftshift(np.fft.fftfreq(h)), np.fft.fftshift(np.fft.fftfreq(w)), indexing="ij"
    )
    radius = np.hypot(fy, fx)
    edges = np.linspace(0.0, 0.5, bands + 1)
    return np.array(
        [
            power[(radius >= lo) & (radius < hi)].mean()
            for lo, hi in zip(edges[:-1], edges[1:], strict=True)
        ]
    )


def handcrafted_features(images: Iterable[np.ndarray]) -> np.ndarray:
    return np.stack([np.concatenate([colour_histogram(i), spectral_bands(i)]) for i in images])


class HandcraftedPAD:
    """Standardised features -> logistic regression; `score` is P(attack). A subclass for
    another modality overrides `features` (items -> (N, D))."""

    def __init__(self, c: float = 1.0) -> None:
        self.model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))

    def features(self, items: Iterable[Any]) -> np.ndarray:
        return handcrafted_features(items)

    def fit(self, items: Iterable[Any], labels: np.ndarray) -> Self:
        self.model.fit(self.features(items), np.asarray(labels))
        return self

    def score(self, items: Iterable[Any]) -> np.ndarray:
        return self.model.predict_proba(self.features(items))[:, 1]
