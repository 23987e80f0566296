"""End to end on the tiny corpus: train (debug=fast), evaluate, resume, protocols."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch

from idv.cli.evaluate import run as evaluate
from idv.models.checkpoint import load_checkpoint, net_from_checkpoint
from idv.tasks.fit import fit
from tests.conftest import compose, train_overrides


def test_fast_run_writes_checkpoints_and_config(fast_run) -> None:
    ckpt_dir = fast_run.output_dir / "checkpoints"
    assert (ckpt_dir / "best.ckpt").is_file() and (ckpt_dir / "last.ckpt").is_file()
    assert (fast_run.output_dir / "config.yaml").is_file()
    assert "val/eer" in fast_run.metrics and 0.0 <= fast_run.metrics["val/eer"] <= 1.0


def test_checkpoint_loads_with_weights_only(fast_run) -> None:
    checkpoint = load_checkpoint(fast_run.best_checkpoint)  # torch.load(weights_only=True)
    config = checkpoint["hyper_parameters"]["run_config"]
    assert isinstance(config, dict) and config["task"]["name"] == "pad"
    net, _ = net_from_checkpoint(fast_run.best_checkpoint)
    assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 1)


def test_evaluate_writes_score_table_and_flat_metrics(fast_run, tiny_pad_root, tmp_path) -> None:
    cfg = compose(
        "evaluate",
        [
            "debug=fast",
            f"paths.data_dir={tiny_pad_root}/data",
            f"ckpt_path={fast_run.best_checkpoint}",
        ],
        tmp_path,
    )
    result = evaluate(cfg)
    table = pd.read_parquet(tmp_path / "tables/scores.parquet")
    for column in (
        "sample_id",
        "score",
        "label",
        "attack_type",
        "subject_id",
        "acquired",
        "geography",
        "capture_device",
        "split",
    ):
        assert column in table.columns, column
    assert set(table["split"]) == {"val", "calib", "test"}
    assert table["score"].between(0, 1).all() and table["acquired"].all()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics.keys() == result.metrics.keys()
    # Flat numbers for dvc metrics; null only where the data cannot resolve the operating
    # point (the tiny corpus cannot resolve APCER = 1%), and the report says why.
    assert all(isinstance(v, int | float) or v is None for v in metrics.values())
    assert metrics["test/bpcer_at_worst_apcer_1pct"] is None
    assert "`test/bpcer_at_worst_apcer_1pct` not supported" in (tmp_path / "report.md").read_text()
    assert "test/apcer_worst@val_eer_threshold" in metrics and "test/eer" in metrics
    for species in ("print", "replay", "mask"):
        assert f"test/apcer_{species}@val_eer_threshold" in metrics
    # The human view: report, segment table, plot tables for dvc and their PNGs.
    report = (tmp_path / "report.md").read_text()
    assert "## Per segment" in report and "## Demographic differential" in report
    segments = pd.read_csv(tmp_path / "segments.csv")
    assert {"geography", "capture_device"} <= set(segments["segment"])
    for name in ("roc", "det", "score_hist"):
        assert (tmp_path / "plots" / f"{name}.csv").is_file()
        assert (tmp_path / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def state_of(path: str) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["state_dict"]


class Interrupt(L.Callback):
    """Stops a run at the start of `epoch`, as a crash or a pre-empted job would."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise InterruptedError(f"interrupted at epoch {self.epoch}")


def test_resume_is_bit_exact(tiny_pad_root, fast_run, tmp_path) -> None:
    # fast_run: 2 epochs uninterrupted. Here: the same run interrupted after epoch 1, then
    # resumed from its last checkpoint in the same run directory.
    interrupt = [
        "+callbacks.interrupt._target_=tests.test_pad_training.Interrupt",
        "+callbacks.interrupt.epoch=1",
    ]
    with pytest.raises(InterruptedError):
        fit(compose("train", train_overrides(tiny_pad_root, *interrupt), tmp_path))
    resumed = fit(compose("train", train_overrides(tiny_pad_root, "ckpt_path=last"), tmp_path))
    assert load_checkpoint(fast_run.last_checkpoint)["epoch"] == 1  # both ran 2 epochs
    assert load_checkpoint(resumed.last_checkpoint)["epoch"] == 1
    a, b = state_of(fast_run.last_checkpoint), state_of(resumed.last_checkpoint)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed.metrics["val/eer"] == fast_run.metrics["val/eer"]
    assert resumed.metrics["val/auc"] == fast_run.metrics["val/auc"]


def test_resume_last_without_checkpoint_is_an_error(tiny_pad_root, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="ckpt_path=last"):
        fit(compose("train", train_overrides(tiny_pad_root, "ckpt_path=last"), tmp_path))


@pytest.mark.parametrize(
    ("protocol", "check"),
    [
        (
            "unseen_attack",
            lambda fit_rows, test_rows: (
                "mask" not in set(fit_rows["attack_type"])
                and "mask" in set(test_rows["attack_type"])
            ),
        ),
        (
            "cross_device",
            lambda fit_rows, test_rows: (
                set(fit_rows["capture_device"]) <= {"phone_a", "phone_b"}
                and set(test_rows["capture_device"]) <= {"phone_c", "webcam_d"}
            ),
        ),
    ],
)
def test_protocols_select_rows(protocol, check, tiny_pad_root, tmp_path) -> None:
    from hydra.utils import instantiate

    cfg = compose("train", train_overrides(tiny_pad_root, f"protocol={protocol}"), tmp_path)
    dm = instantiate(cfg.data)
    dm.setup("fit")
    fit_rows = pd.concat([dm.split_frame(s) for s in ("train", "val", "calib")])
    test_rows = dm.split_frame("test")
    assert len(fit_rows) and len(test_rows)
    assert check(fit_rows, test_rows)


def test_unknown_protocol_values_are_errors(tiny_pad_root, tmp_path) -> None:
    from hydra.utils import instantiate

    cfg = compose(
        "train",
        train_overrides(tiny_pad_root, "protocol=unseen_attack", "protocol.species=deepfake"),
        tmp_path,
    )
    with pytest.raises(ValueError, match="deepfake"):
        instantiate(cfg.data).setup("fit")


def test_multirun_from_the_command_line(tiny_pad_root, tmp_path) -> None:
    import subprocess
    import sys

    script = Path(sys.executable).parent / "idv-train"
    out = subprocess.run(
        [
            str(script),
            "-m",
            *train_overrides(tiny_pad_root, "trainer.max_epochs=1"),
            "model.backbone.name=resnet10t,mobilenetv3_small_100",
            "data.batch_size=4",
            "logger=wandb",  # offline; where Lightning's INFO lines used to print twice
            f"hydra.sweep.dir={tmp_path}/multirun",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    runs = sorted((tmp_path / "multirun").glob("*/checkpoints/best.ckpt"))
    assert len(runs) == 2
    # Every Lightning INFO line once (Hydra's handler), none again from Lightning's own; and
    # not interactive, so one progress line per epoch instead of a bar.
    printed = out.stdout + out.stderr
    assert printed.count("GPU available: False") == 2, printed[-3000:]
    assert "INFO: " not in out.stderr
    assert printed.count("[idv.tasks.progress][INFO] - epoch 1/1  train/loss") == 2


def test_evaluate_any_score_table_with_failures_to_acquire(fast_run, tiny_pad_root, tmp_path):
    first = tmp_path / "first"
    base = ["debug=fast", f"paths.data_dir={tiny_pad_root}/data"]
    cfg = compose("evaluate", [*base, f"ckpt_path={fast_run.best_checkpoint}"], first)
    scored = evaluate(cfg)
    # The same table read back (as a vendor's would be) gives the same metrics.
    table_file = first / "tables/scores.parquet"
    again = evaluate(compose("evaluate", [*base, f"scores={table_file}"], tmp_path / "again"))
    assert again.metrics == scored.metrics
    # Two test bona fide captures not acquired: they stay in, as rejections (BPCER rises).
    table = pd.read_parquet(first / "tables/scores.parquet")
    test_bona = (table["split"] == "test") & (table["label"] == 0)
    bona = table.index[test_bona][:2]
    flagged = table["score"] >= scored.metrics["val/eer_threshold"]
    flagged[bona] = True
    expected_bpcer = flagged[test_bona].mean()
    table.loc[bona, "acquired"] = False
    table.loc[bona, "score"] = float("nan")
    table.to_parquet(tmp_path / "fta.parquet")
    fta = evaluate(
        compose("evaluate", [*base, f"scores={tmp_path / 'fta.parquet'}"], tmp_path / "fta")
    )
    key = "test/bpcer@val_eer_threshold"
    assert fta.metrics["test/failures_to_acquire"] == 2
    assert fta.metrics["test/samples"] == scored.metrics["test/samples"]
    assert fta.metrics[key] == pytest.approx(expected_bpcer)
    with pytest.raises(ValueError, match="exactly one of"):
        evaluate(
            compose(
                "evaluate",
                [
                    *base,
                    f"scores={tmp_path / 'fta.parquet'}",
                    f"ckpt_path={fast_run.best_checkpoint}",
                ],
                tmp_path / "x",
            )
        )
