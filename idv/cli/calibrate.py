"""idv-calibrate: thresholds from a score table's calib split (idv-calibrate scores=...)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig
from rich.console import Console
from rich.markdown import Markdown

import idv  # noqa: F401  (offline switches first)
from idv.cli import CONF_DIR, guarded


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="calibrate")
@guarded
def main(cfg: DictConfig) -> None:
    from idv.calibration.reporting import markdown_summary
    from idv.calibration.thresholds import calibrate

    Console().print(Markdown(markdown_summary(calibrate(cfg))))


if __name__ == "__main__":
    main()
