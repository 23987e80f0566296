"""Synthetic identity faces: contract, geometry, determinism, demographics, corpus figures."""

from __future__ import annotations

import time
from dataclasses import replace

import cv2
import numpy as np
import pytest

from idv.data.synth.checks import pca_rank1, pca_verification_auc
from idv.data.synth.faces import (
    AGE_BANDS,
    ARCFACE_TEMPLATE_112,
    LANDMARK_NAMES,
    SEXES,
    SKIN_TONES,
    FaceRender,
    Identity,
    Nuisance,
    render_face,
    sample_identity,
)

ZERO = Nuisance(
    yaw_deg=0.0,
    roll_deg=0.0,
    scale=(1.0, 1.0),
    shift_px=0.0,
    lighting=0.0,
    expression=0.0,
    blur_sigma=(0.0, 0.0),
    noise_sigma=(0.0, 0.0),
    jpeg_quality=(95, 95),
    background=0.0,
)
# Geometric nuisance only (pose, scale, shift, expression): the drawing moves, pixels stay clean.
GEOM = replace(ZERO, yaw_deg=15.0, roll_deg=10.0, scale=(0.9, 1.1), shift_px=4.0, expression=1.0)
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _gray(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) @ _LUMA


def _renders(seed: int, n: int, nuisance: Nuisance, size: int = 112, **demographics):
    rng = np.random.default_rng(seed)
    return [
        render_face(sample_identity(rng, f"s{i}", **demographics), rng, size, nuisance)
        for i in range(n)
    ]


def _dark_centroid(image: np.ndarray, xy: np.ndarray, r: int = 3) -> np.ndarray:
    """Centroid of the darkest pixels in a (2r+1)^2 window around xy: the pupil near an eye."""
    g = _gray(image)
    x0, y0 = (int(round(v)) for v in xy)
    win = g[y0 - r : y0 + r + 1, x0 - r : x0 + r + 1]
    lo = win.min()
    w = np.clip(lo + 0.35 * (np.median(win) - lo) - win, 0.0, None)
    ys, xs = np.mgrid[-r : r + 1, -r : r + 1]
    return np.array([x0 + (w * xs).sum() / w.sum(), y0 + (w * ys).sum() / w.sum()])


def _bilinear(a: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    return (
        a[y0, x0] * (1 - fx) * (1 - fy)
        + a[y0, x0 + 1] * fx * (1 - fy)
        + a[y0 + 1, x0] * (1 - fx) * fy
        + a[y0 + 1, x0 + 1] * fx * fy
    )


def _mouth_end(image: np.ndarray, corner: np.ndarray, other: np.ndarray) -> float:
    """Where the drawn mouth ends along the mouth axis, relative to ``corner`` (px, + outward).

    Colour distance to the skin just outside the corner, maximised over a thin band across the
    axis; the end is the outermost sample above half the distance found well inside the mouth.
    """
    u = (corner - other) / np.linalg.norm(corner - other)
    v = np.array([-u[1], u[0]])
    ts = np.arange(-5.0, 3.51, 0.25)
    ss = np.arange(-1.0, 1.01, 0.5)
    pts = corner + ts[:, None, None] * u + ss[None, :, None] * v
    col = _bilinear(image.astype(np.float32), pts[..., 0], pts[..., 1])  # (T, S, 3)
    skin = np.median(col[ts >= 2.5].reshape(-1, 3), axis=0)
    d = np.linalg.norm(col - skin, axis=-1).max(axis=1)
    return float(ts[np.nonzero(d > 0.5 * d[ts <= -2].max())[0].max()])


def _nostril_midpoint(image: np.ndarray, tip: np.ndarray) -> np.ndarray:
    g = _gray(image)
    x0, y0 = (int(round(v)) for v in tip)
    win = g[y0 : y0 + 6, x0 - 8 : x0 + 9]
    ys, xs = np.mgrid[0:6, -8:9]
    w = np.clip(win.min() + 0.4 * (np.median(win) - win.min()) - win, 0.0, None)
    halves = [w * (xs < 0), w * (xs > 0)]
    cs = [((h * xs).sum() / h.sum() + x0, (h * ys).sum() / h.sum() + y0) for h in halves]
    return np.mean(cs, axis=0)


# ---- contract and validation -------------------------------------------------------------


def test_render_contract_and_sizes():
    rng = np.random.default_rng(0)
    ident = sample_identity(rng, "subj-1")
    assert isinstance(ident, Identity) and ident.subject_id == "subj-1"
    assert ident.age_band in AGE_BANDS and ident.sex in SEXES and ident.skin_tone in SKIN_TONES
    assert ident.params.dtype == np.float32 and ident.params.ndim == 1
    assert len(LANDMARK_NAMES) == 5 and ARCFACE_TEMPLATE_112.dtype == np.float32
    for size in (32, 112, 224):
        fr = render_face(ident, rng, size=size)
        assert isinstance(fr, FaceRender)
        assert fr.image.shape == (size, size, 3) and fr.image.dtype == np.uint8
        assert fr.landmarks.shape == (5, 2) and fr.landmarks.dtype == np.float32
        assert 60 <= fr.jpeg_quality <= 95
        assert np.all((fr.landmarks > 0) & (fr.landmarks < size - 1))


def test_validation():
    rng = np.random.default_rng(0)
    ident = sample_identity(rng, "a")
    with pytest.raises(ValueError, match="size"):
        render_face(ident, rng, size=31)
    with pytest.raises(ValueError, match="sex"):
        sample_identity(rng, "a", sex="other")
    with pytest.raises(ValueError, match="subject_id"):
        sample_identity(rng, "")
    with pytest.raises(ValueError, match="skin_tone"):
        Identity("a", "18-29", "male", "VII", ident.params)
    with pytest.raises(ValueError, match="params"):
        Identity("a", "18-29", "male", "I-II", ident.params[:3])
    with pytest.raises(ValueError, match="low <= high"):
        Nuisance(scale=(1.1, 0.9))
    with pytest.raises(ValueError, match="jpeg_quality"):
        Nuisance(jpeg_quality=(0, 95))
    with pytest.raises(ValueError, match="roll_deg"):
        Nuisance(roll_deg=-1.0)
    with pytest.raises(TypeError):
        render_face(ident, np.random.RandomState(0))  # type: ignore[arg-type]
    # Hydra hands over plain lists: they become tuples, and a dict is accepted by render_face.
    cfg = {"scale": [0.95, 1.05], "jpeg_quality": [70, 90], "yaw_deg": 5}
    assert Nuisance(**cfg).scale == (0.95, 1.05) and Nuisance(**cfg).jpeg_quality == (70, 90)
    assert 70 <= render_face(ident, rng, nuisance=cfg).jpeg_quality <= 90


def test_determinism_and_no_global_rng():
    ident = sample_identity(np.random.default_rng(3), "a")
    assert ident == sample_identity(np.random.default_rng(3), "a")
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    a = render_face(ident, np.random.default_rng(7))
    assert np.array_equal(np.random.get_state()[1], before)  # the global generator is unused
    np.random.seed(12345)  # ...and does not matter
    b = render_face(ident, np.random.default_rng(7))
    c = render_face(ident, np.random.default_rng(8))
    assert a.image.tobytes() == b.image.tobytes()
    assert a.landmarks.tobytes() == b.landmarks.tobytes() and a.jpeg_quality == b.jpeg_quality
    assert not np.array_equal(a.image, c.image)


# ---- geometry ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [112, 160])
def test_zero_nuisance_landmarks_are_the_template(size):
    for fr in _renders(0, 10, ZERO, size):
        np.testing.assert_allclose(fr.landmarks, ARCFACE_TEMPLATE_112 * size / 112, atol=0.5)


@pytest.mark.parametrize("name", ["zero", "geometric", "default"])
def test_eye_landmarks_lie_on_the_drawn_pupils(name):
    nuisance = {"zero": ZERO, "geometric": GEOM, "default": Nuisance()}[name]
    renders = _renders(1, 40, nuisance)
    lm = np.stack([fr.landmarks for fr in renders])
    if name != "zero":  # the pose really moved the eyes, so the check below is not vacuous
        assert np.abs(lm[:, :2] - ARCFACE_TEMPLATE_112[:2]).mean() > 1.5
    err = np.array(
        [
            np.linalg.norm(_dark_centroid(fr.image, fr.landmarks[j]) - fr.landmarks[j])
            for fr in renders
            for j in (0, 1)
        ]
    )
    assert err.max() <= 1.5, f"pupil-landmark error max {err.max():.2f}px"
    assert np.median(err) <= 0.5
    # Control: landmarks 2 px off are caught (the detector finds the pupil, not the guess).
    off = np.array(
        [
            np.linalg.norm(_dark_centroid(fr.image, fr.landmarks[j] + (2, 0)) - fr.landmarks[j])
            for fr in renders
            for j in (0, 1)
        ]
    )
    assert np.mean(off < 1.0) > 0.9


@pytest.mark.parametrize("name", ["zero", "geometric"])
def test_mouth_corners_and_nose_tip_lie_on_the_drawing(name):
    nuisance = {"zero": ZERO, "geometric": GEOM}[name]
    # Young women: no beard and no nasolabial fold next to the corners to confuse the detector.
    renders = _renders(2, 40, nuisance, sex="female", age_band="18-29")
    ends = np.array(
        [
            _mouth_end(fr.image, fr.landmarks[a], fr.landmarks[b])
            for fr in renders
            for a, b in ((3, 4), (4, 3))
        ]
    )
    assert np.median(np.abs(ends)) <= 0.75
    assert np.mean(np.abs(ends) <= 1.5) >= (1.0 if name == "zero" else 0.95), ends
    # Control: a corner 3 px outside the drawn mouth is detected as such.
    fr = renders[0]
    shifted = fr.landmarks[3] + 3.0 * (fr.landmarks[3] - fr.landmarks[4]) / np.linalg.norm(
        fr.landmarks[3] - fr.landmarks[4]
    )
    assert _mouth_end(fr.image, shifted, fr.landmarks[4]) <= -2.0
    if name == "zero":  # nose tip: centred above the nostrils, which sit ~2.2 px below it
        off = np.stack(
            [_nostril_midpoint(fr.image, fr.landmarks[2]) - fr.landmarks[2] for fr in renders]
        )
        assert np.abs(off[:, 0]).max() <= 0.75
        assert np.all((off[:, 1] > 1.0) & (off[:, 1] < 3.5))


# ---- demographics ----------------------------------------------------------------------------


def _patch(a: np.ndarray, cx: float, cy: float, hw: int, hh: int) -> np.ndarray:
    cx, cy = int(round(cx)), int(round(cy))
    return a[cy - hh : cy + hh + 1, cx - hw : cx + hw + 1]


def test_skin_tone_sets_skin_colour():
    means = {}
    for tone in ("I-II", "V-VI"):
        cheeks = [
            _patch(fr.image, *fr.landmarks[j] + (0, 12), 3, 3).reshape(-1, 3).mean(axis=0)
            for fr in _renders(3, 20, Nuisance(), skin_tone=tone)
            for j in (0, 1)
        ]
        means[tone] = np.mean(cheeks, axis=0)
    light, dark = means["I-II"], means["V-VI"]
    assert np.all(light > dark + 40), means
    assert light @ _LUMA > 1.5 * (dark @ _LUMA)


def test_age_and_sex_change_appearance():
    def fold_energy(fr: FaceRender) -> float:  # texture between the nose wings and mouth corners
        lap = np.abs(cv2.Laplacian(_gray(fr.image), cv2.CV_32F))
        lm = fr.landmarks
        return float(
            np.mean(
                [
                    _patch(
                        lap, (lm[2, 0] + m[0]) / 2 + side * 3, (lm[2, 1] + m[1]) / 2, 4, 6
                    ).mean()
                    for side, m in ((-1, lm[3]), (1, lm[4]))
                ]
            )
        )

    young = np.mean([fold_energy(fr) for fr in _renders(4, 20, ZERO, age_band="18-29")])
    old = np.mean([fold_energy(fr) for fr in _renders(4, 20, ZERO, age_band="50+")])
    assert old > 1.5 * young, (young, old)

    def chin_over_cheek(fr: FaceRender) -> float:  # facial hair darkens the chin
        g, lm = _gray(fr.image), fr.landmarks
        chin = _patch(g, *(lm[3] + lm[4]) / 2 + (0, 8), 5, 2).mean()
        return chin / np.mean([_patch(g, *lm[j] + (0, 12), 3, 3).mean() for j in (0, 1)])

    female = np.mean([chin_over_cheek(fr) for fr in _renders(5, 20, ZERO, sex="female")])
    male = np.mean([chin_over_cheek(fr) for fr in _renders(5, 20, ZERO, sex="male")])
    assert male < female - 0.05, (female, male)


# ---- corpus figures --------------------------------------------------------------------------


def _corpus(seed: int, n_ids: int, n_images: int, nuisance: Nuisance, prefix: str):
    rng = np.random.default_rng(seed)
    images, ids = [], []
    for i in range(n_ids):
        ident = sample_identity(rng, f"{prefix}{i:03d}")
        for _ in range(n_images):
            images.append(render_face(ident, rng, nuisance=nuisance).image)
            ids.append(ident.subject_id)
    return np.stack(images), np.array(ids)


def _figures(nuisance: Nuisance, n_train_images: int, n_eval_images: int):
    """PCA fitted on 60 identities; 50 held-out identities, first image = gallery, rest probes."""
    t0 = time.perf_counter()
    train, _ = _corpus(10, 60, n_train_images, nuisance, "train")
    images, ids = _corpus(11, 50, n_eval_images, nuisance, "eval")
    ms = (time.perf_counter() - t0) * 1000 / (len(train) + len(images))
    gallery = np.arange(len(ids)) % n_eval_images == 0
    rank1 = pca_rank1(train, images[gallery], ids[gallery], images[~gallery], ids[~gallery])
    auc = pca_verification_auc(images, ids, train_images=train)
    return rank1, auc, ms


def test_pca_baseline_is_weak_but_identity_is_related():
    rank1, auc, ms = _figures(Nuisance(), 5, 5)
    rank1_zero, auc_zero, ms_zero = _figures(ZERO, 2, 2)
    print(
        f"\n[faces] default nuisance: PCA rank-1 {rank1:.3f}, genuine/impostor AUC {auc:.3f}, "
        f"{ms:.2f} ms/image | zero nuisance: rank-1 {rank1_zero:.3f}, AUC {auc_zero:.3f}, "
        f"{ms_zero:.2f} ms/image"
    )
    assert rank1 <= 0.30  # not trivially separable on held-out identities
    assert auc >= 0.60  # yet same-identity images are related
    assert rank1_zero >= 0.9 and rank1_zero >= rank1 + 0.5  # the identity signal exists


def test_checks_validate_inputs():
    imgs = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="not in the gallery"):
        pca_rank1(imgs, imgs[:2], ["a", "b"], imgs[2:], ["a", "c"])
    with pytest.raises(ValueError, match="genuine"):
        pca_verification_auc(imgs, ["a", "b", "c", "d"])
