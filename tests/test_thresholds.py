"""thresholds.json as one type (idv.thresholds): the one decision rule, validation on load,
segment lookup, and the clear error for a file of an older schema."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from idv.thresholds import (
    SCHEMA_VERSION,
    DecisionRule,
    Entry,
    OperatingPoint,
    Rate,
    SplitReport,
    Thresholds,
    ThresholdsError,
    decide,
)

RULE = DecisionRule(below="accept", review="review", at_or_above="reject", failure="reject")
MATCH = DecisionRule(below="non_match", review="review", at_or_above="match", failure="non_match")


def entry(threshold=0.6, review=0.4, column=None, value="global", metric="apcer_worst"):
    point = OperatingPoint(metric, 0.1, True)
    name = "global" if column is None else f"{column}={value}"
    return Entry(
        id=f"{metric}<=0.1|{name}",
        operating_point=point,
        segment_column=column,
        segment_value=value,
        source="own",
        threshold=threshold,
        review_at_or_above=review,
        calib=SplitReport({"samples": 10}, {"bpcer": Rate(0.1, n=10, count=1)}),
        test=SplitReport({"samples": 12}, {"bpcer": Rate(0.2, 0.1, 0.3, 0.95, 12, 2)}),
    )


def thresholds(*entries: Entry, rule: DecisionRule = RULE, segments=("geography",)) -> Thresholds:
    return Thresholds(
        kind="detection",
        task="pad",
        decision=rule,
        score_range=(0.0, 1.0),
        operating_point=OperatingPoint("apcer_worst", 0.1),
        entries=entries or (entry(),),
        segment_columns=segments,
    )


def test_decide_is_one_rule_with_failures_rejected() -> None:
    got = decide([0.1, 0.4, 0.5, 0.6, 0.9, np.nan], 0.4, 0.6, RULE)
    assert got.tolist() == ["accept", "review", "review", "reject", "reject", "reject"]
    got = decide([0.1, 0.5, 0.9, np.nan], 0.4, 0.6, MATCH)
    assert got.tolist() == ["non_match", "review", "match", "non_match"]  # never a match
    assert decide([0.3, 0.7], 0.5, 0.5, RULE).tolist() == ["accept", "reject"]  # no band


def test_segment_lookup_and_per_sample_decisions() -> None:
    t = thresholds(entry(), entry(0.2, 0.1, "geography", "EU"))
    assert t.entry_for({"geography": "EU"}).threshold == 0.2
    assert t.entry_for("EU").threshold == 0.2 and t.entry_for("NA").threshold == 0.6
    assert t.entry_for({"capture_device": "x"}).threshold == 0.6  # not calibrated per device
    scores = [0.3, 0.3, 0.3]
    assert t.decide(scores, ["EU", None, "NA"]).tolist() == ["reject", "accept", "accept"]
    with pytest.raises(ValueError, match="2 segments for 3 scores"):
        t.decide(scores, ["EU", "NA"])


def test_json_round_trip_is_exact(tmp_path: Path) -> None:
    t = thresholds(entry(), entry(0.2, 0.1, "geography", "EU"))
    path = tmp_path / "thresholds.json"
    path.write_text(t.to_json())
    loaded = Thresholds.load(path)
    assert loaded.to_dict() == t.to_dict()
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert (
        data["decision"]["failure"] == "reject" and "review_at_or_above" in data["decision"]["rule"]
    )
    assert data["thresholds"][0]["test"]["rates"]["bpcer"] == {
        "estimate": 0.2, "low": 0.1, "high": 0.3, "level": 0.95, "n": 12, "count": 2
    }  # fmt: skip


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda d: d.update(schema_version=1),
            "schema_version 1, this code reads version 2: re-calibrate",
        ),
        (lambda d: d.pop("schema_version"), "schema_version None"),
        (lambda d: d["thresholds"][0].update(threshold=float("inf")), "edges must be finite"),
        (
            lambda d: d["thresholds"][0].update(review_at_or_above=0.7),
            "review_at_or_above 0.7 exceeds the threshold 0.6",
        ),
        (lambda d: d["thresholds"][0].update(threshold=1.5), r"outside the score range \[0, 1\]"),
        (lambda d: d["decision"].update(review="accept"), "three distinct outcomes"),
        (lambda d: d["decision"].update(failure="maybe"), "failure to acquire must be one of them"),
        (
            lambda d: d["thresholds"][0]["operating_point"].update(primary=False),
            "no global threshold",
        ),
        (lambda d: d.pop("thresholds"), "key .thresholds. is not valid \\(missing key"),
    ],
)
def test_validated_on_load(tmp_path: Path, edit, message: str) -> None:
    data = thresholds().to_dict()
    edit(data)
    path = tmp_path / "thresholds.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ThresholdsError, match=message) as err:
        Thresholds.load(path)
    assert str(path) in str(err.value)


def test_metrics_each_have_their_primary_global_entry() -> None:
    one_to_n = entry(0.8, 0.75, metric="fpir")
    t = Thresholds(
        kind="matching",
        task="face_match",
        decision=MATCH,
        score_range=(-1.0, 1.0),
        operating_point=OperatingPoint("fmr", 0.1),
        entries=(entry(0.5, 0.45, metric="fmr"), one_to_n),
    )
    assert t.metrics == ["fmr", "fpir"]
    assert t.decide([0.6]).tolist() == ["match"]
    assert t.decide([0.6], metric="fpir").tolist() == ["non_match"]
    with pytest.raises(
        ThresholdsError, match="no global threshold for operating-point metric 'fnr'"
    ):
        t.global_entry("fnr")
