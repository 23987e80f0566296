"""The simulated camera that every PAD image, bona fide or attack, passes through last.

Auto-exposure, device colour cast, defocus, sensor noise and JPEG are drawn from the same
distributions for both classes, so brightness, file format and quality carry no label: a
detector has to find the attack in the content, not in the metadata.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # Rec. 601, as PIL's "L" mode


@dataclass(frozen=True)
class Device:
    name: str
    noise: float
    blur: float
    gain: tuple[float, float, float]


def devices_from_config(cfg: Mapping[str, Mapping]) -> list[Device]:
    return [
        Device(name, float(d["noise"]), float(d["blur"]), tuple(d["gain"]))
        for name, d in cfg.items()
    ]


def _uniform(rng: np.random.Generator, bounds: Sequence[float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def capture(
    image: np.ndarray, rng: np.random.Generator, device: Device, cfg: Mapping[str, Sequence[float]]
) -> tuple[bytes, np.ndarray]:
    """Photograph `image` with `device`: returns the JPEG bytes and their decoded pixels."""
    x = image.astype(np.float32) * np.asarray(device.gain, np.float32)
    # Meter on luminance, as a camera's auto-exposure does.
    target = _uniform(rng, cfg["target_brightness"])
    x *= target / max(float((x @ _LUMA).mean()), 1.0)
    sigma = _uniform(rng, cfg["blur_sigma"]) * device.blur
    if sigma > 0.05:
        x = cv2.GaussianBlur(x, (0, 0), sigma)
    x += rng.normal(0.0, _uniform(rng, cfg["noise_sigma"]) * device.noise, x.shape)
    pixels = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(
        buffer,
        format="JPEG",
        quality=int(rng.integers(cfg["jpeg_quality"][0], cfg["jpeg_quality"][1] + 1)),
    )
    data = buffer.getvalue()
    return data, np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
