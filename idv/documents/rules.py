"""MRZ rule checks: a deterministic forgery signal read from the image, in serving as in
evaluation.

`check_document(image)` reads the MRZ and the compared visual-zone fields
(`idv.documents.reader`), verifies every ICAO 9303 check digit (with the issuer's tolerances,
`idv.documents.mrz`) and compares the MRZ's document number and dates with the visual zone
twice: by reading (a surely read field that says otherwise) and by verification (`verify`:
does the visual zone show the MRZ's value? At some cell the MRZ's character matches the print
far worse than the best character does). Verification needs no sure read, only a print that
does not contradict the MRZ, so it also catches an edit re-rendered in a near font, which the
reader reads unsurely and reading skips. The outcome is one of

- `fail`: a check digit is wrong, or the visual zone disagrees with the MRZ (risk 1);
- `pass`: every check holds and every field read agrees (risk 0);
- `unreadable`: no MRZ could be read (risk `unreadable_risk`, 0 by default: no evidence either
  way; a forger who smudges the MRZ is left to the model).

`fuse` combines the rule risk with the model's P(forged) by a rule of config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from idv.documents.mrz import LAYOUTS, MrzRecord
from idv.documents.reader import ALPHABET, MrzReadError, ReaderOptions, Reading, read_document
from idv.imaging import read_image

FUSION_RULES = ("noisy_or", "max", "model", "rules")


@dataclass(frozen=True)
class RuleOptions:
    """How rule outcomes become a risk and how that meets the model's score."""

    fusion: str = "noisy_or"  # noisy_or | max | model (rules ignored) | rules (model ignored)
    weight: float = 0.9  # a failed rule's risk in the fusion
    unreadable_risk: float = 0.0
    min_field_margin: float = 0.05  # a visual-zone field is compared only if read this surely
    min_check_margin: float = 0.08  # a failed check counts only if its characters read so
    max_field_deficit: float = 0.3  # verify: the MRZ's character this far below the best one
    reader: ReaderOptions = field(default_factory=ReaderOptions)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> RuleOptions:
        cfg = dict(cfg or {})
        reader = ReaderOptions(**dict(cfg.pop("reader", {}) or {}))
        unknown = set(cfg) - {
            "fusion", "weight", "unreadable_risk", "min_field_margin", "min_check_margin",
            "max_field_deficit",
        }  # fmt: skip
        if unknown:
            raise KeyError(f"rules: unknown option(s) {sorted(unknown)}")
        options = cls(**cfg, reader=reader)
        if options.fusion not in FUSION_RULES:
            raise ValueError(f"rules.fusion {options.fusion!r}: expected one of {FUSION_RULES}")
        return options


@dataclass(frozen=True)
class RuleResult:
    """One document's rule outcome and why."""

    status: str  # pass | fail | unsure (a failure read unsurely) | unreadable
    reasons: tuple[str, ...] = ()
    record: MrzRecord | None = None

    def risk(self, options: RuleOptions) -> float:
        if self.status == "fail":
            return 1.0
        return options.unreadable_risk if self.status in ("unreadable", "unsure") else 0.0


def _visual_date(text: str) -> str | None:
    """DD?MM?YYYY as read -> YYMMDD, or None when it is no calendar date (a misread)."""
    digits = text.replace(".", "")
    if len(digits) != 8 or not digits.isdigit():
        return None
    day, month = int(digits[0:2]), int(digits[2:4])
    if not (1 <= day <= 31 and 1 <= month <= 12):
        return None
    return digits[6:8] + digits[2:4] + digits[0:2]


def _check_margin(reading: Reading, check: str) -> float:
    """The least sure character a check digit covers (itself included)."""
    layout = next(lay for lay in LAYOUTS if lay.format == reading.record.format)
    spans = []
    if check == "composite":
        spans = [(line, a, b) for line, a, b in layout.composite]
        spans.append(_span(_field(layout, "composite_check")))
    elif check == "dates":
        spans = [_span(_field(layout, "birth_date")), _span(_field(layout, "expiry_date"))]
    else:
        spans = [_span(_field(layout, check)), _span(_field(layout, f"{check}_check"))]
    return min(float(reading.confidence[line - 1][a - 1 : b].min()) for line, a, b in spans)


def _span(f) -> tuple[int, int, int]:
    return (f.line, f.start, f.start + f.length - 1)


def compare(record: MrzRecord, visual: Mapping[str, tuple[str, float]], min_margin: float):
    """The reasons the visual zone disagrees with the MRZ (fields read surely enough only)."""
    reasons = []
    for name, (text, margin) in visual.items():
        if margin < min_margin:
            continue
        value = text if name == "document_number" else _visual_date(text)
        expected = getattr(record, name)  # the compared fields are MrzRecord's own names
        if value is not None and value != expected:
            reasons.append(f"visual {name} {text!r} != MRZ {expected!r}")
    return reasons


def expected_visual(record: MrzRecord, name: str) -> str:
    """The visual-zone text a compared field must show by the MRZ, `?` where the MRZ implies
    nothing (a date's separators and century: the visual zone prints DD?MM?YYYY)."""
    value = getattr(record, name)
    if name == "document_number":
        return value
    return f"{value[4:6]}?{value[2:4]}???{value[0:2]}"  # the MRZ's YYMMDD


def verify(record: MrzRecord, scores: Mapping[str, np.ndarray], max_deficit: float) -> list[str]:
    """The reasons the visual zone does not show the MRZ's value: per compared field (its
    per-cell character NCC, `Reading.visual_scores`), the largest shortfall of the MRZ's
    character against the best one at a cell; above `max_deficit`, the field fails."""
    reasons = []
    for name, cells in scores.items():
        expected = expected_visual(record, name)
        if len(expected) != len(cells):
            continue  # the reader found another number of cells: no cell-wise comparison
        worst = 0.0
        for row, char in zip(cells, expected, strict=True):
            match = row[ALPHABET.index(char)] if char in ALPHABET else -np.inf  # '?' is not
            if np.isfinite(match):  # -inf: a character its cell's class excludes
                worst = max(worst, float(row.max() - match))
        if worst > max_deficit:
            reasons.append(
                f"visual {name} does not show the MRZ's {expected!r} (a character's match "
                f"{worst:.2f} below the best)"
            )
    return reasons


def check_document(image: np.ndarray, options: RuleOptions | None = None, name: str = "image"):
    """The rule outcome of one RGB uint8 document capture."""
    options = options or RuleOptions()
    try:
        reading = read_document(image, options.reader, name)
    except MrzReadError as err:
        return RuleResult("unreadable", (str(err),))
    record = reading.record  # parsed under its issuer's tolerances by the reader
    sure = [
        c for c in record.invalid_checks if _check_margin(reading, c) >= options.min_check_margin
    ]
    unsure = [c for c in record.invalid_checks if c not in sure]
    reasons = [f"check digit {c} invalid" for c in sure]
    reasons += compare(record, reading.visual, options.min_field_margin)
    reasons += verify(record, reading.visual_scores, options.max_field_deficit)
    if reasons:
        return RuleResult("fail", tuple(reasons), record)
    if unsure:
        return RuleResult(
            "unsure", tuple(f"check digit {c} invalid, read unsurely" for c in unsure), record
        )
    return RuleResult("pass", (), record)


def fuse(model: np.ndarray, risk: np.ndarray, options: RuleOptions) -> np.ndarray:
    """The fused P(forged): the model's score and the rules' risk combined by `fusion`."""
    model = np.asarray(model, np.float64)
    risk = np.asarray(risk, np.float64) * options.weight
    if options.fusion == "model":
        return model
    if options.fusion == "rules":
        return risk
    if options.fusion == "max":
        return np.maximum(model, risk)
    return 1.0 - (1.0 - model) * (1.0 - risk)


def _field(layout, name: str):
    return next(f for f in layout.fields if f.name == name)


STATUS_COLUMNS = ("fail", "unsure", "unreadable")


def rule_columns(images, options: RuleOptions, names=None) -> dict[str, np.ndarray]:
    """Per image (a path or an RGB uint8 array): the rule `risk` and one 0/1 column per
    non-passing status; a score table keeps them as `output/rules_*`."""
    images = list(images)
    names = list(names) if names is not None else [str(i) for i in range(len(images))]
    out = {"risk": np.zeros(len(images))} | {s: np.zeros(len(images)) for s in STATUS_COLUMNS}
    for i, (image, label) in enumerate(zip(images, names, strict=True)):
        array = image if isinstance(image, np.ndarray) else read_image(image)
        result = check_document(array, options, str(label))
        out["risk"][i] = result.risk(options)
        if result.status in STATUS_COLUMNS:
            out[result.status][i] = 1.0
    return out
