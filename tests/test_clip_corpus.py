"""The synthetic clip corpus: sessions of frames, honest attacks, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from idv.cli.synth import run
from idv.data.manifest import Manifest
from idv.data.readers import read_image
from tests.conftest import compose
from tests.test_synth_corpora import digest


def _generate(root: Path, *overrides: str) -> Path:
    cfg = compose("synth", ["profile=tiny", "corpora=[clips]", *overrides], root)
    return run(cfg)["clips"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return _generate(tmp_path_factory.mktemp("clips"), "clips.sizes.tiny.identities=30")


def test_sessions_are_ordered_frames_of_one_split_and_label(clips: Path) -> None:
    frame = Manifest.load(clips, labels=(0, 1)).frame
    per = frame.groupby("session_id")
    assert (per.size() == 8).all()
    assert per["frame_index"].apply(lambda s: sorted(s) == list(range(8))).all()
    ordered = frame.sort_values(["session_id", "frame_index"])
    assert (ordered.groupby("session_id")["timestamp_s"].diff().dropna() > 0).all()
    assert (per[["split", "label", "subject_id", "challenge"]].nunique() == 1).all().all()
    assert set(frame["attack_type"]) == {"bona_fide", "print", "replay", "mask", "injection"}


def test_attacks_come_from_a_bona_fide_session_of_the_same_subject(clips: Path) -> None:
    s = Manifest.load(clips, labels=(0, 1)).frame.drop_duplicates("session_id")
    s = s.set_index("session_id")
    attacks = s[s["label"] == 1]
    sources = s.loc[attacks["source_session_id"]]
    assert (sources["label"] == 0).all()
    assert (sources["subject_id"].to_numpy() == attacks["subject_id"].to_numpy()).all()
    assert (sources["split"].to_numpy() == attacks["split"].to_numpy()).all()
    # A replay shows the source's challenge while another one is asked: never compliant.
    replay = attacks[attacks["attack_type"] == "replay"]
    assert (replay["challenge"].to_numpy() != s.loc[replay["source_session_id"], "challenge"]).all()
    assert (replay["challenge_failed"] == 1).all()
    assert (s.loc[s["label"] == 0, "challenge_failed"] == 0).all()
    still = attacks[attacks["attack_type"].isin(["print", "injection"])]
    assert (still["challenge_failed"] == 1).all()
    masks = attacks[attacks["attack_type"] == "mask"]
    assert ((masks["challenge"] == "smile") == (masks["challenge_failed"] == 1)).all()
    # `performed`: what the clip does. Live: the asked one; a replay: its source's; a still
    # nothing; a mask what it asked unless that is a smile.
    live = s[s["label"] == 0]
    assert (live["performed"] == live["challenge"]).all()
    sources = s.loc[replay["source_session_id"], "challenge"].to_numpy()
    assert (replay["performed"].to_numpy() == sources).all()
    assert (still["performed"] == "none").all()
    expected = masks["challenge"].where(masks["challenge_failed"] == 0, "none")
    assert (masks["performed"] == expected).all()


def _motion(root: Path, rows: pd.DataFrame) -> float:
    images = [read_image(root / p).astype(np.float32) for p in rows.sort_values("frame_index").path]
    return float(np.mean([np.abs(a - b).mean() for a, b in zip(images, images[1:], strict=False)]))


def test_an_injected_still_moves_less_than_a_live_face(clips: Path) -> None:
    frame = Manifest.load(clips, labels=(0, 1)).frame
    live = frame[(frame["label"] == 0) & (frame["condition"] == "none")]
    injected = frame[frame["attack_type"] == "injection"]
    live_motion = np.median([_motion(clips.parent, g) for _, g in live.groupby("session_id")])
    still = np.median([_motion(clips.parent, g) for _, g in injected.groupby("session_id")])
    assert still < live_motion


def test_deterministic_whatever_the_worker_count(clips: Path, tmp_path: Path) -> None:
    again = _generate(tmp_path, "clips.sizes.tiny.identities=30", "workers=1")
    assert digest(again.parent) == digest(clips.parent)
