"""Inference wrappers: what gets exported, one per task kind.

A wrapper is a plain nn.Module around the trained network with the input convention of
serving built in: tensors in, scores (detection) or unit-norm embeddings (matching) out,
normalisation inside. No metrics, trainer or
Lightning: it scripts and traces as the network does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

MAX_PIXEL_VALUE = 255.0


class _ServingInput(nn.Module):
    """The input convention every wrapper shares: `net` behind albumentations' Normalize of
    raw 0-255 RGB, done inside the exported model."""

    def __init__(
        self,
        net: nn.Module,
        mean: Sequence[float],
        std: Sequence[float],
        max_pixel_value: float = MAX_PIXEL_VALUE,
    ) -> None:
        super().__init__()
        self.net = net.eval()
        offset, scale = _normalisation(mean, std, max_pixel_value)
        self.register_buffer("offset", offset)
        self.register_buffer("scale", scale)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        return (images.to(torch.float32) - self.offset) * self.scale


class DetectionScorer(_ServingInput):
    """P(attack) of a batch of RGB images (detection tasks: pad, liveness, deepfake, ...).

    Input: float32 (N, 3, H, W), RGB, raw pixel values in [0, 255] (uint8 images converted to
    float by the caller; the TorchScript model also accepts uint8 and converts inside, the ONNX
    model takes float32 only), resized to the training input size. Normalisation is done here,
    with the statistics of the checkpoint's augment config, exactly as albumentations'
    Normalize(mean, std, max_pixel_value=255): (x - mean * 255) / (std * 255).
    Output: float32 (N,) scores = sigmoid(logit), higher = more likely attack.
    """

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.net(self.normalise(images))
        return torch.sigmoid(logits.reshape(logits.shape[0], -1)[:, 0].to(torch.float32))


class EmbeddingScorer(_ServingInput):
    """Unit-norm embeddings of a batch of aligned face crops (matching tasks: face_match).

    Input: as DetectionScorer's (float32 (N, 3, H, W), RGB, raw pixel values in [0, 255],
    resized to the training input size; the TorchScript model also accepts uint8), here face
    crops aligned onto the 5-point ArcFace template (`idv.data.align.align_face`).
    Normalisation is done inside, with the checkpoint's augment statistics.
    Output: float32 (N, D) L2-normalised embeddings; the similarity of two faces is the dot
    product of their embeddings (cosine). The network (FaceEmbedder) already normalises; the
    wrapper normalises again in float32 so that any embedder keeps the unit-norm contract
    (idempotent up to float rounding).
    """

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        embeddings = self.net(self.normalise(images))
        return F.normalize(embeddings.reshape(embeddings.shape[0], -1).to(torch.float32), dim=1)


def _normalisation(
    mean: Sequence[float], std: Sequence[float], max_pixel_value: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(offset, scale) buffers (1, 3, 1, 1): x_norm = (x - offset) * scale, as albumentations
    (computed in float64, then rounded once, as albumentations builds its lookup table)."""
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"mean and std need 3 values (RGB), got {list(mean)}, {list(std)}")
    mean64 = torch.tensor([float(m) for m in mean], dtype=torch.float64) * max_pixel_value
    std64 = torch.tensor([float(s) for s in std], dtype=torch.float64) * max_pixel_value
    return mean64.to(torch.float32).view(1, 3, 1, 1), (1.0 / std64).to(torch.float32).view(
        1, 3, 1, 1
    )


def detection_wrapper(net: nn.Module, run_config: Mapping[str, Any]) -> DetectionScorer:
    norm = augment_of(run_config)["normalize"]
    return DetectionScorer(net, norm["mean"], norm["std"])


def matching_wrapper(net: nn.Module, run_config: Mapping[str, Any]) -> EmbeddingScorer:
    norm = augment_of(run_config)["normalize"]
    return EmbeddingScorer(net, norm["mean"], norm["std"])


# Task kind (conf/task/*.yaml `kind`) -> builder of its wrapper from (net, run config).
WRAPPERS: dict[str, Callable[[nn.Module, Mapping[str, Any]], nn.Module]] = {
    "detection": detection_wrapper,
    "matching": matching_wrapper,
}


def augment_of(run_config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The augment config the model was trained with (the one idv-evaluate uses too)."""
    augment = run_config.get("augment") or (run_config.get("data") or {}).get("augment")
    if not augment or "normalize" not in augment:
        raise ValueError("the run config carries no augment config with `normalize` statistics")
    return augment


def task_kind(run_config: Mapping[str, Any]) -> str:
    return (run_config.get("task") or {}).get("kind", "detection")


def build_wrapper(net: nn.Module, run_config: Mapping[str, Any]) -> nn.Module:
    """The inference wrapper of the run's task kind, in eval mode."""
    kind = task_kind(run_config)
    if kind not in WRAPPERS:
        raise NotImplementedError(
            f"no inference wrapper for task kind {kind!r} yet (have: {sorted(WRAPPERS)})"
        )
    return WRAPPERS[kind](net, run_config).eval()
