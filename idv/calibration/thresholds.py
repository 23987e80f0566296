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
4. Two-threshold decisions. The operating threshold t is the reject threshold
   (`reject_at_or_above = t`, so the auto-reject side keeps exactly the BPCER of step 1) and the
   review band [accept_below, t) sits just BELOW it: `accept_below` is the calib score (or t
   itself, for an empty band) whose band [accept_below, t) holds the count of calib samples
   closest to `review_share` x (calib samples of that threshold's rows, failures to acquire
   included: they are traffic), ties to the smaller band. Decisions: score < accept_below ->
   accept (bona fide); score >= t -> reject (attack); in between -> review; a failure to acquire
   -> reject. Attacks scored in [accept_below, t), which the single threshold would have accepted,
   now go to a human, so the auto-accept APCER can only fall (reported on test with intervals,
   with the achieved review share). Placing the band above t instead would trade BPCER, not
   the APCER guarantee that the operating point exists for.
5. Reporting on test, at the chosen thresholds: APCER per species, worst APCER and BPCER, with
   percentile intervals from a subject bootstrap (all rates of one test frame share the same
   resamples: `idv.metrics.bootstrap.resample_counts` with the configured seed). These are
   generalised rates (ISO/IEC 19795-1): a failure to acquire stays in every denominator and
   counts against the system (`idv.metrics.detection.generalised_scores`): a bona fide one as
   a rejection (raises BPCER), an attack one as a missed attack (never lowers APCER). Test
   never feeds back into any threshold.
6. Optional score calibration (`platt` | `isotonic`, `idv.calibration.score_calibration`), fitted
   on the acquired calib rows and judged by the ECE on the acquired test rows, before and after.

Counts in a threshold's `calib` block are those the threshold rests on: class and species
counts over the acquired calib rows, plus `samples` (all rows, the review-share denominator) and
`failures_to_acquire`. Counts in a `test` block are the denominators of the generalised rates
next to them (all rows, failures included).

`run_calibration` reads a score table file, hashes it (and the checkpoint, when given and
present), calls `calibrate_detection` and writes `thresholds.json` (the single source of truth for
thresholds) and `thresholds.md` atomically. `calibrate(cfg)` is the same from a Hydra config.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from idv.atomic import write_json, write_text
from idv.calibration.matching import calibrate_matching
from idv.calibration.matching import markdown_summary as matching_summary
from idv.calibration.score_calibration import METHODS, calibration_report
from idv.hashing import sha256_file
from idv.metrics.bootstrap import Interval, rate_replicates, resample_counts
from idv.metrics.detection import generalised_scores, threshold_at_worst_apcer
from idv.metrics.resolution import min_trials

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
METRIC = "apcer_worst"
REQUIRED_COLUMNS = ("score", "label", "attack_type", "subject_id", "split")
DEFAULT_BOOTSTRAP = {"n_resamples": 1000, "seed": 0, "level": 0.95}
GLOBAL = "global"

__all__ = [
    "calibrate",
    "calibrate_detection",
    "decide",
    "markdown_summary",
    "run_calibration",
    "sha256_file",
]


# ----------------------------------------------------------------------------------- public API


def decide(
    scores: Sequence[float],
    accept_below: float,
    reject_at_or_above: float,
    acquired: Sequence[bool] | None = None,
) -> np.ndarray:
    """'accept' (score < accept_below), 'reject' (score >= reject_at_or_above) or 'review' (in
    between) per sample; a failure to acquire (acquired False) is 'reject'."""
    if not accept_below <= reject_at_or_above:
        raise ValueError(
            f"accept_below ({accept_below}) must not exceed reject_at_or_above "
            f"({reject_at_or_above})"
        )
    s = np.asarray(scores, dtype=np.float64)
    if acquired is not None:
        s = generalised_scores(s, acquired)
    elif np.isnan(s).any():
        raise ValueError("scores contain NaN: pass acquired= to mark failures to acquire")
    out = np.full(s.shape, "review", dtype=object)
    out[s < accept_below] = "accept"
    out[s >= reject_at_or_above] = "reject"
    return out


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
    source: str = "score table",
) -> dict[str, Any]:
    """Thresholds (global and per segment) at every target, chosen on `calib_split` only, with
    their review bands and their achieved rates on `report_split`; see the module docstring.

    Returns the JSON-safe content of thresholds.json without its `inputs` block (hashes of the
    files: see `run_calibration`). `source` names the table in error messages.
    """
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
    calib, test = _prepare(table, source, calib_split, report_split, segments)
    species = sorted(calib.loc[calib["label"] == 1, "attack_type"].astype(str).unique())
    calib_acq = calib[calib["acquired"]]

    # Test rates cover every species seen in test: one absent from calib (an unseen attack)
    # has no guarantee from the threshold, but its APCER is reported, never hidden.
    tested = set(test.loc[test["label"] == 1, "attack_type"])
    unseen = sorted(tested - set(species))
    reported = sorted(tested | set(species))
    entries: list[dict[str, Any]] = []
    for rank, target in enumerate(targets):
        problems = _resolution_problems(calib_acq, species, target, min_subjects, bona=False)
        if problems:
            raise ValueError(
                f"{source}: the {calib_split!r} split cannot resolve worst-species APCER <= "
                f"{target:g}: " + "; ".join(problems) + ". Use a larger target or more "
                "calibration data; an unresolved threshold is never written"
            )
        point = {"metric": METRIC, "max": target, "primary": rank == 0}

        def add(column, value, why, chosen, segment_counts=None, rows=test, point=point):
            report = _test_report(rows, chosen["threshold"], chosen["accept_below"], reported, boot)
            entries.append(_entry(point, column, value, why, chosen, segment_counts, report))

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

    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": "detection",
        "decision_rule": (
            "score < accept_below -> accept (bona fide); score >= reject_at_or_above -> reject "
            "(attack); otherwise -> review; a failure to acquire -> reject. Without the review "
            "band, score >= threshold -> attack."
        ),
        "operating_point": {"metric": METRIC, "max": targets[0]},
        "targets": targets,
        "calibration_split": calib_split,
        "report_split": report_split,
        "segment_columns": segments,
        "min_subjects": int(min_subjects),
        "review_share": float(review_share),
        "rates": (
            f"thresholds chosen on the acquired {calib_split!r} rows; {report_split!r} rates are "
            "generalised (ISO/IEC 19795-1): a failure to acquire counts as a rejection"
        ),
        "bootstrap": {**boot, "unit": "subject", "interval": "percentile"},
        "species": species,
        "species_unseen_in_calib": unseen,
        "thresholds": entries,
        "score_calibration": None,
    }
    if score_calibration is not None:
        test_acq = test[test["acquired"]]
        result["score_calibration"] = calibration_report(
            score_calibration,
            calib_acq["score"].to_numpy(),
            calib_acq["label"].to_numpy(),
            test_acq["score"].to_numpy(),
            test_acq["label"].to_numpy(),
        )
    return result


def run_calibration(
    scores: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    ckpt_path: str | os.PathLike | None = None,
    task: str | None = None,
    kind: str = "detection",
    **options: Any,
) -> dict[str, Any]:
    """Read the score table `scores` (Parquet), calibrate (`calibrate_detection(**options)`),
    and write `thresholds.json` and `thresholds.md` in `output_dir`. The table is hashed from the
    very bytes that are parsed; the checkpoint is hashed when `ckpt_path` is given and exists."""
    path = Path(scores)
    if not path.is_file():
        raise FileNotFoundError(f"score table {str(path)!r} does not exist")
    data = path.read_bytes()
    table = pd.read_parquet(io.BytesIO(data))
    if kind == "matching":
        result = calibrate_matching(table, source=str(path), **options)
    else:
        result = calibrate_detection(table, source=str(path), **options)
    checkpoint = None
    if ckpt_path is not None:
        ckpt = Path(ckpt_path)
        checkpoint = {"path": str(ckpt), "sha256": sha256_file(ckpt) if ckpt.is_file() else None}
        if checkpoint["sha256"] is None:
            checkpoint["note"] = "file not found: not hashed"
            log.warning("checkpoint %s not found: thresholds.json records it unhashed", ckpt)
    result["task"] = task
    result["inputs"] = {
        "scores": {"path": str(path), "sha256": hashlib.sha256(data).hexdigest()},
        "checkpoint": checkpoint,
        "calibration_split": result["calibration_split"],
        "report_split": result["report_split"],
    }
    out = Path(output_dir)
    write_json(result, out / "thresholds.json")
    summary = matching_summary if kind == "matching" else markdown_summary
    write_text(summary(result), out / "thresholds.md")
    log.info("wrote thresholds.json and thresholds.md in %s", out)
    return result


def calibrate(cfg) -> dict[str, Any]:
    """`run_calibration` from the composed `calibrate` config (conf/calibrate.yaml)."""
    from omegaconf import OmegaConf

    kind = cfg.task.get("kind", "detection")
    if kind == "matching":
        return run_calibration(
            cfg.scores,
            cfg.output_dir,
            ckpt_path=cfg.get("ckpt_path"),
            task=cfg.task.name,
            kind=kind,
            targets=list(cfg.targets),
            protocol=cfg.task.calibration_protocol,
            segments=list(cfg.segments or []),
            min_subjects=int(cfg.min_subjects),
            review_share=float(cfg.review_share),
            bootstrap=OmegaConf.to_container(cfg.bootstrap, resolve=True),
            calib_split=cfg.get("calib_split", "calib"),
            report_split=cfg.get("report_split", "test"),
        )
    if kind != "detection":
        raise ValueError(f"task {cfg.task.name!r} is of kind {kind!r}: no calibration for it")
    return run_calibration(
        cfg.scores,
        cfg.output_dir,
        ckpt_path=cfg.get("ckpt_path"),
        task=cfg.task.name,
        targets=list(cfg.targets),
        segments=list(cfg.segments or []),
        min_subjects=int(cfg.min_subjects),
        review_share=float(cfg.review_share),
        score_calibration=cfg.score_calibration,
        bootstrap=OmegaConf.to_container(cfg.bootstrap, resolve=True),
        calib_split=cfg.get("calib_split", "calib"),
        report_split=cfg.get("report_split", "test"),
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
    boot = {**DEFAULT_BOOTSTRAP, **dict(bootstrap or {})}
    unknown = set(boot) - set(DEFAULT_BOOTSTRAP)
    if unknown:
        raise KeyError(
            f"unknown bootstrap option(s) {sorted(unknown)}; known: n_resamples, seed, level"
        )
    if int(boot["n_resamples"]) != boot["n_resamples"] or boot["n_resamples"] < 1:
        raise ValueError(f"bootstrap.n_resamples must be a positive integer: {boot['n_resamples']}")
    if not 0.0 < boot["level"] < 1.0:
        raise ValueError(f"bootstrap.level must lie in (0, 1), got {boot['level']!r}")
    return {
        "n_resamples": int(boot["n_resamples"]),
        "seed": int(boot["seed"]),
        "level": float(boot["level"]),
    }


def _acquired(table: pd.DataFrame, source: str) -> pd.Series:
    if "acquired" not in table.columns:  # a vendor table may omit it: every row was scored
        return pd.Series(True, index=table.index)
    col = table["acquired"]
    if col.dtype == bool:
        return col
    if col.isna().any() or not col.isin([0, 1]).all():
        bad = col[col.isna() | ~col.isin([0, 1])].unique()[:5].tolist()
        raise ValueError(f"{source}: column 'acquired' must be boolean, got values {bad}")
    return col.astype(bool)


def _prepare(
    table: pd.DataFrame, source: str, calib_split: str, report_split: str, segments: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The calib and report rows, validated, with `acquired` (bool) and `gscore` (generalised
    score: +inf for a failure to acquire)."""
    columns = sorted(map(str, table.columns))
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise KeyError(f"{source}: missing column(s) {missing} (columns: {columns})")
    for column in segments:
        if column not in table.columns:
            raise KeyError(
                f"{source}: segment column {column!r} is not in the score table "
                f"(columns: {columns})"
            )
    present = sorted(map(str, table["split"].dropna().unique()))
    for split in (calib_split, report_split):
        if split not in present:
            raise ValueError(
                f"{source}: no rows with split == {split!r} (splits present: {present}); "
                "score it with idv-evaluate (score_splits)"
            )
    frame = table[table["split"].isin([calib_split, report_split])].copy()
    frame["acquired"] = _acquired(frame, source)
    if not frame["label"].isin([0, 1]).all():
        bad = frame.loc[~frame["label"].isin([0, 1]), "label"].unique()[:5].tolist()
        raise ValueError(f"{source}: column 'label' must be 0 (bona fide) or 1 (attack), got {bad}")
    frame["label"] = frame["label"].astype(np.int64)
    frame["score"] = pd.to_numeric(frame["score"], errors="raise").astype(np.float64)
    bad = frame["acquired"] & ~np.isfinite(frame["score"].to_numpy())
    if bad.any():
        rows = frame[bad]
        raise ValueError(
            f"{source}: {int(bad.sum())} acquired row(s) have a NaN or infinite score, in split(s) "
            f"{sorted(rows['split'].astype(str).unique())}, e.g. sample_id "
            f"{rows.get('sample_id', rows.index).astype(str).tolist()[:5]}; mark a failure to "
            "acquire with acquired=False"
        )
    if frame["subject_id"].isna().any():
        raise ValueError(f"{source}: column 'subject_id' has missing values")
    frame["attack_type"] = frame["attack_type"].astype(str)
    frame["gscore"] = generalised_scores(
        frame["score"].to_numpy(), frame["acquired"].to_numpy(), frame["label"].to_numpy()
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
    accept_below, n_review = _review_band(g, t, review_share)
    per_species = {name: float((s[(y == 1) & (sp == name)] < t).mean()) for name in species}
    return {
        "threshold": float(t),
        "accept_below": float(accept_below),
        "counts": _calib_counts(calib, species),
        "rates": {
            "apcer_per_species": per_species,
            "apcer_worst": max(per_species.values()),
            "bpcer": float((s[y == 0] >= t).mean()),
        },
        "review": {"target": review_share, "samples": int(n_review), "share": n_review / len(g)},
    }


def _review_band(scores: np.ndarray, threshold: float, share: float) -> tuple[float, int]:
    """accept_below <= threshold such that [accept_below, threshold) holds the number of scores
    closest to share * len(scores) (ties: the smaller band); candidates are the scores below the
    threshold and the threshold itself (an empty band)."""
    below = np.sort(scores[scores < threshold])
    values = np.unique(below)
    counts = len(below) - np.searchsorted(below, values, side="left")  # rows in [v, t)
    candidates = np.append(threshold, values[::-1])  # band grows along this order
    sizes = np.append(0, counts[::-1])
    best = int(np.argmin(np.abs(sizes - share * len(scores))))  # first = smaller band on ties
    return float(candidates[best]), int(sizes[best])


# ------------------------------------------------------------------------------------- reporting


def _json_value(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _entry(
    point: dict[str, Any],
    column: str | None,
    value: Any,
    why: str,
    chosen: dict[str, Any],
    segment_counts: dict[str, Any] | None,
    test_report: dict[str, Any],
) -> dict[str, Any]:
    name = GLOBAL if column is None else f"{column}={value}"
    t, a = chosen["threshold"], chosen["accept_below"]
    entry: dict[str, Any] = {
        "id": f"{METRIC}<={point['max']:g}|{name}",
        "operating_point": point,
        "segment": {"column": column, "value": _json_value(value)},
        "source": why,
        "threshold": t,
        "calib": {
            **chosen["counts"],
            "rates": chosen["rates"],
            "rates_note": "on the rows the threshold was chosen on (optimistic by design)",
        },
        "decision": {
            "accept_below": a,
            "reject_at_or_above": t,
            "review_share_target": chosen["review"]["target"],
            "calib_review_samples": chosen["review"]["samples"],
            "calib_review_share": chosen["review"]["share"],
        },
        "test": test_report,
    }
    if segment_counts is not None:
        entry["segment_calib"] = segment_counts
    return entry


def _test_report(
    test: pd.DataFrame, t: float, a: float, species: list[str], boot: dict[str, Any]
) -> dict[str, Any]:
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
        return {**counts, "not_reported": f"{counts['subjects']} subject(s): no subject bootstrap"}
    s, y = test["gscore"].to_numpy(), test["label"].to_numpy()
    sp = test["attack_type"].to_numpy()
    codes, resamples = resample_counts(
        test["subject_id"].to_numpy(), boot["n_resamples"], boot["seed"]
    )
    level = boot["level"]

    def rate(errors: np.ndarray, where: np.ndarray) -> tuple[dict, np.ndarray] | None:
        if not where.any():
            return None
        e = errors.astype(np.float64)
        reps = rate_replicates(e, codes, resamples, where)
        estimate = float(e[where].mean())
        return _rate_dict(estimate, reps, level, int(where.sum()), int(e[where].sum())), reps

    def worst_of(errors: np.ndarray) -> tuple[dict[str, Any], dict[str, Any] | None]:
        per, reps, missing = {}, [], []
        for name in species:
            got = rate(errors, (y == 1) & (sp == name))
            if got is None:
                missing.append(name)
                continue
            per[name], r = got
            reps.append(r)
        if not per:
            return per, None
        stacked = np.vstack(reps)
        with np.errstate(all="ignore"):
            any_row = ~np.isnan(stacked).all(axis=0)
            worst_reps = np.where(
                any_row, np.nanmax(np.where(np.isnan(stacked), -np.inf, stacked), axis=0), np.nan
            )
        estimate = max(d["estimate"] for d in per.values())
        worst = _rate_dict(estimate, worst_reps, level, None, None)
        if missing:
            worst["note"] = f"species absent from these test rows: {missing}"
        return per, worst

    apcer_per, apcer_worst = worst_of(s < t)
    bona = rate(s >= t, y == 0)
    auto_per, auto_worst = worst_of(s < a)
    review = rate((s >= a) & (s < t), np.ones(len(s), dtype=bool))
    return {
        **counts,
        "apcer_per_species": apcer_per,
        "apcer_worst": apcer_worst,
        "bpcer": None if bona is None else bona[0],
        "decision": {
            "review_share": review[0],
            "apcer_auto_accept_per_species": auto_per,
            "apcer_auto_accept_worst": auto_worst,
            "bpcer_auto_reject": None if bona is None else bona[0],
        },
    }


def _rate_dict(
    estimate: float, replicates: np.ndarray, level: float, n: int | None, count: int | None
) -> dict[str, Any]:
    """A rate with its interval: `n` rows in the denominator, `count` of them counted (e.g. the
    missed attacks); `resolution` = 3 / n, what an estimate of 0 really bounds."""
    interval = _interval(estimate, replicates, level)
    out = {"n": n, "count": count} if n is not None else {}
    if interval is None:
        return {**out, "estimate": estimate, "interval": None}
    out.update(asdict(interval))
    if n:
        out["resolution"] = 3.0 / n  # rule of three: what a rate of 0 really bounds
    return out


def _interval(estimate: float, replicates: np.ndarray, level: float) -> Interval | None:
    """Percentile interval as in idv.metrics.bootstrap (same quantiles); None if no replicate."""
    kept = replicates[~np.isnan(replicates)]
    if len(kept) == 0:
        return None
    low, high = np.quantile(kept, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return Interval(
        float(estimate), float(low), float(high), level, len(kept), len(replicates) - len(kept)
    )


# ------------------------------------------------------------------------------------- markdown


def _fmt(rate: dict[str, Any] | None) -> str:
    if not rate:
        return "n/a"
    if rate.get("low") is None:
        return f"{rate['estimate']:.4f}"
    return f"{rate['estimate']:.4f} [{rate['low']:.4f}, {rate['high']:.4f}]"


def markdown_summary(result: Mapping[str, Any]) -> str:
    """A short human view of thresholds.json."""
    level = result["bootstrap"]["level"]
    lines = [
        f"# Thresholds{' for ' + result['task'] if result.get('task') else ''}",
        "",
        f"Chosen on split `{result['calibration_split']}` only; rates on "
        f"`{result['report_split']}` with {level:.0%} subject-bootstrap intervals "
        f"({result['bootstrap']['n_resamples']} resamples). {result['rates']}.",
        f"Operating point: worst-species APCER <= {result['operating_point']['max']:g}. "
        f"Decision rule: {result['decision_rule']}",
        "",
        "| target | segment | threshold | accept below | source | calib attacks / species "
        "| test worst APCER | test BPCER | test review share | test auto-accept worst APCER |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in result["thresholds"]:
        seg = (
            GLOBAL
            if e["segment"]["column"] is None
            else (f"{e['segment']['column']}={e['segment']['value']}")
        )
        per = e["calib"]["attacks_per_species"]
        test = e["test"]
        decision = test.get("decision", {})
        lines.append(
            f"| {e['operating_point']['max']:g} | {seg} | {e['threshold']:.4f} "
            f"| {e['decision']['accept_below']:.4f} | {e['source']} "
            f"| {', '.join(f'{k}: {v}' for k, v in per.items())} "
            f"| {_fmt(test.get('apcer_worst'))} | {_fmt(test.get('bpcer'))} "
            f"| {_fmt(decision.get('review_share'))} "
            f"| {_fmt(decision.get('apcer_auto_accept_worst'))} |"
        )
    sc = result.get("score_calibration")
    if sc:
        before = sc["test"]["ece_before"]
        lines += [
            "",
            f"Score calibration `{sc['params']['method']}` (fitted on calib): ECE on test "
            f"{'n/a' if before is None else f'{before:.4f}'} before, "
            f"{sc['test']['ece_after']:.4f} after.",
        ]
    inputs = result.get("inputs")
    if inputs:
        ckpt = inputs.get("checkpoint")
        lines += [
            "",
            f"Scores: `{inputs['scores']['path']}` (sha256 `{inputs['scores']['sha256']}`).",
            "Checkpoint: "
            + ("not given." if not ckpt else f"`{ckpt['path']}` (sha256 `{ckpt['sha256']}`)."),
        ]
    return "\n".join(lines) + "\n"
