"""A timm backbone by name; weights only from a local file, never from a hub."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn


class TimmBackbone(nn.Module):
    """Any timm model as a feature extractor (pooled features, no classifier).

    `pretrained_path` is a local state-dict file (e.g. made once with timm on a connected
    machine); loading is strict, so a mismatched architecture is an error, not a silent
    partial load.
    """

    def __init__(
        self,
        name: str,
        pretrained_path: str | None = None,
        drop_rate: float = 0.0,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        if not timm.is_model(name):
            raise ValueError(f"unknown timm model {name!r} (see timm.list_models())")
        self.net = timm.create_model(
            name, pretrained=False, num_classes=0, drop_rate=drop_rate, in_chans=in_chans
        )
        # Pooled output width: some models (MobileNetV3) have a conv head after the features.
        self.num_features: int = getattr(self.net, "head_hidden_size", None) or (
            self.net.num_features
        )
        if pretrained_path:
            path = Path(pretrained_path)
            if not path.is_file():
                raise FileNotFoundError(
                    f"pretrained weights {path} not found (weights are "
                    "loaded from local files only)"
                )
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state)
            # A classifier saved with the weights does not belong to a feature extractor.
            head = set(self.net.state_dict()) ^ set(state)
            state = {k: v for k, v in state.items() if k not in head}
            self.net.load_state_dict(state, strict=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
