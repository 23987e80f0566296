"""idv-evaluate's judging half: score tables -> metrics, plots and the report, for any kind.

The tables come from scoring a checkpoint (`idv.tasks.scoring`, called by the entry point) or
from files (`scores=`, and the kind's other roles such as `search=`: ours or a vendor's, read
through their one reader, `idv.score_tables`). The task's kind (`idv.kinds`) judges them and
writes metrics.json, segments.csv, plots/ and report.md; the tables go to `tables/<role>.parquet`
(one DVC output per task).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from idv import kinds
from idv.atomic import write_parquet
from idv.progress import step
from idv.score_tables import read_table

log = logging.getLogger(__name__)
TABLES = "tables"


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, Any]
    tables: dict[str, pd.DataFrame]
    output_dir: Path

    @property
    def scores(self) -> pd.DataFrame:
        return self.tables["scores"]


def read_tables(cfg: DictConfig, kind: kinds.Kind) -> dict[str, pd.DataFrame]:
    """The kind's tables from the files the config names, by role (`scores=`, `search=` ...);
    `scores` is required, the other roles are judged when given."""
    if not cfg.get("scores"):
        raise ValueError("give scores=<score table> (or ckpt_path=<checkpoint> to score one)")
    return {
        role: read_table(cfg[role], schema) for role, schema in kind.tables.items() if cfg.get(role)
    }


def evaluate(cfg: DictConfig, tables: Mapping[str, pd.DataFrame] | None = None) -> Evaluation:
    """Judge `tables` (scored by the caller), or the score tables the config names."""
    if tables is None and cfg.get("ckpt_path"):
        raise ValueError(
            "scoring a checkpoint is idv-evaluate's other half (idv.tasks.scoring); "
            "idv.evaluation judges tables: pass them, or give scores=<table>"
        )
    kind = kinds.of_task(cfg.task)
    tables = dict(tables) if tables is not None else read_tables(cfg, kind)
    out = Path(cfg.paths.output_dir)
    with step(log, f"judged {cfg.split}") as note:
        metrics = kind.evaluate(cfg, tables, out)
        note["detail"] = f"{len(metrics)} metrics"
    with step(log, "wrote the score tables"):
        for role, table in tables.items():
            write_parquet(table, out / TABLES / f"{role}.parquet")
    log.info("wrote tables/, metrics.json, segments.csv, report.md, plots/ in %s", out)
    return Evaluation(metrics, tables, out)
