"""Training: build data, model, task, callbacks, loggers and trainer from config, then fit."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from idv.atomic import write_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitResult:
    metrics: dict[str, float]
    best_checkpoint: str
    last_checkpoint: str
    output_dir: Path


def resolve_ckpt_path(ckpt_path: str | None, output_dir: str | os.PathLike) -> str | None:
    """`last` means the last checkpoint of this run directory; anything else is a path."""
    if ckpt_path in (None, ""):
        return None
    if ckpt_path == "last":
        last = Path(output_dir) / "checkpoints" / "last.ckpt"
        if not last.is_file():
            raise FileNotFoundError(
                f"ckpt_path=last: no {last}; point hydra.run.dir at the run directory to resume"
            )
        return str(last)
    if not Path(ckpt_path).is_file():
        raise FileNotFoundError(f"checkpoint {ckpt_path} not found")
    return str(ckpt_path)


def build_task(cfg: DictConfig) -> L.LightningModule:
    """The task's LightningModule around a freshly initialised network."""
    scheduler = cfg.task.get("scheduler")
    # A partial first: the run config holds `_target_` nodes that must stay plain data.
    module = instantiate(cfg.task.module, _partial_=True, _convert_="all")
    return module(
        net=instantiate(cfg.model),
        optimizer=instantiate(cfg.task.optimizer),
        scheduler=instantiate(scheduler) if scheduler else None,
        run_config=OmegaConf.to_container(cfg, resolve=True),
    )


def build_trainer(cfg: DictConfig, **overrides: Any) -> L.Trainer:
    # A group entry set to null (callbacks.early_stopping=null) is switched off.
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    if not loggers:  # logger=none: a learning-rate monitor would have nowhere to write
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **overrides)


def fit(cfg: DictConfig) -> FitResult:
    """Train with the configured trainer; checkpoints go to `<output_dir>/checkpoints`."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_text(OmegaConf.to_yaml(cfg, resolve=True), output_dir / "config.yaml")
    datamodule = instantiate(cfg.data)
    task = build_task(cfg)
    trainer = build_trainer(cfg)
    trainer.fit(
        task, datamodule=datamodule, ckpt_path=resolve_ckpt_path(cfg.get("ckpt_path"), output_dir)
    )
    checkpoint = trainer.checkpoint_callback
    best = last = ""
    if isinstance(checkpoint, ModelCheckpoint) and checkpoint.best_model_path:
        # A stable name for the selected checkpoint, for evaluation and export.
        best = str(output_dir / "checkpoints" / "best.ckpt")
        shutil.copyfile(checkpoint.best_model_path, best)
        last = str(output_dir / "checkpoints" / "last.ckpt")
        log.info(
            "best checkpoint (%s = %.4f): %s -> %s",
            checkpoint.monitor,
            float(checkpoint.best_model_score),
            checkpoint.best_model_path,
            best,
        )
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return FitResult(metrics, best, last, output_dir)
