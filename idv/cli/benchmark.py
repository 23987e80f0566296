"""idv-benchmark: vendors' scores / decisions on the owned evaluation set, next to ours."""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

import idv  # noqa: F401  (offline switches first)
from idv.cli import CONF_DIR, guarded

log = logging.getLogger(__name__)


def run(cfg: DictConfig):
    """Load the manifest and the files, benchmark with the task kind's benchmark (`idv.kinds`
    part `benchmark`), write the outputs, print the tables."""
    from idv import kinds
    from idv.evaluation.benchmark_io import write_outputs

    result, title = kinds.of_task(cfg.task).benchmark(cfg)
    paths = write_outputs(result, cfg.output_dir, title)
    _print(result, f"{title} on {cfg.split}")
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return result


def _print(result, title: str) -> None:
    from idv.evaluation.benchmark_io import headline_frame

    console = Console()
    headline = headline_frame(result).drop(columns=["segment", "group"])
    console.print(_table(headline, title))
    if not result.comparisons.empty:
        shown = result.comparisons[["provider", "metric", "difference", "low", "high", "mcnemar_p"]]
        console.print(_table(shown, f"paired differences: provider - {result.reference}"))
    for note in result.notes:
        console.print(f"- {note}")


def _table(frame, title: str) -> Table:
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(
            str(column), justify="left" if column in ("provider", "metric") else "right"
        )
    for row in frame.itertuples(index=False):
        table.add_row(*(_cell(v) for v in row))
    return table


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.4f}"
    return str(value).replace(" [", "\n[")  # "estimate [low, high]" on two lines


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="benchmark")
@guarded
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
