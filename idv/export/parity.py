"""The parity gate: exported formats against the eager wrapper, before any bundle is written.

On held-out items (the checkpoint's data config and dataset: split `test`, then `calib` to
reach `min_samples`; an item is an image, or a clip with its challenge), for EVERY named
output of the wrapper:

1. Preprocessing: serving's decode + resize (`idv.serving.preprocess`) of what serving is given
   (`ManifestDataset.serving_inputs`: files, frame lists, challenge names), then
   normalisation, against the dataset's evaluation transform (`build_transforms(augment,
   "eval")`): max absolute difference <= `preprocess_tolerance` (1e-6) per input.
2. End to end: the eager wrapper on serving's input against what idv-evaluate scores (the
   network on the evaluation transform's tensor, behind the same output head, as in the task's
   `predict_step`): max |difference| <= tolerance, per output.
3. Every exported format, loaded from its file by the serving backend, at batch size 1 and at
   `batch_size`, against the eager wrapper at the same batch size: max |difference| <=
   `tolerance` (1e-5, float32), per output.
4. Decisions at the global headline thresholds of thresholds.json (`Thresholds.decide`) agree
   on every item, except items whose eager value lies within the kind's margin of an edge:
   those are counted and reported, not failed. What decisions are made on is the kind's
   (`idv.kinds` part `decision_values`): the primary score itself (detection), or pair
   similarities of the embeddings (matching: each held-out sample against the next one, with
   the margin 2 * sqrt(D) * tolerance + D * tolerance**2, the most a similarity of two unit
   vectors moves when every coordinate moves by at most `tolerance`).
Any failure raises ParityError with the figures; the report is what parity.json holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from idv import kinds
from idv.data.augment.pipeline import build_transforms
from idv.data.readers import read_image
from idv.errors import IdvError
from idv.export.formats import Exported
from idv.export.wrappers import ServingWrapper
from idv.models.outputs import named_outputs
from idv.serving.backends import load_backend
from idv.serving.preprocess import normalise, prepare_inputs
from idv.thresholds import Thresholds

log = logging.getLogger(__name__)
SPLITS = ("test", "calib")  # held-out splits, in the order parity samples are drawn


class ParityError(IdvError, RuntimeError):
    """The exported model does not reproduce the eager one; `report` holds every figure."""

    def __init__(self, message: str, report: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class ParityOptions:
    min_samples: int = 128
    batch_size: int = 32
    tolerance: float = 1e-5
    preprocess_tolerance: float = 1e-6
    detector_tolerance_px: float = 1.0  # a face bundle's MTCNN against facenet-pytorch's
    detector_images: int = 12  # held-out images the detector's parity runs on
    stream_sessions: int = 16  # held-out sessions a session bundle's streaming step runs on
    max_samples: int | None = None  # at most this many held-out items (None: whole splits)

    def __post_init__(self) -> None:
        if self.min_samples < 1 or self.batch_size < 2:
            raise ValueError(
                f"parity needs min_samples >= 1 and batch_size >= 2 (a larger batch than 1), "
                f"got {self.min_samples} and {self.batch_size}"
            )
        if self.max_samples is not None and self.max_samples < self.min_samples:
            raise ValueError(
                f"parity.max_samples ({self.max_samples}) is below parity.min_samples "
                f"({self.min_samples})"
            )
        if not (self.tolerance > 0 and self.preprocess_tolerance > 0):
            raise ValueError("parity tolerances must be positive")


@dataclass(frozen=True)
class HeldOut:
    """Held-out items: what serving is given (`raw`, per input name: files, frame lists,
    challenge names) and what the scoring path sees (`evaluated`: the dataset's evaluation
    transform, per input name), with each item's split."""

    raw: dict[str, list[Any]]
    evaluated: dict[str, np.ndarray]
    splits: list[str]

    def __len__(self) -> int:
        return len(self.splits)

    @classmethod
    def of_images(cls, files: Sequence[str], augment: Mapping[str, Any], split: str = "test"):
        """Image files through the evaluation transform (the image modality's items)."""
        transform = build_transforms(augment, "eval")
        images = [transform(image=read_image(f))["image"].numpy() for f in files]
        return cls({"image": list(files)}, {"image": np.stack(images)}, [split] * len(files))


def held_out_items(
    frames: Mapping[str, pd.DataFrame],
    root: str | Path,
    min_samples: int,
    dataset: Callable[..., Any],
    augment: Mapping[str, Any],
    species: Sequence[str],
    max_samples: int | None = None,
) -> HeldOut:
    """Items of `test`, then of `calib` while fewer than `min_samples` (and no more than
    `max_samples`, in split order), built by the run's `dataset` factory at the eval stage.

    Fewer held-out items than `min_samples` in both splits together is an error that says how
    many there are (a tiny corpus: lower parity.min_samples)."""
    built = {}
    for split in SPLITS:
        rows = frames.get(split)
        if rows is not None and "acquired" in rows.columns:  # failures to acquire have no input
            rows = rows[rows["acquired"].astype(bool)]
        if rows is not None and not rows.empty:
            built[split] = dataset(rows.reset_index(drop=True), root, augment, "eval", species)
    available = sum(len(d) for d in built.values())
    if available < min_samples:
        raise ValueError(
            f"parity needs parity.min_samples={min_samples} held-out samples but the splits "
            f"{list(SPLITS)} hold only {available}: use a larger corpus, or lower "
            f"parity.min_samples (e.g. parity.min_samples={available}) knowingly"
        )
    raw: dict[str, list[Any]] = {}
    evaluated: dict[str, list[np.ndarray]] = {}
    splits: list[str] = []
    for split, items in built.items():
        if len(splits) >= min_samples:
            break
        for i in range(len(items)):
            if max_samples is not None and len(splits) >= max_samples:
                break
            for name, value in items.serving_inputs(i).items():
                raw.setdefault(name, []).append(value)
            for name, tensor in items[i].inputs.items():
                evaluated.setdefault(name, []).append(tensor.numpy())
            splits.append(split)
    return HeldOut(raw, {k: np.stack(v) for k, v in evaluated.items()}, splits)


Outputs = dict[str, np.ndarray]


def _batched(fn, inputs: Outputs, batch_size: int) -> Outputs:
    """fn over batches of named inputs; the named outputs concatenated."""
    n = len(next(iter(inputs.values())))
    parts = [
        fn({k: v[i : i + batch_size] for k, v in inputs.items()}) for i in range(0, n, batch_size)
    ]
    return {k: np.concatenate([np.asarray(p[k], np.float32) for p in parts]) for k in parts[0]}


def primary_scores(outputs: Outputs, primary: str, tolerance: float) -> tuple[np.ndarray, float]:
    """Detection decides on the primary score itself; near an edge: within `tolerance`."""
    return np.asarray(outputs[primary], np.float64), tolerance


def pair_similarities(outputs: Outputs, primary: str, tolerance: float) -> tuple[np.ndarray, float]:
    """Matching decides on similarities: each sample's with the next one (the last with the
    first); near an edge: within the most a similarity of two unit vectors moves when every
    coordinate moves by at most `tolerance`."""
    e = np.asarray(outputs[primary], np.float64)
    dim = e.shape[1] if e.ndim == 2 else 1
    return np.sum(e * np.roll(e, -1, axis=0), axis=1), 2 * np.sqrt(
        dim
    ) * tolerance + dim * tolerance**2


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    return float("inf") if np.isnan(d).any() else float(d.max(initial=0.0))


def _diffs(a: Outputs, b: Outputs) -> dict[str, float]:
    return {name: _diff(a[name], b[name]) for name in a}


def check_parity(
    wrapper: ServingWrapper,
    net: nn.Module,
    exported: Mapping[str, Exported],
    held: HeldOut,
    spec: Mapping[str, Any],
    thresholds: Thresholds,
    options: ParityOptions,
) -> dict[str, Any]:
    """Run the gate (module docstring); returns the report, raises ParityError on a failure."""
    decision_values = kinds.get(thresholds.kind).decision_values
    tol, batch_sizes = options.tolerance, (1, options.batch_size)
    names = list(wrapper.input_names)
    served = prepare_inputs(held.raw, spec)  # what the bundle feeds its model
    evaluated = held.evaluated
    failures: list[str] = []

    preprocess_diff = 0.0
    for name in names:
        entry = spec["inputs"][name]
        if entry["modality"] in ("image", "frames"):
            diff = _diff(normalise(served[name], entry), evaluated[name])
        elif entry["modality"] == "events":  # serving pads to the longest session, not further
            width = served[name].shape[1]
            rest = evaluated[name][:, width:]
            diff = max(_diff(served[name], evaluated[name][:, :width]),
                       float(np.abs(rest).max()) if rest.size else 0.0)  # fmt: skip
        else:  # categories, vectors and lengths reach the model as given
            diff = _diff(served[name], evaluated[name])
        preprocess_diff = max(preprocess_diff, diff)
        if not diff <= options.preprocess_tolerance:
            failures.append(
                f"preprocessing of {name!r}: serving vs evaluation transform max |diff| "
                f"{diff:.3g} > {options.preprocess_tolerance:g}"
            )

    wrapper, net = wrapper.eval(), net.eval()
    output_names = list(wrapper.output_names)
    fused = set(getattr(wrapper.head, "fused_names", []))
    network_outputs = [n for n in output_names if n not in fused]
    with torch.inference_mode():

        def eager(x: Outputs) -> Outputs:
            out = wrapper(*[torch.from_numpy(x[n]) for n in names])
            return {k: v.numpy() for k, v in out.items()}

        def evaluation(x: Outputs) -> Outputs:  # what predict_step (idv-evaluate) gives
            tensors = {n: torch.from_numpy(x[n]) for n in names}
            raw = named_outputs(net, tensors, names, network_outputs)
            return {k: v.float().numpy() for k, v in wrapper.head(raw).items()}

        reference = {b: _batched(eager, served, b) for b in batch_sizes}
        evaluation_outputs = _batched(evaluation, evaluated, options.batch_size)
    end_to_end = _diffs(reference[options.batch_size], evaluation_outputs)
    for name, diff in end_to_end.items():
        if not diff <= tol:
            failures.append(
                f"eager wrapper on serving input vs the scoring path on the evaluation transform: "
                f"max |{name} diff| {diff:.3g} > {tol:g}"
            )

    glob = thresholds.global_entry()
    edges = (glob.review_at_or_above, glob.threshold)
    ref = reference[options.batch_size]
    primary = wrapper.primary
    values, margin = {}, tol
    for b, r in reference.items():
        values[b], margin = decision_values(r, primary, tol)
    near = np.zeros(len(values[options.batch_size]), dtype=bool)  # eager value near an edge
    for v in values.values():
        near |= (np.abs(v - edges[0]) <= margin) | (np.abs(v - edges[1]) <= margin)

    formats: dict[str, Any] = {}
    for name, item in exported.items():
        backend = load_backend(item.backend, item.path, names)
        entry: dict[str, Any] = {"file": item.path.name, "backend": item.backend}
        entry["method"] = item.method
        worst: dict[str, float] = dict.fromkeys(output_names, 0.0)
        disagree_far, disagree_near = 0, 0
        for b in batch_sizes:
            got = _batched(backend, served, b)
            if sorted(got) != sorted(output_names):
                failures.append(f"{name}: outputs {sorted(got)}, the wrapper's are {output_names}")
                continue
            diffs = _diffs(got, reference[b])
            worst = {k: max(worst[k], d) for k, d in diffs.items()}
            got_values, _ = decision_values(got, primary, tol)
            same = thresholds.decide(got_values) == thresholds.decide(values[b])
            disagree_far = max(disagree_far, int((~same & ~near).sum()))
            disagree_near = max(disagree_near, int((~same & near).sum()))
            entry[f"batch_{b}"] = {
                "max_abs_diff": diffs,
                "max_abs_decision_value_diff": _diff(got_values, values[b]),
                "decision_disagreements": int((~same).sum()),
            }
        overall = max(worst.values())
        entry.update(
            max_abs_diff=overall,
            max_abs_diff_per_output=worst,
            decision_disagreements=disagree_far,
            near_threshold_disagreements=disagree_near,
            passed=overall <= tol and disagree_far == 0,
        )
        for output, diff in worst.items():
            if not diff <= tol:
                failures.append(f"{name}: max |{output} diff| {diff:.3g} > tolerance {tol:g}")
        if disagree_far:
            failures.append(
                f"{name}: {disagree_far} decision(s) differ from eager farther than {margin:g} "
                "from a threshold"
            )
        if item.notes:
            entry["notes"] = list(item.notes)
        formats[name] = entry

    splits = pd.Series(held.splits).value_counts().to_dict()
    decided = thresholds.decide(values[options.batch_size])
    report: dict[str, Any] = {
        "passed": not failures,
        "failures": failures,
        "samples": len(held),
        "samples_per_split": {k: int(v) for k, v in splits.items()},
        "min_samples": options.min_samples,
        "batch_sizes": list(batch_sizes),
        "tolerance": tol,
        "dtype": "float32",
        "outputs": {k: list(v.shape[1:]) for k, v in ref.items()},
        "primary_output": primary,
        "preprocess": {
            "max_abs_diff": preprocess_diff,
            "tolerance": options.preprocess_tolerance,
            "reference": "the dataset's build_transforms(augment, 'eval')",
        },
        "eager_vs_evaluation": {"max_abs_diff": end_to_end, "tolerance": tol},
        "eager_batch_1_vs_batch_n": _diffs(reference[1], ref),
        "thresholds": {
            "id": glob.id,
            "review_at_or_above": glob.review_at_or_above,
            "threshold": glob.threshold,
        },
        "near_threshold_margin": float(margin),
        "near_threshold_samples": int(near.sum()),
        "decisions": {d: int((decided == d).sum()) for d in thresholds.decision.labels},
        "formats": formats,
    }
    if min_samples_note := _small_note(options, len(held)):
        report["note"] = min_samples_note
    if failures:
        raise ParityError("parity check FAILED: " + "; ".join(failures), report)
    log.info(
        "parity passed on %d samples: %s",
        len(held),
        ", ".join(f"{k} max |diff| {v['max_abs_diff']:.2g}" for k, v in formats.items()),
    )
    return report


def _small_note(options: ParityOptions, n: int) -> str | None:
    if options.min_samples < 256:
        return (
            f"parity.min_samples={options.min_samples} is below the default 256 ({n} samples "
            "checked): acceptable for a tiny test corpus only"
        )
    return None
