"""Rebuilding a trained network from a checkpoint, with `weights_only=True` loading.

Torch and Hydra only (no Lightning): evaluation's scoring, export and the scripts rebuild the
exact trained network from the run config the checkpoint carries.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from torch import nn


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a Lightning checkpoint safely (plain containers and tensors only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    return torch.load(path, map_location="cpu", weights_only=True)


def run_config_of(path: str | os.PathLike, checkpoint: dict[str, Any] | None = None) -> dict:
    """The run's resolved config saved in a checkpoint (no network built)."""
    checkpoint = load_checkpoint(path) if checkpoint is None else checkpoint
    config = checkpoint.get("hyper_parameters", {}).get("run_config")
    if not config or "model" not in config:
        raise ValueError(
            f"checkpoint {path} carries no run config (hyper_parameters.run_config); "
            "was it written by idv-train?"
        )
    return config


def net_from_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """The task's `net` with trained weights, in eval mode, and the run's resolved config.

    The architecture comes from the config saved in the checkpoint, so evaluation never
    depends on the user repeating the training overrides.
    """
    checkpoint = load_checkpoint(path)
    config = run_config_of(path, checkpoint)
    net = instantiate(config["model"])
    state = {
        k.removeprefix("net."): v
        for k, v in checkpoint["state_dict"].items()
        if k.startswith("net.")
    }
    net.load_state_dict(state, strict=True)
    return net.eval(), config
