"""idv-calibrate: thresholds from a score table's calib split (idv-calibrate scores=...)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

import idv  # noqa: F401  (offline switches first)
from idv.cli import CONF_DIR


def _fmt(rate: dict | None) -> str:
    if not rate:
        return "n/a"
    if rate.get("low") is None:
        return f"{rate['estimate']:.4f}"
    return f"{rate['estimate']:.4f} [{rate['low']:.4f}, {rate['high']:.4f}]"


def _short(text: str, width: int = 40) -> str:
    """The console shows the gist; thresholds.json and thresholds.md hold the full reason."""
    return text if len(text) <= width else text[: width - 3] + "..."


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="calibrate")
def main(cfg: DictConfig) -> None:
    from idv.calibration.thresholds import calibrate

    result = calibrate(cfg)
    if result["kind"] == "matching":
        from idv.calibration.matching import markdown_summary

        Console().print(Markdown(markdown_summary(result)))
        return
    table = Table(title=f"{cfg.task.name}: thresholds ({cfg.output_dir}/thresholds.json)")
    for column in (
        "target",
        "segment",
        "threshold",
        "accept below",
        "source",
        "test worst APCER",
        "test BPCER",
    ):
        table.add_column(column)
    for entry in result["thresholds"]:
        segment = entry["segment"]
        table.add_row(
            f"{entry['operating_point']['max']:g}",
            "global" if segment["column"] is None else f"{segment['column']}={segment['value']}",
            f"{entry['threshold']:.4f}",
            f"{entry['decision']['accept_below']:.4f}",
            _short(entry["source"]),
            _fmt(entry["test"].get("apcer_worst")),
            _fmt(entry["test"].get("bpcer")),
        )
    Console().print(table)


if __name__ == "__main__":
    main()
