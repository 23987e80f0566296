"""The score-table contract (idv.score_tables): one schema and one reader per kind of table, and
the failure-to-acquire rule, with errors that name the file, the row and the id."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from idv.score_tables import (
    ScoreTableError,
    read_comparison_table,
    read_detection_table,
    read_search_table,
    require_splits,
    validate_comparison_table,
    validate_detection_table,
    validate_search_table,
)


def detection() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sample_id": ["a", "b", "c", "d"],
            "score": [0.1, 0.9, np.nan, 0.4],
            "label": [0, 1, 1, 0],
            "attack_type": ["bona_fide", "print", "print", "bona_fide"],
            "subject_id": ["s1", "s1", "s2", "s2"],
            "split": ["test", "test", "calib", "calib"],
            "acquired": [True, True, False, True],
        }
    )


def comparisons() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "comparison_id": ["c0", "c1", "c2"],
            "sample_id_a": ["p1", "p1", "p2"],
            "sample_id_b": ["q1", "q2", "q2"],
            "subject_id_a": ["A", "A", "B"],
            "subject_id_b": ["A", "B", "B"],
            "genuine": [1, 0, 1],
            "score": [0.8, 0.1, np.nan],
            "acquired": [True, True, False],
            "split": "test",
        }
    )


def searches() -> pd.DataFrame:
    rows = [
        ("m1", "p1", "A", True, 1, "A", 0.9),
        ("m1", "p1", "A", True, 2, "X", 0.5),
        ("n1", "p2", "B", False, 1, "X", 0.4),
        ("n2", "p3", "C", False, np.nan, None, np.nan),  # returned nothing
    ]
    columns = ["search_id", "probe_sample_id", "probe_subject_id", "mated", "rank"]
    return pd.DataFrame(rows, columns=[*columns, "candidate_subject_id", "score"])


def test_valid_tables_are_normalised() -> None:
    table = validate_detection_table(detection(), "x.parquet")
    assert table["acquired"].tolist() == [True, True, False, True]
    assert table["label"].dtype == np.int64 and table["score"].dtype == np.float64
    # A missing `acquired` column: every row is acquired (so scores must all be finite).
    no_flag = detection().drop(columns="acquired").dropna(subset=["score"])
    assert validate_detection_table(no_flag)["acquired"].all()
    got = validate_comparison_table(comparisons())
    assert got["genuine"].tolist() == [True, False, True]
    assert validate_search_table(searches())["acquired"].all()


def test_failure_to_acquire_contract() -> None:
    # acquired=False: the score is ignored (NaN, inf or anything); acquired: it must be finite.
    anything = detection()
    anything.loc[2, "score"] = np.inf
    validate_detection_table(anything)
    bad = detection()
    bad.loc[3, "score"] = np.nan
    with pytest.raises(ScoreTableError) as err:
        validate_detection_table(bad, "scores.parquet")
    text = str(err.value)
    assert "scores.parquet (detection score table)" in text and "NaN or infinite" in text
    assert "row 3 (sample_id 'd', split 'calib')" in text
    with pytest.raises(ScoreTableError, match="NaN or infinite.*row 2 .*comparison_id 'c2'"):
        validate_comparison_table(comparisons().assign(acquired=True))


def test_duplicates_name_both_rows() -> None:
    table = pd.concat([detection(), detection().iloc[[1]]], ignore_index=True)
    with pytest.raises(
        ScoreTableError, match=r"duplicate sample_id \(sample_id 'b'\) at row 1 .*row 4"
    ):
        validate_detection_table(table)
    # The same id in another split is another sample of another scoring run: allowed.
    other = detection().iloc[[1]].assign(split="val")
    validate_detection_table(pd.concat([detection(), other], ignore_index=True))
    # Comparisons: a repeated id, or the same pair in either order under another id.
    repeated = comparisons()
    repeated.loc[2, "comparison_id"] = "c0"
    with pytest.raises(ScoreTableError, match=r"duplicate comparison_id .* at row 0 .*row 2"):
        validate_comparison_table(repeated)
    swapped = pd.concat([comparisons(), comparisons().iloc[[1]]], ignore_index=True)
    swapped.loc[3, ["comparison_id", "sample_id_a", "sample_id_b"]] = ["c9", "q2", "p1"]
    swapped.loc[3, ["subject_id_a", "subject_id_b"]] = ["B", "A"]
    with pytest.raises(
        ScoreTableError, match=r"pair \('p1', 'q2'\) is compared twice: row 1 .*row 3"
    ):
        validate_comparison_table(swapped)
    # Searches: the same search and rank twice, or one probe searched twice.
    twice = pd.concat([searches(), searches().iloc[[0]]], ignore_index=True)
    with pytest.raises(ScoreTableError, match=r"duplicate rank \(search_id 'm1', rank 1"):
        validate_search_table(twice)
    again = pd.concat([searches(), searches().iloc[[2]].assign(search_id="n9")], ignore_index=True)
    with pytest.raises(
        ScoreTableError, match=r"duplicate search of one probe \(probe_sample_id 'p2'\)"
    ):
        validate_search_table(again)


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("label", 2, r"column 'label' must be one of 0 / 1 .*got \[2\] at row 1"),
        ("split", "tset", r"column 'split' must be one of \['train', 'val', 'calib', 'test'\]"),
        ("sample_id", None, r"column 'sample_id' is empty at row 1"),
        ("subject_id", None, r"column 'subject_id' is empty at row 1 \(sample_id 'b'"),
        ("acquired", None, r"column 'acquired' is empty at row 1"),
        ("attack_type", "bona_fide", r"label and attack_type disagree .* row 1 \(sample_id 'b'"),
    ],
)
def test_bad_values_name_the_row(column: str, value: object, message: str) -> None:
    table = detection()
    table[column] = table[column].astype(object)
    table.loc[1, column] = value
    with pytest.raises(ScoreTableError, match=message):
        validate_detection_table(table)


def test_comparison_and_search_rules() -> None:
    wrong = comparisons()
    wrong.loc[1, "genuine"] = 1
    with pytest.raises(ScoreTableError, match="genuine disagrees.*comparison_id 'c1'"):
        validate_comparison_table(wrong)
    with pytest.raises(ScoreTableError, match="column 'mated' must be one of 0 / 1"):
        validate_search_table(searches().assign(mated="yes"))
    rising = searches()
    rising.loc[1, "score"] = 0.95
    with pytest.raises(ScoreTableError, match="score rises with rank at row 1"):
        validate_search_table(rising)
    own = searches()
    own.loc[2, "candidate_subject_id"] = "B"
    with pytest.raises(ScoreTableError, match="non-mated search returns the probe's own subject"):
        validate_search_table(own)


def test_files_header_only_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "scores.parquet"
    detection().to_parquet(path)
    assert read_detection_table(path).attrs["source"] == str(path)
    csv = tmp_path / "vendor.csv"
    comparisons().to_csv(csv, index=False)
    assert len(read_comparison_table(csv)) == 3
    header = tmp_path / "header.csv"
    searches().iloc[:0].to_csv(header, index=False)
    with pytest.raises(ScoreTableError, match=r"header\.csv \(search score table\): has no rows"):
        read_search_table(header)
    with pytest.raises(ScoreTableError, match="nothing.parquet: detection score table not found"):
        read_detection_table(tmp_path / "nothing.parquet")
    with pytest.raises(ScoreTableError, match=r"lacks column\(s\) \['label'\]"):
        validate_detection_table(detection().drop(columns="label"), "t")
    table = read_detection_table(path)
    with pytest.raises(ScoreTableError, match=r"needs rows of split\(s\) \['val'\]"):
        require_splits(table, ["val"], "the val threshold")
