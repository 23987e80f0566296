"""Training benchmark on the default PAD model and batch, side by side in one run.

(a) seconds per training step through Lightning vs a hand-written PyTorch loop doing the same
    forward / backward / optimizer step on the same in-memory batch (goal: overhead <= 10%);
(b) one epoch with the real data loader (decode cache + augmentation, configured workers) vs
    the same samples preloaded as tensors, both through the hand loop (goal: ratio <= 1.1);
(c) `memory-format`: seconds per Lightning training step of any task (its real data module)
    with contiguous vs channels-last training (idv.tasks.callbacks.ChannelsLast), same
    precision, side by side.

    .venv/bin/python scripts/bench_training.py [hydra overrides, e.g. data.num_workers=0]
    .venv/bin/python scripts/bench_training.py memory-format task=face_match [overrides]
Needs the task's default corpus (idv-synth corpora=[pad] / [faces]).
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import open_dict
from torch.utils.data import DataLoader, Dataset

import idv  # noqa: F401
from idv.cli import CONF_DIR
from idv.data.datasets import Batch
from idv.tasks.callbacks import ChannelsLast
from idv.tasks.fit import build_task

STEPS = 30
WARMUP = 5


def load_config(overrides: list[str]):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["logger=none", *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = "/tmp/idv-bench"
        del cfg["hydra"]
    return cfg


def autocast(cfg):
    return torch.autocast(
        "cpu", dtype=torch.bfloat16, enabled=str(cfg.trainer.precision).startswith("bf16")
    )


def hand_step(task, optimizer, batch: Batch, cfg) -> None:
    with autocast(cfg), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*self.log.*")  # no trainer: nothing logged
        loss = task.training_step(batch, 0)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def hand_loop_step_times(cfg, batch: Batch) -> list[float]:
    L.seed_everything(0, verbose=False)
    task = build_task(cfg).train()
    optimizer = task.optimizer_factory(params=task.parameters())
    times = []
    for _ in range(STEPS):
        start = time.perf_counter()
        hand_step(task, optimizer, batch, cfg)
        times.append(time.perf_counter() - start)
    return times[WARMUP:]


class RepeatBatch(Dataset):
    """The same in-memory batch `count` times: no data cost on either side of (a)."""

    def __init__(self, batch: Batch, count: int) -> None:
        self.batch, self.count = batch, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> Batch:
        return self.batch


class StepTimer(L.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []
        self.start = 0.0

    def on_train_batch_start(self, *args) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, *args) -> None:
        self.times.append(time.perf_counter() - self.start)


def timed_fit(cfg, callbacks=(), **data) -> list[float]:
    """Seconds per Lightning training step (`STEPS`, warm-up dropped); `data`: what
    `Trainer.fit` trains on (train_dataloaders= or datamodule=)."""
    L.seed_everything(0, verbose=False)
    task = build_task(cfg)
    timer = StepTimer()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        precision=cfg.trainer.precision,
        max_steps=STEPS,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[timer, *callbacks],
    )
    trainer.fit(task, **data)
    return timer.times[WARMUP:]


def lightning_step_times(cfg, batch: Batch) -> list[float]:
    return timed_fit(cfg, train_dataloaders=DataLoader(RepeatBatch(batch, STEPS), batch_size=None))


def fit_step_times(cfg, channels_last: bool) -> list[float]:
    """Lightning steps on the task's real data module (the task may size itself in setup)."""
    callbacks = [ChannelsLast()] if channels_last else []
    return timed_fit(cfg, callbacks, datamodule=instantiate(cfg.data))


def memory_format(overrides: list[str]) -> None:
    cfg = load_config(overrides)
    contiguous = statistics.median(fit_step_times(cfg, channels_last=False))
    channels_last = statistics.median(fit_step_times(cfg, channels_last=True))
    print(
        f"(c) {cfg.task.name}, model {cfg.model.backbone.name}, batch {cfg.data.batch_size}, "
        f"{cfg.augment.image_size}px, precision {cfg.trainer.precision}: s/step contiguous "
        f"{contiguous:.4f}   channels-last {channels_last:.4f}   "
        f"ratio {channels_last / contiguous:.2f}"
    )


def epoch_seconds(cfg, batches) -> float:
    L.seed_everything(0, verbose=False)
    task = build_task(cfg).train()
    optimizer = task.optimizer_factory(params=task.parameters())
    start = time.perf_counter()
    for batch in batches:
        hand_step(task, optimizer, batch, cfg)
    return time.perf_counter() - start


def main(overrides: list[str]) -> None:
    cfg = load_config(overrides)
    torch.set_num_threads(torch.get_num_threads())
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    batch = next(iter(loader))
    print(
        f"model {cfg.model.backbone.name}, batch {tuple(batch.image.shape)}, "
        f"precision {cfg.trainer.precision}, threads {torch.get_num_threads()}, "
        f"workers {cfg.data.num_workers}"
    )

    hand = statistics.median(hand_loop_step_times(cfg, batch))
    lightning = statistics.median(lightning_step_times(cfg, batch))
    print(
        f"(a) s/step  hand loop {hand:.4f}   Lightning {lightning:.4f}   "
        f"overhead {100 * (lightning / hand - 1):+.1f}%  (goal <= +10%)"
    )

    epoch_seconds(cfg, [batch] * 3)  # warm-up
    real = epoch_seconds(cfg, loader)
    preloaded_batches = list(datamodule.train_dataloader())
    preloaded = epoch_seconds(cfg, preloaded_batches)
    print(
        f"(b) s/epoch real loader {real:.2f}   preloaded tensors {preloaded:.2f}   "
        f"ratio {real / preloaded:.2f}  (goal <= 1.10; {len(preloaded_batches)} batches)"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["memory-format"]:
        memory_format(sys.argv[2:])
        sys.exit(0)
    if not Path("data/pad/default/manifest.parquet").exists() and not any(
        a.startswith(("paths.", "data.manifest")) for a in sys.argv[1:]
    ):
        sys.exit("no default PAD corpus: run `idv-synth corpora=[pad]` first")
    main(sys.argv[1:])
