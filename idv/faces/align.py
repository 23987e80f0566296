"""Face alignment onto the ArcFace 5-point template: the one function for every face crop.

Synthetic faces (landmarks from the generator) and real photos (landmarks from MTCNN) go
through :func:`align_face`, so a model never sees a difference between the two paths.

Conventions: (x, y) pixel coordinates with pixel centres on integers (OpenCV's, also the
synthetic renderer's); landmarks in template order: left eye, right eye, nose, left mouth
corner, right mouth corner, where "left" is the smaller x in the image (the subject's right).
The transform is the least-squares similarity (rotation, uniform scale, translation; no
reflection, no shear) from the landmarks to the template scaled by ``size / 112``: a shear
or anisotropic scale would distort the face's proportions, which identity rests on.
"""

from __future__ import annotations

import cv2
import numpy as np

#: ArcFace 5-point template for 112x112 crops, (x, y) in pixels: left eye, right eye, nose,
#: left mouth corner, right mouth corner (insightface's `arcface_dst`).
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)
ARCFACE_TEMPLATE_112.setflags(write=False)

_TEMPLATE_SIZE = 112


def template(size: int = _TEMPLATE_SIZE) -> np.ndarray:
    """The template for a ``size`` x ``size`` crop (float64, (5, 2)): scaled by size / 112."""
    return ARCFACE_TEMPLATE_112.astype(np.float64) * (_check_size(size) / _TEMPLATE_SIZE)


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    return int(size)


def _check_points(points: np.ndarray, name: str, count: int | None = None) -> np.ndarray:
    """(N, 2) finite float64, or a ValueError that says what was wrong."""
    try:
        array = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numeric (x, y) pairs ({err})") from err
    if array.ndim != 2 or array.shape[1] != 2 or (count is not None and len(array) != count):
        want = f"({count}, 2)" if count is not None else "(N, 2)"
        raise ValueError(f"{name} must have shape {want}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {array.tolist()}")
    return array


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (2x3) mapping ``src`` onto ``dst``; exact on exact data.

    In 2D the similarities without reflection are linear in (a, b, tx, ty) with
    x' = a x - b y + tx, y' = b x + a y + ty, so the least-squares fit is closed form
    (Umeyama's solution, without its SVD).
    """
    src = _check_points(src, "src")
    dst = _check_points(dst, "dst", len(src))
    if len(src) < 2:
        raise ValueError(f"a similarity needs at least 2 points, got {len(src)}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - src_mean, dst - dst_mean
    spread = float(np.sum(s * s))
    if spread < 1e-12 * max(1.0, float(np.abs(src).max()) ** 2):
        raise ValueError(f"landmarks are degenerate (all at one point): {src.tolist()}")
    a = float(np.sum(s * d)) / spread
    b = float(np.sum(s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0])) / spread
    rotation = np.array([[a, -b], [b, a]])
    translation = dst_mean - rotation @ src_mean
    return np.concatenate([rotation, translation[:, None]], axis=1)


def alignment_transform(landmarks: np.ndarray, size: int = _TEMPLATE_SIZE) -> np.ndarray:
    """The 2x3 matrix (float64) that :func:`align_face` warps with: landmarks -> template."""
    return estimate_similarity(_check_points(landmarks, "landmarks", 5), template(size))


def warp_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to (N, 2) points; returns float64 (N, 2)."""
    points = _check_points(points, "points")
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (2, 3) or not np.all(np.isfinite(matrix)):
        raise ValueError(f"matrix must be a finite 2x3 affine matrix, got shape {matrix.shape}")
    return points @ matrix[:, :2].T + matrix[:, 2]


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = _TEMPLATE_SIZE) -> np.ndarray:
    """The ``size`` x ``size`` RGB crop with the 5 landmarks on the (scaled) ArcFace template.

    Bilinear interpolation; pixels from outside the image are black (a border replicated
    from the photo would invent texture a model could learn from).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must be an (H, W, 3) RGB array, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    size = _check_size(size)
    matrix = alignment_transform(landmarks, size)
    return cv2.warpAffine(
        np.ascontiguousarray(image),
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
