"""Shared plumbing of the synthetic corpora: per-identity seeding, parallel rendering,
atomic corpus directories and demographic / segment assignment."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from idv.atomic import remove_stale, replace_dir, temporary_sibling
from idv.data.manifest import write_manifest
from idv.data.splits import assign_splits

MANIFEST_NAME = "manifest.parquet"


def identity_rng(seed: int, index: int) -> np.random.Generator:
    """An independent generator per identity, so output does not depend on worker count."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def render_parallel(
    fn: Callable[[int, Path], list[dict[str, Any]]],
    count: int,
    tmp_dir: Path,
    workers: int,
) -> list[dict[str, Any]]:
    """Run `fn(identity_index, tmp_dir)` for every identity; rows come back in index order."""
    if workers <= 1:
        results = [fn(i, tmp_dir) for i in range(count)]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(fn, range(count), [tmp_dir] * count, chunksize=8))
    return [row for rows in results for row in rows]


class CorpusDir:
    """Build a corpus in a temporary sibling directory, then swap it in atomically
    (`idv.atomic.replace_dir`: locked, exchanged).

    A failure halfway leaves any previous corpus untouched; a writer killed halfway leaves
    its temporary directory, which the next writer of the corpus removes.
    """

    def __init__(self, final: str | os.PathLike) -> None:
        self.final = Path(final)
        self.tmp = temporary_sibling(self.final)

    def __enter__(self) -> Path:
        remove_stale(self.final)  # what a killed writer left
        (self.tmp / "images").mkdir(parents=True)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        try:  # one locked exchange: a concurrent writer swaps before or after, never between
            replace_dir(self.tmp, self.final)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


def finish_manifest(
    rows: list[dict[str, Any]],
    out: Path,
    *,
    seed: int,
    fractions: Mapping[str, float],
    stratify: Sequence[str],
    after_split: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    split_of: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Assign subject-disjoint splits and write the manifest inside the corpus directory;
    `after_split` adds what needs the split (e.g. per-split history counts); `split_of`: a
    given subject -> split map (another corpus' splits, for the same people) instead."""
    frame = pd.DataFrame(rows)
    if split_of is None:
        frame["split"] = assign_splits(frame, seed=seed, fractions=fractions, stratify=stratify)
    else:
        frame["split"] = frame["subject_id"].map(split_of)
        lost = sorted(frame.loc[frame["split"].isna(), "subject_id"].unique())
        if lost:
            raise ValueError(f"subjects {lost[:5]} have no split in the given subject map")
    if after_split is not None:
        frame = after_split(frame)
    ordered = [c for c in ("sample_id", "path", "label", "subject_id", "split", "attack_type")
               if c in frame.columns]  # fmt: skip
    frame = frame[ordered + [c for c in frame.columns if c not in ordered]]
    write_manifest(frame, out / MANIFEST_NAME)
    return frame


def pick(rng: np.random.Generator, values: Sequence[str]) -> str:
    return str(values[int(rng.integers(len(values)))])


def build_corpus(
    render_identity: Callable[[int, Path], list[dict[str, Any]]],
    identities: int,
    out: str | os.PathLike,
    *,
    seed: int,
    workers: int,
    fractions: Mapping[str, float],
    stratify: Sequence[str],
    split_of: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Every corpus' last step: render each identity (in parallel) into a temporary directory,
    split by subject, write the manifest, and swap the directory in atomically."""
    with CorpusDir(out) as tmp:
        rows = render_parallel(render_identity, identities, tmp, workers)
        frame = finish_manifest(
            rows, tmp, seed=seed, fractions=fractions, stratify=stratify, split_of=split_of
        )
    return frame
