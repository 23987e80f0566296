"""Presentation-attack simulators: measurable artefacts, monotonic strength, determinism."""

from __future__ import annotations

import idv  # noqa: F401  # first: sets NO_ALBUMENTATIONS_UPDATE before albumentations loads

# isort: split
from collections.abc import Callable

import albumentations as A
import cv2
import numpy as np
import pytest
from skimage import data, transform
from skimage.metrics import structural_similarity

from idv.data.augment.attacks import (
    ATTACK_FUNCTIONS,
    PaperMask,
    PrintAttack,
    ScreenReplay,
    paper_mask,
    print_attack,
    screen_replay,
)

SIZE = 128
TRANSFORMS = [PrintAttack, ScreenReplay, PaperMask]


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """A natural image with faces, flat areas and texture, 128x128 RGB uint8."""
    small = transform.resize(data.astronaut(), (SIZE, SIZE), anti_aliasing=True)
    return np.round(small * 255).astype(np.uint8)


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    return float(structural_similarity(a, b, channel_axis=-1, data_range=255))


def _dominant_frequency(original: np.ndarray, attacked: np.ndarray, min_freq: float) -> float:
    """Radial frequency (cycles/px) of the strongest non-DC peak of the grey-level difference."""
    diff = attacked.astype(np.float64).mean(axis=-1) - original.astype(np.float64).mean(axis=-1)
    diff -= diff.mean()
    h, w = diff.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    spectrum = np.abs(np.fft.fft2(diff * window))
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    radius = np.hypot(fx, fy)
    spectrum[radius < min_freq] = 0.0
    return float(radius.flat[np.argmax(spectrum)])


# -------------------------------------------------------------------------------------------
# Spectral signatures
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attack", "kwarg", "period"),
    [
        (print_attack, "halftone_period", 4.0),
        (print_attack, "halftone_period", 6.0),
        (screen_replay, "moire_period", 4.0),
        (screen_replay, "moire_period", 6.0),
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_periodic_pattern_peaks_at_its_frequency(
    face: np.ndarray, attack: Callable[..., np.ndarray], kwarg: str, period: float, seed: int
) -> None:
    out = attack(face, 1.0, np.random.default_rng(seed), **{kwarg: period})
    peak = _dominant_frequency(face, out, min_freq=0.1)
    assert abs(peak - 1.0 / period) <= 1.0 / SIZE, (peak, 1.0 / period)


# -------------------------------------------------------------------------------------------
# Species-specific artefacts
# -------------------------------------------------------------------------------------------


def _chroma(img: np.ndarray) -> float:
    rgb = img.astype(np.float64)
    return float(np.abs(rgb - rgb.mean(axis=-1, keepdims=True)).mean())


@pytest.mark.parametrize("seed", range(4))
def test_print_loses_colour_gamut(face: np.ndarray, seed: int) -> None:
    out = print_attack(face, 1.0, np.random.default_rng(seed))
    assert _chroma(out) < 0.85 * _chroma(face)


@pytest.mark.parametrize("seed", range(4))
def test_replay_shifts_white_point_to_blue(face: np.ndarray, seed: int) -> None:
    def blue_minus_red(img: np.ndarray) -> float:
        return float(img[..., 2].astype(np.float64).mean() - img[..., 0].astype(np.float64).mean())

    out = screen_replay(face, 1.0, np.random.default_rng(seed))
    assert blue_minus_red(out) > blue_minus_red(face) + 8.0


@pytest.mark.parametrize("seed", range(4))
def test_mask_flattens_low_frequency_shading(face: np.ndarray, seed: int) -> None:
    def shading_spread(img: np.ndarray) -> float:
        grey = img.astype(np.float32).mean(axis=-1)
        low = cv2.GaussianBlur(grey, (0, 0), 10)
        return float(low[40:88, 40:88].std())  # always inside the jittered face ellipse

    out = paper_mask(face, 1.0, np.random.default_rng(seed))
    assert shading_spread(out) < 0.8 * shading_spread(face)


# -------------------------------------------------------------------------------------------
# Strength
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("species", sorted(ATTACK_FUNCTIONS))
def test_ssim_falls_monotonically_with_strength(face: np.ndarray, species: str) -> None:
    attack = ATTACK_FUNCTIONS[species]
    scores = [
        _ssim(face, attack(face, strength, np.random.default_rng(3)))
        for strength in (0.0, 0.1, 0.4, 0.7, 1.0)
    ]
    assert scores[0] > 0.97
    assert all(a > b for a, b in zip(scores, scores[1:], strict=False)), scores
    assert scores[-1] < 0.93, f"strength 1 should be an obvious attack, SSIM {scores[-1]:.3f}"


@pytest.mark.parametrize("species", sorted(ATTACK_FUNCTIONS))
def test_strength_zero_is_near_identity(face: np.ndarray, species: str) -> None:
    out = ATTACK_FUNCTIONS[species](face, 0.0, np.random.default_rng(5))
    assert np.abs(out.astype(int) - face.astype(int)).max() <= 1


# -------------------------------------------------------------------------------------------
# Invariants the corpus relies on
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("species", sorted(ATTACK_FUNCTIONS))
@pytest.mark.parametrize("strength", [0.3, 1.0])
def test_mean_brightness_dtype_and_shape_preserved(
    face: np.ndarray, species: str, strength: float
) -> None:
    for seed in range(3):
        out = ATTACK_FUNCTIONS[species](face, strength, np.random.default_rng(seed))
        assert out.dtype == np.uint8
        assert out.shape == face.shape
        assert abs(float(out.mean()) - float(face.mean())) < 2.0


@pytest.mark.parametrize("species", sorted(ATTACK_FUNCTIONS))
def test_mean_preserved_on_dark_and_bright_non_square_images(species: str) -> None:
    rng = np.random.default_rng(11)
    for level in (20, 235):
        img = np.clip(rng.normal(level, 12, size=(96, 120, 3)), 0, 255).astype(np.uint8)
        out = ATTACK_FUNCTIONS[species](img, 1.0, np.random.default_rng(0))
        assert out.shape == img.shape
        assert abs(float(out.mean()) - float(img.mean())) < 2.0


@pytest.mark.parametrize("species", sorted(ATTACK_FUNCTIONS))
def test_invalid_inputs_raise_clear_errors(face: np.ndarray, species: str) -> None:
    attack = ATTACK_FUNCTIONS[species]
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="uint8"):
        attack(face.astype(np.float32) / 255.0, 0.5, rng)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        attack(face[..., 0], 0.5, rng)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attack(face, 1.5, rng)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attack(face, -0.1, rng)


def test_invalid_periods_raise(face: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="halftone_period"):
        print_attack(face, 0.5, rng, halftone_period=1.0)
    with pytest.raises(ValueError, match="moire_period"):
        screen_replay(face, 0.5, rng, moire_period=float("nan"))


# -------------------------------------------------------------------------------------------
# Determinism
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("species", sorted(ATTACK_FUNCTIONS))
def test_functions_are_deterministic_in_the_seed(face: np.ndarray, species: str) -> None:
    attack = ATTACK_FUNCTIONS[species]
    first = attack(face, 0.6, np.random.default_rng(42))
    again = attack(face, 0.6, np.random.default_rng(42))
    other = attack(face, 0.6, np.random.default_rng(43))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("cls", TRANSFORMS)
def test_seeded_compose_is_reproducible(face: np.ndarray, cls: type) -> None:
    def run() -> list[np.ndarray]:
        pipeline = A.Compose([cls(p=1.0)], seed=7)
        return [pipeline(image=face)["image"] for _ in range(2)]

    first, second = run(), run()
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], face)
    assert not np.array_equal(first[0], first[1]), "successive calls should draw new attacks"


@pytest.mark.parametrize("cls", TRANSFORMS)
def test_transform_with_p_zero_is_identity(face: np.ndarray, cls: type) -> None:
    out = A.Compose([cls(p=0.0)], seed=1)(image=face)["image"]
    np.testing.assert_array_equal(out, face)


def test_transform_matches_the_function_it_wraps(face: np.ndarray) -> None:
    aug = PrintAttack(strength=(0.8, 0.8), halftone_period=5.0, p=1.0)
    aug.set_random_seed(0)
    out = aug(image=face)["image"]
    params = aug.get_applied_params()
    assert params["strength"] == pytest.approx(0.8)
    expected = print_attack(
        face, params["strength"], np.random.default_rng(params["seed"]), halftone_period=5.0
    )
    np.testing.assert_array_equal(out, expected)


# -------------------------------------------------------------------------------------------
# Configuration
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "extra"),
    [
        ("PrintAttack", {"halftone_period": 5.0}),
        ("ScreenReplay", {"moire_period": 3.0}),
        ("PaperMask", {}),
    ],
)
def test_transforms_instantiate_from_hydra_config(
    face: np.ndarray, target: str, extra: dict[str, float]
) -> None:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    config = OmegaConf.create(
        {"_target_": f"idv.data.augment.attacks.{target}", "strength": [0.2, 1.0], "p": 1.0} | extra
    )
    aug = instantiate(config)
    assert aug.strength == (0.2, 1.0)
    assert isinstance(aug.strength, tuple)
    assert aug.p == 1.0
    out = aug(image=face)["image"]
    assert out.shape == face.shape
    assert out.dtype == np.uint8


@pytest.mark.parametrize("cls", TRANSFORMS)
def test_serialization_round_trip(cls: type) -> None:
    pipeline = A.Compose([cls(strength=(0.1, 0.4), p=0.3)])
    restored = A.from_dict(A.to_dict(pipeline))
    aug = restored.transforms[0]
    assert type(aug) is cls
    assert aug.strength == (0.1, 0.4)
    assert aug.p == 0.3


@pytest.mark.parametrize("bad", [(0.5, 0.2), (0.0, 1.5), (0.1, 0.2, 0.3), "strong"])
def test_transform_rejects_bad_strength_ranges(bad: object) -> None:
    with pytest.raises(ValueError, match="strength"):
        PrintAttack(strength=bad)


def test_transform_accepts_a_fixed_strength() -> None:
    assert PaperMask(strength=0.5).strength == (0.5, 0.5)
