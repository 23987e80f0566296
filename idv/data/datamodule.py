"""IDVDataModule: a manifest's splits as Lightning dataloaders, driven by config."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
import torch.distributed as dist
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Sampler

from idv.data.datasets import (
    IMPLICIT_DATASET,
    DatasetFactory,
    ImageDataset,
    ManifestDataset,
    Target,
    collate,
)
from idv.data.manifest import SPLITS, Manifest, ManifestError
from idv.data.protocols import apply_protocol
from idv.data.readers import OnError
from idv.data.samplers import shuffled

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
    """Loads and validates a manifest, and serves its splits as dataloaders of typed batches.

    `dataset` is the modality's dataset class or a partial of it (`idv.data.datasets`:
    ImageDataset, ClipDataset, ...; `data.dataset` in config), completed here with a split's
    rows, the corpus root, the augment config and stage, the species, seed, error policy and
    target; `sampler` is the training sampler's factory (`idv.data.samplers`: `shuffled`,
    optionally class-balanced, or `identity_balanced` P x K batches for face matching), called
    with the training labels, batch size and seed; every order depends on (seed, epoch) only.
    `augment` is an augment config (train/eval transform lists + normalisation);
    `cache_decoded` decodes each split once, in memory (on small corpora the decode is most of
    the loading cost). `target` is what a sample's label holds: the manifest `label`, or its
    `subject` index (identity classes). Rows with `acquired = False` (no usable face at import)
    never reach a dataset: evaluation counts them as failures to acquire from `split_frame`.
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
        dataset: DatasetFactory = ImageDataset,
        sampler: Callable[..., Sampler] = shuffled,
        on_error: OnError = "fail",
        seed: int = 0,
        check_files: bool = True,
        protocol: Mapping[str, Any] | None = None,
        cache_decoded: bool = False,
        target: Target = "label",
        min_image_side: int = 1,
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
        self.dataset_factory = _target(dataset)
        self.sampler_factory = _target(sampler)
        self.on_error = on_error
        self.seed = seed
        self.check_files = check_files
        self.protocol = protocol
        self.cache_decoded = cache_decoded
        self.target = target
        self.min_image_side = int(min_image_side)
        self.manifest: Manifest | None = None
        self.datasets: dict[str, ManifestDataset] = {}

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

    def split_items(self, split: str) -> pd.DataFrame:
        """The items (one per dataset sample) the split's rows make, failures to acquire
        included: what score tables hold one row each of."""
        factory = self.dataset_factory
        cls = factory.func if isinstance(factory, functools.partial) else factory
        return cls.items_of(self.split_frame(split))

    def dataset(self, split: str) -> ManifestDataset:
        """The split's dataset, built (and decoded, if caching) on first use."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        if split not in self.datasets:
            self.datasets[split] = self._dataset(split)
        return self.datasets[split]

    def _dataset(self, split: str) -> ManifestDataset:
        frame = self.split_frame(split)
        if "acquired" in frame.columns:
            frame = frame[frame["acquired"].astype(bool)].reset_index(drop=True)
        dataset = self.dataset_factory(
            frame,
            self.manifest.root,
            self.augment,
            "train" if split == "train" else "eval",
            self.species,
            seed=self.seed,
            on_error=self.on_error,
            target=self.target,
            min_side=self.min_image_side,
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
        if train:
            sampler = self.sampler_factory(dataset.labels, self.batch_size, self.seed)
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
            # A modality whose items are already batches (a graph) brings its own collate.
            collate_fn=getattr(dataset, "collate", collate),
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


def _target(factory: Any) -> Any:
    """A `_target_` node left unresolved by `_recursive_: false` is instantiated here."""
    if isinstance(factory, Mapping) and "_target_" in factory:
        from hydra.utils import instantiate

        return instantiate(dict(factory), _convert_="all")
    return factory


def datamodule_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """A run config's `data` node for `IDVDataModule` (Hydra `_target_` node), written by any
    version of idv-train: checkpoints from before datasets and samplers became config targets
    (`balanced_sampling`, `identities_per_batch`, an implicit ImageDataset) are read as the
    equivalent `dataset` / `sampler` nodes."""
    data = dict(data)
    balanced = bool(data.pop("balanced_sampling", False))
    identities = data.pop("identities_per_batch", None)  # P; the sampler now takes K
    data.setdefault("dataset", dict(IMPLICIT_DATASET))
    if "sampler" not in data:
        data["sampler"] = (
            {"_target_": "idv.data.samplers.identity_balanced", "_partial_": True,
             "per_identity": int(data["batch_size"]) // int(identities)}
            if identities
            else {"_target_": "idv.data.samplers.shuffled", "_partial_": True, "balanced": balanced}
        )  # fmt: skip
    return data
