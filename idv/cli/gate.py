"""idv-gate: fail when a candidate regresses against a baseline (exit 1; 2 when it cannot judge).

    idv-gate baseline=git:main:outputs/pad/evaluate/metrics.json \
             candidate=outputs/pad/evaluate/metrics.json
    idv-gate baseline=base/scores.parquet candidate=cand/scores.parquet   # paired bootstrap
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.markup import escape

import idv  # noqa: F401  (offline switches first)
from idv.cli import CONF_DIR, guarded


def run(cfg: DictConfig) -> int:
    """Gate, print the verdict table, write `cfg.output` if set; returns the exit code."""
    from idv.evaluation.gate import GateError, gate, verdict_table, write_result

    console = Console()
    if not console.is_terminal:  # CI logs: wide enough that the table does not wrap
        console = Console(width=160)
    try:
        result = gate(
            cfg.baseline,
            cfg.candidate,
            OmegaConf.to_container(cfg.metrics, resolve=True),
            split=cfg.split,
            missing=cfg.missing,
            n_resamples=int(cfg.bootstrap.n_resamples),
            seed=int(cfg.bootstrap.seed),
            level=float(cfg.bootstrap.level),
            baseline_rev=cfg.get("baseline_rev"),
            candidate_rev=cfg.get("candidate_rev"),
        )
    except GateError as err:
        print(f"idv-gate: cannot judge: {err}", file=sys.stderr)
        return 2
    console.print(verdict_table(result))
    if cfg.get("output"):
        console.print(f"verdict table written to {write_result(result, cfg.output)}")
    if result.regressions:
        names = ", ".join(r.metric for r in result.regressions)
        console.print(f"[bold red]REGRESSION[/] in {escape(names)}")
    return result.exit_code


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="gate")
@guarded
def main(cfg: DictConfig) -> None:
    code = run(cfg)
    if code:
        sys.exit(code)  # after printing: CI reads the exit status


if __name__ == "__main__":
    main()
