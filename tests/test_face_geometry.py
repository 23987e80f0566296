"""Dense face geometry and per-frame states: stills unchanged, contours on the drawing."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest

from idv.data.synth.faces import FaceState, Nuisance, render_face, sample_identity

_ZERO = Nuisance(
    yaw_deg=0, roll_deg=0, scale=(1, 1), shift_px=0, expression=0, background=0, lighting=0,
    blur_sigma=(0, 0), noise_sigma=(0, 0), jpeg_quality=(95, 95),
)  # fmt: skip

# sha256 (first 16 hex) of image + landmarks + JPEG quality, rendered by the code before the
# dense geometry and FaceState existed (commit 5116785): stills must stay byte-identical.
_GOLDEN = [
    (0, 112, None, "3d094afa778767ad"),
    (1, 64, None, "69640e3b68139fa3"),
    (2, 112, Nuisance(expression=1.5, yaw_deg=30), "94fb8807b6eee5dc"),
    (3, 48, Nuisance(lighting=0.8), "13225061ad403b23"),
    (4, 112, _ZERO, "2f97524384bd3478"),
]


def _still(seed: int, size: int, nuisance: Nuisance | None):
    rng = np.random.default_rng(seed)
    return render_face(sample_identity(rng, f"s{seed}"), rng, size, nuisance), rng


@pytest.mark.parametrize(("seed", "size", "nuisance", "digest"), _GOLDEN)
def test_stills_are_byte_identical_to_before_the_geometry(seed, size, nuisance, digest):
    render, _ = _still(seed, size, nuisance)
    blob = render.image.tobytes() + render.landmarks.tobytes() + str(render.jpeg_quality).encode()
    assert hashlib.sha256(blob).hexdigest()[:16] == digest


def test_geometry_shapes_and_landmarks_on_contours():
    render, _ = _still(0, 112, None)
    g = render.geometry
    shapes = {name: pts.shape for name, pts in g.contours().items()}
    assert shapes == {
        "face_outline": (34, 2), "left_eye": (28, 2), "right_eye": (28, 2),
        "outer_lips": (30, 2), "inner_lips": (30, 2),
    }  # fmt: skip
    assert all(pts.dtype == np.float32 for pts in g.contours().values())
    lm = render.landmarks
    # Eye centres inside their eye contour; mouth corners are the lips' end points.
    for eye, centre in ((g.left_eye, lm[0]), (g.right_eye, lm[1])):
        assert cv2.pointPolygonTest(eye.reshape(-1, 1, 2), tuple(map(float, centre)), False) > 0
    assert np.allclose(g.outer_lips[0], lm[3], atol=1e-3)
    assert np.allclose(g.outer_lips[14], lm[4], atol=1e-3)
    # Every feature inside the face outline; the left eye has the smaller x.
    hull = g.face_outline.reshape(-1, 1, 2)
    for pts in (g.left_eye, g.right_eye, g.outer_lips):
        assert all(cv2.pointPolygonTest(hull, (float(x), float(y)), False) >= 0 for x, y in pts)
    assert g.left_eye[:, 0].mean() < g.right_eye[:, 0].mean()
    assert 0.2 < float(g.eye_openness[0]) < 0.8


def test_blink_closes_the_eyes_and_hides_the_iris():
    identity = sample_identity(np.random.default_rng(5), "b")

    def frame(blink: float):
        state = FaceState(blink=blink, noise_sigma=0.0, jpeg_quality=95)
        return render_face(identity, np.random.default_rng(1), 112, _ZERO, state)

    open_, half, shut = frame(0.0), frame(0.5), frame(1.0)
    assert open_.geometry.eye_openness[0] > half.geometry.eye_openness[0] > 0
    assert np.all(shut.geometry.eye_openness == 0)
    height = np.ptp(shut.geometry.left_eye[:, 1])
    assert height < 0.25 * np.ptp(open_.geometry.left_eye[:, 1])
    # The pupil is dark when open and covered by skin when shut.
    x, y = np.rint(open_.landmarks[0]).astype(int)
    dark_open = open_.image[y - 1 : y + 2, x - 1 : x + 2].mean()
    dark_shut = shut.image[y - 1 : y + 2, x - 1 : x + 2].mean()
    assert dark_shut > dark_open + 30
    assert np.array_equal(open_.landmarks, shut.landmarks)  # the lids move, not the eye


def test_states_are_reproducible_and_backgrounds_follow_their_seed():
    identity = sample_identity(np.random.default_rng(7), "c")
    a = render_face(identity, np.random.default_rng(0), 64, state=FaceState(background_seed=3))
    b = render_face(identity, np.random.default_rng(0), 64, state=FaceState(background_seed=3))
    assert np.array_equal(a.image, b.image)
    # Same background seed, other frame noise: the corner (background) barely differs;
    # another seed changes it.
    same = render_face(identity, np.random.default_rng(9), 64, state=FaceState(background_seed=3))
    other = render_face(identity, np.random.default_rng(0), 64, state=FaceState(background_seed=4))
    corner = (slice(0, 8), slice(0, 8))
    diff_same = np.abs(a.image[corner].astype(int) - same.image[corner]).mean()
    diff_other = np.abs(a.image[corner].astype(int) - other.image[corner]).mean()
    assert diff_same < diff_other


def test_skin_gain_moves_the_skin_colour_only_slightly():
    identity = sample_identity(np.random.default_rng(8), "d")
    state = FaceState(noise_sigma=0.0, jpeg_quality=100)
    base = render_face(identity, np.random.default_rng(0), 64, _ZERO, state)
    pulse = render_face(
        identity, np.random.default_rng(0), 64, _ZERO,
        FaceState(noise_sigma=0.0, jpeg_quality=100, skin_gain=(1.0, 1.02, 1.0)),
    )  # fmt: skip
    cheek = (slice(38, 44), slice(14, 20))
    green = pulse.image[cheek][..., 1].astype(float).mean() - base.image[cheek][..., 1].mean()
    red = pulse.image[cheek][..., 0].astype(float).mean() - base.image[cheek][..., 0].mean()
    assert green > 1.0 and abs(red) < 0.6


def test_state_validation():
    with pytest.raises(ValueError, match="blink"):
        FaceState(blink=1.5)
    with pytest.raises(ValueError, match="yaw_deg"):
        FaceState(yaw_deg=70)
