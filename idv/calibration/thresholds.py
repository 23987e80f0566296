"""idv-calibrate's logic: score table(s) -> thresholds.json (the single source of truth for
decision thresholds, `idv.thresholds.Thresholds`) and thresholds.md, for any kind.

`run_calibration` reads the primary score table (`scores`) and the kind's other tables (by
role, e.g. `search` for matching) through their one reader (`idv.score_tables`), hashes every
input (and the checkpoint, when given and present), calls the kind's calibrator (`idv.kinds`
part `calibrate`: the primary table, the other roles as keyword arguments, the options) and
writes both files atomically. `calibrate(cfg)` is the same from the composed `calibrate` config;
the kind reads its options, and which of its other tables they need, from it (part
`calibration_options`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from idv import kinds
from idv.atomic import write_text
from idv.calibration.reporting import markdown_summary
from idv.hashing import sha256_file
from idv.progress import step
from idv.score_tables import read_table
from idv.thresholds import Thresholds

log = logging.getLogger(__name__)

__all__ = ["calibrate", "run_calibration"]

AUTO = "auto"  # a role's table is idv-evaluate's <role>.parquet beside the primary one


def _hashed(path: Path) -> dict[str, str]:
    return {"path": str(path), "sha256": sha256_file(path)}


def run_calibration(
    scores: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    kind: str,
    tables: Mapping[str, str | os.PathLike] | None = None,
    ckpt_path: str | os.PathLike | None = None,
    task: str | None = None,
    **options: Any,
) -> Thresholds:
    """Read the primary table `scores` (and `tables`: the kind's other roles, by path),
    calibrate with the kind's calibrator (`**options` go to it), and write `thresholds.json`
    and `thresholds.md` in `output_dir`."""
    spec = kinds.get(kind)
    paths = {"scores": Path(scores), **{r: Path(p) for r, p in (tables or {}).items()}}
    unknown = sorted(set(paths) - set(spec.tables))
    if unknown:
        raise ValueError(
            f"kind {kind!r} has no table role(s) {unknown}; roles: {list(spec.tables)}"
        )
    read = {role: read_table(path, spec.tables[role]) for role, path in paths.items()}
    inputs: dict[str, Any] = {role: None for role in spec.tables}
    inputs.update({role: _hashed(path) for role, path in paths.items()})
    inputs["checkpoint"] = None
    primary = read.pop("scores")
    with step(log, f"calibrated {kind} thresholds") as note:
        result = spec.calibrate(primary, **read, **options)
        note["detail"] = ", ".join(result.metrics)
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


def _role_path(cfg, role: str) -> str | None:
    """`<role>: auto` is idv-evaluate's `<role>.parquet` beside `scores` (it must exist)."""
    value = cfg.get(role)
    if value != AUTO:
        return value
    found = Path(cfg.scores).parent / f"{role}.parquet"
    if not found.is_file():
        raise FileNotFoundError(
            f"no {role} table {found} beside scores={cfg.scores} ({role}=auto): give "
            f"{role}=<file>, or {role}=null (and the options that need it off)"
        )
    return str(found)


def calibrate(cfg) -> Thresholds:
    """`run_calibration` from the composed `calibrate` config (conf/calibrate.yaml)."""
    kind = kinds.of_task(cfg.task)
    options, roles = kind.calibration_options(cfg)
    tables = {role: path for role in roles if (path := _role_path(cfg, role))}
    return run_calibration(
        cfg.scores,
        cfg.output_dir,
        kind=kind.name,
        tables=tables,
        ckpt_path=cfg.get("ckpt_path"),
        task=cfg.task.name,
        **options,
    )
