"""Segment report, demographic differential (Max/GeoMean) and session aggregation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from idv.evaluation.segments import aggregate_sessions, demographic_differential, segment_report


def table() -> pd.DataFrame:
    # Two geographies. EU: 4 bona fide (one >= 0.5) and 4 print (one < 0.5).
    # NA: 4 bona fide (none >= 0.5) and 4 replay (two < 0.5).
    rows = []
    for geo, bona, attack, species in (
        ("EU", [0.1, 0.2, 0.3, 0.6], [0.4, 0.7, 0.8, 0.9], "print"),
        ("NA", [0.1, 0.2, 0.3, 0.4], [0.2, 0.45, 0.8, 0.9], "replay"),
    ):
        for i, s in enumerate(bona):
            rows.append((f"{geo}b{i}", s, 0, "bona_fide", f"{geo}{i}", geo))
        for i, s in enumerate(attack):
            rows.append((f"{geo}a{i}", s, 1, species, f"{geo}{i}", geo))
    return pd.DataFrame(
        rows, columns=["sample_id", "score", "label", "attack_type", "subject_id", "geography"]
    )


def test_segment_report_by_hand() -> None:
    report = segment_report(table(), ["geography"], threshold=0.5, min_subjects=3)
    eu = report[report["group"] == "EU"].iloc[0]
    na = report[report["group"] == "NA"].iloc[0]
    assert (eu["apcer_worst"], eu["bpcer"]) == (0.25, 0.25)
    assert (na["apcer_worst"], na["bpcer"]) == (0.5, 0.0)
    assert eu["samples"] == 8 and eu["subjects"] == 4 and not eu["too_small"]
    assert segment_report(table(), ["geography"], 0.5, min_subjects=5)["too_small"].all()


def test_unknown_segment_column() -> None:
    with pytest.raises(KeyError, match="skin_tone"):
        segment_report(table(), ["skin_tone"], 0.5)


def test_differential_max_over_geomean_with_floor() -> None:
    # BPCER: EU 1/4; NA 0/4 floored at 1/(2*4) = 1/8. GeoMean = sqrt(1/4 * 1/8).
    d = demographic_differential(table(), "geography", 0.5, "bpcer", min_subjects=3)
    assert d.worst_group == "EU"
    assert d.rates == {"EU": 0.25, "NA": 0.125}
    assert d.value == pytest.approx(0.25 / np.sqrt(0.25 * 0.125))
    # APCER: EU 1/4, NA 2/4 -> worst NA, 0.5 / sqrt(0.125)
    a = demographic_differential(table(), "geography", 0.5, "apcer", min_subjects=3)
    assert a.worst_group == "NA" and a.value == pytest.approx(0.5 / np.sqrt(0.125))
    with pytest.raises(ValueError, match="needs two groups"):
        demographic_differential(table(), "geography", 0.5, "bpcer", min_subjects=10)


def test_session_aggregation() -> None:
    frames = pd.DataFrame(
        {
            "sample_id": ["f1", "f2", "f3", "f4"],
            "session_id": ["s1", "s1", "s2", "s2"],
            "score": [0.2, 0.6, 0.9, np.nan],
            "label": [0, 0, 1, 1],
            "attack_type": ["bona_fide", "bona_fide", "print", "print"],
            "subject_id": ["a", "a", "b", "b"],
            "acquired": [True, True, True, False],
        }
    )
    mean = aggregate_sessions(frames, "mean").set_index("session_id")
    assert mean.loc["s1", "score"] == pytest.approx(0.4)
    assert mean.loc["s2", "score"] == pytest.approx(0.9)  # the unacquired frame is ignored
    assert mean.loc["s1", "frames"] == 2 and mean["acquired"].all()
    assert aggregate_sessions(frames, "max").set_index("session_id").loc["s1", "score"] == 0.6
    frames.loc[1, "label"] = 1
    with pytest.raises(ValueError, match="mixes labels"):
        aggregate_sessions(frames)


def test_segment_intervals_bracket_the_estimates() -> None:
    options = {"n_resamples": 200, "seed": 0, "level": 0.95}
    report = segment_report(table(), ["geography"], 0.5, min_subjects=3, bootstrap=options)
    for _, row in report.iterrows():
        assert row["bpcer_low"] <= row["bpcer"] <= row["bpcer_high"]
        assert row["apcer_worst_low"] <= row["apcer_worst"] <= row["apcer_worst_high"]
    again = segment_report(table(), ["geography"], 0.5, min_subjects=3, bootstrap=options)
    pd.testing.assert_frame_equal(report, again)  # seeded
    assert report.loc[report["group"] == "NA", "bpcer_high"].item() == 0.0  # no errors at all
