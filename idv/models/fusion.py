"""An image branch fused with a capture-metadata MLP (deepfake and camera-injection detection).

Face manipulations show in the pixels (a blend boundary, colour and frequency mismatch);
injected captures often do not (a genuine recording replayed into a virtual camera), but their
session metadata does (a software frame clock, exact repeats, a virtual device string), and
their noise residual may (a render never saw a sensor). So the network reads both:

- the image branch: a timm backbone's pooled features (`idv.models.backbones`); with
  `residual_input` it sees the noise residual (the image minus its 3x3 mean, x `residual_gain`)
  as three more channels, the first convolution then reads seams and resampled regions
  directly (a forensic detector's usual first layer; backbone `in_chans: 6`);
- the metadata branch: the `metadata` vector (manifest columns, in the dataset's order) and,
  with `residual_stats`, statistics of the image's noise residual (`NoiseResidualStats`),
  standardised by a BatchNorm and passed through a small MLP.

`use_image: false` is the metadata-only ablation (the image is read only for its residual
statistics), `use_metadata: false` the image-only one: the same class, so all three train,
export and serve alike.
"""

from __future__ import annotations

import torch
from torch import nn


def noise_residual(image: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """The image minus its 3x3 mean (`box`: (3, 1, 3, 3) of 1/9, zero padding)."""
    return image - nn.functional.conv2d(image, box.to(image.dtype), padding=1, groups=3)


class NoiseResidualStats(nn.Module):
    """Per channel: log standard deviation, log mean absolute value and log fourth moment
    (normalised by the variance squared, a kurtosis) of the image minus its 3x3 mean: the
    high-frequency residual a sensor's noise leaves under JPEG."""

    out_features = 9

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = float(eps)
        self.register_buffer("box", torch.full((3, 1, 3, 3), 1.0 / 9.0))

    def forward(self, image: torch.Tensor) -> torch.Tensor:  # (N, 3, H, W) -> (N, 9)
        return self.from_residual(noise_residual(image, self.box))

    def from_residual(self, residual: torch.Tensor) -> torch.Tensor:
        """The statistics of a residual `noise_residual` made (its 1-px border left out)."""
        r = residual[:, :, 1:-1, 1:-1].flatten(2)
        var = r.pow(2).mean(dim=2)
        stats = [
            0.5 * torch.log(var + self.eps),
            torch.log(r.abs().mean(dim=2) + self.eps),
            torch.log(r.pow(4).mean(dim=2) / (var * var + self.eps) + self.eps),
        ]
        return torch.cat(stats, dim=1)


class ImageMetadataClassifier(nn.Module):
    """(image (N, 3, H, W), metadata (N, D)) -> one attack logit (N, 1); see the module
    docstring. `metadata_features`: D, or the list of metadata columns itself."""

    def __init__(
        self,
        backbone: nn.Module,
        metadata_features: int | list[str],
        hidden: int = 32,
        dropout: float = 0.1,
        residual_stats: bool = True,
        use_image: bool = True,
        use_metadata: bool = True,
        residual_input: bool = False,
        residual_gain: float = 4.0,
    ) -> None:
        super().__init__()
        if not isinstance(metadata_features, int):
            metadata_features = len(metadata_features)
        if not (use_image or use_metadata):
            raise ValueError("ImageMetadataClassifier needs use_image or use_metadata")
        self.use_image, self.use_metadata = bool(use_image), bool(use_metadata)
        self.residual = NoiseResidualStats() if residual_stats and use_metadata else None
        self.residual_input = bool(residual_input) and use_image
        self.residual_gain = float(residual_gain)
        self.register_buffer("box", torch.full((3, 1, 3, 3), 1.0 / 9.0), persistent=False)
        self.backbone = backbone if use_image else None
        width = backbone.num_features if use_image else 0
        self.meta = None
        if use_metadata:
            d = int(metadata_features) + (NoiseResidualStats.out_features if self.residual else 0)
            if d < 1:
                raise ValueError("the metadata branch needs metadata features or residual_stats")
            self.meta = nn.Sequential(
                nn.BatchNorm1d(d), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                nn.ReLU(),
            )  # fmt: skip
            width += hidden
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, 1)

    def forward(self, image: torch.Tensor, metadata: torch.Tensor) -> torch.Tensor:
        parts: list[torch.Tensor] = []
        # One residual for both readers (the backbone's extra channels, the statistics).
        residual = torch.zeros(0)
        if self.residual_input or self.residual is not None:
            residual = noise_residual(image.float(), self.box)
        if self.backbone is not None:
            x = image
            if self.residual_input:
                x = torch.cat([image, self.residual_gain * residual.to(image.dtype)], dim=1)
            parts.append(self.backbone(x))
        if self.meta is not None:
            m = metadata.to(image.dtype)
            if self.residual is not None:
                m = torch.cat([m, self.residual.from_residual(residual).to(image.dtype)], dim=1)
            parts.append(self.meta(m))
        return self.head(self.dropout(torch.cat(parts, dim=1)))
