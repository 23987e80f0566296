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
    from idv.evaluation.benchmark_io import read_vendor_file, write_outputs

    kind, mode = cfg.task.kind, cfg.get("mode")
    if kind == "detection":
        if mode is not None:
            raise ValueError(
                f"mode={mode!r} is for matching tasks (comparison | search); task "
                f"{cfg.task.name!r} is a detection task: leave mode unset"
            )
        mode = "detection"
    elif kind == "matching":
        mode = mode or "comparison"
        if mode not in ("comparison", "search"):
            raise ValueError(f"mode must be comparison (1:1) or search (1:N), got {mode!r}")
    else:
        raise ValueError(
            f"idv-benchmark judges detection and matching tasks, not {kind!r} (task "
            f"{cfg.task.name!r})"
        )
    manifest = Manifest.load(
        cfg.manifest, labels=cfg.task.labels, required_splits=[cfg.split], check_files=False
    )
    vendors = [read_vendor_file(f) for f in cfg.vendor_files]
    common = {
        "split": cfg.split,
        "reference": cfg.reference,
        "providers": OmegaConf.to_container(cfg.providers, resolve=True),
        "segments": list(cfg.segments),
        "n_resamples": cfg.bootstrap.n_resamples,
        "seed": cfg.bootstrap.seed,
        "level": cfg.bootstrap.level,
        "min_subjects": cfg.min_subjects,
    }
    if mode == "detection":
        from idv.evaluation.benchmark import benchmark

        ours = _ours(cfg, "detection")
        result = benchmark(
            manifest.frame, vendors, ours=ours, apcer_target=cfg.apcer_target, **common
        )
        title = f"{cfg.task.name}: vendor benchmark"
    elif mode == "comparison":
        from idv.evaluation.benchmark_matching import benchmark_comparisons

        protocols = cfg.task.protocols
        result = benchmark_comparisons(
            manifest.frame,
            vendors,
            ours=_ours(cfg, "comparison"),
            protocol=cfg.comparison_protocol,
            max_impostors=protocols.max_impostors,
            protocol_seed=cfg.seed,
            fmr_targets=[float(t) for t in cfg.fmr_targets],
            **common,
        )
        title = f"{cfg.task.name}: vendor benchmark, 1:1 {cfg.comparison_protocol}"
    else:
        from idv.evaluation.benchmark_matching import benchmark_searches

        result = benchmark_searches(
            manifest.frame,
            vendors,
            ours=_ours(cfg, "search"),
            enrolled_fraction=cfg.task.protocols.search.enrolled_fraction,
            protocol_seed=cfg.seed,
            fpir_targets=[float(t) for t in cfg.fpir_targets],
            **common,
        )
        title = f"{cfg.task.name}: vendor benchmark, 1:N search"
    paths = write_outputs(result, cfg.output_dir, title)
    _print(result, f"{title} on {cfg.split}")
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return result


_OURS_TABLES = {
    "detection": "our detection scores (idv-evaluate's tables/scores.parquet)",
    "comparison": "our comparison table (idv-evaluate's tables/scores.parquet)",
    "search": "our search table (idv-evaluate's tables/search.parquet)",
}


def _ours(cfg: DictConfig, kind: str):
    """Our score table of `kind`, validated by its one reader (idv.score_tables); None when
    `ours` is not given. A table of another kind says what mode expects."""
    from idv.score_tables import ScoreTableError, read_table

    if not cfg.ours:
        return None
    try:
        return read_table(cfg.ours, kind)
    except ScoreTableError as err:
        raise ScoreTableError(f"{err} (mode {kind!r} expects {_OURS_TABLES[kind]})") from err


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
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
