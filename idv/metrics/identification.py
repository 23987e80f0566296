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
from idv.score_tables import SEARCH_COLUMNS, validate_search_table

__all__ = ["SEARCH_COLUMNS", "cmc", "fnir", "fnir_at_fpir", "fpir", "identification_report"]
DEFAULT_FPIR_TARGETS = (0.003, 0.01, 0.001)  # NIST's headline first


def searches(table: pd.DataFrame) -> pd.DataFrame:
    """One row per search (index search_id): probe_subject_id, mated, acquired, top_score
    (-inf when nothing was returned), mate_rank (inf when the mate is absent) and mate_score
    (-inf when absent), after validating the table (`idv.score_tables`; one split)."""
    t = validate_search_table(table, table.attrs.get("source"))
    if "split" in t.columns and t["split"].nunique() > 1:
        raise ValueError(
            f"the search table holds splits {sorted(t['split'].unique())}: judge one at a time"
        )
    out = t.groupby("search_id", sort=True)[["probe_subject_id", "mated", "acquired"]].first()
    got = t[t["acquired"] & t["rank"].notna()]
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
    return _misses(_mated(searches(table)), threshold, rank)


def fpir(table: pd.DataFrame, threshold: float) -> float:
    """FPIR(N, T): share of non-mated searches returning any candidate with score >= T."""
    top = _non_mated(searches(table))["top_score"].to_numpy()
    return float(((top >= threshold) & (top > -np.inf)).mean())  # -inf: nothing returned


def threshold_at_fpir(table: pd.DataFrame, fpir_target: float, rank: int | None = None) -> float:
    """The smallest threshold with FPIR <= `fpir_target`, hence the lowest FNIR(N, `rank`, T)
    that meets it (the convention of `verification.threshold_at_fmr`).

    Candidates are every score that matters (the mates' scores of mated searches, the top
    scores of non-mated ones) and +inf (where FPIR = 0): FPIR changes only at a non-mated top
    score and FNIR only at a mate's score, so every achievable (FNIR, FPIR) pair is reached at
    one of them. A search is a match when a candidate's score >= T.
    """
    per_search = searches(table)
    return _threshold(_mated(per_search), _non_mated(per_search), fpir_target, rank)


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
    return _misses(mated, _threshold(mated, non_mated, fpir_target, rank), rank)


def _threshold(
    mated: pd.DataFrame, non_mated: pd.DataFrame, fpir_target: float, rank: int | None
) -> float:
    """See `threshold_at_fpir`: the smallest candidate threshold whose FPIR meets the target."""
    top = non_mated["top_score"].to_numpy()
    returned = np.sort(top[top > -np.inf])  # a search that returned nothing never counts
    limit = np.inf if rank is None else rank
    mates = mated["mate_score"].to_numpy()[mated["mate_rank"].to_numpy() <= limit]
    t = np.append(np.unique(np.concatenate([returned, mates[mates > -np.inf]])), np.inf)
    # Counts over n, not 1 - share: 3/1000 must compare equal to a 0.003 target.
    rate = (len(returned) - np.searchsorted(returned, t, side="left")) / len(top)
    return float(t[np.argmax(rate <= fpir_target)])  # FPIR falls with t and is 0 at +inf


def _hits(mated: pd.DataFrame, threshold: float, rank: int | None) -> np.ndarray:
    """The mate was returned (a finite rank), at rank <= `rank`, with score >= `threshold`."""
    mate_rank = mated["mate_rank"].to_numpy()
    limit = np.inf if rank is None else rank
    return (
        np.isfinite(mate_rank)
        & (mate_rank <= limit)
        & (mated["mate_score"].to_numpy() >= threshold)
    )


def _misses(mated: pd.DataFrame, threshold: float, rank: int | None) -> float:
    """FNIR as a count over n (not 1 - share: 3/10 must compare equal to a 0.3 bound)."""
    return float((~_hits(mated, threshold, rank)).mean())


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
