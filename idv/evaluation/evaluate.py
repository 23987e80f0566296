"""idv-evaluate's logic: score splits with a checkpoint, write the score table and metrics.

Until the calibration stage exists, thresholded figures use the threshold at the `val`
split's EER, and their keys say so (`...@val_eer_threshold`); test is only reported on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from idv.atomic import atomic_path, write_json, write_parquet, write_text
from idv.evaluation.intervals import detection_intervals, flatten
from idv.evaluation.matching import (
    Embeddings,
    comparison_table,
    predict_embeddings,
    search_metrics,
    search_table,
    segment_rates,
    val_threshold,
    verification_metrics,
)
from idv.evaluation.plots import (
    MATCHING_AXES,
    detection_plot_tables,
    matching_plot_tables,
    write_plots,
)
from idv.evaluation.report import markdown_report
from idv.evaluation.scoring import DETECTION_COLUMNS, detection_table, predict_scores
from idv.evaluation.segments import (
    aggregate_sessions,
    demographic_differential,
    segment_report,
)
from idv.metrics.detection import detection_report, eer, generalised_scores, pct
from idv.metrics.resolution import NotSupported
from idv.metrics.verification import COMPARISON_COLUMNS
from idv.tasks.checkpoint import net_from_checkpoint

log = logging.getLogger(__name__)
THRESHOLD_NAME = "val_eer_threshold"


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    scores: pd.DataFrame
    output_dir: Path


def evaluate(cfg: DictConfig) -> Evaluation:
    """Score with `ckpt_path`, or read an existing score table from `scores` (ours or a
    vendor's: the same code judges both), then write metrics, plots and the report. The task's
    `kind` says which table: detection here, comparisons and searches for `matching`."""
    if bool(cfg.get("scores")) == bool(cfg.get("ckpt_path")):
        raise ValueError("give exactly one of ckpt_path=<checkpoint> or scores=<score table>")
    if cfg.task.get("kind", "detection") == "matching":
        return evaluate_matching(cfg)
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


def evaluate_matching(cfg: DictConfig) -> Evaluation:
    """Face matching: comparison tables of every scored split (scores.parquet), the search
    table of the reported split (search.parquet), and their metrics per protocol, impostor
    set and probe segment. Thresholded figures use the val threshold at the first FMR target
    of the first protocol, and their keys say so."""
    task, report_cfg = cfg.task, cfg.report
    splits = list(dict.fromkeys(["val", *cfg.score_splits, cfg.split]))
    if cfg.get("scores"):
        table, search = read_comparison_table(cfg.scores), None
    else:
        table, search = score_matching_splits(cfg, splits)
    val, target = table[table["split"] == "val"], table[table["split"] == cfg.split]
    boot = OmegaConf.to_container(cfg.bootstrap, resolve=True)
    found, intervals, unsupported = verification_metrics(
        target, task.fmr_targets, report_cfg.min_subjects, boot
    )
    metrics: dict[str, Any] = {f"{cfg.split}/{k}": v for k, v in found.items()}
    # Only val's EERs are reported: no intervals, no operating points.
    val_found, _, _ = verification_metrics(val, (), report_cfg.min_subjects, None)
    metrics.update({f"val/{k}": v for k, v in val_found.items() if k.endswith("/eer")})
    metrics.update(flatten(f"{cfg.split}/", intervals))
    if search is not None:
        found, missing = search_metrics(search, task.fpir_targets, report_cfg.min_subjects)
        metrics.update({f"{cfg.split}/{k}": v for k, v in found.items()})
        unsupported.update(missing)
    protocol, fmr = task.protocols.comparisons[0], float(task.fmr_targets[0])
    threshold = val_threshold(val, protocol, fmr)
    name = f"{protocol}_fmr_{fmr:.0e}_threshold"
    metrics[f"val/{name}"] = threshold
    columns = [c for c in report_cfg.segment_columns if c in target.columns]
    segments = segment_rates(target, columns, threshold, report_cfg.min_subjects, boot)
    metrics[f"{cfg.split}/failures_to_acquire"] = int((~target["acquired"]).sum())

    out = Path(cfg.paths.output_dir)
    write_parquet(table, out / "scores.parquet")
    if search is not None:
        write_parquet(search, out / "search.parquet")
    write_json(metrics, out / "metrics.json")
    headline = target[target["protocol"] == protocol]
    write_plots(matching_plot_tables(headline), out / "plots", MATCHING_AXES)
    with atomic_path(out / "segments.csv") as tmp:
        segments.to_csv(tmp, index=False)
    notes = [
        f"Scores from `{cfg.get('scores') or cfg.ckpt_path}`, split `{cfg.split}`; comparison "
        f"protocols {list(task.protocols.comparisons)} (`_demographic`: impostors of the same "
        f"sex, age band and skin tone only). Segment rates at the val threshold {name} = "
        f"{threshold:.4f}, by the probe's segment. Plots: the first protocol.",
        *[f"`{cfg.split}/{k}` not supported: {v.reason}." for k, v in unsupported.items()],
    ]
    write_text(
        markdown_report(f"{task.name}: evaluation on {cfg.split}", metrics, segments, [], notes),
        out / "report.md",
    )
    log.info("wrote scores.parquet, search.parquet, metrics.json, report.md, plots/ in %s", out)
    return Evaluation(metrics, table, out)


def score_matching_splits(cfg: DictConfig, splits: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Comparison tables of `splits` and the search table of the reported split, from the
    embeddings of `ckpt_path`'s model."""
    net, train_cfg = net_from_checkpoint(cfg.ckpt_path)
    datamodule = _datamodule(cfg, train_cfg)
    protocols = cfg.task.protocols
    tables, search = [], None
    for split in splits:
        frame = datamodule.split_frame(split)
        if frame.empty:
            raise ValueError(f"split {split!r} is empty under this protocol; cannot score it")
        embeddings = Embeddings(*predict_embeddings(net, datamodule.dataloader(split)))
        table = comparison_table(
            frame,
            embeddings,
            protocols.comparisons,
            max_impostors=protocols.max_impostors,
            seed=cfg.seed,
        )
        tables.append(table.assign(split=split))
        if split == cfg.split:
            search = search_table(
                frame,
                embeddings,
                enrolled_fraction=protocols.search.enrolled_fraction,
                top_k=protocols.search.top_k,
                gallery=OmegaConf.to_container(protocols.gallery, resolve=True),
                seed=cfg.seed,
            ).assign(split=split)
    return pd.concat(tables, ignore_index=True), search


def read_comparison_table(path: str) -> pd.DataFrame:
    """A comparison score table from disk (ours or a vendor's), checked for its columns."""
    table = pd.read_parquet(path)
    needed = [*COMPARISON_COLUMNS, "split", "protocol", "demographic_match"]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise KeyError(f"{path}: comparison table lacks column(s) {missing}")
    if "acquired" not in table.columns:
        table["acquired"] = table["score"].notna()
    return table


def _datamodule(cfg: DictConfig, train_cfg: dict[str, Any]):
    """The evaluation data, read with the transform the model was trained with."""
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    data_cfg["augment"] = train_cfg["augment"]
    datamodule = instantiate(data_cfg, _recursive_=False)
    datamodule.setup("validate")
    return datamodule


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
    datamodule = _datamodule(cfg, train_cfg)
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
