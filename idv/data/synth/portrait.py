"""ID-document portraits of a synthetic identity: the reference image of 1:1 onboarding.

The portrait printed on an identity document differs from the selfie it is compared with in
the ways that make onboarding matching hard: it was taken years earlier (the person's
appearance drifted: fewer wrinkles, another haircut or beard), frontal on a plain background
under even light, printed small (low resolution, halftone, lifted blacks, lower contrast) and
recaptured by the user's camera. `render_portrait` draws all of that from the generator it is
given, so the same seed gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from idv.data.augment.attacks import print_attack
from idv.data.synth.faces import PARAM_INDEX, FaceRender, Identity, Nuisance, render_face

# Capture of the portrait itself: frontal, neutral expression, plain background, studio light.
PORTRAIT_NUISANCE = Nuisance(
    yaw_deg=3.0,
    roll_deg=2.0,
    scale=(0.97, 1.03),
    shift_px=1.5,
    lighting=0.1,
    expression=0.25,
    blur_sigma=(0.0, 0.3),
    noise_sigma=(0.5, 2.0),
    jpeg_quality=(100, 100),
    background=0.0,
)


@dataclass(frozen=True)
class PortraitStyle:
    """How far a document portrait is from a selfie (ranges drawn uniformly per portrait)."""

    drift: float = 2.0  # appearance change since the portrait was taken (0 = none)
    resolution: tuple[int, int] = (28, 44)  # printed face size in pixels before recapture
    contrast: tuple[float, float] = (0.5, 0.75)  # 1 = unchanged
    print_strength: tuple[float, float] = (0.25, 0.55)  # idv.data.augment.attacks.print_attack

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> PortraitStyle:
        """From YAML (lists become the tuples the dataclass expects)."""
        return cls(**{k: tuple(v) if isinstance(v, list | tuple) else v for k, v in cfg.items()})


def earlier_capture(identity: Identity, rng: np.random.Generator, drift: float) -> Identity:
    """The same person some years earlier: younger skin, and hair / beard that changed."""
    p = identity.params.astype(np.float64)
    i = PARAM_INDEX
    p[i["wrinkles"]] *= rng.uniform(max(0.0, 1.0 - 0.7 * drift), 1.0)
    p[i["hair_volume"]] = np.clip(p[i["hair_volume"]] + rng.normal(0.0, 1.2 * drift), 1.0, 8.0)
    p[i["hair_length"]] = np.clip(p[i["hair_length"]] + rng.normal(0.0, 10.0 * drift), 28, 90)
    p[i["hairline"]] = np.clip(p[i["hairline"]] - abs(rng.normal(0.0, 1.5 * drift)), 5.0, 19.0)
    p[i["hair_part"]] = np.clip(p[i["hair_part"]] + rng.normal(0.0, 0.5 * drift), -1.0, 1.0)
    p[i["facial_hair_strength"]] *= rng.uniform(max(0.0, 1.0 - 0.5 * drift), 1.0)
    return replace(identity, params=p.astype(np.float32))


def render_portrait(
    identity: Identity, rng: np.random.Generator, size: int, style: PortraitStyle
) -> FaceRender:
    """One recaptured document portrait of `identity`; landmarks and geometry as drawn (the
    recapture resamples the image in place)."""
    younger = earlier_capture(identity, rng, style.drift)
    face = render_face(younger, rng, size=size, nuisance=PORTRAIT_NUISANCE)
    small = int(rng.integers(style.resolution[0], style.resolution[1] + 1))
    contrast = rng.uniform(*style.contrast)
    strength = rng.uniform(*style.print_strength)
    image = cv2.resize(face.image, (small, small), interpolation=cv2.INTER_AREA)
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    mean = image.mean(axis=(0, 1), keepdims=True)
    image = np.clip(mean + contrast * (image - mean), 0, 255).astype(np.uint8)
    image = print_attack(image, strength, rng)
    return FaceRender(
        image=image,
        landmarks=face.landmarks,
        jpeg_quality=face.jpeg_quality,
        geometry=face.geometry,
    )
