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
from idv.data.readers import read_image
from idv.evaluation.scoring import predict_scores
from idv.metrics.detection import apcer_per_species, auc, eer
from idv.models.handcrafted import HandcraftedPAD
from idv.tasks.checkpoint import net_from_checkpoint


def row(name: str, scores: np.ndarray, frame) -> list[str]:
    labels, species = frame["label"].to_numpy(), frame["attack_type"].to_numpy()
    point = eer(scores, labels)
    per_species = apcer_per_species(scores, labels, species, point.threshold)
    cells = " ".join(f"{k}={v:.2f}" for k, v in per_species.items())
    return [name, f"{auc(scores, labels):.3f}", f"{point.rate:.3f}", cells]


def main(ckpt: str, split: str = "test") -> None:
    net, config = net_from_checkpoint(ckpt)
    datamodule = instantiate(config["data"], _recursive_=False)
    datamodule.setup("validate")
    frame = datamodule.split_frame(split)
    loader = datamodule.dataloader(split)
    order = frame["sample_id"]

    trained = predict_scores(net, loader).set_index("sample_id").loc[order, "score"].to_numpy()
    L.seed_everything(config["seed"], verbose=False)
    untrained_net = instantiate(config["model"]).eval()
    untrained = (
        predict_scores(untrained_net, loader).set_index("sample_id").loc[order, "score"].to_numpy()
    )

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
