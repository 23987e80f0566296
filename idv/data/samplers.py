"""Samplers whose order depends only on (seed, epoch), so a resumed run sees the same batches.

They yield `(index, sample_seed)` keys: the dataset reseeds its augmentations from the key,
which makes every sample's augmentation a function of (seed, epoch, position), whatever the
number of workers and whether or not the run was interrupted. Lightning calls `set_epoch`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

SampleKey = tuple[int, int]


class EpochSeededSampler(Sampler[SampleKey]):
    """A shuffled pass over `size` samples, or, given `weights`, `size` weighted draws with
    replacement (class-balanced sampling); re-drawn per epoch from (seed, epoch)."""

    def __init__(self, size: int, seed: int, weights: np.ndarray | None = None) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0
        self.p = None if weights is None else np.asarray(weights, np.float64) / np.sum(weights)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[SampleKey]:
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.p is None:
            order = rng.permutation(self.size)
        else:
            order = rng.choice(self.size, size=self.size, replace=True, p=self.p)
        seeds = rng.integers(0, 2**31 - 1, size=self.size)
        return iter(zip(order.tolist(), seeds.tolist(), strict=True))


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Per-sample weights inversely proportional to the frequency of the sample's label."""
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]
