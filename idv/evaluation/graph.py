"""Judging a graph task (kind `graph`: rings): the detection report, plus what a fraud team
asks of a ranking of accounts.

`evaluate_graph` writes everything `evaluate_detection` writes (metrics.json, segments.csv,
plots/, report.md) and adds, on the reported split:

- ranking figures with bootstrap intervals: average precision (against its base rate), ROC
  AUC, recall at FPR 1% and 0.1% (`task.bpcer_targets`), precision@k for each review
  capacity k (`task.precision_at`);
- the baselines scored beside the network (`output/<name>` columns: `tabular`, `rules`): the
  same figures, and the paired difference in AP of the network over each (one shared
  resample of both systems);
- ring-level figures at the operating threshold (the FPR target `task.calibration_targets[0]`
  chosen on val): the share of rings with at least `task.rings.min_members` flagged members,
  and the purity / ARI of the rings recovered from the flagged accounts through their shared
  attributes (`idv.metrics.rings`, the corpus' links read through `idv.data.graph_tables`;
  attributes held by more than `task.rings.max_attribute_degree` accounts are left out).

Intervals resample rings, not accounts: the members of a ring are one unit of dependence (one
operator), so an account bootstrap would understate the width. A legitimate account is its own
unit.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from idv.atomic import write_json, write_text
from idv.data.graph_tables import read_graph_tables
from idv.evaluation.detection import evaluate_detection
from idv.markdown import table as markdown_table
from idv.metrics.bootstrap import (
    auc_statistic,
    average_precision_statistic,
    bootstrap_curve,
    paired_bootstrap_difference,
    recall_at_fpr_statistic,
)
from idv.metrics.detection import pct
from idv.metrics.ranking import precision_at_k, threshold_at_fpr
from idv.metrics.rings import resampling_units, ring_report

BASELINES = ("tabular", "rules")


def ranking_figures(
    table: pd.DataFrame, column: str, cfg: DictConfig, boot: Mapping[str, Any]
) -> dict[str, float]:
    """AP, AUC, recall at each FPR target (with intervals) and precision@k of one score column."""
    s = table[column].to_numpy(np.float64)
    y = table["label"].to_numpy(np.int64)
    unit = resampling_units(table)
    out: dict[str, float] = {}
    statistics = {"average_precision": average_precision_statistic, "auc": auc_statistic}
    for target in cfg.task.bpcer_targets:
        statistics[f"recall_at_fpr_{pct(target)}"] = recall_at_fpr_statistic(float(target))
    for name, statistic in statistics.items():
        interval = bootstrap_curve(s, y, unit, statistic, **boot)
        out[name] = float(interval.estimate)
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = float(interval.low), float(interval.high)
    for k in cfg.task.precision_at:
        if int(k) <= len(s):
            out[f"precision_at_{int(k)}"] = precision_at_k(s, y, int(k))
    return out


def evaluate_graph(cfg: DictConfig, tables: Mapping[str, pd.DataFrame], out: Path) -> dict:
    """The detection evaluation, plus ranking, baseline and ring figures (module docstring)."""
    metrics = evaluate_detection(cfg, tables, out)
    table = tables["scores"]
    split = cfg.split
    target = table[(table["split"] == split) & table["acquired"]].reset_index(drop=True)
    boot = dict(cfg.bootstrap)
    prefix = f"{split}/"
    metrics[f"{prefix}base_rate"] = float(target["label"].mean())
    figures = {"model": ranking_figures(target, "score", cfg, boot)}
    metrics.update({prefix + k: v for k, v in figures["model"].items()})
    lines = [
        f"## Ranking on {split} (intervals resample rings; base rate "
        f"{metrics[prefix + 'base_rate']:.4f})",
        "",
    ]
    for name in BASELINES:
        column = f"output/{name}"
        if column not in target.columns:
            continue
        figures[name] = ranking_figures(target, column, cfg, boot)
        metrics.update({f"{prefix}{name}/{k}": v for k, v in figures[name].items()})
        diff = paired_bootstrap_difference(
            target[column].to_numpy(np.float64),
            target["score"].to_numpy(np.float64),
            target["label"].to_numpy(np.int64),
            resampling_units(target),
            average_precision_statistic,
            **boot,
        )
        key = f"{prefix}average_precision_gain_over_{name}"
        metrics[key] = float(diff.estimate)
        metrics[f"{key}_ci_low"], metrics[f"{key}_ci_high"] = float(diff.low), float(diff.high)
    rows = []
    for system, values in figures.items():
        row = {"system": system}
        for name in (
            "average_precision",
            "auc",
            *(f"recall_at_fpr_{pct(t)}" for t in cfg.task.bpcer_targets),
        ):
            low, high = values[name + "_ci_low"], values[name + "_ci_high"]
            row[name] = f"{values[name]:.3f} [{low:.3f}, {high:.3f}]"
        for k in cfg.task.precision_at:
            if f"precision_at_{int(k)}" in values:
                row[f"precision@{int(k)}"] = f"{values[f'precision_at_{int(k)}']:.3f}"
        rows.append(row)
    header = list(rows[0])
    lines += [markdown_table(header, [[r.get(h, "") for h in header] for r in rows]), ""]
    for name in BASELINES:
        key = f"{prefix}average_precision_gain_over_{name}"
        if key in metrics:
            lines.append(
                f"- AP gain of the model over `{name}`: {metrics[key]:+.3f} "
                f"[{metrics[key + '_ci_low']:+.3f}, {metrics[key + '_ci_high']:+.3f}] (paired)"
            )

    # Rings recovered at the operating threshold, chosen on val (never on the reported split).
    val = table[(table["split"] == "val") & table["acquired"]]
    max_fpr = float(cfg.task.calibration_targets[0])
    rings_known = "ring_id" in target.columns and target["ring_id"].notna().any()
    if not rings_known:  # an imported graph (Elliptic) labels accounts, not rings
        lines += ["", f"No ring ids in the {split} table: ring-level figures not computed."]
    elif len(val) and val["label"].nunique() == 2 and target["label"].sum() > 0:
        threshold = threshold_at_fpr(val["score"].to_numpy(), val["label"].to_numpy(), max_fpr)
        rings_cfg = cfg.task.rings
        links = _specific_links(read_graph_tables(_corpus_root(cfg)).links,
                                int(rings_cfg.max_attribute_degree))  # fmt: skip
        found = ring_report(
            target, links, threshold, min_members=int(rings_cfg.min_members),
            method=str(rings_cfg.recover), seed=int(cfg.seed),
            min_shared=int(rings_cfg.min_shared),
        )  # fmt: skip
        metrics[f"{prefix}ring_threshold"] = threshold
        metrics.update({f"{prefix}rings/{k}": float(v) for k, v in found.items()})
        lines += [
            "",
            f"## Rings on {split} at the val threshold for FPR {pct(max_fpr)} ({threshold:.4f})",
            "",
            f"- rings with at least {rings_cfg.min_members} flagged members: "
            f"{found['ring_recall']:.3f} of {target['ring_id'].nunique()}",
            f"- recovered from {int(found['flagged'])} flagged accounts ({rings_cfg.recover} over "
            f"shared attributes): {int(found['clusters'])} clusters, purity "
            f"{found['purity']:.3f}, ARI {found['ari']:.3f}",
        ]
    write_json(metrics, out / "metrics.json")
    report = (out / "report.md").read_text()
    write_text(report.rstrip() + "\n\n" + "\n".join(lines) + "\n", out / "report.md")
    return metrics


def _specific_links(links: pd.DataFrame, max_degree: int) -> pd.DataFrame:
    """Links to attributes held by at most `max_degree` accounts: a webmail domain or a
    carrier's IP block joins everyone and says nothing about a ring."""
    degree = links.groupby(["node_type", "node_key"])["account_id"].transform("nunique")
    return links[degree <= max_degree]


def _corpus_root(cfg: DictConfig) -> Path:
    return Path(cfg.data.root or Path(cfg.data.manifest).parent)
