"""The one Markdown table renderer of reports, threshold summaries, benchmarks and model cards."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any


def table(
    header: Sequence[Any], rows: Iterable[Sequence[Any]], cell: Callable[[Any], str] = str
) -> str:
    """A pipe table: `header`, then one line per row with each value through `cell`."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
