"""The evaluation contract through the entry points: hostile tables are refused with the rows
named (nothing written), a vendor's test-only table is judged without ever taking a threshold
from test, and a search table is judged from a file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from idv.calibration.thresholds import calibrate
from idv.cli.evaluate import run as evaluate
from idv.metrics.detection import apcer_per_species
from idv.metrics.identification import identification_report
from idv.metrics.verification import verification_report
from idv.score_tables import ScoreTableError
from idv.thresholds import Thresholds
from tests.conftest import compose

FAST = ["bootstrap.n_resamples=50", "report.min_subjects=3"]


def pad_table(seed: int = 0, subjects: int = 24) -> pd.DataFrame:
    """val / calib / test rows: per subject a bona fide capture, a print and a mask."""
    rng = np.random.default_rng(seed)
    rows = []
    for split in ("val", "calib", "test"):
        for s in range(subjects):
            for kind, centre in (("bona_fide", 0.3), ("print", 0.6), ("mask", 0.7)):
                rows.append(
                    {
                        "sample_id": f"{split}-{kind}-{s}",
                        "score": float(np.clip(rng.normal(centre, 0.15), 0, 1)),
                        "label": int(kind != "bona_fide"),
                        "attack_type": kind,
                        "subject_id": f"{split}-s{s}",
                        "split": split,
                        "geography": "EU" if s % 2 else "NA",
                    }
                )
    return pd.DataFrame(rows)


def test_duplicated_rows_are_refused_by_evaluate_and_calibrate(tmp_path: Path) -> None:
    table = pad_table()
    hostile = pd.concat([table, table[table["split"] == "test"].head(5)], ignore_index=True)
    path = tmp_path / "hostile.parquet"
    hostile.to_parquet(path, index=False)
    first_test = int(np.flatnonzero(table["split"] == "test")[0])
    with pytest.raises(ScoreTableError) as err:
        evaluate(compose("evaluate", [f"scores={path}", *FAST], tmp_path / "eval"))
    text = str(err.value)
    assert "hostile.parquet" in text and "duplicate sample_id" in text
    assert f"row {first_test} " in text and f"row {len(table)} " in text  # both rows
    assert not (tmp_path / "eval/metrics.json").exists()  # nothing written
    overrides = [f"scores={path}", "targets=[0.2]", "min_subjects=3", "bootstrap.n_resamples=20"]
    with pytest.raises(ScoreTableError, match="duplicate sample_id"):
        calibrate(compose("calibrate", overrides, tmp_path / "cal"))
    assert not (tmp_path / "cal/thresholds.json").exists()


def test_a_test_only_table_gets_no_threshold_from_test(tmp_path: Path) -> None:
    table = pad_table()
    full, vendor = tmp_path / "full.parquet", tmp_path / "vendor.parquet"
    table.to_parquet(full, index=False)
    table[table["split"] == "test"].to_parquet(vendor, index=False)

    got = evaluate(compose("evaluate", [f"scores={vendor}", *FAST], tmp_path / "plain"))
    assert 0 < got.metrics["test/eer"] < 0.5 and "test/auc" in got.metrics
    assert not any("@" in k for k in got.metrics) and "val/eer" not in got.metrics
    report = (tmp_path / "plain/report.md").read_text()
    assert "Thresholded figures (rates at a threshold, segments, differentials) are not" in report
    assert "No per-segment figures" in report

    overrides = [f"scores={full}", "targets=[0.2]", "min_subjects=3", "bootstrap.n_resamples=20"]
    calibrate(compose("calibrate", overrides, tmp_path / "cal"))
    thresholds = tmp_path / "cal/thresholds.json"
    given = [f"scores={vendor}", f"thresholds={thresholds}", *FAST]
    got = evaluate(compose("evaluate", given, tmp_path / "given"))
    t = Thresholds.load(thresholds).global_entry().threshold
    test = table[table["split"] == "test"]
    expected = apcer_per_species(test["score"], test["label"], test["attack_type"], t)
    assert got.metrics["test/apcer_print@calibrated_threshold"] == expected["print"]
    segments = pd.read_csv(tmp_path / "given/segments.csv", keep_default_na=False)
    assert set(segments["group"]) >= {"EU", "NA"}


def face_tables(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A test-only comparison table (two protocols) and a search table of a vendor."""
    rng = np.random.default_rng(seed)
    rows = []
    for protocol in ("selfie_selfie", "portrait_selfie"):
        for a in range(12):
            for b in range(12):
                genuine = a == b
                rows.append(
                    {
                        "comparison_id": f"{protocol}:{a}:{b}",
                        "sample_id_a": f"{protocol}-a{a}",
                        "sample_id_b": f"{protocol}-b{b}",
                        "subject_id_a": f"S{a}",
                        "subject_id_b": f"S{b}",
                        "genuine": genuine,
                        "score": float(np.clip(rng.normal(0.7 if genuine else 0.2, 0.1), -1, 1)),
                        "protocol": protocol,
                        "demographic_match": bool((a + b) % 3 == 0),
                        "split": "test",
                        "geography": "EU" if b % 2 else "NA",
                    }
                )
    comparisons = pd.DataFrame(rows)
    rows = []
    for p in range(30):
        mated = p < 10
        subject = f"S{p % 10}" if mated else f"N{p}"
        candidates = sorted(rng.uniform(0.0, 0.5, 3), reverse=True)
        names = [f"G{p}-{k}" for k in range(3)]
        if mated:
            candidates[0], names[0] = 0.8, subject
        for rank, (name, score) in enumerate(zip(names, candidates, strict=True), start=1):
            rows.append((f"q{p}", f"probe{p}", subject, mated, rank, name, float(score), "test"))
    columns = ["search_id", "probe_sample_id", "probe_subject_id", "mated", "rank"]
    search = pd.DataFrame(rows, columns=[*columns, "candidate_subject_id", "score", "split"])
    return comparisons, search


def test_a_vendors_face_tables_are_judged_from_files(tmp_path: Path) -> None:
    comparisons, search = face_tables()
    scores, searched = tmp_path / "comparisons.parquet", tmp_path / "search.parquet"
    comparisons.to_parquet(scores, index=False)
    search.to_parquet(searched, index=False)
    overrides = ["task=face_match", f"scores={scores}", f"search={searched}", *FAST]
    got = evaluate(compose("evaluate", overrides, tmp_path / "eval"))  # no val rows: no crash
    portrait = comparisons[comparisons["protocol"] == "portrait_selfie"]
    expected = verification_report(portrait, fmr_targets=(0.01,), min_subjects=3)
    assert got.metrics["test/portrait_selfie/eer"] == expected["eer"]
    one_to_n = identification_report(search, (0.1,), min_subjects=3)
    assert got.metrics["test/search/rank_1_rate"] == one_to_n["rank_1_rate"] == 1.0
    assert not any(k.startswith("val/") for k in got.metrics)
    report = (tmp_path / "eval/report.md").read_text()
    assert "are not available: the table has no `val` rows" in report
    metrics = json.loads((tmp_path / "eval/metrics.json").read_text())
    assert metrics["test/search/mated_searches"] == 10
    assert (tmp_path / "eval/tables/search.parquet").is_file()


def test_duplicated_calib_comparisons_are_refused(tmp_path: Path) -> None:
    comparisons, _ = face_tables()
    calib = comparisons.assign(split="calib", comparison_id="calib:" + comparisons["comparison_id"])
    calib["sample_id_a"] = "calib-" + calib["sample_id_a"]
    table = pd.concat([calib, comparisons, calib.head(3)], ignore_index=True)
    path = tmp_path / "scores.parquet"
    table.to_parquet(path, index=False)
    overrides = [
        "task=face_match",
        f"scores={path}",
        "search=null",
        "fpir_targets=[]",
        "targets=[0.1]",
        "min_subjects=3",
    ]
    with pytest.raises(ScoreTableError, match=r"duplicate comparison_id .*row 0 .*row 576"):
        calibrate(compose("calibrate", overrides, tmp_path / "cal"))
