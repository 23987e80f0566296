"""Liveness figures on the test split, side by side: the temporal model (the pipeline's
checkpoint), the frame-only baseline (the same network trained on one frame), an order-free
ablation (mean pooling; --ablations), the hand-crafted baseline (frame differences + CHROM /
POS pulse SNR + texture, logistic regression) and the untrained network; the clip-length
curve, the challenge ablation, and frame-level against session-level decisions.

    .venv/bin/python scripts/liveness_figures.py outputs/liveness/train/checkpoints/best.ckpt \
        [--out outputs/liveness/figures] [--ablations mean,gru] [--resamples 1000]

Baselines are trained here with the checkpoint's task (`idv-train` overrides), on the same
corpus and with the same seed. Every interval is a subject bootstrap (95%); "vs temporal" is
a paired subject bootstrap of the EER difference (baseline - temporal: > 0 means the
temporal model is better; an interval excluding 0 is a significant difference). Writes
figures.json and figures.md under --out (atomically) and prints the tables.
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
from hydra.utils import instantiate
from torch.utils.data import DataLoader

import idv  # noqa: F401  (offline switches first)
from idv.atomic import write_json, write_text
from idv.data.datamodule import datamodule_config
from idv.data.datasets import ClipDataset, collate
from idv.data.readers import read_image
from idv.markdown import table
from idv.metrics.bootstrap import bootstrap_curve, eer_statistic, paired_bootstrap_difference
from idv.metrics.detection import apcer_at_bpcer, apcer_per_species, eer
from idv.models.checkpoint import net_from_checkpoint
from idv.models.rppg import HandcraftedLiveness
from idv.tasks.scoring import scoring_trainer, task_module

SPLIT = "test"
LENGTHS = (2, 4, 8, 16)
BPCER_POINTS = (0.05, 0.10)


def clip_dataset(config: Mapping[str, Any], frame: pd.DataFrame, root: Path, frames: int):
    data = copy.deepcopy(dict(config["data"]))
    spec = {**data["dataset"], "frames": frames}
    factory = instantiate(spec, _convert_="all")
    return factory(frame.reset_index(drop=True), root, data["augment"], "eval", data["species"])


def score(net, config, dataset) -> dict[str, np.ndarray]:
    """Named outputs per item, through the task's predict_step (as idv-evaluate)."""
    loader = DataLoader(dataset, batch_size=64, collate_fn=collate)
    batches = scoring_trainer().predict(task_module(net, config), dataloaders=loader)
    names = [k for k in batches[0] if k != "sample_id"]
    return {n: np.concatenate([b[n].cpu().numpy() for b in batches]) for n in names}


def train_variant(config: Mapping[str, Any], out: Path, overrides: list[str]) -> str:
    """Train a baseline with the checkpoint's task, corpus and seed; returns its best
    checkpoint."""
    cmd = [
        sys.executable, "-m", "idv.cli.train", f"task={config['task']['name']}",
        f"seed={config['seed']}",
        f"paths.data_dir={Path(config['data']['manifest']).parents[2]}", "logger=none",
        "callbacks.progress.interactive=false", f"hydra.run.dir={out}", *overrides,
    ]  # fmt: skip
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return str(out / "checkpoints" / "best.ckpt")


def figures(scores: np.ndarray, items: pd.DataFrame, resamples: int) -> dict[str, Any]:
    """EER with its subject-bootstrap interval, APCER per species at the EER threshold, and
    APCER per species at the thresholds meeting BPCER_POINTS (None: not resolvable)."""
    labels = items["label"].to_numpy()
    species = items["attack_type"].astype(str).to_numpy()
    subjects = items["subject_id"].astype(str).to_numpy()
    point = eer(scores, labels)
    ci = bootstrap_curve(scores, labels, subjects, eer_statistic, n_resamples=resamples)
    at_bpcer = {}
    for target in BPCER_POINTS:
        per = {}
        for name in sorted(set(species[labels == 1])):
            rows = (labels == 0) | (species == name)
            value = apcer_at_bpcer(scores[rows], labels[rows], species[rows], target)
            per[name] = value if isinstance(value, float) else None
        at_bpcer[f"{target:g}"] = per
    per_species = apcer_per_species(scores, labels, species, point.threshold)
    return {
        "eer": float(point.rate),
        "eer_ci": [float(ci.low), float(ci.high)],
        "apcer_at_eer": {k: float(v) for k, v in per_species.items()},
        "apcer_at_bpcer": at_bpcer,
    }


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
    datamodule = instantiate(datamodule_config(config["data"]), _recursive_=False)
    datamodule.setup("validate")
    root = datamodule.manifest.root
    frames = {s: datamodule.split_frame(s) for s in ("train", SPLIT)}
    trained_frames = int(config["data"]["dataset"]["frames"])
    ds = {s: clip_dataset(config, f, root, trained_frames) for s, f in frames.items()}
    items = ds[SPLIT].items
    labels, subjects = items["label"].to_numpy(), items["subject_id"].to_numpy()
    stored = int(frames[SPLIT].groupby("session_id").size().median())

    systems: dict[str, np.ndarray] = {}
    temporal = score(net, config, ds[SPLIT])
    systems[f"temporal ({config['model']['temporal']}, {trained_frames} frames)"] = temporal[
        "score"
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    frame_only_ckpt = train_variant(config, args.out / "frame_only", ["task.dataset.frames=1"])
    f_net, f_config = net_from_checkpoint(frame_only_ckpt)
    one = clip_dataset(f_config, frames[SPLIT], root, 1)
    systems["frame-only (same network, 1 frame)"] = score(f_net, f_config, one)["score"]
    for module in [m for m in args.ablations.split(",") if m]:
        ckpt = train_variant(config, args.out / f"temporal_{module}", [f"model.temporal={module}"])
        a_net, a_config = net_from_checkpoint(ckpt)
        systems[f"temporal ({module})"] = score(a_net, a_config, ds[SPLIT])["score"]
    name = "hand-crafted (frame diff + CHROM/POS + texture, LR)"
    fps = picked_fps(frames[SPLIT], trained_frames)
    systems[f"{name}, {trained_frames} frames"] = handcrafted(config, ds, fps)
    if stored > trained_frames:  # its best case: every stored frame (the pulse needs them)
        every = {s: clip_dataset(config, f, root, stored) for s, f in frames.items()}
        fps = picked_fps(frames[SPLIT], stored)
        systems[f"{name}, all {stored} frames"] = handcrafted(config, every, fps)
    L.seed_everything(int(config["seed"]), verbose=False)
    untrained = instantiate(config["model"]).eval()
    systems["same network untrained"] = score(untrained, config, ds[SPLIT])["score"]

    reference = next(iter(systems.values()))
    rows = {}
    for name, s in systems.items():
        rows[name] = figures(s, items, args.resamples)
        if s is not reference:
            diff = paired_bootstrap_difference(
                reference, s, labels, subjects, eer_statistic, n_resamples=args.resamples
            )
            rows[name]["eer_minus_temporal"] = [diff.estimate, diff.low, diff.high]

    # Clip length: the trained model on 2 .. 16 evenly spaced frames of the same sessions.
    lengths = {}
    for t in LENGTHS:
        s = score(net, config, clip_dataset(config, frames[SPLIT], root, t))["score"]
        lengths[t] = figures(s, items, args.resamples)

    # Challenge: the fused score against the attack output alone, at the same BPCER.
    challenge = {
        "fused (attack, noncompliance)": figures(temporal["score"], items, args.resamples),
        "attack output alone": figures(temporal["attack"], items, args.resamples),
    }

    # Frame level: the frame-only model on every frame of the test sessions, each frame its
    # own decision, against its session-level mean.
    per_frame = frames[SPLIT].assign(session_id=frames[SPLIT]["sample_id"])
    frame_scores = score(f_net, f_config, clip_dataset(f_config, per_frame, root, 1))["score"]
    frame_items = clip_dataset(f_config, per_frame, root, 1).items
    session_of = frames[SPLIT].set_index("sample_id")["session_id"].astype(str)
    session_mean = (
        pd.Series(frame_scores, index=session_of.reindex(frame_items["sample_id"]).to_numpy())
        .groupby(level=0).mean().reindex(items["sample_id"]).to_numpy()
    )  # fmt: skip
    levels = {
        "frame-only, per frame": figures(frame_scores, frame_items, args.resamples),
        "frame-only, session mean of frames": figures(session_mean, items, args.resamples),
        "temporal, per session": rows[next(iter(rows))],
    }

    result = {
        "split": SPLIT, "sessions": len(items), "subjects": int(items["subject_id"].nunique()),
        "systems": rows, "clip_length": lengths, "challenge": challenge, "levels": levels,
    }  # fmt: skip
    write_json(result, args.out / "figures.json")
    write_text(markdown(result), args.out / "figures.md")
    print(markdown(result))


def _cells(f: Mapping[str, Any]) -> list[str]:
    low, high = f["eer_ci"]
    known = [v for v in f["apcer_at_bpcer"]["0.1"].values() if v is not None]
    worst = f"{max(known):.3f}" if known else "n/a"
    per = ", ".join(f"{k} {v:.2f}" for k, v in f["apcer_at_eer"].items())
    return [f"{f['eer']:.3f} [{low:.3f}, {high:.3f}]", per, worst]


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def markdown(r: Mapping[str, Any]) -> str:
    head = ["EER [95% CI]", "APCER per species at the EER threshold", "worst APCER @ BPCER 10%"]
    lines = [f"# Liveness figures ({r['split']}: {r['sessions']} sessions, "
             f"{r['subjects']} subjects)", "", "## Systems", ""]  # fmt: skip
    rows = []
    for name, f in r["systems"].items():
        d = f.get("eer_minus_temporal")
        paired = f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]" if d else "-"
        rows.append([name, *_cells(f), paired])
    lines += [table(["system", *head, "EER - temporal (paired)"], rows), "", "## Clip length", ""]
    lines += [table(["frames", *head], [[str(t), *_cells(f)] for t, f in r["clip_length"].items()])]
    lines += ["", "## Challenge ablation (replay APCER at the same BPCER)", ""]
    rows = [[name, _rate(f["apcer_at_bpcer"][k].get("replay")), k]
            for name, f in r["challenge"].items() for k in f["apcer_at_bpcer"]]  # fmt: skip
    lines += [table(["score", "replay APCER", "BPCER"], rows), "", "## Frame vs session", ""]
    lines += [table(["decision", *head], [[n, *_cells(f)] for n, f in r["levels"].items()])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
