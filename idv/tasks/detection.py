"""The detection base task shared by every attack / forgery / bot detector.

The network's named outputs are logits; the primary one (`primary`, default `score`) is P(attack)
after the sigmoid and is what is evaluated, calibrated and served. Auxiliary outputs (a tamper
mask, a challenge-compliance score, ...) are declared in the task config with their target and
loss weight: `outputs: {score: {target: label, weight: 1.0}, mask: {target: mask, weight: 0.5}}`;
every output is trained with binary cross-entropy against its target (`label`, or the batch's
target of that name; `pos_weight` weighs its positives, for a mask that is mostly zeros; a
pixel output coarser than its target is trained on the target's area average and counted,
in evaluation, at the target's size); `fused` outputs combine their probabilities by a rule
(`idv.models.outputs`) and may be the primary one. Validation metrics are operating-point
metrics over the primary scores (cat-state torchmetrics, DDP-safe), and checkpoint selection
uses one of them by name (see `conf/task/*.yaml`), never the loss alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from idv.data.datasets import Batch
from idv.metrics.wrappers import DetectionMetrics
from idv.models.outputs import DetectionScores
from idv.tasks.base import OptimizerFactory, SchedulerFactory, TaskBase

PRIMARY = {"score": {"target": "label", "weight": 1.0}}


def coarse_target(target: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A pixel target (N, 1, H, W) at a coarser map's size: the share of each cell that is
    positive (area average), a soft target for the BCE."""
    return F.adaptive_avg_pool2d(target, size)


class DetectionTask(TaskBase):
    """Binary detector (label 1 = attack) over any `net` from named `inputs` to named logit
    `outputs` (see the module docstring; one output: the network returns one tensor).

    `optimizer` / `scheduler` are Hydra partials completed here; `run_config` is the run's whole
    resolved config as plain containers, saved in the checkpoint (loadable with
    `weights_only=True`) so that evaluation and export rebuild the exact model.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        species: Sequence[str],
        scheduler: SchedulerFactory | None = None,
        apcer_targets: Sequence[float] = (0.01, 0.05, 0.1),
        inputs: Sequence[str] = ("image",),
        outputs: Mapping[str, Mapping[str, Any]] | None = None,
        fused: Mapping[str, Mapping[str, Any]] | None = None,
        primary: str = "score",
        localisation_threshold: float = 0.5,
        run_config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        outputs = dict(outputs or PRIMARY)
        fused = dict(fused or {})
        if primary not in outputs and primary not in fused:
            raise ValueError(
                f"primary output {primary!r} is not among the outputs {list(outputs)} "
                f"or the fused ones {list(fused)}"
            )
        for name, spec in outputs.items():
            unknown = set(spec) - {"target", "weight", "pos_weight"}
            if unknown or "target" not in spec:
                raise ValueError(
                    f"output {name!r}: give `target` (label, or a batch target), `weight` "
                    f"(and optionally `pos_weight`), got {sorted(spec)}"
                )
        self.net = net
        self.input_names = tuple(inputs)
        self.output_names = tuple(outputs)
        self.losses = {
            n: (str(s["target"]), float(s.get("weight", 1.0))) for n, s in outputs.items()
        }
        # `pos_weight`: positives' weight in an output's BCE (a tamper mask is mostly zeros).
        self.pos_weights = {n: float(s.get("pos_weight", 1.0)) for n, s in outputs.items()}
        self.primary = primary
        self.localisation_threshold = float(localisation_threshold)
        self.to_outputs = DetectionScores(fused)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.val_metrics = DetectionMetrics(species, apcer_targets)
        self.test_metrics = DetectionMetrics(species, apcer_targets)

    def _target(self, batch: Batch, name: str) -> torch.Tensor:
        return batch.label if name == "label" else batch.targets[name]

    def _step(self, batch: Batch, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The weighted loss of every output, and the primary output's probabilities."""
        logits = self.raw_outputs(batch)
        size = len(batch.label)
        total = torch.zeros((), device=batch.label.device)
        for name, (target, weight) in self.losses.items():
            value = logits[name]
            goal = self._target(batch, target).float()
            if value.ndim == 4 and goal.ndim == 4 and value.shape[-2:] != goal.shape[-2:]:
                goal = coarse_target(goal, value.shape[-2:])
            loss = F.binary_cross_entropy_with_logits(
                value.float().reshape(goal.shape),
                goal,
                pos_weight=torch.tensor(self.pos_weights[name], device=goal.device),
            )
            total = total + weight * loss
            if len(self.losses) > 1:
                self.log(
                    f"{stage}/loss_{name}", loss, on_step=False, on_epoch=True,
                    batch_size=size, sync_dist=stage != "train",
                )  # fmt: skip
        self.log(
            f"{stage}/loss",
            total,
            on_step=False,
            on_epoch=True,
            batch_size=size,
            sync_dist=stage != "train",
        )
        self._log_skipped(batch, stage)
        primary = self.to_outputs(logits)[self.primary].reshape(size, -1)[:, 0]
        return total, primary

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, Any]:
        """The named outputs; a pixel output trained on a batch target (a tamper mask) becomes
        per-item pixel counts at `localisation_threshold` against that target (`<name>_tp`,
        `_fp`, `_fn`, `_positive`: the target's area, `_pixels`), which the score table keeps and
        evaluation turns into localisation metrics; the map itself is served, not tabled."""
        out = super().predict_step(batch, batch_idx)
        for name, (target, _) in self.losses.items():
            value = out.get(name)
            if target == "label" or value is None or value.ndim < 3:
                continue
            truth = self._target(batch, target).float()
            if value.ndim == 4 and value.shape[-2:] != truth.shape[-2:]:  # a coarser map
                value = F.interpolate(value, size=truth.shape[-2:], mode="bilinear")
            truth = truth.reshape(value.shape) > 0.5
            guess = value > self.localisation_threshold
            dims = tuple(range(1, value.ndim))
            out[f"{name}_tp"] = (guess & truth).sum(dims).float()
            out[f"{name}_fp"] = (guess & ~truth).sum(dims).float()
            out[f"{name}_fn"] = (~guess & truth).sum(dims).float()
            out[f"{name}_positive"] = truth.sum(dims).float()
            out[f"{name}_pixels"] = torch.full_like(out[f"{name}_tp"], float(value[0].numel()))
            del out[name]
        return out

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss, _ = self._step(batch, "train")
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        _, scores = self._step(batch, "val")
        self.val_metrics.update(scores.float(), batch.label, batch.species)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        _, scores = self._step(batch, "test")
        self.test_metrics.update(scores.float(), batch.label, batch.species)
