"""The parity gate: exported formats against the eager wrapper, before any bundle is written.

On held-out image files (the checkpoint's data config: split `test`, then `calib` to reach
`min_samples`):

1. Preprocessing: serving's decode + resize (`idv.serving.preprocess`) then normalisation
   against the evaluation transform of training (`build_transforms(augment, "eval")` on
   `idv.data.readers.read_image`): max absolute difference <= `preprocess_tolerance` (1e-6).
2. End to end: the eager wrapper on serving's input against the eager network on the
   evaluation transform's tensor (what idv-evaluate scores): max |score difference| <= tolerance.
3. Every exported format, loaded from its file by the serving backend, at batch size 1 and at
   `batch_size`, against the eager wrapper at the same batch size: max |score difference| <=
   `tolerance` (1e-5, float32).
4. Decisions at the global headline thresholds of thresholds.json (`Thresholds.decide`: the
   review edge and the threshold) agree on every sample, except samples whose eager score lies
   within `tolerance` of an edge: those are counted and reported, not failed.
Any failure raises ParityError with the figures; the report is what parity.json holds.

Matching tasks (thresholds.json `kind: matching`) differ where their output does: the outputs
are (N, D) unit-norm embeddings, compared elementwise (max |diff| <= tolerance in 2 and 3; the
eager reference of 2 is the network's output itself), and decisions (match / review /
non_match) are checked on pair similarities: each
held-out sample against the next one (`np.roll(..., -1)`). A pair counts as near a threshold
when its eager similarity lies within `similarity_margin` of it: the most a similarity of two
unit vectors can move when every coordinate moves by at most `tolerance`,
2 * sqrt(D) * tolerance + D * tolerance**2.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from idv.data.augment.pipeline import build_transforms
from idv.data.readers import read_image
from idv.export.formats import Exported
from idv.serving.backends import load_backend
from idv.serving.preprocess import normalise, prepare
from idv.thresholds import Thresholds

log = logging.getLogger(__name__)
SPLITS = ("test", "calib")  # held-out splits, in the order parity samples are drawn


class ParityError(RuntimeError):
    """The exported model does not reproduce the eager one; `report` holds every figure."""

    def __init__(self, message: str, report: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class ParityOptions:
    min_samples: int = 256
    batch_size: int = 32
    tolerance: float = 1e-5
    preprocess_tolerance: float = 1e-6

    def __post_init__(self) -> None:
        if self.min_samples < 1 or self.batch_size < 2:
            raise ValueError(
                f"parity needs min_samples >= 1 and batch_size >= 2 (a larger batch than 1), "
                f"got {self.min_samples} and {self.batch_size}"
            )
        if not (self.tolerance > 0 and self.preprocess_tolerance > 0):
            raise ValueError("parity tolerances must be positive")


def held_out_samples(
    frames: Mapping[str, pd.DataFrame], root: str | Path, min_samples: int
) -> pd.DataFrame:
    """Rows of `test`, then of `calib` while fewer than `min_samples`, with absolute `file`s.

    Fewer held-out rows than `min_samples` in both splits together is an error that says how
    many there are (a tiny corpus: lower parity.min_samples)."""
    chosen, count = [], 0
    for split in SPLITS:
        if count >= min_samples:
            break
        rows = frames.get(split)
        if rows is None or rows.empty:
            continue
        chosen.append(rows.assign(split=split))
        count += len(rows)
    available = sum(len(f) for s, f in frames.items() if s in SPLITS and f is not None)
    if count < min_samples:
        raise ValueError(
            f"parity needs parity.min_samples={min_samples} held-out samples but the splits "
            f"{list(SPLITS)} hold only {available}: use a larger corpus, or lower "
            f"parity.min_samples (e.g. parity.min_samples={available}) knowingly"
        )
    table = pd.concat(chosen, ignore_index=True)
    table["file"] = [str(Path(root) / p) for p in table["path"].astype(str)]
    return table


def _batched(fn, inputs: np.ndarray, batch_size: int) -> np.ndarray:
    """fn over batches: (N,) for one value per sample (scores), else (N, D) (embeddings)."""
    out = np.concatenate(
        [
            np.asarray(fn(inputs[i : i + batch_size]), dtype=np.float32).reshape(
                len(inputs[i : i + batch_size]), -1
            )
            for i in range(0, len(inputs), batch_size)
        ]
    )
    return out[:, 0] if out.shape[1] == 1 else out


def _pair_similarities(embeddings: np.ndarray) -> np.ndarray:
    """Each sample's similarity with the next one (the last with the first)."""
    e = np.asarray(embeddings, np.float64)
    return np.sum(e * np.roll(e, -1, axis=0), axis=1)


def _values(kind: str, outputs: np.ndarray) -> np.ndarray:
    """What decisions are made on: the score itself, or (matching) pair similarities."""
    return _pair_similarities(outputs) if kind == "matching" else outputs


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    return float("inf") if np.isnan(d).any() else float(d.max(initial=0.0))


def check_parity(
    wrapper: nn.Module,
    net: nn.Module,
    exported: Mapping[str, Exported],
    samples: pd.DataFrame,
    spec: Mapping[str, Any],
    augment: Mapping[str, Any],
    thresholds: Thresholds,
    options: ParityOptions,
) -> dict[str, Any]:
    """Run the gate (module docstring); returns the report, raises ParityError on a failure.
    Decisions are `thresholds.decide` at the global headline threshold."""
    kind = thresholds.kind
    output = "embedding" if kind == "matching" else "score"
    files: Sequence[str] = samples["file"].tolist()
    tol, batch_sizes = options.tolerance, (1, options.batch_size)
    served = prepare(files, spec)  # float32 (N, 3, H, W), 0-255: the model input
    transform = build_transforms(augment, "eval")
    evaluated = np.stack([transform(image=read_image(f))["image"].numpy() for f in files])
    failures: list[str] = []

    preprocess_diff = _diff(normalise(served, spec), evaluated)
    if not preprocess_diff <= options.preprocess_tolerance:
        failures.append(
            f"preprocessing: serving vs evaluation transform max |diff| {preprocess_diff:.3g} > "
            f"{options.preprocess_tolerance:g}"
        )

    wrapper, net = wrapper.eval(), net.eval()
    with torch.inference_mode():

        def eager(x: np.ndarray) -> np.ndarray:
            return wrapper(torch.from_numpy(x)).numpy()

        def evaluation(x: np.ndarray) -> np.ndarray:
            out = net(torch.from_numpy(x))
            if kind == "matching":  # the embeddings idv-evaluate compares
                return out.reshape(len(x), -1).float().numpy()
            return torch.sigmoid(out.reshape(len(x), -1)[:, 0].float()).numpy()

        reference = {b: _batched(eager, served, b) for b in batch_sizes}
        evaluation_scores = _batched(evaluation, evaluated, options.batch_size)
    end_to_end = _diff(reference[options.batch_size], evaluation_scores)
    if not end_to_end <= tol:
        failures.append(
            f"eager wrapper on serving input vs network on the evaluation transform: max "
            f"|{output} diff| {end_to_end:.3g} > {tol:g}"
        )

    glob = thresholds.global_entry()
    edges = (glob.review_at_or_above, glob.threshold)
    ref = reference[options.batch_size]
    margin = tol  # how close to a threshold a decided value is "near" it
    if kind == "matching":
        dim = ref.shape[1] if ref.ndim == 2 else 1
        margin = 2 * np.sqrt(dim) * tol + dim * tol**2
    values = {b: _values(kind, r) for b, r in reference.items()}
    near = np.zeros(len(ref), dtype=bool)  # eager value within the margin of a threshold
    for v in values.values():
        near |= (np.abs(v - edges[0]) <= margin) | (np.abs(v - edges[1]) <= margin)

    formats: dict[str, Any] = {}
    for name, item in exported.items():
        backend = load_backend(item.backend, item.path)
        entry: dict[str, Any] = {"file": item.path.name, "backend": item.backend}
        entry["method"] = item.method
        worst = 0.0
        disagree_far, disagree_near = 0, 0
        for b in batch_sizes:
            scores = _batched(backend, served, b)
            diff = _diff(scores, reference[b])
            worst = max(worst, diff)
            got = _values(kind, scores)
            same = thresholds.decide(got) == thresholds.decide(values[b])
            disagree_far = max(disagree_far, int((~same & ~near).sum()))
            disagree_near = max(disagree_near, int((~same & near).sum()))
            entry[f"batch_{b}"] = {
                "max_abs_diff": diff,
                "decision_disagreements": int((~same).sum()),
            }
            if kind == "matching":
                entry[f"batch_{b}"]["max_abs_similarity_diff"] = _diff(got, values[b])
        entry.update(
            max_abs_diff=worst,
            decision_disagreements=disagree_far,
            near_threshold_disagreements=disagree_near,
            passed=worst <= tol and disagree_far == 0,
        )
        if not worst <= tol:
            failures.append(f"{name}: max |{output} diff| {worst:.3g} > tolerance {tol:g}")
        if disagree_far:
            failures.append(
                f"{name}: {disagree_far} decision(s) differ from eager on "
                f"{'pairs' if kind == 'matching' else 'samples'} farther than {margin:g} from a "
                "threshold"
            )
        if item.notes:
            entry["notes"] = list(item.notes)
        formats[name] = entry

    splits = samples["split"].value_counts().to_dict()
    report: dict[str, Any] = {
        "passed": not failures,
        "failures": failures,
        "samples": len(files),
        "samples_per_split": {k: int(v) for k, v in splits.items()},
        "min_samples": options.min_samples,
        "batch_sizes": list(batch_sizes),
        "tolerance": tol,
        "dtype": "float32",
        "preprocess": {
            "max_abs_diff": preprocess_diff,
            "tolerance": options.preprocess_tolerance,
            "reference": "idv.data.augment.pipeline.build_transforms(augment, 'eval')",
        },
        "eager_vs_evaluation": {"max_abs_diff": end_to_end, "tolerance": tol},
        "eager_batch_1_vs_batch_n": _diff(reference[1], ref),
        "thresholds": {
            "id": glob.id,
            "review_at_or_above": glob.review_at_or_above,
            "threshold": glob.threshold,
        },
        "near_threshold_samples": int(near.sum()),
        "decisions": {
            d: int((thresholds.decide(values[options.batch_size]) == d).sum())
            for d in thresholds.decision.labels
        },
        "formats": formats,
    }
    if kind == "matching":
        report["kind"] = kind
        report["output_shape"] = list(ref.shape)
        report["decision_pairs"] = "each sample against the next one (np.roll(-1)), on cosine"
        report["similarity_margin"] = float(margin)
    if min_samples_note := _small_note(options, len(files)):
        report["note"] = min_samples_note
    if failures:
        raise ParityError("parity check FAILED: " + "; ".join(failures), report)
    log.info(
        "parity passed on %d samples: %s",
        len(files),
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
