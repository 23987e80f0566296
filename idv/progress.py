"""Progress lines for long work: one log line per step, with its time.

Under `dvc repro` or CI nothing is interactive, so a bar would print nothing useful; each
stage instead says what it finished and how long it took (the README's first command then
reads as a story). Standard library only: every layer may use it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["duration", "step"]


def duration(seconds: float) -> str:
    """`42.0 s`, `3 min 05 s`: short, and readable at a glance."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


@contextmanager
def step(logger: logging.Logger, what: str) -> Iterator[dict[str, str]]:
    """Log `what` with the time the block took, once it is done. The block may add a
    `detail` to the yielded dict (`note["detail"] = "360 samples"`), shown after `what`.
    A block that fails logs nothing here: its exception says what went wrong."""
    note: dict[str, str] = {}
    start = time.perf_counter()
    yield note
    detail = f": {note['detail']}" if note.get("detail") else ""
    logger.info("%s%s (%s)", what, detail, duration(time.perf_counter() - start))
