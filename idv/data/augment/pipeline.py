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
    augment: Mapping[str, Any],
    stage: Stage,
    seed: int | None = None,
    additional_targets: Mapping[str, str] | None = None,
) -> A.Compose:
    """Compose the `stage` list of an augment config, then normalise and convert to tensor.
    `additional_targets` (albumentations': e.g. {"image1": "image"} for the frames of a clip)
    go through the same random parameters as the image; a `mask` target always does."""
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
    return A.Compose(transforms, seed=seed, additional_targets=dict(additional_targets or {}))


def reseed(pipeline: A.BaseCompose, seed: int) -> None:
    """Make the next call of `pipeline` a function of `seed` alone.

    Every transform gets the same two fresh generators, so their draws are successive (hence
    independent) values of one seeded stream. albumentations' own `set_random_seed` would give
    each transform an identical stream instead (a flip whenever there is a rotation), and a
    generator per transform costs as much as the augmentation itself.
    """
    numpy_rng, python_rng = np.random.default_rng(seed), random.Random(seed)
    stack: list[object] = [pipeline]
    while stack:
        node = stack.pop()
        node.random_generator = numpy_rng
        node.py_random = python_rng
        stack.extend(getattr(node, "transforms", []))
