"""Face-matching thresholds: 1:1 at FMR targets on comparisons, 1:N at FPIR targets on searches.

The decision rule of matching (`idv.thresholds`): similarity >= threshold -> match; a review
band just below it -> review; otherwise, or a failure to acquire -> non_match.

- 1:1 (`fmr` entries): thresholds come from one comparison protocol (default: ID portrait vs
  selfie, the onboarding case), globally and per probe segment where the segment's impostors
  resolve the target (rule of three, `min_subjects` impostor subjects); the review band holds
  `review_share` of the calib genuine comparisons just below the threshold.
- 1:N (`fpir` entries, when a search table is given): the smallest threshold whose FPIR on the
  calib searches meets the target (`idv.metrics.identification.threshold_at_fpir`: the lowest
  FNIR that does), globally only (a few hundred non-mated searches resolve FPIR 1e-2, not a
  segment of them); the review band holds `review_share` of the calib mated searches just
  below it. `Bundle.identify` decides candidates with it: the 1:1 threshold would let FPIR
  grow with the gallery.

Test rates (FMR / FNMR, FPIR / FNIR) are reported beside them with probe-subject bootstrap
intervals, never fed back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from idv.calibration.reporting import check_bootstrap, check_score_range, rate_from_replicates
from idv.metrics.bootstrap import rate_replicates, resample_counts
from idv.metrics.identification import searches, threshold_at_fpir
from idv.metrics.resolution import check_resolution, count_subjects
from idv.metrics.verification import generalised_similarities, threshold_at_fmr
from idv.score_tables import require_splits, validate_comparison_table, validate_search_table
from idv.thresholds import (
    GLOBAL,
    DecisionRule,
    Entry,
    OperatingPoint,
    Rate,
    SplitReport,
    Thresholds,
    entry_id,
)

FMR, FPIR = "fmr", "fpir"
RULE = DecisionRule(below="non_match", review="review", at_or_above="match", failure="non_match")
SCORE_RANGE = (-1.0, 1.0)  # cosine similarity


def calibrate_matching(
    table: pd.DataFrame,
    *,
    targets: Sequence[float],
    search: pd.DataFrame | None = None,
    fpir_targets: Sequence[float] = (),
    protocol: str = "portrait_selfie",
    segments: Sequence[str] = ("geography",),
    min_subjects: int = 10,
    review_share: float = 0.05,
    bootstrap: Mapping[str, Any] | None = None,
    calib_split: str = "calib",
    report_split: str = "test",
    score_range: Sequence[float] = SCORE_RANGE,
    source: str | None = None,
) -> Thresholds:
    """Thresholds of a matching task (module docstring): `targets` are FMRs on `table`'s
    `protocol` comparisons; `fpir_targets` FPIRs on the `search` table (both need calib and
    report rows)."""
    source = source or table.attrs.get("source", "comparison table")
    if calib_split == "test" or calib_split == report_split:
        raise ValueError("thresholds come from a calibration split, never from the reported one")
    if fpir_targets and search is None:
        raise ValueError(
            f"FPIR targets {list(fpir_targets)} need the search table (search=...), or "
            "fpir_targets=[] for 1:1 thresholds only"
        )
    boot = check_bootstrap(bootstrap)
    frame = validate_comparison_table(table, source)
    require_splits(frame, [calib_split, report_split], "calibration")
    rows = frame[frame["protocol"] == protocol] if "protocol" in frame else frame
    _check_range(rows, score_range, source, "comparison_id")
    calib, test = rows[rows["split"] == calib_split], rows[rows["split"] == report_split]
    if calib.empty:
        raise ValueError(f"{source}: no {protocol!r} comparisons in split {calib_split!r}")
    segment_columns = [c for c in segments if c in rows.columns]
    entries = []
    for rank, target in enumerate(float(t) for t in targets):
        problem = _resolves(calib, target, min_subjects)
        if problem:
            raise ValueError(
                f"{source}: the {calib_split!r} split cannot resolve FMR <= {target:g} "
                f"({protocol}): {problem}. Use a larger target or more calibration data"
            )
        point = OperatingPoint(FMR, target, rank == 0)
        glob = _choose(calib, target, review_share, source)
        groups: list[tuple[str | None, Any, pd.DataFrame, pd.DataFrame]] = [
            (None, GLOBAL, calib, test)
        ]
        for column in segment_columns:
            for value in sorted(rows[column].dropna().unique(), key=str):
                groups.append(
                    (column, value, calib[calib[column] == value], test[test[column] == value])
                )
        for column, value, seg_calib, seg_test in groups:
            chosen, why = glob, "own"
            if column is not None:
                problem = _resolves(seg_calib, target, min_subjects) if len(seg_calib) else "absent"
                if problem is None:
                    chosen = _choose(seg_calib, target, review_share, source)
                else:
                    why = f"global (segment: {problem})"
            entries.append(
                Entry(
                    id=entry_id(point, column, _plain(value)),
                    operating_point=point,
                    segment_column=column,
                    segment_value=_plain(value),
                    source=why,
                    threshold=chosen["threshold"],
                    review_at_or_above=chosen["review"],
                    calib=chosen["calib"],
                    test=_comparison_report(seg_test, chosen["threshold"], boot),
                )
            )
    details: dict[str, Any] = {"protocol": protocol, "search": None}
    if search is not None and fpir_targets:
        searched = validate_search_table(search, search.attrs.get("source", "search table"))
        require_splits(searched, [calib_split, report_split], "1:N calibration")
        _check_range(searched[searched["rank"].notna()], score_range, source, "search_id")
        per_split = {s: searched[searched["split"] == s] for s in (calib_split, report_split)}
        for rank, target in enumerate(float(t) for t in fpir_targets):
            entries.append(
                _fpir_entry(
                    per_split[calib_split],
                    per_split[report_split],
                    target,
                    rank == 0,
                    min_subjects,
                    review_share,
                    boot,
                    calib_split,
                )
            )
        details["search"] = {"rank": None, "segments": "global only"}
    return Thresholds(
        kind="matching",
        task=None,
        decision=RULE,
        score_range=tuple(float(v) for v in score_range),
        operating_point=OperatingPoint(FMR, float(targets[0])),
        entries=tuple(entries),
        segment_columns=tuple(segment_columns),
        calibration_split=calib_split,
        report_split=report_split,
        settings={
            "targets": [float(t) for t in targets],
            "fpir_targets": [float(t) for t in fpir_targets],
            "min_subjects": int(min_subjects),
            "review_share": float(review_share),
            "bootstrap": {**boot, "unit": "probe subject", "interval": "percentile"},
        },
        details=details,
        source=str(source),
    )


# -------------------------------------------------------------------------------------- 1:1


def _scores(rows: pd.DataFrame) -> np.ndarray:
    """Similarities with failures to acquire at -inf (never a match)."""
    return generalised_similarities(rows["score"].to_numpy(np.float64), rows["acquired"])


def _resolves(rows: pd.DataFrame, target: float, min_subjects: int) -> str | None:
    impostors = ~rows["genuine"].to_numpy(bool)
    pairs = rows[["subject_id_a", "subject_id_b"]].to_numpy(dtype=object)
    verdict = check_resolution(
        target, int(impostors.sum()), count_subjects(pairs, impostors), min_subjects
    )
    return None if verdict is None else verdict.reason


def _band_below(positive_scores: np.ndarray, threshold: float, share: float) -> float:
    """The review edge: `share` of the positives (genuine comparisons, mated searches) lie in
    [edge, threshold), taken from the best-scoring positives below the threshold."""
    below = np.sort(positive_scores[positive_scores < threshold])[::-1]
    n_review = int(round(share * len(positive_scores)))
    return float(below[n_review - 1]) if 0 < n_review <= len(below) else threshold


def _finite(threshold: float, what: str, source: str) -> float:
    if not np.isfinite(threshold):
        raise ValueError(
            f"{source}: no finite threshold meets {what} (the top scores tie): the target "
            "cannot be met on this calibration data"
        )
    return float(threshold)


def _choose(rows: pd.DataFrame, target: float, review_share: float, source: str) -> dict:
    scores, genuine = _scores(rows), rows["genuine"].to_numpy(bool)
    threshold = _finite(threshold_at_fmr(scores, genuine, target), f"FMR <= {target:g}", source)
    match = scores >= threshold
    n_gen, n_imp = int(genuine.sum()), int((~genuine).sum())
    rates = {
        "fmr": Rate(float(match[~genuine].mean()), n=n_imp, count=int(match[~genuine].sum())),
        "fnmr": Rate(float((~match[genuine]).mean()), n=n_gen, count=int((~match[genuine]).sum())),
    }
    counts = {
        "genuine": n_gen,
        "impostors": n_imp,
        "failures_to_acquire": int((~rows["acquired"]).sum()),
    }
    return {
        "threshold": threshold,
        "review": _band_below(scores[genuine], threshold, review_share),
        "calib": SplitReport(counts, rates),
    }


def _comparison_report(rows: pd.DataFrame, threshold: float, boot: Mapping[str, Any]):
    scores, genuine = _scores(rows), rows["genuine"].to_numpy(bool)
    match = scores >= threshold
    subjects = rows["subject_id_b"].astype(str).to_numpy()
    errors = {"fmr": (match, ~genuine), "fnmr": (~match, genuine)}
    return _report(
        {"genuine": int(genuine.sum()), "impostors": int((~genuine).sum())},
        errors,
        subjects,
        boot,
    )


def _report(
    counts: dict[str, Any],
    errors: Mapping[str, tuple[np.ndarray, np.ndarray]],
    subjects: np.ndarray,
    boot: Mapping[str, Any],
) -> SplitReport:
    """Rates (error, where) with probe-subject bootstrap intervals on shared resamples."""
    resamples = None
    if len(set(subjects)) >= 2:
        resamples = resample_counts(subjects, boot["n_resamples"], boot["seed"])
    rates = {}
    for name, (error, where) in errors.items():
        if not where.any():
            continue
        e = error.astype(np.float64)
        reps = None if resamples is None else rate_replicates(e, *resamples, where=where)
        rates[name] = rate_from_replicates(
            float(e[where].mean()), reps, boot["level"], int(where.sum()), int(e[where].sum())
        )
    note = None if resamples is not None else "fewer than 2 probe subjects: no intervals"
    return SplitReport(counts, rates, note)


# -------------------------------------------------------------------------------------- 1:N


def _fpir_entry(
    calib: pd.DataFrame,
    test: pd.DataFrame,
    target: float,
    primary: bool,
    min_subjects: int,
    review_share: float,
    boot: Mapping[str, Any],
    calib_split: str,
) -> Entry:
    per_calib = searches(calib)
    non_mated = per_calib[~per_calib["mated"]]
    verdict = check_resolution(
        target, len(non_mated), int(non_mated["probe_subject_id"].nunique()), min_subjects
    )
    source = calib.attrs.get("source", "search table")
    if verdict is not None:
        raise ValueError(
            f"{source}: the {calib_split!r} searches cannot resolve FPIR <= {target:g}: "
            f"{verdict.reason}. Use a larger target, more calibration data, or fpir_targets=[]"
        )
    threshold = _finite(threshold_at_fpir(calib, target), f"FPIR <= {target:g}", source)
    point = OperatingPoint(FPIR, target, primary)
    mated = per_calib[per_calib["mated"]]
    calib_report = _search_report(per_calib, threshold, None)
    return Entry(
        id=entry_id(point, None, GLOBAL),
        operating_point=point,
        segment_column=None,
        segment_value=GLOBAL,
        source="own",
        threshold=threshold,
        review_at_or_above=_band_below(_mate_scores(mated), threshold, review_share),
        calib=calib_report,
        test=_search_report(searches(test), threshold, boot),
    )


def _mate_scores(per_search: pd.DataFrame) -> np.ndarray:
    """The mate's similarity where it was returned, -inf where not (a miss at any threshold)."""
    return per_search["mate_score"].to_numpy(np.float64)


def _search_report(
    per_search: pd.DataFrame, threshold: float, boot: Mapping[str, Any] | None
) -> SplitReport:
    mated = per_search["mated"].to_numpy(bool)
    found = per_search["mate_score"].to_numpy() >= threshold
    false_positive = per_search["top_score"].to_numpy() >= threshold
    counts = {
        "mated_searches": int(mated.sum()),
        "non_mated_searches": int((~mated).sum()),
        "non_mated_subjects": int(per_search.loc[~mated, "probe_subject_id"].nunique()),
        "failures_to_acquire": int((~per_search["acquired"]).sum()),
    }
    errors = {"fpir": (false_positive, ~mated), "fnir": (~found, mated)}
    if boot is None:  # calib: the rates the threshold was chosen on, no interval
        rates = {
            name: Rate(float(e[w].mean()), n=int(w.sum()), count=int(e[w].sum()))
            for name, (e, w) in errors.items()
        }
        return SplitReport(counts, rates)
    subjects = per_search["probe_subject_id"].astype(str).to_numpy()
    return _report(counts, errors, subjects, boot)


def _check_range(rows: pd.DataFrame, score_range, source: str, id_column: str) -> None:
    acquired = rows["acquired"].to_numpy()
    check_score_range(
        rows["score"].to_numpy()[acquired],
        tuple(score_range),
        source,
        rows[id_column].to_numpy()[acquired],
    )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def options_from_config(cfg) -> tuple[dict[str, Any], list[str]]:
    """`calibrate_matching`'s options from the composed `calibrate` config; the search table
    is needed when there are FPIR targets."""
    from omegaconf import OmegaConf

    fpir_targets = list(cfg.fpir_targets or [])
    return {
        "targets": list(cfg.targets),
        "fpir_targets": fpir_targets,
        "protocol": cfg.task.calibration_protocol,
        "segments": list(cfg.segments or []),
        "min_subjects": int(cfg.min_subjects),
        "review_share": float(cfg.review_share),
        "bootstrap": OmegaConf.to_container(cfg.bootstrap, resolve=True),
        "calib_split": cfg.get("calib_split", "calib"),
        "report_split": cfg.get("report_split", "test"),
        "score_range": list(cfg.task.score_range),
    }, (["search"] if fpir_targets else [])
