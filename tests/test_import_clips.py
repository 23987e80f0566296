"""idv-import-clips on tiny videos and frame folders the test writes (a real photo moved)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from idv.data.datasets import ClipDataset
from idv.data.face_detect import FaceDetector
from idv.data.manifest import Manifest
from idv.data.sources import video_sessions
from idv.data.sources.video_sessions import (
    SamplingOptions,
    SessionError,
    SourceSession,
    import_video_sessions,
    sample_frames,
)
from tests.test_face_import import portrait

FRACTIONS = {"train": 0.5, "val": 0.0, "calib": 0.25, "test": 0.25}
OPTIONS = SamplingOptions(sample_fps=5.0, max_frames=8, min_frames=2, folder_fps=10.0)


def moving(n: int, blank_every: int = 0) -> list[np.ndarray]:
    """The portrait shifted a pixel per frame (a head moving); every `blank_every`-th frame
    a flat grey image (no face)."""
    base = portrait()
    frames = []
    for k in range(n):
        frame = np.roll(base, k, axis=1)
        if blank_every and k % blank_every == 1:
            frame = np.full_like(base, 128)
        frames.append(np.ascontiguousarray(frame))
    return frames


def write_video(frames: list[np.ndarray], file: Path, fps: float = 10.0) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(file), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(np.ascontiguousarray(f[:, :, ::-1]))
    writer.release()


def write_folder(frames: list[np.ndarray], folder: Path, numbers=None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, f in zip(numbers or range(len(frames)), frames, strict=True):
        Image.fromarray(f).save(folder / f"{k:04d}.png")


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def imported(tmp_path_factory, detector):
    src = tmp_path_factory.mktemp("videos")
    write_video(moving(20), src / "bona_fide" / "alice" / "s1.avi")
    write_folder(moving(12), src / "replay" / "alice" / "s2")
    write_video(moving(20, blank_every=3), src / "print" / "bob" / "s3.avi")
    (src / "bona_fide" / "bob").mkdir(parents=True)
    (src / "bona_fide" / "bob" / "broken.mp4").write_bytes(b"not a video at all")
    out = tmp_path_factory.mktemp("out") / "clips"
    frame = import_video_sessions(
        src, out, seed=0, split_fractions=FRACTIONS, salt="s", detector=detector, options=OPTIONS
    )
    return src, out, frame


def test_sessions_are_sampled_aligned_and_counted(imported) -> None:
    _, out, frame = imported
    manifest = Manifest.load(out / "manifest.parquet", labels=(0, 1)).frame
    sessions = manifest.groupby("session_id")
    assert sessions.ngroups == 4
    by_species = manifest.drop_duplicates("session_id").set_index("attack_type")
    # The 2 s video at 10 fps sampled at 5 fps: 8 frames (max_frames), 0.2 s apart.
    video = manifest[manifest["session_id"] == by_species.loc["bona_fide"].query("acquired")
                     ["session_id"].iloc[0]].sort_values("frame_index")  # fmt: skip
    assert len(video) == 8 and video["acquired"].all()
    np.testing.assert_allclose(np.diff(video["timestamp_s"]), 0.2, atol=0.02)
    # The frame folder: 12 frames at 10 fps -> 6 at 5 fps.
    assert (manifest["attack_type"] == "replay").sum() == 6
    # Blank frames are dropped and counted, the session is kept.
    printed = manifest[manifest["attack_type"] == "print"]
    assert printed["acquired"].all()
    assert (printed["frames_aligned"] < printed["frames_sampled"]).all()
    # The broken file: one row, a failure to acquire, no frame file.
    broken = manifest[~manifest["acquired"]]
    assert len(broken) == 1 and broken["failure"].iloc[0] == "unreadable"
    assert broken["path"].isna().all()
    # Aligned frames are the configured size and the ClipDataset reads the sessions.
    first = Image.open(out / video["path"].iloc[0])
    assert first.size == (64, 64)
    augment = {"normalize": {"mean": [0.5] * 3, "std": [0.25] * 3}, "eval": []}
    acquired = manifest[manifest["acquired"]]
    ds = ClipDataset(acquired, out, augment, "eval", ["bona_fide", "replay", "print"], frames=4)
    assert len(ds) == 3 and ds[0].inputs["frames"].shape == (4, 3, 64, 64)


def test_a_gap_in_a_frame_folder_names_the_session(tmp_path) -> None:
    write_folder(moving(3), tmp_path / "s", numbers=[0, 1, 3])
    with pytest.raises(SessionError, match=r"session .*s: missing frame\(s\) after frame number 1"):
        sample_frames(SourceSession(tmp_path / "s", "a", "bona_fide"), OPTIONS)


def test_frames_of_different_sizes_name_the_session(tmp_path) -> None:
    frames = moving(3)
    frames[2] = frames[2][:200]
    write_folder(frames, tmp_path / "s")
    with pytest.raises(SessionError, match=r"session .*s: frames of different sizes"):
        sample_frames(SourceSession(tmp_path / "s", "a", "bona_fide"), OPTIONS)


def test_timestamps_that_do_not_increase_name_the_session(tmp_path, monkeypatch) -> None:
    image = moving(1)[0]
    monkeypatch.setattr(
        video_sessions,
        "_video_frames",
        lambda path: iter([(0.0, image), (0.5, image), (0.4, image)]),
    )
    with pytest.raises(SessionError, match=r"session .*v.avi: timestamps do not increase"):
        sample_frames(SourceSession(tmp_path / "v.avi", "a", "bona_fide"), OPTIONS)


def test_csv_layout_and_bad_rows(tmp_path, detector) -> None:
    write_folder(moving(6), tmp_path / "src" / "x" / "one")
    (tmp_path / "list.csv").write_text("path,subject,species,challenge\nx/one,zoe,mask,blink\n")
    frame = import_video_sessions(
        tmp_path / "src", tmp_path / "out", seed=0, split_fractions=FRACTIONS, salt="s",
        csv=tmp_path / "list.csv", detector=detector, options=OPTIONS,
    )  # fmt: skip
    assert set(frame["attack_type"]) == {"mask"} and set(frame["challenge"]) == {"blink"}
    assert (frame["label"] == 1).all()
    (tmp_path / "bad.csv").write_text("path,subject,species\nx/missing,zoe,mask\n")
    with pytest.raises(FileNotFoundError, match=r"row 0: session 'x/missing'"):
        import_video_sessions(
            tmp_path / "src", tmp_path / "out2", seed=0, split_fractions=FRACTIONS, salt="s",
            csv=tmp_path / "bad.csv", detector=detector, options=OPTIONS,
        )  # fmt: skip


def test_the_entry_point_composes_and_imports(tmp_path) -> None:
    from idv.cli.import_clips import run
    from tests.conftest import compose

    write_folder(moving(6), tmp_path / "src" / "bona_fide" / "amy" / "one")
    cfg = compose(
        "import_clips",
        [f"src={tmp_path / 'src'}", f"out={tmp_path / 'out'}", "sampling.folder_fps=5"],
        tmp_path,
    )
    manifest = run(cfg)
    frame = Manifest.load(manifest, labels=(0, 1)).frame
    assert len(frame) == 6 and frame["acquired"].all()
