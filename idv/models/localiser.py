"""A forgery detector that also says where: a timm encoder, a classification head (P(forged))
and a light FPN decoder for the tamper mask.

The encoder (`timm.create_model(features_only=True)`) sees the image and, with
`residual_input`, its noise residual (the image minus its 3x3 mean: re-compression, pasted
and re-rendered patches leave another residual than the print around them). The decoder
merges the encoder's stages top-down (1x1 laterals, nearest upsampling, a 3x3 smoothing conv)
at stride 4 and upsamples one mask logit per pixel to the input size, so the mask target is
the dataset's mask as it is. The score head reads the deepest stage's pooled features and the
mask's own evidence (the max and mean of its logits): a local edit decides the whole
document. Outputs are logits by name, {"score": (N, 1), "mask": (N, 1, H, W)}, each trained by
its own loss (conf/task/document.yaml `module.outputs`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import nn

from idv.models.fusion import noise_residual


class ForgeryLocaliser(nn.Module):
    def __init__(
        self,
        encoder: str = "resnet10t",
        encoder_args: Mapping[str, Any] | None = None,
        out_indices: Sequence[int] = (1, 2, 3, 4),
        decoder_channels: int = 32,
        dropout: float = 0.1,
        residual_input: bool = True,
        residual_gain: float = 4.0,
    ) -> None:
        super().__init__()
        if not timm.is_model(encoder):
            raise ValueError(f"unknown timm model {encoder!r} (see timm.list_models())")
        self.residual_input = bool(residual_input)
        self.residual_gain = float(residual_gain)
        self.encoder = timm.create_model(
            encoder, pretrained=False, features_only=True, out_indices=tuple(out_indices),
            in_chans=6 if self.residual_input else 3, **dict(encoder_args or {}),
        )  # fmt: skip
        widths = self.encoder.feature_info.channels()
        c = int(decoder_channels)
        self.laterals = nn.ModuleList(nn.Conv2d(w, c, 1) for w in widths)
        self.smooth = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True)
        )
        self.mask_head = nn.Conv2d(c, 1, 1)
        self.dropout = nn.Dropout(dropout)
        self.score_head = nn.Linear(2 * widths[-1] + 2, 1)
        self.register_buffer("box", torch.full((3, 1, 3, 3), 1.0 / 9.0))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = image
        if self.residual_input:
            residual = noise_residual(image.float(), self.box).to(image.dtype)
            x = torch.cat([image, self.residual_gain * residual], dim=1)
        features = self.encoder(x)
        top = self.laterals[-1](features[-1])
        for lateral, feature in zip(
            reversed(self.laterals[:-1]), reversed(features[:-1]), strict=True
        ):
            top = lateral(feature) + F.interpolate(top, size=feature.shape[-2:], mode="nearest")
        mask = self.mask_head(self.smooth(top))
        deepest = features[-1]
        pooled = torch.cat(
            [
                deepest.mean(dim=(2, 3)),
                deepest.amax(dim=(2, 3)),
                mask.amax(dim=(2, 3)),
                mask.mean(dim=(2, 3)),
            ],
            dim=1,
        )
        score = self.score_head(self.dropout(pooled))
        full = F.interpolate(mask, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return {"score": score, "mask": full}
