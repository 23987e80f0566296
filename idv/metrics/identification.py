"""1:N open-set search metrics (NIST FRTE 1:N, ISO/IEC 19795-1) over a search table.

A search table has one row per returned candidate: search_id, probe_sample_id,
probe_subject_id, mated (the probe's identity is enrolled), rank (1 = best),
candidate_subject_id, score (a similarity), and optionally acquired.

FNIR(N, R, T) = share of mated searches whose mate is not returned at rank <= R with
score >= T; FPIR(N, T) = share of non-mated searches returning any candidate with score >= T.
A failure to acquire (acquired = False on the search's rows; rank, candidate and score may then
be empty) is a miss at every rank for a mated search and returns nothing for a non-mated one;
both stay in the denominators (the generalised rates of ISO/IEC 19795-1). An acquired search
that returned no candidate is one row with rank, candidate_subject_id and score all empty.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from idv.metrics.resolution import DEFAULT_MIN_SUBJECTS, NotSupported, check_resolution

SEARCH_COLUMNS = (
    "search_id",
    "probe_sample_id",
    "probe_subject_id",
    "mated",
    "rank",
    "candidate_subject_id",
    "score",
)
DEFAULT_FPIR_TARGETS = (0.003, 0.01, 0.001)  # NIST's headline first


def searches(table: pd.DataFrame) -> pd.DataFrame:
    """One row per search (index search_id): probe_subject_id, mated, acquired, top_score
    (-inf when nothing was returned), mate_rank (inf when the mate is absent) and mate_score
    (-inf when absent), after validating the table."""
    candidates = _validate(table)
    t = table.assign(mated=_bools(table["mated"], "mated"), acquired=_acquired(table))
    out = t.groupby("search_id", sort=True)[["probe_subject_id", "mated", "acquired"]].first()
    got = t[candidates]
    out["top_score"] = (
        got.groupby("search_id")["score"].max().reindex(out.index, fill_value=-np.inf)
    )
    # Scores fall with rank (validated), so the mate's best rank also holds its best score.
    mates = got[got["candidate_subject_id"] == got["probe_subject_id"]]
    best = mates.sort_values("rank").groupby("search_id").first()
    out["mate_rank"] = best["rank"].astype(np.float64).reindex(out.index, fill_value=np.inf)
    out["mate_score"] = best["score"].reindex(out.index, fill_value=-np.inf)
    return out


def fnir(table: pd.DataFrame, threshold: float, rank: int | None = None) -> float:
    """FNIR(N, R, T): share of mated searches without the mate at rank <= `rank` (None: any
    rank of the candidate list) with score >= `threshold`."""
    mated = _mated(searches(table))
    return float(1.0 - _hits(mated, threshold, rank).mean())


def fpir(table: pd.DataFrame, threshold: float) -> float:
    """FPIR(N, T): share of non-mated searches returning any candidate with score >= T."""
    top = _non_mated(searches(table))["top_score"].to_numpy()
    return float(((top >= threshold) & (top > -np.inf)).mean())  # -inf: nothing returned


def threshold_at_fpir(table: pd.DataFrame, fpir_target: float) -> float:
    """The smallest threshold with FPIR <= `fpir_target`, chosen on the non-mated searches'
    top scores (candidates: each distinct top score and +inf, where FPIR = 0)."""
    return _threshold(_non_mated(searches(table))["top_score"].to_numpy(), fpir_target)


def fnir_at_fpir(
    table: pd.DataFrame,
    fpir_target: float,
    rank: int | None = None,
    min_subjects: int = DEFAULT_MIN_SUBJECTS,
) -> float | NotSupported:
    """FNIR at the threshold where FPIR <= `fpir_target`, or NotSupported when the non-mated
    searches (by the rule of three, and their distinct probe subjects) cannot resolve it."""
    per_search = searches(table)
    return _fnir_at_fpir(
        _mated(per_search), _non_mated(per_search), fpir_target, rank, min_subjects
    )


def cmc(table: pd.DataFrame, max_rank: int = 20) -> pd.DataFrame:
    """Cumulative match characteristic: (rank, identification_rate) for ranks 1..max_rank,
    the share of mated searches with the mate at rank <= k, no threshold (T = -inf)."""
    if max_rank < 1:
        raise ValueError(f"max_rank must be at least 1, got {max_rank}")
    mate_rank = _mated(searches(table))["mate_rank"].to_numpy()
    ranks = np.arange(1, max_rank + 1)
    rate = (mate_rank[None, :] <= ranks[:, None]).mean(axis=1)
    return pd.DataFrame({"rank": ranks, "identification_rate": rate})


def rank_k_rate(table: pd.DataFrame, k: int) -> float:
    """Rank-k identification rate (1 - FNIR(N, k, -inf)) over mated searches."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return float(_hits(_mated(searches(table)), -np.inf, k).mean())


def identification_report(
    table: pd.DataFrame,
    fpir_targets: Sequence[float] = DEFAULT_FPIR_TARGETS,
    rank: int | None = None,
    min_subjects: int = DEFAULT_MIN_SUBJECTS,
) -> dict[str, float | NotSupported]:
    """Headline 1:N figures, flat keys: `fnir_at_fpir_3e-03`, `rank_1_rate`, `fta_rate`, ..."""
    per_search = searches(table)
    mated, non_mated = _mated(per_search), _non_mated(per_search)
    result: dict[str, float | NotSupported] = {
        "mated_searches": len(mated),
        "non_mated_searches": len(non_mated),
        "non_mated_subjects": int(non_mated["probe_subject_id"].nunique()),
        "fta_rate": float(1.0 - per_search["acquired"].mean()),
    }
    for target in fpir_targets:
        result[f"fnir_at_fpir_{target:.0e}"] = _fnir_at_fpir(
            mated, non_mated, target, rank, min_subjects
        )
    for k in (1, 5):
        result[f"rank_{k}_rate"] = float(_hits(mated, -np.inf, k).mean())
    return result


def _fnir_at_fpir(
    mated: pd.DataFrame,
    non_mated: pd.DataFrame,
    fpir_target: float,
    rank: int | None,
    min_subjects: int,
) -> float | NotSupported:
    verdict = check_resolution(
        fpir_target, len(non_mated), int(non_mated["probe_subject_id"].nunique()), min_subjects
    )
    if verdict is not None:
        return verdict
    threshold = _threshold(non_mated["top_score"].to_numpy(), fpir_target)
    return float(1.0 - _hits(mated, threshold, rank).mean())


def _threshold(top: np.ndarray, fpir_target: float) -> float:
    returned = np.sort(top[top > -np.inf])  # a search that returned nothing never counts
    t = np.append(np.unique(returned), np.inf)
    # Counts over n, not 1 - share: 3/1000 must compare equal to a 0.003 target.
    rate = (len(returned) - np.searchsorted(returned, t, side="left")) / len(top)
    return float(t[np.argmax(rate <= fpir_target)])  # FPIR falls with t and is 0 at +inf


def _hits(mated: pd.DataFrame, threshold: float, rank: int | None) -> np.ndarray:
    limit = np.inf if rank is None else rank
    return (mated["mate_rank"].to_numpy() <= limit) & (mated["mate_score"].to_numpy() >= threshold)


def _mated(per_search: pd.DataFrame) -> pd.DataFrame:
    out = per_search[per_search["mated"]]
    if out.empty:
        raise ValueError("the search table has no mated searches")
    return out


def _non_mated(per_search: pd.DataFrame) -> pd.DataFrame:
    out = per_search[~per_search["mated"]]
    if out.empty:
        raise ValueError("the search table has no non-mated searches")
    return out


def _acquired(table: pd.DataFrame) -> np.ndarray:
    if "acquired" not in table.columns:
        return np.ones(len(table), dtype=bool)
    return _bools(table["acquired"], "acquired")


def _bools(column: pd.Series, name: str) -> np.ndarray:
    """A boolean array from booleans or 0/1 (NaN, None and other values are errors)."""
    if not column.isin([True, False]).all():  # isin(True) also takes 1 and 1.0
        raise ValueError(f"{name} must be boolean (or 0/1), got {column.unique()[:5].tolist()}")
    return column.to_numpy().astype(bool)


def _validate(table: pd.DataFrame) -> np.ndarray:
    """Clear errors, naming the column or search_id, for tables that would mislead; returns
    the mask of rows that are returned candidates of acquired searches."""
    missing = [c for c in SEARCH_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"search table lacks columns {missing}")
    if table.empty:
        raise ValueError("the search table is empty")
    for column in ("search_id", "probe_subject_id"):
        if table[column].isna().any():
            rows = np.nonzero(table[column].isna().to_numpy())[0][:5].tolist()
            raise ValueError(f"{column} is missing at rows {rows}")
    mated = _bools(table["mated"], "mated")
    acquired = _acquired(table)
    per_probe = ["probe_sample_id", "probe_subject_id", "mated", "acquired"]
    varies = (
        table.assign(mated=mated, acquired=acquired)
        .groupby("search_id", sort=True)[per_probe]
        .nunique(dropna=False)
    )
    for column in per_probe:
        if (varies[column] > 1).any():
            ids = varies.index[varies[column] > 1][:5].tolist()
            raise ValueError(f"{column} differs within search_id {ids}: each search has one probe")
    empty = (
        acquired & table[["rank", "candidate_subject_id", "score"]].isna().all(axis=1).to_numpy()
    )
    if empty.any():
        rows = table.groupby("search_id")["search_id"].transform("size").to_numpy()
        alone = empty & (rows == 1)
        if (empty & ~alone).any():
            ids = table["search_id"][empty & ~alone].unique()[:5].tolist()
            raise ValueError(
                f"search_id {ids} has an empty candidate row next to candidates: an empty "
                "candidate list is one row with rank, candidate_subject_id and score empty"
            )
    candidates = acquired & ~empty
    got = table[candidates]
    scores = got["score"].to_numpy(dtype=np.float64, na_value=np.nan)
    if not np.isfinite(scores).all():
        ids = got["search_id"][~np.isfinite(scores)].unique()[:5].tolist()
        raise ValueError(
            f"score is NaN or infinite in search_id {ids}: mark a failure to acquire with "
            "acquired=False instead"
        )
    ranks = got["rank"].to_numpy(dtype=np.float64, na_value=np.nan)
    if not (np.isfinite(ranks) & (ranks == np.round(ranks))).all():
        ids = got["search_id"][~(np.isfinite(ranks) & (ranks == np.round(ranks)))].unique()
        raise ValueError(f"rank must be a whole number in search_id {ids[:5].tolist()}")
    ordered = got.assign(rank=ranks).sort_values(["search_id", "rank"], kind="stable")
    expected = ordered.groupby("search_id").cumcount().to_numpy() + 1
    wrong = ordered["search_id"][ordered["rank"].to_numpy() != expected].unique()
    if len(wrong):
        raise ValueError(
            f"ranks must run 1, 2, 3, ... without gaps or repeats in search_id {wrong[:5].tolist()}"
        )
    rises = ordered.groupby("search_id")["score"].diff().to_numpy() > 0
    if rises.any():
        ids = ordered["search_id"][rises].unique()[:5].tolist()
        raise ValueError(
            f"score rises with rank in search_id {ids}: rank 1 must be the best (highest "
            "similarity) candidate"
        )
    non_mated = ~mated[candidates]
    enrolled = non_mated & (got["candidate_subject_id"] == got["probe_subject_id"]).to_numpy()
    if enrolled.any():
        raise ValueError(
            f"non-mated search_id {got['search_id'][enrolled].unique()[:5].tolist()} returns "
            "the probe's own subject: it is mated, or the gallery is not what the table says"
        )
    return candidates
