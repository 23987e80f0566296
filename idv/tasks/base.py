"""What every task's LightningModule shares: the optimizer / scheduler from the Hydra partials
of its task config, and epoch-level logging of its val / test metric collections."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torchmetrics import Metric

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


class TaskBase(L.LightningModule):
    """Subclasses set `optimizer_factory`, `scheduler_factory`, `val_metrics`, `test_metrics`
    (cat-state torchmetrics returning a dict of named values: DDP-safe)."""

    optimizer_factory: OptimizerFactory
    scheduler_factory: SchedulerFactory | None
    val_metrics: Metric
    test_metrics: Metric

    def _log_metrics(self, metrics: Metric, stage: str) -> None:
        values = metrics.compute()
        self.log_dict({f"{stage}/{k}": v.float() for k, v in values.items()})
        metrics.reset()

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
