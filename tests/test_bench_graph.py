"""scripts/bench_graph.py: a tiny run prints a table row of figures and the capacity plan, and a
size that fails prints its failure in its row while the next size still runs. Figures are
printed, never asserted (timings depend on the machine)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts/bench_graph.py"
NUMBER = r"-?[\d,]+(?:\.\d+)?"


def table_rows(out: str) -> dict[str, str]:
    """The result table's rows (after its header, up to the blank line), by size."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["accounts", "build"])
    rows = {}
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        rows[line.split()[0]] = line
    return rows


def bench(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_tiny_run_prints_a_row_and_the_capacity_plan():
    out = bench("--quick", "--sizes", "500")
    rows = table_rows(out)
    assert list(rows) == ["500"], out
    row = rows["500"].split()
    assert row[-1] == "ok", out
    figures = row[1:-1]  # build s .. sub/acct
    assert len(figures) == 10 and all(re.fullmatch(NUMBER, f) for f in figures), row
    assert "Capacity plan for 10M+ accounts" in out
    assert re.search(rf"full-batch epoch: {NUMBER} us per account", out), out
    assert re.search(rf"training memory: {NUMBER} KiB per account", out), out
    assert "stops fitting on this machine around" in out
    for engine in ("torch_geometric.distributed", "DistNeighborLoader", "NeighborLoader", "k_hop"):
        assert engine in out


def test_a_failed_size_prints_its_failure_and_the_next_runs():
    out = bench("--sizes", "500", "600", "--timeout", "1")
    rows = table_rows(out)
    assert list(rows) == ["500", "600"], out
    for row in rows.values():
        assert "FAILED: timeout after 1 s" in row, out
    assert "no size finished full-batch training" in out
