"""The model card: `model_card.json` (machine-readable) and `model_card.md` (the same, for people).

It records what the model is for and not for, the training data (manifest hash and size),
the evaluation (metrics with their subject-bootstrap intervals, per segment and demographic
group, read from an idv-evaluate output directory), the thresholds the bundle applies, the
code revision, the checkpoint and the full run config.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

import idv
from idv import markdown
from idv.data.manifest import DEMOGRAPHIC_COLUMNS
from idv.thresholds import Rate, Thresholds

SCHEMA_VERSION = 2
REQUIRED_FIELDS = (
    "schema_version",
    "task",
    "intended_use",
    "limitations",
    "model",
    "training_data",
    "evaluation",
    "thresholds",
    "code",
    "checkpoint",
    "formats",
    "parity",
    "run_config",
)

GENERIC_USE = (
    "{task} ({kind}): see the task's documentation; the bundle's thresholds turn its primary "
    "output into the decisions of thresholds.json's rule."
)
TEMPLATE = "model_card.md.j2"


def code_revision(start: str | Path | None = None) -> dict[str, Any]:
    """`git rev-parse HEAD` of the repository holding the code ("unknown" outside one)."""
    where = Path(start or Path(idv.__file__).resolve().parent)
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return {"revision": "unknown", "dirty": None, "idv_version": idv.__version__}
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
        return {"revision": head.stdout.strip(), "dirty": dirty, "idv_version": idv.__version__}
    except (OSError, subprocess.SubprocessError):
        return {"revision": "unknown", "dirty": None, "idv_version": idv.__version__}


def _clean(value: Any) -> Any:
    """JSON-safe scalars: NaN/inf as null, numpy scalars as Python ones."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_evaluation(evaluation_dir: str | Path | None) -> dict[str, Any] | None:
    """metrics.json (every metric with its `_ci_low` / `_ci_high` interval) and segments.csv
    (per segment and demographic group, with intervals) of an idv-evaluate output directory."""
    if evaluation_dir is None:
        return None
    root = Path(evaluation_dir)
    metrics_file, segments_file = root / "metrics.json", root / "segments.csv"
    for file in (metrics_file, segments_file):
        if not file.is_file():
            raise FileNotFoundError(
                f"evaluation_dir {root}: no {file.name} (is it an idv-evaluate output directory?)"
            )
    flat = json.loads(metrics_file.read_text())
    metrics: dict[str, Any] = {}
    for key, value in sorted(flat.items()):
        if key.endswith(("_ci_low", "_ci_high")):
            continue
        item: dict[str, Any] = {"estimate": _clean(value)}
        if f"{key}_ci_low" in flat or f"{key}_ci_high" in flat:
            item["interval"] = [
                _clean(flat.get(f"{key}_ci_low")),
                _clean(flat.get(f"{key}_ci_high")),
            ]
        metrics[key] = item
    # keep_default_na=False: a group named "NA" (North America) is a value, not a missing one.
    table = pd.read_csv(segments_file, keep_default_na=False, na_values=[""])
    groups: dict[str, list[dict[str, Any]]] = {"segments": [], "demographic_groups": []}
    rates = [c for c in table.columns if f"{c}_low" in table.columns]
    for row in table.to_dict("records"):
        item = {
            "column": row["segment"],
            "group": str(row["group"]),
            **{
                k: _clean(v)
                for k, v in row.items()
                if k not in ("segment", "group")
                and not k.endswith(("_low", "_high"))
                and k not in rates
            },
            "rates": {
                r: {
                    "estimate": _clean(row[r]),
                    "interval": [_clean(row[f"{r}_low"]), _clean(row[f"{r}_high"])],
                }
                for r in rates
            },
        }
        key = "demographic_groups" if row["segment"] in DEMOGRAPHIC_COLUMNS else "segments"
        groups[key].append(item)
    return {
        "source": str(root),
        "files": {"metrics": str(metrics_file), "segments": str(segments_file)},
        "interval": "subject-bootstrap percentile interval (see the evaluation's bootstrap config)",
        "metrics": metrics,
        **groups,
    }


def thresholds_summary(thresholds: Thresholds, sha256: str) -> dict[str, Any]:
    """The card's view of thresholds.json: for every operating-point metric (1:1 and 1:N for
    a matching task), the edges of its primary global and segment thresholds and their
    headline test rates (those without a species or group suffix)."""
    entries = [e for m in thresholds.metrics for e in thresholds.primary_entries(m)]
    return {
        "file": "thresholds.json",
        "sha256": sha256,
        "kind": thresholds.kind,
        "operating_point": asdict(thresholds.operating_point),
        "decision_rule": thresholds.decision.describe(),
        "calibration_split": thresholds.calibration_split,
        "details": {k: v for k, v in thresholds.details.items() if isinstance(v, str)},
        "thresholds": [
            {
                "id": e.id,
                "metric": e.operating_point.metric,
                "max": e.operating_point.max,
                "segment": e.segment_name,
                "threshold": e.threshold,
                "review_at_or_above": e.review_at_or_above,
                "source": e.source,
                "test": {k: asdict(r) for k, r in e.test.rates.items() if "/" not in k},
            }
            for e in entries
        ],
    }


def build_card(
    *,
    run_config: Mapping[str, Any],
    training_data: Mapping[str, Any],
    evaluation: Mapping[str, Any] | None,
    thresholds: Thresholds,
    thresholds_sha256: str,
    checkpoint: Mapping[str, Any],
    formats: Mapping[str, Any],
    parity: Mapping[str, Any],
    preprocess: Mapping[str, Any],
    intended_use: str | None = None,
    limitations: Sequence[str] = (),
    code: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """model_card.json's content; the prose comes from the task config (`card`)."""
    task = run_config.get("task", {})
    name, kind = task.get("name", "unknown"), task.get("kind")
    prose = task.get("card") or {}
    limits = list(prose.get("limitations") or []) + list(limitations)
    if evaluation is None:
        limits.append("No evaluation was attached to this export (evaluation_dir=null).")
    return {
        "schema_version": SCHEMA_VERSION,
        "task": {"name": name, "kind": kind},
        "intended_use": intended_use
        or prose.get("intended_use")
        or GENERIC_USE.format(task=name, kind=kind),
        "limitations": limits,
        "model": {
            "architecture": run_config.get("model", {}),
            "inputs": preprocess["inputs"],
            "outputs": preprocess["outputs"],
            "primary_output": preprocess["primary_output"],
            "acquisition": preprocess.get("acquisition"),
            "profile": run_config.get("profile"),
            "seed": run_config.get("seed"),
        },
        "training_data": dict(training_data),
        "evaluation": evaluation,
        "headline": list(prose.get("headline") or []),
        "thresholds": thresholds_summary(thresholds, thresholds_sha256),
        "code": dict(code or code_revision()),
        "checkpoint": dict(checkpoint),
        "formats": dict(formats),
        "parity": {
            k: parity[k]
            for k in ("samples", "tolerance", "batch_sizes", "near_threshold_samples")
            if k in parity
        }
        | {
            "max_abs_diff": {k: v["max_abs_diff"] for k, v in parity["formats"].items()},
            "outputs": list(parity.get("outputs") or {}),
            "detector": parity.get("detector"),
        },
        "run_config": run_config,
    }


def _rate(item: Mapping[str, Any] | None) -> str:
    if not item or item.get("estimate") is None:
        return "n/a"
    if isinstance(item["estimate"], int | str):
        return str(item["estimate"])
    interval = item.get("interval")
    if interval and None not in interval:
        return f"{item['estimate']:.4f} [{interval[0]:.4f}, {interval[1]:.4f}]"
    return f"{item['estimate']:.4f}"


def _cell(value: Any) -> str:
    if isinstance(value, Mapping):
        return _rate(value)
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _group_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Segment / demographic rows: every column they carry, then their rates."""
    rates = list(rows[0]["rates"])
    columns = [k for k in rows[0] if k not in ("rates",)]
    header = [c.replace("_", " ") for c in columns] + rates
    return markdown.table(
        header, ([r.get(c) for c in columns] + [r["rates"][k] for k in rates] for r in rows), _cell
    )


def card_markdown(card: Mapping[str, Any]) -> str:
    """model_card.md: the card for people (model_card.json has everything), rendered from
    `templates/model_card.md.j2`."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("idv.export", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    ev = card["evaluation"]
    metrics = (ev or {}).get("metrics") or {}
    headline = [
        k for suffix in card.get("headline", []) for k in metrics
        if k.startswith("test/") and k.endswith(suffix)
    ]  # fmt: skip
    header = ["metric", "estimate [interval]"]
    groups = {k: ev[k] for k in ("segments", "demographic_groups")} if ev else {}
    tables = {
        "headline": markdown.table(header, ((k, metrics[k]) for k in headline), _cell)
        if headline
        else "",
        "metrics": markdown.table(header, metrics.items(), _cell),
        **{k: _group_table(rows) if rows else "" for k, rows in groups.items()},
    }
    tables.setdefault("segments", "")
    tables.setdefault("demographic_groups", "")
    arch = card["model"]["architecture"]
    backbone = (arch.get("backbone") or {}).get("name", "?") if isinstance(arch, dict) else "?"
    thresholds = [
        {**e, "rates": ", ".join(f"test {k} {Rate.from_dict(v)}" for k, v in e["test"].items())}
        for e in card["thresholds"]["thresholds"]
    ]
    return env.get_template(TEMPLATE).render(
        card=card, tables=tables, backbone=backbone, thresholds=thresholds
    )
