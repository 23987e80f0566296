"""The optimizer and scheduler of every task, from the Hydra partials of its task config."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


def configure_optimizers(
    params: Iterable[torch.nn.Parameter],
    optimizer: OptimizerFactory,
    scheduler: SchedulerFactory | None = None,
) -> Any:
    """What `LightningModule.configure_optimizers` returns: the scheduler steps per epoch."""
    built = optimizer(params=params)
    if scheduler is None:
        return built
    return {
        "optimizer": built,
        "lr_scheduler": {"scheduler": scheduler(optimizer=built), "interval": "epoch"},
    }
