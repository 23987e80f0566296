"""Backbones (timm by name, facenet's InceptionResnetV1); weights only from local files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import timm
import torch
from facenet_pytorch import InceptionResnetV1
from torch import nn


def load_local_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a local file (`weights_only`); never a download."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained weights {path} not found (weights are loaded from local files only)"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state)


class TimmBackbone(nn.Module):
    """Any timm model as a feature extractor (pooled features, no classifier).

    `pretrained_path` is a local state-dict file (e.g. made once with timm on a connected
    machine); loading is strict, so a mismatched architecture is an error, not a silent
    partial load. `model_args`: more keyword arguments of the timm model (e.g. a ResNet's
    `channels` per stage, for a narrower network).
    """

    def __init__(
        self,
        name: str,
        pretrained_path: str | None = None,
        drop_rate: float = 0.0,
        in_chans: int = 3,
        model_args: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not timm.is_model(name):
            raise ValueError(f"unknown timm model {name!r} (see timm.list_models())")
        extra = dict(model_args or {})
        self.net = timm.create_model(
            name, pretrained=False, num_classes=0, drop_rate=drop_rate, in_chans=in_chans, **extra
        )
        # Pooled output width: some models (MobileNetV3) have a conv head after the features.
        self.num_features: int = getattr(self.net, "head_hidden_size", None) or (
            self.net.num_features
        )
        if pretrained_path:
            state = load_local_weights(pretrained_path)
            # A classifier saved with the weights does not belong to a feature extractor.
            head = set(self.net.state_dict()) ^ set(state)
            state = {k: v for k, v in state.items() if k not in head}
            self.net.load_state_dict(state, strict=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FacenetBackbone(nn.Module):
    """facenet-pytorch's InceptionResnetV1, randomly initialised unless given a local file.

    Features are its 512-d bottleneck (`last_linear` + `last_bn`) before its own L2
    normalisation: the pretrained projection and BN are kept, and the embedder's neck sees
    unnormalised, batch-normalised features like any other backbone's. The hub download
    (`pretrained='vggface2'`) is never used; `pretrained_path` is a local state dict in
    facenet's key layout (e.g. its vggface2 file, saved once on a connected machine), loaded
    strictly except for the identity classifier (`logits.*`) such files carry.

    Input: made for 160x160 aligned crops; the smallest size that survives its strided
    convolutions is 75x75 (74 and the repo's 64x64 fail), so use 80, 96, 112 or 160. It does
    not script (`torch.jit.script`); trace it for TorchScript.
    """

    min_input_size: int = 75

    def __init__(self, pretrained_path: str | None = None, dropout_prob: float = 0.6) -> None:
        super().__init__()
        self.net = InceptionResnetV1(pretrained=None, classify=False, dropout_prob=dropout_prob)
        self.num_features: int = self.net.last_bn.num_features
        if pretrained_path:
            state = load_local_weights(pretrained_path)
            state = {k: v for k, v in state.items() if not k.startswith("logits.")}
            self.net.load_state_dict(state, strict=True)
        # facenet's forward ends in F.normalize unless `classify`; route it through its
        # classifier branch with a parameter-free identity to get the bottleneck instead.
        self.net.classify = True
        self.net.logits = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and min(x.shape[-2:]) < self.min_input_size:
            raise ValueError(
                f"InceptionResnetV1 needs inputs of at least {self.min_input_size}x"
                f"{self.min_input_size}, got {tuple(x.shape[-2:])}"
            )
        return self.net(x)
