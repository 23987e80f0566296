"""Face-matching evaluation: embeddings -> comparison (1:1) and search (1:N) score tables ->
FNMR@FMR, EER, TAR@FAR, FNIR@FPIR, rank-k, per protocol, impostor set and segment.

The score tables are the blueprint's: a comparison table (one row per comparison) and a search
table (one row per returned candidate), so a vendor's scores in the same format are judged by
the same code. A sample without an embedding (no face found at import: `acquired = False`)
keeps its comparisons and searches as failures to acquire (a non-match, ISO/IEC 19795-1).
Intervals resample probe subjects (`subject_id_b`): comparisons sharing a probe are correlated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from idv.data.comparisons import PROBE_COLUMNS, comparison_pairs, search_protocol
from idv.metrics.bootstrap import (
    Interval,
    bootstrap_curve,
    eer_statistic,
    fnmr_at_fmr_statistic,
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
from idv.serving.gallery import Gallery

IMPOSTOR_SETS = ("all", "demographic")


@torch.inference_mode()
def predict_embeddings(net: nn.Module, loader: DataLoader) -> tuple[list[str], np.ndarray]:
    """(sample ids, float32 unit-norm embeddings) of every sample the loader yields."""
    net.eval()
    ids, out = [], []
    for batch in loader:
        out.append(net(batch.image).float())
        ids.extend(batch.sample_id)
    return ids, torch.cat(out).numpy()


class Embeddings:
    """Embeddings by sample id; samples without one are failures to acquire."""

    def __init__(self, sample_ids: Sequence[str], vectors: np.ndarray) -> None:
        self.row = {s: i for i, s in enumerate(sample_ids)}
        self.vectors = vectors

    def lookup(self, sample_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, acquired); a missing sample gets a zero vector and acquired False."""
        rows = np.array([self.row.get(s, -1) for s in sample_ids], dtype=np.int64)
        found = rows >= 0
        vectors = np.zeros((len(rows), self.vectors.shape[1]), np.float32)
        vectors[found] = self.vectors[rows[found]]
        return vectors, found


def comparison_table(
    frame: pd.DataFrame,
    embeddings: Embeddings,
    protocols: Sequence[str],
    *,
    max_impostors: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The comparison score table of a split: cosine similarity per pair, `acquired` False
    (score NaN) where either side has no embedding."""
    tables = []
    for protocol in protocols:
        pairs = comparison_pairs(frame, protocol, max_impostors=max_impostors, seed=seed)
        if pairs.empty:
            continue
        a, ok_a = embeddings.lookup(pairs["sample_id_a"].tolist())
        b, ok_b = embeddings.lookup(pairs["sample_id_b"].tolist())
        acquired = ok_a & ok_b
        score = np.where(acquired, np.einsum("ij,ij->i", a, b), np.nan)
        tables.append(pairs.assign(score=score, acquired=acquired))
    if not tables:
        raise ValueError(f"no comparisons of protocols {list(protocols)} in this split")
    return pd.concat(tables, ignore_index=True)


def search_table(
    frame: pd.DataFrame,
    embeddings: Embeddings,
    *,
    enrolled_fraction: float,
    top_k: int,
    gallery: Mapping[str, Any],
    seed: int = 0,
) -> pd.DataFrame:
    """The search score table of a split: probes searched in a FAISS gallery of the enrolled
    subjects, one row per returned candidate (an unacquired probe: one empty row)."""
    protocol = search_protocol(frame, enrolled_fraction=enrolled_fraction, seed=seed)
    enrol, enrolled_ok = embeddings.lookup(protocol.gallery["sample_id"].tolist())
    index = Gallery.from_config(dict(gallery))
    index.enrol(enrol[enrolled_ok], protocol.gallery["subject_id"].to_numpy(dtype=str)[enrolled_ok])
    probes = protocol.probes
    vectors, acquired = embeddings.lookup(probes["sample_id"].tolist())
    found = index.search(vectors[acquired], k=top_k, distinct_ids=True)
    keep = [c for c in PROBE_COLUMNS if c in probes.columns]
    rows: list[dict[str, Any]] = []
    result_row = np.cumsum(acquired) - 1
    for i, probe in enumerate(probes.itertuples(index=False)):
        base = {
            "search_id": f"search:{i}",
            "probe_sample_id": probe.sample_id,
            "probe_subject_id": probe.subject_id,
            "mated": bool(probe.mated),
            "acquired": bool(acquired[i]),
            **{c: getattr(probe, c) for c in keep},
        }
        if not acquired[i]:
            rows.append({**base, "rank": np.nan, "candidate_subject_id": None, "score": np.nan})
            continue
        r = result_row[i]
        for j in np.flatnonzero(found.valid[r]):
            rows.append(
                {
                    **base,
                    "rank": int(found.ranks[r, j]),
                    "candidate_subject_id": found.ids[r, j],
                    "score": float(found.scores[r, j]),
                }
            )
    return pd.DataFrame(rows)


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
        bounds = [(1 - bootstrap["level"]) / 2, (1 + bootstrap["level"]) / 2]
        for name, rows in sets.items():
            if rows.any():
                reps = rate_replicates(errors[name], codes, counts, where=rows)
                out[f"{name}_low"], out[f"{name}_high"] = np.nanquantile(reps, bounds)
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
