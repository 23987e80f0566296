"""IDVDataModule driven by the real config, on a tiny hand-made corpus."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hydra.utils import instantiate

from idv.data.datasets import Batch
from idv.data.manifest import ManifestError, write_manifest
from tests.conftest import compose


def datamodule(corpus: Path, tmp_path: Path, *overrides: str):
    cfg = compose(
        "train",
        [
            "debug=fast",
            f"data.manifest={corpus / 'manifest.parquet'}",
            "augment.image_size=16",
            "augment.crop_size=16",
            *overrides,
        ],
        tmp_path,
    )
    return instantiate(cfg.data)


def test_fit_loaders_yield_typed_batches(corpus: Path, tmp_path: Path) -> None:
    dm = datamodule(corpus, tmp_path)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, Batch)
    assert tuple(batch.image.shape) == (8, 3, 16, 16)
    assert set(batch.label.tolist()) <= {0, 1}
    assert (batch.species == batch.label).all()  # species index: bona_fide=0, print=1
    assert batch.n_skipped == 0
    val_ids = [i for b in dm.val_dataloader() for i in b.sample_id]
    assert sorted(val_ids) == sorted(dm.manifest.split("val")["sample_id"])


def test_balanced_sampling_evens_out_labels(corpus: Path, tmp_path: Path) -> None:
    # Keep one attack in ten: a 10:1 imbalance.
    file = corpus / "manifest.parquet"
    frame = pd.read_parquet(file)
    attacks = frame.index[frame["label"] == 1]
    write_manifest(frame.drop(attacks[attacks % 10 != 1]), file)
    dm = datamodule(corpus, tmp_path, "task.sampler.balanced=true", "data.batch_size=64")
    dm.setup("fit")
    labels = pd.Series(
        [lab for _ in range(20) for lab in next(iter(dm.train_dataloader())).label.tolist()]
    )
    assert labels.mean() == pytest.approx(0.5, abs=0.1)


def test_stage_needs_its_splits(corpus: Path, tmp_path: Path) -> None:
    file = corpus / "manifest.parquet"
    frame = pd.read_parquet(file)
    write_manifest(frame[frame["split"] != "val"], file)
    with pytest.raises(ManifestError, match="split 'val' is empty"):
        datamodule(corpus, tmp_path).setup("fit")
    datamodule(corpus, tmp_path).setup("test")
