"""Metric states synchronise: one checkpoint's validation metrics under 2-process DDP on CPU
(trainer=ddp_cpu) equal those of a single process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def validate(data_dir: Path, ckpt: str, trainer: str, out: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "ddp_validate.py"),
            str(data_dir),
            ckpt,
            trainer,
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
def test_ddp_metrics_equal_single_process(fast_run, tiny_pad_root, tmp_path) -> None:
    data_dir = tiny_pad_root / "data"
    single = validate(data_dir, fast_run.best_checkpoint, "cpu", tmp_path / "single.json")
    ddp = validate(data_dir, fast_run.best_checkpoint, "ddp_cpu", tmp_path / "ddp.json")
    assert (single["world_size"], ddp["world_size"]) == (1, 2)
    assert {k for k in single if k != "val/loss"} <= set(ddp)
    for key in (
        "val/eer",
        "val/auc",
        "val/bpcer_at_worst_apcer_10pct",
        "val/apcer_print@eer_threshold",
    ):
        assert ddp[key] == pytest.approx(single[key], abs=1e-6), key
