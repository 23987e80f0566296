"""thresholds.json: the one decision-thresholds type and the one decision rule.

Calibration writes it (`idv.calibration`), export checks and copies it into the bundle, the
parity gate and serving decide with it. Numpy and the standard library only, so a torch-free
(ONNX Runtime) scorer can load it.

The decision rule, for every kind of task (scores are oriented so that "at or above" is the
side the operating point bounds: attack for detection, same person for matching):

    score >= threshold                        -> decision.at_or_above  (reject / match)
    review_at_or_above <= score < threshold   -> decision.review       (a person looks)
    score < review_at_or_above                -> decision.below        (accept / non_match)
    no score (NaN: a failure to acquire)      -> decision.failure      (reject / non_match)

A failure to acquire is always the decision that refuses the user: serving passes NaN for a
sample it could not score and never gets an accept or a match for it.

`Thresholds.load` validates what it reads: the schema version (older files are refused with a
"re-calibrate and re-export" error naming the version), finite, ordered edges inside the
declared score range, distinct decision labels, and one global entry at the primary target of
every operating-point metric.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from idv.errors import IdvError

SCHEMA_VERSION = 2
GLOBAL = "global"

__all__ = [
    "GLOBAL",
    "SCHEMA_VERSION",
    "DecisionRule",
    "Entry",
    "OperatingPoint",
    "Rate",
    "SplitReport",
    "Thresholds",
    "ThresholdsError",
    "decide",
]


class ThresholdsError(IdvError, ValueError):
    """A thresholds.json that must not be used; the message names the file and the entry."""


@dataclass(frozen=True)
class Rate:
    """An achieved rate: the estimate, its interval (None where not bootstrapped), the rows in
    its denominator (`n`) and those counted (`count`; None for a derived rate such as a worst
    species). Rule of three: an estimate of 0 only bounds the rate by about 3 / n."""

    estimate: float | None
    low: float | None = None
    high: float | None = None
    level: float | None = None
    n: int | None = None
    count: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rate:
        return cls(**{k: data.get(k) for k in ("estimate", "low", "high", "level", "n", "count")})

    def __str__(self) -> str:
        if self.estimate is None:
            return "n/a"
        if self.low is None or self.high is None:
            return f"{self.estimate:.4f}"
        return f"{self.estimate:.4f} [{self.low:.4f}, {self.high:.4f}]"


@dataclass(frozen=True)
class SplitReport:
    """What one split says about a threshold: counts (ints, or ints per species) and rates by
    name (`apcer_worst`, `apcer/print`, `bpcer`, `fmr`, `fnmr`, `fpir`, `fnir`,
    `review_share`, ...); `note` says why rates are missing where they are."""

    counts: dict[str, Any] = field(default_factory=dict)
    rates: dict[str, Rate] = field(default_factory=dict)
    note: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SplitReport:
        rates = {k: Rate.from_dict(v) for k, v in (data.get("rates") or {}).items()}
        return cls(dict(data.get("counts") or {}), rates, data.get("note"))


@dataclass(frozen=True)
class OperatingPoint:
    """A target: `metric` (apcer_worst, fmr, fpir, ...) at most `max`; `primary` marks the
    first target of its metric (the one serving decides with)."""

    metric: str
    max: float
    primary: bool = True


@dataclass(frozen=True)
class DecisionRule:
    """The labels of the three outcomes and of a failure to acquire (module docstring)."""

    below: str
    review: str
    at_or_above: str
    failure: str

    @property
    def labels(self) -> tuple[str, str, str]:
        return (self.below, self.review, self.at_or_above)

    def describe(self) -> str:
        return (
            f"score >= threshold -> {self.at_or_above}; review_at_or_above <= score < threshold "
            f"-> {self.review}; score < review_at_or_above -> {self.below}; no score (a "
            f"failure to acquire) -> {self.failure}"
        )


def decide(
    scores: Sequence[float] | np.ndarray,
    review_at_or_above: float | np.ndarray,
    threshold: float | np.ndarray,
    rule: DecisionRule,
) -> np.ndarray:
    """The decision of each score (object array of labels); NaN is a failure to acquire."""
    s = np.asarray(scores, dtype=np.float64)
    out = np.full(s.shape, rule.review, dtype=object)
    out[s < review_at_or_above] = rule.below
    out[s >= threshold] = rule.at_or_above
    out[np.isnan(s)] = rule.failure
    return out


@dataclass(frozen=True)
class Entry:
    """One threshold: its operating point and segment (column None = global), where it came
    from (`source`: "own" or why the global one stands in), its edges, and the calib figures
    it rests on next to the achieved rates of the report split."""

    id: str
    operating_point: OperatingPoint
    segment_column: str | None
    segment_value: Any
    source: str
    threshold: float
    review_at_or_above: float
    calib: SplitReport
    test: SplitReport
    segment_calib: dict[str, Any] | None = None  # the segment's own calib counts, if it fell back

    @property
    def segment_name(self) -> str:
        return (
            GLOBAL if self.segment_column is None else f"{self.segment_column}={self.segment_value}"
        )

    def to_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "operating_point": asdict(self.operating_point),
            "segment": {"column": self.segment_column, "value": self.segment_value},
            "source": self.source,
            "threshold": self.threshold,
            "review_at_or_above": self.review_at_or_above,
            "calib": _report_dict(self.calib),
            "test": _report_dict(self.test),
        }
        if self.segment_calib is not None:
            out["segment_calib"] = self.segment_calib
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Entry:
        segment = data["segment"]
        return cls(
            id=str(data["id"]),
            operating_point=OperatingPoint(**data["operating_point"]),
            segment_column=segment["column"],
            segment_value=segment["value"],
            source=str(data["source"]),
            threshold=float(data["threshold"]),
            review_at_or_above=float(data["review_at_or_above"]),
            calib=SplitReport.from_dict(data.get("calib") or {}),
            test=SplitReport.from_dict(data.get("test") or {}),
            segment_calib=data.get("segment_calib"),
        )


def _report_dict(report: SplitReport) -> dict[str, Any]:
    return {
        "counts": report.counts,
        "rates": {k: asdict(v) for k, v in report.rates.items()},
        "note": report.note,
    }


def entry_id(point: OperatingPoint, segment_column: str | None, segment_value: Any) -> str:
    name = GLOBAL if segment_column is None else f"{segment_column}={segment_value}"
    return f"{point.metric}<={point.max:g}|{name}"


@dataclass(frozen=True)
class Thresholds:
    """thresholds.json, typed. `operating_point` is the headline (what `decide` uses by
    default); `entries` hold every target x segment; `settings` how they were chosen
    (targets, min_subjects, review_share, bootstrap ...); `details` what only one kind of task
    records (species, score calibration, comparison protocol ...); `inputs` the hashes of the
    files they came from."""

    kind: str
    task: str | None
    decision: DecisionRule
    score_range: tuple[float, float]
    operating_point: OperatingPoint
    entries: tuple[Entry, ...]
    segment_columns: tuple[str, ...] = ()
    calibration_split: str = "calib"
    report_split: str = "test"
    settings: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] | None = None
    source: str = "thresholds"

    def __post_init__(self) -> None:
        self._check()

    # --------------------------------------------------------------------------- lookup

    @property
    def metrics(self) -> list[str]:
        """Operating-point metrics with thresholds, the headline first."""
        seen = dict.fromkeys(
            [self.operating_point.metric, *(e.operating_point.metric for e in self.entries)]
        )
        return list(seen)

    def primary_entries(self, metric: str | None = None) -> list[Entry]:
        """Global + segment entries at the primary target of `metric` (default: headline)."""
        metric = metric or self.operating_point.metric
        return [
            e
            for e in self.entries
            if e.operating_point.metric == metric and e.operating_point.primary
        ]

    def global_entry(self, metric: str | None = None) -> Entry:
        for e in self.primary_entries(metric):
            if e.segment_column is None:
                return e
        have = self.metrics
        raise ThresholdsError(
            f"{self.source}: no global threshold for operating-point metric "
            f"{metric or self.operating_point.metric!r} (thresholds for {have})"
        )

    def entry_for(self, segment: Any = None, metric: str | None = None) -> Entry:
        """The primary entry for one segment: the entry whose value matches (first matching
        column in `segment_columns` order), else the global one. `segment` is None, a mapping
        {column: value} (uncalibrated columns are ignored), or a bare value when there is a
        single segment column."""
        glob = self.global_entry(metric)
        if segment is None or not self.segment_columns:
            return glob
        if not isinstance(segment, Mapping):
            if len(self.segment_columns) != 1:
                raise ValueError(
                    f"segment {segment!r}: give a mapping {{column: value}}; the thresholds have "
                    f"segment columns {list(self.segment_columns)}"
                )
            segment = {self.segment_columns[0]: segment}
        by_segment = {
            (e.segment_column, str(e.segment_value)): e
            for e in self.primary_entries(metric or self.operating_point.metric)
            if e.segment_column is not None
        }
        for column in self.segment_columns:
            if segment.get(column) is not None:
                found = by_segment.get((column, str(segment[column])))
                if found is not None:
                    return found
        return glob

    def entries_for(self, segment: Any, n: int, metric: str | None = None) -> list[Entry]:
        """One entry per sample: `segment` for all (None, a mapping or a value), or a
        sequence of n segments."""
        if segment is None or isinstance(segment, Mapping | str) or np.isscalar(segment):
            return [self.entry_for(segment, metric)] * n
        segment = list(segment)
        if len(segment) != n:
            raise ValueError(f"{len(segment)} segments for {n} scores")
        return [self.entry_for(s, metric) for s in segment]

    def decide(
        self, scores: Sequence[float] | np.ndarray, segment: Any = None, metric: str | None = None
    ) -> np.ndarray:
        """The decision of each score at the primary target of `metric` (default: the
        headline), with each sample's segment thresholds; NaN = failure to acquire."""
        s = np.atleast_1d(np.asarray(scores, dtype=np.float64))
        entries = self.entries_for(segment, len(s), metric)
        review = np.array([e.review_at_or_above for e in entries], np.float64)
        threshold = np.array([e.threshold for e in entries], np.float64)
        return decide(s, review, threshold, self.decision)

    # ---------------------------------------------------------------------- validation

    def _check(self) -> None:
        where = self.source
        lo, hi = (float(v) for v in self.score_range)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ThresholdsError(
                f"{where}: score_range must be finite with lo < hi: {self.score_range}"
            )
        labels = [*self.decision.labels]
        if len(set(labels)) != 3 or self.decision.failure not in labels:
            raise ThresholdsError(
                f"{where}: decision labels must be three distinct outcomes and a failure to "
                f"acquire must be one of them, got {asdict(self.decision)}"
            )
        if not self.entries:
            raise ThresholdsError(f"{where}: no thresholds")
        ids = [e.id for e in self.entries]
        if len(set(ids)) != len(ids):
            raise ThresholdsError(
                f"{where}: entry ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}"
            )
        for e in self.entries:
            t, a = e.threshold, e.review_at_or_above
            if not (math.isfinite(t) and math.isfinite(a)):
                raise ThresholdsError(
                    f"{where}: entry {e.id!r}: edges must be finite, got threshold {t}, "
                    f"review_at_or_above {a}"
                )
            if not a <= t:
                raise ThresholdsError(
                    f"{where}: entry {e.id!r}: review_at_or_above {a} exceeds the threshold {t}"
                )
            if not (lo <= a and t <= hi):
                raise ThresholdsError(
                    f"{where}: entry {e.id!r}: edges [{a}, {t}] lie outside the score range "
                    f"[{lo:g}, {hi:g}]"
                )
            if e.segment_column is not None and e.segment_column not in self.segment_columns:
                raise ThresholdsError(
                    f"{where}: entry {e.id!r}: segment column {e.segment_column!r} is not among "
                    f"the segment_columns {list(self.segment_columns)}"
                )
        for metric in self.metrics:
            self.global_entry(metric)

    # -------------------------------------------------------------------- serialisation

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": self.kind,
            "task": self.task,
            "decision": {**asdict(self.decision), "rule": self.decision.describe()},
            "score_range": list(self.score_range),
            "operating_point": asdict(self.operating_point),
            "calibration_split": self.calibration_split,
            "report_split": self.report_split,
            "segment_columns": list(self.segment_columns),
            "settings": self.settings,
            "details": self.details,
            "thresholds": [e.to_dict() for e in self.entries],
            "inputs": self.inputs,
        }

    def to_json(self) -> str:
        return json.dumps(_json_safe(self.to_dict()), indent=2, allow_nan=False) + "\n"

    def with_inputs(self, inputs: Mapping[str, Any]) -> Thresholds:
        return replace(self, inputs=dict(inputs))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "thresholds") -> Thresholds:
        if not isinstance(data, Mapping):
            raise ThresholdsError(f"{source}: expected a JSON object")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ThresholdsError(
                f"{source}: thresholds schema_version {version!r}, this code reads version "
                f"{SCHEMA_VERSION}: re-calibrate (idv-calibrate) and re-export the bundle "
                "(idv-export)"
            )
        decision = _parsed(
            source, "decision",
            lambda: DecisionRule(
                **{k: data["decision"][k] for k in ("below", "review", "at_or_above", "failure")}
            ),
        )  # fmt: skip
        entries = _parsed(source, "thresholds", lambda: list(data["thresholds"]))
        return _parsed(
            source,
            "the top-level keys",
            lambda: cls(
                kind=_parsed(source, "kind", lambda: _text(data["kind"])),
                task=data.get("task"),
                decision=decision,
                score_range=_parsed(source, "score_range", lambda: _pair(data["score_range"])),
                operating_point=_parsed(
                    source, "operating_point", lambda: OperatingPoint(**data["operating_point"])
                ),
                entries=tuple(
                    _parsed(source, f"thresholds[{i}]", lambda e=e: Entry.from_dict(e))
                    for i, e in enumerate(entries)
                ),
                segment_columns=_parsed(
                    source, "segment_columns", lambda: tuple(data.get("segment_columns") or ())
                ),
                calibration_split=str(data.get("calibration_split", "calib")),
                report_split=str(data.get("report_split", "test")),
                settings=_parsed(source, "settings", lambda: dict(data.get("settings") or {})),
                details=_parsed(source, "details", lambda: dict(data.get("details") or {})),
                inputs=data.get("inputs"),
                source=source,
            ),
        )

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "thresholds") -> Thresholds:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ThresholdsError(f"{source}: not valid JSON ({err})") from err
        return cls.from_dict(data, source)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Thresholds:
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"thresholds file {file} not found (idv-calibrate writes it)")
        return cls.from_json(file.read_bytes(), str(file))


def _parsed(source: str, key: str, parse: Any) -> Any:
    """`parse()`, or a ThresholdsError naming the file and `key` when the value there is not
    what the schema says (a missing key, a wrong type, a value out of range)."""
    try:
        return parse()
    except ThresholdsError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        what = f"missing key {err}" if isinstance(err, KeyError) else f"{type(err).__name__}: {err}"
        raise ThresholdsError(f"{source}: key {key!r} is not valid ({what})") from err


def _pair(value: Any) -> tuple[float, float]:
    low, high = (float(v) for v in value)  # exactly two numbers, or a ValueError
    return low, high


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def _json_safe(value: Any) -> Any:
    """numpy scalars to Python; tuples to lists."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
