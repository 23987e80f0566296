"""idv-train: fit a task's model (idv-train task=pad model.backbone.name=resnet18 ...)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import idv  # noqa: F401  (offline switches first)
from idv.cli import CONF_DIR, guarded, one_console


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
@guarded
def main(cfg: DictConfig) -> float | None:
    from idv.tasks.fit import fit

    one_console()
    result = fit(cfg)
    print(f"best checkpoint: {result.best_checkpoint}")
    # The value a Hydra sweeper would optimise: the task's monitored validation metric.
    value = result.metrics.get(cfg.task.monitor.metric)
    return value


if __name__ == "__main__":
    main()
