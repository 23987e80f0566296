"""Face-matching figures side by side on one split, same protocols: the trained embedder, the
same network untrained, and the PCA-on-pixels baseline of the synthetic corpus checks.

    python scripts/face_baselines.py outputs/face_match/train/checkpoints/best.ckpt [split]

Each model embeds the split's images; the comparison and search tables are built exactly as
idv-evaluate builds them (idv.tasks.scoring), so the rows differ only in the embedder.
"""

from __future__ import annotations

import sys

import lightning as L
from hydra.utils import instantiate
from rich.console import Console
from rich.table import Table

import idv  # noqa: F401
from idv.data.datamodule import datamodule_config
from idv.data.readers import read_image
from idv.data.synth.checks import _embed, _fit_pca, pixel_features
from idv.evaluation.matching import impostor_set
from idv.metrics.identification import identification_report
from idv.metrics.verification import verification_report
from idv.models.checkpoint import net_from_checkpoint
from idv.tasks.scoring import (
    Embeddings,
    comparison_table,
    predict,
    scoring_trainer,
    search_table,
    task_module,
)

PCA_COMPONENTS = 64


def figures(name: str, embeddings: Embeddings, frame, task: dict, seed: int) -> list[str]:
    protocols = task["protocols"]
    table = comparison_table(frame, embeddings, protocols["comparisons"], seed=seed)
    cells = [name]
    for protocol in protocols["comparisons"]:
        rows = table[table["protocol"] == protocol]
        for subset in ("all", "demographic"):
            chosen = impostor_set(rows, subset)
            if chosen["genuine"].all():  # no impostor of the same demographics in the split
                cells.append("n/a")
                continue
            report = verification_report(chosen, (1e-2,), min_subjects=0)
            cells.append(f"{report['eer']:.3f} / {_fmt(report['fnmr_at_fmr_1e-02'])}")
    search = search_table(
        frame,
        embeddings,
        enrolled_fraction=protocols["search"]["enrolled_fraction"],
        top_k=protocols["search"]["top_k"],
        gallery=protocols["gallery"],
        seed=seed,
    )
    report = identification_report(search, (0.01,), min_subjects=0)
    fnir = report["fnir_at_fpir_1e-02"]
    return [*cells, f"{report['rank_1_rate']:.3f}", _fmt(fnir)]


def _fmt(value) -> str:
    """A rate, or `n/s` where the split cannot resolve the operating point (rule of three)."""
    return f"{value:.3f}" if isinstance(value, float) else "n/s"


def main(ckpt: str, split: str = "test") -> None:
    net, config = net_from_checkpoint(ckpt)
    datamodule = instantiate(datamodule_config(config["data"]), _recursive_=False)
    datamodule.setup("validate")
    frame = datamodule.split_frame(split)
    task, seed = config["task"], config["seed"]
    trainer = scoring_trainer()

    def embed(network) -> Embeddings:  # through the task's predict_step, as idv-evaluate
        found = predict(trainer, task_module(network, config), datamodule, split)
        return Embeddings(found.sample_ids, found.outputs["embedding"])

    trained = embed(net)
    L.seed_everything(seed, verbose=False)
    untrained = embed(instantiate(config["model"]).eval())

    def pixels(rows):
        return pixel_features([read_image(datamodule.manifest.abspath(p)) for p in rows["path"]])

    pca = _fit_pca(pixels(datamodule.split_frame("train")), PCA_COMPONENTS)
    baseline = Embeddings(frame["sample_id"].tolist(), _embed(pca, pixels(frame)))

    table = Table(
        title=f"face_match on {split} ({len(frame)} images, {frame['subject_id'].nunique()} "
        "identities): EER / FNMR@FMR=1e-2 per protocol; `hard` = demographic-matched impostors"
    )
    columns = ["model"]
    for protocol in task["protocols"]["comparisons"]:
        columns += [protocol, f"{protocol} hard"]
    for column in [*columns, "rank-1", "FNIR@FPIR=0.01"]:
        table.add_column(column)
    backbone = config["model"]["backbone"].get("name", config["model"]["backbone"]["_target_"])
    table.add_row(*figures(f"embedder trained ({backbone})", trained, frame, task, seed))
    table.add_row(*figures("same network, untrained", untrained, frame, task, seed))
    table.add_row(*figures(f"PCA on pixels ({PCA_COMPONENTS} comp.)", baseline, frame, task, seed))
    Console(width=160).print(table)


if __name__ == "__main__":
    main(*sys.argv[1:])
