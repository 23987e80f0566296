"""idv.faces (serving's face path): the numpy MTCNN against facenet-pytorch's own, NMS and
resampling against torch, and the acquisition policy (downscale, several faces, too small,
unreadable)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage import data
from torch.nn.functional import interpolate
from torchvision.ops import nms as torchvision_nms

from idv.data.face_detect import FaceDetector
from idv.export.face_detector import compare_detections, eager_stage, facenet_stages
from idv.faces.acquisition import AcquisitionPolicy, acquire, acquire_file, choose_face
from idv.faces.detection import Detection, DetectorSettings
from idv.faces.mtcnn import MTCNN, IntegralImage, nms


def _photos() -> dict[str, np.ndarray]:
    """scikit-image's photos and generated ones: several faces at several sizes, a rotated
    face, a full-HD scene with a small face, and images with no face."""
    astronaut = data.astronaut()
    face = astronaut[:300, 100:350]
    three = np.zeros((420, 900, 3), np.uint8) + 90
    three[60:360, 0:250] = face
    three[100:250, 300:425] = cv2.resize(face, (125, 150))
    three[150:240, 500:575] = cv2.resize(face[:, ::-1], (75, 90))
    scene = np.full((1080, 1920, 3), 160, np.uint8)
    scene[400:600, 900:1067] = cv2.resize(face, (167, 200))
    rotated = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D((256, 256), 20, 1.0), (512, 512))
    noise = np.random.default_rng(0).integers(0, 256, (240, 320, 3)).astype(np.uint8)
    return {
        "astronaut": astronaut,
        "camera": np.ascontiguousarray(np.stack([data.camera()] * 3, axis=-1)),
        "coffee": data.coffee(),
        "chelsea": data.chelsea(),
        "rocket": data.rocket(),
        "two": np.ascontiguousarray(np.concatenate([face, face[:, ::-1]], axis=1)),
        "three": three,
        "rotated": rotated,
        "scene_1080p": scene,
        "noise": noise,
        "blank": np.zeros((100, 100, 3), np.uint8),
    }


PHOTOS = _photos()


@pytest.fixture(scope="module")
def served() -> MTCNN:
    """idv.faces.mtcnn over facenet-pytorch's networks (the exported files are checked by
    the export's gate and tests/test_export_matching.py)."""
    return MTCNN({k: eager_stage(v) for k, v in facenet_stages().items()}, DetectorSettings())


@pytest.fixture(scope="module")
def reference() -> FaceDetector:
    return FaceDetector()


@pytest.mark.parametrize("name", list(PHOTOS))
def test_same_faces_as_facenet_within_a_pixel(served, reference, name) -> None:
    image = PHOTOS[name]
    mine, theirs = served.detect(image), reference.detect(image)
    row = compare_detections(mine, theirs)
    assert row["served"] == row["reference"], row
    if theirs:
        assert row["box_px"] < 1.0 and row["landmark_px"] < 1.0, row
        assert [d.probability for d in mine] == pytest.approx([d.probability for d in theirs])


def test_the_photo_set_has_faces_and_no_faces(reference) -> None:
    counts = {name: len(reference.detect(image)) for name, image in PHOTOS.items()}
    assert counts["astronaut"] == 1 and counts["two"] == 2 and counts["three"] == 3
    assert counts["scene_1080p"] == 1 and counts["rotated"] == 1
    assert counts["coffee"] == counts["noise"] == counts["blank"] == 0


def test_area_resampling_is_torch_interpolate_area() -> None:
    image = PHOTOS["astronaut"][:97, :131]
    integral = IntegralImage(image)
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    for size in [(24, 24), (48, 48), (60, 81), (97, 131), (13, 7)]:
        expected = interpolate(tensor, size=size, mode="area")[0].permute(1, 2, 0).numpy()
        got = integral.resample(0, 97, 0, 131, *size)
        np.testing.assert_allclose(got, expected, atol=1e-3, rtol=0)
    crop = interpolate(tensor[:, :, 10:50, 20:45], size=(24, 24), mode="area")
    np.testing.assert_allclose(
        integral.resample(10, 50, 20, 45, 24, 24), crop[0].permute(1, 2, 0).numpy(), atol=1e-3
    )


def test_nms_is_torchvision_nms() -> None:
    rng = np.random.default_rng(3)
    corners = rng.uniform(0, 100, (300, 2)).astype(np.float32)
    boxes = np.concatenate([corners, corners + rng.uniform(5, 40, (300, 2))], 1).astype(np.float32)
    scores = rng.uniform(0, 1, 300).astype(np.float32)
    for threshold in (0.3, 0.5, 0.7):
        expected = torchvision_nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold)
        np.testing.assert_array_equal(nms(boxes, scores, threshold), expected.numpy())


def test_bad_images_and_settings_are_refused(served) -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        served.detect(np.zeros((50, 50), np.uint8))
    assert served.detect(np.zeros((11, 300, 3), np.uint8)) == []  # no pyramid level fits
    with pytest.raises(ValueError, match="stages"):
        MTCNN({"pnet": None})
    with pytest.raises(ValueError, match="unknown detector setting"):
        DetectorSettings.from_mapping({"min_size": 20})
    with pytest.raises(ValueError, match="several_faces"):
        AcquisitionPolicy(several_faces="first")


# ---- the acquisition policy ---------------------------------------------------------------


def _face(x: float, side: float, p: float = 0.99) -> Detection:
    box = np.float32([x, 40, x + side, 40 + side])
    return Detection(box, p, np.zeros((5, 2), np.float32))


def test_several_faces_policies_on_made_up_faces() -> None:
    left, big, right = _face(0, 40), _face(300, 90), _face(560, 40)
    faces = [big, left, right]
    shape = (200, 600)  # centre x = 300: `left` and `right` are 280 px away, `big` 45
    assert choose_face(faces, AcquisitionPolicy(several_faces="refuse")) == (None, "several_faces")
    assert choose_face(faces, AcquisitionPolicy(several_faces="largest"))[0] is big
    assert choose_face(faces, AcquisitionPolicy(several_faces="central"), shape)[0] is big
    assert choose_face([left, right], AcquisitionPolicy(several_faces="central"), (1, 1))[0] is left
    assert choose_face(faces, AcquisitionPolicy())[1] == "several_faces"  # strict default
    assert choose_face(faces, AcquisitionPolicy(dominance=2.0))[0] is big  # 40 * 2 <= 90


def test_acquire_downscales_large_photos_and_maps_back(served) -> None:
    image = cv2.resize(PHOTOS["astronaut"], (1600, 1600), interpolation=cv2.INTER_LINEAR)
    got = acquire(image, served.detect, AcquisitionPolicy(max_side=400))
    assert got.acquired and got.scale == pytest.approx(0.25)
    (at_512,) = served.detect(PHOTOS["astronaut"])
    factor = 1600 / 512
    assert np.abs(got.face.landmarks / factor - at_512.landmarks).max() < 0.05 * at_512.side
    assert got.crop.shape == (112, 112, 3)
    full = acquire(image, served.detect, AcquisitionPolicy(max_side=None))
    assert full.acquired and full.scale == 1.0


def test_downscaled_detections_map_back_per_axis_in_pixel_centres() -> None:
    small = Detection(np.float32([0, 0, 9, 4]), 0.99, np.float32([[4.5, 2.0]] * 5))
    full = small.mapped(2.0, 3.0)  # a 20x15 photo shown as 10x5
    np.testing.assert_allclose(full.landmarks[0], [9.5, 7.0])  # the centre stays the centre
    np.testing.assert_allclose(full.box, [0.5, 1.0, 18.5, 13.0])
    assert full.probability == small.probability


def test_failures_to_acquire_say_why(served, tmp_path: Path) -> None:
    policy = AcquisitionPolicy(min_face_side=100)
    largest = AcquisitionPolicy(several_faces="largest", min_face_side=300)
    small = acquire(PHOTOS["three"], served.detect, largest)
    assert small.failure == "too_small" and "< min_face_side 300" in small.detail
    assert len(small.faces) == 3 and small.face is not None and small.crop is None
    assert acquire(np.zeros((8, 8, 3), np.uint8), served.detect, policy).failure == "too_small"
    none = acquire(PHOTOS["coffee"], served.detect, policy)
    assert none.failure == "no_face" and none.report()["faces"] == []
    several = acquire(PHOTOS["two"], served.detect, policy).report()
    assert several["failure"] == "several_faces" and len(several["faces"]) == 2
    assert set(several["faces"][0]) == {"probability", "side", "box"}
    bad = tmp_path / "truncated.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    unreadable = acquire_file(bad, served.detect, policy)
    assert unreadable.failure == "unreadable" and "truncated.png" in unreadable.detail
