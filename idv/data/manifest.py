"""The manifest: one Parquet table per corpus, one row per sample, validated on load.

Every corpus, synthetic or imported, goes through this one schema (see the blueprint), so that
datasets, evaluation and vendor benchmarking never need corpus-specific plumbing. Validation
errors name the file and the row at fault, because a silently wrong split or a leaked identity
invalidates every metric computed downstream.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from idv.atomic import write_parquet
from idv.errors import IdvError

SPLITS: tuple[str, ...] = ("train", "val", "calib", "test")
BONA_FIDE = "bona_fide"
REQUIRED_COLUMNS: tuple[str, ...] = (
    "sample_id",
    "label",
    "subject_id",
    "split",
    "attack_type",
)
# Files a sample may point to, relative to the corpus root: each is checked where present
# (inside the root, and existing when `check_files`); a dataset that needs one says so.
PATH_COLUMNS: tuple[str, ...] = ("path", "mask_path")
SEGMENT_COLUMNS: tuple[str, ...] = ("geography", "capture_device", "vendor")
DEMOGRAPHIC_COLUMNS: tuple[str, ...] = ("age_band", "sex", "skin_tone")
OPTIONAL_COLUMNS: tuple[str, ...] = (
    *PATH_COLUMNS,
    "source_sample_id",
    "session_id",
    *SEGMENT_COLUMNS,
    *DEMOGRAPHIC_COLUMNS,
)


class ManifestError(IdvError, ValueError):
    """A manifest that cannot be trusted; the message names the file and the row."""


@dataclass(frozen=True)
class Manifest:
    """A validated manifest: the table, the file it came from and the corpus root."""

    frame: pd.DataFrame
    file: Path
    root: Path

    def split(self, name: str) -> pd.DataFrame:
        """Rows of one split, in manifest order, with a fresh index."""
        if name not in SPLITS:
            raise ManifestError(f"{self.file}: unknown split {name!r}; expected one of {SPLITS}")
        return self.frame[self.frame["split"] == name].reset_index(drop=True)

    def abspath(self, relative: str) -> Path:
        return self.root / relative

    @classmethod
    def load(
        cls,
        file: str | os.PathLike,
        *,
        root: str | os.PathLike | None = None,
        labels: Collection[int] | None = None,
        required_splits: Iterable[str] = (),
        check_files: bool = True,
    ) -> Manifest:
        """Read and validate a manifest; `root` defaults to the manifest's directory.

        `labels` is the task's label set (None: any), `required_splits` the splits the run
        needs to be non-empty, `check_files` whether every file (`path`, `mask_path`, where
        present) must exist under `root`.
        """
        file = Path(file)
        if not file.is_file():
            raise ManifestError(f"{file}: manifest not found")
        try:
            frame = pd.read_parquet(file)
        except Exception as err:  # pyarrow raises several types for a damaged file
            raise ManifestError(f"{file}: not a readable Parquet manifest ({err})") from err
        manifest = cls(frame=frame, file=file, root=Path(root) if root else file.parent)
        validate(manifest, labels=labels, required_splits=required_splits, check_files=check_files)
        return manifest


def _value(series: pd.Series, index: int) -> object:
    """A cell as a plain Python value, so messages read `7`, not `np.int64(7)`."""
    value = series.iloc[index]
    return value.item() if hasattr(value, "item") else value


def _row_error(file: Path, frame: pd.DataFrame, index: int, message: str) -> ManifestError:
    sample = _value(frame["sample_id"], index) if "sample_id" in frame else "?"
    return ManifestError(f"{file}: row {index} (sample_id={sample!r}): {message}")


def validate(
    manifest: Manifest,
    *,
    labels: Collection[int] | None = None,
    required_splits: Iterable[str] = (),
    check_files: bool = True,
) -> None:
    """Raise ManifestError on the first problem found; checks run cheapest first."""
    frame, file = manifest.frame, manifest.file
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ManifestError(f"{file}: missing required column(s) {missing}")

    _check_ids(file, frame)

    bad = ~frame["split"].isin(SPLITS)
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise _row_error(
            file, frame, i, f"unknown split {_value(frame['split'], i)!r}; expected one of {SPLITS}"
        )

    if labels is not None:
        bad = ~frame["label"].isin(list(labels))
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise _row_error(
                file,
                frame,
                i,
                f"label {_value(frame['label'], i)!r} is not in the "
                f"task's label set {sorted(labels)}",
            )

    dup = frame["sample_id"].duplicated(keep="first")
    if dup.any():
        i = int(dup.to_numpy().nonzero()[0][0])
        first = int((frame["sample_id"] == frame["sample_id"].iloc[i]).to_numpy().nonzero()[0][0])
        raise _row_error(file, frame, i, f"duplicate sample_id (first seen at row {first})")

    _check_paths(manifest, check_files)
    _check_subject_leakage(file, frame)
    _check_attack_sources(file, frame)

    for split in required_splits:
        if not (frame["split"] == split).any():
            raise ManifestError(f"{file}: split {split!r} is empty, but this run needs it")


# Ids every row must have, and ids a row may leave null (a bona fide sample has no source).
REQUIRED_IDS: tuple[str, ...] = ("sample_id", "subject_id", "attack_type")
OPTIONAL_IDS: tuple[str, ...] = ("source_sample_id", "session_id")


def _check_ids(file: Path, frame: pd.DataFrame) -> None:
    """Null, empty or blank ids are refused at load, by row (a null subject_id used to pass
    and crash evaluation after all the scoring); optional ids may be null, never blank."""
    for column in (*REQUIRED_IDS, *OPTIONAL_IDS):
        if column not in frame.columns:
            continue
        values = frame[column]
        null = values.isna().to_numpy()
        text = values.astype("string").str.strip()
        blank = (~null) & (text == "").fillna(False).to_numpy()
        bad = (null | blank) if column in REQUIRED_IDS else blank
        if bad.any():
            i = int(bad.nonzero()[0][0])
            what = "null" if null[i] else f"empty ({_value(values, i)!r})"
            count = int(bad.sum())
            fix = "every row needs one" if column in REQUIRED_IDS else "null it or give an id"
            raise _row_error(file, frame, i, f"{column} is {what}: {fix} ({count} such rows)")


def _check_paths(manifest: Manifest, check_files: bool) -> None:
    frame, file = manifest.frame, manifest.file
    root = manifest.root.resolve()
    for column in (c for c in PATH_COLUMNS if c in frame.columns):
        for i, rel in enumerate(frame[column]):
            if rel is None or (isinstance(rel, float) and rel != rel):  # an optional file
                continue
            _check_path(file, frame, i, column, str(rel), root, check_files)


def _check_path(
    file: Path, frame: pd.DataFrame, i: int, column: str, rel: str, root: Path, check_files: bool
) -> None:
    candidate = Path(rel)
    if candidate.is_absolute() or ".." in candidate.parts:
        raise _row_error(
            file,
            frame,
            i,
            f"{column} {rel!r} escapes the corpus root {root} "
            "(absolute paths and '..' are not allowed)",
        )
    if not check_files:
        return
    full = root / candidate
    if not full.exists():
        raise _row_error(file, frame, i, f"{column} {rel!r} does not exist under {root}")
    resolved = full.resolve()
    if not resolved.is_relative_to(root):
        raise _row_error(
            file,
            frame,
            i,
            f"{column} {rel!r} is a symlink that escapes the corpus root {root} (-> {resolved})",
        )


def _check_subject_leakage(file: Path, frame: pd.DataFrame) -> None:
    splits_per_subject = frame.groupby("subject_id", sort=False)["split"].nunique()
    leaked = splits_per_subject[splits_per_subject > 1]
    if len(leaked):
        subject = leaked.index[0]
        rows = frame.index[frame["subject_id"] == subject]
        seen = frame.loc[rows, "split"]
        i = int(rows[(seen != seen.iloc[0]).to_numpy()][0])
        raise _row_error(
            file,
            frame,
            i,
            f"subject_id {subject!r} appears in splits "
            f"{sorted(seen.unique())} (identity leakage across splits)",
        )


def _check_attack_sources(file: Path, frame: pd.DataFrame) -> None:
    if "source_sample_id" not in frame.columns:
        return
    split_of = dict(zip(frame["sample_id"], frame["split"], strict=True))
    sources = frame["source_sample_id"]
    for i in (sources.notna() & (sources.astype(str) != "")).to_numpy().nonzero()[0]:
        source = sources.iloc[i]
        if source not in split_of:
            raise _row_error(
                file, frame, int(i), f"source_sample_id {source!r} is not a sample of this manifest"
            )
        if split_of[source] != frame["split"].iloc[i]:
            raise _row_error(
                file,
                frame,
                int(i),
                f"attack is in split "
                f"{_value(frame['split'], i)!r} but its source {source!r} is in "
                f"{split_of[source]!r}",
            )


def write_manifest(frame: pd.DataFrame, file: str | os.PathLike) -> Path:
    """Write a manifest atomically (see idv.atomic)."""
    return write_parquet(frame, file)
