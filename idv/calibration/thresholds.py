"""idv-calibrate's logic: score table(s) -> thresholds.json (the single source of truth for
decision thresholds, `idv.thresholds.Thresholds`) and thresholds.md.

`run_calibration` reads the score table file of the task's kind through its one reader
(`idv.score_tables`), hashes every input (and the checkpoint, when given and present), calls the
kind's calibrator (`idv.calibration.detection`, `idv.calibration.matching`) and writes both files
atomically. `calibrate(cfg)` is the same from the composed `calibrate` config.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from idv.atomic import write_text
from idv.calibration.detection import calibrate_detection
from idv.calibration.matching import calibrate_matching
from idv.calibration.reporting import markdown_summary
from idv.hashing import sha256_file
from idv.score_tables import read_comparison_table, read_detection_table, read_search_table
from idv.thresholds import Thresholds

log = logging.getLogger(__name__)

__all__ = ["calibrate", "calibrate_detection", "calibrate_matching", "run_calibration"]

SEARCH_FILE = "search.parquet"  # idv-evaluate writes it beside the comparison table
AUTO = "auto"


def _hashed(path: Path) -> dict[str, str]:
    return {"path": str(path), "sha256": sha256_file(path)}


def run_calibration(
    scores: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    ckpt_path: str | os.PathLike | None = None,
    task: str | None = None,
    kind: str = "detection",
    search: str | os.PathLike | None = None,
    **options: Any,
) -> Thresholds:
    """Read the score table `scores` (and, for a matching task, the search table `search`),
    calibrate with the kind's calibrator (`**options` go to it), and write `thresholds.json` and
    `thresholds.md` in `output_dir`."""
    path = Path(scores)
    inputs: dict[str, Any] = {"scores": None, "search": None, "checkpoint": None}
    if kind == "detection":
        table = read_detection_table(path)
        inputs["scores"] = _hashed(path)
        result = calibrate_detection(table, **options)
    elif kind == "matching":
        table = read_comparison_table(path)
        inputs["scores"] = _hashed(path)
        searched = None
        if search is not None:
            searched = read_search_table(search)
            inputs["search"] = _hashed(Path(search))
        result = calibrate_matching(table, search=searched, **options)
    else:
        raise ValueError(f"no calibration for task kind {kind!r}")
    if ckpt_path is not None:
        ckpt = Path(ckpt_path)
        if ckpt.is_file():
            inputs["checkpoint"] = _hashed(ckpt)
        else:
            inputs["checkpoint"] = {"path": str(ckpt), "sha256": None, "note": "not found"}
            log.warning("checkpoint %s not found: thresholds.json records it unhashed", ckpt)
    result = replace(result, task=task, inputs=inputs)
    out = Path(output_dir)
    write_text(result.to_json(), out / "thresholds.json")
    write_text(markdown_summary(result), out / "thresholds.md")
    log.info("wrote thresholds.json and thresholds.md in %s", out)
    return result


def _search_path(cfg) -> str | None:
    """`search: auto` is idv-evaluate's search table beside `scores`: it must be there."""
    search = cfg.get("search")
    if search != AUTO:
        return search
    found = Path(cfg.scores).parent / SEARCH_FILE
    if not found.is_file():
        raise FileNotFoundError(
            f"no search table {found} beside scores={cfg.scores} (search=auto): give "
            "search=<search.parquet>, or search=null fpir_targets=[] for 1:1 thresholds only"
        )
    return str(found)


def calibrate(cfg) -> Thresholds:
    """`run_calibration` from the composed `calibrate` config (conf/calibrate.yaml)."""
    from omegaconf import OmegaConf

    kind = cfg.task.get("kind", "detection")
    common = {
        "ckpt_path": cfg.get("ckpt_path"),
        "task": cfg.task.name,
        "kind": kind,
        "targets": list(cfg.targets),
        "segments": list(cfg.segments or []),
        "min_subjects": int(cfg.min_subjects),
        "review_share": float(cfg.review_share),
        "bootstrap": OmegaConf.to_container(cfg.bootstrap, resolve=True),
        "calib_split": cfg.get("calib_split", "calib"),
        "report_split": cfg.get("report_split", "test"),
        "score_range": list(cfg.task.score_range),
    }
    if kind == "matching":
        fpir_targets = list(cfg.fpir_targets or [])
        search = _search_path(cfg) if fpir_targets else None
        return run_calibration(
            cfg.scores,
            cfg.output_dir,
            **common,
            search=search,
            fpir_targets=fpir_targets,
            protocol=cfg.task.calibration_protocol,
        )
    return run_calibration(
        cfg.scores, cfg.output_dir, **common, score_calibration=cfg.score_calibration
    )
