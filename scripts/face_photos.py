"""Generated photos for the face-serving scripts: real faces (scikit-image's astronaut) placed
in scenes of a given size, and a labelled set of failure cases. Deterministic given a seed;
nothing is downloaded (the photos ship inside scikit-image's wheel)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from skimage import data

FACE = (slice(0, 300), slice(100, 350))  # the astronaut's head and shoulders


def scene(width: int, height: int, face_height: int, rng: np.random.Generator) -> np.ndarray:
    """A (height, width) RGB photo: coffee as the background, one face of `face_height`
    pixels (head and shoulders) at a random place."""
    background = cv2.resize(data.coffee(), (width, height), interpolation=cv2.INTER_LINEAR)
    face = data.astronaut()[FACE]
    fw = round(face.shape[1] * face_height / face.shape[0])
    face = cv2.resize(face, (fw, face_height), interpolation=cv2.INTER_AREA)
    y = int(rng.integers(0, max(1, height - face_height)))
    x = int(rng.integers(0, max(1, width - fw)))
    background[y : y + face_height, x : x + fw] = face
    return background


def save(image: np.ndarray, file: Path, quality: int = 92) -> Path:
    file.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(image)).save(file, quality=quality)
    return file


def failure_set(root: Path, seed: int = 0) -> dict[str, list[Path]]:
    """Photos by the outcome a face bundle should give them: one_face, no_face,
    several_faces, too_small (tiny images and tiny faces) and unreadable (corrupt files)."""
    rng = np.random.default_rng(seed)
    astronaut = data.astronaut()
    head = astronaut[FACE]
    out: dict[str, list[Path]] = {k: [] for k in
                                  ("one_face", "no_face", "several_faces", "too_small",
                                   "unreadable")}  # fmt: skip
    for k, (w, h) in enumerate([(640, 480), (1280, 720), (480, 640), (1920, 1080)] * 2):
        image = scene(w, h, int(h * rng.uniform(0.35, 0.7)), rng)
        out["one_face"].append(save(image, root / f"one_face_{k}.jpg"))
    for k, angle in enumerate((-15, 15)):
        m = cv2.getRotationMatrix2D((256, 256), angle, 1.0)
        out["one_face"].append(save(cv2.warpAffine(astronaut, m, (512, 512)),
                                    root / f"one_face_rot{k}.jpg"))  # fmt: skip
    for name in ("coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry"):
        out["no_face"].append(save(getattr(data, name)(), root / f"no_face_{name}.jpg"))
    for k in range(3):
        noise = rng.integers(0, 256, (480, 640, 3)).astype(np.uint8)
        out["no_face"].append(save(noise, root / f"no_face_noise{k}.png"))
    out["no_face"].append(save(np.full((480, 640, 3), 128, np.uint8), root / "no_face_grey.png"))
    for k, count in enumerate((2, 2, 3, 4)):
        side = [head] * count if k % 2 == 0 else [head, head[:, ::-1]] * (count // 2)
        image = np.concatenate(side[:count], axis=1)
        out["several_faces"].append(save(image, root / f"several_{k}.jpg"))
    for size in (1, 8, 16, 24):
        small = cv2.resize(head, (size, size), interpolation=cv2.INTER_AREA)
        out["too_small"].append(save(small, root / f"tiny_image_{size}.png"))
    for k, face_height in enumerate((36, 44)):  # a detectable face below min_face_side 32 px
        out["too_small"].append(
            save(scene(640, 480, face_height, rng), root / f"tiny_face_{k}.png")
        )
    good = (root / "one_face_0.jpg").read_bytes()
    corrupt = {
        "truncated.jpg": good[: len(good) // 3],
        "random.jpg": rng.integers(0, 256, 4096).astype(np.uint8).tobytes(),
        "empty.png": b"",
        "header_only.png": b"\x89PNG\r\n\x1a\n",
        "text.jpg": b"this is not an image\n",
    }
    for name, payload in corrupt.items():
        (root / name).write_bytes(payload)
        out["unreadable"].append(root / name)
    return out
