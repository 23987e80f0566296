"""From a photo to one aligned face crop, or a failure to acquire with its reason.

The one policy of the project, used by the photo importer (training corpora) and by a face
bundle's serving (`MatchingBundle.acquire`), so that a photo is judged the same in both:

1. decode (a file that does not decode: ``unreadable``, with the decoder's reason);
2. an image shorter than ``min_face_side`` on its short side: ``too_small``;
3. downscale a photo whose longer side exceeds ``max_side`` (OpenCV's area filter) before
   detection: MTCNN's pyramid grows with the image (three 4000-px photos took 66 s); boxes
   and landmarks are mapped back per axis, and the crop is cut from the full-resolution
   photo. The detector's ``min_face_size`` then applies to the downscaled image: on a
   4000-px photo downscaled to 1024, faces under about 80 px are not searched (a far
   bystander may go unseen, a tiny face is ``no_face`` rather than ``too_small``);
4. detect; no face at or above the detector's ``min_probability``: ``no_face``;
5. choose one face (``several_faces`` policy, below); none chosen: ``several_faces``, with
   every face's probability and size in the report, so a user sees what another policy
   would change;
6. a chosen face smaller than ``min_face_side`` pixels (box side in the photo): ``too_small``
   (an embedding of a face upscaled from a few pixels is noise that still gets a score);
7. align it onto the ArcFace template (`idv.faces.align.align_face`) at ``crop_size``.

Several-faces policies: ``dominance`` (the importer's rule: faces whose side is at most
1/dominance of the largest are bystanders; with ``dominance: null`` any second face refuses),
``largest``, ``central`` (box centre nearest the image centre) and ``refuse``. Which of two
faces a claimed identity is cannot be told from the image: a wrong face is a wrong match or
label noise, worse than a lost sample, hence the strict default.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from idv.faces.align import align_face
from idv.faces.detection import Detection, check_rgb

FAILURES = ("no_face", "several_faces", "too_small", "unreadable")
SEVERAL_FACES = ("dominance", "largest", "central", "refuse")

Detect = Callable[[np.ndarray], Sequence[Detection]]


@dataclass(frozen=True)
class AcquisitionPolicy:
    """See the module docstring; ``max_side: None`` never downscales."""

    several_faces: str = "dominance"
    dominance: float | None = None
    min_face_side: float = 32.0
    max_side: int | None = 1024
    crop_size: int = 112

    def __post_init__(self) -> None:
        if self.several_faces not in SEVERAL_FACES:
            raise ValueError(
                f"several_faces must be one of {SEVERAL_FACES}, got {self.several_faces!r}"
            )
        if self.dominance is not None and not float(self.dominance) > 1:
            raise ValueError(f"dominance must be > 1 (or null), got {self.dominance}")
        if not float(self.min_face_side) >= 0:
            raise ValueError(f"min_face_side must be >= 0 pixels, got {self.min_face_side}")
        if self.max_side is not None and int(self.max_side) < 12:
            raise ValueError(f"max_side must be >= 12 pixels (or null), got {self.max_side}")
        if int(self.crop_size) < 1:
            raise ValueError(f"crop_size must be a positive integer, got {self.crop_size}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> AcquisitionPolicy:
        """From a config / preprocess.json mapping; an unknown key is an error naming it."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown acquisition setting(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, eq=False)
class Acquisition:
    """One image's outcome: the aligned crop, or the failure and why. ``faces``: every face
    found (photo coordinates, largest first); ``face``: the one aligned; ``scale``: the
    detection image's size over the photo's (1.0 when not downscaled)."""

    source: str
    failure: str | None = None
    detail: str = ""
    faces: tuple[Detection, ...] = ()
    face: Detection | None = None
    crop: np.ndarray | None = None
    scale: float = 1.0

    @property
    def acquired(self) -> bool:
        return self.failure is None

    def report(self) -> dict[str, Any]:
        """JSON-ready: source, failure (None when acquired), detail and each face found."""
        return {
            "source": self.source,
            "failure": self.failure,
            "detail": self.detail,
            "faces": [d.summary() for d in self.faces],
        }


def choose_face(
    detections: Sequence[Detection],
    policy: AcquisitionPolicy,
    shape: Sequence[int] | None = None,
) -> tuple[Detection | None, str | None]:
    """The one face to align, or (None, failure reason); `shape` (H, W) for ``central``."""
    if not detections:
        return None, "no_face"
    faces = list(detections)
    if len(faces) == 1:
        return faces[0], None
    rule = policy.several_faces
    if rule == "largest":
        return max(faces, key=lambda d: d.side), None
    if rule == "central":
        if shape is None:
            raise ValueError("the 'central' several-faces policy needs the image shape")
        middle = np.array([shape[1] / 2, shape[0] / 2])
        return min(faces, key=lambda d: float(np.linalg.norm(d.centre - middle))), None
    if rule == "dominance" and policy.dominance is not None:
        largest = max(d.side for d in faces)
        faces = [d for d in faces if d.side * float(policy.dominance) > largest]
        if len(faces) == 1:
            return faces[0], None
    return None, "several_faces"


def downscale(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """The image with its longer side at most `max_side` (area filter), and the factor."""
    import cv2

    longest = max(image.shape[:2])
    if max_side is None or longest <= max_side:
        return image, 1.0
    factor = max_side / longest
    size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), factor


def acquire(
    image: np.ndarray, detect: Detect, policy: AcquisitionPolicy, source: str = "image"
) -> Acquisition:
    """Steps 2-7 of the module docstring on a decoded (H, W, 3) uint8 RGB image."""
    image = check_rgb(image)
    height, width = image.shape[:2]
    if min(height, width) < max(policy.min_face_side, 1):
        return Acquisition(
            source, "too_small",
            f"image {width}x{height} is below the smallest face accepted "
            f"(min_face_side {policy.min_face_side:g} px)",
        )  # fmt: skip
    small, factor = downscale(image, policy.max_side)
    sx, sy = width / small.shape[1], height / small.shape[0]  # each axis' own rounding
    faces = tuple(d.mapped(sx, sy) if factor != 1.0 else d for d in detect(small))
    face, failure = choose_face(faces, policy, image.shape)
    if failure == "no_face":
        return Acquisition(source, failure, "no face at the detector's probability", faces,
                           scale=factor)  # fmt: skip
    if failure == "several_faces":
        rule = policy.several_faces
        if rule == "dominance":
            rule += " (strict)" if policy.dominance is None else f" {policy.dominance:g}"
        detail = f"{len(faces)} faces, none chosen by the '{rule}' policy"
        return Acquisition(source, failure, detail, faces, scale=factor)
    assert face is not None
    if face.side < policy.min_face_side:
        detail = f"face side {face.side:.1f} px < min_face_side {policy.min_face_side:g}"
        return Acquisition(source, "too_small", detail, faces, face, scale=factor)
    crop = align_face(image, face.landmarks, size=int(policy.crop_size))
    return Acquisition(source, None, "", faces, face, crop, factor)


def acquire_file(path: str | os.PathLike, detect: Detect, policy: AcquisitionPolicy) -> Acquisition:
    """Step 1 (decode; ``unreadable`` with the decoder's reason), then `acquire`."""
    from idv.imaging import ImageReadError, read_image

    try:
        image = read_image(path)
    except ImageReadError as err:
        return Acquisition(str(path), "unreadable", str(err))
    return acquire(image, detect, policy, str(path))
