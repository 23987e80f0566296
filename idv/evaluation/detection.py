"""Judging detection score tables (the `detection` kind): the field's metrics at operating
points on the reported split, with subject-bootstrap intervals, per segment and demographic
group, plots and the report. Failures to acquire stay in as errors: they raise BPCER or APCER,
never lower them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from idv.atomic import atomic_path, write_json, write_text
from idv.evaluation.intervals import detection_intervals, flatten
from idv.evaluation.plots import detection_plot_tables, write_plots
from idv.evaluation.report import markdown_report
from idv.evaluation.segments import aggregate_sessions, demographic_differential, segment_report
from idv.evaluation.thresholding import VAL_EER, operating_threshold
from idv.metrics.detection import detection_report, eer, generalised_scores, pct
from idv.metrics.localisation import localisation_outputs, localisation_report
from idv.metrics.resolution import NotSupported
from idv.score_tables import require_splits

log = logging.getLogger(__name__)


def evaluate_detection(
    cfg: DictConfig, tables: Mapping[str, pd.DataFrame], out: Path
) -> dict[str, Any]:
    """metrics.json, segments.csv, plots/ and report.md of the `scores` table's reported
    split (`cfg.split`); returns the metrics. Thresholded figures: see
    `idv.evaluation.thresholding`."""
    table = tables["scores"]
    require_splits(table, [cfg.split], "evaluation")
    if cfg.report.get("session_aggregation") and "session_id" in table.columns:
        table = pd.concat(
            [
                aggregate_sessions(rows, cfg.report.session_aggregation)
                for _, rows in table.groupby("split", sort=False)
            ],
            ignore_index=True,
        )

    val_metrics, val = {}, None
    val_rows = table[table["split"] == "val"]
    if len(val_rows):
        g = _generalised(val_rows)
        point = eer(g["score"], g["label"])
        val_metrics = {"val/eer": point.rate, "val/eer_threshold": point.threshold}
        val = (point.threshold, VAL_EER, "val EER")
    operating = operating_threshold(cfg, val)
    target = _generalised(table[table["split"] == cfg.split])
    report = detection_report(
        target["score"],
        target["label"],
        target["attack_type"],
        operating.value,
        operating.name,
        cfg.task.apcer_targets,
        cfg.task.bpcer_targets,
        subjects=target["subject_id"].astype(str).to_numpy(),
        min_subjects=cfg.report.min_subjects,
    )
    # Unresolvable operating points: null in metrics.json, the reason in the report.
    unsupported = {k: v for k, v in report.items() if isinstance(v, NotSupported)}
    metrics = {f"{cfg.split}/{k}": None if k in unsupported else v for k, v in report.items()}
    metrics.update(val_metrics)
    metrics.update(
        {
            f"{cfg.split}/samples": int(len(target)),
            f"{cfg.split}/subjects": int(target["subject_id"].nunique()),
            f"{cfg.split}/failures_to_acquire": int((~target["acquired"]).sum()),
        }
    )
    resolvable = [
        t for t in cfg.task.apcer_targets if f"bpcer_at_worst_apcer_{pct(t)}" not in unsupported
    ]
    intervals = detection_intervals(
        target, operating.value, operating.name, resolvable, **cfg.bootstrap
    )
    metrics.update(flatten(f"{cfg.split}/", intervals))
    # A detector with a pixel output (a tamper mask): how well it says where.
    for name in localisation_outputs(target):
        located = localisation_report(target, name, **cfg.bootstrap)
        metrics.update({f"{cfg.split}/{k}": v for k, v in located.items()})

    segments, differentials, notes = _segments(target, operating.value, cfg)
    notes += [f"`{cfg.split}/{k}` not supported: {v.reason}." for k, v in unsupported.items()]
    for d in differentials:
        metrics[f"{cfg.split}/differential_{d.rate}_{d.column}"] = d.value
    write_json(metrics, out / "metrics.json")
    write_plots(detection_plot_tables(target), out / "plots")
    with atomic_path(out / "segments.csv") as tmp:
        segments.to_csv(tmp, index=False)
    notes = [
        f"Scores from `{cfg.get('scores') or cfg.ckpt_path}`, split `{cfg.split}`, protocol "
        f"`{cfg.data.protocol.name}`.",
        operating.note,
        *notes,
        *_unjudged(table),
    ]
    write_text(
        markdown_report(
            f"{cfg.task.name}: evaluation on {cfg.split}", metrics, segments, differentials, notes
        ),
        out / "report.md",
    )
    return metrics


def _unjudged(table: pd.DataFrame) -> list[str]:
    """Auxiliary output columns (`output/<name>`) are kept in the table, and said to be unjudged
    here: this kind judges the primary score only."""
    extra = [c for c in table.columns if c.startswith("output/")]
    if not extra:
        return []
    return [f"Auxiliary outputs kept in the score table, not judged by detection metrics: {extra}."]


def _generalised(rows: pd.DataFrame) -> pd.DataFrame:
    """Failures to acquire stay in, as errors: they raise BPCER or APCER, never lower them."""
    return rows.assign(score=generalised_scores(rows["score"], rows["acquired"], rows["label"]))


def _segments(
    target: pd.DataFrame, threshold: float | None, run_cfg
) -> tuple[pd.DataFrame, list, list]:
    """Segment table (with intervals) and the demographic differentials the data supports;
    nothing without a threshold."""
    if threshold is None:
        return pd.DataFrame(), [], []
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
