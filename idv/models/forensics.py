"""The hand-crafted deepfake baseline: noise residual, spectrum and blend boundary, logistic
regression (`HandcraftedDeepfake`).

It tells us what the fused network adds. A classical forensic detector reads three things:
the sensor noise a render or a re-encode lacks (`NoiseResidualStats`, the network's own
residual statistics), the periodic energy an upsampling generator leaves in the spectrum
(`spectral_bands`), and the seam of a pasted face. The corpus centres the face, so the seam is
looked for on a fixed ellipse (`FACE_CENTRE`, `FACE_AXES`): high-pass gradient energy in a ring
around its boundary against inside and outside it (a hard seam adds edges there, mostly across
the boundary), and the Lab colour of the inner face against the ring just outside it (a
colour-transferred face rarely matches its surround exactly).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np
import torch

from idv.models.fusion import NoiseResidualStats
from idv.models.handcrafted import HandcraftedPAD, spectral_bands

FACE_CENTRE = (0.5, 0.52)  # (x, y) as fractions of (W, H)
FACE_AXES = (0.33, 0.42)  # semi-axes (x, y) as fractions of (W, H)
RING_WIDTH = 0.12  # half-width of the boundary ring, in units of the normalised radius
HIGHPASS_SIGMA = 1.0  # px: the Gaussian blur subtracted before the gradients (the high-pass)
SPECTRAL_BANDS = 12
EPS = 1e-6
BOUNDARY_FEATURES = 7  # see `boundary_features`


def elliptical_radius(
    shape: Sequence[int], centre: Sequence[float] = FACE_CENTRE, axes: Sequence[float] = FACE_AXES
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(r, nx, ny) per pixel of an (H, W) image: the normalised elliptical radius (1 on the
    ellipse) and the unit normal of the ellipse through that pixel (the radial direction)."""
    h, w = int(shape[0]), int(shape[1])
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    u = (x + 0.5 - centre[0] * w) / (axes[0] * w)
    v = (y + 0.5 - centre[1] * h) / (axes[1] * h)
    r = np.hypot(u, v)
    nx, ny = u / (axes[0] * w), v / (axes[1] * h)  # the gradient of r, up to a factor
    norm = np.maximum(np.hypot(nx, ny), EPS)
    return r, nx / norm, ny / norm


def _mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of `values` (H, W, ...) over a (H, W) mask; zeros for an empty mask."""
    return values[mask].mean(axis=0) if mask.any() else np.zeros(values.shape[mask.ndim :])


def boundary_features(
    image: np.ndarray,
    centre: Sequence[float] = FACE_CENTRE,
    axes: Sequence[float] = FACE_AXES,
    ring: float = RING_WIDTH,
    sigma: float = HIGHPASS_SIGMA,
) -> np.ndarray:
    """Blend-boundary features of an RGB uint8 image (BOUNDARY_FEATURES values):

    - log(ring / inside) and log(ring / outside) of the mean high-pass gradient energy (summed
      over R, G and B), the ring being |r - 1| <= `ring` (r: `elliptical_radius`);
    - the share of the ring's gradient energy across the boundary (along the normal);
    - Lab mean of the inner face (r < 1 - ring) minus the ring just outside (1 < r <= 1 + ring):
      dL, da, db, and its norm (Delta E 1976).
    """
    rgb = image.astype(np.float32) / 255.0
    high = rgb - cv2.GaussianBlur(rgb, (0, 0), sigmaX=sigma)
    gx = cv2.Sobel(high, cv2.CV_32F, 1, 0, ksize=3).astype(np.float64)
    gy = cv2.Sobel(high, cv2.CV_32F, 0, 1, ksize=3).astype(np.float64)
    r, nx, ny = elliptical_radius(image.shape, centre, axes)
    energy = (gx**2 + gy**2).sum(axis=2)  # every channel: a seam may be chroma only
    across = ((gx * nx[..., None] + gy * ny[..., None]) ** 2).sum(axis=2)
    inside, outside, band = r < 1.0 - ring, r > 1.0 + ring, np.abs(r - 1.0) <= ring
    e_in, e_out, e_ring = (float(_mean(energy, m)) for m in (inside, outside, band))
    radial = float(_mean(across, band)) / (e_ring + EPS)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float64)
    just_outside = (r > 1.0) & (r <= 1.0 + ring)
    colour = _mean(lab, inside) - _mean(lab, just_outside)
    return np.array(
        [
            np.log((e_ring + EPS) / (e_in + EPS)),
            np.log((e_ring + EPS) / (e_out + EPS)),
            radial,
            *colour,
            float(np.linalg.norm(colour)),
        ]
    )


class HandcraftedDeepfake(HandcraftedPAD):
    """Noise-residual statistics + spectral bands + blend-boundary features of one RGB uint8
    image per item, standardised, through logistic regression (`score`: P(attack))."""

    def __init__(
        self,
        c: float = 1.0,
        centre: Sequence[float] = FACE_CENTRE,
        axes: Sequence[float] = FACE_AXES,
        ring: float = RING_WIDTH,
        sigma: float = HIGHPASS_SIGMA,
        bands: int = SPECTRAL_BANDS,
    ) -> None:
        super().__init__(c=c)
        self.centre, self.axes, self.ring, self.sigma, self.bands = centre, axes, ring, sigma, bands
        self.residual = NoiseResidualStats().eval()

    @property
    def n_features(self) -> int:
        return NoiseResidualStats.out_features + self.bands + BOUNDARY_FEATURES

    def image_features(self, image: np.ndarray) -> np.ndarray:
        """The feature vector (`n_features` values) of one (H, W, 3) uint8 image."""
        tensor = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None]  # a copy
        with torch.no_grad():
            noise = self.residual(tensor / 255.0)[0].numpy().astype(np.float64)
        spectrum = spectral_bands(image, bands=self.bands)
        seam = boundary_features(image, self.centre, self.axes, self.ring, self.sigma)
        return np.concatenate([noise, spectrum, seam])

    def features(self, items: Iterable[np.ndarray]) -> np.ndarray:
        return np.stack([self.image_features(i) for i in items])
