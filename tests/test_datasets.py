"""Datasets by modality: typed samples and batches, a mask and clip frames that share the
image's geometric augmentation, metadata inputs, sessions as items, and `path` required only
where a modality needs files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from idv.data.datasets import Batch, ClipDataset, ImageDataset, collate
from idv.data.manifest import Manifest, write_manifest
from idv.imaging import ImageReadError

SPECIES = ["bona_fide", "print"]
FLIP = {  # a certain flip and a random crop: geometry a mask or other frames must follow
    "normalize": {"mean": [0.0] * 3, "std": [1.0] * 3},
    "train": [
        {"_target_": "albumentations.HorizontalFlip", "p": 1.0},
        {"_target_": "albumentations.RandomCrop", "height": 12, "width": 12},
    ],
    "eval": [],
}


def _image(path: Path, pixels: np.ndarray) -> str:
    Image.fromarray(pixels).save(path)
    return path.name


def test_image_and_mask_share_the_geometric_augmentation(tmp_path: Path) -> None:
    # The left half of the image is white and the mask marks exactly that half.
    pixels = np.zeros((16, 16, 3), np.uint8)
    pixels[:, :8] = 255
    mask = np.zeros((16, 16, 3), np.uint8)
    mask[:, :8] = 255
    frame = pd.DataFrame(
        {
            "sample_id": ["a", "b"],
            "path": [_image(tmp_path / "a.png", pixels), _image(tmp_path / "b.png", pixels)],
            "mask_path": [_image(tmp_path / "m.png", mask), None],  # b: no tampered region
            "label": [1, 0],
            "attack_type": ["print", "bona_fide"],
            "subject_id": ["s1", "s2"],
        }
    )
    data = ImageDataset(frame, tmp_path, FLIP, "train", SPECIES, mask=True, seed=0)
    assert data.input_names == ("image",) and data.target_names == ("mask",)
    sample = data[(0, 7)]
    image, target = sample.inputs["image"], sample.targets["mask"]
    assert image.shape == (3, 12, 12) and target.shape == (1, 12, 12)
    white = image.mean(dim=0) > 0.5  # after the flip the white half is on the right
    assert torch.equal(white, target[0] > 0.5) and white[:, -1].all()
    assert data[1].targets["mask"].sum() == 0
    batch = collate([data[0], data[1]])
    assert isinstance(batch, Batch) and batch.mask.shape == (2, 1, 12, 12)
    assert batch.image.shape == (2, 3, 12, 12) and batch.label.tolist() == [1, 0]
    with pytest.raises(AttributeError, match="no input or target 'frames'"):
        _ = batch.frames


def test_metadata_is_a_float_input(tmp_path: Path) -> None:
    pixels = np.zeros((8, 8, 3), np.uint8)
    frame = pd.DataFrame(
        {
            "sample_id": ["a"],
            "path": [_image(tmp_path / "a.png", pixels)],
            "label": [0],
            "attack_type": ["bona_fide"],
            "subject_id": ["s1"],
            "fps": [30.0],
            "sensor_noise": [0.2],
        }
    )
    data = ImageDataset(frame, tmp_path, FLIP, "eval", SPECIES, metadata=["fps", "sensor_noise"])
    assert data.input_names == ("image", "metadata")
    assert data[0].inputs["metadata"].tolist() == pytest.approx([30.0, 0.2])
    with pytest.raises(ValueError, match=r"metadata column\(s\) \['iso'\]"):
        ImageDataset(frame, tmp_path, FLIP, "eval", SPECIES, metadata=["iso"])
    with pytest.raises(ValueError, match="needs manifest column"):
        ImageDataset(frame.drop(columns="path"), tmp_path, FLIP, "eval", SPECIES)
    # A missing value of a metadata column names the sample (a null is no measurement).
    with pytest.raises(ValueError, match="metadata of sample 'a' is not finite"):
        ImageDataset(frame.assign(fps=[None]), tmp_path, FLIP, "eval", SPECIES, metadata=["fps"])


def clip_frame(tmp_path: Path) -> pd.DataFrame:
    """Two sessions: s1 with 5 identical frames, s2 with 2 different ones."""
    rows = []
    rng = np.random.default_rng(0)
    same = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    for k in range(5):
        rows.append(("s1", k, _image(tmp_path / f"s1_{k}.png", same), 0, "bona_fide", "p1"))
    for k in range(2):
        pixels = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
        rows.append(("s2", k, _image(tmp_path / f"s2_{k}.png", pixels), 1, "print", "p2"))
    frame = pd.DataFrame(
        rows, columns=["session_id", "frame_index", "path", "label", "attack_type", "subject_id"]
    )
    frame["sample_id"] = frame["session_id"] + "_" + frame["frame_index"].astype(str)
    return frame.sample(frac=1.0, random_state=1).reset_index(drop=True)  # frames out of order


def test_clips_are_sessions_with_one_augmentation_for_all_frames(tmp_path: Path) -> None:
    data = ClipDataset(clip_frame(tmp_path), tmp_path, FLIP, "train", SPECIES, frames=4, seed=0)
    assert data.sample_ids == ["s1", "s2"] and data.labels.tolist() == [0, 1]
    assert list(data.items["subject_id"]) == ["p1", "p2"]
    clip = data[(0, 3)].inputs["frames"]
    assert clip.shape == (4, 3, 12, 12)
    for k in range(1, 4):  # identical frames stay identical: one crop, one flip for the clip
        assert torch.equal(clip[k], clip[0])
    short = data[(1, 3)].inputs["frames"]  # 2 frames padded to 4 with the last one
    assert torch.equal(short[2], short[1]) and torch.equal(short[3], short[1])
    assert not torch.equal(short[0], short[1])
    batch = collate([data[0], data[1]])
    assert batch.frames.shape == (2, 4, 3, 12, 12) and batch.sample_id == ["s1", "s2"]
    mixed = clip_frame(tmp_path)
    mixed.loc[mixed["session_id"] == "s1", "label"] = [0, 1, 0, 0, 0]
    with pytest.raises(ValueError, match="session 's1' mixes labels"):
        ClipDataset(mixed, tmp_path, FLIP, "eval", SPECIES)


def test_temporal_jitter_moves_the_picks_in_training_only(tmp_path: Path) -> None:
    """8 stored frames, 3 picked: evaluation takes 0, 4, 7 (evenly spaced); training keeps a
    whole-frame stride (3) from a seeded random start (0 or 1); frames=1 any frame."""
    rows = [
        ("s1", k, _image(tmp_path / f"f{k}.png", np.full((16, 16, 3), 20 * k, np.uint8)), 0)
        for k in range(8)
    ]
    frame = pd.DataFrame(rows, columns=["session_id", "frame_index", "path", "label"])
    frame = frame.assign(attack_type="bona_fide", subject_id="p1", sample_id=frame["path"])

    def picks(data: ClipDataset, key) -> tuple[int, ...]:
        values = data[key].inputs["frames"].mean(dim=(1, 2, 3)) * 255.0
        return tuple(int(round(v / 20.0)) for v in values.tolist())

    flat = {**FLIP, "train": []}
    evaluation = ClipDataset(frame, tmp_path, flat, "eval", SPECIES, frames=3, temporal_jitter=True)
    assert {picks(evaluation, (0, seed)) for seed in range(20)} == {(0, 4, 7)}
    train = ClipDataset(frame, tmp_path, flat, "train", SPECIES, frames=3, temporal_jitter=True)
    assert {picks(train, (0, seed)) for seed in range(20)} == {(0, 3, 6), (1, 4, 7)}
    assert picks(train, (0, 5)) == picks(train, (0, 5))  # seeded: reproducible
    fixed = ClipDataset(frame, tmp_path, flat, "train", SPECIES, frames=3)
    assert {picks(fixed, (0, seed)) for seed in range(20)} == {(0, 4, 7)}
    one = ClipDataset(frame, tmp_path, flat, "train", SPECIES, frames=1, temporal_jitter=True)
    assert len({picks(one, (0, seed)) for seed in range(40)}) == 8


def test_path_is_optional_in_the_manifest(tmp_path: Path) -> None:
    """A manifest without files (an event-sequence corpus, say) validates; a file column that
    is there is still checked (inside the root, existing)."""
    frame = pd.DataFrame(
        {
            "sample_id": ["a", "b"],
            "label": [0, 1],
            "subject_id": ["s1", "s2"],
            "split": ["train", "test"],
            "attack_type": ["bona_fide", "print"],
        }
    )
    write_manifest(frame, tmp_path / "manifest.parquet")
    assert len(Manifest.load(tmp_path / "manifest.parquet").frame) == 2
    write_manifest(frame.assign(mask_path=["../x.png", None]), tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match=r"row 0 .*mask_path '\.\./x\.png' escapes"):
        Manifest.load(tmp_path / "bad.parquet")


def test_an_image_below_the_minimum_side_is_unreadable(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "sample_id": ["a", "b"],
            "path": [_image(tmp_path / "a.png", np.zeros((1, 1, 3), np.uint8)),
                     _image(tmp_path / "b.png", np.zeros((20, 20, 3), np.uint8))],
            "label": [0, 0],
            "attack_type": ["bona_fide"] * 2,
            "subject_id": ["s1", "s2"],
        }
    )  # fmt: skip
    strict = ImageDataset(frame, tmp_path, FLIP, "eval", SPECIES, min_side=16)
    with pytest.raises(ImageReadError, match=r"a\.png: image 1x1 of sample a is below .* 16"):
        strict[0]
    assert strict[1] is not None
    skipping = ImageDataset(frame, tmp_path, FLIP, "eval", SPECIES, min_side=16, on_error="skip")
    assert skipping[0] is None and skipping[1] is not None
    assert ImageDataset(frame, tmp_path, FLIP, "eval", SPECIES)[0] is not None  # default: 1
