"""What every task's LightningModule shares: named inputs and outputs of its network, scoring
through `predict_step`, the optimizer / scheduler from the Hydra partials of its task config,
and epoch-level logging of its val / test metric collections."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import Metric

from idv.data.datasets import Batch
from idv.models.outputs import named_outputs

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


class TaskBase(L.LightningModule):
    """Subclasses set `net`, `input_names` / `output_names` (the network's, in order),
    `to_outputs` (raw outputs -> the task's outputs: `idv.models.outputs`), `optimizer_factory`,
    `scheduler_factory`, `val_metrics`, `test_metrics` (cat-state torchmetrics returning a dict
    of named values: DDP-safe)."""

    net: nn.Module
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    to_outputs: nn.Module
    optimizer_factory: OptimizerFactory
    scheduler_factory: SchedulerFactory | None
    val_metrics: Metric
    test_metrics: Metric

    def raw_outputs(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The network's outputs by name (logits, raw embeddings) on the batch's inputs."""
        return named_outputs(self.net, batch.inputs, self.input_names, self.output_names)

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, Any]:
        """What evaluation scores (the one place outputs become scores: `to_outputs`, as in
        the exported wrapper): the task's named outputs, float32, and the sample ids."""
        outputs = self.to_outputs(self.raw_outputs(batch))
        return {"sample_id": list(batch.sample_id), **{k: v.float() for k, v in outputs.items()}}

    def _log_metrics(self, metrics: Metric, stage: str) -> None:
        values = metrics.compute()
        self.log_dict({f"{stage}/{k}": v.float() for k, v in values.items()})
        metrics.reset()

    def _log_skipped(self, batch: Batch, stage: str) -> None:
        if batch.n_skipped:
            self.log(
                f"{stage}/skipped_samples",
                float(batch.n_skipped),
                reduce_fx="sum",
                on_step=False,
                on_epoch=True,
                batch_size=len(batch.label),
                sync_dist=True,
            )

    def on_validation_epoch_end(self) -> None:
        self._log_metrics(self.val_metrics, "val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics(self.test_metrics, "test")

    def configure_optimizers(self) -> Any:
        """The optimizer over every parameter; the scheduler, if any, steps per epoch."""
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": self.scheduler_factory(optimizer=optimizer),
                "interval": "epoch",
            },
        }
