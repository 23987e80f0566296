"""Judging matching score tables (the `matching` kind): comparison (1:1) and search (1:N)
tables -> FNMR@FMR, EER, TAR@FAR, FNIR@FPIR, rank-k, per protocol, impostor set and segment.

The tables are the blueprint's: a comparison table (one row per comparison) and a search table
(one row per returned candidate; `idv.tasks.scoring` builds ours), so a vendor's scores in the
same format are judged by the same code. A failure to acquire (`acquired = False`) is a
non-match (ISO/IEC 19795-1). Intervals resample probe subjects (`subject_id_b`): comparisons
sharing a probe are correlated.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from idv.atomic import atomic_path, write_json, write_text
from idv.evaluation.intervals import flatten
from idv.evaluation.plots import MATCHING_AXES, matching_plot_tables, write_plots
from idv.evaluation.report import markdown_report
from idv.evaluation.thresholding import operating_threshold
from idv.metrics.bootstrap import (
    Interval,
    bootstrap_curve,
    eer_statistic,
    fnmr_at_fmr_statistic,
    percentile_interval,
    rate_replicates,
    resample_counts,
)
from idv.metrics.identification import identification_report
from idv.metrics.resolution import NotSupported
from idv.metrics.verification import (
    generalised_similarities,
    threshold_at_fmr,
    verification_report,
)
from idv.score_tables import require_columns, require_splits

log = logging.getLogger(__name__)
IMPOSTOR_SETS = ("all", "demographic")


def impostor_set(table: pd.DataFrame, name: str) -> pd.DataFrame:
    """Genuine comparisons plus all impostors, or only the demographic-matched ones."""
    if name == "all":
        return table
    if name == "demographic":
        return table[table["genuine"] | table["demographic_match"]]
    raise ValueError(f"unknown impostor set {name!r}; expected one of {IMPOSTOR_SETS}")


def verification_metrics(
    table: pd.DataFrame,
    fmr_targets: Sequence[float],
    min_subjects: int,
    bootstrap: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Interval], dict[str, NotSupported]]:
    """Flat keys `<protocol>[_demographic]/<metric>`, their intervals (none when `bootstrap`
    is None), and what is unsupported."""
    metrics: dict[str, Any] = {}
    intervals: dict[str, Interval] = {}
    unsupported: dict[str, NotSupported] = {}
    for protocol, rows in table.groupby("protocol", sort=False):
        for name in IMPOSTOR_SETS:
            subset = impostor_set(rows, name)
            prefix = protocol if name == "all" else f"{protocol}_demographic"
            if subset["genuine"].all() or not subset["genuine"].any():
                continue
            report = verification_report(subset, fmr_targets, min_subjects)
            for key, value in report.items():
                if isinstance(value, NotSupported):
                    unsupported[f"{prefix}/{key}"] = value
                    value = None
                metrics[f"{prefix}/{key}"] = value
            if bootstrap is not None:
                found = _intervals(subset, report, bootstrap)
                intervals.update({f"{prefix}/{k}": v for k, v in found.items()})
    return metrics, intervals, unsupported


def _intervals(
    table: pd.DataFrame, report: Mapping[str, Any], bootstrap: Mapping[str, Any]
) -> dict[str, Interval]:
    scores = _generalised(table)
    labels = table["genuine"].astype(int).to_numpy()
    subjects = table["subject_id_b"].astype(str).to_numpy()
    result = {"eer": bootstrap_curve(scores, labels, subjects, eer_statistic, **bootstrap)}
    for key, value in report.items():
        if (
            key.startswith("fnmr_at_fmr_")
            and value is not None
            and not isinstance(value, NotSupported)
        ):
            target = float(key.removeprefix("fnmr_at_fmr_"))
            result[key] = bootstrap_curve(
                scores, labels, subjects, fnmr_at_fmr_statistic(target), **bootstrap
            )
    return result


def _generalised(table: pd.DataFrame) -> np.ndarray:
    """Similarities with failures to acquire at -inf (a non-match at any threshold); the
    bootstrap wants finite scores, so they sit just below every real score."""
    acquired = table["acquired"] if "acquired" in table else table["score"].notna()
    s = generalised_similarities(table["score"].to_numpy(np.float64), acquired)
    finite = np.isfinite(s)
    return np.where(finite, s, s[finite].min() - 1.0)


def val_threshold(val: pd.DataFrame, protocol: str, fmr: float) -> float:
    """The threshold where `protocol`'s val comparisons reach FMR <= `fmr`."""
    rows = val[val["protocol"] == protocol]
    return threshold_at_fmr(_generalised(rows), rows["genuine"].to_numpy(bool), fmr)


def segment_rates(
    table: pd.DataFrame,
    columns: Sequence[str],
    threshold: float,
    min_subjects: int,
    bootstrap: Mapping[str, Any] | None,
) -> pd.DataFrame:
    """Per (protocol, probe segment column, group): FNMR, FMR and demographic-matched FMR at
    one global threshold, with probe-subject bootstrap intervals; `too_small` flags groups with
    fewer than `min_subjects` probe subjects."""
    rows = []
    scores = _generalised(table)
    match = scores >= threshold
    resamples = None
    if bootstrap:  # one set of probe-subject resamples shared by every group
        subjects = table["subject_id_b"].astype(str).to_numpy()
        resamples = resample_counts(subjects, bootstrap["n_resamples"], bootstrap["seed"])
    for protocol in table["protocol"].unique():
        in_protocol = (table["protocol"] == protocol).to_numpy()
        for column in (c for c in columns if c in table.columns):
            for group in sorted(table.loc[in_protocol, column].dropna().unique(), key=str):
                where = in_protocol & (table[column] == group).to_numpy()
                rows.append(
                    {
                        "protocol": protocol,
                        "segment": column,
                        "group": group,
                        **_group_rates(table, where, match, min_subjects, resamples, bootstrap),
                    }
                )
    return pd.DataFrame(rows)


def _group_rates(
    table: pd.DataFrame,
    where: np.ndarray,
    match: np.ndarray,
    min_subjects: int,
    resamples: tuple[np.ndarray, np.ndarray] | None,
    bootstrap: Mapping[str, Any] | None,
) -> dict[str, Any]:
    genuine = table["genuine"].to_numpy(bool)
    hard = table["demographic_match"].to_numpy(bool)
    sets = {"fnmr": where & genuine, "fmr": where & ~genuine, "fmr_demographic": where & hard}
    errors = {"fnmr": ~match, "fmr": match, "fmr_demographic": match}
    subjects = table.loc[where, "subject_id_b"].nunique()
    out: dict[str, Any] = {
        "probe_subjects": int(subjects),
        "genuine": int(sets["fnmr"].sum()),
        "impostors": int(sets["fmr"].sum()),
    }
    for name, rows in sets.items():
        out[name] = float(errors[name][rows].mean()) if rows.any() else np.nan
    out["too_small"] = subjects < min_subjects
    if resamples is not None and subjects >= 2:
        codes, counts = resamples
        for name, rows in sets.items():
            if rows.any():
                reps = rate_replicates(errors[name], codes, counts, where=rows)
                interval = percentile_interval(np.nan, reps, bootstrap["level"])
                if interval is not None:
                    out[f"{name}_low"], out[f"{name}_high"] = interval.low, interval.high
    return out


def search_metrics(
    table: pd.DataFrame, fpir_targets: Sequence[float], min_subjects: int
) -> tuple[dict[str, Any], dict[str, NotSupported]]:
    """Flat `search/<metric>` keys (FNIR at FPIR, rank-1/5, counts) and what is unsupported."""
    report = identification_report(table, fpir_targets, min_subjects=min_subjects)
    unsupported = {f"search/{k}": v for k, v in report.items() if isinstance(v, NotSupported)}
    metrics = {f"search/{k}": None if isinstance(v, NotSupported) else v for k, v in report.items()}
    metrics["search/mated_subjects"] = int(table.loc[table["mated"], "probe_subject_id"].nunique())
    return metrics, unsupported


def evaluate_matching(
    cfg: DictConfig, tables: Mapping[str, pd.DataFrame], out: Path
) -> dict[str, Any]:
    """metrics.json, segments.csv, plots/ and report.md of the reported split (`cfg.split`):
    per protocol, impostor set and probe segment from the comparisons (`scores`), and 1:N
    figures from the searches (`search`) when given; returns the metrics."""
    task, report_cfg = cfg.task, cfg.report
    table, search = tables["scores"], tables.get("search")
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
    return metrics
