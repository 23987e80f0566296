"""A forgery detector that also says where: a timm encoder, a classification head (P(forged))
and a light FPN decoder for the tamper mask, with a full-resolution detail branch.

Document forgeries live at two scales. A substituted portrait, a recapture or a pasted block
show in the layout (the encoder: timm `features_only`, fed the image downscaled by
`encoder_scale`, so its cost is that of the small image); a re-rendered field, a reprinted MRZ
character or a locally re-compressed patch show only in the fine print (the detail branch: a
few strided convolutions over the full-resolution noise residual, the image minus its 3x3
mean, joined to the decoder at the encoder's first stage). The decoder merges the stages
top-down (1x1 laterals, nearest upsampling, a 3x3 smoothing conv) and upsamples one mask
logit per pixel at `mask_stride` (a quarter of the input's side by default). The
score head reads the deepest stage's pooled features, the detail branch's strongest
responses and the mask's own evidence (max and mean of its logits): a local edit decides the
whole document. Outputs are logits by name, {"score": (N, 1), "mask": (N, 1, H, W)}, each
trained by its own loss (conf/task/document.yaml `module.outputs`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import nn

from idv.models.fusion import noise_residual


def _detail_branch(widths: Sequence[int]) -> nn.Sequential:
    """Full-resolution residual -> stride 4 (a 4x4 patch embedding: cheap at full size) ->
    stride 2 more per further width."""
    layers: list[nn.Module] = []
    previous = 3
    for i, width in enumerate(widths):
        conv = (nn.Conv2d(previous, width, 4, stride=4, bias=False) if i == 0
                else nn.Conv2d(previous, width, 3, stride=2, padding=1, bias=False))  # fmt: skip
        layers += [conv, nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        previous = width
    return nn.Sequential(*layers)


class ForgeryLocaliser(nn.Module):
    def __init__(
        self,
        encoder: str = "resnet10t",
        encoder_args: Mapping[str, Any] | None = None,
        out_indices: Sequence[int] = (1, 2, 3, 4),
        encoder_scale: int = 2,
        detail_channels: Sequence[int] = (16, 32),
        decoder_channels: int = 32,
        dropout: float = 0.1,
        residual_input: bool = True,
        residual_gain: float = 4.0,
        mask_stride: int = 4,
    ) -> None:
        super().__init__()
        self.mask_stride = int(mask_stride)
        if not timm.is_model(encoder):
            raise ValueError(f"unknown timm model {encoder!r} (see timm.list_models())")
        self.residual_input = bool(residual_input)
        self.residual_gain = float(residual_gain)
        self.encoder_scale = int(encoder_scale)
        self.encoder = timm.create_model(
            encoder, pretrained=False, features_only=True, out_indices=tuple(out_indices),
            in_chans=6 if self.residual_input else 3, **dict(encoder_args or {}),
        )  # fmt: skip
        widths = self.encoder.feature_info.channels()
        c = int(decoder_channels)
        self.laterals = nn.ModuleList(nn.Conv2d(w, c, 1) for w in widths)
        detail = [int(w) for w in detail_channels]
        self.detail = _detail_branch(detail) if detail else None
        self.detail_lateral = nn.Conv2d(detail[-1], c, 1) if detail else None
        self.smooth = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True)
        )
        self.mask_head = nn.Conv2d(c, 1, 1)
        self.dropout = nn.Dropout(dropout)
        extra = 2 * detail[-1] if detail else 0
        self.score_head = nn.Linear(2 * widths[-1] + extra + 2, 1)
        self.register_buffer("box", torch.full((3, 1, 3, 3), 1.0 / 9.0))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        residual = noise_residual(image.float(), self.box).to(image.dtype)
        small = image
        if self.encoder_scale > 1:
            small = F.avg_pool2d(image, self.encoder_scale)
        x = small
        if self.residual_input:
            small_residual = residual
            if self.encoder_scale > 1:
                small_residual = F.avg_pool2d(residual, self.encoder_scale)
            x = torch.cat([small, self.residual_gain * small_residual], dim=1)
        features = self.encoder(x)
        top = self.laterals[-1](features[-1])
        for i in range(len(features) - 2, -1, -1):
            top = self.laterals[i](features[i]) + F.interpolate(
                top, size=features[i].shape[-2:], mode="nearest"
            )
        pooled = [features[-1].mean(dim=(2, 3)), features[-1].amax(dim=(2, 3))]
        if self.detail is not None and self.detail_lateral is not None:
            fine = self.detail(self.residual_gain * residual)
            fine = F.interpolate(fine, size=top.shape[-2:], mode="nearest")
            top = top + self.detail_lateral(fine)
            pooled += [fine.mean(dim=(2, 3)), fine.amax(dim=(2, 3))]
        mask = self.mask_head(self.smooth(top))
        pooled += [mask.amax(dim=(2, 3)), mask.mean(dim=(2, 3))]
        score = self.score_head(self.dropout(torch.cat(pooled, dim=1)))
        # The map at a quarter of the input's side: the task compares it with its mask target
        # at that size in training and at the target's own size in evaluation.
        size = (image.shape[-2] // self.mask_stride, image.shape[-1] // self.mask_stride)
        out = F.interpolate(mask, size=size, mode="bilinear", align_corners=False)
        return {"score": score, "mask": out}
