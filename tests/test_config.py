"""Every config group option and every experiment composes, resolves and builds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from idv.data.augment.pipeline import build_transforms
from tests.conftest import CONF_DIR, compose

TRAIN_GROUPS = (
    "task",
    "data",
    "protocol",
    "profile",
    "augment",
    "model",
    "trainer",
    "logger",
    "callbacks",
    "paths",
    "experiment",
    "debug",
)


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


CASES = [(g, o) for g in TRAIN_GROUPS for o in options(g)]


def test_every_group_has_options() -> None:
    for group in TRAIN_GROUPS:
        assert options(group), f"conf/{group}/ is empty"


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_group_option_composes(group: str, option: str, tmp_path: Path) -> None:
    cfg = compose("train", [f"{group}={option}"], tmp_path)
    resolved = OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    assert resolved["trainer"]["_target_"]
    assert get_class(resolved["data"]["_target_"])
    assert get_class(resolved["model"]["_target_"])
    assert get_class(resolved["task"]["module"]["_target_"])
    backbone = resolved["model"].get("backbone") or {}  # a session model has none
    if backbone.get("_target_", "").endswith("TimmBackbone"):
        assert timm.is_model(backbone["name"])
    monitor = resolved["task"]["monitor"]["metric"]
    assert monitor.startswith("val/"), "checkpoints are selected on val, never on test"
    for name, callback in (resolved.get("callbacks") or {}).items():
        if callback and callback.get("monitor") is not None:  # null: not metric-driven
            assert callback["monitor"] == monitor, name


@pytest.mark.parametrize("option", options("augment"))
def test_augment_pipelines_build_and_run(option: str, tmp_path: Path) -> None:
    cfg = compose("train", [f"augment={option}"], tmp_path)
    if "normalize" not in cfg.augment:  # a modality without images (sessions): no pipeline
        assert list(cfg.augment.train) == [] and list(cfg.augment.eval) == [], option
        return
    image = np.random.default_rng(0).integers(0, 255, (120, 100, 3), dtype=np.uint8)
    eval_size = (cfg.augment.image_size, cfg.augment.get("image_width") or cfg.augment.image_size)
    crop = cfg.augment.get("crop_size")
    sizes = {"train": (crop, crop) if crop else eval_size, "eval": eval_size}
    for stage, size in sizes.items():
        out = build_transforms(cfg.augment, stage, seed=0)(image=image)["image"]
        assert tuple(out.shape) == (3, *size)


@pytest.mark.parametrize("option", ["cpu", "ddp_cpu"])
def test_cpu_trainers_instantiate(option: str, tmp_path: Path) -> None:
    cfg = compose("train", [f"trainer={option}", "logger=none"], tmp_path)
    trainer = instantiate(cfg.trainer, logger=False, enable_progress_bar=False)
    assert trainer.max_epochs == cfg.trainer.max_epochs


@pytest.mark.parametrize("option", options("logger"))
def test_loggers_and_callbacks_instantiate(option: str, tmp_path: Path) -> None:
    cfg = compose("train", [f"logger={option}"], tmp_path)
    for node in (cfg.get("logger") or {}).values():
        logger = instantiate(node)
        if option == "wandb":
            assert node.mode == "offline"
        assert logger is not None
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    assert {type(c).__name__ for c in callbacks} >= {
        "ModelCheckpoint",
        "EarlyStopping",
        "EpochLines",  # pytest's stdout is no terminal: a line per epoch, not Rich's bar
        "LearningRateMonitor",
        "ChannelsLast",
    }


@pytest.mark.parametrize("config_name", ["train", "evaluate"])
def test_override_paths_are_consistent(config_name: str, tmp_path: Path) -> None:
    overrides = ["trainer.max_epochs=3", "data.batch_size=32"]
    if config_name == "train":
        overrides.append("model.backbone.name=resnet18")
    else:
        overrides.append("ckpt_path=x.ckpt")  # evaluate takes the model from the checkpoint
    cfg = compose(config_name, overrides, tmp_path)
    if config_name == "train":
        assert cfg.model.backbone.name == "resnet18"
    assert cfg.trainer.max_epochs == 3
    assert cfg.data.batch_size == 32


def test_debug_fast_is_tiny_and_silent(tmp_path: Path) -> None:
    cfg = compose("train", ["debug=fast"], tmp_path)
    assert cfg.profile == "tiny" and not cfg.get("logger")
    assert cfg.trainer.limit_train_batches <= 4 and cfg.data.num_workers == 0
    assert cfg.data.manifest.endswith("pad/tiny/manifest.parquet")


def test_synth_config_composes(tmp_path: Path) -> None:
    cfg = compose("synth", ["profile=tiny"], tmp_path)
    for name in cfg.corpora:
        resolved = OmegaConf.to_container(cfg[name], resolve=True)
        assert "tiny" in resolved["sizes"] and "default" in resolved["sizes"]


TOP_LEVEL = {  # entry point -> the mandatory values a user passes on the command line
    "train": [],
    "evaluate": ["ckpt_path=x.ckpt"],
    "synth": [],
    "calibrate": ["scores=s.parquet"],
    "gate": ["baseline=a.json", "candidate=b.json"],
    "benchmark": ["manifest=m.parquet"],
    "export": ["ckpt_path=x.ckpt", "thresholds=t.json", "bundle_dir=b"],
    "import_faces": ["src=photos"],
    "import_clips": ["src=videos"],
    "import_documents": ["source=documents"],
    "import_graph": ["source=elliptic"],
}
# Plain YAML read by scripts: pipeline_budget.py, check_licences.py.
NOT_ENTRY_POINTS = {"pipeline_budget", "licences"}


@pytest.mark.parametrize(
    "name", sorted(p.stem for p in Path(CONF_DIR).glob("*.yaml") if p.stem not in NOT_ENTRY_POINTS)
)
def test_every_top_level_config_composes_and_resolves(name: str, tmp_path: Path) -> None:
    assert name in TOP_LEVEL, f"conf/{name}.yaml has no entry in TOP_LEVEL"
    cfg = compose(name, TOP_LEVEL[name], tmp_path)
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


TASK_CONFIGS = ("train", "evaluate", "calibrate", "benchmark")


@pytest.mark.parametrize("task", options("task"))
@pytest.mark.parametrize("name", TASK_CONFIGS)
def test_every_task_composes_with_every_entry_point(task: str, name: str, tmp_path: Path) -> None:
    """A task brings its own augment and model (`${task}` in the defaults lists) and its own
    operating points, so `task=<name>` alone is a complete run."""
    cfg = compose(name, [f"task={task}", *TOP_LEVEL[name]], tmp_path)
    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert resolved["task"]["name"] == task
    if name == "train":
        assert get_class(resolved["model"]["_target_"])
    if name == "calibrate":
        assert resolved["targets"] == resolved["task"]["calibration_targets"]


@pytest.mark.parametrize("margin", options("margin"))
def test_face_match_margin_heads_switch_by_override(margin: str, tmp_path: Path) -> None:
    cfg = compose("train", ["task=face_match", f"margin@task.margin={margin}"], tmp_path)
    head = instantiate(cfg.task.margin.head)(embedding_dim=8, num_classes=3)
    assert type(head).__module__ == "idv.models.margins"
    assert head(torch.ones(2, 8), torch.tensor([0, 1])).shape == (2, 3)
