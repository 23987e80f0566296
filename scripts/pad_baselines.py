"""PAD figures side by side on one split: the trained CNN, the same network untrained, and a
hand-crafted baseline (colour histogram + spectral energy, logistic regression on train).

    .venv/bin/python scripts/pad_baselines.py outputs/pad/train/checkpoints/best.ckpt [split]

The trained and untrained networks are scored with the checkpoint's own eval transform.
"""

from __future__ import annotations

import sys

import lightning as L
import numpy as np
from hydra.utils import instantiate
from rich.console import Console
from rich.table import Table

import idv  # noqa: F401
from idv.data.datamodule import datamodule_config
from idv.data.readers import read_image
from idv.metrics.detection import apcer_per_species, auc, eer
from idv.models.checkpoint import net_from_checkpoint
from idv.models.handcrafted import HandcraftedPAD
from idv.tasks.scoring import predict, scoring_trainer, task_module


def row(name: str, scores: np.ndarray, frame) -> list[str]:
    labels, species = frame["label"].to_numpy(), frame["attack_type"].to_numpy()
    point = eer(scores, labels)
    per_species = apcer_per_species(scores, labels, species, point.threshold)
    cells = " ".join(f"{k}={v:.2f}" for k, v in per_species.items())
    return [name, f"{auc(scores, labels):.3f}", f"{point.rate:.3f}", cells]


def main(ckpt: str, split: str = "test") -> None:
    net, config = net_from_checkpoint(ckpt)
    datamodule = instantiate(datamodule_config(config["data"]), _recursive_=False)
    datamodule.setup("validate")
    frame = datamodule.split_frame(split)
    trainer = scoring_trainer()

    def scores(network) -> np.ndarray:  # through the task's predict_step, as idv-evaluate
        found = predict(trainer, task_module(network, config), datamodule, split)
        by_id = dict(zip(found.sample_ids, found.outputs["score"], strict=True))
        return np.array([by_id[s] for s in frame["sample_id"]])

    trained = scores(net)
    L.seed_everything(config["seed"], verbose=False)
    untrained = scores(instantiate(config["model"]).eval())

    train = datamodule.split_frame("train")
    read = lambda rows: [read_image(datamodule.manifest.abspath(p)) for p in rows["path"]]  # noqa: E731
    baseline = HandcraftedPAD().fit(read(train), train["label"].to_numpy()).score(read(frame))

    table = Table(
        title=f"PAD on {split} ({len(frame)} samples, "
        f"{frame['subject_id'].nunique()} subjects); APCER at the row's own EER"
    )
    for column in ("model", "AUC", "EER", "APCER per species"):
        table.add_column(column)
    table.add_row(*row(f"CNN trained ({config['model']['backbone']['name']})", trained, frame))
    table.add_row(*row("same CNN untrained", untrained, frame))
    table.add_row(*row("hand-crafted (colour hist + FFT bands, LR)", baseline, frame))
    Console().print(table)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(*sys.argv[1:])
