"""Image reading: EXIF orientation, and clear errors (or counted skips) for corrupt files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from idv.data.datasets import ImageDataset, collate
from idv.data.readers import ImageReadError, read_image

AUGMENT = {"normalize": {"mean": [0.5] * 3, "std": [0.5] * 3}, "train": [], "eval": []}


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = np.zeros((10, 20, 3), np.uint8)
    pixels[:, :10] = 255  # left half white
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image.save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    out = read_image(tmp_path / "rotated.jpg")
    assert out.shape == (20, 10, 3)
    assert out[:5].mean() > 200 and out[-5:].mean() < 50  # white half now on top


def truncated_jpeg(path: Path) -> Path:
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_truncated_and_corrupt_images_name_the_file(tmp_path: Path) -> None:
    bad = truncated_jpeg(tmp_path / "half.jpg")
    with pytest.raises(ImageReadError, match="half.jpg"):
        read_image(bad)
    (tmp_path / "noise.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ImageReadError, match="noise.png"):
        read_image(tmp_path / "noise.png")


def dataset(tmp_path: Path, on_error: str) -> ImageDataset:
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "ok.png")
    truncated_jpeg(tmp_path / "bad.jpg")
    frame = pd.DataFrame(
        {
            "sample_id": ["a", "b"],
            "path": ["ok.png", "bad.jpg"],
            "label": [0, 1],
            "attack_type": ["bona_fide", "print"],
        }
    )
    return ImageDataset(frame, tmp_path, AUGMENT, "eval", ["bona_fide", "print"], on_error=on_error)


def test_dataset_fails_by_default(tmp_path: Path) -> None:
    data = dataset(tmp_path, "fail")
    assert data[0].label == 0 and data[0].inputs["image"].shape == (3, 8, 8)
    with pytest.raises(ImageReadError, match="bad.jpg"):
        data[1]


def test_dataset_skip_mode_counts_skipped(tmp_path: Path, caplog) -> None:
    data = dataset(tmp_path, "skip")
    batch = collate([data[0], data[1]])
    assert batch.n_skipped == 1
    assert batch.sample_id == ["a"] and batch.image.shape == (1, 3, 8, 8)
    assert "bad.jpg" in caplog.text


def test_unknown_species_is_an_error(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"sample_id": ["a"], "path": ["x.png"], "label": [1], "attack_type": ["deepfake"]}
    )
    with pytest.raises(ValueError, match="deepfake"):
        ImageDataset(frame, tmp_path, AUGMENT, "eval", ["bona_fide", "print"])
