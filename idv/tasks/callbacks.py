"""Lightning callbacks of our own (Lightning's cover checkpointing, stopping, logging)."""

from __future__ import annotations

import lightning as L
import torch


class SeedEachEpoch(L.Callback):
    """Reseed torch's global generator from (seed, epoch) at the start of every epoch.

    Lightning does not checkpoint the global RNG, so without this a resumed run would draw
    different dropout masks than an uninterrupted one; with it, resuming is bit-exact on CPU
    (the samplers of `idv.data.samplers` do the same for data order and augmentation).
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        torch.manual_seed(self.seed * 1_000_003 + trainer.current_epoch)


class ChannelsLast(L.Callback):
    """Train in channels-last memory format: the weights at fit start, every 4-D input of a
    training batch as it arrives. On CPU with bf16 autocast it makes a ResNet step about 20%
    faster (scripts/bench_training.py memory-format). Values are unchanged: a state dict does
    not record a memory format, so checkpoints, scoring and exports are as before."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.to(memory_format=torch.channels_last)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int
    ) -> None:
        for name, value in batch.inputs.items():
            if isinstance(value, torch.Tensor) and value.dim() == 4:  # a graph is not
                batch.inputs[name] = value.contiguous(memory_format=torch.channels_last)
