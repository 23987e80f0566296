"""Deepfake figures on the test split: the fused model against its ablations and baselines.

Side by side: the fused image + metadata model (the pipeline's checkpoint), its image-only
and metadata-only ablations, the hand-crafted baseline (noise residual + spectrum + blend
boundary, logistic regression; `idv.models.forensics`) and the untrained network. Then
cross-manipulation: the fused model trained under the `sbi_only` protocol (bona fide and
self-blended images only) against the default-protocol fused model, on the test species
sbi_only never trained on (face swap, reenactment, synthesis).

    .venv/bin/python scripts/deepfake_figures.py outputs/deepfake/train/checkpoints/best.ckpt \
        [--out outputs/deepfake/figures] [--resamples 1000] [--skip-protocol]

Baselines are trained here with the checkpoint's task (`idv-train` overrides), on the same
corpus and profile and with the same seed (`idv.tasks.variants`). Every interval is a subject
bootstrap (95%); "EER - fused" is a paired subject bootstrap of the EER difference (baseline -
fused: > 0 means the fused model is better; an interval excluding 0 is a significant
difference); AUC per species is bona fide against that species alone. In the protocol table
the default-protocol model has seen those species in training (the in-distribution ceiling),
the sbi_only one has not. Writes figures.json and figures.md under --out (atomically) and
prints the tables.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

import idv  # noqa: F401  (offline switches first)
from idv.atomic import write_json, write_text
from idv.data.datasets import ImageDataset
from idv.data.readers import read_image
from idv.evaluation.figures import (
    SYSTEM_HEADER,
    compare_with_auc,
    rate_cell,
    system_rows,
)
from idv.markdown import table
from idv.models.checkpoint import net_from_checkpoint
from idv.models.forensics import HandcraftedDeepfake
from idv.tasks.variants import eval_dataset, score_dataset, split_frames, train_variant, untrained

SPLIT = "test"
PROTOCOL = "sbi_only"  # conf/protocol/<name>.yaml
ABLATIONS = {  # system name -> (run folder under --out, idv-train overrides of the checkpoint)
    "image only (use_metadata=false)": ("image_only", ["model.use_metadata=false"]),
    "metadata only (use_image=false)": ("metadata_only", ["model.use_image=false"]),
}
FUSED, DEFAULT, CROSS = "fused (image + metadata)", "fused, default protocol", f"fused, {PROTOCOL}"


def handcrafted(train: ImageDataset, test: ImageDataset) -> np.ndarray:
    """The hand-crafted baseline fitted on the train split's images, scored on the test's."""

    def images(ds: ImageDataset) -> list[np.ndarray]:
        return [read_image(ds.root / p) for p in ds.paths]

    model = HandcraftedDeepfake()  # lbfgs: deterministic, no seed to give
    return model.fit(images(train), train.labels).score(images(test))


def protocol_figures(
    config: Mapping[str, Any], net: nn.Module, out: Path, resamples: int
) -> dict[str, Any]:
    """The fused model trained under PROTOCOL against the default-protocol one (`net`), both on
    PROTOCOL's test split (bona fide and the species it holds out of training)."""
    p_net, p_config = net_from_checkpoint(train_variant(config, out, [f"protocol={PROTOCOL}"]))
    root, frames = split_frames(p_config, (SPLIT,))
    test = eval_dataset(p_config, frames[SPLIT], root)
    systems = {
        DEFAULT: score_dataset(net, config, eval_dataset(config, frames[SPLIT], root))["score"],
        CROSS: score_dataset(p_net, p_config, test)["score"],
    }
    rows = compare_with_auc(systems, test.items, resamples, versus="default_protocol")
    return {
        "protocol": dict(p_config["data"]["protocol"]),
        "samples": len(test.items),
        "systems": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt")
    parser.add_argument("--out", type=Path, default=Path("outputs/deepfake/figures"))
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--skip-protocol", action="store_true", help=f"no {PROTOCOL} training")
    args = parser.parse_args()

    net, config = net_from_checkpoint(args.ckpt)
    root, frames = split_frames(config, ("train", SPLIT))
    ds = {s: eval_dataset(config, f, root) for s, f in frames.items()}
    items = ds[SPLIT].items

    systems: dict[str, np.ndarray] = {FUSED: score_dataset(net, config, ds[SPLIT])["score"]}
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (folder, overrides) in ABLATIONS.items():
        a_net, a_config = net_from_checkpoint(train_variant(config, args.out / folder, overrides))
        systems[name] = score_dataset(a_net, a_config, ds[SPLIT])["score"]
    systems["hand-crafted (noise residual + spectrum + blend boundary, LR)"] = handcrafted(
        ds["train"], ds[SPLIT]
    )
    systems["same network untrained"] = score_dataset(untrained(config), config, ds[SPLIT])["score"]
    rows = compare_with_auc(systems, items, args.resamples, versus="fused")
    protocol = None
    if not args.skip_protocol:
        protocol = protocol_figures(config, net, args.out / PROTOCOL, args.resamples)

    result = {
        "split": SPLIT, "samples": len(items), "subjects": int(items["subject_id"].nunique()),
        "systems": rows, "protocol": protocol,
    }  # fmt: skip
    write_json(result, args.out / "figures.json")
    write_text(markdown(result), args.out / "figures.md")
    print(markdown(result))


def markdown(r: Mapping[str, Any]) -> str:
    head = list(SYSTEM_HEADER)
    lines = [f"# Deepfake figures ({r['split']}: {r['samples']} samples, "
             f"{r['subjects']} subjects)", "", "## Systems", ""]  # fmt: skip
    lines += [table([*head, "EER - fused (paired)"], system_rows(r["systems"], "fused"))]
    p = r["protocol"]
    if p is not None:
        held_out = ", ".join(p["protocol"]["test_species"])
        lines += ["", f"## Cross-manipulation ({PROTOCOL}: test on {held_out}, "
                  f"{p['samples']} samples)", ""]  # fmt: skip
        paired = system_rows(p["systems"], "default_protocol")
        lines += [table([*head, "EER - default protocol (paired)"], paired), ""]
        default, cross = p["systems"][DEFAULT], p["systems"][CROSS]
        rows = [[s, rate_cell(default["auc_per_species"].get(s)),
                 rate_cell(cross["auc_per_species"].get(s)),
                 rate_cell(default["apcer_at_eer"].get(s)), rate_cell(cross["apcer_at_eer"].get(s))]
                for s in p["protocol"]["test_species"]]  # fmt: skip
        lines += [table(["species", "AUC default", f"AUC {PROTOCOL}", "APCER@EER default",
                         f"APCER@EER {PROTOCOL}"], rows)]  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
