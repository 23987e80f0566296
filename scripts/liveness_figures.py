"""Liveness figures on the test split, side by side: the temporal model (the pipeline's
checkpoint), the frame-only baseline (the same network trained on one frame), an order-free
ablation (mean pooling; --ablations), the hand-crafted baseline (frame differences + CHROM /
POS pulse SNR + texture, logistic regression) and the untrained network; the clip-length
curve, the challenge ablation, and frame-level against session-level decisions.

    .venv/bin/python scripts/liveness_figures.py outputs/liveness/train/checkpoints/best.ckpt \
        [--out outputs/liveness/figures] [--ablations mean,gru] [--resamples 1000]

Baselines are trained here with the checkpoint's task (`idv-train` overrides), on the same
corpus and profile and with the same seed (`idv.tasks.variants`). Every interval is a subject
bootstrap (95%); "vs temporal" is a paired subject bootstrap of the EER difference (baseline
minus temporal: > 0 means the temporal model is better; an interval excluding 0 is a
significant difference; `idv.evaluation.figures`). Writes figures.json and figures.md under
--out (atomically) and prints the tables.
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
from idv.data.datasets import ClipDataset
from idv.data.readers import read_image
from idv.evaluation.figures import (
    FIGURE_HEADER,
    compare_systems,
    detection_figures,
    difference_cell,
    figure_cells,
    rate_cell,
)
from idv.markdown import table
from idv.models.checkpoint import net_from_checkpoint
from idv.models.rppg import HandcraftedLiveness
from idv.tasks.variants import eval_dataset, score_dataset, split_frames, train_variant, untrained

SPLIT = "test"
LENGTHS = (2, 4, 8, 16)


def handcrafted(config, datasets: Mapping[str, ClipDataset], fps: float) -> np.ndarray:
    """The baseline on the datasets' frames; `fps`: the rate of those frames (evenly spaced
    picks of a longer session have a lower rate than the capture)."""

    def clips(ds: ClipDataset):
        return [[read_image(ds.root / p) for p in paths] for paths in ds.frame_paths]

    model = HandcraftedLiveness(fps=fps)  # lbfgs: deterministic, no seed to give
    model.fit(clips(datasets["train"]), datasets["train"].labels)
    return model.score(clips(datasets[SPLIT]))


def picked_fps(frame: pd.DataFrame, frames: int) -> float:
    """The frame rate of `frames` evenly spaced picks of each session (the median session)."""
    per = frame.sort_values(["session_id", "frame_index"]).groupby("session_id")["timestamp_s"]
    span = per.agg(lambda t: t.iloc[-1] - t.iloc[0]).median()
    return (frames - 1) / float(span) if frames > 1 and span > 0 else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt")
    parser.add_argument("--out", type=Path, default=Path("outputs/liveness/figures"))
    parser.add_argument("--ablations", default="mean", help="temporal modules to train, or ''")
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()

    net, config = net_from_checkpoint(args.ckpt)
    root, frames = split_frames(config, ("train", SPLIT))
    trained_frames = int(config["data"]["dataset"]["frames"])
    ds = {s: eval_dataset(config, f, root, frames=trained_frames) for s, f in frames.items()}
    items = ds[SPLIT].items
    stored = int(frames[SPLIT].groupby("session_id").size().median())

    systems: dict[str, np.ndarray] = {}
    temporal = score_dataset(net, config, ds[SPLIT])
    systems[f"temporal ({config['model']['temporal']}, {trained_frames} frames)"] = temporal[
        "score"
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    frame_only_ckpt = train_variant(config, args.out / "frame_only", ["task.dataset.frames=1"])
    f_net, f_config = net_from_checkpoint(frame_only_ckpt)
    one = eval_dataset(f_config, frames[SPLIT], root, frames=1)
    systems["frame-only (same network, 1 frame)"] = score_dataset(f_net, f_config, one)["score"]
    for module in [m for m in args.ablations.split(",") if m]:
        ckpt = train_variant(config, args.out / f"temporal_{module}", [f"model.temporal={module}"])
        a_net, a_config = net_from_checkpoint(ckpt)
        systems[f"temporal ({module})"] = score_dataset(a_net, a_config, ds[SPLIT])["score"]
    name = "hand-crafted (frame diff + CHROM/POS + texture, LR)"
    fps = picked_fps(frames[SPLIT], trained_frames)
    systems[f"{name}, {trained_frames} frames"] = handcrafted(config, ds, fps)
    if stored > trained_frames:  # its best case: every stored frame (the pulse needs them)
        every = {s: eval_dataset(config, f, root, frames=stored) for s, f in frames.items()}
        fps = picked_fps(frames[SPLIT], stored)
        systems[f"{name}, all {stored} frames"] = handcrafted(config, every, fps)
    systems["same network untrained"] = score_dataset(untrained(config), config, ds[SPLIT])["score"]
    rows = compare_systems(systems, items, args.resamples, versus="temporal")

    # Clip length: the trained model on 2 .. 16 evenly spaced frames of the same sessions.
    lengths = {}
    for t in LENGTHS:
        s = score_dataset(net, config, eval_dataset(config, frames[SPLIT], root, frames=t))
        lengths[t] = detection_figures(s["score"], items, args.resamples)

    # Challenge: the fused score against the attack output alone, at the same BPCER.
    challenge = {
        "fused (attack, noncompliance)": detection_figures(
            temporal["score"], items, args.resamples
        ),
        "attack output alone": detection_figures(temporal["attack"], items, args.resamples),
    }

    # Frame level: the frame-only model on every frame of the test sessions, each frame its
    # own decision, against its session-level mean.
    per_frame = frames[SPLIT].assign(session_id=frames[SPLIT]["sample_id"])
    per_frame_ds = eval_dataset(f_config, per_frame, root, frames=1)
    frame_scores = score_dataset(f_net, f_config, per_frame_ds)["score"]
    frame_items = per_frame_ds.items
    session_of = frames[SPLIT].set_index("sample_id")["session_id"].astype(str)
    session_mean = (
        pd.Series(frame_scores, index=session_of.reindex(frame_items["sample_id"]).to_numpy())
        .groupby(level=0).mean().reindex(items["sample_id"]).to_numpy()
    )  # fmt: skip
    levels = {
        "frame-only, per frame": detection_figures(frame_scores, frame_items, args.resamples),
        "frame-only, session mean of frames": detection_figures(
            session_mean, items, args.resamples
        ),
        "temporal, per session": rows[next(iter(rows))],
    }

    result = {
        "split": SPLIT, "sessions": len(items), "subjects": int(items["subject_id"].nunique()),
        "systems": rows, "clip_length": lengths, "challenge": challenge, "levels": levels,
    }  # fmt: skip
    write_json(result, args.out / "figures.json")
    write_text(markdown(result), args.out / "figures.md")
    print(markdown(result))


def markdown(r: Mapping[str, Any]) -> str:
    head = list(FIGURE_HEADER)
    lines = [f"# Liveness figures ({r['split']}: {r['sessions']} sessions, "
             f"{r['subjects']} subjects)", "", "## Systems", ""]  # fmt: skip
    rows = [[name, *figure_cells(f), difference_cell(f.get("eer_minus_temporal"))]
            for name, f in r["systems"].items()]  # fmt: skip
    lines += [table(["system", *head, "EER - temporal (paired)"], rows), "", "## Clip length", ""]
    lines += [
        table(["frames", *head], [[str(t), *figure_cells(f)] for t, f in r["clip_length"].items()])
    ]
    lines += ["", "## Challenge ablation (replay APCER at the same BPCER)", ""]
    rows = [[name, rate_cell(f["apcer_at_bpcer"][k].get("replay")), k]
            for name, f in r["challenge"].items() for k in f["apcer_at_bpcer"]]  # fmt: skip
    lines += [table(["score", "replay APCER", "BPCER"], rows), "", "## Frame vs session", ""]
    lines += [table(["decision", *head], [[n, *figure_cells(f)] for n, f in r["levels"].items()])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
