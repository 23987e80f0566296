"""idv-evaluate: score a split with a checkpoint (idv-evaluate task=pad ckpt_path=...)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

import idv  # noqa: F401  (offline switches first)
from idv.cli import CONF_DIR


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    from idv.evaluation.evaluate import evaluate

    result = evaluate(cfg)
    table = Table(title=f"{cfg.task.name}: {cfg.split} ({result.output_dir / 'metrics.json'})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in sorted(result.metrics.items()):
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)


if __name__ == "__main__":
    main()
