"""idv-evaluate's logic: score splits with a checkpoint, write the score table and metrics.

Until the calibration stage exists, thresholded figures use the threshold at the `val`
split's EER, and their keys say so (`...@val_eer_threshold`); test is only reported on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from idv.atomic import atomic_path, write_json, write_parquet, write_text
from idv.evaluation.intervals import detection_intervals, flatten
from idv.evaluation.plots import detection_plot_tables, write_plots
from idv.evaluation.report import markdown_report
from idv.evaluation.scoring import DETECTION_COLUMNS, detection_table, predict_scores
from idv.evaluation.segments import (
    aggregate_sessions,
    demographic_differential,
    segment_report,
)
from idv.metrics.detection import detection_report, eer, generalised_scores, pct
from idv.metrics.resolution import NotSupported
from idv.tasks.checkpoint import net_from_checkpoint

log = logging.getLogger(__name__)
THRESHOLD_NAME = "val_eer_threshold"


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    scores: pd.DataFrame
    output_dir: Path


def evaluate(cfg: DictConfig) -> Evaluation:
    """Score with `ckpt_path`, or read an existing detection score table from `scores` (ours
    or a vendor's: the same code judges both), then write metrics, plots and the report."""
    if bool(cfg.get("scores")) == bool(cfg.get("ckpt_path")):
        raise ValueError("give exactly one of ckpt_path=<checkpoint> or scores=<score table>")
    table = read_score_table(cfg.scores) if cfg.get("scores") else score_splits(cfg)
    if cfg.report.get("session_aggregation") and "session_id" in table.columns:
        table = pd.concat(
            [
                aggregate_sessions(rows, cfg.report.session_aggregation)
                for _, rows in table.groupby("split", sort=False)
            ],
            ignore_index=True,
        )

    val = _generalised(table[table["split"] == "val"])
    point = eer(val["score"], val["label"])
    target = _generalised(table[table["split"] == cfg.split])
    report = detection_report(
        target["score"],
        target["label"],
        target["attack_type"],
        point.threshold,
        THRESHOLD_NAME,
        cfg.task.apcer_targets,
        cfg.task.bpcer_targets,
        subjects=target["subject_id"].astype(str).to_numpy(),
        min_subjects=cfg.report.min_subjects,
    )
    # Unresolvable operating points: null in metrics.json, the reason in the report.
    unsupported = {k: v for k, v in report.items() if isinstance(v, NotSupported)}
    metrics = {f"{cfg.split}/{k}": None if k in unsupported else v for k, v in report.items()}
    metrics.update(
        {
            "val/eer": point.rate,
            "val/eer_threshold": point.threshold,
            f"{cfg.split}/samples": int(len(target)),
            f"{cfg.split}/subjects": int(target["subject_id"].nunique()),
            f"{cfg.split}/failures_to_acquire": int(
                (~table.loc[table["split"] == cfg.split, "acquired"]).sum()
            ),
        }
    )

    resolvable = [
        t for t in cfg.task.apcer_targets if f"bpcer_at_worst_apcer_{pct(t)}" not in unsupported
    ]
    intervals = detection_intervals(
        target, point.threshold, THRESHOLD_NAME, resolvable, **cfg.bootstrap
    )
    metrics.update(flatten(f"{cfg.split}/", intervals))

    out = Path(cfg.paths.output_dir)
    segments, differentials, notes = _segments(target, point.threshold, cfg)
    notes += [f"`{cfg.split}/{k}` not supported: {v.reason}." for k, v in unsupported.items()]
    for d in differentials:
        metrics[f"{cfg.split}/differential_{d.rate}_{d.column}"] = d.value
    write_parquet(table, out / "scores.parquet")
    write_json(metrics, out / "metrics.json")
    write_plots(detection_plot_tables(target), out / "plots")
    with atomic_path(out / "segments.csv") as tmp:
        segments.to_csv(tmp, index=False)
    notes = [
        f"Scores from `{cfg.get('scores') or cfg.ckpt_path}`, split `{cfg.split}`, protocol "
        f"`{cfg.data.protocol.name}`; thresholded figures at the val EER threshold "
        f"{point.threshold:.4f}.",
        *notes,
    ]
    write_text(
        markdown_report(
            f"{cfg.task.name}: evaluation on {cfg.split}", metrics, segments, differentials, notes
        ),
        out / "report.md",
    )
    log.info("wrote scores.parquet, metrics.json, segments.csv, report.md, plots/ in %s", out)
    return Evaluation(metrics, table, out)


def read_score_table(path: str) -> pd.DataFrame:
    """A detection score table from disk, checked for the columns evaluation needs."""
    table = pd.read_parquet(path)
    missing = [c for c in (*DETECTION_COLUMNS, "split") if c not in table.columns]
    if missing:
        raise KeyError(f"{path}: score table lacks column(s) {missing}")
    if "acquired" not in table.columns:
        table["acquired"] = table["score"].notna()
    return table


def score_splits(cfg: DictConfig) -> pd.DataFrame:
    """The detection score table of the configured splits, scored with `ckpt_path`."""
    net, train_cfg = net_from_checkpoint(cfg.ckpt_path)
    # The eval transform must be the one the model was trained with (input size, statistics).
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    data_cfg["augment"] = train_cfg["augment"]
    datamodule = instantiate(data_cfg, _recursive_=False)
    datamodule.setup("validate")
    splits = list(dict.fromkeys(["val", *cfg.score_splits, cfg.split]))
    tables = []
    for split in splits:
        rows = datamodule.split_frame(split)
        if rows.empty:
            raise ValueError(f"split {split!r} is empty under this protocol; cannot score it")
        scores = predict_scores(net, datamodule.dataloader(split))
        tables.append(detection_table(rows, scores))
    return pd.concat(tables, ignore_index=True)


def _generalised(rows: pd.DataFrame) -> pd.DataFrame:
    """Failures to acquire stay in, as errors: they raise BPCER or APCER, never lower them."""
    return rows.assign(score=generalised_scores(rows["score"], rows["acquired"], rows["label"]))


def _segments(target: pd.DataFrame, threshold: float, run_cfg) -> tuple[pd.DataFrame, list, list]:
    """Segment table (with intervals) and the demographic differentials the data supports."""
    cfg = run_cfg.report
    columns = [c for c in cfg.segment_columns if c in target.columns]
    segments = segment_report(target, columns, threshold, cfg.min_subjects, run_cfg.bootstrap)
    differentials, notes = [], []
    for column in (c for c in cfg.demographic_columns if c in target.columns):
        for rate in ("bpcer", "apcer"):
            try:
                differentials.append(
                    demographic_differential(target, column, threshold, rate, cfg.min_subjects)
                )
            except ValueError as err:  # too few subjects per group: said, not computed
                notes.append(f"No {rate.upper()} differential over {column}: {err}.")
    return segments, differentials, notes
