"""Every manifest validation error names the file and the row at fault."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest

from idv.data.manifest import Manifest, ManifestError, write_manifest

LABELS = (0, 1)


def rewrite(root: Path, change) -> Path:
    file = root / "manifest.parquet"
    frame = pd.read_parquet(file)
    frame = change(frame)
    write_manifest(frame, file)
    return file


def load(root: Path, **kwargs) -> Manifest:
    return Manifest.load(root / "manifest.parquet", labels=LABELS, **kwargs)


def test_valid_corpus_loads(corpus: Path) -> None:
    manifest = load(corpus, required_splits=("train", "val", "calib", "test"))
    assert len(manifest.split("train")) == 16
    assert set(manifest.frame["split"]) == {"train", "val", "calib", "test"}


def expect_error(corpus: Path, pattern: str, row: int | None = None, **kwargs) -> str:
    with pytest.raises(ManifestError) as info:
        load(corpus, **kwargs)
    message = str(info.value)
    assert str(corpus / "manifest.parquet") in message
    assert re.search(pattern, message), message
    if row is not None:
        assert f"row {row} " in message, message
    return message


def test_missing_required_column(corpus: Path) -> None:
    rewrite(corpus, lambda f: f.drop(columns=["subject_id"]))
    expect_error(corpus, r"missing required column.*subject_id")


def test_unknown_split(corpus: Path) -> None:
    def change(f):
        f.loc[5, "split"] = "holdout"
        return f

    rewrite(corpus, change)
    expect_error(corpus, "unknown split 'holdout'", row=5)


def test_label_outside_label_set(corpus: Path) -> None:
    def change(f):
        f.loc[3, "label"] = 7
        return f

    rewrite(corpus, change)
    expect_error(corpus, r"label 7 is not in the task's label set \[0, 1\]", row=3)


def test_duplicate_sample_id(corpus: Path) -> None:
    def change(f):
        f.loc[9, "sample_id"] = f.loc[2, "sample_id"]
        return f

    rewrite(corpus, change)
    expect_error(corpus, r"duplicate sample_id \(first seen at row 2\)", row=9)


def test_missing_file(corpus: Path) -> None:
    frame = pd.read_parquet(corpus / "manifest.parquet")
    (corpus / frame.loc[4, "path"]).unlink()
    expect_error(corpus, "does not exist", row=4)
    # ... which a run that does not read images may skip checking.
    load(corpus, check_files=False)


@pytest.mark.parametrize("bad_path", ["../outside.png", "/etc/passwd", "img/../../x.png"])
def test_path_escaping_root(corpus: Path, bad_path: str) -> None:
    def change(f):
        f.loc[6, "path"] = bad_path
        return f

    rewrite(corpus, change)
    expect_error(corpus, "escapes the corpus root", row=6, check_files=False)


def test_symlink_escaping_root(corpus: Path, tmp_path_factory) -> None:
    outside = tmp_path_factory.mktemp("outside") / "secret.png"
    outside.write_bytes(b"x")
    os.symlink(outside, corpus / "img" / "link.png")
    inside = corpus / "img" / "inside.png"
    os.symlink(corpus / "img" / "s0_0_print.png", inside)

    def change(f):
        f.loc[7, "path"] = "img/link.png"
        f.loc[8, "path"] = "img/inside.png"  # a symlink that stays inside is fine
        return f

    rewrite(corpus, change)
    expect_error(corpus, "symlink that escapes", row=7)


def test_subject_in_two_splits(corpus: Path) -> None:
    def change(f):
        row = f.index[(f["subject_id"] == "s0")][1]
        f.loc[row, "split"] = "test"
        return f

    rewrite(corpus, change)
    message = expect_error(corpus, r"subject_id 's0' appears in splits.*identity leakage", row=1)
    assert "'test'" in message and "'train'" in message


def test_attack_source_in_other_split(corpus: Path) -> None:
    def change(f):
        # The print made from s4's capture (val) claims a source from s0 (train).
        row = f.index[(f["subject_id"] == "s4") & (f["label"] == 1)][0]
        f.loc[row, "source_sample_id"] = "s0_0_bona_fide"
        return f

    rewrite(corpus, change)
    expect_error(corpus, r"attack is in split 'val' but its source 's0_0_bona_fide' is in 'train'")


def test_attack_source_unknown(corpus: Path) -> None:
    def change(f):
        f.loc[1, "source_sample_id"] = "nobody"
        return f

    rewrite(corpus, change)
    expect_error(corpus, "source_sample_id 'nobody' is not a sample", row=1)


def test_empty_split_that_run_needs(corpus: Path) -> None:
    rewrite(corpus, lambda f: f[f["split"] != "calib"])
    load(corpus, required_splits=("train", "val"))
    expect_error(
        corpus, "split 'calib' is empty, but this run needs it", required_splits=("train", "calib")
    )


def test_unreadable_parquet(tmp_path: Path) -> None:
    (tmp_path / "manifest.parquet").write_bytes(b"not parquet")
    with pytest.raises(ManifestError, match="not a readable Parquet manifest"):
        Manifest.load(tmp_path / "manifest.parquet")


def test_write_is_atomic(tmp_path: Path) -> None:
    file = tmp_path / "m.parquet"
    write_manifest(pd.DataFrame({"a": [1]}), file)
    with pytest.raises(Exception):  # noqa: B017  (pyarrow: unsupported object column)
        write_manifest(pd.DataFrame({"a": [object()]}), file)
    assert pd.read_parquet(file)["a"].tolist() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["m.parquet"]
