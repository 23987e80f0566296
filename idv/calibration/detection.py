"""Decision thresholds for detection tasks, chosen on the calib split and reported on test.

What `calibrate_detection` does, in order (conventions of `idv.metrics.detection`: label 1 =
attack, a higher score = more likely attack, a row is classified attack when score >= t):

1. Thresholds at target operating points. For each target `p` in `targets` (maximum worst-species
   APCER; the first is THE operating point), the threshold is the largest one whose worst-species
   APCER on the calib split is <= p (the lowest BPCER meeting the target:
   `idv.metrics.detection.threshold_at_worst_apcer`). It is chosen on the calib rows that were
   acquired: the threshold only ever applies to scored samples (a failure to acquire is rejected
   whatever the threshold), so failures cannot buy a higher threshold. Only calib rows are read.
2. Resolution honesty (rule of three): the global threshold of target p needs, in calib, at least
   ceil(3 / p) acquired attack presentations of every attack species and attacks from at least
   `min_subjects` distinct subjects of every species; otherwise it is an error (a number the data
   cannot support is never written).
3. Per segment (each value of each column of `segments`): a segment gets its own threshold when
   its calib rows resolve the target by the same rule AND hold at least `min_subjects` bona fide
   subjects (enough subjects of both classes). Otherwise it takes the global threshold, and its
   `source` says why, e.g. "global (segment too small: 4 'print' attack subjects < 10)".
   Segment values seen only in test get the global threshold too ("absent from calib").
4. Two-threshold decisions. The operating threshold t is the reject threshold (score >= t ->
   reject, so the auto-reject side keeps exactly the BPCER of step 1) and the review band
   [review_at_or_above, t) sits just BELOW it: `review_at_or_above` is the calib score (or t
   itself, for an empty band) whose band holds the count of calib samples closest to
   `review_share` x (calib samples of that threshold's rows, failures to acquire included: they
   are traffic), ties to the smaller band. Attacks scored in the band, which the single
   threshold would have accepted, now go to a human, so the auto-accept APCER can only fall
   (reported on test with intervals, with the achieved review share). Placing the band above t
   instead would trade BPCER, not the APCER guarantee that the operating point exists for.
5. Reporting on test, at the chosen thresholds: APCER per species (`apcer/<species>`), worst
   APCER and BPCER, the review share and the auto-accept APCER, with percentile intervals from a
   subject bootstrap (all rates of one test frame share the same resamples). These are
   generalised rates (ISO/IEC 19795-1): a failure to acquire stays in every denominator and
   counts against the system (`idv.metrics.detection.generalised_scores`): a bona fide one as a
   rejection (raises BPCER), an attack one as a missed attack (never lowers APCER). Test never
   feeds back into any threshold.
6. Optional score calibration (`platt` | `isotonic`, `idv.calibration.score_calibration`), fitted
   on the acquired calib rows and judged by the ECE on the acquired test rows, before and after.

Counts in an entry's `calib` block are those the threshold rests on: class and species counts
over the acquired calib rows, plus `samples` (all rows, the review-share denominator) and
`failures_to_acquire`. Counts in a `test` block are the denominators of the generalised rates
next to them (all rows, failures included).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from idv.calibration.reporting import check_bootstrap, check_score_range, rate_from_replicates
from idv.calibration.score_calibration import METHODS, calibration_report
from idv.metrics.bootstrap import rate_replicates, resample_counts, worst_group_replicates
from idv.metrics.detection import generalised_scores, threshold_at_worst_apcer
from idv.metrics.resolution import min_trials
from idv.score_tables import require_splits, validate_detection_table
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

METRIC = "apcer_worst"
RULE = DecisionRule(below="accept", review="review", at_or_above="reject", failure="reject")
SCORE_RANGE = (0.0, 1.0)  # P(attack)
CALIB_NOTE = "calib rates are on the rows the threshold was chosen on (optimistic by design)"


def calibrate_detection(
    table: pd.DataFrame,
    *,
    targets: Sequence[float] = (0.10,),
    segments: Sequence[str] = ("geography",),
    min_subjects: int = 10,
    review_share: float = 0.05,
    score_calibration: str | None = None,
    bootstrap: Mapping[str, Any] | None = None,
    calib_split: str = "calib",
    report_split: str = "test",
    score_range: Sequence[float] = SCORE_RANGE,
    source: str | None = None,
) -> Thresholds:
    """Thresholds (global and per segment) at every target, chosen on `calib_split` only, with
    their review bands and their achieved rates on `report_split`; see the module docstring.
    `source` names the table in error messages (default: its `attrs["source"]`)."""
    source = source or table.attrs.get("source", "score table")
    targets = _check_targets(targets)
    segments = list(segments or [])
    boot = _check_options(min_subjects, review_share, score_calibration, bootstrap, segments)
    if calib_split == report_split:
        raise ValueError(
            f"calib_split and report_split are both {calib_split!r}: thresholds are chosen on "
            "one split and reported on another"
        )
    if calib_split == "test":
        raise ValueError("thresholds come only from a calibration split, never from 'test'")
    calib, test = _prepare(table, source, calib_split, report_split, segments, score_range)
    species = sorted(calib.loc[calib["label"] == 1, "attack_type"].astype(str).unique())
    calib_acq = calib[calib["acquired"]]

    # Test rates cover every species seen in test: one absent from calib (an unseen attack)
    # has no guarantee from the threshold, but its APCER is reported, never hidden.
    tested = set(test.loc[test["label"] == 1, "attack_type"])
    unseen = sorted(tested - set(species))
    reported = sorted(tested | set(species))
    entries: list[Entry] = []
    for rank, target in enumerate(targets):
        problems = _resolution_problems(calib_acq, species, target, min_subjects, bona=False)
        if problems:
            raise ValueError(
                f"{source}: the {calib_split!r} split cannot resolve worst-species APCER <= "
                f"{target:g}: " + "; ".join(problems) + ". Use a larger target or more "
                "calibration data; an unresolved threshold is never written"
            )
        point = OperatingPoint(METRIC, target, rank == 0)

        def add(column, value, why, chosen, segment_counts=None, rows=test, point=point):
            report = _test_report(rows, chosen["threshold"], chosen["review"], reported, boot)
            entries.append(
                Entry(
                    id=entry_id(point, column, value),
                    operating_point=point,
                    segment_column=column,
                    segment_value=_plain(value),
                    source=why,
                    threshold=chosen["threshold"],
                    review_at_or_above=chosen["review"],
                    calib=chosen["calib"],
                    test=report,
                    segment_calib=segment_counts,
                )
            )

        glob = _own_threshold(calib, species, target, review_share)
        add(None, GLOBAL, "own", glob)
        for column in segments:
            values = pd.concat([calib[column], test[column]]).dropna().unique().tolist()
            for value in sorted(values, key=str):
                seg_calib, seg_test = calib[calib[column] == value], test[test[column] == value]
                if seg_calib.empty:
                    why = f"global (segment absent from {calib_split})"
                    add(column, value, why, glob, rows=seg_test)
                    continue
                problems = _resolution_problems(
                    seg_calib[seg_calib["acquired"]], species, target, min_subjects, bona=True
                )
                if problems:
                    why = f"global (segment too small: {'; '.join(problems)})"
                    add(column, value, why, glob, _calib_counts(seg_calib, species), seg_test)
                else:
                    own = _own_threshold(seg_calib, species, target, review_share)
                    add(column, value, "own", own, rows=seg_test)

    details: dict[str, Any] = {
        "species": species,
        "species_unseen_in_calib": unseen,
        "score_calibration": None,
    }
    if score_calibration is not None:
        test_acq = test[test["acquired"]]
        details["score_calibration"] = calibration_report(
            score_calibration,
            calib_acq["score"].to_numpy(),
            calib_acq["label"].to_numpy(),
            test_acq["score"].to_numpy(),
            test_acq["label"].to_numpy(),
        )
    return Thresholds(
        kind="detection",
        task=None,
        decision=RULE,
        score_range=tuple(float(v) for v in score_range),
        operating_point=OperatingPoint(METRIC, targets[0]),
        entries=tuple(entries),
        segment_columns=tuple(segments),
        calibration_split=calib_split,
        report_split=report_split,
        settings={
            "targets": targets,
            "min_subjects": int(min_subjects),
            "review_share": float(review_share),
            "bootstrap": {**boot, "unit": "subject", "interval": "percentile"},
            "rates": (
                f"thresholds chosen on the acquired {calib_split!r} rows; {report_split!r} "
                "rates are generalised (ISO/IEC 19795-1): a failure to acquire counts as an "
                f"error against the system. {CALIB_NOTE}"
            ),
        },
        details=details,
        source=str(source),
    )


# ------------------------------------------------------------------------------------ validation


def _check_targets(targets: Sequence[float]) -> list[float]:
    if isinstance(targets, int | float):
        targets = [targets]
    values = [float(t) for t in targets]
    if not values:
        raise ValueError("targets is empty: give at least one maximum worst-species APCER")
    for t in values:
        if not 0.0 < t < 1.0:
            raise ValueError(f"a target worst-species APCER must lie in (0, 1), got {t!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"targets contain duplicates: {values}")
    return values


def _check_options(
    min_subjects: int,
    review_share: float,
    score_calibration: str | None,
    bootstrap: Mapping[str, Any] | None,
    segments: list[str],
) -> dict[str, Any]:
    if int(min_subjects) != min_subjects or min_subjects < 1:
        raise ValueError(f"min_subjects must be a positive integer, got {min_subjects!r}")
    if not 0.0 <= review_share < 1.0:
        raise ValueError(f"review_share must lie in [0, 1), got {review_share!r}")
    if score_calibration is not None and score_calibration not in METHODS:
        raise ValueError(
            f"unknown score_calibration {score_calibration!r}; choose one of {list(METHODS)} "
            "or null"
        )
    if len(set(segments)) != len(segments):
        raise ValueError(f"segment columns contain duplicates: {segments}")
    return check_bootstrap(bootstrap)


def _prepare(
    table: pd.DataFrame,
    source: str,
    calib_split: str,
    report_split: str,
    segments: list[str],
    score_range: Sequence[float],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The calib and report rows, validated (`idv.score_tables`), with `gscore` (the
    generalised score: +inf for a bona fide failure to acquire, -inf for an attack one)."""
    frame = validate_detection_table(table, source)
    frame.attrs["source"] = source
    for column in segments:
        if column not in frame.columns:
            raise KeyError(
                f"{source}: segment column {column!r} is not in the score table "
                f"(columns: {sorted(map(str, frame.columns))})"
            )
    require_splits(frame, [calib_split, report_split], "calibration")
    frame = frame[frame["split"].isin([calib_split, report_split])].copy()
    acquired = frame["acquired"].to_numpy()
    check_score_range(
        frame["score"].to_numpy()[acquired],
        tuple(score_range),
        source,
        frame["sample_id"].to_numpy()[acquired],
    )
    frame["attack_type"] = frame["attack_type"].astype(str)
    frame["gscore"] = generalised_scores(
        frame["score"].to_numpy(), acquired, frame["label"].to_numpy()
    )
    calib = frame[frame["split"] == calib_split]
    test = frame[frame["split"] == report_split]
    for split, rows in ((calib_split, calib[calib["acquired"]]), (report_split, test)):
        classes = set(rows["label"].tolist())
        if classes != {0, 1}:
            have = "no rows" if not classes else f"only label {classes.pop()} rows"
            scope = "acquired rows" if split == calib_split else "rows"
            raise ValueError(
                f"{source}: the {split!r} split has {have} among its {scope}: "
                "thresholds need both bona fide (0) and attack (1) samples"
            )
    return calib, test


def _resolution_problems(
    acquired: pd.DataFrame, species: list[str], target: float, min_subjects: int, bona: bool
) -> list[str]:
    """Why the acquired calib rows cannot resolve worst-species APCER <= target ([] if they can):
    per species, ceil(3 / target) presentations (rule of three) and `min_subjects` subjects;
    with `bona`, also `min_subjects` bona fide subjects."""
    needed = min_trials(target)
    problems = []
    attacks = acquired[acquired["label"] == 1]
    for name in species:
        rows = attacks[attacks["attack_type"] == name]
        if len(rows) < needed:
            problems.append(
                f"{len(rows)} {name!r} attack presentations < {needed} (rule of three at "
                f"APCER {target:g})"
            )
        n_subjects = rows["subject_id"].nunique()
        if n_subjects < min_subjects:
            problems.append(f"{n_subjects} {name!r} attack subjects < {min_subjects}")
    if bona:
        n_bona = acquired.loc[acquired["label"] == 0, "subject_id"].nunique()
        if n_bona < min_subjects:
            problems.append(f"{n_bona} bona fide subjects < {min_subjects}")
    return problems


# ----------------------------------------------------------------------------------- thresholds


def _calib_counts(calib: pd.DataFrame, species: list[str]) -> dict[str, Any]:
    acq = calib[calib["acquired"]]
    attacks, bona = acq[acq["label"] == 1], acq[acq["label"] == 0]
    return {
        "samples": len(calib),
        "failures_to_acquire": int((~calib["acquired"]).sum()),
        "subjects": int(acq["subject_id"].nunique()),
        "bona_fide_samples": len(bona),
        "bona_fide_subjects": int(bona["subject_id"].nunique()),
        "attack_samples": len(attacks),
        "attack_subjects": int(attacks["subject_id"].nunique()),
        "attacks_per_species": {
            name: int((attacks["attack_type"] == name).sum()) for name in species
        },
        "attack_subjects_per_species": {
            name: int(attacks.loc[attacks["attack_type"] == name, "subject_id"].nunique())
            for name in species
        },
    }


def _own_threshold(
    calib: pd.DataFrame, species: list[str], target: float, review_share: float
) -> dict[str, Any]:
    """The threshold of `target` on these calib rows, its review band and the calib figures."""
    acq = calib[calib["acquired"]]
    s, y, sp = acq["score"].to_numpy(), acq["label"].to_numpy(), acq["attack_type"].to_numpy()
    t = threshold_at_worst_apcer(s, y, sp, target)
    g = calib["gscore"].to_numpy()
    review, n_review = _review_band(g, t, review_share)
    rates: dict[str, Rate] = {}
    for name in species:
        attacks = (y == 1) & (sp == name)
        missed = int((s[attacks] < t).sum())
        rates[f"apcer/{name}"] = Rate(
            missed / int(attacks.sum()), n=int(attacks.sum()), count=missed
        )
    rates["apcer_worst"] = Rate(max(rates[f"apcer/{n}"].estimate for n in species))
    flagged = int((s[y == 0] >= t).sum())
    rates["bpcer"] = Rate(flagged / int((y == 0).sum()), n=int((y == 0).sum()), count=flagged)
    rates["review_share"] = Rate(n_review / len(g), n=len(g), count=int(n_review))
    return {
        "threshold": float(t),
        "review": float(review),
        "calib": SplitReport(_calib_counts(calib, species), rates, CALIB_NOTE),
    }


def _review_band(scores: np.ndarray, threshold: float, share: float) -> tuple[float, int]:
    """review_at_or_above <= threshold such that [review_at_or_above, threshold) holds the
    number of scores closest to share * len(scores) (ties: the smaller band); candidates are the
    scores below the threshold and the threshold itself (an empty band)."""
    below = np.sort(scores[scores < threshold])
    values = np.unique(below)
    counts = len(below) - np.searchsorted(below, values, side="left")  # rows in [v, t)
    candidates = np.append(threshold, values[::-1])  # band grows along this order
    sizes = np.append(0, counts[::-1])
    best = int(np.argmin(np.abs(sizes - share * len(scores))))  # first = smaller band on ties
    return float(candidates[best]), int(sizes[best])


# ------------------------------------------------------------------------------------- reporting


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _test_report(
    test: pd.DataFrame, t: float, a: float, species: list[str], boot: dict[str, Any]
) -> SplitReport:
    """Generalised rates on the report rows at threshold t and review band [a, t)."""
    counts = {
        "samples": len(test),
        "failures_to_acquire": int((~test["acquired"]).sum()),
        "subjects": int(test["subject_id"].nunique()),
        "bona_fide_samples": int((test["label"] == 0).sum()),
        "attack_samples": int((test["label"] == 1).sum()),
        "attacks_per_species": {
            name: int(((test["label"] == 1) & (test["attack_type"] == name)).sum())
            for name in species
        },
    }
    if counts["subjects"] < 2:
        return SplitReport(counts, {}, f"{counts['subjects']} subject(s): no subject bootstrap")
    s, y = test["gscore"].to_numpy(), test["label"].to_numpy()
    sp = test["attack_type"].to_numpy()
    codes, resamples = resample_counts(
        test["subject_id"].to_numpy(), boot["n_resamples"], boot["seed"]
    )
    level = boot["level"]
    rates: dict[str, Rate] = {}
    missing: list[str] = []

    def rate(errors: np.ndarray, where: np.ndarray) -> tuple[Rate, np.ndarray] | None:
        if not where.any():
            return None
        e = errors.astype(np.float64)
        reps = rate_replicates(e, codes, resamples, where)
        estimate = float(e[where].mean())
        return rate_from_replicates(
            estimate, reps, level, int(where.sum()), int(e[where].sum())
        ), reps

    def worst_of(errors: np.ndarray, name: str) -> None:
        present = []
        for species_name in species:
            got = rate(errors, (y == 1) & (sp == species_name))
            if got is None:
                if species_name not in missing:
                    missing.append(species_name)
                continue
            rates[f"{name}/{species_name}"] = got[0]
            present.append(species_name)
        if not present:
            return
        worst = worst_group_replicates(errors, sp, present, codes, resamples, where=y == 1)
        estimate = max(rates[f"{name}/{n}"].estimate for n in present)
        rates[f"{name}_worst"] = rate_from_replicates(estimate, worst, level, None, None)

    worst_of(s < t, "apcer")
    bona = rate(s >= t, y == 0)
    if bona is not None:
        rates["bpcer"] = bona[0]
    rates["review_share"] = rate((s >= a) & (s < t), np.ones(len(s), dtype=bool))[0]
    worst_of(s < a, "apcer_auto_accept")
    note = f"species absent from these test rows: {missing}" if missing else None
    return SplitReport(counts, rates, note)


def options_from_config(cfg) -> tuple[dict[str, Any], list[str]]:
    """`calibrate_detection`'s options from the composed `calibrate` config (no other table)."""
    from omegaconf import OmegaConf

    return {
        "targets": list(cfg.targets),
        "segments": list(cfg.segments or []),
        "min_subjects": int(cfg.min_subjects),
        "review_share": float(cfg.review_share),
        "score_calibration": cfg.score_calibration,
        "bootstrap": OmegaConf.to_container(cfg.bootstrap, resolve=True),
        "calib_split": cfg.get("calib_split", "calib"),
        "report_split": cfg.get("report_split", "test"),
        "score_range": list(cfg.task.score_range),
    }, []
