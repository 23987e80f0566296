"""Atomic writes: a temporary name in the same directory, then a rename (files), or an
exchange (directories: bundles, galleries).

A crash or a bad row halfway through never leaves a truncated table, metrics file or bundle
behind, and whatever was there before stays intact. Standard library only at import (pandas is
imported by `write_parquet` alone), so the serving side can use it too.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def replace_dir(new: str | os.PathLike, target: str | os.PathLike) -> None:
    """Put the directory `new` at `target`, and delete what was there: an atomic exchange where
    the OS allows, else two renames (the old directory is set aside first, and put back if the
    second rename fails). `new` is gone afterwards."""
    new, target = Path(new), Path(target)
    if not target.exists():
        os.replace(new, target)
        return
    if _exchange(new, target):
        shutil.rmtree(new)  # now the old directory
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.replace(target, old)
    try:
        os.replace(new, target)
    except OSError:
        os.replace(old, target)  # put the previous one back
        raise
    shutil.rmtree(old, ignore_errors=True)
