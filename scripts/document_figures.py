"""Document-forgery figures on the test split: model, rules and their fusion against the
hand-crafted baseline and the untrained network, tamper localisation per species, and the
two generalisation protocols.

    .venv/bin/python scripts/document_figures.py outputs/document/train/checkpoints/best.ckpt \
        [--out outputs/document/figures] [--resamples 1000] [--skip-protocols]

Systems (same test images): the fused score the bundle serves (model + MRZ rules, the task's
`rules`), the model alone, the rules alone (`idv.documents.rules`: the MRZ and visual zone read
from the image, never the generator's ground truth), the hand-crafted baseline (error-level
analysis + noise inconsistency + spectrum + colour, logistic regression fitted on the train
split: `idv.models.document_baseline`) and the same network untrained. "EER - model" is a
paired subject bootstrap of the EER difference (system - model alone: > 0 means the model is
better; an interval excluding 0 is a significant difference). Localisation: pixel F1 / IoU of
the thresholded mask on forged images per species, and the flagged share of genuine images,
with subject-bootstrap intervals (`idv.metrics.localisation`). Protocols: `unseen_forgery`
(text edits never seen in training) and `cross_country` (an issuer's templates never seen),
each trained here (`idv.tasks.variants`) and compared with the default model on the
protocol's test rows. Writes figures.json / figures.md under --out (atomically).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import idv  # noqa: F401  (offline switches first)
from idv.atomic import write_json, write_text
from idv.data.readers import read_image
from idv.documents.rules import RuleOptions, fuse, rule_columns
from idv.evaluation.figures import SYSTEM_HEADER, compare_with_auc, system_rows
from idv.markdown import table
from idv.metrics.localisation import localisation_report
from idv.models.checkpoint import net_from_checkpoint
from idv.models.document_baseline import HandcraftedDocument
from idv.tasks.variants import eval_dataset, score_dataset, split_frames, train_variant, untrained

SPLIT = "test"
MODEL = "model alone"
PROTOCOLS = ("unseen_forgery", "cross_country")  # conf/protocol/<name>.yaml


def rule_options(config: Mapping[str, Any]) -> RuleOptions:
    spec = dict(config["task"].get("rules") or {})
    spec.pop("module", None)
    return RuleOptions.from_config(spec)


def systems_of(net, config, frames, root, with_baseline: bool = True) -> tuple[dict, Any, dict]:
    """Every system's scores on the test split, its items and the model's outputs."""
    test = eval_dataset(config, frames[SPLIT], root)
    outputs = score_dataset(net, config, test)
    options = rule_options(config)
    paths = [test.root / p for p in test.paths]
    risk = rule_columns(paths, options, test.sample_ids)["risk"]
    systems = {
        MODEL: outputs["score"],
        "fused (model + rules)": fuse(outputs["score"], risk, options),
        "rules alone": risk,
    }
    if with_baseline:
        train = eval_dataset(config, frames["train"], root)
        images = [read_image(train.root / p) for p in train.paths]
        baseline = HandcraftedDocument().fit(images, train.labels)  # lbfgs: deterministic
        systems["hand-crafted (ELA + noise + spectrum, LR)"] = baseline.score(
            [read_image(p) for p in paths]
        )
        systems["same network untrained"] = score_dataset(untrained(config), config, test)["score"]
    return systems, test.items, outputs


def localisation(items: pd.DataFrame, outputs: Mapping[str, np.ndarray], resamples: int):
    table_ = items.reset_index(drop=True).copy()
    for k in ("tp", "fp", "fn", "pixels"):
        table_[f"output/mask_{k}"] = outputs[f"mask_{k}"]
    return localisation_report(table_, "mask", n_resamples=resamples)


def protocol_figures(config, net, out: Path, resamples: int) -> dict[str, Any]:
    results = {}
    for name in PROTOCOLS:
        p_net, p_config = net_from_checkpoint(
            train_variant(config, out / name, [f"protocol={name}"])
        )
        root, frames = split_frames(p_config, ("train", SPLIT))
        default, items, _ = systems_of(net, config, frames, root, with_baseline=False)
        trained, _, _ = systems_of(p_net, p_config, frames, root, with_baseline=False)
        systems = {
            "model, default protocol": default[MODEL],
            f"model, {name}": trained[MODEL],
            f"fused, {name}": trained["fused (model + rules)"],
        }
        results[name] = {
            "protocol": dict(p_config["data"]["protocol"]),
            "samples": len(items),
            "systems": compare_with_auc(systems, items, resamples, versus="default_protocol"),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt")
    parser.add_argument("--out", type=Path, default=Path("outputs/document/figures"))
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--skip-protocols", action="store_true")
    args = parser.parse_args()

    net, config = net_from_checkpoint(args.ckpt)
    root, frames = split_frames(config, ("train", SPLIT))
    systems, items, outputs = systems_of(net, config, frames, root)
    rows = compare_with_auc(systems, items, args.resamples, versus="model")
    located = localisation(items, outputs, args.resamples)
    args.out.mkdir(parents=True, exist_ok=True)
    protocols = (
        None if args.skip_protocols else protocol_figures(config, net, args.out, args.resamples)
    )
    result = {
        "split": SPLIT, "samples": len(items), "subjects": int(items["subject_id"].nunique()),
        "systems": rows, "localisation": located, "protocols": protocols,
    }  # fmt: skip
    write_json(result, args.out / "figures.json")
    write_text(markdown(result), args.out / "figures.md")
    print(markdown(result))


def _interval(m: Mapping[str, Any], key: str) -> str:
    if m.get(key) is None:
        return "n/a"
    return f"{m[key]:.3f} [{m[f'{key}_ci_low']:.3f}, {m[f'{key}_ci_high']:.3f}]"


def markdown(r: Mapping[str, Any]) -> str:
    head = list(SYSTEM_HEADER)
    lines = [f"# Document figures ({r['split']}: {r['samples']} samples, "
             f"{r['subjects']} subjects)", "", "## Systems", ""]  # fmt: skip
    lines += [table([*head, "EER - model (paired)"], system_rows(r["systems"], "model"))]
    loc = r["localisation"]
    species = sorted({k[len("mask_f1_") :] for k in loc if k.startswith("mask_f1_")
                      and not k.endswith(("_ci_low", "_ci_high"))})  # fmt: skip
    rows = [["all forged", _interval(loc, "mask_f1"), _interval(loc, "mask_iou")]]
    rows += [[s, _interval(loc, f"mask_f1_{s}"), _interval(loc, f"mask_iou_{s}")] for s in species]
    area = _interval(loc, "mask_false_positive_area")
    lines += ["", "## Tamper localisation (pixel F1 / IoU on forged images)", "",
              table(["species", "pixel F1 [95% CI]", "IoU [95% CI]"], rows), "",
              f"False-positive area on genuine images: {area}"]  # fmt: skip
    for name, p in (r.get("protocols") or {}).items():
        lines += ["", f"## Protocol {name} ({p['samples']} test samples)", ""]
        lines += [table([*head, "EER - default protocol (paired)"],
                        system_rows(p["systems"], "default_protocol"))]  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
