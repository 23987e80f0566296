"""Build albumentations pipelines from `conf/augment/*.yaml`.

An augment config holds `train` and `eval` lists of `_target_` transforms (any albumentations
transform or one of our attack simulators) plus the `normalize` statistics; every pipeline ends
in the same Normalize + ToTensorV2 so train, eval and serving share one definition of the input.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import albumentations as A
import numpy as np
from albumentations.pytorch import ToTensorV2
from hydra.utils import instantiate

import idv  # noqa: F401  (offline switches before albumentations' update check)

Stage = Literal["train", "eval"]


def build_transforms(
    augment: Mapping[str, Any], stage: Stage, seed: int | None = None
) -> A.Compose:
    """Compose the `stage` list of an augment config, then normalise and convert to tensor."""
    if stage not in ("train", "eval"):
        raise ValueError(f"stage must be 'train' or 'eval', got {stage!r}")
    for key in (stage, "normalize"):
        if key not in augment:
            raise KeyError(f"augment config has no {key!r} key (keys: {sorted(augment)})")
    steps: Sequence[Any] = augment[stage] or []
    transforms = [instantiate(step, _convert_="all") for step in steps]
    norm = augment["normalize"]
    transforms += [
        A.Normalize(mean=tuple(norm["mean"]), std=tuple(norm["std"]), max_pixel_value=255.0),
        ToTensorV2(),
    ]
    return A.Compose(transforms, seed=seed)


def reseed(pipeline: A.BaseCompose, seed: int) -> None:
    """Give every transform of `pipeline` its own generator derived from `seed`.

    albumentations' `set_random_seed` hands one seed to all children, which would make their
    draws identical (a flip whenever there is a rotation); spawning keeps them independent.
    """
    children = np.random.SeedSequence(seed).spawn(len(pipeline.transforms) + 1)
    pipeline.random_generator = np.random.default_rng(children[-1])
    pipeline.py_random = random.Random(int(children[-1].generate_state(1)[0]))
    for transform, child in zip(pipeline.transforms, children, strict=False):
        child_seed = int(child.generate_state(1)[0])
        if isinstance(transform, A.BaseCompose):
            reseed(transform, child_seed)
        else:
            transform.set_random_seed(child_seed)
