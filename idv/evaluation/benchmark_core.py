"""The one engine of the vendor benchmark, for every kind of owned item: detection samples
(`benchmark`), 1:1 comparisons and 1:N searches (`benchmark_matching`).

A kind describes itself once, in a `Kind`: its owned items and how a vendor file aligns on them,
its label (the positive class, the one that scores high), its bootstrap unit, how a failure to
acquire is generalised, its score statistics and rates with their keys, and the words of its
notes. `run` does the rest, the same way for every kind: it aligns our table and every vendor
frame into one `AlignedProvider` per provider and file, merges a provider's files, chooses the
reference, computes one row per view (overall, then per segment group) and provider, pairs
every provider with the reference on the same items, and writes the notes (unanswered counts,
operating points the items cannot resolve) next to the long table.

Vendor files whose rows each name one owned item (detection, comparison) share one alignment
loop, `align_rows`; a kind only says how a row finds its item (`positions`) and how it reads
options and decisions (`RowFormat`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from idv.metrics.bootstrap import (
    Interval,
    PairedInterval,
    bootstrap_curve,
    bootstrap_rate,
    paired_bootstrap_difference,
    paired_rate_difference,
    percentile_interval,
    resample_counts,
    worst_group_replicates,
)
from idv.metrics.resolution import NotSupported, check_resolution, count_subjects

log = logging.getLogger(__name__)

OURS = "ours"
OVERALL = "all"
OPTION_KEYS = ("score_direction", "score_range")
FAILURE_HINT = "mark a failure to acquire with acquired=False or leave the row out"
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


# ----------------------------------------------------------------------------------- records


@dataclass
class AlignedProvider:
    """One provider on the owned items (arrays in owned order).

    `present`: the provider sent a row; `answered` is False for a failure to acquire (no row,
    or `acquired = False`). `scores` are oriented so that the kind's positive class scores
    high (detection: attack; matching: similarities), NaN where unanswered (a search's score is
    already -inf there); `decisions` are 1.0 (positive) / 0.0, NaN where unanswered; either is
    None when the provider gives none. `extra`: a kind's own per-item arrays (searches:
    candidates, top_score, mate_rank, mate_score), shown in the long table.
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
    options: object = None  # the kind's score options (ProviderOptions, MatchingOptions)
    extra: dict[str, np.ndarray] = field(default_factory=dict)

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
    mode: str  # detection | comparison (1:1) | search (1:N)
    difference_note: str = ""  # how to read a paired difference


@dataclass(frozen=True)
class Statistic:
    """A score statistic (`idv.metrics.bootstrap`) under `key`, bootstrapped on the generalised
    scores; `target`: its operating point, NaN where the view's negatives cannot resolve it;
    `extra`: per-item arguments of the statistic (detection's species)."""

    key: str
    statistic: Callable
    target: float | None = None
    extra: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Rate:
    """The rate of the kind's outcomes over the items `where`. With `groups`: the worst of the
    rates over `where & (groups == name)` for `names` (the worst species' APCER)."""

    key: str
    where: np.ndarray
    groups: np.ndarray | None = None
    names: Sequence[str] = ()


def _score_and_decision(p: AlignedProvider) -> dict[str, object]:
    return {
        "score": p.scores if p.has_scores else np.nan,
        "decision": p.decisions if p.has_decisions else np.nan,
    }


def _has_outputs(p: AlignedProvider, view: np.ndarray) -> dict[str, object]:
    return {"has_scores": p.has_scores, "has_decisions": p.has_decisions}


@dataclass(frozen=True)
class Kind:
    """What a kind of owned item supplies to `run`; the rest is the same for every kind.

    `items`: the owned items (`key`: their id column); `align(frame, source, options)`: one
    vendor-format frame as providers; `our_table`: our own table, checked against the owned
    items, in vendor format. `positive`: the class that scores high (attack, genuine,
    mated), `classes`: the row's names of the classes (name, positive?) in display order,
    `counted`: the items' noun in per-class counts (None: no counts), `subject_keys`: the keys
    of the subject counts (all, per class). `subjects`: the bootstrap unit of each item.
    `failed_score` / `failed_decision`: what a failure to acquire becomes. The rates count
    decision errors, or with `hits` the successes it returns (McNemar counts their misses).
    `trial_subjects`: the subjects counted for a statistic's resolution among the negatives
    (`trials` in the notes). `about` / `unit` / `failures`: the headline note's parts;
    `difference_note`: how to read a paired difference.
    """

    mode: str
    split: str
    items: pd.DataFrame
    key: str
    align: Callable[[pd.DataFrame, str, Mapping], list[AlignedProvider]]
    our_table: Callable[[pd.DataFrame], pd.DataFrame]
    positive: np.ndarray
    classes: tuple[tuple[str, bool], tuple[str, bool]]
    subject_keys: tuple[str, str]
    subjects: np.ndarray
    failed_score: np.ndarray | float
    statistics: tuple[Statistic, ...]
    rates: tuple[Rate, ...]
    segments_in: str
    about: str
    unit: str
    failures: str
    difference_note: str
    counted: str | None = None
    failed_decision: np.ndarray | float = 0.0
    hits: Callable[[AlignedProvider], np.ndarray] | None = None
    trial_subjects: np.ndarray | None = None
    trials: str = ""
    ours_table: str = "score table"
    overlap: str = "duplicate rows for {key} {item!r} in {a} and {b}"
    describe: Callable[[AlignedProvider, np.ndarray], dict] = _has_outputs
    columns: Callable[[AlignedProvider], dict] = _score_and_decision
    hidden: tuple[str, ...] = ()

    def generalised(self, p: AlignedProvider) -> np.ndarray:
        """Scores with every failure to acquire as `failed_score`: an error at every threshold."""
        return np.where(p.answered, p.scores, self.failed_score)

    def outcomes(self, p: AlignedProvider) -> np.ndarray | None:
        """What the rates count per item: rank-1 hits (`hits`), or 1.0 where the decision is
        wrong (a failure to acquire decided `failed_decision`); None without decisions."""
        if self.hits is not None:
            return self.hits(p)
        if not p.has_decisions:
            return None
        decided = np.where(p.answered, p.decisions, self.failed_decision)
        return np.where(self.positive, decided == 0, decided == 1).astype(np.float64)


# ------------------------------------------------------------------------------ vendor rows


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def require_rows(source: str, frame: pd.DataFrame) -> None:
    """A vendor file without a single row (a header alone) is an error, never "no answers":
    it is far more often a failed export than a provider that answered nothing."""
    if len(frame) == 0:
        raise ValueError(
            f"{source}: no rows (a header alone is not a vendor file; columns: "
            f"{list(map(str, frame.columns))}): a provider that answered nothing is a file "
            "with every owned item and acquired=False"
        )


@dataclass(frozen=True)
class VendorRows:
    """A vendor-format frame being aligned (renumbered), its `source` and the columns that
    identify one of its rows (`keys`): every message names them."""

    source: str
    frame: pd.DataFrame
    keys: Sequence[str] = ("sample_id",)

    @classmethod
    def of(cls, source: str, frame: pd.DataFrame, keys: Sequence[str]) -> VendorRows:
        return cls(source, frame.reset_index(drop=True), keys)

    def error(self, row: int, message: str) -> ValueError:
        """'<source>: row 3 (sample_id='x'): message', naming the row by its `keys`."""
        shown = []
        for key in self.keys:
            if key in self.frame.columns:
                value = self.frame[key].iloc[row]
                shown.append(f"{key}={(value.item() if hasattr(value, 'item') else value)!r}")
        where = ", ".join(shown) or f"{self.keys[0]}='?'"
        return ValueError(f"{self.source}: row {row} ({where}): {message}")

    def check(self, bad: np.ndarray, message: str) -> None:
        """An error at the first row of `bad`, if any."""
        if bad.any():
            raise self.error(_first(bad), message)

    def providers(self) -> np.ndarray:
        """The provider of each row; without a `provider` column, the file's name."""
        frame = self.frame
        if "provider" not in frame.columns:
            return np.full(len(frame), Path(self.source).stem, dtype=object)
        self.check(frame["provider"].isna().to_numpy(), "provider is empty")
        return frame["provider"].astype(str).to_numpy()

    def numeric(self, column: str) -> np.ndarray | None:
        """The column as numbers (None when the file has no such column)."""
        if column not in self.frame.columns:
            return None
        col = self.frame[column]
        values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(values) & col.notna().to_numpy()
        if bad.any():
            raise self.error(_first(bad), f"{column} {col.iloc[_first(bad)]!r} is not a number")
        return values

    def acquired(self) -> np.ndarray:
        if "acquired" not in self.frame.columns:
            return np.ones(len(self.frame), dtype=bool)
        col = self.frame["acquired"]
        text = col.map(lambda v: str(v).strip().lower())
        ok = text.isin(["true", "false", "1", "0", "1.0", "0.0"]).to_numpy()
        ok = ok & col.notna().to_numpy()
        if not ok.all():
            raise self.error(_first(~ok), f"acquired {col.iloc[_first(~ok)]!r} is not a boolean")
        return text.isin(["true", "1", "1.0"]).to_numpy()

    def usable_scores(
        self,
        raw: np.ndarray,
        rows: np.ndarray,
        name: str,
        bad: Callable[[np.ndarray], np.ndarray],
        what: Callable[[float], str],
    ) -> np.ndarray:
        """The scores of the answered `rows`; an error at the first `bad` one (`what` names
        its value)."""
        values = raw[rows]
        wrong = bad(values)
        if wrong.any():
            message = f"provider {name!r}: {what(values[_first(wrong)])} in an answered row"
            raise self.error(int(rows[_first(wrong)]), f"{message}; {FAILURE_HINT}")
        return values

    def check_range(
        self, raw: np.ndarray, rows: np.ndarray, name: str, score_range: tuple, hint: str = ""
    ) -> None:
        lo, hi = score_range
        out = (raw[rows] < lo) | (raw[rows] > hi)
        if out.any():
            i = int(rows[_first(out)])
            raise self.error(
                i,
                f"provider {name!r}: score {float(raw[i])!r} outside the declared range "
                f"[{lo:g}, {hi:g}]{hint}",
            )

    def aligned(
        self,
        name: str,
        n_items: int,
        at: tuple[np.ndarray, np.ndarray, np.ndarray],
        timing: tuple[np.ndarray | None, np.ndarray | None],
        options: object,
        scores: np.ndarray | None,
        decisions: np.ndarray | None = None,
        extra: dict[str, np.ndarray] | None = None,
    ) -> AlignedProvider:
        """One provider from its `rows` of the file (one per item sent: item `positions[i]`
        for row i; `took`: the answered ones); `at` = (positions, rows, took)."""
        positions, rows, took = at
        present, answered = np.zeros(n_items, bool), np.zeros(n_items, bool)
        present[positions[rows]] = True
        answered[positions[took]] = True
        per_item = []
        for values in timing:  # latency_ms, cost
            out = np.full(n_items, np.nan)
            if values is not None:
                out[positions[rows]] = values[rows]
            per_item.append(out)
        return AlignedProvider(
            name=name,
            sources=[self.source],
            present=present,
            answered=answered,
            scores=scores,
            decisions=decisions,
            latency_ms=per_item[0],
            cost=per_item[1],
            has_latency=timing[0] is not None,
            has_cost=timing[1] is not None,
            options=options,
            extra=extra or {},
        )


def scored_rows(source: str, frame: pd.DataFrame, keys: Sequence[str]) -> VendorRows:
    """A score / decision file (its id columns checked by the kind) as `VendorRows`."""
    if "score" not in frame.columns and "decision" not in frame.columns:
        raise ValueError(
            f"{source}: neither a 'score' nor a 'decision' column (columns: "
            f"{list(frame.columns)}); a vendor file needs at least one"
        )
    return VendorRows.of(source, frame, keys)


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
            if key not in OPTION_KEYS:
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


@dataclass(frozen=True)
class ScoreOptions:
    """A kind's options for one provider's scores (its subclass has the fields
    `score_direction`, `score_range` and orients scores in `oriented`): `directions` are the
    kind's score directions, the first one the default."""

    directions: ClassVar[tuple[str, ...]] = ()
    directions_hint: ClassVar[str] = ""

    @classmethod
    def read(
        cls,
        provider: str,
        source: str,
        declared: Mapping[str, object] | None = None,
        configured: Mapping[str, object] | None = None,
    ) -> ScoreOptions:
        """Options from the file's declarations and the config; a conflict between them is an
        error (a silently reversed score would invert every metric)."""
        merged = declared_options(provider, source, declared, configured)
        direction = merged.get("score_direction", cls.directions[0])
        if direction not in cls.directions:
            raise ValueError(
                f"{source}: provider {provider!r}: score_direction {direction!r} is not one of "
                f"{cls.directions}{cls.directions_hint}"
            )
        return cls(str(direction), merged.get("score_range", cls().score_range))


def split_rows(manifest: pd.DataFrame, split: str, required: Sequence[str]) -> pd.DataFrame:
    """The split's rows in manifest order (as `Manifest.split`, what idv-evaluate scores), the
    `required` columns there; an empty split or a repeated sample_id is an error."""
    missing = [c for c in required if c not in manifest.columns]
    if missing:
        raise ValueError(f"manifest: missing required column(s) {missing}")
    rows = manifest[manifest["split"] == split].reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"manifest: split {split!r} is empty; nothing to benchmark on")
    if rows["sample_id"].duplicated().any():
        row = _first(rows["sample_id"].duplicated().to_numpy())
        raise ValueError(f"manifest: duplicate sample_id {rows['sample_id'].iloc[row]!r}")
    return rows


def declarations(frame: pd.DataFrame) -> dict[str, object]:
    """The score options a frame declares (`read_vendor_file` puts them in `attrs`)."""
    return {k: v for k, v in frame.attrs.items() if k in OPTION_KEYS}


@dataclass(frozen=True)
class RowFormat:
    """How a kind whose vendor rows each name one owned item reads them: `options(provider,
    source, declared, configured)` gives the provider's score options (with `oriented`), the
    decision words of the positive / negative class (the first one named in messages; 1 / 0
    and true / false always), the message for a repeated item."""

    options: Callable[..., object]
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    duplicate: str  # "... {name!r} ... {first} ..."

    def decisions(self, rows: VendorRows, at: np.ndarray) -> np.ndarray:
        """Parse the decision column at rows `at`; an unknown value is an error naming it."""
        words = {
            **dict.fromkeys((*self.positive, "1", "1.0", "true"), 1.0),
            **dict.fromkeys((*self.negative, "0", "0.0", "false"), 0.0),
        }
        given = rows.frame["decision"]
        text = given.iloc[at].map(lambda v: str(v).strip().lower() if pd.notna(v) else "")
        parsed = text.map(words).to_numpy(dtype=np.float64)
        bad = np.isnan(parsed)
        if bad.any():
            i, yes, no = int(at[_first(bad)]), self.positive[0], self.negative[0]
            raise rows.error(
                i,
                f"decision {given.iloc[i]!r} not understood; use {yes!r} / {no!r} or 1 / 0 "
                f"(1 = {yes}), or acquired=False for no answer",
            )
        return parsed


def align_rows(
    fmt: RowFormat,
    rows: VendorRows,
    names: np.ndarray,
    positions: np.ndarray,
    n_items: int,
    options: Mapping[str, Mapping[str, object]] | None,
) -> list[AlignedProvider]:
    """Each provider of a file whose rows name one owned item each (row i: item
    `positions[i]`, all known): scores checked and oriented, decisions parsed."""
    frame, source = rows.frame, rows.source
    dup = pd.DataFrame({"p": names, "s": positions}).duplicated(keep="first").to_numpy()
    if dup.any():
        i = _first(dup)
        first = _first((names == names[i]) & (positions == positions[i]))
        raise rows.error(i, fmt.duplicate.format(name=names[i], first=first))
    acquired = rows.acquired()
    score = rows.numeric("score")
    timing = rows.numeric("latency_ms"), rows.numeric("cost")
    declared = declarations(frame)
    aligned = []
    for name in dict.fromkeys(names):
        sent = np.flatnonzero(names == name)
        opts = fmt.options(name, source, declared, (options or {}).get(name))
        took = sent[acquired[sent]]
        has_scores = score is not None and bool(np.isfinite(score[sent]).any())
        has_decisions = "decision" in frame.columns and bool(
            frame["decision"].iloc[sent].notna().any()
        )
        if not has_scores and not has_decisions:
            raise ValueError(
                f"{source}: provider {name!r} has neither a score nor a decision in any row"
            )
        scores = decisions = None
        if has_scores:
            scores = np.full(n_items, np.nan)
            scores[positions[took]] = opts.oriented(rows, score, took, name)
        if has_decisions:
            decisions = np.full(n_items, np.nan)
            decisions[positions[took]] = fmt.decisions(rows, took)
        at = (positions, sent, took)
        aligned.append(rows.aligned(name, n_items, at, timing, opts, scores, decisions))
    return aligned


def ours_as_vendor(table: pd.DataFrame, ids: Sequence[str], source: str) -> pd.DataFrame:
    """Our checked table as a vendor-format frame of the provider `ours` (`ids`: the columns
    that name what a row answers)."""
    keep = [*ids, "score", "acquired", "latency_ms", "cost"]
    out = table[[c for c in keep if c in table.columns]].assign(provider=OURS)
    out.attrs["source"] = source
    return out


def _sources(
    vendor_frames: Mapping[str, pd.DataFrame] | Iterable[pd.DataFrame],
) -> list[tuple[str, pd.DataFrame]]:
    if isinstance(vendor_frames, Mapping):
        return [(str(k), v) for k, v in vendor_frames.items()]
    return [(f.attrs.get("source", f"vendor_frames[{i}]"), f) for i, f in enumerate(vendor_frames)]


def merge(kind: Kind, parts: list[AlignedProvider]) -> AlignedProvider:
    """One provider answered in several files: the files must not overlap and must agree on
    what they give (scores and / or decisions) and on their score options."""
    merged = parts[0]
    for part in parts[1:]:
        both = merged.present & part.present
        if both.any():
            item = kind.items[kind.key].iloc[_first(both)]
            raise ValueError(
                f"provider {part.name!r}: "
                + kind.overlap.format(key=kind.key, item=item, a=merged.sources, b=part.sources)
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
        take = part.present

        def pick(mine: np.ndarray | None, theirs: np.ndarray | None, take=take):
            return None if mine is None else np.where(take, theirs, mine)

        merged = AlignedProvider(
            name=merged.name,
            sources=[*merged.sources, *part.sources],
            present=merged.present | part.present,
            answered=merged.answered | part.answered,
            scores=pick(merged.scores, part.scores),
            decisions=pick(merged.decisions, part.decisions),
            latency_ms=pick(merged.latency_ms, part.latency_ms),
            cost=pick(merged.cost, part.cost),
            has_latency=merged.has_latency or part.has_latency,
            has_cost=merged.has_cost or part.has_cost,
            options=merged.options,
            extra={k: pick(v, part.extra[k]) for k, v in merged.extra.items()},
        )
    return merged


# ----------------------------------------------------------------------------------- metrics


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


def _worst(
    outcomes: np.ndarray, rate: Rate, view: np.ndarray, subjects: np.ndarray, boot: _Bootstrap
) -> tuple[float, np.ndarray] | None:
    """The worst group's rate and its replicates (a group absent from a resample is ignored
    there); None when no group has an item in the view."""
    where, groups = rate.where[view], rate.groups[view]
    present = [n for n in rate.names if (where & (groups == n)).any()]
    if not present:
        return None
    estimate = max(float(outcomes[where & (groups == n)].mean()) for n in present)
    codes, counts = resample_counts(subjects, boot.n_resamples, boot.seed)
    return estimate, worst_group_replicates(outcomes, groups, present, codes, counts, where)


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
    kind: Kind,
    p: AlignedProvider,
    view: np.ndarray,
    resolved: Mapping[str, NotSupported | None],
    boot: _Bootstrap,
    min_subjects: int,
) -> dict:
    positive = kind.positive[view]
    subjects = kind.subjects[view]
    answered = p.answered[view]
    classes = [(name, positive if pos else ~positive) for name, pos in kind.classes]
    row: dict[str, object] = {
        "items": int(view.sum()),
        "answered": int(answered.sum()),
        "coverage": float(answered.mean()),
    }
    for name, mask in classes:
        row[f"coverage_{name}"] = float(answered[mask].mean()) if mask.any() else np.nan
    for name, mask in classes if kind.counted else ():
        row[f"{name}_{kind.counted}"] = int(mask.sum())
    row[kind.subject_keys[0]] = len(set(subjects))
    per_class = [len(set(subjects[mask])) for _, mask in classes]
    for (name, _), n in zip(classes, per_class, strict=True):
        row[kind.subject_keys[1].format(name)] = n
    row["too_small"] = min(per_class) < min_subjects
    row.update(kind.describe(p, view))

    resamplable = len(set(subjects)) >= 2
    labels = positive.astype(np.int64)
    curve_ok = p.has_scores and positive.any() and (~positive).any() and resamplable
    scores = kind.generalised(p)[view] if curve_ok else None
    for stat in kind.statistics:
        interval = None
        if scores is not None and resolved.get(stat.key) is None:
            extra = {k: v[view] for k, v in stat.extra.items()}
            interval = bootstrap_curve(
                scores, labels, subjects, stat.statistic, **extra, **boot.kwargs()
            )
        _put(row, stat.key, interval)
    outcomes = kind.outcomes(p) if resamplable else None
    for rate in kind.rates:
        interval = None
        if outcomes is not None and rate.groups is not None:
            worst = _worst(outcomes[view], rate, view, subjects, boot)
            interval = None if worst is None else percentile_interval(*worst, boot.level)
        elif outcomes is not None and rate.where[view].any():
            where = rate.where[view]
            interval = bootstrap_rate(outcomes[view], subjects, where=where, **boot.kwargs())
        _put(row, rate.key, interval)
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
    kind: Kind,
    reference: AlignedProvider,
    candidate: AlignedProvider,
    resolved: Mapping[str, NotSupported | None],
    boot: _Bootstrap,
) -> list[dict]:
    """Paired tests of `candidate` - `reference` on the same owned items: every resolved score
    statistic when both give scores, every rate when both give outcomes (McNemar on the paired
    errors), the worst-group rates last. A positive difference in an error rate means the
    candidate is worse; in AUC or a hit rate, better."""
    labels = kind.positive.astype(np.int64)
    subjects, everything = kind.subjects, np.ones(len(kind.positive), bool)
    rows = []

    def add(metric: str, method: str, interval, mcnemar=None) -> None:
        rows.append(
            _comparison_row(candidate.name, reference.name, metric, method, interval, mcnemar)
        )

    if reference.has_scores and candidate.has_scores:
        a, b = kind.generalised(reference), kind.generalised(candidate)
        for stat in kind.statistics:
            if resolved.get(stat.key) is None:
                interval = paired_bootstrap_difference(
                    a, b, labels, subjects, stat.statistic, **stat.extra, **boot.kwargs()
                )
                add(stat.key, "paired subject bootstrap", interval)
    outcomes = [kind.outcomes(reference), kind.outcomes(candidate)]
    if outcomes[0] is None or outcomes[1] is None:
        return rows
    errors = [1.0 - o for o in outcomes] if kind.hits is not None else outcomes
    for rate in (r for r in kind.rates if r.groups is None):
        where = rate.where
        interval = paired_rate_difference(*outcomes, subjects, where=where, **boot.kwargs())
        mc = _mcnemar(errors[0][where], errors[1][where])
        add(rate.key, "paired subject bootstrap + McNemar", interval, mc)
    for rate in (r for r in kind.rates if r.groups is not None):
        (ref, ref_reps), (cand, cand_reps) = (
            _worst(o, rate, everything, subjects, boot) for o in outcomes
        )
        diff = percentile_interval(cand - ref, cand_reps - ref_reps, boot.level)
        if diff is not None:
            kept = (cand_reps - ref_reps)[~np.isnan(cand_reps - ref_reps)]
            paired = PairedInterval(**vars(diff), share_positive=float((kept > 0).mean()))
            add(rate.key, "paired subject bootstrap", paired)
    return rows


# ------------------------------------------------------------------------------- the driver


def _check_options(options: Mapping[str, object], names: Iterable[str]) -> None:
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise ValueError(
            f"config providers {unknown} match no provider in the files "
            f"(providers: {sorted(names)})"
        )


def _reference(
    reference: str | None, names: Iterable[str], ours_given: bool, notes: list[str]
) -> str | None:
    names = sorted(names)
    if reference is not None and reference not in names:
        if reference == OURS and not ours_given:
            notes.append("No score table of ours given: no paired comparison against `ours`.")
            return None
        raise ValueError(f"reference provider {reference!r} is not among the providers {names}")
    return reference


def _views(
    kind: Kind, segments: Sequence[str], notes: list[str]
) -> list[tuple[str, str, np.ndarray]]:
    """The whole set, then one view per group of each segment column of the owned items."""
    items = kind.items
    views: list[tuple[str, str, np.ndarray]] = [(OVERALL, OVERALL, np.ones(len(items), bool))]
    for column in segments:
        if column not in items.columns:
            notes.append(f"Segment column `{column}` is not {kind.segments_in}: skipped.")
            log.warning("segment column %r is not %s; skipped", column, kind.segments_in)
            continue
        for group in sorted(items[column].dropna().unique(), key=str):
            views.append((column, str(group), (items[column] == group).to_numpy()))
    return views


def _resolution(kind: Kind, view: np.ndarray, min_subjects: int) -> dict[str, NotSupported | None]:
    """Per targeted statistic: None when the view's negatives resolve its operating point."""
    targeted = [s for s in kind.statistics if s.target is not None]
    if not targeted:
        return {}
    trials = view & ~kind.positive
    n_subjects = count_subjects(kind.trial_subjects, trials)
    return {
        s.key: check_resolution(s.target, int(trials.sum()), n_subjects, min_subjects)
        for s in targeted
    }


def _unresolved_notes(
    unresolved: Mapping[tuple[str, str], Mapping[str, NotSupported | None]],
    notes: list[str],
    trials: str,
) -> None:
    """One note per operating point the overall view cannot resolve, one for the segments."""
    overall = unresolved.get((OVERALL, OVERALL), {})
    for key, verdict in overall.items():
        if verdict is not None:
            notes.append(f"`{key}` not resolved by the owned {trials} (NaN): {verdict.reason}.")
    per_segment: dict[tuple[str, str], list[str]] = {}
    for (column, group), found in unresolved.items():
        for key, verdict in found.items():
            if column != OVERALL and verdict is not None and overall.get(key) is None:
                per_segment.setdefault((key, column), []).append(group)
    if per_segment:
        shown = "; ".join(f"`{k}` in {c} {', '.join(g)}" for (k, c), g in per_segment.items())
        notes.append(f"Not resolved within these segment groups (NaN there): {shown}.")


def _long_table(
    kind: Kind, aligned: Mapping[str, AlignedProvider], order: Sequence[str]
) -> pd.DataFrame:
    base = kind.items.drop(columns=[c for c in kind.hidden if c in kind.items.columns])
    frames = []
    for name in order:
        p = aligned[name]
        frames.append(
            base.assign(
                provider=name,
                answered=p.answered,
                **kind.columns(p),
                latency_ms=p.latency_ms,
                cost=p.cost,
            )
        )
    return pd.concat(frames, ignore_index=True)


def run(
    kind: Kind,
    vendor_frames: Mapping[str, pd.DataFrame] | Iterable[pd.DataFrame],
    ours: pd.DataFrame | None,
    reference: str | None,
    providers: Mapping[str, Mapping[str, object]] | None,
    segments: Sequence[str],
    bootstrap: tuple[int, int, float],
    min_subjects: int,
) -> BenchmarkResult:
    """Judge every provider on the owned items of `kind`, side by side: the public entry
    points' arguments (`benchmark`, `benchmark_comparisons`, `benchmark_searches`), with
    `bootstrap` = (n_resamples, seed, level)."""
    ours = None if ours is None else kind.our_table(ours)
    options = dict(providers or {})
    parts: dict[str, list[AlignedProvider]] = {}
    mine = [] if ours is None else [(ours.attrs["source"], ours)]
    for k, (source, frame) in enumerate([*mine, *_sources(vendor_frames)]):
        for part in kind.align(frame, source, options):
            if part.name == OURS and k >= len(mine):
                raise ValueError(
                    f"{source}: provider name {OURS!r} is reserved for our own score table"
                )
            parts.setdefault(part.name, []).append(part)
    if not parts:
        raise ValueError(f"nothing to benchmark: no vendor file and no {kind.ours_table} of ours")
    _check_options(options, parts)
    aligned = {name: merge(kind, p) for name, p in parts.items()}
    notes: list[str] = []
    reference = _reference(reference, aligned, ours is not None, notes)
    order = sorted(aligned, key=lambda n: (n != reference, n))
    boot = _Bootstrap(int(bootstrap[0]), int(bootstrap[1]), float(bootstrap[2]))

    rows, unresolved = [], {}
    for column, group, view in _views(kind, segments, notes):
        resolved = unresolved[(column, group)] = _resolution(kind, view, min_subjects)
        for name in order:
            row = {"provider": name, "segment": column, "group": group}
            row.update(_provider_row(kind, aligned[name], view, resolved, boot, min_subjects))
            rows.append(row)
    comparisons = []
    if reference is not None:
        for name in order[1:]:
            found = compare(
                kind, aligned[reference], aligned[name], unresolved[(OVERALL, OVERALL)], boot
            )
            if not found:
                notes.append(
                    f"`{name}` and `{reference}` share no kind of output (scores / decisions): "
                    "no paired comparison."
                )
            comparisons.extend(found)
    _unresolved_notes(unresolved, notes, kind.trials)
    n_unanswered = {n: int((~p.answered).sum()) for n, p in aligned.items()}
    notes.insert(
        0,
        f"{kind.about}{boot.level:.0%} {kind.unit} intervals ({boot.n_resamples} resamples, "
        f"seed {boot.seed}). {kind.failures}; unanswered per provider: {n_unanswered}.",
    )
    return BenchmarkResult(
        providers=pd.DataFrame(rows),
        comparisons=pd.DataFrame(comparisons, columns=_COMPARISON_COLUMNS),
        table=_long_table(kind, aligned, order),
        split=kind.split,
        reference=reference,
        notes=notes,
        mode=kind.mode,
        difference_note=kind.difference_note,
    )
