"""IDVDataModule: a manifest's splits as Lightning dataloaders, driven by config."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
import torch.distributed as dist
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader

from idv.data.augment.pipeline import build_transforms
from idv.data.datasets import ImageDataset, Target, collate_images
from idv.data.manifest import SPLITS, Manifest, ManifestError
from idv.data.protocols import apply_protocol
from idv.data.readers import OnError
from idv.data.samplers import EpochSeededSampler, IdentityBalancedSampler, balanced_weights

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
    `cache_decoded` decodes each split's images once, in memory (on small corpora the decode
    is most of the loading cost); `balanced_sampling` draws training samples with probability
    inversely proportional to their label's frequency instead of shuffling;
    `identities_per_batch` (P) makes every training batch P identities x batch_size / P
    samples (face matching); all orders depend on (seed, epoch) only. `target` is what a
    sample's label holds: the manifest `label`, or its `subject` index (identity classes).
    Rows with `acquired = False` (no usable face at import) never reach a dataset: evaluation
    counts them as failures to acquire from `split_frame`.
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
        protocol: Mapping[str, Any] | None = None,
        cache_decoded: bool = False,
        target: Target = "label",
        identities_per_batch: int | None = None,
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
        self.protocol = protocol
        self.cache_decoded = cache_decoded
        self.target = target
        self.identities_per_batch = identities_per_batch
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
        for split in needed:  # a protocol can empty a split that the manifest has
            if self.split_frame(split).empty:
                raise ManifestError(
                    f"{self.manifest_file}: split {split!r} is empty under protocol "
                    f"{(self.protocol or {}).get('name', 'default')!r}, but this run needs it"
                )

    def split_frame(self, split: str) -> pd.DataFrame:
        """Manifest rows of `split` after the protocol (e.g. an unseen attack removed)."""
        assert self.manifest is not None, "call setup() first"
        return apply_protocol(self.manifest.split(split), self.protocol)

    def dataset(self, split: str) -> ImageDataset:
        """The split's dataset, built (and decoded, if caching) on first use."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        if split not in self.datasets:
            self.datasets[split] = self._dataset(split)
        return self.datasets[split]

    def _dataset(self, split: str) -> ImageDataset:
        stage = "train" if split == "train" else "eval"
        frame = self.split_frame(split)
        if "acquired" in frame.columns:
            frame = frame[frame["acquired"].astype(bool)].reset_index(drop=True)
        dataset = ImageDataset(
            frame,
            self.manifest.root,
            build_transforms(self.augment, stage, seed=self.seed),
            self.species,
            on_error=self.on_error,
            target=self.target,
        )
        if self.cache_decoded:
            dataset.cache_decoded()
        return dataset

    def dataloader(self, split: str, *, train: bool = False) -> DataLoader:
        """A loader over any split; `train=True` shuffles (or balances) and drops nothing."""
        if self.manifest is None:
            self.setup()
        dataset = self.dataset(split)
        sampler = None
        if train and self.identities_per_batch:
            if self.batch_size % self.identities_per_batch:
                raise ValueError(
                    f"batch_size {self.batch_size} is not a multiple of identities_per_batch "
                    f"{self.identities_per_batch} (P x K batches)"
                )
            sampler = IdentityBalancedSampler(
                dataset.labels,
                self.identities_per_batch,
                self.batch_size // self.identities_per_batch,
                self.seed,
            )
        elif train:
            weights = balanced_weights(dataset.labels) if self.balanced_sampling else None
            sampler = EpochSeededSampler(len(dataset), self.seed, weights)
        elif dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            # Each sample exactly once across processes: Lightning's default sampler would pad
            # with repeats, and repeated scores would bias the operating-point metrics.
            sampler = UnrepeatedDistributedSampler(dataset, shuffle=False)
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=collate_images,
            # Its own generator, so creating an iterator never draws from torch's global RNG
            # (which would shift dropout masks between an uninterrupted and a resumed run).
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self.dataloader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self.dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.dataloader("test")
