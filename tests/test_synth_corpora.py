"""The synthetic corpora: valid manifests, honest splits, determinism, atomic writes, and no
metadata shortcut to the PAD label."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from idv.cli.synth import run
from idv.data.manifest import SPLITS, Manifest
from idv.data.synth import pad_corpus
from idv.data.synth.shortcuts import metadata_shortcut_auc
from tests.conftest import compose

PAD_LABELS = (0, 1)
# Large enough for every species in every split and a stable shortcut AUC (~900 images).
PAD_IDENTITIES = 150


def generate(root: Path, *overrides: str) -> dict[str, Path]:
    cfg = compose(
        "synth", ["profile=tiny", f"pad.sizes.tiny.identities={PAD_IDENTITIES}", *overrides], root
    )
    return run(cfg)


def digest(corpus: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(corpus.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(corpus)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, Path]:
    return generate(tmp_path_factory.mktemp("synth"))


def test_pad_manifest_is_valid_and_honest(corpora) -> None:
    manifest = Manifest.load(corpora["pad"], labels=PAD_LABELS, required_splits=SPLITS)
    frame = manifest.frame
    assert set(frame["attack_type"]) == {"bona_fide", "print", "replay", "mask"}
    attacks = frame[frame["label"] == 1]
    assert attacks["source_sample_id"].notna().all()
    assert (frame.loc[frame["label"] == 0, "attack_type"] == "bona_fide").all()
    # Every split sees every species, and some attacks are subtle.
    assert (attacks.groupby("split")["attack_type"].nunique() == 3).all()
    assert (attacks["attack_strength"] < 0.35).mean() > 0.1
    for column in ("geography", "capture_device", "age_band", "sex", "skin_tone"):
        assert frame[column].notna().all() and frame[column].nunique() > 1, column


def test_face_manifest_is_valid(corpora) -> None:
    manifest = Manifest.load(corpora["faces"], labels=(0,), required_splits=SPLITS)
    frame = manifest.frame
    assert frame.groupby("subject_id")["split"].nunique().max() == 1
    landmarks = frame["landmarks"].iloc[0]
    assert len(landmarks) == 10


def test_generation_is_deterministic(corpora, tmp_path: Path) -> None:
    again = generate(tmp_path, "corpora=[pad]")
    assert digest(again["pad"].parent) == digest(corpora["pad"].parent)
    other = generate(tmp_path / "other", "corpora=[pad]", "seed=99")
    assert digest(other["pad"].parent) != digest(corpora["pad"].parent)


def test_failed_generation_keeps_previous_corpus(corpora, tmp_path: Path, monkeypatch) -> None:
    previous = tmp_path / "data" / "pad" / "tiny"
    shutil.copytree(corpora["pad"].parent, previous)
    before = digest(previous)
    calls = {"n": 0}
    real_capture = pad_corpus.capture

    def failing_capture(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 20:
            raise RuntimeError("disk full")
        return real_capture(*args, **kwargs)

    monkeypatch.setattr(pad_corpus, "capture", failing_capture)
    with pytest.raises(RuntimeError, match="disk full"):
        generate(tmp_path, "corpora=[pad]", "workers=1")
    assert digest(previous) == before
    assert sorted(p.name for p in previous.parent.iterdir()) == ["tiny"]


def test_no_metadata_shortcut(corpora) -> None:
    manifest = Manifest.load(corpora["pad"], labels=PAD_LABELS)
    aucs = metadata_shortcut_auc(manifest)
    assert max(aucs.values()) <= 0.6, aucs


def test_cli_prints_summary(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "idv-synth"
    out = subprocess.run(
        [
            str(script),
            "profile=tiny",
            "corpora=[pad]",
            "pad.sizes.tiny.identities=8",
            f"paths.root_dir={tmp_path}",
            f"hydra.run.dir={tmp_path}/run",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "samples (subjects) per species" in out.stdout
    assert "capture_device" in out.stdout
    frame = pd.read_parquet(tmp_path / "data" / "pad" / "tiny" / "manifest.parquet")
    assert frame["subject_id"].nunique() == 8
