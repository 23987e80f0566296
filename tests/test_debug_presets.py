"""Every debug preset works for every task of conf/task/ (a task cannot join without them):

- `debug=fast`: the tiny run trains, and its checkpoint evaluates;
- `debug=overfit`: the same few batches for many epochs, and the train loss (or the task's
  `overfit_loss`) falls far;
- `debug=profile`: Lightning's simple profiler writes its report.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import TASKS, compose

OVERFIT_RATIO = 0.1  # the last epoch's train loss must be below this share of the first's


def _overrides(task: str, root: Path, preset: str, *extra: str) -> list[str]:
    return [f"task={task}", f"debug={preset}", f"paths.data_dir={root}/data", *extra]


@pytest.mark.parametrize("task", TASKS)
def test_debug_fast_trains_and_evaluates(task: str, tiny_root: Path, tmp_path: Path) -> None:
    from idv.cli.evaluate import run as evaluate
    from idv.tasks.fit import fit

    cfg = compose("train", _overrides(task, tiny_root, "fast"), tmp_path / "train")
    result = fit(cfg)
    assert Path(result.best_checkpoint).is_file()
    overrides = _overrides(task, tiny_root, "fast", f"ckpt_path={result.best_checkpoint}")
    evaluate(compose("evaluate", [*overrides, "bootstrap.n_resamples=20"], tmp_path / "eval"))
    metrics = json.loads((tmp_path / "eval/metrics.json").read_text())
    assert any(key.startswith("test/") for key in metrics), sorted(metrics)[:5]


@pytest.mark.parametrize("task", TASKS)
def test_debug_overfit_drives_the_train_loss_down(
    task: str, tiny_root: Path, tmp_path: Path
) -> None:
    from idv.tasks.fit import fit

    cfg = compose("train", _overrides(task, tiny_root, "overfit", "logger=csv"), tmp_path)
    assert cfg.trainer.overfit_batches > 0 and cfg.callbacks.early_stopping is None
    fit(cfg)
    (log,) = tmp_path.rglob("metrics.csv")
    frame = pd.read_csv(log)
    # A network that carries a baseline beside its model (rings: a logistic regression on the
    # account's own features, which cannot memorise) names the loss it is judged on.
    column = cfg.task.get("overfit_loss") or "train/loss"
    losses = frame.dropna(subset=[column]).groupby("epoch")[column].mean()
    assert len(losses) == cfg.trainer.max_epochs
    first, last = float(losses.iloc[0]), float(losses.iloc[-1])
    assert last < OVERFIT_RATIO * first, f"{task}: train loss {first:.4f} -> {last:.4f}"


@pytest.mark.parametrize("task", TASKS)
def test_debug_profile_writes_the_profiler_report(
    task: str, tiny_root: Path, tmp_path: Path
) -> None:
    from idv.tasks.fit import fit

    fit(compose("train", _overrides(task, tiny_root, "profile"), tmp_path))
    report = (tmp_path / "fit-profile.txt").read_text()
    assert "run_training_epoch" in report and "Total" in report
