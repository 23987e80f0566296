"""Behaviour figures on the test split: the GRU against the Transformer, its ablations and the
baselines, the unseen-bot protocol and the early-decision curve.

Side by side: the GRU + device model (the pipeline's checkpoint), the Transformer encoder in
its place, the events-only and device-only ablations, the hand-crafted baseline (velocity /
curvature / pause / timing statistics + the device record, gradient boosting;
`idv.models.session_baseline`) and the untrained network. Then `unseen_attack` (the humanised
bot left out of training, `protocol=unseen_humanised`) against the default-protocol model.
Then the early decision: the GRU's score after the first N events (what streaming serving
has at event N: the features and the GRU are causal, so it equals scoring the first N events),
with a threshold per N chosen on calib (its EER threshold) and the test rates at it.

    .venv/bin/python scripts/behavior_figures.py outputs/behavior/train/checkpoints/best.ckpt \
        [--out outputs/behavior/figures] [--resamples 1000] [--skip-variants]

Variants are trained here with the checkpoint's task (`idv-train` overrides), on the same
corpus, profile and seed (`idv.tasks.variants`). Intervals are subject bootstraps (95%);
"EER - GRU" is a paired subject bootstrap of the EER difference (> 0: the GRU is better; an
interval excluding 0 is a significant difference). Writes figures.json and figures.md under
--out (atomically) and prints them.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

import idv  # noqa: F401  (offline switches first)
from idv.atomic import write_json, write_text
from idv.evaluation.figures import (
    SYSTEM_HEADER,
    compare_with_auc,
    per_species_cell,
    rate_cell,
    system_rows,
)
from idv.markdown import table
from idv.metrics.detection import apcer_per_species, auc, bpcer, eer
from idv.models.checkpoint import net_from_checkpoint
from idv.models.session_baseline import HandcraftedSession
from idv.tasks.variants import eval_dataset, score_dataset, split_frames, train_variant, untrained

SPLIT = "test"
GRU = "GRU + device (served)"
VARIANTS = {
    "Transformer + device": ("transformer", ["model.encoder=transformer"]),
    "GRU, events only (use_device=false)": ("events_only", ["model.use_device=false"]),
    "device only (use_events=false)": ("device_only", ["model.use_events=false"]),
}
BASELINE = "hand-crafted (session statistics + device, gradient boosting)"
PROTOCOL, HELD_OUT = "unseen_humanised", "humanised"
EARLY_EVENTS = (8, 16, 32, 64, 128, 256)


def early_decision(net, config, frames, root) -> list[dict[str, Any]]:
    """Per N: calib EER threshold of the score after N events, test rates at it, test AUC."""
    rows = []
    for n in EARLY_EVENTS:
        sets = {s: eval_dataset(config, frames[s], root, max_events=n) for s in ("calib", SPLIT)}
        scores = {s: score_dataset(net, config, d)["score"] for s, d in sets.items()}
        threshold = eer(scores["calib"], sets["calib"].labels).threshold
        test = sets[SPLIT]
        species = test.items["attack_type"].astype(str).to_numpy()
        per = apcer_per_species(scores[SPLIT], test.labels, species, threshold)
        rows.append({
            "events": n, "threshold": threshold, "auc": auc(scores[SPLIT], test.labels),
            "eer": eer(scores[SPLIT], test.labels).rate,
            "bpcer": bpcer(scores[SPLIT], test.labels, threshold),
            "apcer": per, "worst_apcer": max(per.values()),
            "sessions_complete": float((test.truncated == 0).mean()),
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt")
    parser.add_argument("--out", type=Path, default=Path("outputs/behavior/figures"))
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--skip-variants", action="store_true", help="no extra training")
    args = parser.parse_args()

    net, config = net_from_checkpoint(args.ckpt)
    root, frames = split_frames(config, ("train", "calib", SPLIT))
    ds = {s: eval_dataset(config, f, root) for s, f in frames.items()}
    items = ds[SPLIT].items
    args.out.mkdir(parents=True, exist_ok=True)

    systems: dict[str, np.ndarray] = {GRU: score_dataset(net, config, ds[SPLIT])["score"]}
    if not args.skip_variants:
        for name, (folder, overrides) in VARIANTS.items():
            v_net, v_config = net_from_checkpoint(
                train_variant(config, args.out / folder, overrides)
            )
            systems[name] = score_dataset(v_net, v_config, ds[SPLIT])["score"]
    baseline = HandcraftedSession(seed=int(config["seed"]))
    baseline.fit(ds["train"].features, ds["train"].devices, ds["train"].labels)
    systems[BASELINE] = baseline.score(ds[SPLIT].features, ds[SPLIT].devices)
    systems["same network untrained"] = score_dataset(untrained(config), config, ds[SPLIT])["score"]
    rows = compare_with_auc(systems, items, args.resamples, versus="gru")

    protocol = None
    if not args.skip_variants:
        p_net, p_config = net_from_checkpoint(
            train_variant(config, args.out / PROTOCOL, [f"protocol={PROTOCOL}"])
        )
        p_systems = {
            "default protocol (saw humanised)": systems[GRU],
            f"{PROTOCOL} (never saw it)": score_dataset(p_net, p_config, ds[SPLIT])["score"],
        }
        protocol = compare_with_auc(p_systems, items, args.resamples, versus="default")

    result = {
        "split": SPLIT, "samples": len(items), "subjects": int(items["subject_id"].nunique()),
        "systems": rows, "protocol": protocol,
        "early_decision": early_decision(net, config, frames, root),
    }  # fmt: skip
    write_json(result, args.out / "figures.json")
    write_text(markdown(result), args.out / "figures.md")
    print(markdown(result))


def markdown(r: Mapping[str, Any]) -> str:
    head = list(SYSTEM_HEADER)
    lines = [f"# Behaviour figures ({r['split']}: {r['samples']} sessions, "
             f"{r['subjects']} subjects)", "", "## Systems", ""]  # fmt: skip
    lines += [table([*head, "EER - GRU (paired)"], system_rows(r["systems"], "gru"))]
    if r["protocol"] is not None:
        lines += ["", f"## Unseen bot ({PROTOCOL}: {HELD_OUT} never in training)", ""]
        lines += [table([*head, "EER - default (paired)"], system_rows(r["protocol"], "default"))]
    lines += ["", "## Early decision (GRU score after the first N events; threshold per N: "
              "calib EER)", ""]  # fmt: skip
    early = [[str(e["events"]), rate_cell(e["sessions_complete"]), rate_cell(e["auc"]),
              rate_cell(e["eer"]), rate_cell(e["bpcer"]), rate_cell(e["worst_apcer"]),
              per_species_cell(e["apcer"])] for e in r["early_decision"]]  # fmt: skip
    lines += [table(["N events", "sessions complete by N", "test AUC", "test EER",
                     "BPCER @ calib thr", "worst APCER", "APCER per species"], early)]  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
