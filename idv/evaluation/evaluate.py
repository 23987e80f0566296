"""idv-evaluate's logic: score splits with a checkpoint (or read score tables), write the score
tables (`tables/`), metrics, plots and the report.

Thresholded figures (rates at a threshold, segments, differentials) need a threshold that did not
come from the reported split: a given `thresholds=<thresholds.json>` (the calibrated one; keys
`...@calibrated_threshold`), else the `val` split's (detection: its EER threshold,
`...@val_eer_threshold`; matching: the first protocol's threshold at the first FMR target). A
table without val rows and without a thresholds file (a vendor's scores on the test set) gets
every other figure, and the report says that the thresholded ones are not available: they are
never taken from the reported split.
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
from idv.evaluation.scoring import detection_table, predict_scores
from idv.evaluation.segments import (
    aggregate_sessions,
    demographic_differential,
    segment_report,
)
from idv.metrics.detection import detection_report, eer, generalised_scores, pct
from idv.metrics.resolution import NotSupported
from idv.score_tables import (
    read_comparison_table,
    read_detection_table,
    read_search_table,
    require_columns,
    require_splits,
    validate_comparison_table,
    validate_detection_table,
    validate_search_table,
)
from idv.tasks.checkpoint import net_from_checkpoint
from idv.thresholds import Thresholds

log = logging.getLogger(__name__)
VAL_EER, CALIBRATED = "val_eer_threshold", "calibrated_threshold"
TABLES = "tables"  # the score tables go to <output_dir>/tables/ (one DVC output per task)


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    scores: pd.DataFrame
    output_dir: Path


@dataclass(frozen=True)
class OperatingThreshold:
    """The threshold of the thresholded figures, the name their keys carry, and a note."""

    value: float | None
    name: str
    note: str


def operating_threshold(cfg: DictConfig, val: tuple[float, str, str] | None) -> OperatingThreshold:
    """The given thresholds.json's global headline threshold, else `val` = (threshold, name,
    description) from the val split, else none (module docstring)."""
    if cfg.get("thresholds"):
        thresholds = Thresholds.load(cfg.thresholds)
        kind = cfg.task.get("kind", "detection")
        if thresholds.kind != kind:
            raise ValueError(
                f"{cfg.thresholds}: thresholds of kind {thresholds.kind!r}, but task "
                f"{cfg.task.name!r} is of kind {kind!r}"
            )
        entry = thresholds.global_entry()
        note = (
            f"Thresholded figures at the calibrated threshold {entry.threshold:.4f} "
            f"(`{entry.id}` of `{cfg.thresholds}`)."
        )
        return OperatingThreshold(entry.threshold, CALIBRATED, note)
    if val is not None:
        value, name, what = val
        return OperatingThreshold(
            value, name, f"Thresholded figures at the {what} threshold {name} = {value:.4f}."
        )
    return OperatingThreshold(
        None,
        CALIBRATED,
        "Thresholded figures (rates at a threshold, segments, differentials) are not "
        "available: the table has no `val` rows and no thresholds.json was given "
        "(thresholds=<file>); a threshold is never taken from the reported split.",
    )


# ------------------------------------------------------------------------------------ detection


def evaluate(cfg: DictConfig) -> Evaluation:
    """Score with `ckpt_path`, or read an existing score table from `scores` (ours or a
    vendor's: the same code judges both), then write metrics, plots and the report. The task's
    `kind` says which table: detection here, comparisons and searches for `matching`."""
    if bool(cfg.get("scores")) == bool(cfg.get("ckpt_path")):
        raise ValueError("give exactly one of ckpt_path=<checkpoint> or scores=<score table>")
    if cfg.task.get("kind", "detection") == "matching":
        return evaluate_matching(cfg)
    table = read_detection_table(cfg.scores) if cfg.get("scores") else score_splits(cfg)
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

    out = Path(cfg.paths.output_dir)
    segments, differentials, notes = _segments(target, operating.value, cfg)
    notes += [f"`{cfg.split}/{k}` not supported: {v.reason}." for k, v in unsupported.items()]
    for d in differentials:
        metrics[f"{cfg.split}/differential_{d.rate}_{d.column}"] = d.value
    write_parquet(table, out / TABLES / "scores.parquet")
    write_json(metrics, out / "metrics.json")
    write_plots(detection_plot_tables(target), out / "plots")
    with atomic_path(out / "segments.csv") as tmp:
        segments.to_csv(tmp, index=False)
    notes = [
        f"Scores from `{cfg.get('scores') or cfg.ckpt_path}`, split `{cfg.split}`, protocol "
        f"`{cfg.data.protocol.name}`.",
        operating.note,
        *notes,
    ]
    write_text(
        markdown_report(
            f"{cfg.task.name}: evaluation on {cfg.split}", metrics, segments, differentials, notes
        ),
        out / "report.md",
    )
    log.info("wrote tables/, metrics.json, segments.csv, report.md, plots/ in %s", out)
    return Evaluation(metrics, table, out)


def score_splits(cfg: DictConfig) -> pd.DataFrame:
    """The detection score table of the configured splits, scored with `ckpt_path`."""
    net, train_cfg = net_from_checkpoint(cfg.ckpt_path)
    # The eval transform must be the one the model was trained with (input size, statistics).
    datamodule = _datamodule(cfg, train_cfg)
    tables = []
    for split in _scored_splits(cfg):
        rows = datamodule.split_frame(split)
        if rows.empty:
            raise ValueError(f"split {split!r} is empty under this protocol; cannot score it")
        scores = predict_scores(net, datamodule.dataloader(split))
        tables.append(detection_table(rows, scores))
    return validate_detection_table(pd.concat(tables, ignore_index=True), "scored splits")


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


# ------------------------------------------------------------------------------------- matching


def evaluate_matching(cfg: DictConfig) -> Evaluation:
    """Face matching: comparison tables of every scored split (tables/scores.parquet) and their
    search tables (tables/search.parquet), and their metrics on the reported split per
    protocol, impostor set and probe segment. From files: `scores=` (comparisons) and
    optionally `search=` (searches)."""
    task, report_cfg = cfg.task, cfg.report
    if cfg.get("scores"):
        table = read_comparison_table(cfg.scores)
        search = read_search_table(cfg.search) if cfg.get("search") else None
    else:
        table, search = score_matching_splits(cfg, _scored_splits(cfg))
    require_columns(table, ["split", "protocol", "demographic_match"], "matching evaluation")
    require_splits(table, [cfg.split], "evaluation")
    val, target = table[table["split"] == "val"], table[table["split"] == cfg.split]
    boot = OmegaConf.to_container(cfg.bootstrap, resolve=True)
    found, intervals, unsupported = verification_metrics(
        target, task.fmr_targets, report_cfg.min_subjects, boot
    )
    metrics: dict[str, Any] = {f"{cfg.split}/{k}": v for k, v in found.items()}
    protocol, fmr = task.protocols.comparisons[0], float(task.fmr_targets[0])
    val_point = None
    if len(val):  # only val's EERs are reported: no intervals, no operating points
        val_found, _, _ = verification_metrics(val, (), report_cfg.min_subjects, None)
        metrics.update({f"val/{k}": v for k, v in val_found.items() if k.endswith("/eer")})
        name = f"{protocol}_fmr_{fmr:.0e}_threshold"
        val_point = (val_threshold(val, protocol, fmr), name, f"val {protocol} FMR {fmr:g}")
        metrics[f"val/{name}"] = val_point[0]
    metrics.update(flatten(f"{cfg.split}/", intervals))
    if search is not None:
        require_splits(search, [cfg.split], "1:N evaluation")
        rows = search[search["split"] == cfg.split] if "split" in search.columns else search
        found, missing = search_metrics(rows, task.fpir_targets, report_cfg.min_subjects)
        metrics.update({f"{cfg.split}/{k}": v for k, v in found.items()})
        unsupported.update(missing)
    operating = operating_threshold(cfg, val_point)
    segments = pd.DataFrame()
    if operating.value is not None:
        columns = [c for c in report_cfg.segment_columns if c in target.columns]
        segments = segment_rates(target, columns, operating.value, report_cfg.min_subjects, boot)
    metrics[f"{cfg.split}/failures_to_acquire"] = int((~target["acquired"]).sum())

    out = Path(cfg.paths.output_dir)
    write_parquet(table, out / TABLES / "scores.parquet")
    if search is not None:
        write_parquet(search, out / TABLES / "search.parquet")
    write_json(metrics, out / "metrics.json")
    headline = target[target["protocol"] == protocol]
    write_plots(matching_plot_tables(headline), out / "plots", MATCHING_AXES)
    with atomic_path(out / "segments.csv") as tmp:
        segments.to_csv(tmp, index=False)
    notes = [
        f"Scores from `{cfg.get('scores') or cfg.ckpt_path}`, split `{cfg.split}`; comparison "
        f"protocols {list(task.protocols.comparisons)} (`_demographic`: impostors of the same "
        "sex, age band and skin tone only). Segment rates by the probe's segment. Plots: the "
        "first protocol.",
        operating.note,
        *[f"`{cfg.split}/{k}` not supported: {v.reason}." for k, v in unsupported.items()],
    ]
    if search is None:
        notes.append("No search table: no 1:N figures (give search=<search table>).")
    write_text(
        markdown_report(f"{task.name}: evaluation on {cfg.split}", metrics, segments, [], notes),
        out / "report.md",
    )
    log.info("wrote tables/, metrics.json, report.md, plots/ in %s", out)
    return Evaluation(metrics, table, out)


def score_matching_splits(cfg: DictConfig, splits: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Comparison and search tables of `splits` (calibration reads calib's, the report the
    reported split's), from the embeddings of `ckpt_path`'s model."""
    net, train_cfg = net_from_checkpoint(cfg.ckpt_path)
    datamodule = _datamodule(cfg, train_cfg)
    protocols = cfg.task.protocols
    tables, searches = [], []
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
        searched = search_table(
            frame,
            embeddings,
            enrolled_fraction=protocols.search.enrolled_fraction,
            top_k=protocols.search.top_k,
            gallery=OmegaConf.to_container(protocols.gallery, resolve=True),
            seed=cfg.seed,
        )
        searches.append(searched.assign(split=split))
    return (
        validate_comparison_table(pd.concat(tables, ignore_index=True), "scored splits"),
        validate_search_table(pd.concat(searches, ignore_index=True), "scored splits"),
    )


# --------------------------------------------------------------------------------------- shared


def _scored_splits(cfg: DictConfig) -> list[str]:
    return list(dict.fromkeys(["val", *cfg.score_splits, cfg.split]))


def _datamodule(cfg: DictConfig, train_cfg: dict[str, Any]):
    """The evaluation data, read with the transform the model was trained with."""
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    data_cfg["augment"] = train_cfg["augment"]
    datamodule = instantiate(data_cfg, _recursive_=False)
    datamodule.setup("validate")
    return datamodule
