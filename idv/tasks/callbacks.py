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
