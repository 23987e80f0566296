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

A pulse of 0.8-2.5 Hz needs the full frame rate (8 fps stores 2 s of clip; every second frame
is 4 fps, whose Nyquist limit of 2 Hz aliases most heart rates), but a backbone on every frame
doubles the cost. With `backbone_stride` s the backbone sees every s-th frame (a random phase
in training, the first in evaluation) while `pulse` (`PulseSpectrum`) reads the skin colour of
every frame: a spectrum costs a mean over pixels, not a convolution.
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


class PulseSpectrum(nn.Module):
    """Log power spectrum of learned chrominance traces of the skin box, over every frame.

    The mean colour of `box` (top, bottom, left, right as fractions of the frame) per frame is
    projected on `projections` learned colour axes (CHROM and POS are two fixed such axes,
    chosen to cancel the intensity change common to all channels), detrended by its clip mean,
    and its power read at 1..`cycles` cycles per clip (a DFT at fixed relative frequencies: the
    same features for any clip length, evenly spaced frames assumed). Log power turns a
    brightness gain into a shift common to all bins, so in-band vs out-of-band (the SNR the
    hand-crafted baseline uses) is a difference the MLP can learn. `eps`, added to the power,
    sits near the camera-noise floor of a skin-box mean (~1e-4 in normalised units): it bounds
    the log's gradient on a still clip (1e-6 let the projection's steps blow up and stall
    debug=overfit at some seeds)."""

    def __init__(
        self, projections: int, cycles: int, hidden: int, box: Sequence[float], eps: float = 1e-4
    ) -> None:
        super().__init__()
        if projections < 1 or cycles < 1:
            raise ValueError(
                f"PulseSpectrum needs projections and cycles >= 1, got {projections} and {cycles}"
            )
        top, bottom, left, right = (float(v) for v in box)
        if not (0 <= top < bottom <= 1 and 0 <= left < right <= 1):
            raise ValueError(
                f"PulseSpectrum box must be fractions top < bottom, left < right, got {box}"
            )
        self.box = (top, bottom, left, right)
        self.cycles = int(cycles)
        self.eps = float(eps)
        self.project = nn.Linear(3, projections, bias=False)
        self.mlp = nn.Sequential(
            nn.BatchNorm1d(projections * cycles), nn.Linear(projections * cycles, hidden), nn.ReLU()
        )
        self.out_features = hidden

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # (N, T, C, H, W) -> (N, hidden)
        return self.mlp(self.spectrum(frames).flatten(1))

    def spectrum(self, frames: torch.Tensor) -> torch.Tensor:  # (N, T, C, H, W) -> (N, P, K)
        h, w = frames.shape[-2], frames.shape[-1]
        top, bottom = int(round(self.box[0] * h)), int(round(self.box[1] * h))
        left, right = int(round(self.box[2] * w)), int(round(self.box[3] * w))
        skin = frames[:, :, :3, top:bottom, left:right]
        # Detrend each pixel before averaging: the pulse is a ~1% change of a mean that float32
        # resolves to ~1e-6, so a difference of means loses what a mean of differences keeps
        # (and ONNX Runtime, summing in another order, would disagree by more than parity allows).
        trace = (skin - skin.mean(dim=1, keepdim=True)).mean(dim=(3, 4))  # (N, T, 3)
        x = self.project(trace)  # no bias: still zero-mean over time, (N, T, P)
        t = torch.arange(x.shape[1], dtype=x.dtype, device=x.device) / x.shape[1]
        k = torch.arange(1, self.cycles + 1, dtype=x.dtype, device=x.device)
        angle = 2.0 * torch.pi * k[:, None] * t[None, :]  # (K, T)
        re = torch.einsum("kt,ntp->npk", torch.cos(angle), x)
        im = torch.einsum("kt,ntp->npk", torch.sin(angle), x)
        return torch.log(re * re + im * im + self.eps)


class ClipClassifier(nn.Module):
    """Frames (N, T, 3, H, W) and the asked challenge (N,) int64 -> named logits (N, 1).

    `temporal`: `mean`, `gru` or `tcn`; `hidden`: its width; `challenges`: how many prompts
    the compliance head knows (or the task's `challenges` list itself); `pixel_motion` needs
    a backbone of 6 input channels; `backbone_stride` and `pulse` (a mapping of
    `PulseSpectrum`'s arguments, or None) as in the module docstring."""

    def __init__(
        self,
        backbone: nn.Module,
        challenges: int | Sequence[str],
        temporal: str = "tcn",
        hidden: int = 64,
        dropout: float = 0.1,
        pixel_motion: bool = True,
        performed_output: bool = False,
        backbone_stride: int = 1,
        pulse: dict | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(challenges, int):
            challenges = len(challenges)
        if challenges < 1:
            raise ValueError(f"ClipClassifier needs challenges >= 1, got {challenges}")
        if temporal not in TEMPORAL:
            raise ValueError(f"unknown temporal module {temporal!r}; known: {sorted(TEMPORAL)}")
        if backbone_stride < 1:
            raise ValueError(f"ClipClassifier needs backbone_stride >= 1, got {backbone_stride}")
        self.backbone = backbone
        self.backbone_stride = int(backbone_stride)
        self.pixel_motion = bool(pixel_motion)
        self.performed_output = bool(performed_output)
        self.temporal = TEMPORAL[temporal](2 * backbone.num_features, hidden)
        self.pulse = PulseSpectrum(**pulse) if pulse else None
        width = self.temporal.out_features + (self.pulse.out_features if self.pulse else 0)
        self.dropout = nn.Dropout(dropout)
        self.attack = nn.Linear(width, 1)
        self.performed = nn.Linear(width, int(challenges))

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        every = frames
        if self.backbone_stride > 1:
            phase = 0
            if self.training:
                phase = int(torch.randint(0, min(self.backbone_stride, frames.shape[1]), ()))
            frames = frames[:, phase :: self.backbone_stride]
        n, t = frames.shape[0], frames.shape[1]
        if self.pixel_motion:
            step = torch.cat([torch.zeros_like(frames[:, :1]), frames[:, 1:] - frames[:, :-1]], 1)
            frames = torch.cat([frames, step], dim=2)
        f = self.backbone(frames.flatten(0, 1)).reshape(n, t, -1)
        motion = torch.cat([torch.zeros_like(f[:, :1]), (f[:, 1:] - f[:, :-1]).abs()], dim=1)
        z = self.temporal(torch.cat([f, motion], dim=2))
        if self.pulse is not None:
            z = torch.cat([z, self.pulse(every)], dim=1)
        return self.dropout(z)

    def forward(self, frames: torch.Tensor, challenge: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.features(frames)
        every = self.performed(z)
        asked = every.gather(1, challenge.long().reshape(-1, 1))
        out = {"attack": self.attack(z), "noncompliance": -asked}
        if self.performed_output:
            out["performed"] = every
        return out
