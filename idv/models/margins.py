"""Margin-based softmax heads (ArcFace, CosFace, their combined form) for face embeddings.

Each head holds one weight vector per training identity and returns cross-entropy logits
s * cos(theta_j) for the other classes and a margin-penalised logit for the true class, so an
embedding must beat its class by an angular (ArcFace) or cosine (CosFace) margin. Only the
embedder is exported: the heads exist for training.

Numerical safety: cosines are computed in float32 with autocast off (at s = 64 a bf16 cosine
is off by ~0.25 logits), and the true-class cosine is clamped to [-1 + eps, 1 - eps] before
any sqrt / acos, so an embedding equal to its class weight (theta = 0) or to its negation
(theta = pi) gets finite gradients. Where the margin would push the angle past pi, where
cos(.) turns back up, the InsightFace "th / mm" fallback (a CosFace-style penalty) keeps the
true-class logit decreasing in theta.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_EPS = 1e-6


def margin_warmup(epoch: int, warmup_epochs: int) -> float:
    """Linear margin warm-up: 0 at epoch 0, 1 from `warmup_epochs` on (1 when it is <= 0).

    ArcFace from scratch often stalls on small data; starting from plain normalised softmax
    and growing the margin lets the embedding organise first.
    """
    if warmup_epochs <= 0:
        return 1.0
    return min(1.0, max(0.0, epoch / warmup_epochs))


class CombinedMargin(nn.Module):
    """InsightFace's combined margin: true-class logit s * (cos(m1 * theta + m2) - m3).

    (m1, m2, m3) = (1, m, 0) is ArcFace, (1, 0, m) is CosFace, (m, 0, 0) SphereFace-like.
    `margin_scale` in [0, 1] interpolates every margin towards none (m1 -> 1, m2 and m3 -> 0)
    for margin warm-up; at 0 the logits are plain normalised-softmax ones, s * cos(theta).
    It is a plain float attribute, not a buffer: it is not in the state dict, so a head saved
    at any stage of the warm-up loads strictly, and the task sets it every epoch (on resume too).
    `easy_margin` applies the margin only where cos(theta) > 0 (an ArcFace variant; its
    true-class logit jumps up at 90 degrees, so it is not monotonic and needs no fallback).
    """

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        scale: float = 64.0,
        m1: float = 1.0,
        m2: float = 0.3,
        m3: float = 0.2,
        easy_margin: bool = False,
    ) -> None:
        super().__init__()
        if embedding_dim < 1 or num_classes < 1:
            raise ValueError(
                f"need embedding_dim, num_classes >= 1, got {embedding_dim}, {num_classes}"
            )
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        if m1 <= 0 or not 0 <= m2 < math.pi or m3 < 0:
            raise ValueError(f"need m1 > 0, 0 <= m2 < pi, m3 >= 0; got {m1}, {m2}, {m3}")
        self.embedding_dim = embedding_dim
        self.num_classes = num_classes
        self.scale = float(scale)
        self.m1, self.m2, self.m3 = float(m1), float(m2), float(m3)
        self.easy_margin = easy_margin
        self.margin_scale = 1.0
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.normal_(self.weight, std=0.01)  # only its direction matters (normalised)

    def set_margin_scale(self, value: float) -> None:
        """Set the warm-up factor in [0, 1] that multiplies the margins."""
        value = float(value)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"margin_scale must be in [0, 1], got {value}")
        self.margin_scale = value

    def effective_margins(self) -> tuple[float, float, float]:
        """(m1, m2, m3) after the warm-up factor: m1 goes to 1, m2 and m3 to 0."""
        k = self.margin_scale
        return 1.0 + k * (self.m1 - 1.0), k * self.m2, k * self.m3

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """cos(theta_j), (batch, num_classes), float32 whatever the autocast state."""
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            x = F.normalize(embeddings.float(), dim=1)
            w = F.normalize(self.weight.float(), dim=1)
            return F.linear(x, w)

    def target_logit(self, cos: torch.Tensor) -> torch.Tensor:
        """The margin-penalised cosine of the true class (before the scale s)."""
        m1, m2, m3 = self.effective_margins()
        c = cos.clamp(-1.0 + _EPS, 1.0 - _EPS)  # sqrt / acos gradients stay finite
        if m1 == 1.0:  # cos(theta + m2) without acos
            sin = torch.sqrt(1.0 - c * c)
            penalised = c * math.cos(m2) - sin * math.sin(m2)
        else:
            penalised = torch.cos(m1 * torch.acos(c) + m2)
        if self.easy_margin:
            penalised = torch.where(c > 0, penalised, c)
        else:
            # Beyond theta_max the angle m1 * theta + m2 passes pi and cos(.) would rise
            # again: there, penalise linearly, by the margin's first-order effect at theta_max
            # (for ArcFace: th = cos(pi - m), mm = m * sin(m), as in InsightFace). The logit
            # steps down there, never up, while pi - theta_max < 2.33 (any practical margin).
            theta_max = (math.pi - m2) / m1
            if theta_max < math.pi:
                th = math.cos(theta_max)
                mm = (math.pi - theta_max) * math.sin(theta_max)
                penalised = torch.where(c > th, penalised, c - mm)
        return penalised - m3

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (batch, num_classes) for cross-entropy; without labels, no margin (s * cos)."""
        cos = self.cosine(embeddings)
        if labels is None or self.effective_margins() == (1.0, 0.0, 0.0):
            return self.scale * cos
        index = labels.long().view(-1, 1)
        target = self.target_logit(cos.gather(1, index))
        return self.scale * cos.scatter(1, index, target)

    def extra_repr(self) -> str:
        return (
            f"embedding_dim={self.embedding_dim}, num_classes={self.num_classes}, "
            f"scale={self.scale}, m1={self.m1}, m2={self.m2}, m3={self.m3}, "
            f"easy_margin={self.easy_margin}, margin_scale={self.margin_scale}"
        )


class ArcFace(CombinedMargin):
    """Additive angular margin (Deng et al. 2019): true-class logit s * cos(theta + m)."""

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        scale: float = 64.0,
        margin: float = 0.5,
        easy_margin: bool = False,
    ) -> None:
        super().__init__(embedding_dim, num_classes, scale, 1.0, margin, 0.0, easy_margin)
        self.margin = float(margin)


class CosFace(CombinedMargin):
    """Additive cosine margin (Wang et al. 2018): true-class logit s * (cos(theta) - m)."""

    def __init__(
        self, embedding_dim: int, num_classes: int, scale: float = 64.0, margin: float = 0.35
    ) -> None:
        super().__init__(embedding_dim, num_classes, scale, 1.0, 0.0, margin)
        self.margin = float(margin)
