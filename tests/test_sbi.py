"""Self-Blended Images: bounded blend region, untouched outside, determinism, validation."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import pytest

from idv.data.augment.sbi import SBIConfig, SelfBlend, blend_reach, hull_mask, self_blend

H = W = 64


def _ellipse_hull(cx: float = 30.0, cy: float = 30.0) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    return hull_mask(np.stack([cx + 13 * np.cos(t), cy + 19 * np.sin(t)], 1), (H, W))


@pytest.fixture
def face() -> np.ndarray:
    noise = np.random.default_rng(123).integers(0, 256, (H, W, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 1.5)  # textured, so every perturbation shows


def _reach_region(hull: np.ndarray) -> np.ndarray:
    r = blend_reach(hull.shape)  # default SBIConfig
    return cv2.dilate((hull > 0).astype(np.uint8), np.ones((2 * r + 1,) * 2, np.uint8)) > 0


def test_hull_mask_is_filled_convex_hull() -> None:
    hull = _ellipse_hull()
    assert hull.dtype == np.uint8 and set(np.unique(hull)) == {0, 1}
    assert abs(int(hull.sum()) - np.pi * 13 * 19) < 0.1 * np.pi * 13 * 19  # boundary pixels in
    assert hull[30, 30] == 1 and hull[0, 0] == 0
    with pytest.raises(ValueError, match="points"):
        hull_mask(np.zeros((2, 2)), (H, W))


def test_blend_is_bounded_and_outside_is_byte_identical(face: np.ndarray) -> None:
    hull = _ellipse_hull()
    region = _reach_region(hull)
    assert not region.all()  # the bound is informative at this size
    for seed in range(25):
        out, mask = self_blend(face, hull, np.random.default_rng(seed))
        changed = np.any(out != face, axis=-1)
        assert not (changed & ~region).any(), seed
        assert np.all(mask[~region] == 0), seed
        np.testing.assert_array_equal(out[mask == 0], face[mask == 0])


def test_ratio_one_changes_inside(face: np.ndarray) -> None:
    hull = _ellipse_hull()
    out, mask = self_blend(face, hull, np.random.default_rng(0), SBIConfig(blend_ratios=(1.0,)))
    assert mask.max() == pytest.approx(1.0)
    inside = hull > 0
    assert np.mean(np.any(out != face, axis=-1)[inside]) > 0.5


@pytest.mark.parametrize("hull_kind", ["uint8", "bool", "soft"])
def test_mask_range_and_peak(face: np.ndarray, hull_kind: str) -> None:
    hull = _ellipse_hull()
    hull = {"uint8": hull, "bool": hull > 0, "soft": hull * np.float32(0.8)}[hull_kind]
    cfg = SBIConfig()
    peaks = set()
    for seed in range(20):
        out, mask = self_blend(face, hull, np.random.default_rng(seed), cfg)
        assert out.dtype == np.uint8 and out.shape == face.shape
        assert mask.dtype == np.float32 and mask.shape == (H, W)
        assert mask.min() >= 0.0 and mask.max() <= 1.0
        assert min(abs(mask.max() - r) for r in cfg.blend_ratios) < 1e-5
        peaks.add(round(float(mask.max()), 4))
    assert len(peaks) > 1  # the ratio is drawn


def test_determinism(face: np.ndarray) -> None:
    hull = _ellipse_hull()
    a = self_blend(face, hull, np.random.default_rng(5))
    b = self_blend(face, hull, np.random.default_rng(5))
    c = self_blend(face, hull, np.random.default_rng(6))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_albumentations_transform_seeded(face: np.ndarray) -> None:
    hull = _ellipse_hull()

    def run(seed: int) -> dict:
        return A.Compose([SelfBlend(p=1.0)], seed=seed)(image=face, hull=hull)

    first, again, other = run(7), run(7), run(8)
    np.testing.assert_array_equal(first["image"], again["image"])
    assert not np.array_equal(first["image"], other["image"])
    assert first["hull"] is hull  # passed through untouched
    changed = np.any(first["image"] != face, axis=-1)
    assert changed.any() and not (changed & ~_reach_region(hull)).any()
    # strict mode accepts the named hull; a missing hull is reported
    strict = A.Compose([SelfBlend(p=1.0)], seed=1, strict=True)(image=face, hull=hull)
    assert strict["image"].dtype == np.uint8
    with pytest.raises(ValueError, match="hull"):
        A.Compose([SelfBlend(p=1.0)], seed=1)(image=face)
    # config from a plain mapping (as Hydra passes it), custom key name
    t = SelfBlend(cfg={"blend_ratios": [1.0]}, hull_key="face_hull", p=1.0)
    assert t.cfg.blend_ratios == (1.0,)
    assert A.Compose([t], seed=2)(image=face, face_hull=hull)["image"].shape == face.shape


def test_hull_follows_geometric_transforms_with_additional_targets(face: np.ndarray) -> None:
    hull = _ellipse_hull(cx=20.0)  # off-centre, so a flip moves it
    pipe = A.Compose(
        [A.HorizontalFlip(p=1.0), SelfBlend(p=1.0)], additional_targets={"hull": "mask"}, seed=0
    )
    res = pipe(image=face, hull=hull)
    np.testing.assert_array_equal(res["hull"], hull[:, ::-1])
    changed = np.any(res["image"] != face[:, ::-1], axis=-1)
    assert changed.any() and not (changed & ~_reach_region(res["hull"])).any()


@pytest.mark.parametrize(
    ("image", "hull", "match"),
    [
        (np.zeros((H, W, 3), np.uint8), np.ones((H, W + 1), np.uint8), "hull shape"),
        (np.zeros((H, W, 3), np.uint8), np.zeros((H, W), np.uint8), "empty"),
        (np.zeros((H, W, 3), np.float32), np.ones((H, W), np.uint8), "uint8"),
        (np.zeros((H, W), np.uint8), np.ones((H, W), np.uint8), "HxWx3"),
        (np.zeros((H, W, 3), np.uint8), np.full((H, W), 255, np.uint8), r"\[0, 1\]"),
    ],
)
def test_bad_input_raises(image: np.ndarray, hull: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        self_blend(image, hull, np.random.default_rng(0))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("blend_ratios", ()),
        ("blend_ratios", (0.5, 1.5)),
        ("scale_range", (1.05, 0.95)),
        ("shift_frac", -0.1),
        ("elastic_sigma", 0.0),
        ("morph_radius", (0.0,)),
        ("blur_sigma", (0.0, 0.02)),
        ("hue_shift", 200.0),
        ("sharpen_p", 1.5),
        ("downscale_range", (0.0, 0.5)),
        ("jpeg_quality", (60, 101)),
        ("jpeg_quality", (60.5, 90)),
    ],
)
def test_bad_config_names_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"SBIConfig.{field}"):
        SBIConfig(**{field: value})


def test_jpeg_when_enabled(face: np.ndarray) -> None:
    hull = _ellipse_hull()
    plain, mask = self_blend(face, hull, np.random.default_rng(3))
    jpeg, mask_j = self_blend(
        face, hull, np.random.default_rng(3), SBIConfig(jpeg_quality=(60, 100))
    )
    np.testing.assert_array_equal(mask, mask_j)  # same draws up to the JPEG step
    assert jpeg.dtype == np.uint8 and jpeg.shape == face.shape
    assert not np.array_equal(jpeg, plain)
    assert np.abs(jpeg.astype(int) - plain).mean() < 20  # recompressed, not a different image


def test_pseudo_fakes_blend_a_share_inside_the_ellipse_deterministically() -> None:
    from idv.data.augment.sbi import PseudoFakes, ellipse_hull

    img = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    fakes = PseudoFakes(p=0.5, sbi={"blend_ratios": [1.0]})
    made = [fakes(img, np.random.default_rng(s)) for s in range(40)]
    share = sum(m is not None for m in made) / len(made)
    assert 0.25 < share < 0.75
    again = fakes(img, np.random.default_rng(3))
    assert (made[3] is None and again is None) or np.array_equal(made[3], again)
    hull = ellipse_hull((64, 64), np.random.default_rng(0), (0.5, 0.52), (0.33, 0.42), 0.03)
    assert 0.25 < hull.mean() < 0.6 and hull[0, 0] == 0 and hull[33, 32] == 1
    with pytest.raises(ValueError, match="PseudoFakes.p"):
        PseudoFakes(p=1.5)
