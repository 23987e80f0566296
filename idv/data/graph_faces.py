"""Face clusters of the identity graph from the face-matching pipeline: the cross-task link.

With `faces.source: bundle` (or `auto` when the face_match bundle exists: dvc.yaml's
prepare@rings depends on it), the graph's accounts get selfies of the synthetic face corpus
embedded by the face_match bundle (`MatchingBundle.embed`, aligned crops, ONNX Runtime), and
their face clusters come from 1:N search in a FAISS gallery (`idv.serving.gallery`) at the
bundle's calibrated FPIR threshold (thresholds.json's `fpir` entry): the graph consumes 1:N
search as the platform runs it.

Identities face_match never trained on (its calib and test splits) come first, then its
training identities (their clusters are optimistic: the model has seen those faces): each face the
generator drew (a ring's base face, reused by several members; a person's own face) becomes one
identity of the corpus, each account showing it a different selfie (capture variation is the
edit). Rings get identities first; when the held-out identities run out, the remaining accounts
keep a random face at the bundle's dimension (random directions match nobody), and the log says
how many.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from idv.thresholds import Thresholds

log = logging.getLogger(__name__)
HELD_OUT = ("calib", "test")


def bundle_faces(
    faces_cfg: dict[str, Any],
    accounts: pd.DataFrame,
    seed: int,
) -> tuple[np.ndarray, float]:
    """(one unit embedding per account row, the 1:N threshold) from the face_match bundle."""
    from idv.serving.bundle import load_bundle

    bundle_dir, corpus_dir = Path(faces_cfg["bundle"]), Path(faces_cfg["corpus"])
    bundle = load_bundle(bundle_dir, backend="onnxruntime")
    threshold = fpir_threshold(bundle.thresholds, bundle_dir)
    manifest = pd.read_parquet(corpus_dir / "manifest.parquet")
    selfies = manifest[manifest["attack_type"].astype(str).eq("bona_fide")]
    if "capture_type" in selfies.columns:  # selfies, not the document portraits
        selfies = selfies[selfies["capture_type"].astype(str) == "selfie"]
    by_identity = {k: g["path"].tolist() for k, g in selfies.groupby("subject_id", sort=True)}
    split = selfies.groupby("subject_id", sort=True)["split"].first()
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(23,)))
    held = [i for i in by_identity if split[i] in HELD_OUT]
    seen = [i for i in by_identity if split[i] not in HELD_OUT]
    rng.shuffle(held)
    rng.shuffle(seen)
    identities = held + seen  # held-out identities first
    # One held-out identity per face the generator drew (a ring's base face, a person's own),
    # rings first; each account a different selfie of its identity where it has several.
    base = accounts["face_base"].astype(str).to_numpy()
    order = sorted(set(base), key=lambda b: (not b.startswith("ring_"), b))
    identity_of = dict(zip(order, identities, strict=False))
    used: dict[str, int] = {}
    chosen: list[str | None] = [None] * len(accounts)
    for row, face in enumerate(base):
        identity = identity_of.get(face)
        if identity is None:
            continue
        paths = by_identity[identity]
        chosen[row] = paths[used.get(face, 0) % len(paths)]
        used[face] = used.get(face, 0) + 1
    dim = bundle.embedding_dim or 512
    faces = rng.standard_normal((len(accounts), dim)).astype(np.float32)
    faces /= np.linalg.norm(faces, axis=1, keepdims=True)
    rows = [i for i, p in enumerate(chosen) if p is not None]
    if rows:
        files = [str(corpus_dir / chosen[i]) for i in rows]
        embedded = bundle.embed(files, aligned=True)
        ok = np.isfinite(embedded).all(axis=1)
        faces[np.asarray(rows)[ok]] = embedded[ok]
    log.info(
        "face clusters from %s: %d of %d accounts with a selfie of the face corpus' %d "
        "identities (%d held out from face_match's training), the rest a random face; 1:N "
        "threshold %.4f", bundle_dir, len(rows), len(accounts), len(identities), len(held),
        threshold,
    )  # fmt: skip
    return faces, threshold


def fpir_threshold(thresholds: Thresholds, where: os.PathLike | str) -> float:
    """The bundle's calibrated 1:N (FPIR) threshold."""
    if "fpir" not in thresholds.metrics:
        raise ValueError(
            f"{where}: thresholds.json has no 1:N (fpir) threshold to cluster faces at"
        )
    return float(thresholds.global_entry("fpir").threshold)
