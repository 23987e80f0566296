"""IDVDataModule: a manifest's splits as Lightning dataloaders, driven by config."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

from idv.data.augment.pipeline import build_transforms
from idv.data.datasets import ImageDataset, collate_images
from idv.data.manifest import SPLITS, Manifest
from idv.data.readers import OnError

log = logging.getLogger(__name__)

# Splits each Lightning stage reads; a run that needs an empty one fails at load time.
STAGE_SPLITS: dict[str | None, tuple[str, ...]] = {
    "fit": ("train", "val"),
    "validate": ("val",),
    "test": ("test",),
    "predict": (),
    None: (),
}


class IDVDataModule(L.LightningDataModule):
    """Loads and validates a manifest, and serves its splits as image dataloaders.

    `augment` is an augment config (train/eval transform lists + normalisation);
    `balanced_sampling` draws training samples with probability inversely proportional to
    their label's frequency (a seeded WeightedRandomSampler) instead of shuffling.
    """

    def __init__(
        self,
        manifest: str,
        augment: Mapping[str, Any],
        labels: Sequence[int],
        species: Sequence[str],
        root: str | None = None,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        balanced_sampling: bool = False,
        on_error: OnError = "fail",
        seed: int = 0,
        check_files: bool = True,
    ) -> None:
        super().__init__()
        self.manifest_file = Path(manifest)
        self.root = root
        self.augment = augment
        self.labels = list(labels)
        self.species = list(species)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.balanced_sampling = balanced_sampling
        self.on_error = on_error
        self.seed = seed
        self.check_files = check_files
        self.manifest: Manifest | None = None
        self.datasets: dict[str, ImageDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        needed = STAGE_SPLITS.get(stage, ())
        if self.manifest is None:
            self.manifest = Manifest.load(
                self.manifest_file,
                root=self.root,
                labels=self.labels,
                required_splits=needed,
                check_files=self.check_files,
            )
        else:  # already validated; only the needs of this stage are new
            for split in needed:
                if self.manifest.split(split).empty:
                    raise ValueError(
                        f"{self.manifest_file}: split {split!r} is empty, but this run needs it"
                    )
        for split in SPLITS:
            if split not in self.datasets:
                self.datasets[split] = self._dataset(split)

    def _dataset(self, split: str) -> ImageDataset:
        assert self.manifest is not None
        stage = "train" if split == "train" else "eval"
        return ImageDataset(
            self.manifest.split(split),
            self.manifest.root,
            build_transforms(self.augment, stage, seed=self.seed),
            self.species,
            on_error=self.on_error,
        )

    def dataloader(self, split: str, *, train: bool = False) -> DataLoader:
        """A loader over any split; `train=True` shuffles (or balances) and drops nothing."""
        if not self.datasets:
            self.setup()
        dataset = self.datasets[split]
        sampler = None
        if train and self.balanced_sampling:
            sampler = self._balanced_sampler(dataset)
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train and sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=collate_images,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def _balanced_sampler(self, dataset: ImageDataset) -> WeightedRandomSampler:
        _, inverse, counts = np.unique(dataset.labels, return_inverse=True, return_counts=True)
        weights = 1.0 / counts[inverse]
        return WeightedRandomSampler(
            torch.as_tensor(weights, dtype=torch.double),
            num_samples=len(dataset),
            replacement=True,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self.dataloader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self.dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.dataloader("test")
