"""The detection base task shared by every attack / forgery / bot detector.

One logit per sample, trained with binary cross-entropy; the score is P(attack). Validation
metrics are operating-point metrics over all scores (cat-state torchmetrics, DDP-safe), and
checkpoint selection uses one of them by name (see `conf/task/*.yaml`), never the loss alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from idv.data.datasets import ImageBatch
from idv.metrics.wrappers import DetectionMetrics
from idv.tasks.base import OptimizerFactory, SchedulerFactory, TaskBase


class DetectionTask(TaskBase):
    """Binary detector (label 1 = attack) over any `net` that maps a batch to one logit.

    `optimizer` / `scheduler` are Hydra partials completed here; `run_config` is the run's whole
    resolved config as plain containers, saved in the checkpoint (loadable with
    `weights_only=True`) so that evaluation and export rebuild the exact model.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        species: Sequence[str],
        scheduler: SchedulerFactory | None = None,
        apcer_targets: Sequence[float] = (0.01, 0.05, 0.1),
        run_config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.loss = nn.BCEWithLogitsLoss()
        self.val_metrics = DetectionMetrics(species, apcer_targets)
        self.test_metrics = DetectionMetrics(species, apcer_targets)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits, one per image."""
        return self.net(images).squeeze(-1)

    def _step(self, batch: ImageBatch, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(batch.image)
        loss = self.loss(logits.float(), batch.label.float())
        size = len(batch.label)
        self.log(
            f"{stage}/loss",
            loss,
            on_step=False,
            on_epoch=True,
            batch_size=size,
            sync_dist=stage != "train",
        )
        if batch.n_skipped:
            self.log(
                f"{stage}/skipped_samples",
                float(batch.n_skipped),
                reduce_fx="sum",
                on_step=False,
                on_epoch=True,
                batch_size=size,
                sync_dist=True,
            )
        return loss, logits

    def training_step(self, batch: ImageBatch, batch_idx: int) -> torch.Tensor:
        loss, _ = self._step(batch, "train")
        return loss

    def validation_step(self, batch: ImageBatch, batch_idx: int) -> None:
        _, logits = self._step(batch, "val")
        self.val_metrics.update(torch.sigmoid(logits.float()), batch.label, batch.species)

    def test_step(self, batch: ImageBatch, batch_idx: int) -> None:
        _, logits = self._step(batch, "test")
        self.test_metrics.update(torch.sigmoid(logits.float()), batch.label, batch.species)
