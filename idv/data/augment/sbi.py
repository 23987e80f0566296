"""Self-Blended Images (SBI): pseudo-fakes made by blending a face with a perturbed copy of itself.

Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended Images", CVPR 2022. Face swaps share
generic blending artefacts (a blending boundary, colour mismatch and frequency mismatch between
the pasted face and its surroundings), whatever network made the face. Blending a slightly
perturbed and misaligned copy of a real face back into itself reproduces exactly these artefacts
with no manipulation method at all, so a detector trained on them generalises across
manipulations. Written from the paper (section 3), not from the authors' code.

Two deliberate choices, so that "outside the blend is untouched" holds and can be tested:

* only the source copy is perturbed; the target is the untouched input;
* the blend mask is exactly 0 outside the hull dilated by :func:`blend_reach` pixels (Chebyshev
  distance): elastic displacement + dilation radius + Gaussian kernel radius (3 sigma) + 1;
  the mask is also clipped to that region, so the bound holds by construction.

The paper's final JPEG re-compression is off by default (``jpeg_quality=None``): the corpus
applies its own camera afterwards. When enabled it touches the whole image.
"""

from __future__ import annotations

# idv/__init__.py sets NO_ALBUMENTATIONS_UPDATE; it must run before albumentations is imported.
import idv  # noqa: F401

# isort: split
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import albumentations as A
import cv2
import numpy as np

__all__ = [
    "PseudoFakes",
    "SBIConfig",
    "SelfBlend",
    "blend_reach",
    "ellipse_hull",
    "hull_mask",
    "self_blend",
]


def _pair(name: str, value: Any, lo: float, hi: float) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"SBIConfig.{name} must be a (low, high) pair, got {value!r}") from err
    if not lo <= a <= b <= hi:
        raise ValueError(
            f"SBIConfig.{name} must satisfy {lo} <= low <= high <= {hi}, got {value!r}"
        )
    return a, b


def _scalar(name: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ValueError(f"SBIConfig.{name} must be a number in [{lo}, {hi}], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class SBIConfig:
    """Every SBI parameter. Lengths are fractions of the image's shorter side (size-independent);
    colour shifts are in uint8 levels (hue in degrees); ranges are (low, high), drawn uniformly."""

    blend_ratios: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)  # peak of the mask, r
    scale_range: tuple[float, float] = (0.95, 1.05)  # source resize
    shift_frac: float = 0.03  # source translation, at most this per axis
    elastic_alpha: float = 0.02  # max elastic displacement of the mask
    elastic_sigma: float = 0.08  # smoothness of the elastic field
    morph_radius: tuple[float, float] = (0.0, 0.04)  # erosion or dilation radius (50/50)
    blur_sigma: tuple[float, float] = (0.01, 0.04)  # Gaussian blur of the mask
    rgb_shift: float = 20.0
    hue_shift: float = 10.0
    sat_shift: float = 30.0
    val_shift: float = 20.0
    brightness: float = 0.1  # additive, fraction of 255
    contrast: float = 0.1  # multiplicative, 1 +- this
    downscale_range: tuple[float, float] = (0.3, 0.7)  # down-then-up factor
    sharpen_p: float = 0.5  # else downscale
    sharpen_amount: tuple[float, float] = (0.5, 1.0)  # unsharp-mask gain
    jpeg_quality: tuple[int, int] | None = None  # None: no JPEG in the transform

    def __post_init__(self) -> None:
        fix = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        try:
            ratios = tuple(float(r) for r in self.blend_ratios)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"SBIConfig.blend_ratios must be numbers: {self.blend_ratios!r}"
            ) from err
        if not ratios or not all(0.0 < r <= 1.0 for r in ratios):
            raise ValueError(f"SBIConfig.blend_ratios must be non-empty, in (0, 1]: {ratios!r}")
        fix("blend_ratios", ratios)
        fix("scale_range", _pair("scale_range", self.scale_range, 0.5, 2.0))
        for name, hi in [("shift_frac", 0.5), ("elastic_alpha", 0.5), ("elastic_sigma", 1.0)]:
            fix(name, _scalar(name, getattr(self, name), 0.0, hi))
        if self.elastic_sigma <= 0:
            raise ValueError("SBIConfig.elastic_sigma must be > 0")
        fix("morph_radius", _pair("morph_radius", self.morph_radius, 0.0, 0.5))
        fix("blur_sigma", _pair("blur_sigma", self.blur_sigma, 1e-6, 0.5))
        for name, hi in [("rgb_shift", 255), ("hue_shift", 180), ("sat_shift", 255)]:
            fix(name, _scalar(name, getattr(self, name), 0.0, hi))
        fix("val_shift", _scalar("val_shift", self.val_shift, 0.0, 255))
        fix("brightness", _scalar("brightness", self.brightness, 0.0, 1.0))
        fix("contrast", _scalar("contrast", self.contrast, 0.0, 1.0))
        fix("downscale_range", _pair("downscale_range", self.downscale_range, 0.01, 1.0))
        fix("sharpen_p", _scalar("sharpen_p", self.sharpen_p, 0.0, 1.0))
        fix("sharpen_amount", _pair("sharpen_amount", self.sharpen_amount, 0.0, 10.0))
        if self.jpeg_quality is not None:
            q = _pair("jpeg_quality", self.jpeg_quality, 1, 100)
            if q != tuple(int(v) for v in q):
                raise ValueError(f"SBIConfig.jpeg_quality must be integers: {self.jpeg_quality!r}")
            fix("jpeg_quality", (int(q[0]), int(q[1])))


def hull_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """uint8 {0,1} mask of shape ``(H, W)`` filled over the convex hull of (N,2) x,y points."""
    pts = np.asarray(points, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3:
        raise ValueError(f"points must be (N>=3, 2) x,y coordinates, got shape {pts.shape}")
    mask = np.zeros(tuple(shape), dtype=np.uint8)
    hull = cv2.convexHull(np.round(pts).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    return mask


def _px(frac: float, side: int) -> int:
    return int(math.ceil(frac * side))


def blend_reach(shape: tuple[int, int], cfg: SBIConfig = SBIConfig()) -> int:
    """Max Chebyshev distance (pixels) from the hull at which the blend mask can be non-zero."""
    side = min(shape[:2])
    return (
        _px(cfg.elastic_alpha, side)
        + _px(cfg.morph_radius[1], side)
        + int(math.ceil(3 * cfg.blur_sigma[1] * side))
        + 1
    )


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _perturb_source(img: np.ndarray, rng: np.random.Generator, cfg: SBIConfig) -> np.ndarray:
    """Colour, then frequency, then geometry perturbation of the source copy."""
    h, w = img.shape[:2]
    src = _u8(img.astype(np.float32) + rng.uniform(-cfg.rgb_shift, cfg.rgb_shift, 3))
    hsv = cv2.cvtColor(src, cv2.COLOR_RGB2HSV).astype(np.float32)  # H in [0, 180)
    dh, ds, dv = rng.uniform(-1, 1, 3) * (cfg.hue_shift / 2, cfg.sat_shift, cfg.val_shift)
    hsv[..., 0] = np.mod(hsv[..., 0] + dh, 180)
    hsv[..., 1:] += (ds, dv)
    src = cv2.cvtColor(_u8(np.minimum(hsv, (179, 255, 255))), cv2.COLOR_HSV2RGB)
    gain = 1 + rng.uniform(-cfg.contrast, cfg.contrast)
    src = _u8(src.astype(np.float32) * gain + 255 * rng.uniform(-cfg.brightness, cfg.brightness))
    if rng.random() < cfg.sharpen_p:
        soft = cv2.GaussianBlur(src, (0, 0), 1.0).astype(np.float32)
        src = _u8(src + rng.uniform(*cfg.sharpen_amount) * (src - soft))
    else:
        f = rng.uniform(*cfg.downscale_range)
        small = cv2.resize(
            src, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA
        )
        src = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    affine = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, rng.uniform(*cfg.scale_range))
    affine[:, 2] += rng.uniform(-cfg.shift_frac, cfg.shift_frac, 2) * (w, h)
    return cv2.warpAffine(
        src, affine, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )


def _blend_mask(hull: np.ndarray, rng: np.random.Generator, cfg: SBIConfig) -> np.ndarray:
    """Elastic warp, erosion/dilation, Gaussian blur, scale to a blend ratio; clipped to reach."""
    h, w = hull.shape
    side = min(h, w)
    base = (hull > 0).astype(np.float32)
    field = rng.uniform(-1, 1, (2, h, w)).astype(np.float32)
    field = np.stack([cv2.GaussianBlur(c, (0, 0), cfg.elastic_sigma * side) for c in field])
    field *= cfg.elastic_alpha * side / max(float(np.abs(field).max()), 1e-12)  # |d| <= alpha
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mask = cv2.remap(base, gx + field[0], gy + field[1], cv2.INTER_LINEAR, borderValue=0.0)
    radius = round(rng.uniform(*cfg.morph_radius) * side)
    if radius > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
        morphed = (cv2.dilate if rng.random() < 0.5 else cv2.erode)(mask, kernel)
        mask = morphed if morphed.max() > 0 else mask  # never erode the face away
    if mask.max() <= 0:
        mask = base
    sigma = rng.uniform(*cfg.blur_sigma) * side
    k = 2 * int(math.ceil(3 * sigma)) + 1
    mask = cv2.GaussianBlur(mask, (k, k), sigma)
    reach = blend_reach((h, w), cfg)
    mask *= cv2.dilate(base, np.ones((2 * reach + 1,) * 2, np.uint8))
    ratio = cfg.blend_ratios[rng.integers(len(cfg.blend_ratios))]
    return np.clip(mask * (ratio / mask.max()), 0.0, 1.0).astype(np.float32)


def self_blend(
    image: np.ndarray, hull: np.ndarray, rng: np.random.Generator, cfg: SBIConfig = SBIConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """Self-blend ``image`` (uint8 HxWx3 RGB) inside ``hull`` (HxW, bool or in [0, 1]; > 0 is face).

    Returns ``(blended uint8 HxWx3, blend mask float32 HxW in [0, 1])``. Where the mask is 0 the
    output equals the input exactly (unless ``cfg.jpeg_quality`` is set). Uses only ``rng``.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"image must be a uint8 array, got {getattr(image, 'dtype', type(image))}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be HxWx3, got shape {image.shape}")
    hull = np.asarray(hull)
    if hull.shape != image.shape[:2]:
        raise ValueError(f"hull shape {hull.shape} must equal image HxW {image.shape[:2]}")
    if hull.dtype != bool and not (
        np.all(np.isfinite(hull)) and 0 <= hull.min() <= hull.max() <= 1
    ):
        raise ValueError("hull values must be bool or lie in [0, 1]")
    if not np.any(hull > 0):
        raise ValueError("hull is empty (no pixel > 0)")
    source = _perturb_source(image, rng, cfg)
    mask = _blend_mask(hull, rng, cfg)
    m = mask[..., None]
    out = _u8(source.astype(np.float32) * m + image.astype(np.float32) * (1.0 - m))
    if cfg.jpeg_quality is not None:
        quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        out = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return out, mask


class SelfBlend(A.ImageOnlyTransform):
    """Albumentations wrapper of :func:`self_blend`; the hull comes in as a named array.

    ``A.Compose([SelfBlend(p=1.0)], seed=0)(image=img, hull=hull)["image"]``. No
    ``additional_targets`` is needed (``hull`` is declared in ``targets_as_params``), but if
    geometric transforms run before this one, pass ``additional_targets={"hull": "mask"}`` so the
    hull moves with the image. The hull itself is returned unchanged. Randomness comes from
    ``self.random_generator``, which ``A.Compose(seed=...)`` seeds.
    """

    def __init__(
        self,
        cfg: SBIConfig | Mapping[str, Any] | None = None,
        hull_key: str = "hull",
        p: float = 0.5,
    ) -> None:
        super().__init__(p=p)
        self.cfg = cfg if isinstance(cfg, SBIConfig) else SBIConfig(**dict(cfg or {}))
        self.hull_key = hull_key

    @property
    def targets_as_params(self) -> list[str]:
        return [self.hull_key]

    def get_params_dependent_on_data(
        self, params: dict[str, Any], data: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "hull": data[self.hull_key],
            "seed": int(self.random_generator.integers(0, 2**63 - 1)),
        }

    def apply(self, img: np.ndarray, hull: np.ndarray, seed: int, **params: Any) -> np.ndarray:
        return self_blend(img, hull, np.random.default_rng(seed), self.cfg)[0]

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("cfg", "hull_key")


def ellipse_hull(
    shape: tuple[int, int],
    rng: np.random.Generator,
    centre: tuple[float, float],
    axes: tuple[float, float],
    jitter: float,
) -> np.ndarray:
    """uint8 {0,1} elliptical face hull for a centred face (no landmarks needed): `centre`
    (x, y) and semi-`axes` as fractions of the width / height, each moved by up to `jitter`."""
    h, w = shape
    cx, cy = (c + rng.uniform(-jitter, jitter) for c in centre)
    ax, ay = (a * (1.0 + rng.uniform(-jitter, jitter) * 3) for a in axes)
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(
        mask, (round(cx * w), round(cy * h)), (max(1, round(ax * w)), max(1, round(ay * h))),
        float(rng.uniform(-10.0, 10.0)), 0.0, 360.0, 1, -1,
    )  # fmt: skip
    return mask


@dataclass(frozen=True)
class PseudoFakes:
    """Online SBI for training (the paper's recipe): each bona fide training image becomes,
    with probability `p`, a fresh self-blended pseudo-fake of species `species` (a new blend
    every epoch, unlike a corpus' fixed one). The hull is an ellipse (`ellipse_hull`), since
    a dataset row carries no landmarks; `sbi`: `SBIConfig` fields."""

    species: str = "sbi"
    p: float = 0.5
    centre: tuple[float, float] = (0.5, 0.52)
    axes: tuple[float, float] = (0.33, 0.42)
    jitter: float = 0.03
    sbi: SBIConfig = SBIConfig()

    def __post_init__(self) -> None:
        _scalar("PseudoFakes.p", self.p, 0.0, 1.0)
        object.__setattr__(self, "centre", _pair("PseudoFakes.centre", self.centre, 0.0, 1.0))
        axes = tuple(_scalar("PseudoFakes.axes", float(a), 0.01, 1.0) for a in self.axes)
        if len(axes) != 2:
            raise ValueError(f"PseudoFakes.axes must be (x, y) semi-axes, got {self.axes!r}")
        object.__setattr__(self, "axes", axes)
        _scalar("PseudoFakes.jitter", self.jitter, 0.0, 0.2)
        if isinstance(self.sbi, Mapping):
            object.__setattr__(self, "sbi", SBIConfig(**dict(self.sbi)))

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
        """A pseudo-fake of `image`, or None (kept bona fide) with probability 1 - p."""
        if rng.random() >= self.p:
            return None
        hull = ellipse_hull(image.shape[:2], rng, self.centre, self.axes, self.jitter)
        return self_blend(image, hull, rng, self.sbi)[0]
