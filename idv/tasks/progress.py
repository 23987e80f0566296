"""Training progress: Lightning's Rich bar in a terminal, one log line per epoch elsewhere.

`dvc repro` and CI are not interactive: a bar there prints nothing readable (or nothing at
all), so a newcomer's first run would sit silent through minutes of training. `EpochLines`
logs, after every epoch, the epoch, the train loss, the monitored val metric, the time spent
and an estimate of the time left (an upper bound: early stopping may end sooner).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar

from idv.progress import duration

log = logging.getLogger(__name__)


def progress_bar(monitor: str | None = None, interactive: bool | None = None) -> ProgressBar:
    """Rich's bar when stdout is a terminal (or `interactive=true`), `EpochLines` otherwise
    (`interactive=false`)."""
    if interactive is None:
        interactive = sys.stdout.isatty()
    return RichProgressBar() if interactive else EpochLines(monitor)


class EpochLines(ProgressBar):
    """One line per training epoch: `epoch 3/24  train/loss 0.4123  val/eer 0.1500
    elapsed 21.0 s  ETA 2 min 30 s`. A progress bar to Lightning (so it adds no other), but it
    draws nothing between epochs."""

    def __init__(self, monitor: str | None = None, loss: str = "train/loss") -> None:
        super().__init__()
        self.monitor, self.loss = monitor, loss
        self.enabled = True
        self.start = 0.0

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.enabled and trainer.is_global_zero:
            log.info("%s", self.line(trainer))

    def line(self, trainer: L.Trainer) -> str:
        done = trainer.current_epoch + 1
        total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
        elapsed = time.perf_counter() - self.start
        parts = [f"epoch {done}/{total if total else '?'}"]
        metrics = trainer.callback_metrics
        for name in (self.loss, self.monitor):
            if name and name in metrics:
                parts.append(f"{name} {_value(metrics[name])}")
        parts.append(f"elapsed {duration(elapsed)}")
        if total:
            parts.append(f"ETA {duration(elapsed / done * (total - done))}")
        return "  ".join(parts)


def _value(value: Any) -> str:
    number = float(value)
    return "nan" if math.isnan(number) else f"{number:.4f}"
