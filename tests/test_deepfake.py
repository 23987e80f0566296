"""Deepfake and injection: the corpus (species, provenance, metadata that does not solve it,
determinism), the cross-species protocol, and the image + metadata network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from idv.capture_metadata import METADATA_COLUMNS, CaptureMetadataError, timing_metadata
from idv.cli.synth import run
from idv.data.manifest import Manifest
from idv.data.protocols import apply_protocol
from idv.data.readers import read_image
from idv.models.backbones import TimmBackbone
from idv.models.fusion import ImageMetadataClassifier, NoiseResidualStats
from tests.conftest import compose
from tests.test_synth_corpora import digest

SPECIES = {"bona_fide", "sbi", "face_swap", "reenactment", "synthesis", "injection"}


def _generate(root: Path, *overrides: str) -> Path:
    """The corpus' manifest file."""
    cfg = compose("synth", ["profile=tiny", "corpora=[deepfakes]", *overrides], root)
    return run(cfg)["deepfakes"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return _generate(tmp_path_factory.mktemp("deepfakes"), "deepfakes.sizes.tiny.identities=30")


def test_species_provenance_and_metadata(corpus: Path) -> None:
    frame = Manifest.load(corpus, labels=(0, 1)).frame.set_index("sample_id")
    assert set(frame["attack_type"]) == SPECIES
    attacks = frame[frame["label"] == 1]
    sources = frame.loc[attacks["source_sample_id"]]
    assert (sources["label"] == 0).all()
    assert (sources["subject_id"].to_numpy() == attacks["subject_id"].to_numpy()).all()
    assert (sources["split"].to_numpy() == attacks["split"].to_numpy()).all()
    meta = frame[list(METADATA_COLUMNS)]
    assert np.isfinite(meta.to_numpy()).all()
    # Tell-tales are not labels: a virtual device shows on only part of the injections, and
    # some bona fide captures use one too; manipulations mostly look like a camera's.
    inj = frame[frame["attack_type"] == "injection"]
    assert 0 < inj["virtual_device"].mean() < 0.8
    assert (frame.loc[frame["label"] == 0, "injected"] == 0).all()
    manip = frame[frame["attack_type"].isin(["sbi", "face_swap", "reenactment", "synthesis"])]
    assert 0 < manip["injected"].mean() < 0.6


def test_manipulations_change_the_face_not_the_frame_size(corpus: Path) -> None:
    frame = Manifest.load(corpus, labels=(0, 1)).frame.set_index("sample_id")
    swaps = frame[frame["attack_type"] == "face_swap"].head(3)
    for sid, row in swaps.iterrows():
        fake = read_image(corpus.parent / row["path"]).astype(np.float32)
        source = frame.loc[row["source_sample_id"], "path"]
        real = read_image(corpus.parent / source).astype(np.float32)
        assert fake.shape == real.shape == (96, 96, 3)
        # Each capture meters its own exposure: match the fake's border to the real's first.
        ring = np.ones((96, 96), bool)
        ring[8:-8, 8:-8] = False
        fake *= real[ring].mean(axis=0) / fake[ring].mean(axis=0)
        diff = np.abs(fake - real).mean(axis=2)
        # The swap is in the face: the centre changes more than the border (camera noise).
        centre, border = diff[30:66, 30:66].mean(), np.r_[diff[:8].ravel(), diff[-8:].ravel()]
        assert centre > 2 * border.mean(), sid


def test_corpus_is_deterministic(tmp_path: Path, corpus: Path) -> None:
    again = _generate(tmp_path, "deepfakes.sizes.tiny.identities=30")
    pd.testing.assert_frame_equal(pd.read_parquet(corpus), pd.read_parquet(again))
    assert digest(corpus.parent) == digest(again.parent)


def _frame() -> pd.DataFrame:
    rows = []
    for split in ("train", "val", "calib", "test"):
        for species in SPECIES:
            rows.append({"split": split, "attack_type": species})
    return pd.DataFrame(rows)


def test_cross_species_protocol_fits_on_sbi_and_tests_on_the_rest() -> None:
    protocol = {
        "name": "cross_species",
        "fit_species": ["sbi"],
        "test_species": ["face_swap", "reenactment", "synthesis"],
    }
    kept = apply_protocol(_frame(), protocol)
    fit = kept[kept["split"] != "test"]
    assert set(fit["attack_type"]) == {"bona_fide", "sbi"}
    test = kept[kept["split"] == "test"]
    assert set(test["attack_type"]) == {"bona_fide", "face_swap", "reenactment", "synthesis"}
    with pytest.raises(ValueError, match="both fit_species and test_species"):
        apply_protocol(_frame(), {**protocol, "test_species": ["sbi"]})
    with pytest.raises(ValueError, match="do not occur"):
        apply_protocol(_frame(), {**protocol, "fit_species": ["morph"]})


def test_noise_residual_is_higher_for_a_noisy_image() -> None:
    g = torch.Generator().manual_seed(0)
    clean = torch.linspace(0, 1, 32).reshape(1, 1, 1, 32).expand(1, 3, 32, 32).contiguous()
    noisy = clean + 0.05 * torch.randn(clean.shape, generator=g)
    stats = NoiseResidualStats()
    assert (stats(noisy)[0, :3] > stats(clean)[0, :3] + 1.0).all()  # log std per channel


@pytest.mark.parametrize(
    ("use_image", "use_metadata"), [(True, True), (True, False), (False, True)]
)
def test_fusion_network_and_its_ablations(use_image: bool, use_metadata: bool) -> None:
    torch.manual_seed(0)
    net = ImageMetadataClassifier(
        TimmBackbone("resnet10t"), 5, use_image=use_image, use_metadata=use_metadata
    ).eval()
    image, meta = torch.rand(4, 3, 48, 48), torch.rand(4, 5)
    out = net(image, meta)
    assert out.shape == (4, 1)
    moved = net(image, meta + torch.tensor([5.0, 0, 0, 0, 0]))
    # Only a network with the metadata branch depends on the metadata.
    assert torch.equal(moved, out) != use_metadata
    torch.testing.assert_close(torch.jit.script(net)(image, meta), out)
    # The residual input: six channels into the backbone, the same outputs' contract.
    six = ImageMetadataClassifier(
        TimmBackbone("resnet10t", in_chans=6), 5, residual_input=True
    ).eval()
    torch.testing.assert_close(torch.jit.script(six)(image, meta), six(image, meta))
    with pytest.raises(ValueError, match="use_image or use_metadata"):
        ImageMetadataClassifier(TimmBackbone("resnet10t"), 5, use_image=False, use_metadata=False)


def test_timing_metadata_from_a_capture_report() -> None:
    steady = [k * 33.3 for k in range(10)]
    digests = [str(k) for k in range(10)]
    meta = timing_metadata("s1", steady, digests, nominal_fps=30.0)
    assert meta["ts_jitter_ms"] < 1e-6 and meta["ts_irregular_share"] == 0.0
    assert meta["repeat_share"] == 0.0
    dropped = [*steady[:5], *(t + 33.3 for t in steady[5:])]  # one frame dropped
    repeated = [*digests[:3], "2", *digests[4:]]
    meta = timing_metadata("s2", dropped, repeated, nominal_fps=30.0)
    assert meta["ts_irregular_share"] == pytest.approx(1 / 9)
    assert meta["repeat_share"] == pytest.approx(1 / 9)


@pytest.mark.parametrize(
    ("timestamps", "digests", "message"),
    [
        ([0.0, 33.0, 33.0, 99.0], list("abcd"), "not increasing at frame 2"),
        ([0.0, 33.0, 20.0, 99.0], list("abcd"), "not increasing at frame 2"),
        ([0.0, 33.0], list("ab"), "at least 3"),
        ([0.0, float("nan"), 66.0], list("abc"), "not finite"),
        ([0.0, 33.0, 66.0], list("ab"), "3 timestamps but 2"),
    ],
)
def test_timing_metadata_refuses_a_report_that_is_no_capture(timestamps, digests, message) -> None:
    with pytest.raises(CaptureMetadataError, match=message) as err:
        timing_metadata("sess-7", timestamps, digests, nominal_fps=30.0)
    assert "sess-7" in str(err.value)
