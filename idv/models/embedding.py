"""Face embedders: a backbone and a BN-FC-BN neck to unit-norm embeddings.

Verification compares embeddings by cosine, so the exported model outputs them already
L2-normalised: a dot product is then the score, with no post-processing to get wrong.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EmbeddingNeck(nn.Module):
    """BatchNorm1d -> Dropout -> Linear -> BatchNorm1d -> L2 normalisation.

    The ArcFace "BN-FC-BN" neck: the first BN standardises pooled features, the last keeps
    the embedding's coordinates on one scale so no few dimensions dominate the cosine. The
    linear layer has no bias (the BN after it would cancel one). Normalisation runs in
    float32 so bf16 autocast does not cost precision where scores are made. BatchNorm needs a
    batch of 2 or more in training mode.
    """

    def __init__(self, in_features: int, embedding_dim: int = 512, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn_in = nn.BatchNorm1d(in_features)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, embedding_dim, bias=False)
        self.bn_out = nn.BatchNorm1d(embedding_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.bn_out(self.fc(self.dropout(self.bn_in(features))))
        return F.normalize(x.float(), p=2.0, dim=1)


class FaceEmbedder(nn.Module):
    """Backbone (with `num_features`) + `EmbeddingNeck`: images in, unit-norm embeddings out.

    This is what is exported; the margin head used in training is a separate module.
    """

    def __init__(self, backbone: nn.Module, embedding_dim: int = 512, dropout: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.embedding_dim: int = embedding_dim
        self.neck = EmbeddingNeck(backbone.num_features, embedding_dim, dropout)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.neck(self.backbone(images))
