"""Face alignment: exact on synthetic similarities, least squares on real MTCNN landmarks."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from skimage import data
from skimage.transform import SimilarityTransform

from idv.data.face_detect import FaceDetector
from idv.faces.align import (
    ARCFACE_TEMPLATE_112,
    align_face,
    alignment_transform,
    estimate_similarity,
    template,
    warp_points,
)


def similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    """A 2x3 similarity: rotation by angle, uniform scale, then translation."""
    c, s = scale * math.cos(math.radians(angle_deg)), scale * math.sin(math.radians(angle_deg))
    return np.array([[c, -s, tx], [s, c, ty]])


def invert(matrix: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(matrix)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


# ---- the template -----------------------------------------------------------------------


def test_template_is_the_arcface_one_read_only_and_shared_with_the_synthetic_faces() -> None:
    from idv.data.synth import faces

    assert faces.ARCFACE_TEMPLATE_112 is ARCFACE_TEMPLATE_112
    assert ARCFACE_TEMPLATE_112.shape == (5, 2) and ARCFACE_TEMPLATE_112.dtype == np.float32
    np.testing.assert_array_equal(ARCFACE_TEMPLATE_112[0], np.float32([38.2946, 51.6963]))
    np.testing.assert_array_equal(ARCFACE_TEMPLATE_112[4], np.float32([70.7299, 92.2041]))
    with pytest.raises(ValueError):
        ARCFACE_TEMPLATE_112[0, 0] = 0.0
    # Left eye / mouth corner = smaller x; eyes above nose above mouth.
    t = ARCFACE_TEMPLATE_112
    assert t[0, 0] < t[1, 0] and t[3, 0] < t[4, 0]
    assert max(t[0, 1], t[1, 1]) < t[2, 1] < min(t[3, 1], t[4, 1])
    np.testing.assert_allclose(template(224), 2 * t.astype(np.float64))


# ---- exact data -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [112, 160, 224])
@pytest.mark.parametrize(
    "pose",
    [(0.0, 1.0, 0.0, 0.0), (17.0, 2.3, 140.0, -35.0), (-42.0, 0.37, 5.5, 300.25), (179.0, 4, 9, 9)],
)
def test_exact_similarity_maps_back_onto_the_template(pose: tuple, size: int) -> None:
    """Landmarks = template moved by a known similarity: the fit undoes it exactly."""
    target = template(size)
    landmarks = warp_points(target, similarity(*pose))
    matrix = alignment_transform(landmarks, size)
    np.testing.assert_allclose(warp_points(landmarks, matrix), target, atol=1e-3)
    np.testing.assert_allclose(matrix, invert(similarity(*pose)), atol=1e-9)
    # A similarity: [[a, -b], [b, a]], no reflection.
    (a, mb), (b, a2) = matrix[:, :2]
    assert a == pytest.approx(a2) and mb == pytest.approx(-b) and a * a2 - mb * b > 0


def test_align_face_puts_the_pixels_where_the_landmarks_say() -> None:
    """A known crop, moved into a bigger photo by a similarity, comes back from align_face."""
    yy, xx = np.mgrid[0:112, 0:112].astype(np.float64)
    reference = np.stack(  # smooth, asymmetric: a wrong rotation or flip cannot match
        [
            128 + 100 * np.sin(xx / 9.0),
            128 + 100 * np.cos(yy / 13.0),
            np.clip(2 * xx + yy / 2, 0, 255),
        ],
        axis=-1,
    ).astype(np.uint8)
    forward = similarity(23.0, 2.2, 150.0, 20.0)  # crop frame -> photo
    photo = cv2.warpAffine(reference, forward, (420, 360), flags=cv2.INTER_LINEAR)
    landmarks = warp_points(ARCFACE_TEMPLATE_112, forward)
    crop = align_face(photo, landmarks)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    inner = (slice(8, -8), slice(8, -8))  # away from the reference's own border
    error = np.abs(crop[inner].astype(int) - reference[inner].astype(int))
    assert error.mean() < 3.0 and np.percentile(error, 99) < 20
    # Outside the photo is black.
    far = align_face(photo, landmarks + 1000.0)
    assert far.max() == 0


def test_least_squares_on_noisy_landmarks_matches_umeyama_and_is_optimal() -> None:
    rng = np.random.default_rng(0)
    landmarks = warp_points(ARCFACE_TEMPLATE_112, similarity(-8.0, 3.1, 40.0, 12.0))
    landmarks = landmarks + rng.normal(0.0, 4.0, landmarks.shape)
    matrix = alignment_transform(landmarks, 112)
    reference = SimilarityTransform.from_estimate(landmarks, template(112))
    np.testing.assert_allclose(matrix, reference.params[:2], atol=1e-9)
    residual = warp_points(landmarks, matrix) - template(112)
    # Normal equations of the 4 parameters (a, b, tx, ty): the residual is orthogonal.
    x, y = landmarks[:, 0], landmarks[:, 1]
    assert np.abs(residual.sum(axis=0)).max() < 1e-9
    assert abs(np.sum(residual[:, 0] * x + residual[:, 1] * y)) < 1e-7
    assert abs(np.sum(-residual[:, 0] * y + residual[:, 1] * x)) < 1e-7


# ---- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("landmarks", "message"),
    [
        (np.zeros((4, 2)), r"shape \(5, 2\)"),
        (np.zeros((5, 3)), r"shape \(5, 2\)"),
        (np.zeros(10), r"shape \(5, 2\)"),
        (np.where(np.eye(5, 2) > 0, np.nan, 50.0), "finite"),
        (np.full((5, 2), np.inf), "finite"),
        (np.full((5, 2), 42.0), "degenerate"),
        ([["a", "b"]] * 5, "numeric"),
    ],
)
def test_bad_landmarks_raise_clearly(landmarks, message: str) -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(ValueError, match=message):
        align_face(image, landmarks)
    with pytest.raises(ValueError, match=message):
        alignment_transform(landmarks, 112)


@pytest.mark.parametrize(
    ("image", "size", "message"),
    [
        (np.zeros((100, 100), np.uint8), 112, r"\(H, W, 3\)"),
        (np.zeros((100, 100, 4), np.uint8), 112, r"\(H, W, 3\)"),
        (np.zeros((100, 100, 3), np.float32), 112, "uint8"),
        (np.zeros((100, 100, 3), np.uint8), 0, "positive integer"),
        (np.zeros((100, 100, 3), np.uint8), 112.0, "positive integer"),
        (np.zeros((100, 100, 3), np.uint8), True, "positive integer"),
    ],
)
def test_bad_image_or_size_raise_clearly(image: np.ndarray, size, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        align_face(image, ARCFACE_TEMPLATE_112, size=size)


def test_bad_points_and_matrices_raise() -> None:
    with pytest.raises(ValueError, match="2x3"):
        warp_points(ARCFACE_TEMPLATE_112, np.eye(3))
    with pytest.raises(ValueError, match="2x3"):
        warp_points(ARCFACE_TEMPLATE_112, np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match="at least 2 points"):
        estimate_similarity(np.zeros((1, 2)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
        estimate_similarity(np.zeros((3, 2)), np.zeros((4, 2)))


# ---- real photo: MTCNN landmarks ----------------------------------------------------------


def test_astronaut_aligns_onto_the_template(detector: FaceDetector, astronaut) -> None:
    """The acceptance check: MTCNN on the aligned crop finds the landmarks where they were put.

    A similarity has 4 degrees of freedom for 10 coordinates, so the astronaut's landmarks
    land on the template only up to the least-squares residual (her face is not the template:
    RMS ~5 px, nose and mouth lower than ArcFace's mean face). The re-detected landmarks
    must match where alignment put them within 3 px; the eyes, which fix scale and roll,
    also lie within 3 px of the template.
    """
    (face,) = detector.detect(astronaut)
    assert face.probability > 0.99
    matrix = alignment_transform(face.landmarks, 112)
    landed = warp_points(face.landmarks, matrix)
    residual = np.linalg.norm(landed - template(112), axis=1)
    reference = SimilarityTransform.from_estimate(face.landmarks.astype(float), template(112))
    np.testing.assert_allclose(matrix, reference.params[:2], atol=1e-6)  # the optimum
    assert residual.max() < 8.0 and residual[:2].max() < 3.0

    crop = align_face(astronaut, face.landmarks)
    (again,) = detector.detect(crop)
    assert again.probability > 0.99
    moved = np.linalg.norm(again.landmarks - landed, axis=1)
    assert moved.max() < 3.0, moved
    off_template = np.linalg.norm(again.landmarks - template(112), axis=1)
    assert off_template[:2].max() < 3.0, off_template
    assert off_template.max() < residual.max() + 3.0, off_template


def test_mtcnn_landmark_order_is_the_template_order(detector: FaceDetector, astronaut) -> None:
    """'Left eye' is the smaller x in the image, on the photo and on its mirror image."""
    for image in (astronaut, np.ascontiguousarray(astronaut[:, ::-1])):
        (face,) = detector.detect(image)
        eye_l, eye_r, nose, mouth_l, mouth_r = face.landmarks
        assert eye_l[0] < nose[0] < eye_r[0] and mouth_l[0] < mouth_r[0]
        assert max(eye_l[1], eye_r[1]) < nose[1] < min(mouth_l[1], mouth_r[1])
        x1, y1, x2, y2 = face.box
        assert np.all((face.landmarks >= [x1, y1]) & (face.landmarks <= [x2, y2]))
