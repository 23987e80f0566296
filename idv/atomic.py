"""Atomic file writes: a temporary name in the same directory, then a rename.

A crash or a bad row halfway through never leaves a truncated table or metrics file behind,
and whatever was there before stays intact.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


@contextmanager
def atomic_path(file: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces `file` only if the block succeeds."""
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, file)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet(frame: pd.DataFrame, file: str | os.PathLike) -> Path:
    with atomic_path(file) as tmp:
        frame.to_parquet(tmp, index=False)
    return Path(file)


def write_json(data: Mapping, file: str | os.PathLike) -> Path:
    """Sorted keys and a trailing newline: stable diffs for `dvc metrics` and git."""
    with atomic_path(file) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return Path(file)


def write_text(text: str, file: str | os.PathLike) -> Path:
    with atomic_path(file) as tmp:
        tmp.write_text(text)
    return Path(file)
