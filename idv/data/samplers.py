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


class IdentityBalancedSampler(Sampler[SampleKey]):
    """P identities x K samples per batch, for metric and margin losses on identities.

    Yields keys in batch order, so the loader's `batch_size` must be `identities * per_identity`.
    Each epoch (seeded by (seed, epoch)) visits the identities in a new order, P at a time, and
    draws K samples of each (without replacement where the identity has K, with otherwise); an
    epoch has about as many samples as the dataset.
    """

    def __init__(self, labels: np.ndarray, identities: int, per_identity: int, seed: int) -> None:
        if identities < 1 or per_identity < 1:
            raise ValueError(
                f"need identities >= 1 and per_identity >= 1, got {identities}, {per_identity}"
            )
        codes, inverse = np.unique(np.asarray(labels), return_inverse=True)
        if len(codes) < identities:
            raise ValueError(
                f"{identities} identities per batch, but the split has only {len(codes)}"
            )
        self.members = [np.flatnonzero(inverse == c) for c in range(len(codes))]
        self.p, self.k, self.seed, self.epoch = identities, per_identity, seed, 0
        self.batches = max(1, len(inverse) // (identities * per_identity))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches * self.p * self.k

    def __iter__(self) -> Iterator[SampleKey]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order: list[int] = []
        queue = np.empty(0, dtype=np.int64)  # identities not yet visited in this pass
        for _ in range(self.batches):
            if len(queue) < self.p:  # a new pass (the few left over wait for the next one)
                queue = rng.permutation(len(self.members))
            chosen, queue = queue[: self.p], queue[self.p :]
            for c in chosen:
                members = self.members[c]
                order += rng.choice(members, self.k, replace=len(members) < self.k).tolist()
        seeds = rng.integers(0, 2**31 - 1, size=len(order))
        return iter(zip(order, seeds.tolist(), strict=True))


# Training samplers as config (`data.sampler`): partials completed by the datamodule with the
# training split's labels, the batch size and the seed.


def shuffled(
    labels: np.ndarray, batch_size: int, seed: int, balanced: bool = False
) -> EpochSeededSampler:
    """A shuffled pass per epoch; `balanced`: class-balanced draws with replacement."""
    return EpochSeededSampler(len(labels), seed, balanced_weights(labels) if balanced else None)


def identity_balanced(
    labels: np.ndarray, batch_size: int, seed: int, per_identity: int
) -> IdentityBalancedSampler:
    """P x K batches for face matching: K = `per_identity` samples of each of P = batch_size / K
    identities. K is what the metric-learning batch needs (positives per identity); P follows
    the batch size, so any batch size that K divides works (debug=fast's 8 as the default 64)."""
    if per_identity < 1 or batch_size % per_identity:
        raise ValueError(
            f"batch_size {batch_size} is not a multiple of per_identity {per_identity} "
            "(P x K batches: K samples of each of P identities)"
        )
    return IdentityBalancedSampler(labels, batch_size // per_identity, per_identity, seed)
