"""Vendor benchmark: external providers judged on the owned evaluation set (detection tasks
here; matching tasks, 1:1 comparisons and 1:N searches, in `benchmark_matching`).

A vendor file (CSV or Parquet) has one row per owned sample it answered: `sample_id`,
`provider`, a `score` and / or a `decision` ("attack" / "bona_fide", or 1 / 0 with 1 = attack),
optionally `acquired` (False = the provider declared a failure), `latency_ms` and `cost`.
Labels, species, subjects and segments come from the owned manifest, never from the vendor.
Our own `scores.parquet` enters the same way, as the provider `ours`.

Every provider is aligned on every owned item of the split, so all of them are judged on the
same rows and compared with paired tests. An item a provider did not answer is a failure to
acquire and is counted as an error on its own side: a bona fide becomes +inf (classified attack
at every threshold: it raises BPCER, see `generalised_scores`) and an attack becomes -inf (a
missed attack at every threshold), so leaving an item unanswered never improves APCER or BPCER
over answering it wrongly, and a provider cannot gain by skipping hard items. Coverage is
reported next to every rate.

Score direction: internally a higher score means "more likely attack". A provider whose scores
run the other way declares `score_direction: higher_is_bona_fide` (Parquet key-value metadata,
a CSV side-car `<stem>.meta.json`, or per provider in the config), with its `score_range`
(default [0, 1]); its scores are flipped within the range (lo + hi - s), which keeps every rate.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy.stats import binomtest

from idv.atomic import atomic_path, write_json, write_text
from idv.metrics.bootstrap import (
    Interval,
    PairedInterval,
    auc_statistic,
    bootstrap_curve,
    bootstrap_rate,
    bpcer_at_worst_apcer_statistic,
    eer_statistic,
    paired_bootstrap_difference,
    paired_rate_difference,
    rate_replicates,
    resample_counts,
)
from idv.metrics.detection import generalised_scores, pct

log = logging.getLogger(__name__)

OURS = "ours"
HIGHER_IS_ATTACK = "higher_is_attack"
HIGHER_IS_BONA_FIDE = "higher_is_bona_fide"
SCORE_DIRECTIONS = (HIGHER_IS_ATTACK, HIGHER_IS_BONA_FIDE)
DEFAULT_SCORE_RANGE = (0.0, 1.0)
OVERALL = "all"
_DECISIONS = {
    **dict.fromkeys(("attack", "1", "1.0", "true"), 1.0),
    **dict.fromkeys(("bona_fide", "bonafide", "bona fide", "0", "0.0", "false"), 0.0),
}
_MANIFEST_COLUMNS = ("sample_id", "label", "subject_id", "split", "attack_type")
# Read as text from a CSV vendor file (detection, comparison and search formats).
_ID_COLUMNS = (
    "sample_id",
    "provider",
    "comparison_id",
    "sample_id_a",
    "sample_id_b",
    "probe_sample_id",
    "candidate_subject_id",
)


# ----------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class ProviderOptions:
    """How to read one provider's scores: their direction and their declared range."""

    score_direction: str = HIGHER_IS_ATTACK
    score_range: tuple[float, float] = DEFAULT_SCORE_RANGE


@dataclass
class AlignedProvider:
    """One provider on the owned items of the split (arrays in owned order).

    `present`: the provider sent a row; `answered` is False for a failure to acquire (no row,
    or `acquired = False`). `scores` are
    internal (higher = attack) and NaN where unanswered; `decisions` are 1.0 (attack) / 0.0,
    NaN where unanswered; either is None when the provider gives none.
    """

    name: str
    sources: list[str]
    present: np.ndarray
    answered: np.ndarray
    scores: np.ndarray | None
    decisions: np.ndarray | None
    latency_ms: np.ndarray
    cost: np.ndarray
    has_latency: bool = False
    has_cost: bool = False
    options: ProviderOptions = field(default_factory=ProviderOptions)

    @property
    def has_scores(self) -> bool:
        return self.scores is not None

    @property
    def has_decisions(self) -> bool:
        return self.decisions is not None


@dataclass(frozen=True)
class BenchmarkResult:
    """`providers`: one row per provider and view (segment `all` first, then per segment
    group); `comparisons`: paired tests of each provider against `reference`; `table`: the
    long table (owned item x provider) the figures were computed from."""

    providers: pd.DataFrame
    comparisons: pd.DataFrame
    table: pd.DataFrame
    split: str
    reference: str | None
    notes: list[str]
    mode: str = "detection"  # detection | comparison (1:1) | search (1:N)


# ------------------------------------------------------------------------------------ reading


def read_vendor_file(file: str | os.PathLike) -> pd.DataFrame:
    """A vendor file as a frame; its declarations (`score_direction`, `score_range`) from the
    Parquet key-value metadata or the CSV side-car `<stem>.meta.json` go to `frame.attrs`,
    with `frame.attrs["source"]` = the file name (used in every error message)."""
    file = Path(file)
    if not file.is_file():
        raise ValueError(f"{file}: vendor file not found")
    suffix = file.suffix.lower()
    meta: dict[str, object] = {}
    if suffix in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(file)
            raw = pq.read_schema(file).metadata or {}
        except Exception as err:  # pyarrow raises several types for a damaged file
            raise ValueError(f"{file}: not a readable Parquet file ({err})") from err
        for key in ("score_direction", "score_range"):
            if key.encode() in raw:
                meta[key] = _parse_meta_value(file, key, raw[key.encode()].decode())
    elif suffix == ".csv":
        # ids stay text: "000123" must not become 123
        try:
            frame = pd.read_csv(file, dtype=dict.fromkeys(_ID_COLUMNS, str))
        except pd.errors.EmptyDataError:
            raise ValueError(
                f"{file}: empty file (not even a header); a vendor file needs one row per "
                "answered item"
            ) from None
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise ValueError(f"{file}: not a readable CSV file ({err})") from err
        sidecar = file.with_suffix(".meta.json")
        if sidecar.is_file():
            try:
                declared = json.loads(sidecar.read_text())
            except json.JSONDecodeError as err:
                raise ValueError(f"{sidecar}: not valid JSON ({err})") from err
            if not isinstance(declared, dict):
                raise ValueError(f"{sidecar}: expected a JSON object")
            unknown = sorted(set(declared) - {"score_direction", "score_range"})
            if unknown:
                raise ValueError(
                    f"{sidecar}: unknown key(s) {unknown}; expected score_direction, score_range"
                )
            meta.update(declared)
    else:
        raise ValueError(f"{file}: unsupported vendor file type {suffix!r} (use .csv or .parquet)")
    frame.attrs.update(meta)
    frame.attrs["source"] = str(file)
    return frame


def _parse_meta_value(file: Path, key: str, text: str) -> object:
    if key == "score_range":
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{file}: metadata score_range {text!r} is not [lo, hi]") from err
    return text


def read_score_table(file: str | os.PathLike) -> pd.DataFrame:
    """Our own detection score table (`scores.parquet` of idv-evaluate)."""
    file = Path(file)
    if not file.is_file():
        raise ValueError(f"{file}: score table not found")
    frame = pd.read_parquet(file)
    frame.attrs["source"] = str(file)
    return frame


# ------------------------------------------------------------------------ options and checks


def provider_options(
    provider: str,
    source: str,
    declared: Mapping[str, object] | None = None,
    configured: Mapping[str, object] | None = None,
) -> ProviderOptions:
    """Options from the file's declarations and the config; a conflict between them is an
    error (a silently reversed score would invert every metric)."""
    merged = declared_options(provider, source, declared, configured)
    direction = merged.get("score_direction", HIGHER_IS_ATTACK)
    if direction not in SCORE_DIRECTIONS:
        raise ValueError(
            f"{source}: provider {provider!r}: score_direction {direction!r} is not one of "
            f"{SCORE_DIRECTIONS}"
        )
    return ProviderOptions(str(direction), merged.get("score_range", DEFAULT_SCORE_RANGE))


def declared_options(
    provider: str,
    source: str,
    declared: Mapping[str, object] | None = None,
    configured: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """`score_direction` / `score_range` merged from the file metadata and the config (range
    checked); the same key with two different values is an error."""
    merged: dict[str, object] = {}
    for origin, values in (("file metadata", declared or {}), ("config", configured or {})):
        for key, value in values.items():
            if key not in ("score_direction", "score_range"):
                raise ValueError(
                    f"{source}: provider {provider!r}: unknown option {key!r} in {origin} "
                    "(known: score_direction, score_range)"
                )
            if key == "score_range":
                value = _score_range(provider, source, value)
            if key in merged and merged[key] != value:
                raise ValueError(
                    f"{source}: provider {provider!r}: {key} is {merged[key]!r} in the file "
                    f"metadata but {value!r} in the config"
                )
            merged[key] = value
    return merged


def _score_range(provider: str, source: str, value: object) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{source}: provider {provider!r}: score_range must be [lo, hi], got {value!r}"
        ) from err
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(
            f"{source}: provider {provider!r}: score_range must be finite with lo < hi, "
            f"got {value!r}"
        )
    return (lo, hi)


def _row_error(
    source: str,
    frame: pd.DataFrame,
    row: int,
    message: str,
    keys: Sequence[str] = ("sample_id",),
) -> ValueError:
    """'<source>: row 3 (sample_id='x'): message'; `keys`: the columns that identify a row."""
    shown = []
    for key in keys:
        if key in frame.columns:
            value = frame[key].iloc[row]
            shown.append(f"{key}={(value.item() if hasattr(value, 'item') else value)!r}")
    where = ", ".join(shown) or f"{keys[0]}='?'"
    return ValueError(f"{source}: row {row} ({where}): {message}")


def require_rows(source: str, frame: pd.DataFrame) -> None:
    """A vendor file without a single row (a header alone) is an error, never "no answers":
    it is far more often a failed export than a provider that answered nothing."""
    if len(frame) == 0:
        raise ValueError(
            f"{source}: no rows (a header alone is not a vendor file; columns: "
            f"{list(map(str, frame.columns))}): a provider that answered nothing is a file "
            "with every owned item and acquired=False"
        )


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _owned_split(manifest: pd.DataFrame, split: str) -> pd.DataFrame:
    missing = [c for c in _MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise ValueError(f"manifest: missing required column(s) {missing}")
    owned = manifest[manifest["split"] == split].reset_index(drop=True)
    if owned.empty:
        raise ValueError(f"manifest: split {split!r} is empty; nothing to benchmark on")
    if owned["sample_id"].duplicated().any():
        row = _first(owned["sample_id"].duplicated().to_numpy())
        raise ValueError(f"manifest: duplicate sample_id {owned['sample_id'].iloc[row]!r}")
    if not owned["label"].isin([0, 1]).all():
        raise ValueError("manifest: a detection benchmark needs labels 0 (bona fide) / 1 (attack)")
    if owned["label"].nunique() < 2:
        raise ValueError(f"manifest: split {split!r} needs both bona fide and attack samples")
    return owned


def _decisions(source: str, frame: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """Parse the decision column at `rows`; an unknown value is an error naming the row."""
    values = frame["decision"].iloc[rows]
    text = values.map(lambda v: str(v).strip().lower() if pd.notna(v) else "")
    parsed = text.map(_DECISIONS).to_numpy(dtype=np.float64)
    bad = np.isnan(parsed)
    if bad.any():
        i = rows[_first(bad)]
        raise _row_error(
            source,
            frame,
            int(i),
            f"decision {frame['decision'].iloc[i]!r} not understood; use 'attack' / "
            "'bona_fide' or 1 / 0 (1 = attack), or acquired=False for no answer",
        )
    return parsed


def _numeric(
    source: str, frame: pd.DataFrame, column: str, keys: Sequence[str] = ("sample_id",)
) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & frame[column].notna().to_numpy()
    if bad.any():
        i = _first(bad)
        raise _row_error(
            source, frame, i, f"{column} {frame[column].iloc[i]!r} is not a number", keys
        )
    return values


def _acquired(source: str, frame: pd.DataFrame, keys: Sequence[str] = ("sample_id",)) -> np.ndarray:
    if "acquired" not in frame.columns:
        return np.ones(len(frame), dtype=bool)
    col = frame["acquired"]
    text = col.map(lambda v: str(v).strip().lower())
    ok = text.isin(["true", "false", "1", "0", "1.0", "0.0"]).to_numpy() & col.notna().to_numpy()
    if not ok.all():
        i = _first(~ok)
        raise _row_error(source, frame, i, f"acquired {col.iloc[i]!r} is not a boolean", keys)
    return text.isin(["true", "1", "1.0"]).to_numpy()


# -------------------------------------------------------------------------------- alignment


def align_source(
    owned: pd.DataFrame,
    frame: pd.DataFrame,
    source: str,
    options: Mapping[str, Mapping[str, object]] | None = None,
    other_splits: Mapping[str, str] | None = None,
) -> list[AlignedProvider]:
    """Validate one vendor file against the owned split and align each provider in it
    (`options`: per provider; `other_splits`: sample_id -> split of the manifest's other
    rows, to say where a stray id belongs). A file without a `provider` column is one
    provider named after the file; a file without rows is an error."""
    require_rows(source, frame)
    if "sample_id" not in frame.columns:
        raise ValueError(f"{source}: no 'sample_id' column (columns: {list(frame.columns)})")
    if "score" not in frame.columns and "decision" not in frame.columns:
        raise ValueError(
            f"{source}: neither a 'score' nor a 'decision' column (columns: "
            f"{list(frame.columns)}); a vendor file needs at least one"
        )
    declared = {k: v for k, v in frame.attrs.items() if k in ("score_direction", "score_range")}
    frame = frame.reset_index(drop=True)
    if "provider" in frame.columns:
        missing = frame["provider"].isna().to_numpy()
        if missing.any():
            raise _row_error(source, frame, _first(missing), "provider is empty")
        names = frame["provider"].astype(str).to_numpy()
    else:
        names = np.full(len(frame), Path(source).stem, dtype=object)

    index = pd.Index(owned["sample_id"].astype(str))
    positions = index.get_indexer(frame["sample_id"].astype(str))
    unknown = positions < 0
    if unknown.any():
        i = _first(unknown)
        elsewhere = (other_splits or {}).get(str(frame["sample_id"].iloc[i]))
        where = f"it belongs to split {elsewhere!r}" if elsewhere else "not in the manifest"
        raise _row_error(
            source,
            frame,
            i,
            f"unknown sample_id ({where}): vendor files may answer only the owned samples of "
            f"the evaluated split ({len(owned)} samples)",
        )
    dup = pd.DataFrame({"p": names, "s": positions}).duplicated(keep="first").to_numpy()
    if dup.any():
        i = _first(dup)
        first = _first((names == names[i]) & (positions == positions[i]))
        raise _row_error(
            source,
            frame,
            i,
            f"duplicate row for provider {names[i]!r} (first seen at row {first})",
        )

    acquired = _acquired(source, frame)
    score = _numeric(source, frame, "score") if "score" in frame.columns else None
    latency = _numeric(source, frame, "latency_ms") if "latency_ms" in frame.columns else None
    cost = _numeric(source, frame, "cost") if "cost" in frame.columns else None
    aligned = []
    for name in dict.fromkeys(names):
        rows = np.flatnonzero(names == name)
        opts = provider_options(name, source, declared, (options or {}).get(name))
        answered_rows = rows[acquired[rows]]
        has_scores = score is not None and bool(np.isfinite(score[rows]).any())
        has_decisions = "decision" in frame.columns and bool(
            frame["decision"].iloc[rows].notna().any()
        )
        if not has_scores and not has_decisions:
            raise ValueError(
                f"{source}: provider {name!r} has neither a score nor a decision in any row"
            )
        n = len(owned)
        pos = positions[answered_rows]
        present, answered = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        present[positions[rows]] = True
        answered[pos] = True
        scores = decisions = None
        if has_scores:
            raw = score[answered_rows]
            nan = np.isnan(raw)
            if nan.any():
                raise _row_error(
                    source,
                    frame,
                    int(answered_rows[_first(nan)]),
                    f"provider {name!r}: NaN score in an answered row; mark a failure to "
                    "acquire with acquired=False or leave the row out",
                )
            lo, hi = opts.score_range
            out = (raw < lo) | (raw > hi)
            if out.any():
                i = int(answered_rows[_first(out)])
                raise _row_error(
                    source,
                    frame,
                    i,
                    f"provider {name!r}: score {float(score[i])!r} outside the declared range "
                    f"[{lo:g}, {hi:g}] (declare score_range for this provider if it differs)",
                )
            if opts.score_direction == HIGHER_IS_BONA_FIDE:
                raw = lo + hi - raw  # higher = attack internally; same range, same order
            scores = np.full(n, np.nan)
            scores[pos] = raw
        if has_decisions:
            decisions = np.full(n, np.nan)
            decisions[pos] = _decisions(source, frame, answered_rows)
        lat, cst = np.full(n, np.nan), np.full(n, np.nan)
        if latency is not None:
            lat[positions[rows]] = latency[rows]
        if cost is not None:
            cst[positions[rows]] = cost[rows]
        aligned.append(
            AlignedProvider(
                name=name,
                sources=[source],
                present=present,
                answered=answered,
                scores=scores,
                decisions=decisions,
                latency_ms=lat,
                cost=cst,
                has_latency=latency is not None,
                has_cost=cost is not None,
                options=opts,
            )
        )
    return aligned


def _merge(
    parts: list[AlignedProvider], owned: pd.DataFrame, key: str = "sample_id"
) -> AlignedProvider:
    """One provider answered in several files: the files must not overlap and must agree on
    what they give (scores and / or decisions); `key`: the owned items' id column."""
    if len(parts) == 1:
        return parts[0]
    merged = parts[0]
    for part in parts[1:]:
        both = merged.present & part.present
        if both.any():
            sample = owned[key].iloc[_first(both)]
            raise ValueError(
                f"provider {part.name!r}: duplicate rows for {key} {sample!r} in "
                f"{merged.sources} and {part.sources}"
            )
        if (part.has_scores, part.has_decisions) != (merged.has_scores, merged.has_decisions):
            raise ValueError(
                f"provider {part.name!r}: {merged.sources} and {part.sources} disagree on "
                "whether it gives scores and / or decisions"
            )
        if part.options != merged.options:
            raise ValueError(
                f"provider {part.name!r}: {merged.sources} and {part.sources} declare "
                f"different score options ({merged.options} vs {part.options})"
            )

        def combine(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.where(np.isnan(a), b, a)

        merged = AlignedProvider(
            name=merged.name,
            sources=[*merged.sources, *part.sources],
            present=merged.present | part.present,
            answered=merged.answered | part.answered,
            scores=combine(merged.scores, part.scores),
            decisions=combine(merged.decisions, part.decisions),
            latency_ms=np.where(np.isnan(merged.latency_ms), part.latency_ms, merged.latency_ms),
            cost=np.where(np.isnan(merged.cost), part.cost, merged.cost),
            has_latency=merged.has_latency or part.has_latency,
            has_cost=merged.has_cost or part.has_cost,
            options=merged.options,
        )
    return merged


def _ours_frame(ours: pd.DataFrame, owned: pd.DataFrame, split: str) -> pd.DataFrame:
    """Our score table restricted to the split, with its labels checked against the manifest
    (a table scored on another manifest version must not be compared silently)."""
    source = ours.attrs.get("source", OURS)
    if "split" in ours.columns:
        present = sorted(map(str, ours["split"].unique()))
        ours = ours[ours["split"] == split]
        if ours.empty:
            raise ValueError(f"{source}: no rows of split {split!r} (splits present: {present})")
    ours = ours.reset_index(drop=True)
    if "label" in ours.columns:
        labels = owned.set_index("sample_id")["label"].reindex(ours["sample_id"]).to_numpy()
        bad = ~np.isnan(labels.astype(float)) & (labels != ours["label"].to_numpy())
        if bad.any():
            i = _first(bad)
            raise _row_error(
                source,
                ours,
                i,
                f"label {ours['label'].iloc[i]!r} disagrees with the manifest's "
                f"{labels[i]!r}: was this table scored on another manifest?",
            )
    keep = [c for c in ("sample_id", "score", "acquired", "latency_ms", "cost") if c in ours]
    out = ours[keep].assign(provider=OURS)
    out.attrs["source"] = source
    return out


# ----------------------------------------------------------------------------------- metrics


def generalised_provider_scores(provider: AlignedProvider, labels: np.ndarray) -> np.ndarray:
    """Scores with failures to acquire as errors: bona fide +inf, attack -inf."""
    return generalised_scores(provider.scores, provider.answered, labels)


def generalised_decisions(provider: AlignedProvider, labels: np.ndarray) -> np.ndarray:
    """Decisions with failures to acquire as errors: bona fide -> attack, attack -> bona fide."""
    return np.where(provider.answered, provider.decisions, 1.0 - labels)


@dataclass(frozen=True)
class _Bootstrap:
    n_resamples: int
    seed: int
    level: float

    def kwargs(self) -> dict[str, object]:
        return {"n_resamples": self.n_resamples, "seed": self.seed, "level": self.level}


def _put(row: dict, key: str, interval: Interval | None) -> None:
    row[key] = np.nan if interval is None else interval.estimate
    row[f"{key}_low"] = np.nan if interval is None else interval.low
    row[f"{key}_high"] = np.nan if interval is None else interval.high


def _quantile_interval(estimate: float, replicates: np.ndarray, level: float) -> Interval | None:
    kept = replicates[~np.isnan(replicates)]
    if len(kept) == 0:
        return None
    low, high = np.quantile(kept, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    n = len(replicates)
    return Interval(float(estimate), float(low), float(high), level, len(kept), n - len(kept))


def _worst_replicates(
    errors: np.ndarray, species: np.ndarray, names: Sequence[str], codes, counts
) -> np.ndarray:
    """Worst-species APCER per resample; a species absent from a resample is ignored there."""
    per = np.stack([rate_replicates(errors, codes, counts, where=species == n) for n in names])
    with np.errstate(all="ignore"):
        worst = np.where(np.isnan(per), -np.inf, per).max(axis=0)
    return np.where(np.isfinite(worst), worst, np.nan)


def _latency_cost(row: dict, p: AlignedProvider, view: np.ndarray) -> None:
    """Latency percentiles over every row sent with a latency (a declared failure took time
    too); cost in total and per owned item of the view (what the whole set cost)."""
    lat = p.latency_ms[view]
    lat = lat[np.isfinite(lat)]
    for q in (50, 95, 99):
        row[f"latency_p{q}_ms"] = float(np.percentile(lat, q)) if len(lat) else np.nan
    cost = p.cost[view]
    total = float(np.nansum(cost)) if p.has_cost else np.nan
    row["cost_total"] = total
    row["cost_per_item"] = total / int(view.sum()) if p.has_cost else np.nan


def _provider_row(
    p: AlignedProvider,
    owned: pd.DataFrame,
    view: np.ndarray,
    species_names: Sequence[str],
    apcer_target: float,
    boot: _Bootstrap,
    min_subjects: int,
) -> dict:
    labels = owned["label"].to_numpy()[view].astype(np.int64)
    subjects = owned["subject_id"].to_numpy()[view]
    species = owned["attack_type"].astype(str).to_numpy()[view]
    answered = p.answered[view]
    bona, attack = labels == 0, labels == 1
    n_bona_subj = len(set(subjects[bona])) if bona.any() else 0
    n_attack_subj = len(set(subjects[attack])) if attack.any() else 0
    row: dict[str, object] = {
        "items": int(view.sum()),
        "answered": int(answered.sum()),
        "coverage": float(answered.mean()),
        "coverage_bona_fide": float(answered[bona].mean()) if bona.any() else np.nan,
        "coverage_attack": float(answered[attack].mean()) if attack.any() else np.nan,
        "subjects": len(set(subjects)),
        "bona_fide_subjects": n_bona_subj,
        "attack_subjects": n_attack_subj,
        "too_small": min(n_bona_subj, n_attack_subj) < min_subjects,
        "has_scores": p.has_scores,
        "has_decisions": p.has_decisions,
    }
    resamplable = len(set(subjects)) >= 2
    curve_ok = p.has_scores and bona.any() and attack.any() and resamplable
    target_key = f"bpcer_at_worst_apcer_{pct(apcer_target)}"
    scores = generalised_provider_scores(p, owned["label"].to_numpy())[view] if curve_ok else None
    for key, statistic, extra in (
        ("eer", eer_statistic, {}),
        ("auc", auc_statistic, {}),
        (target_key, bpcer_at_worst_apcer_statistic(apcer_target), {"species": species}),
    ):
        interval = (
            bootstrap_curve(scores, labels, subjects, statistic, **extra, **boot.kwargs())
            if curve_ok
            else None
        )
        _put(row, key, interval)

    decision_ok = p.has_decisions and resamplable
    present = [n for n in species_names if (species[attack] == n).any()]
    errors = None
    if decision_ok:
        decided = generalised_decisions(p, owned["label"].to_numpy())[view]
        errors = np.where(attack, decided == 0, decided == 1).astype(np.float64)
    for name in species_names:
        where = attack & (species == name)
        interval = None
        if errors is not None and where.any():
            interval = bootstrap_rate(errors, subjects, where=where, **boot.kwargs())
        _put(row, f"apcer_{name}@decision", interval)
    worst = None
    if errors is not None and present:
        codes, counts = resample_counts(subjects, boot.n_resamples, boot.seed)
        estimate = max(float(errors[attack & (species == n)].mean()) for n in present)
        reps = _worst_replicates(errors, species, present, codes, counts)
        worst = _quantile_interval(estimate, reps, boot.level)
    _put(row, "apcer_worst@decision", worst)
    bpcer = None
    if errors is not None and bona.any():
        bpcer = bootstrap_rate(errors, subjects, where=bona, **boot.kwargs())
    _put(row, "bpcer@decision", bpcer)
    _latency_cost(row, p, view)
    return row


def _mcnemar(ref_errors: np.ndarray, cand_errors: np.ndarray) -> tuple[int, int, float]:
    """Exact McNemar on paired 0/1 errors: (candidate-only errors, reference-only errors, p)."""
    worse = int(((cand_errors == 1) & (ref_errors == 0)).sum())
    better = int(((cand_errors == 0) & (ref_errors == 1)).sum())
    p = binomtest(worse, worse + better, 0.5).pvalue if worse + better else 1.0
    return worse, better, float(p)


def _comparison_row(
    provider: str,
    reference: str,
    metric: str,
    method: str,
    interval: PairedInterval | Interval,
    mcnemar: tuple[int, int, float] | None = None,
) -> dict:
    return {
        "provider": provider,
        "reference": reference,
        "metric": metric,
        "method": method,
        "difference": interval.estimate,
        "low": interval.low,
        "high": interval.high,
        "level": interval.level,
        "excludes_zero": bool(interval.low > 0 or interval.high < 0),
        "share_positive": getattr(interval, "share_positive", np.nan),
        "n_resamples": interval.n_resamples,
        "n_dropped": interval.n_dropped,
        "candidate_only_errors": np.nan if mcnemar is None else mcnemar[0],
        "reference_only_errors": np.nan if mcnemar is None else mcnemar[1],
        "mcnemar_p": np.nan if mcnemar is None else mcnemar[2],
    }


def compare(
    reference: AlignedProvider,
    candidate: AlignedProvider,
    owned: pd.DataFrame,
    species_names: Sequence[str],
    apcer_target: float,
    boot: _Bootstrap,
) -> list[dict]:
    """Paired tests of `candidate` - `reference` on the same owned items (a positive
    difference in an error rate means the candidate is worse; in AUC, better)."""
    labels = owned["label"].to_numpy().astype(np.int64)
    subjects = owned["subject_id"].to_numpy()
    species = owned["attack_type"].astype(str).to_numpy()
    rows = []
    if reference.has_scores and candidate.has_scores:
        a = generalised_provider_scores(reference, labels)
        b = generalised_provider_scores(candidate, labels)
        for metric, statistic, extra in (
            ("eer", eer_statistic, {}),
            ("auc", auc_statistic, {}),
            (
                f"bpcer_at_worst_apcer_{pct(apcer_target)}",
                bpcer_at_worst_apcer_statistic(apcer_target),
                {"species": species},
            ),
        ):
            interval = paired_bootstrap_difference(
                a, b, labels, subjects, statistic, **extra, **boot.kwargs()
            )
            rows.append(
                _comparison_row(
                    candidate.name, reference.name, metric, "paired subject bootstrap", interval
                )
            )
    if reference.has_decisions and candidate.has_decisions:
        attack = labels == 1
        errs = []
        for p in (reference, candidate):
            d = generalised_decisions(p, labels)
            errs.append(np.where(attack, d == 0, d == 1).astype(np.float64))
        method = "paired subject bootstrap + McNemar"
        wheres = [(f"apcer_{n}@decision", attack & (species == n)) for n in species_names]
        for metric, where in [*wheres, ("bpcer@decision", labels == 0)]:
            interval = paired_rate_difference(
                errs[0], errs[1], subjects, where=where, **boot.kwargs()
            )
            mc = _mcnemar(errs[0][where], errs[1][where])
            rows.append(
                _comparison_row(candidate.name, reference.name, metric, method, interval, mc)
            )
        codes, counts = resample_counts(subjects, boot.n_resamples, boot.seed)
        worst = [max(float(e[attack & (species == n)].mean()) for n in species_names) for e in errs]
        reps = [_worst_replicates(e, species, species_names, codes, counts) for e in errs]
        diff = _quantile_interval(worst[1] - worst[0], reps[1] - reps[0], boot.level)
        if diff is not None:
            kept = (reps[1] - reps[0])[~np.isnan(reps[1] - reps[0])]
            paired = PairedInterval(**vars(diff), share_positive=float((kept > 0).mean()))
            rows.append(
                _comparison_row(
                    candidate.name,
                    reference.name,
                    "apcer_worst@decision",
                    "paired subject bootstrap",
                    paired,
                )
            )
    return rows


# -------------------------------------------------------------------------------- benchmark


def _sources(
    vendor_frames: Mapping[str, pd.DataFrame] | Iterable[pd.DataFrame],
) -> list[tuple[str, pd.DataFrame]]:
    if isinstance(vendor_frames, Mapping):
        return [(str(k), v) for k, v in vendor_frames.items()]
    return [(f.attrs.get("source", f"vendor_frames[{i}]"), f) for i, f in enumerate(vendor_frames)]


def benchmark(
    manifest_frame: pd.DataFrame,
    vendor_frames: Mapping[str, pd.DataFrame] | Iterable[pd.DataFrame],
    *,
    ours: pd.DataFrame | None = None,
    split: str = "test",
    reference: str | None = OURS,
    providers: Mapping[str, Mapping[str, object]] | None = None,
    segments: Sequence[str] = ("geography",),
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    min_subjects: int = 10,
    apcer_target: float = 0.10,
) -> BenchmarkResult:
    """Judge every provider on the owned `split` of the manifest, side by side.

    `vendor_frames`: source name (a file, for messages) -> frame, or frames carrying
    `attrs["source"]`; declarations (score direction / range) in `frame.attrs` (as
    `read_vendor_file` sets them) or per provider in `providers`. `ours`: our score table
    (optional), entered as provider "ours". `reference`: the provider every other one is
    compared with (paired tests); None for no comparison. A `reference` that is not there is
    an error, except the default "ours" when `ours` is not given (then: no comparison, noted).
    """
    owned = _owned_split(manifest_frame, split)
    labels = owned["label"].to_numpy().astype(np.int64)
    rest = manifest_frame[manifest_frame["split"] != split]
    other = dict(zip(rest["sample_id"].astype(str), rest["split"], strict=True))
    options = dict(providers or {})
    parts: dict[str, list[AlignedProvider]] = {}
    if ours is not None:
        frame = _ours_frame(ours, owned, split)
        for part in align_source(owned, frame, frame.attrs["source"], options, other):
            parts.setdefault(part.name, []).append(part)
    for source, frame in _sources(vendor_frames):
        for part in align_source(owned, frame, source, options, other):
            if part.name == OURS:
                raise ValueError(
                    f"{source}: provider name {OURS!r} is reserved for our own score table"
                )
            parts.setdefault(part.name, []).append(part)
    if not parts:
        raise ValueError("nothing to benchmark: no vendor file and no score table of ours")
    unknown_options = sorted(set(options) - set(parts))
    if unknown_options:
        raise ValueError(
            f"config providers {unknown_options} match no provider in the files "
            f"(providers: {sorted(parts)})"
        )
    aligned = {name: _merge(p, owned) for name, p in parts.items()}

    notes = []
    if reference is not None and reference not in aligned:
        if reference == OURS and ours is None:
            notes.append("No score table of ours given: no paired comparison against `ours`.")
            reference = None
        else:
            raise ValueError(
                f"reference provider {reference!r} is not among the providers {sorted(aligned)}"
            )
    order = sorted(aligned, key=lambda n: (n != reference, n))
    species_names = sorted(set(owned.loc[labels == 1, "attack_type"].astype(str)))
    boot = _Bootstrap(int(n_resamples), int(seed), float(level))

    views: list[tuple[str, str, np.ndarray]] = [(OVERALL, OVERALL, np.ones(len(owned), bool))]
    for column in segments:
        if column not in owned.columns:
            notes.append(f"Segment column `{column}` is not in the manifest: skipped.")
            log.warning("segment column %r not in the manifest; skipped", column)
            continue
        for group in sorted(owned[column].dropna().unique(), key=str):
            views.append((column, str(group), (owned[column] == group).to_numpy()))

    rows = []
    for column, group, view in views:
        for name in order:
            p = aligned[name]
            row = {"provider": name, "segment": column, "group": group}
            row.update(
                _provider_row(p, owned, view, species_names, apcer_target, boot, min_subjects)
            )
            rows.append(row)
    table = pd.DataFrame(rows)

    comparisons = []
    if reference is not None:
        for name in order[1:]:
            found = compare(
                aligned[reference], aligned[name], owned, species_names, apcer_target, boot
            )
            if not found:
                notes.append(
                    f"`{name}` and `{reference}` share no kind of output (scores / decisions): "
                    "no paired comparison."
                )
            comparisons.extend(found)
    comparison_frame = pd.DataFrame(comparisons, columns=_COMPARISON_COLUMNS)

    n_unanswered = {n: int((~p.answered).sum()) for n, p in aligned.items()}
    notes.insert(
        0,
        f"Split `{split}`: {len(owned)} owned items of {owned['subject_id'].nunique()} "
        f"subjects; {boot.level:.0%} subject-bootstrap intervals ({boot.n_resamples} "
        f"resamples, seed {boot.seed}). Unanswered items count as errors (bona fide as "
        f"rejected, attack as missed); unanswered per provider: {n_unanswered}.",
    )
    return BenchmarkResult(
        providers=table,
        comparisons=comparison_frame,
        table=_long_table(owned, aligned, order),
        split=split,
        reference=reference,
        notes=notes,
    )


_COMPARISON_COLUMNS = [
    "provider",
    "reference",
    "metric",
    "method",
    "difference",
    "low",
    "high",
    "level",
    "excludes_zero",
    "share_positive",
    "n_resamples",
    "n_dropped",
    "candidate_only_errors",
    "reference_only_errors",
    "mcnemar_p",
]


def _long_table(
    owned: pd.DataFrame, aligned: Mapping[str, AlignedProvider], order: Sequence[str]
) -> pd.DataFrame:
    base = owned.drop(columns=[c for c in ("path",) if c in owned.columns])
    frames = []
    for name in order:
        p = aligned[name]
        frames.append(
            base.assign(
                provider=name,
                answered=p.answered,
                score=p.scores if p.has_scores else np.nan,
                decision=p.decisions if p.has_decisions else np.nan,
                latency_ms=p.latency_ms,
                cost=p.cost,
            )
        )
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------------- outputs


def headline_frame(result: BenchmarkResult, segment: str | None = OVERALL) -> pd.DataFrame:
    """A readable summary: one column per headline, "estimate [low, high]" strings."""
    frame = result.providers
    if segment is not None:
        frame = frame[frame["segment"] == segment]
    keys = [c for c in frame.columns if f"{c}_low" in frame.columns]
    out = frame[["provider", "segment", "group", "coverage"]].copy()
    out["coverage"] = out["coverage"].map(lambda v: f"{v:.1%}")
    for key in keys:
        out[key] = [
            _fmt_interval(e, lo, hi)
            for e, lo, hi in zip(frame[key], frame[f"{key}_low"], frame[f"{key}_high"], strict=True)
        ]
    for key in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms"):
        out[key] = frame[key].map(lambda v: "n/a" if np.isnan(v) else f"{v:.0f}")
    out["cost_per_item"] = frame["cost_per_item"].map(
        lambda v: "n/a" if np.isnan(v) else f"{v:.4g}"
    )
    out["too_small"] = frame["too_small"].to_numpy()
    empty = [c for c in out.columns if (out[c].astype(str) == "n/a").all()]
    return out.drop(columns=empty).reset_index(drop=True)


def _fmt_interval(estimate: float, low: float, high: float) -> str:
    if np.isnan(estimate):
        return "n/a"
    return f"{estimate:.4f} [{low:.4f}, {high:.4f}]"


def _markdown_table(frame: pd.DataFrame) -> str:
    def cell(v: object) -> str:
        if isinstance(v, float | np.floating):
            return "n/a" if np.isnan(v) else f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |"]
    lines.append("|" + "|".join("---" for _ in frame.columns) + "|")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join(lines)


_DIRECTIONS = {
    "detection": "for error rates, > 0 means the provider is worse; for AUC, better",
    "comparison": "every metric is an error rate: > 0 means the provider is worse",
    "search": "for FNIR, > 0 means the provider is worse; for the rank-1 rate, better",
}


def markdown(result: BenchmarkResult, title: str = "Vendor benchmark") -> str:
    lines = [f"# {title} ({result.split})", "", *[f"- {n}" for n in result.notes], ""]
    lines += ["## Per provider", "", _markdown_table(headline_frame(result, OVERALL)), ""]
    per_segment = headline_frame(result, None)
    per_segment = per_segment[per_segment["segment"] != OVERALL]
    if len(per_segment):
        lines += ["## Per provider and segment", ""]
        lines += ["Rows marked `too_small` have too few subjects of a class to be judged.", ""]
        lines += [_markdown_table(per_segment), ""]
    lines += [f"## Paired differences against `{result.reference}`", ""]
    if result.comparisons.empty:
        lines.append("No paired comparison.")
    else:
        lines += [
            "Difference = provider - reference on the same owned items "
            f"({_DIRECTIONS.get(result.mode, _DIRECTIONS['detection'])}).",
            "",
        ]
        shown = result.comparisons[
            ["provider", "metric", "difference", "low", "high", "excludes_zero", "mcnemar_p"]
        ]
        lines.append(_markdown_table(shown))
    return "\n".join(lines) + "\n"


def _records(frame: pd.DataFrame) -> list[dict]:
    return json.loads(frame.to_json(orient="records"))  # NaN -> null


def write_outputs(
    result: BenchmarkResult, output_dir: str | os.PathLike, title: str = "Vendor benchmark"
) -> dict[str, Path]:
    """benchmark.csv (per provider and segment), comparisons.csv, benchmark.json (both, plus
    notes), benchmark.md; each written atomically."""
    out = Path(output_dir)
    paths = {
        "csv": out / "benchmark.csv",
        "comparisons": out / "comparisons.csv",
        "json": out / "benchmark.json",
        "markdown": out / "benchmark.md",
    }
    with atomic_path(paths["csv"]) as tmp:
        result.providers.to_csv(tmp, index=False)
    with atomic_path(paths["comparisons"]) as tmp:
        result.comparisons.to_csv(tmp, index=False)
    write_json(
        {
            "mode": result.mode,
            "split": result.split,
            "reference": result.reference,
            "notes": result.notes,
            "providers": _records(result.providers),
            "comparisons": _records(result.comparisons),
        },
        paths["json"],
    )
    write_text(markdown(result, title), paths["markdown"])
    return paths
