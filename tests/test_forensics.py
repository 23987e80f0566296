"""The hand-crafted deepfake baseline (idv.models.forensics): fixed-length finite features, a
pasted face's seam and colour shift seen by the boundary features, and a classifier that
learns a toy two-class set."""

from __future__ import annotations

import numpy as np
import pytest

from idv.metrics.detection import auc
from idv.models.forensics import (
    BOUNDARY_FEATURES,
    HandcraftedDeepfake,
    boundary_features,
    elliptical_radius,
)

SIZE = (96, 96)


def smooth_image(rng: np.random.Generator, shape=SIZE, noise: float = 0.0) -> np.ndarray:
    """A smooth colour field (a random linear gradient per channel) plus Gaussian noise."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = rng.uniform(80, 170, 3)
    field = base + x[..., None] * rng.uniform(-30, 30, 3) + y[..., None] * rng.uniform(-30, 30, 3)
    field = field + rng.normal(0.0, noise, field.shape)
    return np.clip(field, 0, 255).astype(np.uint8)


def pasted(image: np.ndarray, shift=(40.0, -25.0, 10.0)) -> np.ndarray:
    """The image with its face ellipse colour-shifted and pasted back with a hard seam."""
    r, _, _ = elliptical_radius(image.shape)
    out = image.astype(np.float64)
    out[r < 1.0] += np.asarray(shift)
    return np.clip(out, 0, 255).astype(np.uint8)


def test_features_are_finite_and_of_fixed_length():
    rng = np.random.default_rng(0)
    model = HandcraftedDeepfake()
    images = [
        smooth_image(rng, noise=3.0),
        smooth_image(rng, (64, 80), noise=10.0),
        np.full((48, 48, 3), 128, np.uint8),  # no texture at all
        rng.integers(0, 256, (96, 72, 3), dtype=np.uint8),
    ]
    features = model.features(images)
    assert features.shape == (len(images), model.n_features)
    assert np.isfinite(features).all()
    assert boundary_features(images[0]).shape == (BOUNDARY_FEATURES,)


def test_a_pasted_colour_shifted_face_shows_in_the_boundary_features():
    rng = np.random.default_rng(1)
    clean = smooth_image(rng, noise=2.0)
    f_clean, f_fake = boundary_features(clean), boundary_features(pasted(clean))
    ring_vs_in, ring_vs_out, radial = 0, 1, 2
    for k in (ring_vs_in, ring_vs_out):  # the seam's edges: much more energy in the ring
        assert f_fake[k] > f_clean[k] + 1.0
    assert f_fake[radial] > f_clean[radial]  # the seam's edges run across the boundary
    delta_e = -1
    assert f_clean[delta_e] < 5.0 < 20.0 < f_fake[delta_e]  # Lab Delta E, inner vs outside


@pytest.mark.parametrize("seed", [0, 1])
def test_the_classifier_separates_noisy_from_clean_images(seed: int):
    rng = np.random.default_rng(seed)

    def toy(n: int) -> tuple[list[np.ndarray], np.ndarray]:
        labels = np.repeat([0, 1], n)
        return [smooth_image(rng, noise=8.0 * y) for y in labels], labels

    train, y_train = toy(16)
    test, y_test = toy(16)
    scores = HandcraftedDeepfake().fit(train, y_train).score(test)
    assert auc(scores, y_test) > 0.9
