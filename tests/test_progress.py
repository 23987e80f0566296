"""Progress on long work: a log line per step with its time, a line per training epoch when
not interactive (Rich's bar when it is)."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.callbacks import RichProgressBar

from idv.progress import duration, step
from idv.tasks.progress import EpochLines, progress_bar


def test_duration_reads_at_a_glance() -> None:
    assert duration(4.25) == "4.2 s"
    assert duration(59.94) == "59.9 s"
    assert duration(185) == "3 min 05 s"


def test_step_logs_what_was_done_with_its_time(caplog) -> None:
    log = logging.getLogger("idv.test")
    with caplog.at_level(logging.INFO, logger="idv.test"), step(log, "scored split") as note:
        note["detail"] = "360 items"
    (record,) = caplog.records
    message = record.getMessage()
    assert message.startswith("scored split: 360 items (") and message.endswith(" s)")


def test_a_failed_step_logs_nothing_but_raises(caplog) -> None:
    log = logging.getLogger("idv.test")
    with (
        caplog.at_level(logging.INFO, logger="idv.test"),
        pytest.raises(ValueError),
        step(log, "never done"),
    ):
        raise ValueError("bad input")
    assert not caplog.records


def test_progress_bar_is_rich_in_a_terminal_and_lines_elsewhere() -> None:
    assert isinstance(progress_bar(interactive=True), RichProgressBar)
    bar = progress_bar(monitor="val/eer", interactive=False)
    assert isinstance(bar, EpochLines) and bar.monitor == "val/eer"


def test_epoch_line_has_epoch_loss_metric_elapsed_and_eta() -> None:
    bar = EpochLines(monitor="val/eer")
    bar.start = time.perf_counter() - 30.0  # 30 s into the run, 3 of 12 epochs done
    trainer = SimpleNamespace(
        current_epoch=2,
        max_epochs=12,
        callback_metrics={"train/loss": torch.tensor(0.41234), "val/eer": torch.tensor(0.15)},
    )
    line = bar.line(trainer)
    assert line.startswith("epoch 3/12  train/loss 0.4123  val/eer 0.1500  elapsed 30.")
    assert line.endswith("ETA 1 min 30 s")
    # A metric not logged yet is left out, not printed as a placeholder.
    trainer.callback_metrics = {"train/loss": torch.tensor(1.0)}
    assert "val/eer" not in bar.line(trainer)
