"""The face-matching task: an embedder trained on identity classes through a margin head.

Training is classification over the `train` identities (ArcFace / CosFace logits, cross
entropy); what is kept and exported is only the embedder (`net`), whose unit-norm outputs are
compared by cosine. Validation is verification, not classification: every pair of `val`
embeddings (identities never seen in training) is a genuine or impostor comparison, and the
checkpoint is selected on their EER (`conf/task/face_match.yaml: monitor`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from idv.data.datasets import Batch
from idv.metrics.wrappers import VerificationMetrics
from idv.models.margins import margin_warmup
from idv.models.outputs import UnitEmbeddings
from idv.tasks.base import OptimizerFactory, SchedulerFactory, TaskBase

HeadFactory = Callable[..., nn.Module]


class FaceMatchTask(TaskBase):
    """Embedder `net` + margin head (built in `setup`, sized to the training identities).

    `margin` is a partial of a head of `idv.models.margins` taking (embedding_dim,
    num_classes); its margins grow linearly from 0 over `margin_warmup_epochs` (ArcFace from
    scratch often stalls on small data when the full margin applies from the first step).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        margin: HeadFactory,
        scheduler: SchedulerFactory | None = None,
        margin_warmup_epochs: int = 0,
        fmr_targets: Sequence[float] = (0.01, 0.001),
        run_config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "margin"])
        self.net = net
        self.input_names, self.output_names = ("image",), ("embedding",)
        self.to_outputs = UnitEmbeddings()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.head_factory = margin
        self.head: nn.Module | None = None
        self.warmup_epochs = int(margin_warmup_epochs)
        self.loss = nn.CrossEntropyLoss()
        self.val_metrics = VerificationMetrics(fmr_targets)
        self.test_metrics = VerificationMetrics(fmr_targets)

    def setup(self, stage: str) -> None:
        """Size the head to the training identities (before a checkpoint's weights load)."""
        if self.head is not None or stage != "fit":
            return
        classes = int(self.trainer.datamodule.dataset("train").labels.max()) + 1
        self.head = self.head_factory(embedding_dim=self.net.embedding_dim, num_classes=classes)

    def embed(self, batch: Batch) -> torch.Tensor:
        """Unit-norm embeddings, one per sample."""
        return self.raw_outputs(batch)["embedding"]

    def on_train_epoch_start(self) -> None:
        scale = margin_warmup(self.current_epoch, self.warmup_epochs)
        self.head.set_margin_scale(scale)
        self.log("train/margin_scale", scale, on_step=False, on_epoch=True)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        embeddings = self.embed(batch)
        logits = self.head(embeddings, batch.label)
        loss = self.loss(logits.float(), batch.label)
        size = len(batch.label)
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=size)
        # Accuracy of the nearest class weight (no margin: the margin lowers the true logit
        # by design, so argmax over margin logits understates what the embedding has learnt).
        with torch.no_grad():
            nearest = self.head.cosine(embeddings.detach()).argmax(dim=1)
        accuracy = (nearest == batch.label).float().mean()
        self.log("train/accuracy", accuracy, on_step=False, on_epoch=True, batch_size=size)
        self._log_skipped(batch, "train")
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self.val_metrics.update(self.embed(batch), batch.label)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self.test_metrics.update(self.embed(batch), batch.label)
