"""Modality-based datasets (not task-based): a task picks one in config."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, default_collate

from idv.data.augment.pipeline import reseed
from idv.data.readers import ImageReadError, OnError, read_image
from idv.data.samplers import SampleKey

log = logging.getLogger(__name__)

Transform = Callable[..., dict]
Target = Literal["label", "subject"]


class ImageSample(NamedTuple):
    """One image sample; default_collate turns a list of these into a batched ImageSample."""

    image: torch.Tensor
    label: int
    species: int
    sample_id: str


class ImageDataset(Dataset):
    """Images of a manifest split, with label and attack species index.

    `species` lists the task's attack types in index order (index 0 is usually `bona_fide`);
    `transform` is an albumentations pipeline ending in ToTensorV2. `target="subject"` makes
    the label the index of the sample's subject in the split's sorted subject ids (identity
    classes, for face matching) instead of the manifest's `label`. With `on_error="skip"`
    an unreadable image is logged by name and dropped by `collate_skipping`; the default
    `"fail"` raises ImageReadError naming the file.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        root: str | Path,
        transform: Transform,
        species: Sequence[str],
        on_error: OnError = "fail",
        target: Target = "label",
    ) -> None:
        if on_error not in ("fail", "skip"):
            raise ValueError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
        if target not in ("label", "subject"):
            raise ValueError(f"target must be 'label' or 'subject', got {target!r}")
        unknown = sorted(set(frame["attack_type"]) - set(species))
        if unknown:
            raise ValueError(
                f"attack types {unknown} are not in the task's species {list(species)}"
            )
        self.root = Path(root)
        self.transform = transform
        self.on_error = on_error
        self.paths = frame["path"].astype(str).tolist()
        self.sample_ids = frame["sample_id"].astype(str).tolist()
        if target == "subject":
            self.labels = pd.factorize(frame["subject_id"].astype(str), sort=True)[0]
        else:
            self.labels = frame["label"].to_numpy(dtype=np.int64)
        index = {name: i for i, name in enumerate(species)}
        self.species = frame["attack_type"].map(index).to_numpy(dtype=np.int64)
        self.decoded: list[np.ndarray | None] | None = None

    def cache_decoded(self) -> None:
        """Decode every image once, up front (before workers fork, so they share the memory).

        Decoding JPEGs is most of the loading cost on a small corpus; augmentation still runs
        per sample. Unreadable images follow `on_error` here already.
        """
        self.decoded = [self._read(i) for i in range(len(self))]

    def _read(self, i: int) -> np.ndarray | None:
        try:
            return read_image(self.root / self.paths[i])
        except ImageReadError as err:
            if self.on_error == "fail":
                raise
            log.warning("skipping unreadable sample %s: %s", self.sample_ids[i], err)
            return None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int | SampleKey) -> ImageSample | None:
        """`key` is an index, or `(index, seed)` from an EpochSeededSampler: the augmentation
        of the sample is then reseeded from it (reproducible across resumes and workers)."""
        if isinstance(key, tuple):
            i, seed = key
            reseed(self.transform, seed)
        else:
            i = key
        image = self.decoded[i] if self.decoded is not None else self._read(i)
        if image is None:
            return None
        tensor = self.transform(image=image)["image"]
        return ImageSample(tensor, int(self.labels[i]), int(self.species[i]), self.sample_ids[i])


class ImageBatch(NamedTuple):
    """A collated batch; `n_skipped` counts unreadable samples dropped from it (skip mode)."""

    image: torch.Tensor
    label: torch.Tensor
    species: torch.Tensor
    sample_id: list[str]
    n_skipped: int


def collate_images(samples: list[ImageSample | None]) -> ImageBatch:
    """Collate image samples, dropping those a `skip`-mode dataset returned as None.

    The count travels with the batch so the task can log the run's total of skipped samples.
    """
    kept = [s for s in samples if s is not None]
    if not kept:
        raise ImageReadError("every image of a batch was unreadable; see the warnings above")
    image, label, species, sample_id = default_collate(kept)
    return ImageBatch(image, label, species, list(sample_id), len(samples) - len(kept))
