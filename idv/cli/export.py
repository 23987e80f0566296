"""idv-export: a checkpoint + its thresholds -> a verified bundle (idv-export ckpt_path=...
thresholds=... bundle_dir=... evaluation_dir=...)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

import idv  # noqa: F401  (offline switches first)
from idv.cli import CONF_DIR, guarded


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="export")
@guarded
def main(cfg: DictConfig) -> None:
    from idv.export.bundle import export

    result = export(cfg)
    parity = result.parity
    if "preprocess" not in parity:  # a bundle with its own gate (a graph's): its figures
        Console().print_json(data=parity)
        Console().print(f"bundle {result.bundle_dir}: files {', '.join(sorted(result.files))}")
        return
    table = Table(
        title=f"bundle {result.bundle_dir}: parity on {parity['samples']} samples, batch sizes "
        f"{parity['batch_sizes']} (tolerance {parity['tolerance']:g})"
    )
    table.add_column("format")
    table.add_column("file")
    table.add_column("max |output diff| (scores or embeddings)", justify="right")
    table.add_column("decisions differing", justify="right")
    for name, item in parity["formats"].items():
        table.add_row(
            name,
            item["file"],
            f"{item['max_abs_diff']:.2e}",
            f"{item['decision_disagreements']} (+{item['near_threshold_disagreements']} near)",
        )
    Console().print(table)
    Console().print(
        f"preprocessing vs evaluation transform: max |diff| "
        f"{parity['preprocess']['max_abs_diff']:.2e}; files: {', '.join(sorted(result.files))}"
    )


if __name__ == "__main__":
    main()
