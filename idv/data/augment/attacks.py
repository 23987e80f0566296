"""Presentation-attack (PAD) simulators: printed photo, screen replay and paper cut-out mask.

Each species is a pure function ``f(image, strength, rng) -> image`` on RGB uint8 HxWx3 arrays,
used by the synthetic corpus generator with its own ``np.random.Generator``, and an
albumentations transform wrapping it for training pipelines built from Hydra config.

Design rules, all of which the PAD corpus relies on:

* ``strength`` in [0, 1] scales the amplitude of every artefact linearly, so 0 is the identity
  and small values give subtle attacks (a detector must not only learn the obvious ones).
* The random draws never depend on ``strength``: with one seed, raising the strength only makes
  the same attack stronger, which keeps the strength-to-degradation relation monotonic.
* The global mean intensity of the input is restored at the end, and the size never changes,
  so brightness and geometry carry no label (a metadata-only classifier must stay near chance).
* Only the ``rng`` passed in is used: the same seed gives bit-identical output.
"""

from __future__ import annotations

# idv/__init__.py sets NO_ALBUMENTATIONS_UPDATE; it must run before albumentations is imported.
# (Importing this submodule already imports the package first; the explicit line documents it.)
import idv  # noqa: F401

# isort: split
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np

__all__ = [
    "ATTACK_FUNCTIONS",
    "PaperMask",
    "PrintAttack",
    "ScreenReplay",
    "paper_mask",
    "print_attack",
    "screen_replay",
]

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # Rec. 601 weights
_MIN_PERIOD = 2.0  # px; a shorter period would alias past the Nyquist frequency


# --------------------------------------------------------------------------------------------
# Validation and shared helpers
# --------------------------------------------------------------------------------------------


def _check_inputs(image: Any, strength: Any, rng: Any) -> float:
    """Reject inputs the simulators cannot handle faithfully, with a message that says why."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(
            f"image must be uint8 RGB (0-255), got dtype {image.dtype}; apply the attack "
            "before any normalisation or float conversion"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3) (RGB), got {image.shape}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"image must be at least 2x2 pixels, got {image.shape}")
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real):
        raise ValueError(f"strength must be a real number in [0, 1], got {strength!r}")
    value = float(strength)
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"strength must lie in [0, 1], got {strength!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return value


def _check_period(period: Any, name: str) -> float:
    """A period must be a finite number of pixels above the Nyquist limit."""
    if isinstance(period, bool) or not isinstance(period, numbers.Real):
        raise ValueError(f"{name} must be a number of pixels, got {period!r}")
    value = float(period)
    if not math.isfinite(value) or value < _MIN_PERIOD:
        raise ValueError(f"{name} must be a finite number >= {_MIN_PERIOD} px, got {period!r}")
    return value


def _luma(img: np.ndarray) -> np.ndarray:
    """Luminance (H, W) of a float RGB image."""
    return img @ _LUMA


def _desaturate(img: np.ndarray, amount: float) -> np.ndarray:
    """Pull colours towards grey by ``amount`` in [0, 1] (ink and screen gamuts are smaller)."""
    grey = _luma(img)[..., None]
    return grey + (img - grey) * (1.0 - amount)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; a no-op for negligible sigma, so strength 0 stays the identity."""
    if sigma < 0.05:
        return img
    return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def _grid(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(x, y)`` as float32 arrays of shape (H, W)."""
    h, w = shape[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return x, y


def _rotate(x: np.ndarray, y: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates rotated by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return x * c + y * s, -x * s + y * c


def _restore_mean_to_uint8(out: np.ndarray, target: float) -> np.ndarray:
    """Shift the result so its global mean equals the input's, then clip and round.

    The shift is additive and found by fixed-point iteration, because clipping to [0, 255]
    moves the mean again; the mean of clip(x + t) grows monotonically in t, so it converges.
    """
    offset = 0.0
    result = np.clip(out, 0.0, 255.0)
    for _ in range(10):
        error = target - float(result.mean())
        if abs(error) < 0.05:
            break
        offset += error
        result = np.clip(out + offset, 0.0, 255.0)
    return np.rint(result).astype(np.uint8)


def _line_kernel(length: int, angle: float) -> np.ndarray:
    """A normalised anti-aliased line kernel, used to turn white noise into paper fibres."""
    half = length // 2
    y, x = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    along, across = _rotate(x, y, angle)
    kernel = np.exp(-0.5 * (across / 0.6) ** 2) * (np.abs(along) <= half + 0.5)
    return (kernel / math.sqrt(float((kernel**2).sum()))).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Print attack
# --------------------------------------------------------------------------------------------


def print_attack(
    image: np.ndarray,
    strength: float,
    rng: np.random.Generator,
    *,
    halftone_period: float = 4.0,
) -> np.ndarray:
    """Simulate a printed photo of the face recaptured by the camera.

    Artefacts, each scaled by ``strength``: print/refocus blur; gamut loss (desaturation, lifted
    ink black and dimmed paper white, a warm paper colour cast); a CMY halftone screen with
    period ``halftone_period`` px per ink at the classic screen angles (a spectral peak at
    1/period cycles/px); fibrous paper texture; and at strength above 0.6 a paper margin along
    one edge of the capture.
    """
    s = _check_inputs(image, strength, rng)
    period = _check_period(halftone_period, "halftone_period")
    h, w = image.shape[:2]

    # All draws happen up front, in a fixed order, whatever the strength.
    blur_sigma = rng.uniform(0.3, 0.9)
    sat_loss = rng.uniform(0.30, 0.50)
    black = rng.uniform(10.0, 25.0)
    white_loss = rng.uniform(8.0, 20.0)
    cast = np.array(
        [rng.uniform(0.0, 0.05), rng.uniform(-0.01, 0.03), rng.uniform(-0.08, -0.02)],
        dtype=np.float32,
    )
    screen_angle = rng.uniform(0.0, math.pi / 2)
    phases = rng.uniform(0.0, 2 * math.pi, size=(2, 3)).astype(np.float32)
    halftone_amp = rng.uniform(10.0, 16.0)
    fibre_angle = rng.uniform(0.0, math.pi)
    fibre_noise = rng.standard_normal((h, w), dtype=np.float32)
    grain_noise = rng.standard_normal((h, w), dtype=np.float32)
    texture_std = rng.uniform(2.0, 4.0)
    border_side = int(rng.integers(4))
    border_frac = rng.uniform(0.5, 1.0)
    paper_tone = rng.uniform(225.0, 245.0)

    src = image.astype(np.float32)
    out = _blur(src, s * blur_sigma)

    # Gamut loss: paper and ink reproduce fewer colours and a narrower range than the scene.
    out = _desaturate(out, s * sat_loss)
    lo, hi = s * black, 255.0 - s * white_loss
    out = lo + out * ((hi - lo) / 255.0)
    out = out * (1.0 + s * cast)

    # Halftone: one dot screen (two orthogonal gratings) per ink, rotated by 15/75/0 degrees as
    # for C, M and Y; the modulation is strongest in mid-tones, where dots are half covered.
    x, y = _grid(image.shape)
    angles = screen_angle + np.deg2rad(np.array([15.0, 75.0, 0.0], dtype=np.float32))
    cos_a, sin_a = np.cos(angles), np.sin(angles)
    u = x[..., None] * cos_a + y[..., None] * sin_a
    v = -x[..., None] * sin_a + y[..., None] * cos_a
    k = np.float32(2 * math.pi / period)
    screen = 0.5 * (np.cos(k * u + phases[0]) + np.cos(k * v + phases[1]))
    tone = np.clip(out / 255.0, 0.0, 1.0)
    coverage = 0.3 + 2.8 * tone * (1.0 - tone)  # 0.3 at paper white / solid ink, 1.0 mid-tone
    out = out + (s * halftone_amp) * coverage * screen

    # Paper texture: fibres (noise smeared along one direction) plus fine grain, same on all inks.
    fibres = cv2.filter2D(
        fibre_noise, -1, _line_kernel(9, fibre_angle), borderType=cv2.BORDER_REFLECT
    )
    grain = cv2.GaussianBlur(grain_noise, (0, 0), 0.7) * 1.5
    texture = (0.8 * fibres + 0.2 * grain) * (s * texture_std)
    out = out + texture[..., None]

    # Paper margin: the print's edge enters the frame only for strong (careless) attacks.
    border_strength = max(0.0, (s - 0.6) / 0.4)
    width = int(round(border_strength * border_frac * 0.08 * min(h, w)))
    if width > 0:
        paper = (lo + paper_tone * (hi - lo) / 255.0) * (1.0 + s * cast)
        margin = paper + 0.5 * texture[..., None]
        band = {
            0: (slice(0, width), slice(None)),
            1: (slice(h - width, h), slice(None)),
            2: (slice(None), slice(0, width)),
            3: (slice(None), slice(w - width, w)),
        }[border_side]
        out[band] = margin[band]

    return _restore_mean_to_uint8(out, float(src.mean()))


# --------------------------------------------------------------------------------------------
# Screen replay
# --------------------------------------------------------------------------------------------


def screen_replay(
    image: np.ndarray,
    strength: float,
    rng: np.random.Generator,
    *,
    moire_period: float = 5.0,
) -> np.ndarray:
    """Simulate the face shown on a phone/monitor screen and recaptured by the camera.

    Artefacts, each scaled by ``strength``: refocus blur; lifted black level and a gamma change
    (screens are not linear like the scene); a bluish screen white point; the screen's pixel
    grid (RGB sub-pixel stripes plus the dark row matrix, period ``moire_period`` px, slightly
    rotated and modulated by a slow beat, which gives moire fringes and a spectral peak at
    1/period cycles/px); and a soft specular glare blob at a random position.
    """
    s = _check_inputs(image, strength, rng)
    period = _check_period(moire_period, "moire_period")
    h, w = image.shape[:2]

    blur_sigma = rng.uniform(0.3, 0.8)
    black = rng.uniform(8.0, 20.0)
    gamma_shift = rng.uniform(-0.3, 0.3)
    white_point = np.array(
        [-rng.uniform(0.04, 0.10), -rng.uniform(0.0, 0.03), rng.uniform(0.02, 0.08)],
        dtype=np.float32,
    )
    grid_angle = rng.uniform(-math.radians(15.0), math.radians(15.0))
    grid_phase = rng.uniform(0.0, 2 * math.pi, size=2)
    grid_amp = rng.uniform(0.20, 0.28)
    beat_freq = rng.uniform(0.01, 0.04)  # cycles/px: screen pitch vs. sensor pitch mismatch
    beat_angle = rng.uniform(0.0, math.pi)
    beat_phase = rng.uniform(0.0, 2 * math.pi)
    glare_centre = (rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h)
    glare_sigma = rng.uniform(0.12, 0.30) * min(h, w)
    glare_aspect = rng.uniform(1.0, 2.0)
    glare_angle = rng.uniform(0.0, math.pi)
    glare_gain = rng.uniform(0.35, 0.70)

    src = image.astype(np.float32)
    out = _blur(src, s * blur_sigma)

    # Display transfer: a screen cannot show true black, its gamma differs from the scene's,
    # and its white point is bluer than daylight.
    lift = s * black
    out = lift + out * (1.0 - lift / 255.0)
    out = 255.0 * np.power(np.clip(out / 255.0, 0.0, 1.0), 1.0 + s * gamma_shift)
    out = out * (1.0 + s * white_point)

    # Pixel grid: R, G, B stripes a third of a period apart along u, dark matrix rows along v.
    x, y = _grid(image.shape)
    u, v = _rotate(x, y, grid_angle)
    k = np.float32(2 * math.pi / period)
    subpixel_phase = np.float32(2 * math.pi / 3) * np.arange(3, dtype=np.float32)
    stripes = np.cos((k * u + grid_phase[0])[..., None] - subpixel_phase)
    rows = np.cos(k * v + grid_phase[1])[..., None]
    bu, _ = _rotate(x, y, beat_angle)
    beat = 0.65 + 0.35 * np.cos(np.float32(2 * math.pi * beat_freq) * bu + beat_phase)
    grid = beat[..., None] * (0.4 * stripes + 0.6 * rows)
    out = out * (1.0 + (s * grid_amp) * grid)  # emitted light is proportional to pixel value

    # Glare: a soft, slightly elongated specular reflection of a light source on the glass.
    gu, gv = _rotate(x - glare_centre[0], y - glare_centre[1], glare_angle)
    blob = np.exp(-0.5 * ((gu / (glare_sigma * glare_aspect)) ** 2 + (gv / glare_sigma) ** 2))
    glare_white = np.array([245.0, 250.0, 255.0], dtype=np.float32)
    out = out + (glare_white - out) * (s * glare_gain) * blob[..., None]

    return _restore_mean_to_uint8(out, float(src.mean()))


# --------------------------------------------------------------------------------------------
# Paper cut-out mask
# --------------------------------------------------------------------------------------------


def paper_mask(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Simulate a flat printed face cut-out held in front of the attacker's face.

    Inside an elliptical face region around a jittered centre, each scaled by ``strength``: the
    low-frequency 3-D shading is flattened (a flat sheet catches light uniformly), fine detail
    softens and colours lose saturation with a cast of their own (print gamut), which leaves a
    slight colour mismatch to the surroundings, and the sheet carries a weaker halftone screen
    (it is a print); along the ellipse runs a faint dark seam (the cut edge and its shadow).
    """
    s = _check_inputs(image, strength, rng)
    h, w = image.shape[:2]
    size = min(h, w)

    centre = (w * (0.5 + rng.uniform(-0.06, 0.06)), h * (0.5 + rng.uniform(-0.04, 0.08)))
    axes = (w * rng.uniform(0.28, 0.36), h * rng.uniform(0.36, 0.46))
    tilt = rng.uniform(-math.radians(10.0), math.radians(10.0))
    flatten = rng.uniform(0.5, 0.8)
    detail_blur = rng.uniform(0.4, 0.9)
    sat_loss = rng.uniform(0.25, 0.45)
    cast = rng.normal(0.0, 0.03, size=3).astype(np.float32)
    seam_width = rng.uniform(0.6, 1.2)  # px
    seam_depth = rng.uniform(15.0, 35.0)  # grey levels at full strength
    print_share = rng.uniform(0.4, 0.7)  # halftone strength relative to a full print attack
    halftone = rng.uniform(3.0, 6.0)  # px

    src = image.astype(np.float32)

    # Elliptical coordinates: d = 1 on the cut edge; soft inside mask about one pixel wide.
    x, y = _grid(image.shape)
    eu, ev = _rotate(x - centre[0], y - centre[1], tilt)
    d = np.sqrt((eu / axes[0]) ** 2 + (ev / axes[1]) ** 2)
    px_per_d = min(axes)  # pixels per unit of d, roughly
    inside = 1.0 / (1.0 + np.exp(np.clip(-(1.0 - d) * px_per_d, -30.0, 30.0)))

    # Flatten shading: divide out a fraction of the low-frequency luminance around its mean.
    shading = cv2.GaussianBlur(_luma(src), (0, 0), 0.08 * size, borderType=cv2.BORDER_REFLECT)
    shading = shading + 1.0
    level = float((shading * inside).sum() / max(float(inside.sum()), 1e-6))
    gain = np.clip(np.power(level / shading, s * flatten), 0.5, 2.0)
    face = _blur(src, s * detail_blur) * gain[..., None]

    face = _desaturate(face, s * sat_loss) * (1.0 + s * cast)
    # The cut-out is itself a print: a weaker halftone screen on the face region.
    face_u8 = np.clip(np.rint(face), 0, 255).astype(np.uint8)
    face = print_attack(face_u8, s * print_share, rng, halftone_period=halftone).astype(np.float32)
    out = inside[..., None] * face + (1.0 - inside[..., None]) * src

    seam = np.exp(-0.5 * (((d - 1.0) * px_per_d) / seam_width) ** 2)
    out = out - (s * seam_depth) * seam[..., None]

    return _restore_mean_to_uint8(out, float(src.mean()))


ATTACK_FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "print": print_attack,
    "replay": screen_replay,
    "mask": paper_mask,
}
"""Species name (as in the corpus config's ``species`` list) to simulator."""


# --------------------------------------------------------------------------------------------
# Albumentations transforms
# --------------------------------------------------------------------------------------------


def _strength_range(value: Any) -> tuple[float, float]:
    """Accept a number or any 2-sequence (tuple, list, Hydra ListConfig) inside [0, 1]."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        low = high = float(value)
    elif (
        isinstance(value, Sequence | np.ndarray) and not isinstance(value, str) and len(value) == 2
    ):
        try:
            low, high = float(value[0]), float(value[1])
        except (TypeError, ValueError) as err:
            raise ValueError(f"strength must be numbers, got {value!r}") from err
    else:
        raise ValueError(f"strength must be a number or a (low, high) pair, got {value!r}")
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"strength range must satisfy 0 <= low <= high <= 1, got {value!r}")
    return low, high


class _AttackTransform(A.ImageOnlyTransform):
    """Shared plumbing: draw strength and a seed from albumentations' own generator.

    Drawing from ``self.random_generator`` (which ``A.Compose(seed=...)`` seeds) rather than a
    private one makes seeded pipelines reproducible; the pure function then gets a fresh
    ``np.random.Generator`` from the drawn seed.
    """

    def __init__(self, strength: Any = (0.2, 1.0), p: float = 0.5) -> None:
        super().__init__(p=p)
        self.strength = _strength_range(strength)

    def get_params(self) -> dict[str, Any]:
        low, high = self.strength
        return {
            "strength": float(self.random_generator.uniform(low, high)),
            "seed": int(self.random_generator.integers(0, 2**63 - 1)),
        }

    def _attack(self, img: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def apply(self, img: np.ndarray, strength: float, seed: int, **params: Any) -> np.ndarray:
        return self._attack(img, strength, np.random.default_rng(seed))


class PrintAttack(_AttackTransform):
    """Albumentations wrapper of :func:`print_attack`, strength uniform in ``strength``."""

    def __init__(
        self, strength: Any = (0.2, 1.0), halftone_period: float = 4.0, p: float = 0.5
    ) -> None:
        super().__init__(strength=strength, p=p)
        self.halftone_period = _check_period(halftone_period, "halftone_period")

    def _attack(self, img: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
        return print_attack(img, strength, rng, halftone_period=self.halftone_period)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("strength", "halftone_period")


class ScreenReplay(_AttackTransform):
    """Albumentations wrapper of :func:`screen_replay`, strength uniform in ``strength``."""

    def __init__(
        self, strength: Any = (0.2, 1.0), moire_period: float = 5.0, p: float = 0.5
    ) -> None:
        super().__init__(strength=strength, p=p)
        self.moire_period = _check_period(moire_period, "moire_period")

    def _attack(self, img: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
        return screen_replay(img, strength, rng, moire_period=self.moire_period)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("strength", "moire_period")


class PaperMask(_AttackTransform):
    """Albumentations wrapper of :func:`paper_mask`, strength uniform in ``strength``."""

    def __init__(self, strength: Any = (0.2, 1.0), p: float = 0.5) -> None:
        super().__init__(strength=strength, p=p)

    def _attack(self, img: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
        return paper_mask(img, strength, rng)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("strength",)
