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

from idv.atomic import write_json, write_parquet
from idv.evaluation.scoring import detection_table, predict_scores
from idv.metrics.detection import detection_report, eer
from idv.tasks.checkpoint import net_from_checkpoint

log = logging.getLogger(__name__)
THRESHOLD_NAME = "val_eer_threshold"


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    scores: pd.DataFrame
    output_dir: Path


def evaluate(cfg: DictConfig) -> Evaluation:
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
    table = pd.concat(tables, ignore_index=True)

    val = table[(table["split"] == "val") & table["acquired"]]
    point = eer(val["score"], val["label"])
    target = table[(table["split"] == cfg.split) & table["acquired"]]
    report = detection_report(
        target["score"],
        target["label"],
        target["attack_type"],
        point.threshold,
        THRESHOLD_NAME,
        cfg.task.apcer_targets,
    )
    metrics = {f"{cfg.split}/{k}": v for k, v in report.items()}
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

    out = Path(cfg.paths.output_dir)
    write_parquet(table, out / "scores.parquet")
    write_json(metrics, out / "metrics.json")
    log.info("wrote %s and %s", out / "scores.parquet", out / "metrics.json")
    return Evaluation(metrics, table, out)
