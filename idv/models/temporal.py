"""Clip models: a per-frame backbone (the PAD one, any timm name), a temporal module over the
frame features, and heads for the attack logit and the challenge-compliance logit.

With `pixel_motion`, the backbone sees every frame with its difference from the previous one
as three more channels (x_t, x_t - x_(t-1); zero for the first): blinks, a pulse, a face
moving against a still background (live) or a whole sheet moving with its background (print)
are then visible to the first convolution instead of being inferred from pooled features.
Each frame t gives features f_t; the temporal module sees [f_t, |f_t - f_(t-1)|] (motion
without learning it from scratch) and pools the clip into one vector z. The network returns
`attack` (clip is an attack) and `noncompliance`: one "performed challenge
c" logit per challenge, the asked one picked (and negated) by the `challenge` input. With
`performed_output`, those logits are an output too (`performed`, (N, challenges)): trained on
what each clip does whatever was asked (multi-label), they learn to recognise every challenge
instead of "looks like an attack, so nothing was performed", the shortcut a loss on the asked
challenge alone allows. A frame-only baseline is the same network on one frame
(`data.dataset.frames=1`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class MeanPool(nn.Module):
    """Order-free pooling: the mean of the projected frame features."""

    def __init__(self, in_features: int, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU())
        self.out_features = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, T, D) -> (N, H)
        return self.proj(x).mean(dim=1)


class GRUPool(nn.Module):
    """A GRU over the frames; its last hidden state."""

    def __init__(self, in_features: int, hidden: int) -> None:
        super().__init__()
        self.gru = nn.GRU(in_features, hidden, batch_first=True)
        self.out_features = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.gru(x)
        return h[-1]


class TemporalConv(nn.Module):
    """Two 1-D convolutions over time (kernel 3, dilations 1 and 2), then mean and max pooling."""

    def __init__(self, in_features: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(in_features, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, 3, padding=2, dilation=2),
            nn.ReLU(),
        )
        self.out_features = 2 * hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x.transpose(1, 2))  # (N, H, T)
        return torch.cat([y.mean(dim=2), y.amax(dim=2)], dim=1)


TEMPORAL = {"mean": MeanPool, "gru": GRUPool, "tcn": TemporalConv}


class ClipClassifier(nn.Module):
    """Frames (N, T, 3, H, W) and the asked challenge (N,) int64 -> named logits (N, 1).

    `temporal`: `mean`, `gru` or `tcn`; `hidden`: its width; `challenges`: how many prompts
    the compliance head knows (or the task's `challenges` list itself); `pixel_motion` needs
    a backbone of 6 input channels."""

    def __init__(
        self,
        backbone: nn.Module,
        challenges: int | Sequence[str],
        temporal: str = "tcn",
        hidden: int = 64,
        dropout: float = 0.1,
        pixel_motion: bool = True,
        performed_output: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(challenges, int):
            challenges = len(challenges)
        if challenges < 1:
            raise ValueError(f"ClipClassifier needs challenges >= 1, got {challenges}")
        if temporal not in TEMPORAL:
            raise ValueError(f"unknown temporal module {temporal!r}; known: {sorted(TEMPORAL)}")
        self.backbone = backbone
        self.pixel_motion = bool(pixel_motion)
        self.performed_output = bool(performed_output)
        self.temporal = TEMPORAL[temporal](2 * backbone.num_features, hidden)
        width = self.temporal.out_features
        self.dropout = nn.Dropout(dropout)
        self.attack = nn.Linear(width, 1)
        self.performed = nn.Linear(width, int(challenges))

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        n, t = frames.shape[0], frames.shape[1]
        if self.pixel_motion:
            step = torch.cat([torch.zeros_like(frames[:, :1]), frames[:, 1:] - frames[:, :-1]], 1)
            frames = torch.cat([frames, step], dim=2)
        f = self.backbone(frames.flatten(0, 1)).reshape(n, t, -1)
        motion = torch.cat([torch.zeros_like(f[:, :1]), (f[:, 1:] - f[:, :-1]).abs()], dim=1)
        return self.dropout(self.temporal(torch.cat([f, motion], dim=2)))

    def forward(self, frames: torch.Tensor, challenge: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.features(frames)
        every = self.performed(z)
        asked = every.gather(1, challenge.long().reshape(-1, 1))
        out = {"attack": self.attack(z), "noncompliance": -asked}
        if self.performed_output:
            out["performed"] = every
        return out
