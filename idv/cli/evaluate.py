"""idv-evaluate: score a checkpoint's splits and judge them (idv-evaluate task=pad ckpt_path=...),
or judge existing score tables (idv-evaluate scores=... [search=...])."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

import idv  # noqa: F401  (offline switches first)
from idv.cli import CONF_DIR, guarded, one_console


def run(cfg: DictConfig):
    """Scoring (tasks layer) then judging (evaluation layer); one of ckpt_path / scores."""
    from idv.evaluation.evaluate import evaluate

    if bool(cfg.get("scores")) == bool(cfg.get("ckpt_path")):
        raise ValueError("give exactly one of ckpt_path=<checkpoint> or scores=<score table>")
    tables = None
    if cfg.get("ckpt_path"):
        from idv.tasks.scoring import score_checkpoint

        one_console()
        tables = score_checkpoint(cfg)
    return evaluate(cfg, tables)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="evaluate")
@guarded
def main(cfg: DictConfig) -> None:
    result = run(cfg)
    table = Table(title=f"{cfg.task.name}: {cfg.split} ({result.output_dir / 'metrics.json'})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in sorted(result.metrics.items()):
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)


if __name__ == "__main__":
    main()
