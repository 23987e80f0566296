"""idv-benchmark: vendors' scores / decisions on the owned evaluation set, next to ours."""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

import idv  # noqa: F401  (offline switches first)
from idv.cli import CONF_DIR

log = logging.getLogger(__name__)


def run(cfg: DictConfig):
    """Load the manifest and the files, benchmark, write the outputs, print the tables."""
    from idv.data.manifest import Manifest
    from idv.evaluation.benchmark import (
        benchmark,
        headline_frame,
        read_score_table,
        read_vendor_file,
        write_outputs,
    )

    if cfg.task.kind != "detection":
        raise ValueError(f"idv-benchmark supports detection tasks for now, not {cfg.task.kind!r}")
    manifest = Manifest.load(
        cfg.manifest, labels=cfg.task.labels, required_splits=[cfg.split], check_files=False
    )
    result = benchmark(
        manifest.frame,
        [read_vendor_file(f) for f in cfg.vendor_files],
        ours=read_score_table(cfg.ours) if cfg.ours else None,
        split=cfg.split,
        reference=cfg.reference,
        providers=OmegaConf.to_container(cfg.providers, resolve=True),
        segments=list(cfg.segments),
        n_resamples=cfg.bootstrap.n_resamples,
        seed=cfg.bootstrap.seed,
        level=cfg.bootstrap.level,
        min_subjects=cfg.min_subjects,
        apcer_target=cfg.apcer_target,
    )
    paths = write_outputs(result, cfg.output_dir, f"{cfg.task.name}: vendor benchmark")
    console = Console()
    headline = headline_frame(result).drop(columns=["segment", "group"])
    console.print(_table(headline, f"{cfg.task.name}: vendor benchmark on {cfg.split}"))
    if not result.comparisons.empty:
        shown = result.comparisons[["provider", "metric", "difference", "low", "high", "mcnemar_p"]]
        console.print(_table(shown, f"paired differences: provider - {result.reference}"))
    for note in result.notes:
        console.print(f"- {note}")
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return result


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
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
