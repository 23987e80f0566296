"""Atomic writes: a temporary name in the same directory, then a rename (files), or an
exchange (directories: bundles, galleries).

A crash or a bad row halfway through never leaves a truncated table, metrics file or bundle
behind, and whatever was there before stays intact. Temporaries are named
``.<name>.tmp-<pid>-...`` (and ``.<name>.old-<pid>-...`` while swapping): a process killed
with -9 leaves its own behind, and the next writer of the same target removes those of dead
processes (`remove_stale`). Directory swaps hold an exclusive lock on the parent directory so
that concurrent writers (two `idv-synth` of one corpus) swap one after the other, each
completely. Standard library only at import (pandas is imported by `write_parquet` alone),
so the serving side can use it too.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


# What follows ".<target name>." in a temporary's name (so `.bundle.v2.tmp-...`, bundle.v2's,
# is never taken for bundle's).
_TEMPORARY = re.compile(r"(tmp|old)-(\d+)(?:-[0-9a-f]{8})?")


def temporary_sibling(target: str | os.PathLike, tag: str = "tmp") -> Path:
    """A fresh hidden sibling name for writing `target`: ``.<name>.<tag>-<pid>-<random>``."""
    target = Path(target)
    return target.with_name(f".{target.name}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale(target: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of `target` left by processes that no longer run (a kill -9
    during an export left a 38 MB ``.bundle.tmp-<pid>``); returns what was removed. Those of
    live processes (a concurrent writer) are left alone. A writer killed between the two
    renames of a swap leaves `target` missing and the previous version as ``.old-<pid>``:
    that one is put back, not removed. Liveness is judged by pid on this host: writers in
    other pid namespaces (containers, hosts sharing a volume) must not share a target."""
    target = Path(target)
    removed: list[Path] = []
    if not target.parent.is_dir():
        return removed
    prefix = f".{target.name}."
    for entry in sorted(target.parent.iterdir()):
        if not entry.name.startswith(prefix):
            continue
        found = _TEMPORARY.fullmatch(entry.name[len(prefix) :])
        if not found or int(found.group(2)) == os.getpid() or _alive(int(found.group(2))):
            continue
        if found.group(1) == "old" and not target.exists():
            os.replace(entry, target)  # the only copy of the previous version: restore it
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


@contextmanager
def locked(target: str | os.PathLike) -> Iterator[None]:
    """An exclusive advisory lock on the directory holding `target` (flock on the directory
    itself, so no lock file is left behind; a no-op where fcntl is missing), for the block."""
    try:
        import fcntl
    except ImportError:  # not POSIX: the exchange alone
        yield
        return
    parent = Path(target).parent
    parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextmanager
def atomic_path(file: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces `file` only if the block succeeds."""
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(file)
    tmp = temporary_sibling(file)
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
    """Put the directory `new` at `target`, and delete what was there: under the target's
    lock, an atomic exchange where the OS allows, else two renames (the old directory is set
    aside first, and put back if the second rename fails). `new` is gone afterwards."""
    new, target = Path(new), Path(target)
    with locked(target):
        if not target.exists():
            os.replace(new, target)
            return
        if _exchange(new, target):
            shutil.rmtree(new)  # now the old directory
            return
        old = temporary_sibling(target, "old")
        os.replace(target, old)
        try:
            os.replace(new, target)
        except OSError:
            os.replace(old, target)  # put the previous one back
            raise
    shutil.rmtree(old, ignore_errors=True)
