"""Variants of a trained task for figures scripts: baselines and ablations trained and scored
exactly as the checkpoint was, so that a comparison differs by nothing but its overrides.

- `train_variant`: another `idv-train` run with the checkpoint's task, corpus, profile and seed;
- `untrained`: the checkpoint's architecture with the seed's initial weights (the floor a
  trained model has to clear);
- `split_frames` / `eval_dataset`: a split's manifest rows and their evaluation dataset, built
  from the checkpoint's own data config (dataset, augmentation, species), never from defaults;
- `score_dataset`: named outputs through the task's `predict_step`, as idv-evaluate scores.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
from hydra.utils import instantiate
from torch import nn
from torch.utils.data import DataLoader

from idv.data.datamodule import datamodule_config
from idv.data.datasets import ManifestDataset, collate
from idv.tasks.scoring import scoring_trainer, task_module


def variant_command(config: Mapping[str, Any], out: Path, overrides: Iterable[str]) -> list[str]:
    """The `idv-train` command line of a variant of the run `config` (see `train_variant`)."""
    profile = [f"profile={config['profile']}"] if config.get("profile") else []
    return [
        sys.executable, "-m", "idv.cli.train", f"task={config['task']['name']}",
        f"seed={config['seed']}", *profile,
        f"paths.data_dir={Path(config['data']['manifest']).parents[2]}", "logger=none",
        "callbacks.progress.interactive=false", f"hydra.run.dir={out}", *overrides,
    ]  # fmt: skip


def train_variant(config: Mapping[str, Any], out: Path, overrides: Iterable[str]) -> str:
    """Train a baseline with the checkpoint's task, corpus, profile and seed (plus `overrides`,
    e.g. `model.use_image=false`) into `out`; returns its best checkpoint."""
    subprocess.run(variant_command(config, out, overrides), check=True, stdout=subprocess.DEVNULL)
    return str(out / "checkpoints" / "best.ckpt")


def untrained(config: Mapping[str, Any]) -> nn.Module:
    """The run's network with the initial weights its seed gives, in eval mode."""
    L.seed_everything(int(config["seed"]), verbose=False)
    return instantiate(config["model"]).eval()


def split_frames(
    config: Mapping[str, Any], splits: Iterable[str]
) -> tuple[Path, dict[str, pd.DataFrame]]:
    """(corpus root, {split: its manifest rows under the run's protocol})."""
    datamodule = instantiate(datamodule_config(config["data"]), _recursive_=False)
    datamodule.setup("validate")
    return datamodule.manifest.root, {s: datamodule.split_frame(s) for s in splits}


def eval_dataset(
    config: Mapping[str, Any], frame: pd.DataFrame, root: Path, **overrides: Any
) -> ManifestDataset:
    """The run's evaluation dataset of `frame`; `overrides` replace dataset arguments (e.g.
    `frames=4` for a clip model scored on shorter clips)."""
    data = copy.deepcopy(dict(config["data"]))
    spec = {**data["dataset"], **overrides}
    factory = instantiate(spec, _convert_="all")
    return factory(frame.reset_index(drop=True), root, data["augment"], "eval", data["species"])


def score_dataset(
    net: nn.Module, config: Mapping[str, Any], dataset: ManifestDataset, batch_size: int = 64
) -> dict[str, np.ndarray]:
    """Named outputs per item of `dataset`, through the task's predict_step (as idv-evaluate:
    float32, the task's own output heads), so a variant is scored like the pipeline's model."""
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
    batches = scoring_trainer().predict(task_module(net, config), dataloaders=loader)
    names = [k for k in batches[0] if k != "sample_id"]
    return {n: np.concatenate([b[n].cpu().numpy() for b in batches]) for n in names}
