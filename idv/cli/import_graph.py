"""idv-import-graph: import a public transaction graph (Elliptic layout) as a graph corpus."""

from __future__ import annotations

import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

import idv  # noqa: F401  (offline switches first)
from idv.cli import CONF_DIR, guarded
from idv.data.summary import count_table


def run(cfg: DictConfig) -> Path:
    """Import `cfg.source` into `cfg.out`, print the summary; returns the manifest file."""
    from idv.data.sources.elliptic import import_elliptic

    start = time.perf_counter()
    frame = import_elliptic(
        cfg.source,
        cfg.out,
        features=str(cfg.features),
        splits=OmegaConf.to_container(cfg.splits, resolve=True),
    )
    seconds = time.perf_counter() - start
    console = Console()
    console.print(
        f"[bold]{cfg.name}[/bold]: {len(frame)} labelled transactions "
        f"({int(frame['label'].sum())} illicit) in {seconds:.1f} s -> {cfg.out}"
    )
    console.print(count_table(frame, "attack_type", f"{cfg.name}: labelled transactions per class"))
    return Path(cfg.out) / "manifest.parquet"


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="import_graph")
@guarded
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
